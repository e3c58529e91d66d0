"""Files: UTF-8 reads, atomic writes (temporary file in the same folder, fsync, rename), JSON parsing, the cache folder.

A text file that cannot be read (missing, not UTF-8) or folder that cannot be written (read-only,
a file where a folder should be, a full disk) is a UserError naming the path, and so is JSON that
cannot be parsed. Nothing is ever left half-written: a symbolic link is written through (its file
replaced atomically), a FIFO or device written in place, and several files can be replaced as a set.
"""

from __future__ import annotations

import json
import os
import stat
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


def written_in_place(target: Path) -> bool:
    """Whether `target` is an existing FIFO, device or socket (a symbolic link followed): written directly, since a
    rename would replace it with a plain file."""
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextmanager
def atomic_paths(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield, for each of `targets`, the path to write its new content at; they replace the targets when the block succeeds.

    For a file (or a name not there yet) that is a temporary file beside it, beside the file a
    symbolic link names (the link stays). Once the block has written them all, each is synced to
    disk, and only then do they replace their targets, in the order given: an error before that
    leaves every target as it was. Of several, the last marks a complete set: its earlier file is
    removed before the first replacement, so a stop between replacements never leaves an old
    marker beside new files. An existing FIFO or device is yielded itself, written in place.
    """
    paths, staged = [], []
    try:
        for target in map(Path, targets):
            if written_in_place(target):
                paths.append(target)
                continue
            real = Path(os.path.realpath(target))
            real.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
            os.close(handle)
            staged.append((Path(name), real))
            paths.append(Path(name))
            share(name)  # mkstemp makes it private
        yield paths
        for temporary, _ in staged:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
        if len(staged) > 1:
            staged[-1][1].unlink(missing_ok=True)
        for temporary, real in staged:
            os.replace(temporary, real)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """`atomic_paths` for one target: yields its one path."""
    with atomic_paths(target) as [path]:
        yield path


def write_texts(texts: dict[str | Path, str]) -> None:
    """Write UTF-8 files (target: text) as one set through `atomic_paths`: none is replaced unless all were written;
    UserError naming the file being written (once all are, every file) when one cannot be."""
    failed = list(texts)
    try:
        with atomic_paths(*texts) as paths:
            for (target, text), path in zip(texts.items(), paths):
                failed = [target]
                path.write_text(text, encoding="utf-8")
            failed = list(texts)
    except OSError as error:
        raise UserError(f"cannot write {', '.join(map(str, failed))}: {error.strerror or error}") from None


def write_text(target: str | Path, text: str) -> None:
    """Write UTF-8 text atomically; UserError naming the file when it cannot be written."""
    write_texts({target: text})


def json_text(data: Any) -> str:
    """JSON as qaframe writes it: human-readable, Korean kept as is."""
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def write_json(target: str | Path, data: Any) -> None:
    """Write JSON (`json_text`) atomically."""
    write_text(target, json_text(data))
