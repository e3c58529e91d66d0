"""Checkpoints are written atomically (runner.CheckpointFiles): one that cannot be written (a full disk, a read-only
folder) leaves no partial file and stops the run in one line saying how to continue, which then works."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from qaframe import io
from qaframe.cli import main
from qaframe.errors import UserError
from qaframe.runner import CheckpointFiles

SMOKE = ["run", "--corpus", "sample", "--model", "tiny", "--accelerator", "cpu", "--max-steps", "2", "--limit-train-batches", "2",
         "--limit-val-batches", "1", "--train-batch-size", "4", "--max-seq-length", "64", "--doc-stride", "16",
         "--max-query-length", "16"]


@pytest.fixture(autouse=True)
def isolated_host(qaframe_host):
    """In-process commands use a fresh built-ins-only plugin host, never the cached process-wide one."""
    return qaframe_host


def full_disk_at(monkeypatch, name: str) -> None:
    """Writing the checkpoint `name` fills the disk half-way through."""
    write_bytes = Path.write_bytes

    def half_then_full(path, data):
        if path.name.startswith(f".{name}."):
            write_bytes(path, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", half_then_full)


def test_a_checkpoint_is_written_atomically_and_loads_weights_only(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    files = CheckpointFiles()
    files.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 1}, path)
    full_disk_at(monkeypatch, "last.ckpt")
    with pytest.raises(UserError) as info:
        files.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "global_step": 2}, path)
    assert str(info.value) == (f"cannot write checkpoint {path}: No space left on device; once files can be written there "
                               "(free space, permissions), continue with --resume last")
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no partial file
    loaded = files.load_checkpoint(path, weights_only=True)
    assert loaded["global_step"] == 1 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_a_checkpoint_folder_that_cannot_be_written_is_a_user_error_not_a_skipped_save(tmp_path, monkeypatch):
    """Lightning's own writer skips a checkpoint it may not write, silently; root cannot be refused, so mkstemp is."""

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(io.tempfile, "mkstemp", read_only)
    path = tmp_path / "checkpoints" / "best-epoch0-f10.50.ckpt"
    with pytest.raises(UserError, match=f"cannot write checkpoint {path}: Permission denied; .* run the same command again$"):
        CheckpointFiles().save_checkpoint({"global_step": 1}, path)


def test_a_disk_full_at_a_checkpoint_stops_the_run_in_one_line_and_its_advice_continues_it(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    command = [*SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache")]
    with monkeypatch.context() as patch:
        full_disk_at(patch, "last.ckpt")
        with pytest.raises(SystemExit) as exited:
            main(command)
    err = capsys.readouterr().err
    [best] = (out / "checkpoints").iterdir()  # the best, written in full before last.ckpt; nothing partial
    assert exited.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == (f"Error: cannot write checkpoint {out / 'checkpoints' / 'last.ckpt'}: No space left on "
                                    f"device; once files can be written there (free space, permissions), continue with "
                                    f"--resume {best}")
    assert not (out / "metrics.json").exists()
    with pytest.raises(SystemExit) as exited:
        main([*command, "--resume", str(best)])
    assert exited.value.code == 0, capsys.readouterr().err[-2000:]
    assert (out / "metrics.json").exists() and (out / "model").is_dir()
