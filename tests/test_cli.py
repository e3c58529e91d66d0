"""The CLI skeleton: --help, --version, one-line user errors with exit 2, tracebacks only with --debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from qaframe import __version__, cli as cli_module
from qaframe.errors import UserError


@click.command()
@click.option("--fail", type=click.Choice(["user", "bug"]))
def failing(fail):
    """A command used only by these tests."""
    if fail == "user":
        raise UserError("file 'data.json' line 3: something the user can fix")
    raise RuntimeError("a bug in qaframe")


@click.command()
@click.option("--kept", default="", help="What the command kept, as its KeyboardInterrupt says.")
@click.option("--abort", is_flag=True)
def interrupted(kept, abort):
    """Stands for a command stopped by Ctrl-C in training: Lightning logs its notice, then the KeyboardInterrupt goes on."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    if abort:
        raise click.Abort()
    rank_zero_info("\nDetected KeyboardInterrupt, attempting graceful shutdown ...")
    raise KeyboardInterrupt(kept)


@pytest.fixture
def with_failing_command(monkeypatch):
    monkeypatch.setitem(cli_module.COMMANDS, "failing", f"{__name__}:failing")
    monkeypatch.setitem(cli_module.COMMANDS, "interrupted", f"{__name__}:interrupted")


def run_main(monkeypatch, argv):
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    return exit_info.value.code


def test_version_and_help(capsys, monkeypatch):
    assert run_main(monkeypatch, ["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert run_main(monkeypatch, ["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "evaluate", "predict", "inspect", "plugins", "serve"):
        assert command in out


def test_user_error_is_one_line_exit_2(with_failing_command, capsys, monkeypatch):
    assert run_main(monkeypatch, ["failing", "--fail", "user"]) == 2
    err = capsys.readouterr().err
    assert err == "Error: file 'data.json' line 3: something the user can fix\n"


def test_bad_flag_is_exit_2(with_failing_command, capsys, monkeypatch):
    assert run_main(monkeypatch, ["failing", "--fail", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: Invalid value for '--fail'")
    assert "(see 'qaframe failing --help')" in err


@pytest.mark.parametrize("fail, exit_code, last_line", [
    ("user", 2, "qaframe.errors.UserError: file 'data.json' line 3: something the user can fix"),  # still the user's error
    ("bug", 1, "RuntimeError: a bug in qaframe"),
])
@pytest.mark.parametrize("where", ["before", "after"], ids=["qaframe --debug failing", "qaframe failing --debug"])
def test_debug_shows_the_traceback_with_the_same_exit_code(with_failing_command, capsys, monkeypatch, fail, exit_code,
                                                           last_line, where):
    monkeypatch.delenv("QAFRAME_DEBUG", raising=False)
    argv = ["--debug", "failing", "--fail", fail] if where == "before" else ["failing", "--fail", fail, "--debug"]
    assert run_main(monkeypatch, argv) == exit_code
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.splitlines()[-1] == last_line


def test_the_internal_error_hint_reruns_as_it_says(with_failing_command, capsys, monkeypatch):
    monkeypatch.delenv("QAFRAME_DEBUG", raising=False)
    argv = ["failing", "--fail", "bug"]
    assert run_main(monkeypatch, argv) == 1
    assert capsys.readouterr().err.endswith(" (rerun with --debug for the traceback)\n")
    assert run_main(monkeypatch, [*argv, "--debug"]) == 1  # appended, as a user reruns it: not "No such option"
    assert capsys.readouterr().err.startswith("Traceback (most recent call last):")


def test_debug_is_read_from_the_argv_given(with_failing_command, monkeypatch):
    monkeypatch.delenv("QAFRAME_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest", "--debug"])  # main(argv) reads the argv it is given, not sys.argv
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["failing", "--fail", "user"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("argv, err", [
    (["interrupted"], "\nInterrupted.\n"),  # click's newline first, which ends the terminal's ^C echo
    (["interrupted", "--kept", "out/checkpoints/last.ckpt kept; continue with --resume last"],
     "\nInterrupted: out/checkpoints/last.ckpt kept; continue with --resume last\n"),
    (["interrupted", "--abort"], "Interrupted.\n"),
])
def test_ctrl_c_ends_in_one_interrupted_line_exit_130(with_failing_command, capsys, monkeypatch, argv, err):
    assert run_main(monkeypatch, argv) == 130
    assert capsys.readouterr().err == err


def test_internal_error_is_one_line_without_debug(with_failing_command, capsys, monkeypatch):
    assert run_main(monkeypatch, ["failing", "--fail", "bug"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: a bug in qaframe" in err and "--debug" in err
    line = next(number for number, text in enumerate(Path(__file__).read_text().splitlines(), 1) if "raise RuntimeError(" in text)
    assert f" at tests/test_cli.py:{line} in failing (rerun" in err  # where it was raised: whose code to blame


def test_console_script_starts_without_heavy_imports():
    code = "import sys; from qaframe.cli import cli; import qaframe.commands.plugins; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_no_arguments_prints_the_help_and_exits_0(capsys, monkeypatch):
    assert run_main(monkeypatch, []) == 0  # like `qaframe --help`, not a usage error
    plain = capsys.readouterr()
    assert run_main(monkeypatch, ["--help"]) == 0
    assert plain.out == capsys.readouterr().out and plain.err == ""
    assert plain.out.startswith("Usage: qaframe [OPTIONS] COMMAND") and plain.out.count("\n") > 10


def one_line_error(capsys) -> str:
    """The single stderr line of a failed command, checked to be one line."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: "), err
    return err


# no model is needed: each of these fails before one would be loaded
NO_MODEL = ["--model", "no-such-model-folder"]
ONE_QUESTION = ["--question", "언제?", "--context", "1978년에 창단되었다."]


@pytest.mark.parametrize("command", [["predict", *NO_MODEL, *ONE_QUESTION], ["evaluate", *NO_MODEL, "--corpus", "sample", "--output-dir", "out"]])
@pytest.mark.parametrize("device, message", [("foo", "--device foo: not a device name"), ("cuda:99", "--device cuda:99: ")])
def test_unknown_or_missing_device_is_one_line(capsys, monkeypatch, tmp_path, command, device, message):
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, [*command, "--device", device]) == 2
    assert message in one_line_error(capsys)


@pytest.fixture
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "언제?", "context": "1978년에 창단되었다."}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("parent", ["a_file", "a_file/sub"])
def test_predict_output_under_a_file_is_one_line_before_the_model_loads(capsys, monkeypatch, tmp_path, questions_file, parent):
    (tmp_path / "a_file").write_text("not a folder")
    output = tmp_path / parent / "answers.jsonl"
    assert run_main(monkeypatch, ["predict", *NO_MODEL, "--input", str(questions_file), "--output", str(output)]) == 2
    assert f"--output {output}: cannot write in {tmp_path / 'a_file'} (it is a file)" in one_line_error(capsys)


def test_predict_output_in_a_read_only_folder_is_one_line(capsys, monkeypatch, tmp_path, questions_file):
    from qaframe import io

    def read_only(*args, **kwargs):  # what a read-only folder answers (root writes into one, so it is simulated)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io.tempfile, "TemporaryFile", read_only)
    folder = tmp_path / "read-only"
    folder.mkdir()
    output = folder / "answers.jsonl"
    assert run_main(monkeypatch, ["predict", *NO_MODEL, "--input", str(questions_file), "--output", str(output)]) == 2
    assert f"--output {output}: cannot write in {folder} (Permission denied)" in one_line_error(capsys)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_model_dir):
    """The tiny model with random weights, saved with its tokenizer."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    folder = tmp_path_factory.mktemp("saved") / "model"
    AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tiny_model_dir)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def test_predict_output_write_failure_is_one_line(capsys, monkeypatch, tmp_path, questions_file, saved_model):
    from qaframe import io

    def full_disk(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", full_disk)
    output = tmp_path / "answers.jsonl"
    assert run_main(monkeypatch, ["predict", "--model", str(saved_model), "--input", str(questions_file), "--output", str(output)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar of the model's loading
    assert last == f"Error: cannot write {output}: No space left on device"


@pytest.mark.parametrize("line, message", [
    ('{"id": ' + "1" * 5000 + ', "question": "q", "context": "c"}', ":2: holds an integer of thousands of digits"),
    ("[" * 100_000, ":2: JSON nested too deeply"),
    ('{"question": "q\\ud800", "context": "c"}', ":2: 'question' is not valid Unicode (an unpaired surrogate"),
    ('{"question": "q", "context": "\\udc00c"}', ":2: 'context' is not valid Unicode (an unpaired surrogate"),
    ('{"id": "\\ud800", "question": "q", "context": "c"}', ":2: 'id' is not valid Unicode (an unpaired surrogate"),
    ('["q", "c"]', ":2: expected a JSON object with question and context, got list"),
    ('{"id": {"a": 1}, "question": "q", "context": "c"}', ":2: 'id' must be a string or an integer, got an object"),
    ('{"id": [1], "question": "q", "context": "c"}', ":2: 'id' must be a string or an integer, got an array"),
    ('{"id": NaN, "question": "q", "context": "c"}', ":2: 'id' must be a string or an integer, got NaN"),
    ('{"id": 1.5, "question": "q", "context": "c"}', ":2: 'id' must be a string or an integer, got 1.5"),
    ('{"id": true, "question": "q", "context": "c"}', ":2: 'id' must be a string or an integer, got true"),
])
def test_predict_unreadable_input_line_is_one_line(capsys, monkeypatch, questions_file, line, message):
    with open(questions_file, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    assert run_main(monkeypatch, ["predict", *NO_MODEL, "--input", str(questions_file)]) == 2
    assert f"Error: {questions_file}{message}" in one_line_error(capsys)


@pytest.mark.parametrize("flag", ["--question", "--context"])
@pytest.mark.parametrize("invisible", ["\u200b\u200b", "\ufeff", "\u2063\u2063", "\u00ad", " \u2063\n"])
def test_predict_argument_of_only_invisible_characters_is_one_line(capsys, monkeypatch, flag, invisible):
    argv = ["predict", *NO_MODEL, *ONE_QUESTION, flag, invisible]
    assert run_main(monkeypatch, argv) == 2
    assert f"Error: {flag} is empty (or only spaces and invisible characters)" in one_line_error(capsys)


@pytest.mark.parametrize("flag", ["--question", "--context"])
def test_predict_argument_that_is_not_unicode_is_one_line(capsys, monkeypatch, flag):
    undecodable = b"\xff\xfe?".decode("utf-8", "surrogateescape")  # what Python makes of a non-UTF-8 terminal's bytes
    argv = ["predict", *NO_MODEL, *ONE_QUESTION, flag, undecodable]
    assert run_main(monkeypatch, argv) == 2
    assert f"Error: {flag} is not valid Unicode (an unpaired surrogate" in one_line_error(capsys)


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_predict_output_that_is_the_input_is_refused_before_the_model_loads(capsys, monkeypatch, tmp_path, questions_file, spelling):
    before = questions_file.read_bytes()
    monkeypatch.chdir(tmp_path)
    output = {"same": questions_file, "relative": Path(questions_file.name), "symlink": tmp_path / "link.jsonl"}[spelling]
    if spelling == "symlink":
        output.symlink_to(questions_file)
    assert run_main(monkeypatch, ["predict", *NO_MODEL, "--input", str(questions_file), "--output", str(output)]) == 2
    assert f"Error: --output {output} is the --input file" in one_line_error(capsys)
    assert questions_file.read_bytes() == before


def test_predict_input_id_is_the_line_number_when_absent_or_null(capsys, monkeypatch, questions_file, saved_model):
    with open(questions_file, "a", encoding="utf-8") as out:
        out.write('{"id": null, "question": "언제?", "context": "1978년에 창단되었다."}\n{"id": 0, "question": "언제?", "context": "1978년"}\n')
        out.write('{"id": "q-7", "question": "언제?", "context": "1978년"}\n')
    assert run_main(monkeypatch, ["predict", "--model", str(saved_model), "--input", str(questions_file)]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["1", "2", "0", "q-7"]


# U+FFFD and other characters BERT's normalizer removes: no context token is left to answer with
def test_predict_context_without_tokens_is_one_line(capsys, monkeypatch, tmp_path, questions_file, saved_model):
    assert run_main(monkeypatch, ["predict", "--model", str(saved_model), "--question", "언제?", "--context", "\ufffd\ufffd", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines()[-1].startswith("Error: --context has no tokens the model knows")
    with open(questions_file, "a", encoding="utf-8") as out:
        out.write('{"question": "언제?", "context": "\ufffd"}\n')
    output = tmp_path / "answers.jsonl"
    assert run_main(monkeypatch, ["predict", "--model", str(saved_model), "--input", str(questions_file), "--output", str(output)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"Error: {questions_file}:2: 'context' has no tokens the model knows")
    assert not output.exists()


def test_predict_context_without_tokens_found_late_says_no_answers_were_written(capsys, monkeypatch, tmp_path, questions_file,
                                                                               saved_model):
    from qaframe.commands import predict

    monkeypatch.setattr(predict, "CHUNK", 1)  # line 2 is found bad after line 1 was answered
    with open(questions_file, "a", encoding="utf-8") as out:
        out.write('{"question": "언제?", "context": "\ufffd"}\n')
    output = tmp_path / "answers.jsonl"
    assert run_main(monkeypatch, ["predict", "--model", str(saved_model), "--input", str(questions_file), "--output", str(output)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"Error: {questions_file}:2: 'context' has no tokens the model knows")
    assert last.endswith("; no answers were written (they are written together at the end): fix or remove that line and run again")
    assert not output.exists()


@pytest.mark.parametrize("argv, message", [
    (["run", "--batch-size", "32"], "No such option '--batch-size'. Did you mean '--train-batch-size'?"),  # not eval's
    (["run", "--pretrained-model-name", "x"], "No such option '--pretrained-model-name'. Did you mean '--model'?"),
    (["run", "--fp16"], "No such option '--fp16'. Did you mean '--precision 16-mixed'?"),
    (["evaluate", "--epochs", "3"], "No such option '--epochs'. (see"),  # evaluate has no --max-epochs to name
])
def test_an_option_named_as_in_the_korean_nlp_book_names_qaframes(capsys, monkeypatch, argv, message):
    assert run_main(monkeypatch, argv) == 2
    assert one_line_error(capsys).startswith(f"Error: {message}")


@pytest.mark.parametrize("command, names", [
    ("evaluate", ["data_dir", "train_file", "dev_file", "strict"]),
    ("inspect", ["corpus", "model", "data_dir", "train_file", "dev_file", "featurizer", "max_seq_length", "doc_stride",
                 "max_query_length", "strict"]),
])
def test_options_shared_with_run_are_runs(command, names):
    """The same flags, value types and help as `qaframe run`'s options, and run's defaults."""
    from qaframe.config import RunConfig

    def described(param):
        return param.opts, param.secondary_opts, param.type.name, param.help

    run_params = {param.name: param for param in cli_module.cli.get_command(None, "run").params}
    params = {param.name: param for param in cli_module.cli.get_command(None, command).params}
    defaults = {field.name: field.default for field in RunConfig.options()}
    for name in names:
        assert described(params[name]) == described(run_params[name]), name
        assert params[name].default == defaults[name], name


@pytest.mark.parametrize("debug", [False, True])
def test_transformers_progress_bars_show_only_with_debug(saved_model, debug):
    """transformers 5 drew a "Loading weights" bar on stderr at each model load; predict, evaluate and serve hide it."""
    env = {name: value for name, value in os.environ.items() if name != "HF_HUB_DISABLE_PROGRESS_BARS"}
    script = Path(sys.executable).with_name("qaframe")
    argv = [str(script), *(["--debug"] if debug else []), "predict", "--model", str(saved_model), *ONE_QUESTION]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("Loading weights" in done.stderr) == debug
