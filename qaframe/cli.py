"""The `qaframe` command line: a click group whose subcommands load lazily from qaframe.commands.

User errors (UserError, click usage errors) end in one line on stderr and exit code 2;
`--debug` (or QAFRAME_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

import click

from qaframe import __version__
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


def debug_enabled(argv: list[str] | None) -> bool:
    """Whether tracebacks were asked for (--debug in `argv`, sys.argv[1:] when None, or QAFRAME_DEBUG=1)."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or os.environ.get("QAFRAME_DEBUG", "") not in ("", "0")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qaframe")
# declared for parsing and --help only: `main` reads it with `debug_enabled`, outside click, where errors are caught
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn errors into one line and an exit code."""
    debug = debug_enabled(argv)
    try:
        result = cli.main(args=argv, prog_name="qaframe", standalone_mode=False)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as error:  # plain `qaframe`: the help, as --help prints it
        click.echo(error.ctx.get_help())
        sys.exit(0)
    except click.UsageError as error:
        where = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"Error: {one_line(error.format_message())}{where}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"Error: {one_line(error.format_message())}", err=True)
        sys.exit(error.exit_code)
    except UserError as error:
        if debug:
            raise
        click.echo(f"Error: {error}", err=True)
        sys.exit(UserError.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        message = one_line(f"{type(error).__name__}: {error}")
        click.echo(f"Internal error: {message}{raised_at(error)} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)  # --version and --help return their exit code


if __name__ == "__main__":
    main()
