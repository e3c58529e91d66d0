"""The built-in `sliding-window` featurizer: overlapping question+context windows, labelled with numpy.

One batched call of the fast tokenizer per chunk of examples makes every window (truncation of
the context with `stride`, overflowing windows, offset mapping); the labels, context masks and
offsets are then computed with array operations over all windows at once.

`doc_stride` is the OVERLAP: how many context tokens consecutive windows share (the
fast-tokenizer meaning, not the original BERT code's step between window starts).

Contexts that are not in Unicode NFC (e.g. decomposed Hangul jamo, which the KcBERT vocabulary
only knows composed) are tokenized in NFC and their offsets mapped back to the original text.
"""

from __future__ import annotations

import gc
import unicodedata
from itertools import chain
from typing import Any, Sequence

import numpy as np

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.features import concatenate
from qaframe.text import blank, original_starts, to_nfc
from qaframe.types import Features, FeaturizerSettings, QAExample

FAR = np.int64(2**62)  # stands for "no such token" in min-reductions (a NumPy int64, so it never wraps)


def check_settings(settings: FeaturizerSettings, special_tokens: int = 3) -> None:
    """UserError unless the question limit and the overlap leave room for context in every window."""
    length, stride, query = settings.max_seq_length, settings.doc_stride, settings.max_query_length
    if query < 1:
        raise UserError(f"--max-query-length {query} must be at least 1")
    if stride < 0:
        raise UserError(f"--doc-stride {stride} (the overlap between windows, in tokens) must be 0 or more")
    room = length - query - special_tokens
    if room < 1:
        raise UserError(
            f"--max-seq-length {length} leaves no room for context after --max-query-length {query} "
            f"and {special_tokens} special tokens; raise --max-seq-length or lower --max-query-length"
        )
    if stride >= room:
        raise UserError(
            f"--doc-stride {stride} (the overlap between windows, in tokens) must be smaller than the room for context, "
            f"{room} = --max-seq-length {length} - --max-query-length {query} - {special_tokens} special tokens; "
            "lower --doc-stride or raise --max-seq-length"
        )


def truncate_questions(questions: list[str], tokenizer: Any, limit: int) -> list[str]:
    """Each question cut to its longest prefix that ends at a token's end and has at most `limit` tokens.

    Cutting at the `limit`-th token's end suffices where tokens cover whole characters
    (WordPiece); where one character is several tokens (byte-level BPE), that prefix can hold
    more, so every cut is tokenized again and moved back a token at a time until it fits.
    """
    # verbose=False: no warning that a question is longer than the model takes, since it is cut here
    quiet = {"add_special_tokens": False, "return_attention_mask": False, "return_token_type_ids": False, "verbose": False}
    long = [i for i, ids in enumerate(tokenizer(questions, **quiet)["input_ids"]) if len(ids) > limit]  # no offsets yet
    if not long:
        return questions
    encoded = tokenizer([questions[i] for i in long], return_offsets_mapping=True, **quiet)["offset_mapping"]
    cut = list(questions)
    # per question over the limit: its candidate cuts, the longest first
    pending = {i: sorted({end for _, end in offsets[:limit] if end > 0}, reverse=True) for i, offsets in zip(long, encoded)}
    while pending:
        for i in [i for i, ends in pending.items() if not ends]:
            cut[i] = ""  # not even one token's characters fit
            del pending[i]
        ids = list(pending)
        counts = tokenizer([questions[i][: pending[i][0]] for i in ids], **quiet)["input_ids"] if ids else []
        for i, tokens in zip(ids, counts):
            if len(tokens) <= limit:
                cut[i] = questions[i][: pending.pop(i)[0]]
            else:
                pending[i].pop(0)
    return cut


def labelled_span(example: QAExample) -> tuple[int, int]:
    """The first answer's (start, end) without the blank characters at its ends; (-1, -1) when there is none.

    A window holds the answer when it holds the answer's first and last visible characters; the
    whitespace around them lies in no token, so a window edge can fall between them.
    """
    if not example.answers or example.is_impossible:
        return -1, -1
    context, start, end = example.context, example.answers[0].start, example.answers[0].end
    while start < end and blank(context[start]):
        start += 1
    while end > start and blank(context[end - 1]):
        end -= 1
    return (start, end) if start < end else (-1, -1)


def flat(rows: list[list], dtype, width: int = 1) -> np.ndarray:
    """Concatenate a list of lists (of numbers, or of `width`-tuples) into one array without a Python loop per token."""
    items = chain.from_iterable(rows)
    if width > 1:
        items = chain.from_iterable(items)
    return np.fromiter(items, dtype=dtype)


class SlidingWindowFeaturizer:
    """Question + context windows of max_seq_length tokens overlapping by doc_stride, labelled with the first answer."""

    name = "sliding-window"
    version = "2"  # 2: questions cut by token count, answers labelled without their blank ends
    chunk_size = 2000  # examples per tokenizer call: bounds the Python lists the tokenizer returns

    def __init__(self, settings: FeaturizerSettings):
        check_settings(settings)
        self.settings = settings

    def featurize(self, examples: Sequence[QAExample], tokenizer: Any) -> Features:
        """Tokenize every example into windows with start/end labels and context offsets (load_tokenizer gives a fast tokenizer)."""
        check_settings(self.settings, tokenizer.num_special_tokens_to_add(pair=True))
        collecting = gc.isenabled()
        gc.disable()  # the tokenizer returns millions of small lists and tuples, none in a cycle: collecting them only costs
        try:
            parts = [self._chunk(examples[i : i + self.chunk_size], i, tokenizer) for i in range(0, len(examples), self.chunk_size)]
        finally:
            if collecting:
                gc.enable()
        return concatenate(parts)

    def _chunk(self, examples: Sequence[QAExample], first_index: int, tokenizer: Any) -> Features:
        settings = self.settings
        questions = [unicodedata.normalize("NFC", e.question.strip()) for e in examples]
        questions = truncate_questions(questions, tokenizer, settings.max_query_length)
        contexts, spans = zip(*(to_nfc(e.context) for e in examples))
        context_first = tokenizer.padding_side == "left"
        uses_types = "token_type_ids" in tokenizer.model_input_names
        encoded = tokenizer(
            *((list(contexts), questions) if context_first else (questions, list(contexts))),
            truncation="only_first" if context_first else "only_second",
            max_length=settings.max_seq_length,
            stride=settings.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=uses_types,
        )
        lengths = np.fromiter(map(len, encoded["input_ids"]), dtype=np.int64)
        row_splits = np.concatenate([[0], np.cumsum(lengths)])
        starts = row_splits[:-1]
        input_ids = flat(encoded["input_ids"], np.int32)
        offsets = flat(encoded["offset_mapping"], np.int64, width=2).reshape(-1, 2)
        # sequence ids: None (special token) becomes NaN, so no Python loop over tokens is needed
        sequence = np.array(list(chain.from_iterable(e.sequence_ids for e in encoded.encodings)), dtype=np.float64)
        is_context = sequence == (0 if context_first else 1)
        window_example = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
        local = np.arange(len(input_ids), dtype=np.int64) - np.repeat(starts, lengths)
        for index in (i for i, mapping in enumerate(spans) if mapping is not None):  # back to the original text
            rows = np.repeat(window_example == index, lengths) & is_context
            a, b = offsets[rows, 0], offsets[rows, 1]
            start_at = original_starts(spans[index], len(examples[index].context))
            offsets[rows, 0] = start_at[a]
            offsets[rows, 1] = np.where(b > a, spans[index][np.maximum(b - 1, 0), 1], start_at[a])  # an empty token stays empty

        # first gold answer per example as a character span without blank ends; -1 when there is none
        answer_start, answer_end = np.array([labelled_span(e) for e in examples], dtype=np.int64).reshape(-1, 2).T
        s, t = answer_start[window_example], answer_end[window_example]
        token_s, token_t = np.repeat(s, lengths), np.repeat(t, lengths)

        first_context = np.minimum.reduceat(np.where(is_context, local, FAR), starts)
        context_lo = np.minimum.reduceat(np.where(is_context, offsets[:, 0], FAR), starts)
        context_hi = np.maximum.reduceat(np.where(is_context, offsets[:, 1], -1), starts)
        # start: first context token ending after s; end: last context token starting before t
        start = first_context + np.add.reduceat(is_context & (offsets[:, 1] <= token_s), starts, dtype=np.int64)
        end = first_context + np.add.reduceat(is_context & (offsets[:, 0] < token_t), starts, dtype=np.int64) - 1
        inside = (s >= 0) & (context_lo <= s) & (t <= context_hi) & (start <= end)

        cls_id = tokenizer.cls_token_id
        cls = np.minimum.reduceat(np.where(input_ids == cls_id, local, FAR), starts) if cls_id is not None else np.zeros_like(starts)
        cls = np.where(cls == FAR, 0, cls)

        offsets[~is_context] = -1
        return Features(
            input_ids=input_ids,
            row_splits=row_splits.astype(np.int64),
            example_index=window_example + first_index,
            start_positions=np.where(inside, start, cls).astype(np.int64),
            end_positions=np.where(inside, end, cls).astype(np.int64),
            token_type_ids=flat(encoded["token_type_ids"], np.int8) if uses_types else None,
            offsets=offsets.astype(np.int32),
        )


@hookimpl(trylast=True)
def register_featurizers(register):
    """Register the built-in featurizers."""
    register("sliding-window", SlidingWindowFeaturizer)
