"""What a run checks before it trains: examples, featurizer, refiner and metric a plugin hands it.

A plugin's mistake must stop the run at once with one line naming it, not after an epoch of
training (or never, with wrong scores). Also: the final evaluation under --limit-val-batches
scores the windows validation scored.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch
from plugins_for_tests import origin_featurizer

from qaframe import cli as cli_module
from qaframe import hookimpl
from qaframe.decoding import postprocess
from qaframe.errors import UserError
from qaframe.types import CorpusOptions, Features, QAExample
from qaframe_plugins.corpora import SampleCorpus
from qaframe_plugins.refiners import KoreanParticles

SMOKE = ["--model", "tiny", "--max-epochs", "1", "--limit-train-batches", "1", "--limit-val-batches", "1",
         "--train-batch-size", "4", "--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16"]


def run_cli(monkeypatch, capsys, tmp_path, *argv) -> tuple[int, str]:
    """`qaframe run` in-process; (exit code, last line of stderr)."""
    argv = ["run", *SMOKE, "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *argv]
    monkeypatch.setattr(sys, "argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exited:
        cli_module.main(argv)
    return exited.value.code, capsys.readouterr().err.strip().splitlines()[-1]


class Edited(SampleCorpus):
    """The sample corpus with its dev examples passed through `edit`."""

    edit = staticmethod(lambda examples: examples)

    def __init__(self, options: CorpusOptions):
        super().__init__(options)

    def load(self, split):
        loaded = super().load(split)
        return dataclasses.replace(loaded, examples=self.edit(loaded.examples)) if split == "dev" else loaded


def corpus_plugin(edit):
    """A plugin registering corpus 'edited', the sample corpus with its dev examples edited."""
    factory = type("EditedCorpus", (Edited,), {"edit": staticmethod(edit)})

    class Plugin:
        @hookimpl
        def register_corpora(self, register):
            register("edited", factory)

    return Plugin()


def shifted(examples):
    first = examples[0]
    answer = dataclasses.replace(first.answers[0], start=first.answers[0].start + 2)
    return [dataclasses.replace(first, answers=(answer,)), *examples[1:]]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda examples: [examples[0], examples[0], *examples[1:]], r"example id 'sample-dev-\d+' appears more than once"),
        (shifted, r"example 'sample-dev-\d+', answer 1: .* is not the context's text at its start"),
        (lambda examples: [dataclasses.replace(example, answers=()) for example in examples],
         r"no answerable questions \(\d+ examples, none with an answer\); training and scoring need answered questions"),
    ],
    ids=["repeated-id", "answer-off-its-offset", "no-answerable-question"],
)
def test_a_corpus_plugins_bad_examples_stop_the_run_before_training(edit, message, register_plugin, monkeypatch, capsys, tmp_path):
    import re

    register_plugin(corpus_plugin(edit), name="edited")
    code, last = run_cli(monkeypatch, capsys, tmp_path, "--corpus", "edited")
    assert code == 2 and last.startswith("Error: corpus 'edited', dev split: ") and re.search(message, last), last
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("print_config", [False, True])
def test_a_featurizer_without_offsets_is_refused_before_any_data_is_read(print_config, register_plugin, monkeypatch, capsys, tmp_path):
    register_plugin(origin_featurizer, name="origin")
    extra = ["--print-config"] if print_config else []
    code, last = run_cli(monkeypatch, capsys, tmp_path, "--corpus", "sample", "--featurizer", "origin-style", *extra)
    assert code == 2 and "featurizer 'origin-style' makes no offset mapping" in last
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # nothing featurized or cached


class NoF1:
    """A metric whose compute() leaves out f1."""

    name = "no-f1"

    def compute(self, predictions, references):
        return {"exact_match": 100.0}


class Extras:
    @hookimpl
    def register_metrics(self, register):
        register("no-f1", NoF1)


def test_a_metric_breaking_its_contract_stops_the_run_before_training(register_plugin, monkeypatch, capsys, tmp_path):
    register_plugin(Extras(), name="extras")
    register_plugin(corpus_plugin(lambda examples: examples), name="edited")
    monkeypatch.setattr(Edited, "metric", "no-f1")  # a corpus names its metric: the sample corpus, scored with no-f1
    code, last = run_cli(monkeypatch, capsys, tmp_path, "--corpus", "edited")
    assert code == 2 and "metric 'no-f1' returned {'exact_match': 100.0}" in last, last
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_a_refiner_that_moves_the_start_is_one_line_naming_it(kcbert_tokenizer):
    from qaframe_plugins.featurizers import SlidingWindowFeaturizer
    from qaframe.types import FeaturizerSettings

    class Greedy(KoreanParticles):
        name = "greedy"

        def refine(self, context, start, end, last_token_start):
            return 0, len(context)  # the whole context, 17 characters

    example = QAExample(id="g", title="", question="누구를 만났나?", context="그는 1989년 임수경을 만났다")
    features = SlidingWindowFeaturizer(FeaturizerSettings(64, 16, 16)).featurize([example], kcbert_tokenizer)
    tokens = kcbert_tokenizer.convert_ids_to_tokens(features.input_ids.tolist())
    start_logits, end_logits = np.zeros((2, 1, len(tokens)), np.float32)
    start_logits[0, tokens.index("임")] = end_logits[0, tokens.index("##경을")] = 8.0
    with pytest.raises(UserError, match=r"refiner .greedy. returned \(0, 17\) for the span \(9, 13\) .* keeps the start"):
        postprocess([example], features, start_logits, end_logits, refiner=Greedy())


@pytest.mark.parametrize("group_by_length, replicas", [(True, 1), (False, 1), (True, 2), (False, 3)])
def test_the_final_evaluation_under_a_limit_scores_the_windows_validation_scored(group_by_length, replicas):
    from qaframe.data import LengthGroupedBatchSampler, example_lengths
    from qaframe.predictor import window_logits

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 20, size=50)
    features = Features(
        input_ids=np.ones(int(lengths.sum()), np.int32), row_splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        example_index=np.arange(50, dtype=np.int64) // 2, start_positions=np.zeros(50, np.int64), end_positions=np.zeros(50, np.int64),
    )

    class Zeros(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(input_ids.shape)
            return type("Output", (), {"start_logits": logits, "end_logits": logits})

    _, _, seen = window_logits(Zeros(), features, pad_token_id=0, batch_size=4, limit_batches=2,
                               group_by_length=group_by_length, replicas=replicas)
    validated = set()
    for rank in range(replicas):  # what each rank's validation loader took under --limit-val-batches 2
        sampler = LengthGroupedBatchSampler(example_lengths(features), 4, shuffle=False, group_by_length=group_by_length,
                                            num_replicas=replicas, rank=rank)
        for batch in list(sampler)[:2]:
            validated.update(batch)
    assert set(np.flatnonzero(seen).tolist()) == validated
