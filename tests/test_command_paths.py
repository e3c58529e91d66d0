"""The path options of evaluate, predict, inspect and serve: one type (`NonEmptyPath`), which refuses an empty value
(pathlib would read it as the current folder) with a one-line usage error naming the option, before anything loads."""

from __future__ import annotations

import sys

import click
import pytest

from qaframe import cli as cli_module
from qaframe.cli import NonEmptyPath

PATH_OPTIONS = {
    "evaluate": ["--model", "--output-dir", "--data-dir", "--train-file", "--dev-file", "--cache-dir"],
    "predict": ["--model", "--input", "--output"],
    "inspect": ["--data-dir", "--train-file", "--dev-file"],
    "run": ["--config", "--data-dir", "--train-file", "--dev-file", "--output-dir", "--cache-dir"],
    "serve": ["--model"],
}
# each command's required options, so that the empty path is the only mistake
REQUIRED = {
    "evaluate": {"--model": "model", "--corpus": "sample", "--output-dir": "out"},
    "predict": {"--model": "model", "--question": "언제?", "--context": "1978년에 창단되었다."},
    "inspect": {},
    "run": {},
    "serve": {"--model": "model"},
}


@pytest.mark.parametrize("command", sorted(PATH_OPTIONS))
def test_every_path_option_is_a_non_empty_path(command):
    options = cli_module.cli.get_command(None, command).params
    paths = [option.opts[0] for option in options if isinstance(option.type, click.Path)]
    assert paths == PATH_OPTIONS[command]
    assert all(isinstance(option.type, NonEmptyPath) for option in options if isinstance(option.type, click.Path))


@pytest.mark.parametrize("command, flag", [(command, flag) for command, flags in PATH_OPTIONS.items() for flag in flags])
@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_path_is_a_one_line_usage_error(capsys, monkeypatch, tmp_path, command, flag, empty):
    monkeypatch.chdir(tmp_path)
    argv = [command, *[part for option, value in {**REQUIRED[command], flag: empty}.items() for part in (option, value)]]
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err == f"Error: Invalid value for '{flag}': must be a non-empty path (see 'qaframe {command} --help')\n"
    assert list(tmp_path.iterdir()) == []  # nothing written in the current folder
