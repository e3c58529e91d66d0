"""Safe loading: crafted pickles in a run's feature cache, a --resume checkpoint and a model's weights are never executed; no unsafe loader in the code; trust_remote_code off unless asked.

Each crafted file unpickles into `os.mkdir(marker)`, so the marker folder appearing would
prove that code from the file ran. tests/test_feature_cache.py covers the cache at the
load_or_build level; here the files are planted where the real commands look for them.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from qaframe.cli import main

ROOT = Path(__file__).parent.parent
PACKAGES = [ROOT / "qaframe", ROOT / "plugins"]
MINI = Path(__file__).parent / "fixtures"
TINY_RUN = ["--corpus", "squad-json", "--train-file", str(MINI / "korquad_mini_train.json"), "--dev-file", str(MINI / "korquad_mini_dev.json"),
            "--model", "tiny", "--accelerator", "cpu", "--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16",
            "--max-epochs", "1", "--max-steps", "1", "--train-batch-size", "4", "--limit-val-batches", "1", "--seed", "3"]


@pytest.fixture(autouse=True)
def isolated_host(qaframe_host):
    """In-process commands use a fresh built-ins-only plugin host, never the cached process-wide one."""
    return qaframe_host


class Payload:
    """Creates the marker folder when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def qaframe(capsys, *args) -> tuple[int, str, str]:
    """Run the real CLI entry point in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exited.value.code, out, err


@pytest.fixture
def crafted_model(tmp_path, tiny_model_dir) -> Path:
    """A model folder with the tiny config and tokenizer and a pytorch_model.bin that runs code when unpickled."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(tmp_path / "pwned")}, folder / "pytorch_model.bin")
    return folder


@pytest.fixture
def crafted_checkpoint(tmp_path) -> Path:
    """An output folder whose checkpoints/last.ckpt runs code when unpickled."""
    path = tmp_path / "out" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": Payload(tmp_path / "pwned"), "epoch": 0, "global_step": 1}, path)
    return path


def test_the_payload_is_live(tmp_path):
    pickle.loads(pickle.dumps(Payload(tmp_path / "pwned")))
    assert (tmp_path / "pwned").is_dir()  # so its absence below means the loaders refused it


def test_a_pickle_planted_as_the_runs_feature_cache_entry_is_never_run(tmp_path, capsys, caplog):
    from qaframe import plugins
    from qaframe.features import build_featurizer, cache_path
    from qaframe.models import load_tokenizer, resolve_model
    from qaframe.types import CorpusOptions, FeaturizerSettings

    featurizer = build_featurizer("sliding-window", FeaturizerSettings(64, 16, 16))
    tokenizer = load_tokenizer(resolve_model("tiny"))
    corpus = plugins.get_host().create("corpus", "squad-json", CorpusOptions(train_file=MINI / "korquad_mini_train.json"))
    entry = cache_path(featurizer, tokenizer, corpus.load("train").examples, tmp_path / "cache")
    entry.parent.mkdir()
    entry.write_bytes(pickle.dumps(Payload(tmp_path / "pwned")))
    with caplog.at_level(logging.WARNING, logger="qaframe.features"):
        code, _, err = qaframe(capsys, "run", *TINY_RUN, "--output-dir", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert not (tmp_path / "pwned").exists()
    assert code == 0, err
    assert f"feature cache file {entry} is damaged" in caplog.text and "rebuilding it" in caplog.text
    assert "train: 5 examples -> " in err and "(built in" in err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))["examples"] == 3


def test_a_crafted_resume_checkpoint_is_never_run_and_is_a_one_line_error_before_anything_runs(tmp_path, crafted_checkpoint, capsys):
    code, _, err = qaframe(capsys, "run", *TINY_RUN, "--output-dir", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--resume", "last")
    assert not (tmp_path / "pwned").exists()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(crafted_checkpoint) in err and "Weights only load failed" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out" / "config.yaml").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_crafted_model_weights_are_never_run_and_are_a_one_line_error(tmp_path, crafted_model, capsys):
    code, _, err = qaframe(capsys, "predict", "--model", crafted_model, "--question", "언제?", "--context", "1978년에 창단되었다.")
    assert not (tmp_path / "pwned").exists()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(crafted_model) in err and "Weights only load failed" in err


# -- no unsafe loader anywhere in the package ----------------------------------------------------
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}" if dotted(node.value) else ""
    return ""


def keyword(call: ast.Call, name: str):
    """The constant value of keyword `name` in a call, or the string 'absent' / 'not a constant'."""
    for item in call.keywords:
        if item.arg == name:
            return item.value.value if isinstance(item.value, ast.Constant) else "not a constant"
    return "absent"


def unsafe_loads(source: str) -> list[str]:
    """Every call or import in `source` that could unpickle data or trust remote code, described."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if [a.name for a in node.names] == ["UnpicklingError"]:
                continue  # the exception class alone, to turn an unsafe file into a one-line error
            if module in UNPICKLERS or (module in ("torch", "numpy", "yaml") and any(a.name in ("load", "unsafe_load", "full_load") for a in node.names)):
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            line = f"line {node.lineno}: {name or 'call'}"
            if name.split(".")[0] in UNPICKLERS or name.endswith(("read_pickle", "yaml.load", "yaml.unsafe_load", "yaml.full_load")):
                found.append(line)
            elif name == "torch.load" and keyword(node, "weights_only") is not True:
                found.append(f"{line} without weights_only=True")
            elif name in ("np.load", "numpy.load") and keyword(node, "allow_pickle") is not False:
                found.append(f"{line} without allow_pickle=False")
            elif name.endswith("load_from_checkpoint") and keyword(node, "weights_only") is not True:
                found.append(f"{line} without weights_only=True")
            elif keyword(node, "ckpt_path") != "absent" and keyword(node, "weights_only") is not True:
                found.append(f"{line}(ckpt_path=...) without weights_only=True")
            if keyword(node, "trust_remote_code") is True:
                found.append(f"{line} with trust_remote_code=True")
    return found


def test_the_checker_finds_what_it_looks_for():
    bad = """
import pickle
from torch import load
torch.load(path)
torch.load(path, weights_only=False)
np.load(path)
np.load(path, allow_pickle=True)
yaml.load(text)
trainer.fit(task, ckpt_path=path)
AutoModel.from_pretrained(name, trust_remote_code=True)
"""
    assert len(unsafe_loads(bad)) == 9
    good = "torch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\ntrainer.fit(t, ckpt_path=p, weights_only=True)\nyaml.safe_load(s)\n"
    assert unsafe_loads(good) == []


def test_no_module_unpickles_or_trusts_remote_code():
    files = [path for folder in PACKAGES for path in folder.rglob("*.py")]
    assert len(files) > 20
    found = {str(path.relative_to(ROOT)): unsafe_loads(path.read_text(encoding="utf-8")) for path in files}
    assert {path: calls for path, calls in found.items() if calls} == {}


# -- trust_remote_code ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "evaluate", "predict", "serve"])
def test_every_model_loading_command_has_a_trust_remote_code_flag_that_is_off(command):
    import importlib

    import click

    from qaframe.cli import COMMANDS
    from qaframe.config import RunConfig

    module, attribute = COMMANDS[command].split(":")
    click_command = getattr(importlib.import_module(module), attribute)
    [option] = [p for p in click_command.params if p.name == "trust_remote_code"]
    assert "--trust-remote-code" in option.opts and option.is_flag
    assert option.get_default(click.Context(click_command)) in (False, None) and RunConfig().trust_remote_code is False


@pytest.fixture
def transformers_calls(monkeypatch) -> list[tuple[str, object]]:
    """Records (loader, trust_remote_code) for every tokenizer, config and model load, then loads for real."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    calls = []
    for owner, method in ((AutoTokenizer, "from_pretrained"), (AutoConfig, "from_pretrained"),
                          (AutoModelForQuestionAnswering, "from_pretrained"), (AutoModelForQuestionAnswering, "from_config")):
        original = getattr(owner, method)

        def spy(*args, _original=original, _name=f"{owner.__name__}.{method}", **kwargs):
            calls.append((_name, kwargs.get("trust_remote_code")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, method, spy)
    return calls


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_model_dir) -> Path:
    """A plain Hugging Face QA folder: the tiny model with random weights, saved with its tokenizer."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    folder = tmp_path_factory.mktemp("saved") / "model"
    AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tiny_model_dir)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def test_predict_never_trusts_remote_code_by_default(saved_model, transformers_calls, capsys):
    code, out, err = qaframe(capsys, "predict", "--model", saved_model, "--question", "언제?", "--context", "1978년에 창단되었다.")
    assert code == 0, err
    loaders = {name for name, _ in transformers_calls}
    assert {"AutoTokenizer.from_pretrained", "AutoConfig.from_pretrained", "AutoModelForQuestionAnswering.from_pretrained"} <= loaders
    assert all(trusted is False for _, trusted in transformers_calls), transformers_calls


def test_predict_trusts_every_loader_when_asked(saved_model, transformers_calls, capsys):
    code, _, err = qaframe(capsys, "predict", "--model", saved_model, "--question", "언제?", "--context", "1978년에 창단되었다.", "--trust-remote-code")
    assert code == 0, err
    loaders = {name for name, _ in transformers_calls}
    assert {"AutoTokenizer.from_pretrained", "AutoConfig.from_pretrained", "AutoModelForQuestionAnswering.from_pretrained"} <= loaders
    assert all(trusted is True for _, trusted in transformers_calls), transformers_calls


@pytest.mark.parametrize("flag, expected", [([], False), (["--trust-remote-code"], True)])
def test_run_passes_trust_remote_code_only_when_asked(flag, expected, tmp_path, transformers_calls, capsys):
    # --resume of a missing file stops the run right after the model's config and tokenizer are loaded
    code, _, err = qaframe(capsys, "run", *TINY_RUN, "--output-dir", tmp_path / "out", "--resume", tmp_path / "none.ckpt", *flag)
    assert code == 2 and "--resume" in err
    assert {name for name, _ in transformers_calls} == {"AutoTokenizer.from_pretrained", "AutoConfig.from_pretrained"}
    assert all(value is expected for _, value in transformers_calls), transformers_calls


@pytest.mark.parametrize("command", ["evaluate", "serve"])
@pytest.mark.parametrize("flag, expected", [([], False), (["--trust-remote-code"], True)])
def test_evaluate_and_serve_hand_the_flag_to_the_predictor(command, flag, expected, saved_model, tmp_path, monkeypatch, capsys):
    from qaframe.errors import UserError
    from qaframe.predictor import Predictor

    seen = []

    def refuse(folder, *, device="cpu", trust_remote_code=False, as_trained=False):
        seen.append(trust_remote_code)
        raise UserError("stopped by the test")

    monkeypatch.setattr(Predictor, "load", staticmethod(refuse))
    args = {"evaluate": ["--corpus", "sample", "--output-dir", tmp_path / "eval"], "serve": ["--port", "0"]}[command]
    code, _, err = qaframe(capsys, command, "--model", saved_model, *args, *flag)
    assert code == 2 and "stopped by the test" in err
    assert seen == [expected]
