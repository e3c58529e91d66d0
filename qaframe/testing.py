"""A pytest plugin for plugin authors: an isolated plugin host, in-process registration, conformance checks.

Installed with qaframe (entry point `pytest11`), so in a plugin's own tests:

    def test_my_corpus_fits(qaframe_host, register_plugin):
        register_plugin(my_plugin_module)
        check_corpus(qaframe_host.create("corpus", "my-corpus", CorpusOptions(data_dir=...)))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from qaframe import plugins as plugin_module
from qaframe.errors import UserError
from qaframe.plugins import PluginHost
from qaframe.types import (
    Corpus,
    CorpusSplit,
    Features,
    Featurizer,
    Metric,
    ModelSpec,
    QAExample,
    Refiner,
    SchedulerSettings,
    check_examples,
)


def isolated_host() -> PluginHost:
    """A new PluginHost with qaframe's built-ins only."""
    host = PluginHost()
    host.load_entry_points(disabled=("third-party",))
    return host


@pytest.fixture
def qaframe_host(monkeypatch) -> PluginHost:
    """An isolated plugin host with the built-ins only; qaframe (CLI included) uses it during the test."""
    host = isolated_host()
    monkeypatch.setattr(plugin_module, "get_host", lambda: host)
    return host


@pytest.fixture
def register_plugin(qaframe_host):
    """Register an in-process plugin object for one test: `register_plugin(obj, name="mine")`."""
    added: list[str] = []

    def register(plugin: object, name: str | None = None) -> PluginHost:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if not qaframe_host.register(plugin, name):
            raise AssertionError(f"plugin {name!r} failed validation: {qaframe_host.broken[-1].error}")
        added.append(name)
        return qaframe_host

    yield register
    for name in added:
        qaframe_host.unregister(name)


# -- conformance checks ------------------------------------------------------------
def check_corpus(corpus: Corpus, splits: Sequence[str] | None = None) -> dict[str, CorpusSplit]:
    """Assert that a corpus fits the contract: splits load into well-formed examples with aligned answers."""
    assert isinstance(getattr(corpus, "metric", None), str) and corpus.metric, "corpus.metric must name a metric plugin"
    assert isinstance(getattr(corpus, "refiner", None), str) and corpus.refiner, "corpus.refiner must name a refiner or 'none'"
    host = plugin_module.get_host()  # what a run resolves the names with (the test's qaframe_host under the fixture)
    for kind, name in [("metric", corpus.metric)] + ([] if corpus.refiner == "none" else [("refiner", corpus.refiner)]):
        try:
            host.registry(kind).get(name)
        except UserError as error:
            raise AssertionError(f"corpus.{kind}: {error}") from None
    names = tuple(corpus.splits())
    assert names and all(isinstance(s, str) for s in names), "corpus.splits() must return split names"
    loaded = {}
    for split in splits or names:
        result = corpus.load(split)
        assert isinstance(result, CorpusSplit), f"load({split!r}) must return a CorpusSplit"
        assert result.examples, f"split {split!r} has no examples"
        for example in result.examples:
            assert isinstance(example, QAExample), f"{example!r} is not a QAExample"
            assert example.id and example.question and example.context, f"example {example.id!r} lacks id, question or context"
            assert example.is_impossible or example.answers, f"answerable example {example.id!r} has no answers"
        try:  # unique ids, answers at their offsets: what a run checks too
            check_examples(result.examples, f"split {split!r}")
        except UserError as error:
            raise AssertionError(str(error)) from None
        loaded[split] = result
    return loaded


def check_featurizer(featurizer: Featurizer, tokenizer, examples: Sequence[QAExample]) -> Features:
    """Assert that a featurizer's windows fit the contract: every token column as long as input_ids, offsets present and
    only on context tokens, labels that decode to the answer or sit at CLS."""
    for attribute in ("name", "version", "settings"):
        assert hasattr(featurizer, attribute), f"featurizer lacks {attribute!r}"
    features = featurizer.featurize(examples, tokenizer)
    assert isinstance(features, Features), "featurize() must return Features"
    n = len(features)
    assert n >= len(examples), "every example needs at least one window"
    assert features.row_splits[0] == 0 and features.row_splits[-1] == len(features.input_ids), "row_splits must cover input_ids"
    assert np.all(features.lengths > 0) and np.all(features.lengths <= featurizer.settings.max_seq_length), "window lengths out of range"
    for column in ("example_index", "start_positions", "end_positions"):
        assert len(getattr(features, column)) == n, f"{column} needs one entry per window"
    assert set(features.example_index.tolist()) == set(range(len(examples))), "every example must own a window"
    assert np.all(features.start_positions <= features.end_positions), "start after end"
    assert np.all(features.end_positions < features.lengths), "label outside its window"
    assert features.offsets is not None, (
        "featurize() must record offsets: evaluation and prediction decode answers through them (qaframe run refuses a featurizer without)"
    )
    tokens = len(features.input_ids)
    if features.token_type_ids is not None:
        assert len(features.token_type_ids) == tokens, f"token_type_ids has {len(features.token_type_ids)} entries for {tokens} input_ids"
    assert features.offsets.shape == (tokens, 2), f"offsets must be (tokens, 2) = ({tokens}, 2), got {features.offsets.shape}"
    # special tokens ([UNK] aside, which stands for context text) never carry offsets
    special_ids = sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id})
    for i in range(n):
        start, end = int(features.start_positions[i]), int(features.end_positions[i])
        ids = features.input_ids[features.row_splits[i] : features.row_splits[i + 1]]
        offsets = features.offsets[features.row_splits[i] : features.row_splits[i + 1]]
        example = examples[int(features.example_index[i])]
        placed = np.flatnonzero(np.any(offsets != -1, axis=1))  # the tokens that claim context characters
        special = placed[np.isin(ids[placed], special_ids)]
        assert not special.size, (
            f"window {i} of {example.id!r}: special token {special[0]} has offsets {offsets[special[0]].tolist()}; "
            "every token outside the context needs (-1, -1)"
        )
        gap = np.flatnonzero(np.diff(placed) > 1)
        assert not gap.size, (
            f"window {i} of {example.id!r}: tokens {placed[0]}-{placed[gap[0]]} and {placed[gap[0] + 1]}-{placed[-1]} "
            "both have offsets, but only the context's tokens may; question tokens need (-1, -1)"
        )
        if offsets[start, 0] < 0:  # the answer is not wholly in this window
            assert start == end and (tokenizer.cls_token_id is None or ids[start] == tokenizer.cls_token_id), (
                f"window {i} of {example.id!r} labels tokens {start}-{end} outside the context; "
                "a window without the answer is labelled at the CLS index (start = end = CLS)"
            )
            continue
        answer = example.answers[0]
        first = answer.start + len(answer.text) - len(answer.text.lstrip())
        last = answer.end - (len(answer.text) - len(answer.text.rstrip()))
        labelled = example.context[offsets[start, 0] : offsets[end, 1]]
        # the label is the smallest token span covering the answer: its first token holds the
        # answer's first character and its last token the answer's last character
        assert offsets[start, 0] <= first < offsets[start, 1] and offsets[end, 0] < last <= offsets[end, 1], (
            f"window {i} of {example.id!r} labels {labelled!r}, gold is {answer.text!r}"
        )
    return features


def check_metric(metric: Metric) -> None:
    """Assert that a metric scores perfect, wrong and empty predictions in the 0-100 range."""
    assert isinstance(getattr(metric, "name", None), str), "metric.name must be a string"
    references = {"a": ["서울특별시", "서울"], "b": ["1987년"]}
    perfect = metric.compute({"a": "서울", "b": "1987년"}, references)
    assert math.isclose(perfect["exact_match"], 100.0) and math.isclose(perfect["f1"], 100.0), perfect
    wrong = metric.compute({"a": "부산", "b": ""}, references)
    assert wrong["exact_match"] == 0.0 and 0.0 <= wrong["f1"] < 100.0, wrong


def check_refiner(refiner: Refiner, context: str, spans: Sequence[tuple[int, int, int]]) -> None:
    """Assert that refined spans stay non-empty, inside the context and inside the last token."""
    assert isinstance(getattr(refiner, "name", None), str), "refiner.name must be a string"
    for start, end, last_token_start in spans:
        new_start, new_end = refiner.refine(context, start, end, last_token_start)
        assert 0 <= new_start < new_end <= len(context), f"refined span ({new_start}, {new_end}) leaves the context"
        assert new_start == start and last_token_start < new_end <= end, (
            f"refiner may only trim inside the last token: ({start}, {end}) -> ({new_start}, {new_end})"
        )


def check_optimizer(optimizer_factory, settings) -> None:
    """Assert that an optimizer factory builds a working torch optimizer for a small model."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = optimizer_factory(model, settings)
    assert isinstance(optimizer, torch.optim.Optimizer), "optimizer factory must return a torch.optim.Optimizer"
    covered = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert covered == {id(p) for p in model.parameters()}, "every trainable parameter must be optimized exactly once"
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()


def check_scheduler(scheduler_factory, total_steps: int = 20, warmup_steps: int = 4) -> list[float]:
    """Assert that a scheduler factory's schedule drives the optimizer it is given, step by step, at finite rates >= 0, not all 0."""
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = scheduler_factory(optimizer, SchedulerSettings(total_steps=total_steps, warmup_steps=warmup_steps))
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler), "scheduler factory must return an LRScheduler"
    assert scheduler.optimizer is optimizer, "the scheduler must drive the optimizer the factory is given"
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(math.isfinite(r) and r >= 0 for r in rates), rates
    assert any(r > 0 for r in rates), "the learning rate is 0 at every step, so nothing would train"
    return rates


def check_head(head_factory, spec: ModelSpec, folder: str | Path) -> None:
    """Assert that a head factory builds a torch module whose forward gives (batch, sequence) start and end logits, and
    whose save_pretrained(folder) writes what the factory loads back (`ModelSpec(source=folder)`) with the same logits."""
    import torch

    inputs = {
        "input_ids": torch.tensor([[2, 5, 6, 3, 7, 8, 9, 3], [2, 5, 3, 7, 3, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3]),
        "token_type_ids": torch.tensor([[0] * 4 + [1] * 4, [0] * 3 + [1] * 2 + [0] * 3]),
    }

    def logits(model) -> torch.Tensor:
        assert isinstance(model, torch.nn.Module), f"head factory must return a torch.nn.Module, got a {type(model).__name__}"
        model.eval()
        with torch.no_grad():
            output = model(**inputs)
        assert hasattr(output, "start_logits") and hasattr(output, "end_logits"), (
            f"forward must return an object with start_logits and end_logits (e.g. transformers' "
            f"QuestionAnsweringModelOutput), got a {type(output).__name__}"
        )
        for name in ("start_logits", "end_logits"):
            shape = tuple(getattr(output, name).shape)
            assert shape == (2, 8), f"{name} must be (batch, sequence) = (2, 8), got {shape}"
        return torch.stack([output.start_logits, output.end_logits])

    model = head_factory(spec, pretrained=False)
    built = logits(model)
    assert callable(getattr(model, "save_pretrained", None)), f"{type(model).__name__} needs save_pretrained(folder)"
    model.save_pretrained(folder)
    loaded = logits(head_factory(ModelSpec(source=str(folder)), pretrained=True))
    assert torch.allclose(built, loaded, atol=1e-5), "the model loaded back from what save_pretrained wrote gives other logits"
