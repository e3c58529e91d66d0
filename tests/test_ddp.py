"""Scale-out: `--accelerator cpu --devices 2 --strategy ddp` (gloo) gives the same outputs as one device.

Two devices at batch size B see, step by step, the same windows as one device at batch 2B
(the batch sampler deals each global batch out to the ranks) and DDP averages the gradients,
so training is the same up to float summation order. Dropout would draw different masks per
rank, so the model used here is a tiny KcBERT saved with dropout off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SETUP = ["--corpus", "sample", "--learning-rate", "1e-3", "--max-epochs", "2", "--limit-train-batches", "3",
         "--max-seq-length", "128", "--doc-stride", "32", "--eval-batch-size", "32", "--accelerator", "cpu"]


@pytest.fixture(scope="module")
def model_without_dropout(tmp_path_factory) -> Path:
    """The tiny KcBERT config with dropout 0, saved with seeded random weights and the KcBERT tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    from qaframe_plugins.models import TINY_FOLDER

    folder = tmp_path_factory.mktemp("tiny-no-dropout")
    config = AutoConfig.from_pretrained(TINY_FOLDER)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(TINY_FOLDER).save_pretrained(folder)
    return folder


def qaframe_run(output: Path, cache: Path, model: Path, *flags: str) -> dict:
    """`python -m qaframe.cli run ...` in a subprocess (DDP relaunches the command for rank 1); returns metrics.json."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "qaframe.cli", "run", *SETUP, "--model", str(model), "--output-dir", str(output),
               "--cache-dir", str(cache), *flags]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("exact match") == 1  # only rank 0 reports
    return json.loads((output / "metrics.json").read_text())


@pytest.mark.slow
def test_two_process_ddp_matches_one_device(model_without_dropout, tmp_path):
    one = qaframe_run(tmp_path / "one", tmp_path / "cache", model_without_dropout, "--devices", "1", "--train-batch-size", "16")
    two = qaframe_run(tmp_path / "two", tmp_path / "cache", model_without_dropout, "--devices", "2", "--strategy", "ddp",
                      "--train-batch-size", "8")
    assert (one["devices"], two["devices"]) == (1, 2)
    assert one["optimizer_steps"] == two["optimizer_steps"] == 6
    assert one["examples"] == two["examples"] == 72 and one["train_windows"] == two["train_windows"] == 96
    assert two["exact_match"] == pytest.approx(one["exact_match"], abs=1e-9)
    assert two["f1"] == pytest.approx(one["f1"], abs=1e-6)
    predictions = [json.loads((tmp_path / name / "predictions.json").read_text()) for name in ("one", "two")]
    assert predictions[0] == predictions[1]
    nbest = [json.loads((tmp_path / name / "nbest_predictions.json").read_text()) for name in ("one", "two")]
    for key, entries in nbest[0].items():
        scores = [e["logit_score"] for e in entries[:3]]
        assert [e["logit_score"] for e in nbest[1][key][:3]] == pytest.approx(scores, abs=1e-3)
