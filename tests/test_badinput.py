"""The bad-input suite: every malformed corpus file in tests/badinput/ through the real CLI.

tests/badinput/cases.json lists each file with its corpus and expected outcome: `error` (exit 2
and exactly one line on stderr holding the given substrings: the file, and the record where
there is one), or `skip` / `repair` / `load` (exit 0 with exactly these counts and first ids in
`inspect`'s report, and every label decoding to its gold text unless `label_round_trip_pct` says
otherwise; `run` and `evaluate` report them in one line per split). Files named
`<like_this>` are generated at test time (large, or not a file at all). docs/data-validation.md
documents the same behaviour for users.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qaframe.cli import main

BADINPUT = Path(__file__).parent / "badinput"
CASES = json.loads((BADINPUT / "cases.json").read_text(encoding="utf-8"))
CONTEXT = "한빛 교향악단은 1978년에 창단되었다. 창단 연주회에서는 베토벤의 교향곡 제5번을 연주하였다."
WINDOWS = ["--max-seq-length", "128", "--doc-stride", "32", "--max-query-length", "32"]
TINY_RUN = ["--accelerator", "cpu", "--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16",
            "--max-epochs", "1", "--max-steps", "1", "--train-batch-size", "4", "--limit-val-batches", "1", "--seed", "1"]
OUTPUTS = ("metrics.json", "predictions.json", "nbest_predictions.json", "model")


@pytest.fixture(autouse=True)
def isolated_host(qaframe_host):
    """In-process commands use a fresh built-ins-only plugin host, never the cached process-wide one."""
    return qaframe_host


def squad(context: str, question: str, answer: str) -> dict:
    """A one-record SQuAD document."""
    record = {"id": "big-1", "question": question, "answers": [{"text": answer, "answer_start": context.rindex(answer)}]}
    return {"version": "1.1", "data": [{"title": "큰 문서", "paragraphs": [{"context": context, "qas": [record]}]}]}


def generate(name: str, folder: Path) -> Path:
    """The file of a `<generated>` case, written into `folder` (or deliberately not written)."""
    if name == "<deeply_nested>":
        path = folder / "deeply_nested.json"
        path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    elif name == "<directory>":
        path = folder / "a_directory.json"
        path.mkdir()
    elif name == "<missing>":
        path = folder / "missing.json"
    elif name == "<long_context>":
        path = folder / "long_context.json"
        filler = "이 문단은 길이를 채우기 위한 문장이며 질문과는 관계가 없다. "
        context = (filler * (200_000 // len(filler) + 1))[: 200_000 - len(CONTEXT)] + CONTEXT
        assert len(context) == 200_000
        path.write_text(json.dumps(squad(context, "한빛 교향악단은 언제 창단되었나?", "1978년"), ensure_ascii=False), encoding="utf-8")
    elif name == "<long_question>":
        path = folder / "long_question.json"
        question = ("한빛 교향악단이 창단된 해는 언제인가? " * 500)[:10_000]
        assert len(question) == 10_000
        path.write_text(json.dumps(squad(CONTEXT, question, "1978년"), ensure_ascii=False), encoding="utf-8")
    else:
        raise KeyError(f"no generator for {name}")
    return path


@pytest.fixture(autouse=True)
def no_stale_transformers_handler():
    """transformers binds its log handler to the sys.stderr of its first import, which may be an earlier test's capture."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_default_handler()
    yield
    hf_logging.enable_default_handler()


def case_file(case: dict, folder: Path) -> Path:
    """The path a case hands to the CLI."""
    return generate(case["file"], folder) if case["file"].startswith("<") else BADINPUT / case["file"]


def case_id(case: dict) -> str:
    """A readable pytest id: the file, and the extra flags."""
    return " ".join([case["file"].strip("<>"), *case.get("args", [])])


def qaframe(capsys, *args) -> tuple[int, str, str]:
    """Run the real CLI entry point in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def command_line(case: dict, path: Path, folder: Path) -> list[str]:
    """The `inspect` (or `run`) command line of a case; both splits read the same file."""
    files = ["--corpus", case.get("corpus", "squad-json"), "--train-file", path, "--dev-file", path, *case.get("args", [])]
    if case.get("command", "inspect") == "run":
        return ["run", *files, "--output-dir", folder / "out", "--cache-dir", folder / "cache", *TINY_RUN]
    return ["inspect", *files, *WINDOWS, "--json"]


def assert_one_line_error(code: int, err: str, expected: list[str]) -> str:
    """Exit 2, exactly one line on stderr, starting `Error: ` and holding every expected substring."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    for part in expected:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def test_the_table_lists_every_committed_file_and_the_issue_cases():
    committed = {p.name for p in BADINPUT.iterdir() if p.suffix == ".json" and p.name != "cases.json"}
    listed = {c["file"] for c in CASES}
    assert committed <= listed and {f for f in listed if not f.startswith("<")} <= committed
    assert len(listed) >= 25 and {c["outcome"] for c in CASES} == {"error", "skip", "repair", "load"}
    for required in ("<long_context>", "<long_question>", "<directory>", "korquad2.json", "bom.json", "crlf.json",
                     "zero_width_space.json", "direction_mark.json", "duplicate_ids.json", "empty_data.json", "cp949.json"):
        assert required in listed
    # the bytes that make these cases must survive checkouts (tests/badinput/.gitattributes: -text)
    assert (BADINPUT / "bom.json").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in (BADINPUT / "crlf.json").read_bytes() and "\\r\\n" in (BADINPUT / "crlf.json").read_text(encoding="utf-8")
    assert "\u200e" in (BADINPUT / "direction_mark.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bad_input_case(case, tmp_path, capsys):
    path = case_file(case, tmp_path)
    code, out, err = qaframe(capsys, *command_line(case, path, tmp_path))
    if case["outcome"] == "error":
        assert_one_line_error(code, err, case["message"])
        for name in OUTPUTS:
            assert not (tmp_path / "out" / name).exists()
        return
    assert code == 0 and "Traceback" not in err, err
    report = json.loads(out)["splits"]
    assert set(report) == {"train", "dev"}
    for split in report.values():
        assert split["examples"] == case["examples"]
        assert split["repaired"] == case.get("repaired", 0) and split["repaired_ids"] == case.get("repaired_ids", [])
        expected = case.get("skipped", [])
        assert split["skipped"] == len(expected)
        for (record, reason), shown in zip(expected, split["skipped_ids"]):
            assert shown.startswith(f"{record} (") and reason in shown, shown
        assert split["windows"] >= case.get("windows_at_least", 1)
        if "windows" in case:  # exactly so many (a long question cut to --max-query-length: one window)
            assert split["windows"] == case["windows"]
        assert split["question_tokens"]["max"] >= case.get("question_tokens_at_least", 1)  # counted before any cut
        if case["outcome"] != "skip":  # repaired or clean records keep labels that decode to the gold text, unless the case says
            assert split["label_round_trip_pct"] == case.get("label_round_trip_pct", 100.0)


@pytest.mark.parametrize("name", ["invalid_json.json", "empty_data.json", "korquad2.json"])
def test_errors_through_run_leave_no_outputs(name, tmp_path, capsys):
    case = next(c for c in CASES if c["file"] == name and not c.get("args"))
    code, _, err = qaframe(capsys, *command_line({**case, "command": "run"}, BADINPUT / name, tmp_path))
    assert_one_line_error(code, err, case["message"])
    assert not (tmp_path / "out").exists()  # corpora load before anything is written


def test_strict_run_names_the_record_and_leaves_no_outputs(tmp_path, capsys):
    case = {"file": "duplicate_ids.json", "command": "run", "args": ["--strict"]}
    code, _, err = qaframe(capsys, *command_line(case, BADINPUT / "duplicate_ids.json", tmp_path))
    assert_one_line_error(code, err, ["duplicate_ids.json: record dup-1: duplicate id", "--strict"])
    assert not (tmp_path / "out").exists()


def test_a_run_on_a_file_with_skipped_records_reports_the_counts(tmp_path, capsys):
    code, _, err = qaframe(capsys, *command_line({"file": "duplicate_ids.json", "command": "run"}, BADINPUT / "duplicate_ids.json", tmp_path))
    assert code == 0, err
    for split in ("train", "dev"):
        [line] = [line for line in err.splitlines() if line.startswith(f"{split}") and "skipped" in line]
        assert "skipped 1 " in line and "dup-1" in line and "duplicate id" in line, line
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["examples"] == 1
    assert list(json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))) == ["dup-1"]


def reports(err: str) -> list[str]:
    """The lines of stderr that report repairs or skips."""
    return [line for line in err.splitlines() if "repaired" in line or "skipped" in line]


def test_run_and_evaluate_report_repairs_and_skips_once_per_split(tmp_path):
    document = json.loads((BADINPUT / "answer_start_wrong.json").read_text(encoding="utf-8"))
    document["data"][0]["paragraphs"][0]["qas"].append({"id": "gone", "question": "없는 답?", "answers": [{"text": "부산", "answer_start": 0}]})
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    def installed(*args) -> str:  # in a process of its own: pytest's log capture would hide a logged report
        result = subprocess.run([sys.executable, "-m", "qaframe.cli", *map(str, args)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stderr

    err = installed(*command_line({"command": "run"}, path, tmp_path))
    assert [line[: line.index(" ")].rstrip(":") for line in reports(err)] == ["train", "dev"], err  # the runner's line, not the corpus's too
    files = ["--corpus", "squad-json", "--dev-file", path, "--cache-dir", tmp_path / "cache"]
    err = installed("evaluate", "--model", tmp_path / "out" / "model", *files, "--output-dir", tmp_path / "eval")
    [line] = reports(err)  # evaluate still shows the dev split's counts, once
    assert line.startswith(f"dev ({path})") and "repaired 1 " in line and "skipped 1 " in line, line
    assert "moved-start" in line and "gone (" in line, line  # the ids of each kind, and the reason for a skip


@pytest.mark.parametrize("name, expected", [
    ("invalid_json.json", None),
    ("duplicate_ids.json", "1: dup-1 (duplicate id)"),
])
def test_the_installed_command_never_shows_a_traceback(name, expected, tmp_path):
    path = BADINPUT / name
    command = [sys.executable, "-m", "qaframe.cli", "inspect", "--corpus", "squad-json", "--dev-file", str(path), *WINDOWS]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr
    if expected is None:
        assert_one_line_error(result.returncode, result.stderr, ["invalid_json.json:3:", "malformed JSON"])
    else:
        assert result.returncode == 0 and "answers/records skipped" in result.stdout and expected in result.stdout


@pytest.mark.parametrize("text, location, problem", [
    ('{"data": [1,]}', ":1:13", "malformed JSON: Expecting value"),
    ('{"data": ' + "1" * 5000 + "}", "", "holds an integer of thousands of digits (too long to read)"),
    ("[" * 100_000 + "]" * 100_000, "", "JSON nested too deeply to read"),
], ids=["syntax", "long-integer", "deep"])
def test_every_reader_reports_unreadable_json_alike(tmp_path, text, location, problem):
    from qaframe.commands.predict import read_questions
    from qaframe.errors import UserError
    from qaframe_klue_mrc import read_records
    from qaframe_plugins.corpora import read_json

    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    messages = []
    for read in (read_json, read_questions, lambda p: list(read_records(p))):
        with pytest.raises(UserError) as caught:
            read(path)
        messages.append(str(caught.value))
    for message in messages:  # the file (and line and column where known), then the problem, then what to do
        assert message.startswith(f"{path}") and "\n" not in message and "; " in message, message
    # a whole file (squad-json) and a file read line by line (predict; klue-mrc unless it is an array) name the same problem
    assert {message.split(": ", 1)[1].split("; ")[0] for message in messages} == {problem}, messages
    assert messages[0].startswith(f"{path}{location}: ")
