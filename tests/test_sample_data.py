"""Checks for the built-in data: the `sample` corpus files and the synthetic generator."""

from __future__ import annotations

import ast
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest

from qaframe.errors import UserError
from qaframe_plugins import synthetic

PLUGINS = Path(__file__).parent.parent / "plugins"
SAMPLE = PLUGINS / "data" / "sample"


def load_sample(split: str) -> dict:
    return json.loads((SAMPLE / f"{split}.json").read_text(encoding="utf-8"))


def flatten(doc: dict) -> list[tuple[str, dict]]:
    """(context, qa) pairs of a SQuAD-format document."""
    return [(p["context"], qa) for article in doc["data"] for p in article["paragraphs"] for qa in p["qas"]]


@pytest.fixture(scope="module")
def sample() -> dict[str, dict]:
    return {split: load_sample(split) for split in ("train", "dev")}


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return {split: synthetic.synthetic_dataset(split) for split in ("train", "dev")}


# --- the sample corpus -------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "dev"])
def test_sample_is_squad_format(sample, split):
    doc = sample[split]
    assert set(doc) == {"version", "data"}
    assert isinstance(doc["version"], str)
    for article in doc["data"]:
        assert set(article) == {"title", "paragraphs"} and isinstance(article["title"], str)
        for paragraph in article["paragraphs"]:
            assert set(paragraph) == {"context", "qas"} and paragraph["context"]
            for qa in paragraph["qas"]:
                assert set(qa) == {"id", "question", "answers"}
                assert isinstance(qa["id"], str) and qa["question"].strip() and qa["answers"]
                for answer in qa["answers"]:
                    assert set(answer) == {"text", "answer_start"}
                    assert isinstance(answer["answer_start"], int) and answer["text"]


def test_sample_text_is_clean():
    for split in ("train", "dev"):
        raw = (SAMPLE / f"{split}.json").read_bytes()
        assert b"\r" not in raw
        assert "\u200b" not in raw.decode("utf-8")


def test_sample_counts(sample):
    paragraphs = sum(len(a["paragraphs"]) for doc in sample.values() for a in doc["data"])
    questions = sum(len(flatten(doc)) for doc in sample.values())
    assert paragraphs >= 40
    assert questions >= 250
    assert len(flatten(sample["dev"])) >= 50
    assert len(flatten(sample["train"])) > len(flatten(sample["dev"]))


def test_sample_ids_unique_across_splits(sample):
    ids = [qa["id"] for doc in sample.values() for _, qa in flatten(doc)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("split", ["train", "dev"])
def test_sample_answer_start_points_at_answer(sample, split):
    for context, qa in flatten(sample[split]):
        for answer in qa["answers"]:
            start, text = answer["answer_start"], answer["text"]
            assert 0 <= start and context[start : start + len(text)] == text, qa["id"]


def test_sample_has_answers_at_both_ends_of_a_context(sample):
    answers = [(c, a) for doc in sample.values() for c, qa in flatten(doc) for a in qa["answers"]]
    assert any(a["answer_start"] == 0 for _, a in answers)
    assert any(a["answer_start"] + len(a["text"]) == len(c) for c, a in answers)


def test_sample_answers_followed_by_particle(sample):
    answers = [(c, a) for doc in sample.values() for c, qa in flatten(doc) for a in qa["answers"][:1]]
    attached = sum(is_attached(c, a) for c, a in answers)
    assert attached >= len(answers) / 3


def test_sample_multi_answer_only_in_dev(sample):
    assert all(len(qa["answers"]) == 1 for _, qa in flatten(sample["train"]))
    assert sum(len(qa["answers"]) > 1 for _, qa in flatten(sample["dev"])) >= 2


# --- the synthetic generator -------------------------------------------------------------


def is_attached(context: str, answer: dict) -> bool:
    """Whether the answer is followed, with no space, by a Hangul syllable (a particle)."""
    end = answer["answer_start"] + len(answer["text"])
    return end < len(context) and "\uac00" <= context[end] <= "\ud7a3"


def test_synthetic_record_shape():
    records = synthetic.generate_synthetic(10, seed=1)
    assert len(records) == 10
    for record in records:
        assert set(record) == {"id", "title", "context", "question", "answers"}
        assert len(record["answers"]) == 1 and set(record["answers"][0]) == {"text", "answer_start"}
    assert synthetic.generate_synthetic(0, seed=1) == []


def test_synthetic_is_deterministic_per_seed():
    assert synthetic.generate_synthetic(50, seed=7) == synthetic.generate_synthetic(50, seed=7)
    assert synthetic.generate_synthetic(50, seed=7) != synthetic.generate_synthetic(50, seed=8)


def test_synthetic_splits_are_the_ones_the_quickstart_was_measured_on(splits):
    # README's quickstart scores (exact match 96.67) belong to exactly these records: any change to the generator shows here
    digests = {split: hashlib.sha256(json.dumps(records, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
               for split, records in splits.items()}
    assert digests == {
        "train": "d580817c0525706b3f2598bf4e74f1f062cb0a4e0bd045bec64e7b7165fe2a4e",
        "dev": "b207e77fa39e7f2c0210134bcfcb17390f0119c86a4b8d3983396947347cb72a",
    }


def test_synthetic_split_sizes_and_disjointness(splits):
    assert len(splits["train"]) == 2400 and len(splits["dev"]) == 300
    train = {(r["context"], r["question"]) for r in splits["train"]}
    assert not train & {(r["context"], r["question"]) for r in splits["dev"]}
    ids = [r["id"] for split in splits.values() for r in split]
    assert len(ids) == len(set(ids))


def test_synthetic_unknown_split_is_refused():
    with pytest.raises(UserError, match=r"^corpus 'synthetic' has no 'test' split \(it has: train, dev\)$"):
        synthetic.synthetic_dataset("test")


@pytest.mark.parametrize("split", ["train", "dev"])
def test_synthetic_answer_start_points_at_answer(splits, split):
    for record in splits[split]:
        answer = record["answers"][0]
        start, text = answer["answer_start"], answer["text"]
        assert record["context"][start : start + len(text)] == text, record["id"]


def test_synthetic_answer_depends_on_question(splits):
    answers_by_context = defaultdict(set)
    for record in splits["train"]:
        answers_by_context[record["context"]].add((record["question"], record["answers"][0]["text"]))
    multi = [pairs for pairs in answers_by_context.values() if len(pairs) > 1]
    assert multi, "no context is asked more than one question"
    assert all(len({answer for _, answer in pairs}) == len(pairs) for pairs in multi)
    asked = {kind for kind in ("고향", "출신", "도시", "직업", "일을", "졸업", "음식") if any(kind in r["question"] for r in splits["train"])}
    assert {"고향", "직업", "졸업", "음식"} <= asked


def test_synthetic_exercises_particle_trimming(splits):
    records = splits["train"]
    attached = sum(is_attached(r["context"], r["answers"][0]) for r in records)
    assert 0 < attached < len(records)


def test_synthetic_module_imports_no_ml_framework():
    tree = ast.parse((PLUGINS / "synthetic.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"torch", "transformers", "numpy"}
