"""The example plugins in examples/ are installed, listed by `qaframe plugins --json`, and carry a `qaframe run` to the end.

README's install command (the one CI runs) installs every examples/*/ folder; a missing install is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QAFRAME = str(Path(sys.executable).with_name("qaframe"))
# example folder -> (kind, component name, distribution)
EXAMPLES = {
    "klue-mrc-corpus": ("corpus", "klue-mrc", "qaframe-klue-mrc"),
    "nfc-featurizer": ("featurizer", "nfc-sliding-window", "qaframe-nfc-featurizer"),
}
SMOKE = [
    "--model", "tiny", "--max-epochs", "1", "--limit-train-batches", "1", "--max-seq-length", "128", "--doc-stride", "32",
    "--train-batch-size", "8", "--eval-batch-size", "32", "--accelerator", "cpu",
]


def test_readme_install_command_installs_every_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    install = readme[readme.index("<!-- install -->") + 2]
    folders = sorted(p.parent.name for p in (ROOT / "examples").glob("*/pyproject.toml"))
    assert folders == sorted(EXAMPLES)
    words = install.split()
    editable = {words[i + 1] for i, word in enumerate(words[:-1]) if word == "-e"}
    assert {f"examples/{folder}" for folder in folders} <= editable, install


def environment() -> dict[str, str]:
    """This process's environment without QAFRAME_DISABLE_PLUGINS, so every installed plugin loads."""
    return {k: v for k, v in os.environ.items() if k != "QAFRAME_DISABLE_PLUGINS"}


@pytest.fixture(scope="module")
def listing() -> list[dict]:
    """`qaframe plugins --json`, run as a user would."""
    result = subprocess.run([QAFRAME, "plugins", "--json"], capture_output=True, text=True, env=environment(), timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_example_folder_is_covered():
    assert sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "pyproject.toml").is_file()) == sorted(EXAMPLES)


@pytest.mark.parametrize("folder", sorted(EXAMPLES))
def test_example_plugin_is_installed_and_listed(listing, folder):
    kind, name, distribution = EXAMPLES[folder]
    rows = [r for r in listing if r["kind"] == kind and r["name"] == name]
    assert rows, f"{kind} '{name}' is not installed: run `pip install -e examples/{folder}` (CI installs every examples/*/ folder)"
    assert [(r["distribution"], r["status"]) for r in rows] == [(distribution, "ok")], rows


def run(tmp_path: Path, *flags: str) -> dict:
    """`qaframe run` with smoke limits into tmp_path/out; its metrics.json."""
    output = tmp_path / "out"
    command = [QAFRAME, "run", *flags, *SMOKE, "--output-dir", str(output), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=180)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-3000:]}"
    assert (output / "metrics.json").is_file(), result.stderr[-3000:]
    return json.loads((output / "metrics.json").read_text(encoding="utf-8"))


def test_klue_mrc_corpus_runs_end_to_end(tmp_path, listing):
    assert any(r["name"] == "klue-mrc" for r in listing), "run `pip install -e examples/klue-mrc-corpus`"
    metrics = run(tmp_path, "--corpus", "klue-mrc")
    assert (metrics["corpus"], metrics["metric"], metrics["refiner"]) == ("klue-mrc", "korquad", "korean-particles")
    assert metrics["examples"] == 11  # the packaged dev sample: 12 questions, 1 unanswerable (not scored)


def test_nfc_featurizer_runs_end_to_end(tmp_path, listing):
    assert any(r["name"] == "nfc-sliding-window" for r in listing), "run `pip install -e examples/nfc-featurizer`"
    metrics = run(tmp_path, "--corpus", "sample", "--featurizer", "nfc-sliding-window")
    assert metrics["examples"] > 0
    config = json.loads((tmp_path / "out" / "model" / "qaframe.json").read_text(encoding="utf-8"))
    assert config["featurizer"] == "nfc-sliding-window"  # so a served model cleans its input the same way
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))
    contexts = "\n".join(p["context"] for a in json.loads((ROOT / "plugins/data/sample/dev.json").read_text(encoding="utf-8"))["data"] for p in a["paragraphs"])
    assert predictions and all(text and text in contexts for text in predictions.values())
    # the saved model cleans what it is asked and answers with spans of the text it was given
    from qaframe.predictor import Predictor

    context = unicodedata.normalize("NFD", "솔빛시는 중부 내륙 분지의 도시로, 1962년에 시로 승격하였다.").replace(" ", " \u200b")
    answers = Predictor.load(tmp_path / "out" / "model").answer([("솔빛시가 시로 승격한 해는?", context)], top_k=3)[0]
    assert answers and all(context[a["start"] : a["end"]] == a["text"] for a in answers)
