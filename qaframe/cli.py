"""The `qaframe` command line: a click group whose subcommands load lazily from qaframe.commands, and what its
commands share: the path type, `qaframe run`'s options for the commands that take some of them, the --device check.

User errors (UserError, click usage errors) end in one line on stderr and exit code 2, bugs in one
`Internal error:` line and exit code 1, Ctrl-C in one `Interrupted` line and exit code 130.
`--debug` anywhere on the command line (or QAFRAME_DEBUG=1) shows the traceback instead, with the
same exit code, and, in the commands that load a saved model, transformers' progress bar, otherwise
off (`run` keeps it, with the hub's download bars).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from qaframe import __version__
from qaframe.config import RunConfig, flag, nlpbook_name
from qaframe.errors import UserError, one_line

# name -> "module:attribute"; a module is imported only when its command runs or --help lists it
COMMANDS = {
    "run": "qaframe.commands.run:run",
    "evaluate": "qaframe.commands.evaluate:evaluate",
    "predict": "qaframe.commands.predict:predict",
    "inspect": "qaframe.commands.inspect:inspect",
    "plugins": "qaframe.commands.plugins:plugins",
    "serve": "qaframe.commands.serve:serve",
}


class NonEmptyPath(click.Path):
    """The type of every path option of evaluate, predict, inspect and serve: a `Path`, refusing an empty value
    (which pathlib would read as the current folder) with a usage error naming the option."""

    def __init__(self, **kwargs):
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("must be a non-empty path", param, ctx)
        return super().convert(value, param, ctx)


CLICK_TYPES = {"int": click.INT, "float": click.FLOAT, "path": NonEmptyPath()}  # count: text, so 1 and 1.0 differ


def run_option(field, default=None):
    """The click option of RunConfig's `field`: its flag (booleans as --flag/--no-flag), type or choices and help text,
    and `default` (None: 'not given', as `qaframe run` reads its flags)."""
    meta = field.metadata
    help_text = meta["help"] + ("" if field.default is None else f" [default: {field.default}]")
    if meta["kind"] == "bool":
        name = flag(field.name)[2:]
        return click.option(f"--{name}/--no-{name}", field.name, default=default, help=help_text)
    kind = click.Choice(meta["choices"]) if meta["choices"] else CLICK_TYPES.get(meta["kind"], click.STRING)
    return click.option(flag(field.name), field.name, type=kind, default=default, help=help_text)


def run_options(*names: str):
    """Decorate a command with `qaframe run`'s options `names` (RunConfig's fields), in that order, at run's defaults."""
    fields = {field.name: field for field in RunConfig.options()}

    def decorate(command):
        for name in reversed(names):
            command = run_option(fields[name], fields[name].default)(command)
        return command

    return decorate


def check_device(device: str) -> None:
    """Refuse a device name torch does not know or a device this machine does not have, in one line."""
    import torch

    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a device name; use cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(chosen.type, False):
        raise UserError(f"--device {device}: no {chosen.type} device on this machine; use --device cpu")
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices (cuda:0 ...); pick one of them")


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is needed."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


def debug_enabled(args: list[str]) -> bool:
    """Whether tracebacks were asked for (--debug anywhere in `args`, or QAFRAME_DEBUG=1)."""
    return "--debug" in args or os.environ.get("QAFRAME_DEBUG", "") not in ("", "0")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qaframe")
# declared for --help only: `main` reads it with `debug_enabled` and takes it out of the arguments wherever it is,
# outside click, where errors are caught
@click.option("--debug", is_flag=True, expose_value=False, help="Show full tracebacks instead of one-line errors.")
def cli() -> None:
    """Fine-tune, evaluate and serve extractive question-answering models (Korean first)."""


def raised_at(error: BaseException) -> str:
    """` at <folder>/<file>:<line> in <function>`: where `error` was raised, which names the plugin (or library) to blame."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    path = Path(frame.filename)
    return f" at {path.parent.name}/{path.name}:{frame.lineno} in {frame.name}"


def usage_message(error: click.UsageError) -> str:
    """click's message; for an unknown option the Korean NLP book names (--batch-size), the command's option it means."""
    meant = nlpbook_name(error.option_name, as_flag=True) if isinstance(error, click.NoSuchOption) else None
    if meant and error.ctx and any(meant.split()[0] in param.opts for param in error.ctx.command.params):
        return f"{error.message} Did you mean '{meant}'?"
    return error.format_message()


# commands that load a saved model folder: nothing to download, so transformers' "Loading weights" bar is noise
LOADS_SAVED_MODEL = {"predict", "evaluate", "serve"}
def fail(line: str, exit_code: int, debug: bool) -> NoReturn:
    """Exit with `exit_code` after `line` on stderr, or under --debug after the traceback of the error being handled."""
    if debug:
        traceback.print_exc()
    else:
        click.echo(line, err=True)
    sys.exit(exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = debug_enabled(args)
    args = [arg for arg in args if arg != "--debug"]
    words = [arg for arg in args if not arg.startswith("-")]
    if not debug and words[:1] and words[0] in LOADS_SAVED_MODEL:  # read by transformers when imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        result = cli.main(args=args, prog_name="qaframe", standalone_mode=False)
    except click.Abort as error:  # Ctrl-C: click turns KeyboardInterrupt into Abort, after a newline ending the ^C echo
        kept = str(error.__cause__ or "")  # a KeyboardInterrupt's message says what the command kept
        click.echo(f"Interrupted: {kept}" if kept else "Interrupted.", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:  # plain `qaframe`: the help, as --help prints it
        click.echo(error.ctx.get_help())
        sys.exit(0)
    except click.UsageError as error:
        where = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"Error: {one_line(usage_message(error))}{where}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"Error: {one_line(error.format_message())}", err=True)
        sys.exit(error.exit_code)
    except UserError as error:
        fail(f"Error: {error}", UserError.exit_code, debug)
    except Exception as error:
        message = one_line(f"{type(error).__name__}: {error}")
        fail(f"Internal error: {message}{raised_at(error)} (rerun with --debug for the traceback)", 1, debug)
    sys.exit(result if isinstance(result, int) else 0)  # --version and --help return their exit code


if __name__ == "__main__":
    main()
