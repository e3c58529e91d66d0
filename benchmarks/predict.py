"""Predict benchmark: questions answered per second by a saved model, qaframe's Predictor against the plain recipe.

The model: the packaged tiny KcBERT shape (2 layers, hidden 128; `--shape base` for kcbert-base
on a GPU) with random weights, saved as `qaframe run` saves it (runner.write_model:
save_pretrained files, tokenizer, qaframe.json with windows of 300 tokens overlapping by 128,
no refiner so both sides return raw spans). The input: `--examples` questions of the
KorQuAD-sized generated set (benchmarks/common.py), or `--file` a KorQuAD/SQuAD file.

qaframe: `Predictor.load(folder).answer(items)`, which featurizes every (question, context)
pair into windows, runs them through the model in length-sorted, per-batch-padded batches and
decodes all of them at once. `qaframe_questions_per_s` passes all questions in one call (as
`qaframe predict` and a batch API do); `qaframe_single_questions_per_s` calls answer() once per
question, as a server answering one request at a time would. On a GPU the Predictor holds bfloat16 weights
(`qaframe_dtype`) and answers under bf16 autocast (`precision`); the peer runs the model as it
loads (`peer_dtype`: float32).

Peer: what a user writes now that transformers 5 has no question-answering pipeline:
AutoTokenizer and AutoModelForQuestionAnswering.from_pretrained on the same folder, then one
question at a time: tokenize with truncation="only_second", stride, overflowing windows and
offsets, padded to the longest window, one forward pass under inference_mode, and the
recipe's postprocessing (benchmarks/decode.py's loop over n-best starts and ends).

Answers may differ where the random model's question tokens outscore the context (the peer
takes its n-best among all tokens, qaframe among context tokens only; see decode.py), so the
line reports the fraction that agree rather than requiring identity. Prints one JSON line.
`python benchmarks/predict.py [--examples 200] [--device cpu|cuda] [--shape tiny|base]`
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit, load_examples, model_folder
from decode import peer_postprocess

MAX_SEQ_LENGTH, OVERLAP, MAX_QUERY, N_BEST, MAX_ANSWER = 300, 128, 64, 20, 30


def save_model(shape: str, work: Path) -> Path:
    """A random-weight model saved the way `qaframe run` saves its model/ folder."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    from qaframe.config import RunConfig
    from qaframe.runner import model_metadata, write_model
    from qaframe.types import FeaturizerSettings

    source = model_folder(shape, work / "config")
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(str(source)))
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    config = RunConfig(corpus="squad-json", refiner="none", max_seq_length=MAX_SEQ_LENGTH, doc_stride=OVERLAP,
                       max_query_length=MAX_QUERY, n_best_size=N_BEST, max_answer_length=MAX_ANSWER)
    folder = work / "model"
    write_model(model, tokenizer, folder, model_metadata(config, FeaturizerSettings(MAX_SEQ_LENGTH, OVERLAP, MAX_QUERY), "32"))
    return folder


def peer_answers(folder: Path, examples, device: str) -> tuple[list[str], str]:
    """One question at a time: tokenize into windows, one forward pass, the recipe's n-best loop; and the model's dtype."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForQuestionAnswering.from_pretrained(str(folder)).to(device).eval()
    answers = []
    for example in examples:
        encoded = tokenizer(
            example.question, example.context, truncation="only_second", max_length=MAX_SEQ_LENGTH, stride=OVERLAP,
            return_overflowing_tokens=True, return_offsets_mapping=True, padding="longest", return_tensors="pt",
        )
        offsets = [
            [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][w].tolist(), encoded.sequence_ids(w))]
            for w in range(len(encoded["input_ids"]))
        ]
        inputs = {k: encoded[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
        with torch.inference_mode():
            output = model(**inputs)
        start, end = output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()
        predictions, _ = peer_postprocess([example], np.zeros(len(offsets), np.int64), offsets, start, end, N_BEST, MAX_ANSWER)
        answers.append(predictions[example.id])
    return answers, str(model.dtype)


def main(argv=None) -> None:
    """Save the model, answer the questions both ways, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="questions to answer (generated)")
    parser.add_argument("--file", help="a KorQuAD/SQuAD-format file whose first --examples questions to answer")
    parser.add_argument("--shape", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    import torch

    from qaframe.predictor import Predictor

    torch.manual_seed(0)
    examples = load_examples(args.file, args.examples)[: args.examples]
    items = [(e.question, e.context) for e in examples]
    with tempfile.TemporaryDirectory(prefix="qaframe-bench-") as work:
        folder = save_model(args.shape, Path(work))
        predictor = Predictor.load(folder, device=args.device)
        predictor.answer(items[:8])  # warm-up: first calls allocate and pick kernels
        began = time.perf_counter()
        batched = predictor.answer(items)
        batched_s = time.perf_counter() - began
        began = time.perf_counter()
        single = [predictor.answer([item]) for item in items]
        single_s = time.perf_counter() - began
        peer_answers(folder, examples[:8], args.device)  # the same warm-up
        began = time.perf_counter()
        peer, peer_dtype = peer_answers(folder, examples, args.device)
        peer_s = time.perf_counter() - began

    ours = [found[0]["text"] if found else "" for found in batched]
    emit({
        "stage": "predict",
        "qaframe_questions_per_s": round(len(items) / batched_s, 1),
        "peer_questions_per_s": round(len(items) / peer_s, 1),
        "ratio": round(peer_s / batched_s, 2),
        "qaframe_single_questions_per_s": round(len(items) / single_s, 1),
        "ratio_single": round(peer_s / single_s, 2),
        "agreement": round(sum(a == b for a, b in zip(ours, peer)) / len(items), 3),
        "batched_equals_single": ours == [found[0]["text"] if found else "" for found in (s[0] for s in single)],
        "questions": len(items),
        "batch_size": predictor.batch_size,
        "precision": predictor.precision,
        "qaframe_dtype": str(predictor.model.dtype),
        "peer_dtype": peer_dtype,
        "shape": args.shape,
        "max_seq_length": MAX_SEQ_LENGTH,
        "overlap": OVERLAP,
    })


if __name__ == "__main__":
    main()
