"""Files: UTF-8 reads, atomic writes (temporary file in the same folder, fsync, rename), JSON parsing, the cache folder.

A text file that cannot be read (missing, not UTF-8) or folder that cannot be written (read-only,
a file where a folder should be, a full disk) is a UserError naming the path, and so is JSON that
cannot be parsed. Nothing is
ever left half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from qaframe.errors import UserError


def cache_root() -> Path:
    """qaframe's cache folder (features, downloaded KorQuAD): $QAFRAME_CACHE_DIR, else $XDG_CACHE_HOME/qaframe, else ~/.cache/qaframe."""
    if os.environ.get("QAFRAME_CACHE_DIR"):
        return Path(os.environ["QAFRAME_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qaframe"


def read_text(path: str | Path, missing_hint: str = "") -> str:
    """A file's UTF-8 text (a BOM dropped); UserError naming the file when it cannot be read (`missing_hint`: what to do
    when it does not exist)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise UserError(f"{path}: no such file" + (f"; {missing_hint}" if missing_hint else "")) from error
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from error
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror or error}") from error


def parse_json(text: str, where: str | Path, hint: str, *, line: int | None = None) -> Any:
    """Parse JSON text; when it cannot be read, a UserError naming `where` (line and column where known), what is wrong and `hint`.

    `line` is the text's line number in `where` when the text is one line of a JSON-lines file.
    """
    place = f"{where}:{line}" if line else f"{where}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}:{line or error.lineno}:{error.colno}: malformed JSON: {error.msg}; {hint}") from error
    except ValueError:  # the one other ValueError of json.loads: an integer too long to convert
        raise UserError(f"{place}: holds an integer of thousands of digits (too long to read); {hint}") from None
    except RecursionError:
        raise UserError(f"{place}: JSON nested too deeply to read; {hint}") from None


def check_writable_folder(folder: str | Path, label: str) -> None:
    """UserError starting with `label` (the option and its value) unless files can be made in `folder` (or,
    where it does not exist yet, in the nearest folder above it, where it would be created); nothing is created."""
    folder = Path(folder)
    for existing in (folder.absolute(), *folder.absolute().parents):
        try:
            existing.stat()
            break
        except (FileNotFoundError, NotADirectoryError):  # not there (yet): where would it be created?
            continue
        except OSError as error:  # a name too long, a folder above that may not be looked into
            raise UserError(f"{label}: cannot write in {existing} ({error.strerror or error}); choose a writable folder") from None
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "it is a file")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise UserError(f"{label}: cannot write in {existing} ({error.strerror or error}); choose a writable folder") from None


def share(path: str | Path) -> None:
    """Give a file the usual permissions of a new file (0o666 less the umask): outputs are meant to be read by others."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    share(temporary)  # mkstemp makes it private
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    """Write UTF-8 text atomically; UserError naming the file when it cannot be written."""
    try:
        with atomic_path(target) as temporary:
            temporary.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {target}: {error.strerror or error}") from None


def write_json(target: str | Path, data: Any) -> None:
    """Write JSON atomically, UTF-8, human-readable (Korean kept as is)."""
    write_text(target, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
