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
