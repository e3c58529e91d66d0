"""Decode benchmark: qaframe's vectorized n-best decoding against the plain Hugging Face loop, on a dev-sized set.

Input: 5,774 generated KorQuAD-like examples (benchmarks/common.py: contexts of about 540
characters on average, 90th percentile about 740, up to 3,000), or `--file` a KorQuAD file,
windowed with the KcBERT tokenizer (seq 300, overlap 128), and random start/end logits from
a fixed seed. The logits of non-context tokens are shifted down, as a trained
model's are.

The peer is the postprocessing of the public Hugging Face run_qa recipe, written here from
its idea: per example, per window, argsort the logits, then a Python double loop over the
n-best starts and ends that skips non-context tokens, reversed and too-long spans and
collects the candidates; then sort them, take the texts and a softmax for the n-best lists.

Two comparisons, both without a refiner (the peer has none):
- predictions (the headline `ratio`): the best answer of every example. qaframe's
  `postprocess` gets it from the pair scores and leaves the n-best lists unbuilt
  (`Decoded.nbest` is built when first read). The peer cannot skip its loop, which is its
  algorithm, but it is spared everything after it: it takes the best candidate with max().
- n-best (`ratio_nbest`): both also build every example's n-best list with texts and
  probabilities (about 115,000 entries): the peer runs its whole recipe, qaframe reads
  `Decoded.nbest`.
The best answers of qaframe and of both peer runs must be identical. qaframe's times with its
default Korean refiner (korean-particles), which the peer lacks, are reported beside them.
Times are the fastest of several runs, with the inputs frozen out of garbage collection.

One difference in meaning, reported under "unshaped_logits": the peer takes its n-best
starts and ends among all tokens and drops non-context ones afterwards, while qaframe takes
them among context tokens only, so where question tokens outscore the context (plain random
logits) qaframe can find a higher-scoring valid span that the peer never looks at. That run
counts how many best answers differ and in how many of those qaframe's score is higher.

Prints one JSON line. `python benchmarks/decode.py [--examples N | --file KORQUAD.json] [--repeats N]`.
"""

from __future__ import annotations

import argparse
import collections
import gc

import numpy as np
from common import SEED, best_of, emit, load_examples, tokenizer_folder

from qaframe.decoding import postprocess
from qaframe.types import Features

MAX_SEQ_LENGTH, OVERLAP, N_BEST, MAX_ANSWER = 300, 128, 20, 30
NON_CONTEXT_SHIFT = 6.0  # how far below the context a trained model puts question and special tokens


def featurize(examples: list, tokenizer) -> tuple[Features, list[list]]:
    """Question-first windows as Features, plus the peer's per-window offset lists (None outside the context)."""
    encoded = tokenizer(
        [e.question for e in examples], [e.context for e in examples], truncation="only_second",
        max_length=MAX_SEQ_LENGTH, stride=OVERLAP, return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    peer_offsets = []
    for w in range(len(encoded["input_ids"])):
        sequence = encoded.sequence_ids(w)
        peer_offsets.append([o if s == 1 else None for o, s in zip(encoded["offset_mapping"][w], sequence)])
    lengths = [len(ids) for ids in encoded["input_ids"]]
    flat_offsets = [(-1, -1) if o is None else o for window in peer_offsets for o in window]
    features = Features(
        input_ids=np.concatenate([np.asarray(ids, np.int32) for ids in encoded["input_ids"]]),
        row_splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        example_index=np.asarray(encoded["overflow_to_sample_mapping"], np.int64),
        start_positions=np.zeros(len(lengths), np.int64),
        end_positions=np.zeros(len(lengths), np.int64),
        offsets=np.asarray(flat_offsets, np.int32),
    )
    return features, peer_offsets


def random_logits(features: Features, rng: np.random.Generator, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """(windows, 300) float32 logits; non-context tokens `shift` lower, padding columns very low."""
    windows = len(features)
    start, end = rng.normal(0.0, 2.0, size=(2, windows, MAX_SEQ_LENGTH)).astype(np.float32)
    columns = np.arange(MAX_SEQ_LENGTH)
    inside = columns[None, :] < features.lengths[:, None]
    context = np.zeros((windows, MAX_SEQ_LENGTH), dtype=bool)
    context[inside] = features.offsets[:, 0] >= 0
    penalty = np.where(context, 0.0, shift) + np.where(inside, 0.0, 1e4)
    return start - penalty.astype(np.float32), end - penalty.astype(np.float32)


def peer_postprocess(examples, example_index, offsets, start_logits, end_logits, n_best_size, max_answer_length, with_nbest=True):
    """The Hugging Face run_qa postprocessing, step by step: per window argsort, double loop over n-best starts and ends.

    Features are plain Python lists here rather than a `datasets.Dataset`, which spares the
    peer the row decoding the real recipe pays for. With `with_nbest=False` it stops after the
    loop and returns only the best texts (the highest-scoring candidate of each example).
    """
    windows_of = collections.defaultdict(list)
    for window, example in enumerate(example_index.tolist()):
        windows_of[example].append(window)
    all_predictions, all_nbest = {}, {}
    for e, example in enumerate(examples):
        null_candidate = None
        candidates = []
        for w in windows_of[e]:
            starts, ends, window_offsets = start_logits[w], end_logits[w], offsets[w]
            max_context = None  # the features carry no token_is_max_context
            null_score = starts[0] + ends[0]
            if null_candidate is None or null_candidate["score"] > null_score:
                null_candidate = {"offsets": (0, 0), "score": null_score, "start_logit": starts[0], "end_logit": ends[0]}
            start_indexes = np.argsort(starts)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(ends)[-1 : -n_best_size - 1 : -1].tolist()
            for s in start_indexes:
                for t in end_indexes:
                    if (
                        s >= len(window_offsets) or t >= len(window_offsets)
                        or window_offsets[s] is None or len(window_offsets[s]) < 2
                        or window_offsets[t] is None or len(window_offsets[t]) < 2
                    ):
                        continue
                    if t < s or t - s + 1 > max_answer_length:
                        continue
                    if max_context is not None and not max_context.get(str(s), False):
                        continue
                    candidates.append({
                        "offsets": (window_offsets[s][0], window_offsets[t][1]),
                        "score": starts[s] + ends[t], "start_logit": starts[s], "end_logit": ends[t],
                    })
        if not with_nbest:
            if candidates:
                first, last = max(candidates, key=lambda c: c["score"])["offsets"]
                all_predictions[example.id] = example.context[first:last]
            else:
                all_predictions[example.id] = "empty"
            continue
        nbest = sorted(candidates, key=lambda c: c["score"], reverse=True)[:n_best_size]
        for candidate in nbest:
            first, last = candidate.pop("offsets")
            candidate["text"] = example.context[first:last]
        if not nbest or (len(nbest) == 1 and nbest[0]["text"] == ""):
            nbest.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        scores = np.array([candidate.pop("score") for candidate in nbest])
        weights = np.exp(scores - np.max(scores))
        for candidate, probability in zip(nbest, weights / weights.sum()):
            candidate["probability"] = probability
        all_predictions[example.id] = nbest[0]["text"]
        all_nbest[example.id] = [
            {k: float(v) if isinstance(v, (np.float16, np.float32, np.float64)) else v for k, v in c.items()} for c in nbest
        ]
    return all_predictions, all_nbest


def main(argv=None) -> None:
    """Build the input, time both decoders, compare their answers and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5774, help="how many examples to generate")
    parser.add_argument("--file", help="a KorQuAD/SQuAD-format file to decode instead of generated examples")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each peer timing; qaframe's get 3x as many")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    from qaframe_plugins.refiners import KoreanParticles

    folder = tokenizer_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    examples = load_examples(args.file, args.examples)
    features, peer_offsets = featurize(examples, tokenizer)
    rng = np.random.default_rng(SEED)
    start, end = random_logits(features, rng, NON_CONTEXT_SHIFT)
    gc.collect()
    gc.freeze()  # the inputs (millions of peer offset tuples) stay out of every garbage collection

    def ours(s=start, e=end, refiner=None):
        return postprocess(examples, features, s, e, refiner=refiner, n_best_size=N_BEST, max_answer_length=MAX_ANSWER)

    def peer(s=start, e=end, with_nbest=True):
        return peer_postprocess(examples, features.example_index, peer_offsets, s, e, N_BEST, MAX_ANSWER, with_nbest)

    ours_repeats, refiner = 3 * args.repeats, KoreanParticles()
    qaframe_s, decoded = best_of(ours_repeats, ours)
    predictions = decoded.predictions
    del decoded
    nbest_s, decoded = best_of(ours_repeats, lambda: ours().nbest)
    ours_nbest_top = {k: entries[0]["text"] if entries else "" for k, entries in decoded.items()}
    del decoded
    refined_s, _ = best_of(ours_repeats, lambda: ours(refiner=refiner))
    refined_nbest_s, _ = best_of(args.repeats, lambda: ours(refiner=refiner).nbest)
    peer_s, (peer_predictions, _) = best_of(args.repeats, lambda: peer(with_nbest=False))
    peer_nbest_s, (peer_nbest_predictions, _) = best_of(args.repeats, peer)
    differ = {k for k in predictions if not predictions[k] == peer_predictions[k] == peer_nbest_predictions[k] == ours_nbest_top[k]}

    # plain random logits: question tokens compete with the context for the peer's n-best
    plain_start, plain_end = random_logits(features, rng, 0.0)
    ours_plain = ours(plain_start, plain_end)
    _, peer_plain_nbest = peer(plain_start, plain_end)
    plain_differ = [k for k in peer_plain_nbest if peer_plain_nbest[k][0]["text"] != ours_plain.predictions[k]]
    plain_better = sum(
        ours_plain.nbest[k][0]["logit_score"] > peer_plain_nbest[k][0]["start_logit"] + peer_plain_nbest[k][0]["end_logit"]
        for k in plain_differ
    )

    emit({
        "stage": "decode",
        "qaframe_s": round(qaframe_s, 4),
        "peer_s": round(peer_s, 4),
        "ratio": round(peer_s / qaframe_s, 1),
        "identical": not differ,
        "different_predictions": len(differ),
        "qaframe_nbest_s": round(nbest_s, 4),
        "peer_nbest_s": round(peer_nbest_s, 4),
        "ratio_nbest": round(peer_nbest_s / nbest_s, 1),
        "qaframe_refined_s": round(refined_s, 4),
        "qaframe_refined_nbest_s": round(refined_nbest_s, 4),
        "examples": len(examples),
        "windows": len(features),
        "windows_per_example": round(len(features) / len(examples), 2),
        "nbest_entries": sum(len(v) for v in ours_plain.nbest.values()),
        "max_seq_length": MAX_SEQ_LENGTH,
        "overlap": OVERLAP,
        "n_best_size": N_BEST,
        "max_answer_length": MAX_ANSWER,
        "unshaped_logits": {"different_predictions": len(plain_differ), "qaframe_scores_higher": int(plain_better)},
        "tokenizer": folder.name,
    })


if __name__ == "__main__":
    main()
