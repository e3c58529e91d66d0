"""qaframe.io: atomic writes replace the target in one step and leave ordinary file permissions."""

from __future__ import annotations

import json
import os
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
