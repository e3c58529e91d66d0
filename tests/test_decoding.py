"""Tests of n-best span decoding (qaframe.decoding) on hand-built windows with known logits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qaframe.decoding import postprocess
from qaframe.types import Features, QAExample

NEG = -100.0
Q = None  # a token outside the context: [CLS], [SEP], question tokens


def make_features(windows: list[tuple[int, list]]) -> Features:
    """Features from (example index, per-token offsets) windows; `Q` marks a non-context token."""
    offsets = [(-1, -1) if o is None else o for _, tokens in windows for o in tokens]
    lengths = [len(tokens) for _, tokens in windows]
    n = len(windows)
    return Features(
        input_ids=np.zeros(len(offsets), np.int32),
        row_splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        example_index=np.array([e for e, _ in windows], np.int64),
        start_positions=np.zeros(n, np.int64),
        end_positions=np.zeros(n, np.int64),
        offsets=np.array(offsets, np.int32).reshape(-1, 2),
    )


def logits(width: int, n_windows: int, values: dict) -> np.ndarray:
    """(windows, width) logits at NEG except {(window, column): value}."""
    out = np.full((n_windows, width), NEG)
    for (window, column), value in values.items():
        out[window, column] = value
    return out


def nbest(features, start_logits, end_logits, n_examples, **sizes) -> list[list[tuple]]:
    """Each example's n-best from `postprocess` as (start, end, logit_score), best first (contexts of 200 characters)."""
    examples = [QAExample(id=f"e{i}", title="", question="?", context="x" * 200) for i in range(n_examples)]
    decoded = postprocess(examples, features, start_logits, end_logits, **sizes)
    return [[(e["start"], e["end"], e["logit_score"]) for e in decoded.nbest[example.id]] for example in examples]


# context "aa bb cc dd ee" -> tokens at 0, 3, 6, 9, 12 (two characters each)
CONTEXT = "aa bb cc dd ee"
TOKENS = [(i, i + 2) for i in range(0, 14, 3)]
EXAMPLE = QAExample(id="q1", title="", question="?", context=CONTEXT)


def test_best_span_is_found_across_two_windows_and_duplicates_merge():
    # window 0: [CLS] q [SEP] aa bb cc [SEP]; window 1: [CLS] q [SEP] cc dd ee [SEP]
    features = make_features([(0, [Q, Q, Q, *TOKENS[:3], Q]), (0, [Q, Q, Q, *TOKENS[2:], Q])])
    start = logits(7, 2, {(0, 3): 1.0, (0, 5): 2.0, (1, 3): 3.0, (1, 4): 5.0})
    end = logits(7, 2, {(0, 5): 2.0, (1, 3): 1.0, (1, 5): 4.0})
    decoded = postprocess([EXAMPLE], features, start, end, n_best_size=3)
    best = decoded.nbest["q1"][0]
    assert (best["text"], best["start"], best["end"], best["logit_score"]) == ("dd ee", 9, 14, 9.0)  # from window 1
    # "cc" is in both windows: window 0 scores 2+2, window 1 scores 3+1; only the best copy stays
    assert [c for c in nbest(features, start, end, 1, n_best_size=20)[0] if c[:2] == (6, 8)] == [(6, 8, 4.0)]
    assert decoded.predictions == {"q1": "dd ee"} == decoded.raw_predictions


def test_spans_never_start_in_the_question_nor_leave_the_context():
    # left-aligned window of length 7 inside a width-9 array; columns 7, 8 are padding
    features = make_features([(0, [Q, Q, Q, TOKENS[0], TOKENS[1], TOKENS[2], Q])])
    start = logits(9, 1, {(0, 0): 50.0, (0, 1): 40.0, (0, 7): 60.0, (0, 4): 1.0})
    end = logits(9, 1, {(0, 6): 50.0, (0, 8): 60.0, (0, 0): 45.0, (0, 5): 1.0})
    best = nbest(features, start, end, 1)[0][0]
    assert best[:2] == (3, 8)  # "bb cc": the high logits outside the context are ignored


def test_max_answer_length_limits_the_span_in_tokens():
    features = make_features([(0, [Q, *TOKENS, Q])])
    start = logits(7, 1, {(0, 1): 5.0, (0, 3): 1.5})
    end = logits(7, 1, {(0, 5): 5.0, (0, 3): 1.0})
    assert nbest(features, start, end, 1, max_answer_length=5)[0][0][0] == 0
    best = nbest(features, start, end, 1, max_answer_length=3)[0][0]  # tokens 1..5 are 5 long
    assert best == (6, 14, 6.5)
    assert all(e - s <= 8 for s, e, _ in nbest(features, start, end, 1, max_answer_length=3)[0])


def test_context_first_window_is_decoded_from_its_offsets():
    # left padding side: [CLS] context [SEP] question [SEP], logits already left-aligned
    features = make_features([(0, [Q, TOKENS[3], TOKENS[4], Q, Q, Q, Q])])
    start = logits(7, 1, {(0, 1): 2.0, (0, 4): 9.0})
    end = logits(7, 1, {(0, 2): 2.0, (0, 5): 9.0})
    decoded = postprocess([EXAMPLE], features, start, end)
    assert decoded.predictions["q1"] == "dd ee"


def test_example_without_context_tokens_gets_empty_answer():
    features = make_features([(0, [Q, Q, Q]), (1, [Q, TOKENS[0], Q])])
    start = logits(3, 2, {(0, 1): 9.0, (1, 1): 1.0})
    end = logits(3, 2, {(0, 1): 9.0, (1, 1): 1.0})
    other = QAExample(id="q2", title="", question="?", context=CONTEXT)
    decoded = postprocess([EXAMPLE, other], features, start, end)
    assert decoded.predictions == {"q1": "", "q2": "aa"}
    assert decoded.nbest["q1"] == [] and decoded.raw_predictions["q1"] == ""
    assert nbest(make_features([]), np.zeros((0, 4)), np.zeros((0, 4)), 2) == [[], []]


def test_end_must_not_come_before_start():
    features = make_features([(0, [Q, *TOKENS])])
    start = logits(6, 1, {(0, 5): 9.0, (0, 1): 0.0})
    end = logits(6, 1, {(0, 1): 9.0, (0, 5): 0.0})
    spans = nbest(features, start, end, 1)[0]
    assert all(s < e for s, e, _ in spans)
    assert spans[0][:2] in {(12, 14), (0, 2)}  # 9 + NEG both; never (12, 2)
    assert max(score for _, _, score in spans) == spans[0][2]


class CutLastCharacter:
    """A test refiner: drops the last character of spans whose last token is longer than one character."""

    name = "cut-last"

    def refine(self, context, start, end, last_token_start):
        return (start, end - 1) if end - last_token_start > 1 else (start, end)


def test_postprocess_refines_keeps_raw_spans_and_normalizes():
    context = "abc d"
    example = QAExample(id="x", title="", question="?", context=context)
    features = make_features([(0, [Q, (0, 2), (2, 3), (4, 5)])])
    start = logits(4, 1, {(0, 1): 3.0, (0, 2): 1.0, (0, 3): 0.5})
    end = logits(4, 1, {(0, 2): 2.0, (0, 1): 1.0, (0, 3): 0.5})
    decoded = postprocess([example], features, start, end, refiner=CutLastCharacter())
    assert decoded.raw_predictions["x"] == "abc" and decoded.predictions["x"] == "abc"  # last token "c" is 1 long
    texts = [(e["raw_text"], e["text"]) for e in decoded.nbest["x"]]
    assert ("ab", "a") in texts  # raw "ab" (one token) refined to "a"
    assert sum(e["probability"] for e in decoded.nbest["x"]) == pytest.approx(1.0)
    scores = [e["logit_score"] for e in decoded.nbest["x"]]
    assert scores == sorted(scores, reverse=True)
    for entry in decoded.nbest["x"]:
        assert context[entry["start"] : entry["end"]] == entry["text"]
        assert context[entry["raw_start"] : entry["raw_end"]] == entry["raw_text"]


class DropTrailingC:
    """A test refiner: drops a trailing "c" when that leaves the span's last token something."""

    name = "drop-c"

    def refine(self, context, start, end, last_token_start):
        return (start, end - 1) if context[end - 1] == "c" and end - 1 > last_token_start else (start, end)


def test_spans_the_refiner_maps_to_one_span_merge_keeping_the_best():
    example = QAExample(id="x", title="", question="?", context="abc")
    features = make_features([(0, [Q, (0, 2), (1, 3)])])  # overlapping tokens "ab" and "bc"
    start = logits(3, 1, {(0, 1): 2.0, (0, 2): -1.0})
    end = logits(3, 1, {(0, 1): 1.0, (0, 2): 3.0})
    decoded = postprocess([example], features, start, end, refiner=DropTrailingC())
    # raw "abc" (5.0) and raw "ab" (3.0) both refine to "ab": it stays once, with the best score; raw "bc" (2.0) -> "b"
    entries = [(e["text"], e["start"], e["end"], e["raw_text"], e["logit_score"]) for e in decoded.nbest["x"]]
    assert entries == [("ab", 0, 2, "abc", 5.0), ("b", 1, 2, "bc", 2.0)]
    probability = [e["probability"] for e in decoded.nbest["x"]]
    assert probability == pytest.approx([1 / (1 + np.exp(-3.0)), 1 / (1 + np.exp(3.0))])
    assert decoded.predictions["x"] == "ab" and decoded.raw_predictions["x"] == "abc"


def reference_nbest(features, start_logits, end_logits, n_examples, n_best_size, max_answer_length):
    """Brute force: per window the top-k context starts and ends, every pair checked one by one; (start, end, score)."""
    best: list[dict] = [{} for _ in range(n_examples)]
    width = start_logits.shape[1]
    for w in range(len(features)):
        offsets = features.offsets[features.row_splits[w] : features.row_splits[w + 1]]
        context = [j for j in range(min(len(offsets), width)) if offsets[j][0] >= 0]
        starts = sorted(context, key=lambda j: -start_logits[w, j])[:n_best_size]
        ends = sorted(context, key=lambda j: -end_logits[w, j])[:n_best_size]
        spans = best[features.example_index[w]]
        for s in starts:
            for e in ends:
                if s <= e < s + max_answer_length:
                    key = (int(offsets[s][0]), int(offsets[e][1]))
                    score = float(start_logits[w, s] + end_logits[w, e])
                    if key not in spans or spans[key] < score:
                        spans[key] = score
    return [[(*k, v) for k, v in sorted(spans.items(), key=lambda kv: (-kv[1], kv[0]))][:n_best_size] for spans in best]


@st.composite
def decoding_inputs(draw):
    """Examples tokenized into words, cut into overlapping windows with a question prefix, and random logits."""
    n_examples = draw(st.integers(1, 4))
    max_tokens = draw(st.integers(4, 12))
    windows = []
    for example in range(n_examples):
        n_words = draw(st.integers(1, 25))
        words = [(3 * i, 3 * i + draw(st.integers(1, 2))) for i in range(n_words)]
        question = [Q] * draw(st.integers(1, 3))
        room = max(1, max_tokens - len(question) - 1)
        step = draw(st.integers(1, room))
        first = 0
        while True:
            windows.append((example, [*question, *words[first : first + room], Q]))
            if first + room >= n_words:
                break
            first += step
    features = make_features(windows)
    width = int(features.lengths.max()) + draw(st.integers(0, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start, end = rng.normal(size=(2, len(windows), width))
    return features, start, end, n_examples, draw(st.integers(1, 12)), draw(st.integers(1, 8))


@settings(max_examples=150, deadline=None)
@given(decoding_inputs())
def test_agrees_with_brute_force_reference(inputs):
    features, start, end, n_examples, n_best_size, max_answer_length = inputs
    expected = reference_nbest(features, start, end, n_examples, n_best_size, max_answer_length)
    got = nbest(features, start, end, n_examples, n_best_size=n_best_size, max_answer_length=max_answer_length)
    assert [[c[:2] for c in spans] for spans in got] == [[c[:2] for c in spans] for spans in expected]
    for got_spans, expected_spans in zip(got, expected):
        assert [c[2] for c in got_spans] == pytest.approx([c[2] for c in expected_spans])


def test_shape_mismatch_is_rejected():
    features = make_features([(0, [Q, TOKENS[0]])])
    with pytest.raises(ValueError, match="logits"):
        postprocess([EXAMPLE], features, np.zeros((2, 2)), np.zeros((2, 2)))


@settings(max_examples=100, deadline=None)
@given(decoding_inputs())
def test_float32_logits_agree_with_brute_force_reference(inputs):
    features, start, end, n_examples, n_best_size, max_answer_length = inputs
    start, end = start.astype(np.float32), end.astype(np.float32)
    expected = reference_nbest(features, start, end, n_examples, n_best_size, max_answer_length)
    assert nbest(features, start, end, n_examples, n_best_size=n_best_size, max_answer_length=max_answer_length) == expected


@settings(max_examples=100, deadline=None)
@given(decoding_inputs(), st.booleans())
def test_prediction_is_the_first_nbest_entry_whatever_the_dtype_even_with_ties(inputs, refine):
    features, start, end, n_examples, n_best_size, max_answer_length = inputs
    start, end = np.round(start), np.round(end)  # few distinct values: many equal scores
    examples = [QAExample(id=f"e{i}", title="", question="?", context="abc " * 40) for i in range(n_examples)]
    refiner = CutLastCharacter() if refine else None
    results = [
        postprocess(examples, features, start.astype(dtype), end.astype(dtype), refiner=refiner,
                    n_best_size=n_best_size, max_answer_length=max_answer_length)
        for dtype in (np.float32, np.float64)
    ]
    for decoded in results:
        for example in examples:
            entries = decoded.nbest[example.id]
            assert decoded.predictions[example.id] == (entries[0]["text"] if entries else "")
            assert decoded.raw_predictions[example.id] == (entries[0]["raw_text"] if entries else "")
    assert results[0].predictions == results[1].predictions
    assert results[0].nbest == results[1].nbest
