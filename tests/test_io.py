"""qaframe.io: atomic writes replace the target in one step (the file a symbolic link names; a FIFO is written in
place), several files as a set, and leave ordinary file permissions."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from qaframe import io
from qaframe.errors import UserError


def test_write_json_replaces_and_uses_the_umask(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    io.write_json(target, {"f1": 1.0})
    io.write_json(target, {"f1": 2.0, "말": "값"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"f1": 2.0, "말": "값"}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_a_write_that_fails_half_way_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "predictions.json"
    io.write_text(target, "old")
    write_text = Path.write_text

    def half_then_a_full_disk(path, data, *args, **kwargs):
        write_text(path, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_a_full_disk)
    with pytest.raises(UserError) as info:
        io.write_text(target, "new " * 1000)
    monkeypatch.undo()
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]


def test_a_folder_whose_name_cannot_be_looked_up_is_one_user_error(tmp_path):
    folder = tmp_path / ("a" * 300) / "out"  # longer than a file name may be: stat fails, not with "not found"
    with pytest.raises(UserError) as info:
        io.check_writable_folder(folder, f"--output-dir {folder}")
    assert str(info.value) == (f"--output-dir {folder}: cannot write in {folder} (File name too long); choose a writable folder")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_under_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"cannot write in .*afile \(it is a file\)"):
        io.check_writable_folder(tmp_path / "afile" / "sub" / "out", "--output-dir")


def test_read_text_drops_a_bom_and_refuses_what_is_not_utf8_in_one_line(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_bytes(b"\xef\xbb\xbf{}")
    assert io.read_text(path) == "{}"
    path.write_bytes("{}".encode("utf-16"))
    with pytest.raises(UserError) as info:
        io.read_text(path)
    assert str(info.value) == f"{path}: not UTF-8 text (byte 0); save it as UTF-8"
    with pytest.raises(UserError) as info:
        io.read_text(tmp_path / "absent.json", "download it first")
    assert str(info.value) == f"{tmp_path / 'absent.json'}: no such file; download it first"


def test_predict_input_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, capsys):
    from qaframe.cli import main

    path = tmp_path / "questions.jsonl"
    path.write_bytes('{"question": "높이는?", "context": "한라산"}'.encode("cp949"))
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--model", str(tmp_path), "--input", str(path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"Error: {path}: not UTF-8 text (byte ") and err.rstrip().endswith("; save it as UTF-8")


def test_a_symlink_is_written_through_to_its_file_atomically(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "answers.jsonl"
    target.write_text("old")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    io.write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    dangling = tmp_path / "dangling.jsonl"  # the file it names is made
    dangling.symlink_to(tmp_path / "data" / "made.jsonl")
    io.write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "data" / "made.jsonl").read_text() == "made"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["answers.jsonl", "dangling.jsonl", "data", "link.jsonl", "made.jsonl"]


def test_a_fifo_is_written_in_place_not_replaced(tmp_path):
    fifo = tmp_path / "answers"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)  # stuck, were the FIFO replaced
    reader.start()
    io.write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["answers"]


def test_files_written_as_a_set_replace_none_when_one_fails(tmp_path, monkeypatch):
    targets = [tmp_path / name for name in ("a.json", "b.json", "c.json")]
    for target in targets:
        target.write_text("old")
    write_text = Path.write_text

    def full_at_b(path, data, *args, **kwargs):
        if path.name.startswith(".b.json."):
            raise OSError(28, "No space left on device")
        return write_text(path, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_at_b)
    with pytest.raises(UserError) as info:
        io.write_texts({target: "new" for target in targets})
    monkeypatch.undo()
    assert str(info.value) == f"cannot write {targets[1]}: No space left on device"
    assert [target.read_text() for target in targets] == ["old", "old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "c.json"]
    io.write_texts({target: "new" for target in targets})
    assert [target.read_text() for target in targets] == ["new", "new", "new"]


def test_a_set_stopped_between_its_replacements_leaves_no_marker_beside_new_files(tmp_path, monkeypatch):
    targets = [tmp_path / name for name in ("predictions.json", "nbest.json", "metrics.json")]
    for target in targets:
        target.write_text("old")
    replace = os.replace

    def fail_the_second(source, destination):
        if Path(destination).name == "nbest.json":
            raise OSError(5, "Input/output error")
        replace(source, destination)

    monkeypatch.setattr(os, "replace", fail_the_second)
    with pytest.raises(UserError):
        io.write_texts({target: "new" for target in targets})
    assert targets[0].read_text() == "new" and targets[1].read_text() == "old"
    assert not targets[2].exists()  # the last file marks a complete set: gone, so the mix does not pass for one
