"""The CLI skeleton: --help, --version, one-line user errors with exit 2, tracebacks only with --debug."""

from __future__ import annotations

import subprocess
import sys

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


@pytest.fixture
def with_failing_command(monkeypatch):
    monkeypatch.setitem(cli_module.COMMANDS, "failing", f"{__name__}:failing")


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


def test_debug_shows_the_traceback(with_failing_command, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["qaframe", "--debug", "failing", "--fail", "user"])
    with pytest.raises(UserError):
        cli_module.main(["--debug", "failing", "--fail", "user"])


def test_internal_error_is_one_line_without_debug(with_failing_command, capsys, monkeypatch):
    assert run_main(monkeypatch, ["failing", "--fail", "bug"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: a bug in qaframe" in err and "--debug" in err


def test_console_script_starts_without_heavy_imports():
    code = "import sys; from qaframe.cli import cli; import qaframe.commands.plugins; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
