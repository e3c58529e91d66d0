"""qaframe.io: atomic writes replace the target in one step and leave ordinary file permissions."""

from __future__ import annotations

import json
import os

import pytest

from qaframe import io


def test_write_json_replaces_and_uses_the_umask(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    io.write_json(target, {"f1": 1.0})
    io.write_json(target, {"f1": 2.0, "말": "값"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"f1": 2.0, "말": "값"}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "predictions.json"
    io.write_text(target, "old")
    with pytest.raises(TypeError):
        io.write_json(target, {"not serializable": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]
