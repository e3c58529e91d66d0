"""Kill and resume: a `qaframe run` killed with SIGKILL after a checkpoint, resumed with `--resume last`, ends as an uninterrupted run.

The runner checkpoints after every validation, here at epoch ends (last.ckpt and the best by
dev F1). The killed run SIGKILLs itself as batch 3 of epoch 1 starts (a patched callback, so
the kill does not race the machine's speed), after its epoch-0 checkpoint, so `--resume last`
restarts epoch 1 from its first batch: the batch order is a function of (seed, epoch) and the dropout seed must be too,
so on the same CPU with the same thread count (OMP_NUM_THREADS=1 here) the resumed run repeats
the very same floating-point operations. Tolerance: exact equality of EM/F1, of the
predictions and of every exported weight (0.0); two uninterrupted runs agree bit for bit, so
any difference is a resume bug, not noise. A run stopped by --max-steps in mid-epoch and resumed
with a larger --max-steps goes on in that epoch with the batches it had not trained on yet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

RUN = [sys.executable, "-m", "qaframe.cli", "run", "--corpus", "sample", "--model", "tiny", "--accelerator", "cpu",
       "--seed", "11", "--max-epochs", "3", "--limit-train-batches", "8", "--train-batch-size", "8",
       "--limit-val-batches", "1", "--eval-batch-size", "128", "--max-seq-length", "64", "--doc-stride", "16",
       "--max-query-length", "16"]
SAME = ("exact_match", "f1", "exact_match_raw", "f1_raw", "examples", "best_checkpoint", "epochs", "optimizer_steps")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "QAFRAME_DEBUG": "0"}  # one thread: the same reduction order in every run
# runs the CLI (argv[3:]) with qaframe's per-batch callback SIGKILLing the process as batch argv[2] of epoch argv[1] starts
KILLED_AT_BATCH = """
import os, signal, sys
from qaframe import runner
killed_at, seed_batch = (int(sys.argv[1]), int(sys.argv[2])), runner.BatchSeed.on_train_batch_start
def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
    if (trainer.current_epoch, batch_idx) == killed_at:
        os.kill(os.getpid(), signal.SIGKILL)
    seed_batch(self, trainer, pl_module, batch, batch_idx)
runner.BatchSeed.on_train_batch_start = on_train_batch_start
from qaframe.cli import main
sys.argv = ["qaframe", *sys.argv[3:]]
main()
"""


@pytest.fixture(autouse=True)
def isolated_host(qaframe_host):
    """In-process commands use a fresh built-ins-only plugin host, never the cached process-wide one."""
    return qaframe_host


def start(folder: Path, *extra: str, run: list[str] = RUN) -> subprocess.Popen:
    """Start a run writing into folder/out with its own feature cache; output goes to folder/run.log."""
    folder.mkdir(exist_ok=True)
    command = [*run, "--output-dir", str(folder / "out"), "--cache-dir", str(folder / "cache"), *extra]
    with open(folder / "run.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=ENV)


def finish(process: subprocess.Popen, folder: Path, timeout: float = 240) -> dict:
    """Wait for a run to end and return its metrics.json."""
    assert process.wait(timeout=timeout) == 0, (folder / "run.log").read_text(errors="replace")[-3000:]
    return json.loads((folder / "out" / "metrics.json").read_text(encoding="utf-8"))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """The exported model's tensors."""
    from safetensors.torch import load_file

    return load_file(folder / "out" / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory) -> Path:
    """An uninterrupted reference run, and a run SIGKILLed at batch 3 of epoch 1 after its epoch-0 checkpoint, then resumed."""
    folder = tmp_path_factory.mktemp("resume")
    reference = start(folder / "reference")
    killed = start(folder / "killed", run=[sys.executable, "-c", KILLED_AT_BATCH, "1", "3", *RUN[RUN.index("run"):]])
    last = folder / "killed" / "out" / "checkpoints" / "last.ckpt"
    assert killed.wait(timeout=240) == -signal.SIGKILL, (folder / "killed" / "run.log").read_text(errors="replace")[-3000:]
    assert not (folder / "killed" / "out" / "metrics.json").exists()
    state = torch.load(last, map_location="cpu", weights_only=True)  # the checkpoint left behind is whole
    assert (state["epoch"], state["global_step"]) == (0, 8)
    finish(start(folder / "killed", "--resume", "last"), folder / "killed")
    finish(reference, folder / "reference")
    return folder


def outputs(folder: Path, run: str) -> tuple[dict, dict]:
    """metrics.json and predictions.json of a run."""
    return tuple(json.loads((folder / run / "out" / name).read_text(encoding="utf-8")) for name in ("metrics.json", "predictions.json"))


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_completes(killed_and_resumed):
    log = (killed_and_resumed / "killed" / "run.log").read_text(errors="replace")
    assert f"Restoring states from the checkpoint path at {killed_and_resumed / 'killed' / 'out' / 'checkpoints' / 'last.ckpt'}" in log
    resumed, _ = outputs(killed_and_resumed, "killed")
    expected, _ = outputs(killed_and_resumed, "reference")
    assert (resumed["epochs"], resumed["optimizer_steps"]) == (expected["epochs"], expected["optimizer_steps"]) == (3, 24)
    assert resumed["train_windows"] < expected["train_windows"]  # it continued from epoch 1; it did not start over


@pytest.mark.slow
def test_a_resumed_run_equals_the_uninterrupted_run_exactly(killed_and_resumed):
    (resumed, resumed_predictions), (expected, expected_predictions) = outputs(killed_and_resumed, "killed"), outputs(killed_and_resumed, "reference")
    ours, theirs = weights(killed_and_resumed / "killed"), weights(killed_and_resumed / "reference")
    assert ours.keys() == theirs.keys()
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) == 0.0
    assert {k: resumed[k] for k in SAME} == {k: expected[k] for k in SAME}
    assert resumed_predictions == expected_predictions


STEPS_ONLY = RUN[: RUN.index("--max-epochs")] + RUN[RUN.index("--max-epochs") + 2 :]  # RUN without --max-epochs 3
CONSTANT_RATE = ("--scheduler", "constant", "--warmup-ratio", "0")  # a step's learning rate does not depend on --max-steps


@pytest.fixture(scope="module")
def twenty_steps(tmp_path_factory) -> Path:
    """An uninterrupted --max-steps 20 run: 8 batches an epoch, so it ends after batch 4 of epoch 2 (--max-epochs 3 or not)."""
    folder = tmp_path_factory.mktemp("steps")
    finish(start(folder / "reference", "--max-steps", "20", *CONSTANT_RATE), folder / "reference")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("run", [RUN, STEPS_ONLY], ids=["max-epochs-and-steps", "max-steps-alone"])
def test_a_run_stopped_in_mid_epoch_resumes_with_the_batches_it_had_left(twenty_steps, run):
    """Resumed, it replayed epoch 1 from its first batch (Lightning: dataloader "not resumable"), so trained on other data.

    With --max-epochs, QATask's estimated_stepping_batches builds the train loader before Lightning reads the
    checkpoint, and Lightning then never hands the loader its state (the datamodule does); with --max-steps alone
    Lightning does too.
    """
    folder = twenty_steps / ("epochs" if run is RUN else "steps")
    finish(start(folder, "--max-steps", "12", *CONSTANT_RATE, run=run), folder)
    state = torch.load(folder / "out" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (state["epoch"], state["global_step"]) == (1, 12)  # after batch 4 of epoch 1's 8
    finish(start(folder, "--max-steps", "20", "--resume", "last", *CONSTANT_RATE, run=run), folder)
    ours, theirs = weights(folder), weights(twenty_steps / "reference")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    log = (folder / "run.log").read_text(errors="replace")
    assert "Restoring states from the checkpoint path" in log and "not resumable" not in log


def small_data(num_workers: int = 0, batch_size: int = 4, seed: int = 3, windows: int = 40, devices: int = 1):
    """A QADataModule over `windows` windows of 3 to 11 tokens (train and dev): 10 training batches of 4 by default (rank 0 of `devices`)."""
    from types import SimpleNamespace

    import numpy as np

    from qaframe.task import QADataModule
    from qaframe.types import Features

    lengths = np.random.default_rng(0).integers(3, 12, windows)
    splits = np.concatenate([[0], np.cumsum(lengths)])
    features = Features(input_ids=np.ones(splits[-1], dtype=np.int32), row_splits=splits, example_index=np.arange(windows),
                        start_positions=np.zeros(windows, dtype=np.int64), end_positions=np.zeros(windows, dtype=np.int64))
    data = QADataModule(features, features, pad_token_id=0, train_batch_size=batch_size, seed=seed, num_workers=num_workers)
    if devices > 1:
        data.trainer = SimpleNamespace(world_size=devices, global_rank=0)  # what _shard reads of a DDP trainer
    return data


def train_windows(loader, epoch: int) -> list[list[int]]:
    """The window indices of every batch a training loader yields in `epoch`, as Lightning sets it."""
    loader.batch_sampler.set_epoch(epoch)
    return [batch["window"].tolist() for batch in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_train_loader_resumes_after_the_batches_its_checkpoint_counts(num_workers):
    interrupted = small_data(num_workers)
    loader = interrupted.train_dataloader()
    epochs = {epoch: train_windows(loader, epoch) for epoch in (1, 2)}
    assert epochs[1] != epochs[2] and len(epochs[1]) == 10
    loader.batch_sampler.set_epoch(1)
    batches = iter(loader)
    for _ in range(3):
        next(batches)
    mid_epoch = interrupted.state_dict()
    batching = loader.batching()  # batch size, ranks, seed, grouping, windows and their tokens
    assert batching[:5] == [4, 1, 3, 1, 40]
    assert mid_epoch == {"train_loader": {"epoch": 1, "batches": 3, "batching": batching}}
    assert loader.state_dict() == mid_epoch["train_loader"]

    resumed = small_data(num_workers)
    resumed.load_state_dict(mid_epoch)  # as a resumed run: before train_dataloader()
    loader = resumed.train_dataloader()
    assert train_windows(loader, 1) == epochs[1][3:]
    assert resumed.state_dict() == {"train_loader": {"epoch": 1, "batches": 10, "batching": batching}}  # counted from the start
    assert train_windows(loader, 1) == epochs[1]  # the skip is used once
    built_first = small_data(num_workers)
    loader = built_first.train_dataloader()  # as under strategies that restore after setup (FSDP, DeepSpeed)
    built_first.load_state_dict(mid_epoch)
    assert train_windows(loader, 1) == epochs[1][3:]

    loader = small_data(num_workers).train_dataloader()
    loader.load_state_dict({"epoch": 1, "batches": 10, "batching": batching})  # at epoch 1's end: Lightning goes on with epoch 2
    assert train_windows(loader, 2) == epochs[2]
    assert not hasattr(resumed.val_dataloader(), "state_dict")  # evaluation always runs whole


def test_a_resumed_train_loader_collates_only_the_batches_left():
    data = small_data()
    data.load_state_dict({"train_loader": {"epoch": 0, "batches": 7, "batching": small_data().train_dataloader().batching()}})
    loader = data.train_dataloader()
    collated = []
    loader.collate_fn = lambda indices: collated.append(indices) or {"window": torch.tensor(indices)}
    assert len(train_windows(loader, 0)) == len(collated) == 3


@pytest.mark.parametrize("other, batches", [({"batch_size": 8}, 5), ({"seed": 4}, 10), ({"windows": 48}, 12), ({"devices": 2}, 5)],
                         ids=["batch-size", "seed", "windows", "devices"])
def test_a_position_counted_in_other_batches_starts_the_epoch_over(caplog, other, batches):
    """README: resumed with another batch size, seed, set of windows or device count, the interrupted epoch starts over."""
    interrupted = small_data().train_dataloader()
    interrupted.batch_sampler.set_epoch(1)
    iterator = iter(interrupted)
    for _ in range(3):
        next(iterator)
    resumed = small_data(**other).train_dataloader()
    resumed.load_state_dict(interrupted.state_dict())
    whole_epoch = train_windows(small_data(**other).train_dataloader(), 1)
    assert train_windows(resumed, 1) == whole_epoch and len(whole_epoch) == batches  # the 3 batches counted are not skipped
    assert "stopped after 3 batches of epoch 1, cut with another batch size, seed, device count or set of windows" in caplog.text


def test_a_checkpoint_past_max_steps_is_refused(tmp_path):
    import torch

    from qaframe.errors import UserError
    from qaframe.runner import resolve_resume

    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.0", "global_step": 8, "optimizer_states": [], "loops": {}},
               tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=r"written after 8 optimizer steps, past --max-steps 6; resume with --max-steps 8 or more"):
        resolve_resume("last", tmp_path, max_steps=6)
    assert resolve_resume("last", tmp_path, max_steps=8).endswith("last.ckpt")  # a finished run: evaluated again
    assert resolve_resume("last", tmp_path).endswith("last.ckpt")


def test_resume_without_a_checkpoint_is_one_line(tmp_path, capsys):
    from qaframe.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--corpus", "sample", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--resume", "last"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "--resume last: no checkpoint at" in err and "last.ckpt" in err
    assert not (tmp_path / "out").exists()


def test_a_rerun_into_a_folder_with_checkpoints_must_say_resume(tmp_path, capsys):
    from qaframe.cli import main

    (tmp_path / "out" / "checkpoints").mkdir(parents=True)
    (tmp_path / "out" / "checkpoints" / "last.ckpt").write_bytes(b"")  # all a run killed in training leaves: no metrics.json, no model/
    with pytest.raises(SystemExit) as exited:
        main(["run", "--corpus", "sample", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1 and "pass --resume last" in err


@pytest.mark.parametrize("device", ["cpu", "cuda:1"])
def test_batch_seed_seeds_the_cpu_and_the_module_gpu_only(device, monkeypatch):
    """The dropout seed is a function of (seed, epoch, batch); torch.manual_seed (every backend, lazily queued) is not called."""
    from types import SimpleNamespace

    from qaframe.runner import BatchSeed

    seeded = []
    monkeypatch.setattr(torch, "manual_seed", lambda seed: seeded.append(("all", seed)))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: seeded.append((str(current[0]), seed)))
    current = [None]

    class Device:  # torch.cuda.device without a GPU: records which device is current
        def __init__(self, chosen):
            self.chosen = chosen

        def __enter__(self):
            current[0] = self.chosen

        def __exit__(self, *exc):
            current[0] = None

    monkeypatch.setattr(torch.cuda, "device", Device)
    trainer, module = SimpleNamespace(current_epoch=2), SimpleNamespace(device=torch.device(device))
    BatchSeed(5).on_train_batch_start(trainer, module, batch=None, batch_idx=3)
    expected = 5 * 1_000_003 + 2 * 100_003 + 3
    cpu_draw = torch.rand(3)
    torch.default_generator.manual_seed(expected)
    assert torch.equal(cpu_draw, torch.rand(3))
    assert seeded == ([("cuda:1", expected)] if device == "cuda:1" else [])


class ScriptedF1(pl.LightningModule):
    """One linear layer trained on four batches an epoch; each validation logs the next dev F1 of `scores`."""

    def __init__(self, scores):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.scores = list(scores)

    def training_step(self, batch, batch_idx):
        return self.layer(batch["x"]).square().mean()

    def validation_step(self, batch, batch_idx):
        return None

    def on_validation_epoch_end(self):
        self.log("val_f1", self.scores.pop(0))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader([{"x": torch.ones(2), "window": torch.tensor(i)} for i in range(4)], batch_size=1)

    def val_dataloader(self):
        return DataLoader([{"x": torch.ones(2)}], batch_size=1)


def fit_scripted(folder: Path, scores, **options):
    """Fit ScriptedF1 with the runner's Trainer and checkpoints; returns (best checkpoint path, last.ckpt's epoch and step)."""
    from qaframe.config import RunConfig
    from qaframe.runner import _trainer

    trainer, checkpoint, _ = _trainer(RunConfig(accelerator="cpu", **options), folder, callbacks=())
    module = ScriptedF1(scores)
    trainer.fit(module)
    assert module.scores == [], "every scripted score was used by a validation"
    last = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return Path(checkpoint.best_model_path), (last["epoch"], last["global_step"])


def test_last_checkpoint_is_the_last_epoch_even_when_it_is_not_the_best(tmp_path):
    best, last = fit_scripted(tmp_path, [5.0, 9.0, 7.0, 3.0], max_epochs=4)
    assert best.name == "best-epoch1-f19.00.ckpt"
    assert last == (3, 16)  # `--resume last` continues after the fourth epoch, not after the best one


def test_max_steps_in_mid_epoch_validates_and_checkpoints_the_last_steps(tmp_path):
    best, last = fit_scripted(tmp_path, [5.0, 9.0], max_epochs=3, max_steps=6)
    assert best.name == "best-epoch1-f19.00.ckpt"  # the dev F1 after step 6 competes for the best checkpoint
    assert last == (1, 6)


def test_resuming_under_max_epochs_and_max_steps_trains_up_to_max_steps(tmp_path):
    """A checkpoint written at an epoch's end made Lightning count that epoch twice when it resumed under max_steps."""
    from pytorch_lightning.callbacks import Callback

    from qaframe.config import RunConfig
    from qaframe.runner import _trainer

    class Killed(Exception):
        """The interruption."""

    class KillAtEpoch2(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise Killed

    config = RunConfig(accelerator="cpu", max_epochs=4, max_steps=14)
    trainer, _, _ = _trainer(config, tmp_path, callbacks=[KillAtEpoch2()])
    with pytest.raises(Killed):
        trainer.fit(ScriptedF1([5.0, 6.0]))
    trainer.progress_bar_callback.train_progress_bar.close()  # left open by the exception, as in a process that dies
    resumed, checkpoint, _ = _trainer(config, tmp_path, callbacks=())
    resumed.fit(ScriptedF1([7.0, 8.0]), ckpt_path=tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed.global_step == 14  # epoch 2 (steps 9-12) and half of epoch 3, validated at step 14
    assert Path(checkpoint.best_model_path).name == "best-epoch3-f18.00.ckpt"


def test_the_best_checkpoint_is_the_folders_best_whatever_lightning_recorded(tmp_path):
    from qaframe.runner import best_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert best_checkpoint(folder, "") is None  # nothing validated
    for name in ("best-epoch1-f112.36.ckpt", "best-epoch3-f19.50.ckpt", "last.ckpt"):
        (folder / name).write_bytes(b"")
    # a moved run folder: Lightning forgot the earlier best and recorded only the resumed run's
    assert best_checkpoint(folder, str(folder / "best-epoch3-f19.50.ckpt")) == str(folder / "best-epoch1-f112.36.ckpt")
    # a kill between writing a new best and last.ckpt: the record names a deleted file
    assert best_checkpoint(folder, str(tmp_path / "gone" / "best-epoch0-f15.00.ckpt")) == str(folder / "best-epoch1-f112.36.ckpt")
    (folder / "best-epoch4-f112.36.ckpt").write_bytes(b"")  # equal F1 in the name: Lightning's record decides
    assert best_checkpoint(folder, str(folder / "best-epoch4-f112.36.ckpt")) == str(folder / "best-epoch4-f112.36.ckpt")
