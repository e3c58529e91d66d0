"""N-best span decoding over all windows of an example, vectorized with numpy.

Per window, the `n_best_size` best start tokens and best end tokens are chosen among the
window's context tokens (those with an offset), best first with ties going to the lower
column, and every start/end pair is scored at once as a (k, k) matrix by broadcasting;
pairs that end before they start or are longer than `max_answer_length` tokens score -inf.
Windows are handled CHUNK at a time, so the temporaries stay in the CPU cache and memory
stays flat however large the dev set. For float32 logits the best tokens are picked by a
partition of int64 keys that pack each logit's order with its column (`_top_float32`).

`postprocess` takes each example's best answer straight from the pair scores: each window's
best pair (the first of equal scores), then each example's best window (the first of equal
scores), so no candidate list is sorted and no Python runs per candidate. The n-best lists
are built only when `Decoded.nbest` is first read: a window's spans are distinct, so only
its `n_best_size` best pairs can reach its example's n-best and just those are kept; the
candidates of all windows are sorted at once by example and score (equal scores in window,
then pair order, so the first entry is always the prediction); the same character span found
by several (overlapping) windows keeps its best score, and each example keeps its
`n_best_size` best spans, with texts, refined spans and softmax probabilities.

Unlike the Hugging Face recipe, which takes the n-best starts and ends among all tokens and
drops non-context ones afterwards, the n-best here are taken among context tokens only, so a
question token with a high logit never crowds out a valid span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Sequence

import numpy as np

from qaframe.errors import UserError
from qaframe.text import nfc_position, original_position, to_nfc
from qaframe.types import Features, QAExample, Refiner

CHUNK = 512  # windows handled at once: their temporaries stay small enough for the CPU cache
_LOW = 0xFFFFFFFF  # the low 32 bits of a packed int64 key: the inverted column
_NO_KEY = -np.int64(np.float32(np.inf).view(np.int32))  # the key of -inf


@dataclass
class Decoded:
    """Answers per example id: refined best texts, unrefined best texts and the n-best lists (built when first read)."""

    predictions: dict[str, str]
    raw_predictions: dict[str, str]
    build_nbest: Callable[[], dict[str, list[dict]]] = field(repr=False, compare=False)

    @cached_property
    def nbest(self) -> dict[str, list[dict]]:
        """{id: [{"text","start","end","logit_score","probability","raw_text","raw_start","raw_end"}, ...]}, best first:
        `logit_score` is the span's start logit plus end logit, `probability` its softmax over the example's n-best."""
        return self.build_nbest()


@dataclass
class _Spans:
    """Flat candidate columns, grouped by example (ascending) and best first inside each example."""

    example: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    last_token_start: np.ndarray

    def bounds(self, n_examples: int) -> list[int]:
        """Where each example's rows begin, and the end: example i owns rows bounds[i]:bounds[i+1]."""
        return np.searchsorted(self.example, np.arange(n_examples + 1)).tolist()


@dataclass
class _Pairs:
    """Each window's k best context starts and ends (columns and logits, best first); pair a * k + b joins start a with end b."""

    start_cols: np.ndarray  # (windows, k) int32
    end_cols: np.ndarray  # (windows, k) int32
    top_starts: np.ndarray  # (windows, k) their logits
    top_ends: np.ndarray  # (windows, k)
    max_answer_length: int

    @property
    def k(self) -> int:
        """Starts (and ends) kept per window."""
        return self.start_cols.shape[1]

    def scores(self, rows: slice) -> np.ndarray:
        """(windows in `rows`, k * k) pair scores: start logit + end logit, -inf where the pair is not a span."""
        # token count minus one; a negative one (end before start) wraps around to a huge unsigned value
        span = (self.end_cols[rows, None, :] - self.start_cols[rows, :, None]).view(np.uint32)
        limit = (span < self.max_answer_length).astype(self.top_starts.dtype)
        limit -= 0.5
        limit *= np.inf  # +inf for a span, -inf otherwise: a minimum masks faster than a boolean select
        scores = np.minimum(self.top_starts[rows, :, None] + self.top_ends[rows, None, :], limit)
        return scores.reshape(len(scores), -1)


def _as_float(logits) -> np.ndarray:
    array = np.asarray(logits)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


def _context_tokens(features: Features, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of the first `width` tokens of every window is a context token (flat), and where each window begins."""
    if features.offsets is None:
        raise ValueError("features have no offsets: decoding needs a featurizer that records them")
    is_context = features.offsets[:, 0] >= 0
    lengths = np.minimum(features.lengths, width)
    if np.array_equal(lengths, features.lengths):
        return is_context, features.row_splits
    # windows longer than the logits: drop their tail
    inside = np.arange(width)[None, :] < lengths[:, None]
    is_context = is_context[(features.row_splits[:-1, None] + np.arange(width)[None, :])[inside]]
    return is_context, np.concatenate([[0], np.cumsum(lengths)])


def _key(bits: np.ndarray) -> np.ndarray:
    """int32 keys that order like the float32 numbers whose bits they take (-0.0 and 0.0 get the same key)."""
    sign = bits >> 31
    return ((bits & 0x7FFFFFFF) ^ sign) - sign


def _value(keys: np.ndarray) -> np.ndarray:
    """The float32 numbers of int32 keys (the inverse of `_key`)."""
    sign = keys >> 31
    return (((keys ^ sign) - sign) | (sign << 31)).view(np.float32)


def _top_float32(logits: np.ndarray, ceiling: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of the k largest context logits of each row, best first, ties to the lower column.

    Each logit becomes one int64: a key that orders like the logit, above its inverted column;
    `ceiling` (from `_key_ceiling`) turns the keys outside the context into those of -inf. A
    plain (SIMD) partition of the keys then picks the columns, about twice as fast as an
    argpartition of the logits.
    """
    keys = _key(logits.view(np.int32)).astype(np.int64)
    keys <<= 32
    keys |= _LOW - np.arange(logits.shape[1])
    np.minimum(keys, ceiling, out=keys)
    keys.partition(keys.shape[1] - k, axis=1)
    top = np.sort(keys[:, keys.shape[1] - k :], axis=1)[:, ::-1]
    return _LOW - (top & _LOW), _value((top >> 32).astype(np.int32))


def _key_ceiling(context: np.ndarray) -> np.ndarray:
    """The largest packed key each column may keep: any inside the context, that of -inf outside."""
    return np.where(context, np.iinfo(np.int64).max, (_NO_KEY << 32) | (_LOW - np.arange(context.shape[1])))


def _top_sorted(logits: np.ndarray, context: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """What `_top_float32` returns, for logits of other dtypes, by a stable argsort."""
    masked = np.where(context, logits, -np.inf)
    columns = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return columns, np.take_along_axis(masked, columns, axis=1)


def _chunks(windows: int):
    """Row slices of CHUNK windows."""
    return (slice(a, min(a + CHUNK, windows)) for a in range(0, windows, CHUNK))


def _empty() -> _Spans:
    nothing = np.zeros(0, dtype=np.int64)
    return _Spans(nothing, nothing, nothing, np.zeros(0), nothing)


def _pairs(features: Features, start_logits, end_logits, n_examples: int, n_best_size: int, max_answer_length: int):
    """Each window's best context starts and ends, or None when no window can hold a span; CHUNK windows at a time."""
    start_logits, end_logits = _as_float(start_logits), _as_float(end_logits)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2 or start_logits.shape[0] != len(features):
        raise ValueError(
            f"start/end logits must both be (windows={len(features)}, width); got {start_logits.shape} and {end_logits.shape}"
        )
    if len(features) and int(features.example_index.max()) >= n_examples:
        raise ValueError(f"features refer to example {int(features.example_index.max())}, but there are {n_examples}")
    windows, width = start_logits.shape
    if windows == 0 or width == 0 or n_best_size < 1 or max_answer_length < 1:
        return None
    is_context, splits = _context_tokens(features, width)
    k = min(n_best_size, width)
    dtype = np.result_type(start_logits, end_logits)
    start_logits, end_logits = start_logits.astype(dtype, copy=False), end_logits.astype(dtype, copy=False)
    pairs = _Pairs(
        np.empty((windows, k), np.int32), np.empty((windows, k), np.int32),
        np.empty((windows, k), dtype), np.empty((windows, k), dtype), max_answer_length,
    )
    columns = np.arange(width)
    for rows in _chunks(windows):
        lengths = splits[rows.start + 1 : rows.stop + 1] - splits[rows]
        context = np.zeros((len(lengths), width), dtype=bool)
        context[columns[None, :] < lengths[:, None]] = is_context[splits[rows.start] : splits[rows.stop]]
        if dtype == np.float32:
            ceiling = _key_ceiling(context)
            pairs.start_cols[rows], pairs.top_starts[rows] = _top_float32(start_logits[rows], ceiling, k)
            pairs.end_cols[rows], pairs.top_ends[rows] = _top_float32(end_logits[rows], ceiling, k)
        else:
            pairs.start_cols[rows], pairs.top_starts[rows] = _top_sorted(start_logits[rows], context, k)
            pairs.end_cols[rows], pairs.top_ends[rows] = _top_sorted(end_logits[rows], context, k)
    return pairs


def _rows(pairs: _Pairs, features: Features, window: np.ndarray, pair: np.ndarray) -> _Spans:
    """The spans of the chosen (window, pair) rows, in the given order."""
    first, last = np.divmod(pair, pairs.k)
    start_token = features.row_splits[window] + pairs.start_cols[window, first]
    end_token = features.row_splits[window] + pairs.end_cols[window, last]
    return _Spans(
        example=features.example_index[window].astype(np.int64),
        start=features.offsets[start_token, 0].astype(np.int64),
        end=features.offsets[end_token, 1].astype(np.int64),
        score=(pairs.top_starts[window, first] + pairs.top_ends[window, last]).astype(np.float64),
        last_token_start=features.offsets[end_token, 0].astype(np.int64),
    )


def _best(pairs: _Pairs | None, features: Features) -> _Spans:
    """Each example's best span (at most one row per example, ascending): its best window's best pair."""
    if pairs is None:
        return _empty()
    windows = len(features)
    pair = np.empty(windows, dtype=np.int64)
    score = np.empty(windows, dtype=pairs.top_starts.dtype)
    for rows in _chunks(windows):
        scores = pairs.scores(rows)
        pair[rows] = scores.argmax(axis=1)  # the first of equal scores
        score[rows] = np.take_along_axis(scores, pair[rows, None], axis=1)[:, 0]
    example = features.example_index
    order = np.lexsort((-score, example))  # stable: equal scores keep window order
    head = np.ones(windows, dtype=bool)
    head[1:] = example[order[1:]] != example[order[:-1]]
    window = order[head & (score[order] > -np.inf)]
    return _rows(pairs, features, window, pair[window])


def _nbest(pairs: _Pairs | None, features: Features, n_best_size: int) -> _Spans:
    """The merged n-best candidates of every example, by example, best first."""
    if pairs is None:
        return _empty()
    pair_count = pairs.k * pairs.k
    found = []
    for rows in _chunks(len(features)):  # each window's n_best_size best pairs (ties may add a few)
        scores = pairs.scores(rows)
        floor = np.finfo(scores.dtype).min  # drops the -inf pairs
        if n_best_size < pair_count:
            nth = pair_count - n_best_size
            floor = np.maximum(np.partition(scores, nth, axis=1)[:, nth, None], floor)
        found.append(np.flatnonzero(scores >= floor) + rows.start * pair_count)
    flat = np.concatenate(found)
    if len(flat) == 0:
        return _empty()
    window, pair = np.divmod(flat, pair_count)
    spans = _rows(pairs, features, window, pair)
    example, start, end, score = spans.example, spans.start, spans.end, spans.score

    # By example, best first, equal scores in (window, pair) order: rank the scores, then sort one integer key.
    rank = np.empty(len(score), dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(len(score))
    order = np.argsort(example * len(score) + rank)
    # Copies of one character span from overlapping windows: the first (best) one stays.
    size = int(end.max()) + 1
    _, first = np.unique((example[order] * size + start[order]) * size + end[order], return_index=True)
    order = order[np.sort(first)]
    # At most n_best_size spans per example.
    grouped = example[order]
    position = np.arange(len(order))
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = grouped[1:] != grouped[:-1]
    order = order[position - np.maximum.accumulate(np.where(new_group, position, 0)) < n_best_size]
    return _Spans(example[order], start[order], end[order], score[order], spans.last_token_start[order])


def _refine(spans: _Spans, contexts: list[str], refiner: Refiner) -> tuple[np.ndarray, np.ndarray]:
    """Refined starts and ends of every span (each context normalized once)."""
    columns = (spans.example, spans.start, spans.end, spans.last_token_start)
    normalized: dict[int, tuple[str, np.ndarray | None]] = {}
    refined = []
    for i, s, e, t in zip(*(c.tolist() for c in columns)):
        if i not in normalized:
            normalized[i] = to_nfc(contexts[i])
        refined.append(refine_span(refiner, contexts[i], s, e, t, normalized[i]))
    start = np.array([s for s, _ in refined], dtype=np.int64)
    end = np.array([e for _, e in refined], dtype=np.int64)
    return start, end


def refine_span(refiner: Refiner, context: str, start: int, end: int, last_token_start: int,
                normalized: tuple[str, np.ndarray | None] | None = None) -> tuple[int, int]:
    """`refiner.refine` with the context in NFC: the span moved into the NFC text and the result moved back.

    Refiners match particles and syllables, which decomposed (NFD) Hangul spells as loose jamo.
    A span's boundaries lie between the units NFC composes, so they map both ways exactly.
    `normalized`: `to_nfc(context)`, when the caller has it already.
    """
    nfc, spans = normalized or to_nfc(context)
    if spans is None:
        return _within(refiner, refiner.refine(context, start, end, last_token_start), start, end, last_token_start)
    bounds = [nfc_position(spans, p) for p in (start, end, last_token_start)]
    s, e = _within(refiner, refiner.refine(nfc, *bounds), *bounds)
    return original_position(spans, s, len(context)), original_position(spans, e, len(context))


def _within(refiner: Refiner, refined, start: int, end: int, last_token_start: int) -> tuple[int, int]:
    """The refined span, once checked against the contract: the same start, an end inside the last token."""
    try:
        s, e = (int(value) for value in refined)
    except (TypeError, ValueError):  # not a pair of integers
        s = e = None
    if s != start or e is None or not (e == end or last_token_start < e <= end):
        raise UserError(f"refiner '{getattr(refiner, 'name', type(refiner).__name__)}' returned {refined!r} for the span "
                        f"({start}, {end}) whose last token starts at {last_token_start}; a refiner keeps the start and may "
                        "only move the end inside the last token")
    return s, e


def _nbest_lists(examples: Sequence[QAExample], spans: _Spans, refiner: Refiner | None) -> dict[str, list[dict]]:
    """The n-best dicts of every example, with refined and raw spans and softmax probabilities."""
    contexts = [example.context for example in examples]
    raw_start, raw_end = spans.start, spans.end
    start, end = raw_start, raw_end
    if refiner is not None and len(spans.example):
        start, end = _refine(spans, contexts, refiner)
        size = int(max(end.max(), raw_end.max())) + 1
        _, first = np.unique((spans.example * size + start) * size + end, return_index=True)  # rows are best first
        keep = np.zeros(len(start), dtype=bool)
        keep[first] = True  # candidates the refiner maps to one span: the best stays
        spans = _Spans(spans.example[keep], raw_start[keep], raw_end[keep], spans.score[keep], spans.last_token_start[keep])
        raw_start, raw_end, start, end = raw_start[keep], raw_end[keep], start[keep], end[keep]

    bounds = spans.bounds(len(examples))
    sizes = np.diff(bounds)
    heads, sizes = np.asarray(bounds[:-1])[sizes > 0], sizes[sizes > 0]  # first (best) row of each answered example
    weights = np.exp(spans.score - np.repeat(spans.score[heads], sizes))
    totals = np.add.reduceat(weights, heads) if len(heads) else weights
    probability = weights / np.repeat(totals, sizes)

    owner = spans.example.tolist()
    raw_start_list, raw_end_list = raw_start.tolist(), raw_end.tolist()
    raw_texts = [contexts[i][s:e] for i, s, e in zip(owner, raw_start_list, raw_end_list)]
    if refiner is None:
        start_list, end_list, texts = raw_start_list, raw_end_list, raw_texts
    else:
        start_list, end_list = start.tolist(), end.tolist()
        texts = [contexts[i][s:e] for i, s, e in zip(owner, start_list, end_list)]
    rows = zip(texts, start_list, end_list, spans.score.tolist(), probability.tolist(), raw_texts, raw_start_list, raw_end_list)
    entries = [
        {"text": t, "start": s, "end": e, "logit_score": c, "probability": p, "raw_text": rt, "raw_start": rs, "raw_end": re}
        for t, s, e, c, p, rt, rs, re in rows
    ]
    return {example.id: entries[a:b] for example, a, b in zip(examples, bounds[:-1], bounds[1:])}


def postprocess(
    examples: Sequence[QAExample],
    features: Features,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    refiner: Refiner | None = None,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> Decoded:
    """Decode the answers of `examples` (one per example index of `features`), refine them and add probabilities.

    Logits are (windows, width) arrays, column j = token j of the window (left-aligned);
    columns past a window's length are ignored. Spans start and end on context tokens,
    end >= start, and cover at most `max_answer_length` tokens.
    Every n-best candidate keeps its raw span next to the refined one; candidates that the
    refiner maps to the same span are merged (the best stays); `probability` is the
    softmax of the logit scores over an example's n-best. An example without any candidate gets "".
    The best answers are computed now, the n-best lists when `Decoded.nbest` is first read.
    """
    pairs = _pairs(features, start_logits, end_logits, len(examples), n_best_size, max_answer_length)
    best = _best(pairs, features)
    answered = [examples[i] for i in best.example.tolist()]
    ids = [example.id for example in answered]
    raw = [e.context[a:b] for e, a, b in zip(answered, best.start.tolist(), best.end.tolist())]
    raw_predictions = dict.fromkeys([example.id for example in examples], "")
    predictions = dict(raw_predictions)
    raw_predictions.update(zip(ids, raw))
    if refiner is None:
        predictions.update(zip(ids, raw))
    else:
        start, end = _refine(best, [example.context for example in examples], refiner)
        predictions.update(zip(ids, [e.context[a:b] for e, a, b in zip(answered, start.tolist(), end.tolist())]))

    def build_nbest() -> dict[str, list[dict]]:
        return _nbest_lists(examples, _nbest(pairs, features, n_best_size), refiner)

    return Decoded(predictions, raw_predictions, build_nbest)
