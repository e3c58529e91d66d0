"""`qaframe inspect`: the report per split, --json, --featurizer, settings errors, and the console script's one-line exit-2 error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from types import SimpleNamespace

from click.testing import CliRunner

from qaframe import hookimpl
from qaframe import plugins as plugin_module
from qaframe.cli import cli
from qaframe.errors import UserError


def run(*args: str):
    """Invoke `qaframe inspect ARGS` in-process."""
    return CliRunner().invoke(cli, ["inspect", *args])


def test_json_report_per_split(qaframe_host, fixtures_dir):
    args = ["--corpus", "squad-json", "--train-file", str(fixtures_dir / "korquad_mini_train.json"), "--dev-file", str(fixtures_dir / "korquad_mini_dev.json")]
    result = run(*args, "--max-seq-length", "32", "--doc-stride", "8", "--max-query-length", "12", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"] == "tiny"
    assert report["settings"] == {"featurizer": "sliding-window", "max_seq_length": 32, "doc_stride": 8, "max_query_length": 12}
    train, dev = report["splits"]["train"], report["splits"]["dev"]
    assert (train["examples"], dev["examples"], train["repaired"], train["skipped"]) == (5, 3, 0, 0)
    assert train["windows"] > train["examples"] and train["windows_per_example"]["max"] >= 2
    assert train["answer_in_window_pct"] == 100.0
    assert 0 < dev["label_round_trip_pct"] <= 100.0
    assert dev["not_round_trip"] == round(3 * (100 - dev["label_round_trip_pct"]) / 100)
    assert set(train["question_tokens"]) == {"p50", "p90", "p99", "max"}
    assert train["question_tokens"]["max"] >= train["question_tokens"]["p50"] > 0 and train["context_tokens"]["max"] > 30


def test_the_text_report_shows_five_record_ids_and_json_lists_every_one(qaframe_host, tmp_path):
    context = "서울은 한국의 수도이다."
    qas = [{"id": "good", "question": "수도는?", "answers": [{"text": "서울", "answer_start": 0}]}]
    qas += [{"id": f"gone{i}", "question": "산은?", "answers": [{"text": "북한산", "answer_start": 0}]} for i in range(7)]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}, ensure_ascii=False))
    text = run("--corpus", "squad-json", "--dev-file", str(path))
    assert text.exit_code == 0, text.output
    line = next(line.strip() for line in text.output.splitlines() if line.strip().startswith("answers/records skipped"))
    assert line.startswith("answers/records skipped  7: gone0 (") and "gone4 (" in line and "gone5" not in line
    assert line.endswith("; ... (2 more; --json lists all)")
    report = json.loads(run("--corpus", "squad-json", "--dev-file", str(path), "--json").output)
    assert [entry.split(" ")[0] for entry in report["splits"]["dev"]["skipped_ids"]] == [f"gone{i}" for i in range(7)]


def test_text_report_names_repairs_and_skips(qaframe_host, tmp_path):
    context = "서울은 한국의 수도이다. 한강이 서울을 흐른다."
    qas = [
        {"id": "good", "question": "수도는?", "answers": [{"text": "서울", "answer_start": 0}]},
        {"id": "moved", "question": "강은?", "answers": [{"text": "한강", "answer_start": 2}]},
        {"id": "gone", "question": "산은?", "answers": [{"text": "북한산", "answer_start": 0}]},
    ]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}, ensure_ascii=False))
    result = run("--corpus", "squad-json", "--dev-file", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("corpus squad-json, model tiny (") and "max_seq_length 256, doc_stride 64 (overlap)" in lines[0]
    assert lines[1] == "dev"
    assert "answers/records repaired 1: moved" in result.output
    assert "answers/records skipped  1: gone (answer 1: text '북한산' does not occur" in result.output
    assert "answer inside a window   100.00 %" in result.output
    strict = run("--corpus", "squad-json", "--dev-file", str(path), "--strict")
    assert isinstance(strict.exception, UserError) and "record moved" in str(strict.exception)


def test_runs_corpus_is_the_default(qaframe_host):
    result = run("--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["corpus"] == "synthetic" and set(report["splits"]) == {"train", "dev"}
    assert report["splits"]["dev"]["answer_in_window_pct"] == 100.0


def test_featurizer_option_builds_the_named_featurizer(qaframe_host, register_plugin):
    built = []

    def recording_window(settings):
        """sliding-window's windows, recording the settings it was built with."""
        built.append(settings)
        return plugin_module.get_host().create("featurizer", "sliding-window", settings)

    register_plugin(SimpleNamespace(register_featurizers=hookimpl(lambda register: register("recording-window", recording_window))),
                    name="recording")
    result = run("--featurizer", "recording-window", "--max-seq-length", "200", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["settings"]["featurizer"] == "recording-window"
    assert [settings.max_seq_length for settings in built] == [200]
    text = run("--featurizer", "recording-window", "--max-seq-length", "200")
    assert text.exit_code == 0 and "), featurizer recording-window, max_seq_length 200" in text.output.splitlines()[0]


def test_unknown_or_offsetless_featurizer_is_a_user_error(qaframe_host, register_plugin):
    result = run("--featurizer", "sliding-windw")
    assert isinstance(result.exception, UserError) and "did you mean 'sliding-window'" in str(result.exception)
    origin = SimpleNamespace(register_featurizers=hookimpl(lambda register: register("origin-style", lambda examples, tokenizer, args: [])))
    register_plugin(origin, name="origin")
    result = run("--featurizer", "origin-style")
    assert isinstance(result.exception, UserError) and "featurizer 'origin-style' makes no offset mapping" in str(result.exception)


def test_bad_settings_are_user_errors(qaframe_host):
    result = run("--max-seq-length", "96", "--doc-stride", "60")
    assert isinstance(result.exception, UserError) and "--doc-stride 60 (the overlap" in str(result.exception)
    result = run("--max-seq-length", "7")  # the featurizer's check, as a run's, not a range of inspect's own
    assert isinstance(result.exception, UserError) and "--max-seq-length 7 leaves no room for context" in str(result.exception)
    result = run("--max-query-length", "0")
    assert isinstance(result.exception, UserError) and str(result.exception) == "--max-query-length must be at least 1, got 0"
    result = run("--corpus", "korqad")
    assert isinstance(result.exception, UserError) and "did you mean 'korquad'" in str(result.exception)


def test_console_script_exits_2_with_one_line_when_max_seq_length_exceeds_positions():
    script = Path(sys.executable).with_name("qaframe")
    done = subprocess.run([str(script), "inspect", "--max-seq-length", "512", "--model", "tiny"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("Error: --max-seq-length 512 exceeds the 300 positions of model")


def test_token_lengths_count_the_nfc_text_the_windows_hold(kcbert_tokenizer):
    import unicodedata

    from qaframe.commands.inspect import token_lengths

    text = "서울특별시의 인구는 약 940만 명이다"
    decomposed = unicodedata.normalize("NFD", text)
    assert token_lengths(kcbert_tokenizer, [decomposed]) == token_lengths(kcbert_tokenizer, [text])
    assert kcbert_tokenizer.unk_token_id not in kcbert_tokenizer(unicodedata.normalize("NFC", decomposed))["input_ids"]
