"""Atomic outputs: a write that fails or is killed half-way never leaves a cache entry, metrics.json or predictions.json that looks complete.

Damaged and altered cache entries (checksum) are covered in tests/test_feature_cache.py; here
the writers themselves are interrupted: by an exception, and by SIGKILL in a real process
half-way through writing the temporary file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from qaframe import io
from qaframe.cli import main
from qaframe.errors import UserError
from qaframe.features import cache_path, load_or_build
from qaframe.types import Answer, CorpusSplit, FeaturizerSettings, QAExample
from qaframe_plugins.featurizers import SlidingWindowFeaturizer

MINI = Path(__file__).parent / "fixtures"
TINY_RUN = ["run", "--corpus", "squad-json", "--train-file", str(MINI / "korquad_mini_train.json"),
            "--dev-file", str(MINI / "korquad_mini_dev.json"), "--model", "tiny", "--accelerator", "cpu",
            "--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16", "--max-epochs", "1",
            "--max-steps", "1", "--train-batch-size", "4", "--limit-val-batches", "1", "--seed", "5"]
OUTPUTS = ("predictions.json", "nbest_predictions.json", "metrics.json")
CONTEXT = "한빛 교향악단은 1978년에 창단되었다. 창단 연주회에서는 베토벤의 교향곡 제5번을 연주하였다."


@pytest.fixture(autouse=True)
def isolated_host(qaframe_host):
    """In-process commands use a fresh built-ins-only plugin host, never the cached process-wide one."""
    return qaframe_host
# runs the CLI with Path.write_text (what qaframe.io writes through) killing the process with SIGKILL
# after half of the temporary file of the output named in argv[1] is on disk
KILLED_WRITER = """
import os, pathlib, signal, sys
original, killed_at = pathlib.Path.write_text, sys.argv[1]
def write_text(self, data, *args, **kwargs):
    if self.name.startswith("." + killed_at + "."):
        with open(self, "w", encoding="utf-8") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, data, *args, **kwargs)
pathlib.Path.write_text = write_text
from qaframe.cli import main
sys.argv = ["qaframe", *sys.argv[2:]]
main()
"""
# builds a cache entry and is killed by SIGKILL half-way through np.savez
KILLED_CACHE_WRITER = """
import os, signal, sys
import numpy as np
from transformers import AutoTokenizer
from qaframe import features
from qaframe.types import Answer, CorpusSplit, FeaturizerSettings, QAExample
from qaframe_plugins.featurizers import SlidingWindowFeaturizer
from qaframe_plugins.models import TINY_FOLDER
def savez(handle, **arrays):
    handle.write(b"PK\\x03\\x04" + bytes(1000))
    handle.flush()
    os.fsync(handle.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
features.np.savez = savez
context = sys.argv[2]
split = CorpusSplit([QAExample("a", "", "언제?", context, (Answer("1978년", context.index("1978년")),))])
features.load_or_build(SlidingWindowFeaturizer(FeaturizerSettings(48, 12, 16)), AutoTokenizer.from_pretrained(TINY_FOLDER), split, sys.argv[1])
"""


def split() -> CorpusSplit:
    """One example; the same as KILLED_CACHE_WRITER's."""
    return CorpusSplit([QAExample("a", "", "언제?", CONTEXT, (Answer("1978년", CONTEXT.index("1978년")),))])


def assert_complete_or_absent(folder: Path) -> set[str]:
    """Every output JSON in `folder` parses fully; returns the names that exist."""
    present = set()
    for name in OUTPUTS:
        if (folder / name).exists():
            json.loads((folder / name).read_text(encoding="utf-8"))
            present.add(name)
    return present


def test_write_json_that_fails_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"f1": 1.0})

    def fail(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", fail)
    with pytest.raises(UserError, match=f"cannot write {target}: No space left on device"):
        io.write_json(target, {"f1": 2.0, "big": "x" * 100_000})
    assert json.loads(target.read_text(encoding="utf-8")) == {"f1": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_cache_write_leaves_no_entry(kcbert_tokenizer, tmp_path, monkeypatch):
    from qaframe import features

    featurizer = SlidingWindowFeaturizer(FeaturizerSettings(48, 12, 16))

    def savez(handle, **arrays):
        handle.write(b"PK\x03\x04" + bytes(1000))
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(features.np, "savez", savez)
        with pytest.raises(UserError, match="cannot write the feature cache file .*No space left"):
            load_or_build(featurizer, kcbert_tokenizer, split(), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not load_or_build(featurizer, kcbert_tokenizer, split(), tmp_path)[1]
    assert load_or_build(featurizer, kcbert_tokenizer, split(), tmp_path)[1]


def test_a_cache_writer_killed_mid_write_leaves_no_entry(kcbert_tokenizer, tmp_path, caplog):
    result = subprocess.run([sys.executable, "-c", KILLED_CACHE_WRITER, str(tmp_path), CONTEXT], capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode(errors="replace")[-2000:]
    featurizer = SlidingWindowFeaturizer(FeaturizerSettings(48, 12, 16))
    entry = cache_path(featurizer, kcbert_tokenizer, split().examples, tmp_path)
    [leftover] = tmp_path.iterdir()  # the killed writer's hidden temporary file, never the entry itself
    assert leftover.name.startswith(f".{entry.name}.") and leftover.suffix == ".tmp"
    _, hit = load_or_build(featurizer, kcbert_tokenizer, split(), tmp_path)
    assert not hit and "damaged" not in caplog.text
    assert load_or_build(featurizer, kcbert_tokenizer, split(), tmp_path)[1]


def test_a_run_that_fails_writing_metrics_leaves_no_metrics_json(tmp_path, monkeypatch, capsys):
    original = os.replace

    def fail_for_metrics(source, destination):
        if Path(destination).name == "metrics.json":
            raise OSError(28, "No space left on device")
        return original(source, destination)

    monkeypatch.setattr(io.os, "replace", fail_for_metrics)
    with pytest.raises(SystemExit) as exited:
        main([*TINY_RUN, "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert exited.value.code != 0 and "No space left on device" in err and "Traceback" not in err
    assert assert_complete_or_absent(tmp_path / "out") == {"predictions.json", "nbest_predictions.json"}
    assert not list((tmp_path / "out").glob(".*.tmp"))


@pytest.mark.parametrize("killed_at", ["predictions.json", "metrics.json"])
def test_a_run_killed_while_writing_outputs_leaves_nothing_that_looks_complete(killed_at, tmp_path):
    out = tmp_path / "out"
    command = [*TINY_RUN, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache")]
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, killed_at, *command], capture_output=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode(errors="replace")[-2000:]
    assert len(list(out.glob(f".{killed_at}.*.tmp"))) == 1  # half-written, beside the other outputs' temporary files
    assert assert_complete_or_absent(out) == set()  # the outputs are replaced as a set, once all are written
    if killed_at == "metrics.json":  # training had finished: --resume last only evaluates and writes the outputs
        resumed = subprocess.run([sys.executable, "-m", "qaframe.cli", *command, "--resume", "last"], capture_output=True, timeout=240)
        assert resumed.returncode == 0, resumed.stderr.decode(errors="replace")[-2000:]
        assert assert_complete_or_absent(out) == set(OUTPUTS)


def test_outputs_that_fail_half_way_keep_the_earlier_set_whole(tmp_path, monkeypatch):
    from qaframe.runner import write_outputs

    out = tmp_path / "out"
    written = earlier_results(out)
    write_text = Path.write_text

    def full_at_nbest(path, data, *args, **kwargs):
        if path.name.startswith(".nbest_predictions.json."):
            write_text(path, data[: len(data) // 2], *args, **kwargs)
            raise OSError(28, "No space left on device")
        return write_text(path, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_at_nbest)
    evaluation = SimpleNamespace(predictions={"q1": "서울"}, nbest={"q1": [{"text": "서울"}]})
    with pytest.raises(UserError, match=f"cannot write {out / 'nbest_predictions.json'}: No space left on device"):
        write_outputs(out, evaluation, {"f1": 100.0})
    assert kept(out, written) and sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    monkeypatch.undo()
    write_outputs(out, evaluation, {"f1": 100.0})
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == {"f1": 100.0}
    assert json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8")) == evaluation.nbest


def earlier_results(folder: Path) -> dict[str, str]:
    """Results of an earlier command in `folder`, returned as written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {name: json.dumps({"earlier": name}) for name in OUTPUTS}
    for name, text in written.items():
        (folder / name).write_text(text)
    return written


def kept(folder: Path, written: dict[str, str]) -> bool:
    """Whether every earlier result is still there, unchanged."""
    return all((folder / name).read_text() == text for name, text in written.items())


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The output folder of a finished TINY_RUN: a run in a folder with results resumes it (a new run is refused there)."""
    folder = tmp_path_factory.mktemp("finished")
    command = [sys.executable, "-m", "qaframe.cli", *TINY_RUN, "--output-dir", str(folder / "out"), "--cache-dir", str(folder / "cache")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "out"


def earlier_run(finished: Path, folder: Path) -> dict[str, str]:
    """A copy of the `finished` run in `folder`; returns its results as written."""
    shutil.copytree(finished, folder)
    return {name: (folder / name).read_text() for name in OUTPUTS}


@pytest.mark.parametrize("trouble", ["devices", "resume-not-a-checkpoint", "cache-dir-is-a-file"])
def test_a_run_that_fails_keeps_the_earlier_results(trouble, finished, tmp_path, capsys):
    out = tmp_path / "out"
    written = earlier_run(finished, out)
    (tmp_path / "afile").write_text("")
    torch.save({"x": torch.zeros(1)}, tmp_path / "plain.ckpt")  # loads safely, but is no training checkpoint
    extra = {"devices": ["--devices", "-2", "--resume", "last"], "resume-not-a-checkpoint": ["--resume", str(tmp_path / "plain.ckpt")],
             "cache-dir-is-a-file": ["--resume", "last"]}[trouble]
    cache = tmp_path / ("afile" if trouble == "cache-dir-is-a-file" else "cache")
    with pytest.raises(SystemExit) as exited:
        main([*TINY_RUN, "--output-dir", str(out), "--cache-dir", str(cache / "sub"), *extra])
    lines = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
    assert exited.value.code == 2 and lines[-1].startswith("Error: ") and "Traceback" not in "".join(lines)
    err = lines[-1]
    assert {"devices": "--devices -2", "resume-not-a-checkpoint": "is not a training checkpoint",
            "cache-dir-is-a-file": "afile"}[trouble] in err
    assert kept(out, written)


def test_evaluate_that_fails_keeps_the_earlier_results(tmp_path, capsys):
    out = tmp_path / "out"
    written = earlier_results(out)
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as exited:  # no model there: fails after the outputs folder was checked
        main(["evaluate", "--model", str(tmp_path / "nothing"), "--corpus", "sample", "--output-dir", str(out)])
    assert exited.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert kept(out, written)


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(command, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    argv = {"run": [*TINY_RUN, "--cache-dir", str(tmp_path / "cache")],
            "evaluate": ["evaluate", "--model", str(tmp_path / "nothing"), "--corpus", "sample"]}[command]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--output-dir", str(tmp_path / "afile" / "out")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"--output-dir {tmp_path / 'afile' / 'out'}: cannot write in {tmp_path / 'afile'} (it is a file)" in err
    assert not (tmp_path / "cache").exists()  # nothing was featurized


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_a_cache_folder_inside_a_file_is_refused_in_one_line_before_any_work(command, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    argv = {"run": TINY_RUN, "evaluate": ["evaluate", "--model", str(tmp_path / "nothing"), "--corpus", "sample"]}[command]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "afile" / "cache")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.strip().splitlines() == [
        f"Error: --cache-dir {tmp_path / 'afile' / 'cache'}: cannot write in {tmp_path / 'afile'} (it is a file); "
        "choose a writable folder"]
    assert not (tmp_path / "out").exists()


def test_ctrl_c_during_training_exits_130_and_keeps_the_earlier_results(finished, tmp_path):
    out = tmp_path / "out"
    written = earlier_run(finished, out)
    command = [*TINY_RUN, "--max-steps", "100000", "--max-epochs", "1000", "--output-dir", str(out),
               "--cache-dir", str(tmp_path / "cache"), "--resume", "last"]
    with open(tmp_path / "stderr", "wb") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "qaframe.cli", *command], stderr=stderr, stdout=subprocess.PIPE,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a shell's background job ignores it
    deadline = time.monotonic() + 240
    while b"Epoch " not in (tmp_path / "stderr").read_bytes():  # the progress bar (on stderr): training has started
        assert process.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out_text, _ = process.communicate(timeout=120)
    err = (tmp_path / "stderr").read_text(errors="replace")
    assert process.returncode == 130, err[-2000:]
    lines = err.splitlines()  # the bar's lines end in \r: each redraw is a line
    said = [line for line in lines if line.strip()]
    assert said[-1] == (f"Interrupted: {out / 'checkpoints' / 'last.ckpt'} holds the last validated step; continue with "
                        "--resume last") and out_text == b""  # the last line (the bar closed before it); no results
    assert not any("Detected KeyboardInterrupt" in line for line in lines)  # Lightning's own line is left out
    assert kept(out, written)
