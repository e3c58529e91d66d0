"""qaframe featurizer plugin `nfc-sliding-window`: clean text before tokenizing, keep offsets in the original text.

Cleaning removes zero-width characters (U+200B-U+200F, U+2060, U+FEFF) and normalizes to NFC
(decomposed Hangul jamo become syllables the vocabulary knows). The plugin composes rather than
copies: it rewrites each example in cleaned coordinates, lets qaframe's `sliding-window`
featurizer cut the windows, then maps every context token's offsets back through a per-character
index map (numpy) to the ORIGINAL context, so decoded answers are substrings of the user's text.
qaframe's `sliding-window` already tokenizes contexts in NFC; what this plugin adds is the
zero-width removal, and the same cleaning of questions.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from qaframe import hookimpl
from qaframe.features import build_featurizer, concatenate
from qaframe.types import Answer, Features, FeaturizerSettings, QAExample
from qaframe.text import to_nfc

ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
_ZERO_WIDTH_CODES = np.array([ord(c) for c in ZERO_WIDTH], dtype=np.uint32)
_REMOVE = dict.fromkeys(map(ord, ZERO_WIDTH))


def clean(text: str) -> tuple[str, np.ndarray]:
    """`text` without zero-width characters, in NFC, and for each of its characters the (start, end) it came from in `text`."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kept = np.flatnonzero(~np.isin(codes, _ZERO_WIDTH_CODES))  # original index of each kept character
    stripped = text.translate(_REMOVE) if len(kept) < len(codes) else text
    cleaned, spans = to_nfc(stripped)  # spans: where each NFC character came from in `stripped`, None if unchanged
    if spans is None:
        spans = np.stack([np.arange(len(cleaned)), np.arange(1, len(cleaned) + 1)], axis=1)
    return cleaned, np.stack([kept[spans[:, 0]], kept[spans[:, 1] - 1] + 1], axis=1).reshape(-1, 2)


def clean_span(spans: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """The cleaned characters that overlap the original span [start, end), as a (start, end) pair."""
    return int(np.searchsorted(spans[:, 1], start, side="right")), int(np.searchsorted(spans[:, 0], end, side="left"))


def clean_example(example: QAExample) -> tuple[QAExample, np.ndarray]:
    """The example with cleaned question, context and answers, and the context's index map."""
    context, spans = clean(example.context)
    answers = []
    for answer in example.answers:
        start, end = clean_span(spans, answer.start, answer.end)
        if start < end:  # an answer made only of zero-width characters has nothing left to point at
            answers.append(Answer(context[start:end], start))
    cleaned = QAExample(example.id, example.title, clean(example.question)[0], context, tuple(answers), example.is_impossible)
    return cleaned, spans


class NfcSlidingWindowFeaturizer:
    """`sliding-window` over NFC text without zero-width characters; offsets point into the original context."""

    name = "nfc-sliding-window"
    chunk_size = 2000  # examples per step: bounds the index maps held at once

    def __init__(self, settings: FeaturizerSettings):
        self.settings = settings
        self.inner = build_featurizer("sliding-window", settings)
        self.version = f"1+{self.inner.name}-{self.inner.version}"  # the inner featurizer's output is part of ours

    def featurize(self, examples: Sequence[QAExample], tokenizer: Any) -> Features:
        """Windows of the cleaned examples, with every context offset mapped back to the original context."""
        return concatenate([self._chunk(examples[i : i + self.chunk_size], i, tokenizer) for i in range(0, len(examples), self.chunk_size)])

    def _chunk(self, examples: Sequence[QAExample], first_index: int, tokenizer: Any) -> Features:
        cleaned, maps = zip(*map(clean_example, examples))
        features = self.inner.featurize(list(cleaned), tokenizer)
        # one flat map for the chunk: entry base[k] + j is the original span of cleaned character j of example k
        base = np.concatenate([[0], np.cumsum([len(m) for m in maps])[:-1]]).astype(np.int64)
        flat = np.concatenate(maps).astype(np.int64)
        offsets = features.offsets.astype(np.int64)
        is_context = offsets[:, 0] >= 0
        where = np.repeat(base[features.example_index], features.lengths)[is_context]
        offsets[is_context, 0] = flat[where + offsets[is_context, 0], 0]
        offsets[is_context, 1] = flat[where + offsets[is_context, 1] - 1, 1]
        features.offsets = offsets.astype(np.int32)
        features.example_index = features.example_index + first_index
        return features


@hookimpl
def register_featurizers(register):
    """Register the nfc-sliding-window featurizer."""
    register("nfc-sliding-window", NfcSlidingWindowFeaturizer)
