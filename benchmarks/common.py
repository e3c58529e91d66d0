"""What the benchmarks share: the KorQuAD-sized generated input, model folders, timing and the machine's description.

The input imitates KorQuAD 1.0's dev set: 5,774 questions whose contexts average about 540
characters (90th percentile about 750, a few up to 3,000). Contexts are built from the
sentences of the packaged sample corpus (Korean Wikipedia-style text), questions are drawn from
its questions, and each answer is a word of its context (trailing punctuation dropped), so
every example has a labelled span. `--file` in the benchmarks reads a real KorQuAD/SQuAD file
instead.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from qaframe.types import Answer, QAExample
from qaframe_plugins.corpora import SAMPLE_FOLDER
from qaframe_plugins.models import TINY_FOLDER  # KcBERT vocabulary, 2 layers, hidden 128

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240607
KORQUAD_DEV_QUESTIONS = 5774
# kcbert-base (beomi/kcbert-base config.json): the GPU benchmarks build it with random weights
KCBERT_BASE = {
    "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 30000, "hidden_size": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 300,
    "type_vocab_size": 2, "initializer_range": 0.02,
}
WORD = re.compile(r"[^\s.,?!()\"'·]+")


def sentences_and_questions() -> tuple[list[str], list[str]]:
    """The sentences of the packaged sample corpus's contexts and its questions."""
    sentences, questions = [], []
    for split in ("train", "dev"):
        data = json.loads((SAMPLE_FOLDER / f"{split}.json").read_text(encoding="utf-8"))["data"]
        for paragraph in (p for article in data for p in article["paragraphs"]):
            sentences += [s.strip() for s in re.split(r"(?<=[.?!])\s+", paragraph["context"]) if s.strip()]
            questions += [qa["question"] for qa in paragraph["qas"]]
    return sentences, questions


def generate_examples(n: int = KORQUAD_DEV_QUESTIONS, seed: int = SEED) -> list[QAExample]:
    """KorQuAD-like examples: context lengths mostly log-normal (mean ~540 characters, p90 ~750), a few up to 3,000."""
    rng = random.Random(seed)
    sentences, questions = sentences_and_questions()
    examples = []
    for i in range(n):
        long_tail = rng.random() < 0.005
        target = rng.uniform(1500, 3000) if long_tail else min(3000, max(120, rng.lognormvariate(6.185, 0.3)))
        parts: list[str] = []
        while sum(map(len, parts)) + len(parts) < target:
            parts.append(rng.choice(sentences))
        context = " ".join(parts)
        word = rng.choice(list(WORD.finditer(context)))
        examples.append(QAExample(
            id=f"bench-{i:05d}", title="", question=rng.choice(questions), context=context,
            answers=(Answer(word.group(), word.start()),),
        ))
    return examples


def load_examples(file: str | None, n: int = KORQUAD_DEV_QUESTIONS) -> list[QAExample]:
    """The examples of a KorQuAD/SQuAD-format `file`, or `n` generated ones."""
    if file is None:
        return generate_examples(n)
    from qaframe_plugins.corpora import load_squad_file

    return load_squad_file(Path(file)).examples


def write_squad(examples: list[QAExample], path: Path) -> Path:
    """Write examples as a SQuAD/KorQuAD-format JSON file (one paragraph per example)."""
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question,
                                        "answers": [{"text": a.text, "answer_start": a.start} for a in e.answers]}]}
        for e in examples
    ]
    path.write_text(json.dumps({"version": "bench", "data": [{"title": "bench", "paragraphs": paragraphs}]},
                               ensure_ascii=False), encoding="utf-8")
    return path


def context_stats(examples: list[QAExample]) -> dict:
    """Mean, 90th percentile and maximum context length in characters."""
    lengths = np.array([len(e.context) for e in examples])
    return {"mean": round(float(lengths.mean())), "p90": round(float(np.percentile(lengths, 90))), "max": int(lengths.max())}


def tokenizer_folder() -> Path:
    """The KcBERT tokenizer: the shared kcbert-base folder when present, else the packaged tiny copy (same vocabulary)."""
    for folder in (ROOT / "shared" / "kcbert-base", ROOT.parent / "shared" / "kcbert-base"):
        if (folder / "vocab.txt").exists():
            return folder
    return TINY_FOLDER


def model_folder(shape: str, target: Path) -> Path:
    """A model folder (config + KcBERT tokenizer, no weights): shape `tiny` (2 layers, hidden 128) or `base` (kcbert-base)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(TINY_FOLDER / name, target / name)
    if shape == "base":
        (target / "config.json").write_text(json.dumps(KCBERT_BASE, indent=1))
    else:
        shutil.copy(TINY_FOLDER / "config.json", target / "config.json")
    return target


def register_random_model(name: str, folder: Path) -> None:
    """Register `name` as a model alias with random weights from `folder`'s config, through qaframe's plugin API."""
    from qaframe import hookimpl, plugins
    from qaframe.types import ModelSpec

    class BenchmarkModels:
        @hookimpl
        def register_models(self, register):
            register(name, lambda: ModelSpec(source=str(folder), max_positions=300, random_init=True))

    plugins.get_host().register(BenchmarkModels(), "benchmarks")


def best_of(repeats: int, fn):
    """(fastest wall time in seconds, result of the last call); a previous result is freed before timing."""
    times, result = [], None
    for _ in range(repeats):
        result = None
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return min(times), result


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine() -> dict:
    """What the figures were measured on: CPU, load average, accelerator, versions, numpy's SIMD extensions."""
    import torch
    import transformers

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "load_average": round(os.getloadavg()[0], 2),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        # the vectorized decoding and featurizing run on these (np.partition's SIMD sort needs AVX2 or AVX-512)
        "numpy_simd": np.show_config(mode="dicts").get("SIMD Extensions", {}).get("found"),
    }


def emit(record: dict) -> None:
    """Print one benchmark's JSON line, with the machine it ran on."""
    print(json.dumps({**record, **machine()}, ensure_ascii=False), flush=True)
