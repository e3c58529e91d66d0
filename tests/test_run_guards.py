"""What `qaframe run` and `qaframe evaluate` refuse before they train or write, so a mistake costs neither time nor results.

An output folder holding a file where the run makes a folder (or the reverse), a run folder that
cannot be written, a name that is not UTF-8, an earlier run's model or an evaluation's results
(for `run`), an unfinished run (for `evaluate`), a checkpoint whose weights do not fit --model or
that cannot resume training, a --limit-* fraction under one batch, a corpus naming an unknown
metric, an optimizer plugin that builds no optimizer: each is one line and exit 2, found before
training, with what the folder held kept as it was. An error before training is the only line on
stderr (Lightning's device lines wait for training).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qaframe import cli as cli_module
from qaframe import hookimpl
from qaframe_plugins.corpora import SampleCorpus

SMOKE = ["--corpus", "sample", "--model", "tiny", "--accelerator", "cpu", "--max-steps", "2", "--limit-train-batches", "2",
         "--limit-val-batches", "1", "--train-batch-size", "4", "--max-seq-length", "64", "--doc-stride", "16",
         "--max-query-length", "16"]
BAD_JSON = Path(__file__).parent / "badinput" / "invalid_json.json"


def run_cli(monkeypatch, capsys, *argv) -> tuple[int, str]:
    """A qaframe command in-process; (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exited:
        cli_module.main(list(argv))
    return exited.value.code, capsys.readouterr().err


def contents(folder: Path) -> dict[Path, bytes]:
    """Every file under `folder` and its bytes."""
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The output folder of a finished two-step run."""
    folder = tmp_path_factory.mktemp("trained")
    command = [sys.executable, "-m", "qaframe.cli", "run", *SMOKE, "--output-dir", str(folder / "out"), "--cache-dir",
               str(folder / "cache")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "out"


def test_a_data_error_is_the_only_line_on_stderr():
    """Run as from a shell, where Lightning's log handler writes to the real stderr: its device lines wait for training."""
    command = [sys.executable, "-m", "qaframe.cli", "run", "--corpus", "squad-json", "--train-file", str(BAD_JSON),
               "--dev-file", str(BAD_JSON), "--model", "tiny", "--accelerator", "cpu", "--output-dir", "unused"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"Error: {BAD_JSON}:"), done.stderr


@pytest.mark.parametrize("entry, kind", [("checkpoints", "file"), ("logs", "file"), ("model", "file"),
                                         ("metrics.json", "folder"), ("config.yaml", "folder")])
def test_an_output_entry_of_the_wrong_kind_is_refused_before_data_is_read(entry, kind, monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / entry).mkdir() if kind == "folder" else (out / entry).write_text("mine")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1
    where = "a folder where the run writes a file" if kind == "folder" else "a file where the run writes a folder"
    assert f"{out / entry} is {where}" in err
    assert not (tmp_path / "cache").exists()  # refused before any data was featurized
    assert sorted(p.name for p in out.iterdir()) == [entry]


def test_a_folder_holding_an_earlier_runs_model_is_refused(trained, monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("checkpoints"))  # checkpoints pruned, the model kept
    before = contents(out)
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1 and f"{out / 'model'} holds the model of an earlier run" in err
    assert contents(out) == before


def test_a_limit_fraction_under_one_batch_is_one_line_and_keeps_the_runs_config(trained, monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    before = contents(out)
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"),
                        "--resume", "last", "--max-steps", "3", "--limit-val-batches", "0.0001")
    assert code == 2 and err.strip().splitlines()[-1].startswith("Error: cannot train with these options: ")
    assert "limit_val_batches" in err and "Traceback" not in err
    assert contents(out).items() >= before.items()  # config.yaml and the rest kept (Lightning may have opened a new log)


def test_a_checkpoint_whose_weights_do_not_fit_the_model_is_refused_before_training(trained, monkeypatch, capsys, tmp_path):
    state = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    weights = state["state_dict"]
    dropped = sorted(weights)[0]
    del weights[dropped]
    weights["model.extra.weight"] = torch.zeros(2)
    reshaped = "model.qa_outputs.weight"
    weights[reshaped] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "other.ckpt")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(tmp_path / "out"), "--cache-dir",
                        str(tmp_path / "cache"), "--resume", str(tmp_path / "other.ckpt"), "--max-steps", "3")
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"Error: --resume {tmp_path / 'other.ckpt'}: its weights do not fit the model of --model tiny")
    assert f"missing {dropped}" in last and "unexpected model.extra.weight" in last and f"of another shape {reshaped}" in last
    assert not (tmp_path / "out" / "config.yaml").exists() and not (tmp_path / "out" / "checkpoints").exists()


def test_a_weights_only_checkpoint_is_refused_before_data_is_read(trained, monkeypatch, capsys, tmp_path):
    state = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    torch.save({k: state[k] for k in ("state_dict", "pytorch-lightning_version")}, tmp_path / "weights.ckpt")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(tmp_path / "out"), "--cache-dir",
                        str(tmp_path / "cache"), "--resume", str(tmp_path / "weights.ckpt"))
    assert code == 2 and err.count("\n") == 1
    assert "is not a training checkpoint of `qaframe run` (it lacks loops, optimizer_states)" in err
    assert not (tmp_path / "cache").exists()


def test_an_accelerator_whose_package_is_missing_is_one_line(monkeypatch, capsys, tmp_path):
    if importlib.util.find_spec("torch_xla") is not None:
        pytest.skip("torch_xla is installed here")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--accelerator", "tpu", "--output-dir", str(tmp_path / "out"),
                        "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("Error: cannot set up training with --accelerator tpu --strategy auto: a package it needs is missing (")
    assert "torch_xla" in err and err.endswith("install it, or choose another --accelerator or --strategy\n")


def test_evaluate_refuses_to_write_over_a_runs_results(trained, monkeypatch, capsys):
    before = contents(trained)
    code, err = run_cli(monkeypatch, capsys, "evaluate", "--model", str(trained / "model"), "--corpus", "sample",
                        "--output-dir", str(trained))
    assert code == 2 and err.count("\n") == 1 and f"--output-dir {trained} holds a `qaframe run` (model/)" in err
    assert contents(trained) == before


def test_evaluate_checks_the_refiner_name_before_the_weights_load(trained, monkeypatch, capsys, tmp_path):
    from qaframe import runner

    monkeypatch.setattr(runner.Predictor, "load", lambda *args, **kwargs: pytest.fail("the weights were loaded"))
    code, err = run_cli(monkeypatch, capsys, "evaluate", "--model", str(trained / "model"), "--corpus", "sample",
                        "--output-dir", str(tmp_path / "ev"), "--refiner", "nope")
    assert code == 2 and err.count("\n") == 1 and "unknown refiner 'nope'" in err



def test_a_model_folder_without_weights_is_refused_before_data_is_read(monkeypatch, capsys, tmp_path, tiny_model_dir):
    """The packaged tiny folder holds a config and a tokenizer only, as a download that stopped before the weights."""
    argv = [*SMOKE, "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    code, err = run_cli(monkeypatch, capsys, "run", *argv)
    assert code == 2 and err.count("\n") == 1 and f"model folder {tiny_model_dir} has no weights" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


class MisnamedMetricCorpus(SampleCorpus):
    """The sample corpus, scored with a metric name that nothing registers."""

    metric = "korqad"


class BrokenTrainingPlugin:
    """Corpus 'misnamed-metric', and optimizer 'builds-nothing', whose factory returns None."""

    @hookimpl
    def register_corpora(self, register):
        register("misnamed-metric", MisnamedMetricCorpus)

    @hookimpl
    def register_optimizers(self, register):
        register("builds-nothing", lambda model, settings: None)


def test_a_corpus_naming_an_unknown_metric_is_refused_naming_the_corpus(register_plugin, monkeypatch, capsys, tmp_path):
    register_plugin(BrokenTrainingPlugin(), name="broken-training")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--corpus", "misnamed-metric", "--output-dir", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1
    assert "corpus 'misnamed-metric' is scored with metric 'korqad', which is not registered: unknown metric 'korqad'; " \
           "did you mean 'korquad'?" in err


def test_an_optimizer_that_builds_no_optimizer_stops_the_run_before_training(register_plugin, monkeypatch, capsys, tmp_path):
    register_plugin(BrokenTrainingPlugin(), name="broken-training")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--optimizer", "builds-nothing", "--output-dir", str(tmp_path / "out"),
                        "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("Error: optimizer 'builds-nothing' of plugin 'broken-training' (in-process -) built a "
                                            "NoneType, not the torch.optim.Optimizer its contract (docs/hooks.md) requires")
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("folder", ["logs", "checkpoints", "model"])
def test_a_run_folder_that_cannot_be_written_is_refused_before_data_is_read(folder, monkeypatch, capsys, tmp_path):
    """Read-only as root cannot be: the check's probe is refused as a read-only folder refuses it."""
    from qaframe import io

    out = tmp_path / "out"
    (out / folder).mkdir(parents=True)
    probe = io.tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if Path(dir) == out / folder:
            raise PermissionError(13, "Permission denied")
        return probe(*args, dir=dir, **kwargs)

    monkeypatch.setattr(io.tempfile, "TemporaryFile", read_only)
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1
    assert err == f"Error: --output-dir {out}: cannot write in {out / folder} (Permission denied); choose a writable folder\n"
    assert not (tmp_path / "cache").exists() and [p.name for p in out.iterdir()] == [folder]


def test_an_output_folder_whose_name_is_not_utf8_is_refused_before_data_is_read(monkeypatch, capsys, tmp_path):
    out = tmp_path / os.fsdecode(b"runs-b\xff")  # as Python hands over $'runs-b\xff' from a shell
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"Error: --output-dir {tmp_path}/runs-b\\xff: the name is not UTF-8")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("saved, message", [
    ([1, 2], "is not a training checkpoint of `qaframe run` (it lacks a dict of training state: it holds a list)"),
    ({"state_dict": [1], "pytorch-lightning_version": "2.6", "optimizer_states": [], "loops": {}},
     "is not a training checkpoint of `qaframe run` (it lacks a state_dict of tensors)"),
])
def test_a_resume_file_that_is_no_training_state_is_one_line(saved, message, monkeypatch, capsys, tmp_path):
    torch.save(saved, tmp_path / "other.ckpt")
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(tmp_path / "out"), "--cache-dir",
                        str(tmp_path / "cache"), "--resume", str(tmp_path / "other.ckpt"))
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "cache").exists()


def test_an_empty_resume_says_so(monkeypatch, capsys, tmp_path):
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(tmp_path / "out"), "--resume", "")
    assert code == 2 and err == "Error: --resume is empty; pass last (the output folder's last checkpoint) or a .ckpt file\n"


def test_a_new_run_refuses_a_folder_holding_an_evaluations_results(trained, monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("metrics.json", "predictions.json", "nbest_predictions.json"):
        shutil.copy(trained / name, out / name)
    before = contents(out)
    code, err = run_cli(monkeypatch, capsys, "run", *SMOKE, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1
    assert f"--output-dir {out} holds the results of an evaluation (metrics.json), which this run would replace" in err
    assert contents(out) == before and not (tmp_path / "cache").exists()


def test_evaluate_refuses_a_run_that_has_not_finished(trained, monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("model", "*.json"))  # checkpoints and config.yaml: no model yet
    before = contents(out)
    code, err = run_cli(monkeypatch, capsys, "evaluate", "--model", str(trained / "model"), "--corpus", "sample",
                        "--output-dir", str(out))
    assert code == 2 and err.count("\n") == 1
    assert f"--output-dir {out} holds the checkpoints of an unfinished `qaframe run`" in err
    assert contents(out) == before
