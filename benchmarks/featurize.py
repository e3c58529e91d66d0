"""Featurize benchmark: qaframe's sliding-window featurizer against the Hugging Face run_qa recipe, train and eval features.

Input: the KorQuAD-sized generated set of benchmarks/common.py (5,774 questions, contexts of
about 540 characters on average, 90th percentile about 740, up to 3,000) or `--file` a
KorQuAD/SQuAD-format file, with the KcBERT tokenizer; windows of 300 tokens (KcBERT's limit)
overlapping by 128, questions cut to 64 tokens.

qaframe: `SlidingWindowFeaturizer.featurize`, which makes one set of unpadded windows with both
the labels (training) and the context offsets (evaluation). Training and evaluation each
featurize their split, so it is timed twice here: as the train features and as the eval features.

The peer is the public Hugging Face run_qa recipe, written here from its idea: the fast
tokenizer with truncation="only_second", return_overflowing_tokens, stride and
padding="max_length", then a Python loop per window: for training, walk the sequence ids and
offsets to find the answer's start and end tokens (the CLS token when the answer is not inside
the window); for evaluation, keep each window's example id and set the offsets of non-context
tokens to None. Like the recipe (`datasets.map(batched=True)`), it tokenizes 1,000 examples per
call; unlike it, it skips the conversion to an Arrow dataset, which spares the peer some time.

Both sides must cut the same windows (checked). Their labels are compared window by window;
where they differ, each side's label is checked against the answer (`label_errors`): a label is
right when its start and end are the context tokens that hold the answer's first and last
characters. The recipe has a known slip: when the answer ends a window's context, its
start-token walk runs on through [SEP] and the padding (offsets (0, 0)) and labels the last
position. The JSON
line has each side's train and eval times, their sum and the ratio peer / qaframe (above 1:
qaframe is faster). `python benchmarks/featurize.py [--examples N | --file KORQUAD.json] [--repeats N]`.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import best_of, context_stats, emit, load_examples, tokenizer_folder

from qaframe.types import FeaturizerSettings

MAX_SEQ_LENGTH, OVERLAP, MAX_QUERY = 300, 128, 64
PEER_BATCH = 1000  # datasets.map's default batch size


def peer_batches(examples, tokenizer, max_length, stride):
    """The recipe's tokenizer calls, PEER_BATCH examples each (question + context, context truncated into overlapping
    windows padded to max length): yields (examples, encoding, window -> example index in the batch)."""
    for first in range(0, len(examples), PEER_BATCH):
        batch = examples[first : first + PEER_BATCH]
        encoded = tokenizer(
            [e.question.lstrip() for e in batch], [e.context for e in batch], truncation="only_second",
            max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
            padding="max_length",
        )
        yield batch, encoded, encoded.pop("overflow_to_sample_mapping")


def peer_train_features(examples, tokenizer, max_length=MAX_SEQ_LENGTH, stride=OVERLAP):
    """The recipe's training features: padded windows with start/end token labels (CLS when the answer is elsewhere)."""
    features = {"input_ids": [], "token_type_ids": [], "attention_mask": [], "start_positions": [], "end_positions": []}
    for batch, encoded, sample_mapping in peer_batches(examples, tokenizer, max_length, stride):
        offset_mapping = encoded.pop("offset_mapping")
        for i, offsets in enumerate(offset_mapping):
            input_ids = encoded["input_ids"][i]
            cls_index = input_ids.index(tokenizer.cls_token_id)
            sequence_ids = encoded.sequence_ids(i)
            example = batch[sample_mapping[i]]
            start_position = end_position = cls_index
            if example.answers:
                start_char = example.answers[0].start
                end_char = start_char + len(example.answers[0].text)
                token_start = 0
                while sequence_ids[token_start] != 1:
                    token_start += 1
                token_end = len(input_ids) - 1
                while sequence_ids[token_end] != 1:
                    token_end -= 1
                if offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char:
                    while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                        token_start += 1
                    start_position = token_start - 1
                    while offsets[token_end][1] >= end_char:
                        token_end -= 1
                    end_position = token_end + 1
            features["start_positions"].append(start_position)
            features["end_positions"].append(end_position)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            features[key].extend(encoded[key])
    return features


def peer_eval_features(examples, tokenizer, max_length=MAX_SEQ_LENGTH, stride=OVERLAP):
    """The recipe's evaluation features: padded windows, each with its example id and context-only offsets."""
    features = {"input_ids": [], "token_type_ids": [], "attention_mask": [], "offset_mapping": [], "example_id": []}
    for batch, encoded, sample_mapping in peer_batches(examples, tokenizer, max_length, stride):
        for i in range(len(encoded["input_ids"])):
            sequence_ids = encoded.sequence_ids(i)
            features["example_id"].append(batch[sample_mapping[i]].id)
            encoded["offset_mapping"][i] = [o if sequence_ids[k] == 1 else None for k, o in enumerate(encoded["offset_mapping"][i])]
        for key in ("input_ids", "token_type_ids", "attention_mask", "offset_mapping"):
            features[key].extend(encoded[key])
    return features


def label_is_right(features, examples, window: int, start: int, end: int) -> bool:
    """Whether (start, end) in `window` are the context tokens holding the answer's first and last characters."""
    offsets = features.offsets[features.row_splits[window] : features.row_splits[window + 1]]
    answer = examples[features.example_index[window]].answers[0]
    if not 0 < start <= end < len(offsets) or offsets[start][0] < 0 or offsets[end][0] < 0:
        return False
    return offsets[start][0] <= answer.start < offsets[start][1] and offsets[end][0] < answer.end <= offsets[end][1]


def main(argv=None) -> None:
    """Build the input, time both featurizers on train and eval features, compare their labels, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="a KorQuAD/SQuAD-format file to featurize instead of the generated examples")
    parser.add_argument("--examples", type=int, default=5774, help="how many examples to generate")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    from qaframe_plugins.featurizers import SlidingWindowFeaturizer

    folder = tokenizer_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    examples = load_examples(args.file, args.examples)
    featurizer = SlidingWindowFeaturizer(FeaturizerSettings(MAX_SEQ_LENGTH, OVERLAP, MAX_QUERY))

    ours_train_s, features = best_of(args.repeats, lambda: featurizer.featurize(examples, tokenizer))
    ours_eval_s, _ = best_of(args.repeats, lambda: featurizer.featurize(examples, tokenizer))
    peer_train_s, train = best_of(args.repeats, lambda: peer_train_features(examples, tokenizer))
    peer_eval_s, evaluation = best_of(args.repeats, lambda: peer_eval_features(examples, tokenizer))

    same_windows = len(train["input_ids"]) == len(features) == len(evaluation["input_ids"])
    differing = np.nonzero((features.start_positions != np.asarray(train["start_positions"]))
                           | (features.end_positions != np.asarray(train["end_positions"])))[0] if same_windows else []
    label_errors = {
        side: sum(not label_is_right(features, examples, int(w), int(starts[w]), int(ends[w])) for w in differing)
        for side, starts, ends in (("qaframe", features.start_positions, features.end_positions),
                                   ("peer", train["start_positions"], train["end_positions"]))
    }
    ours_s, peer_s = ours_train_s + ours_eval_s, peer_train_s + peer_eval_s
    emit({
        "stage": "featurize",
        "qaframe_s": round(ours_s, 3),
        "peer_s": round(peer_s, 3),
        "ratio": round(peer_s / ours_s, 2),
        "qaframe_train_s": round(ours_train_s, 3),
        "qaframe_eval_s": round(ours_eval_s, 3),
        "peer_train_s": round(peer_train_s, 3),
        "peer_eval_s": round(peer_eval_s, 3),
        "same_windows": same_windows,
        "differing_labels": len(differing),
        "label_errors": label_errors,
        "examples": len(examples),
        "windows": len(features),
        "context_chars": context_stats(examples),
        "tokens_qaframe": int(features.row_splits[-1]),
        "tokens_peer": len(train["input_ids"]) * MAX_SEQ_LENGTH,
        "max_seq_length": MAX_SEQ_LENGTH,
        "overlap": OVERLAP,
        "max_query_length": MAX_QUERY,
        "tokenizer": folder.name,
    })


if __name__ == "__main__":
    main()
