"""Predictor: a saved model answering questions, shared by `qaframe predict`, `qaframe evaluate` and `qaframe serve`.

A model folder written by `qaframe run` (`<output>/model/`) holds the save_pretrained files, the
tokenizer and `qaframe.json` (head, featurizer and its settings, decoding sizes, refiner,
corpus, and the plugins that provided those names: loading warns when another provides one
now, as an override installed since would, since the answers can then differ). A plain Hugging Face question-answering folder without `qaframe.json` works too, with
the `span` head, the `sliding-window` featurizer and no refiner. Long contexts are cut into the
same overlapping windows as in training and the best span of all windows wins.
"""

from __future__ import annotations

import contextlib
import logging
import reprlib
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from qaframe import plugins
from qaframe.config import MATMUL_PRECISIONS
from qaframe.data import UNSEEN, LengthGroupedBatchSampler, PadCollator, example_lengths
from qaframe.decoding import postprocess
from qaframe.errors import ContextWithoutTokens, UserError
from qaframe.features import build_featurizer, require_offsets
from qaframe.io import parse_json, read_text
from qaframe.models import (MODEL_INPUTS, check_max_seq_length, cuda_kernels, load_config, load_tokenizer, model_inputs,
                             native_bf16, position_limit, takes_prepared_mask)
from qaframe.types import REFINER_STATE_FILE, Features, FeaturizerSettings, ModelSpec, QAExample, TrainableRefiner

log = logging.getLogger("qaframe.predictor")

METADATA_FILE = "qaframe.json"
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")  # what `qaframe run` trains in, as Lightning names it
SETTING_MINIMUMS = {"max_seq_length": 1, "doc_stride": 0, "max_query_length": 1}  # FeaturizerSettings' fields


def autocast(device: Any, precision: str):
    """The autocast context for a Lightning-style precision name ('bf16-mixed', '16-mixed', else none)."""
    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in dtypes:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtypes[precision])


def inference_dtype(device: Any) -> torch.dtype:
    """The dtype of a loaded model's weights: bfloat16 on a CUDA GPU that computes it natively, else float32.

    On such a GPU the Predictor also answers under bf16 autocast. With the weights cast once at
    load, autocast has no weight left to cast again on every call (for one question at a time
    those casts are a good part of a forward's kernels); it still runs the operations it keeps
    in float32 (layer norms, softmax) in float32, and mixes a head's own float32 tensors in.
    """
    if torch.device(device).type == "cuda" and native_bf16():
        return torch.bfloat16
    return torch.float32


def window_logits(model, features: Features, *, pad_token_id: int, batch_size: int = 64,
                  device: Any = "cpu", precision: str = "32", pad_to_multiple_of: int = 1,
                  limit_batches: int | float | None = None, group_by_length: bool = True,
                  replicas: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end logits of every window as (windows, longest window) float32 arrays, left-aligned.

    Batches run shortest first (in stored order without `group_by_length`), each example's windows
    together, padded as a run's validation pads them (`pad_to_multiple_of`). `limit_batches` (a
    count, or a fraction of the batches) stops early for smoke runs: it takes the windows that
    validation on `replicas` devices at `batch_size` each took, so a run's final evaluation scores
    the examples that chose its best checkpoint. Returns (start, end, seen) where `seen` marks the
    windows computed.
    """
    sampler = LengthGroupedBatchSampler(example_lengths(features), batch_size, shuffle=False, group_by_length=group_by_length,
                                        num_replicas=replicas)
    every = sampler.global_batches()  # all devices' batches together
    if limit_batches is not None:
        count = int(limit_batches * len(every)) if isinstance(limit_batches, float) else int(limit_batches)
        every = every[: max(1, count)]
    batches = [batch[i : i + batch_size].tolist() for batch in every for i in range(0, len(batch), batch_size)]
    collate = PadCollator(features, pad_token_id, pad_to_multiple_of)
    width = int(features.lengths.max())
    start_all = np.full((len(features), width), UNSEEN, dtype=np.float32)
    end_all = np.full((len(features), width), UNSEEN, dtype=np.float32)
    seen = np.zeros(len(features), dtype=bool)
    prepared_mask = takes_prepared_mask(model)
    was_training = model.training
    if was_training:  # eval() walks every module: skipped for a model that is already in eval mode
        model.eval()
    try:
        with torch.inference_mode(), autocast(device, precision):
            for indices in batches:
                batch = collate(indices)  # only the model's inputs go to the device
                inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}
                output = model(**model_inputs(inputs, prepared_mask))
                # start and end logits in one transfer (one wait for the device)
                both = torch.cat([output.start_logits, output.end_logits]).float()
                start, end = both.cpu().numpy().reshape(2, len(indices), -1)
                start_all[indices, : start.shape[1]] = start
                end_all[indices, : end.shape[1]] = end
                seen[indices] = True
    finally:
        if was_training:
            model.train()
    return start_all, end_all, seen


def check_context_tokens(features: Features, count: int) -> None:
    """Raise ContextWithoutTokens for the first of `count` examples whose windows hold no context token."""
    token_example = np.repeat(features.example_index, features.lengths)
    has_context = np.zeros(count, dtype=bool)
    has_context[token_example[features.offsets[:, 0] >= 0]] = True
    if not has_context.all():
        raise ContextWithoutTokens(int(np.argmin(has_context)))


class Predictor:
    """A loaded QA model with its tokenizer, featurizer and decoding settings; `answer()` is thread-safe."""

    def __init__(self, model, tokenizer, featurizer, *, name: str, refiner=None, n_best_size: int = 20,
                 max_answer_length: int = 30, device: str = "cpu", batch_size: int = 32, precision: str = "32",
                 pad_to_multiple_of: int = 1, kernels: dict | None = None, metadata: dict | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.featurizer = featurizer
        self.name = name
        self.refiner = refiner
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.pad_to_multiple_of = pad_to_multiple_of
        self.kernels = kernels or {}  # cuda_kernels' settings
        self.metadata = metadata or {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "cpu", trust_remote_code: bool = False, as_trained: bool = False) -> "Predictor":
        """Load a model folder (qaframe's or a plain Hugging Face QA one) onto `device`.

        `as_trained`: compute as the run's own evaluation did (float32 weights, under the run's
        precision, batch widths and GPU kernel choices as qaframe.json records them), so `qaframe
        evaluate` reproduces the run's scores. Otherwise the fastest way for the device
        (`inference_dtype`, batches padded to their longest window only), for predicting and serving.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"model folder {folder} does not exist; pass the model/ folder that `qaframe run` wrote")
        metadata = read_metadata(folder)
        warn_changed_providers(metadata, folder / METADATA_FILE)
        spec = ModelSpec(source=str(folder), trust_remote_code=trust_remote_code)
        host = plugins.get_host()
        tokenizer = load_tokenizer(spec)
        # everything qaframe.json names is checked before the weights are read (a head of another kind may have no config.json)
        config = load_config(spec) if (folder / "config.json").is_file() else None
        featurizer = metadata_featurizer(metadata, folder, spec, config, tokenizer)
        refiner = host.create_refiner(metadata.get("refiner"))
        if isinstance(refiner, TrainableRefiner) and (folder / REFINER_STATE_FILE).exists():
            load_refiner_state(refiner, folder / REFINER_STATE_FILE)
        model = host.create("head", metadata.get("head", "span"), spec, pretrained=True)
        if as_trained:
            dtype, precision = torch.float32, metadata.get("precision", "32")
            pad_to_multiple_of = metadata.get("pad_to_multiple_of", 1)
            kernels = {key: metadata[key] for key in ("matmul_precision", "cudnn_attention") if key in metadata}
        else:
            dtype = inference_dtype(device)
            precision = "bf16-mixed" if dtype == torch.bfloat16 else "32"
            pad_to_multiple_of, kernels = 1, {}  # questions come in every length: no per-shape cuDNN attention plans
        model.to(device, dtype=dtype).eval()
        name = folder.resolve().parent.name if folder.resolve().name == "model" else folder.resolve().name
        return cls(
            model, tokenizer, featurizer, name=name, refiner=refiner,
            n_best_size=metadata.get("n_best_size", 20), max_answer_length=metadata.get("max_answer_length", 30),
            device=device, precision=precision, pad_to_multiple_of=pad_to_multiple_of, kernels=kernels, metadata=metadata,
        )

    def logits(self, features: Features) -> tuple[np.ndarray, np.ndarray]:
        """Left-aligned start and end logits of every window."""
        with cuda_kernels(self.device, **self.kernels):
            start, end, _ = window_logits(
                self.model, features, pad_token_id=self.tokenizer.pad_token_id or 0, batch_size=self.batch_size,
                device=self.device, precision=self.precision, pad_to_multiple_of=self.pad_to_multiple_of,
            )
        return start, end

    def answer(self, items: Sequence[tuple[str, str]], top_k: int = 1) -> list[list[dict]]:
        """For each (question, context), up to `top_k` answers {text, score (0-1), start, end}, best first.

        Decoding always uses the model's `n_best_size`, so the best answer and every score are the
        same whatever `top_k` asks for (and as `qaframe evaluate` finds); at most that many come back.
        A context the tokenizer keeps nothing of raises ContextWithoutTokens: there is always a span to answer with.
        """
        if not items:
            return []
        examples = [QAExample(id=str(i), title="", question=q, context=c) for i, (q, c) in enumerate(items)]
        with self._lock:  # fast tokenizers and the model are not safe to call from several threads at once
            features = self.featurizer.featurize(examples, self.tokenizer)
            require_offsets(features, featurizer_name(self.metadata))
            check_context_tokens(features, len(examples))
            start, end = self.logits(features)
        decoded = postprocess(
            examples, features, start, end, refiner=self.refiner,
            n_best_size=self.n_best_size, max_answer_length=self.max_answer_length,
        )
        return [
            [
                {"text": c["text"], "score": float(c["probability"]), "start": int(c["start"]), "end": int(c["end"])}
                for c in decoded.nbest.get(e.id, []) if c["text"]
            ][:top_k]
            for e in examples
        ]


def default_settings(spec: ModelSpec, config, tokenizer) -> dict[str, int]:
    """Featurizer settings for a folder without qaframe.json: FeaturizerSettings' defaults (384 tokens,
    64 for the question, an overlap of 128), each shrunk to fit a model with fewer positions."""
    defaults = FeaturizerSettings()
    length = min(defaults.max_seq_length, position_limit(spec, config) or 512)
    query = min(defaults.max_query_length, length // 4)
    room = length - query - tokenizer.num_special_tokens_to_add(pair=True)
    return {"max_seq_length": length, "doc_stride": min(defaults.doc_stride, room // 2), "max_query_length": query}


def featurizer_name(metadata: dict) -> str:
    """The featurizer a model folder's qaframe.json names (sliding-window without one)."""
    return metadata.get("featurizer", "sliding-window")


def metadata_featurizer(metadata: dict, folder: Path, spec: ModelSpec, config, tokenizer):
    """The featurizer qaframe.json names with its settings (without them, defaults that fit the model); UserError naming the file."""
    where = folder / METADATA_FILE if metadata else folder
    settings = FeaturizerSettings(**(metadata.get("featurizer_settings") or default_settings(spec, config, tokenizer)))
    try:
        check_max_seq_length(spec, config, settings.max_seq_length, setting="featurizer_settings.max_seq_length")
        return build_featurizer(featurizer_name(metadata), settings)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None


def load_refiner_state(refiner, path: Path) -> None:
    """Restore a trainable refiner from its JSON state file; UserError naming the file when it cannot."""
    hint = f"`qaframe run` wrote it as the {refiner.name} refiner's state: re-run it or delete the file"
    try:
        refiner.load_json(parse_json(read_text(path), path, hint))
    except ValueError as error:  # what load_json raises for data that is no state of its refiner
        raise UserError(f"{path}: {error}; {hint}") from None


def read_metadata(folder: Path) -> dict:
    """qaframe.json of a model folder, or {} when the folder is a plain Hugging Face one."""
    path = folder / METADATA_FILE
    if not path.exists():
        return {}
    data = parse_json(read_text(path), path, "rewrite it or delete it to use the defaults")
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(data).__name__}")
    validate_metadata(data, path)
    return data


def is_count(value: Any, minimum: int) -> bool:
    """Whether `value` is an integer (not a bool) of at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def validate_metadata(data: dict, path: Path) -> None:
    """UserError naming `path` and every field of its qaframe.json that cannot be used."""
    host = plugins.get_host()
    problems = []
    for kind in ("head", "featurizer", "refiner"):
        name = data.get(kind)
        if kind not in data or (kind == "refiner" and name in (None, "none")):
            continue
        if not isinstance(name, str):
            problems.append(f"{kind} must be a name, got {reprlib.repr(name)}")
        elif name not in host.registry(kind):
            problems.append(host.registry(kind).unknown_message(name))
    recorded = data.get("plugins", {})
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        problems.append(f"plugins must be an object of plugin names, got {reprlib.repr(recorded)}")
    for key in ("n_best_size", "max_answer_length"):
        if key in data and not is_count(data[key], 1):
            problems.append(f"{key} must be a positive integer, got {reprlib.repr(data[key])}")
    settings = data.get("featurizer_settings") or {}
    if not isinstance(settings, dict):
        problems.append(f"featurizer_settings must be an object with {', '.join(SETTING_MINIMUMS)}, got {reprlib.repr(settings)}")
    else:
        for key, value in settings.items():
            if key not in SETTING_MINIMUMS:
                problems.append(f"featurizer_settings has an unknown key {reprlib.repr(key)}; known: {', '.join(SETTING_MINIMUMS)}")
            elif not is_count(value, SETTING_MINIMUMS[key]):
                problems.append(f"featurizer_settings.{key} must be an integer of at least {SETTING_MINIMUMS[key]}, got {reprlib.repr(value)}")
    if "precision" in data and data["precision"] not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {reprlib.repr(data['precision'])}")
    if "pad_to_multiple_of" in data and not is_count(data["pad_to_multiple_of"], 1):
        problems.append(f"pad_to_multiple_of must be a positive integer, got {reprlib.repr(data['pad_to_multiple_of'])}")
    if "matmul_precision" in data and data["matmul_precision"] not in MATMUL_PRECISIONS:
        problems.append(f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got {reprlib.repr(data['matmul_precision'])}")
    if "cudnn_attention" in data and not isinstance(data["cudnn_attention"], bool):
        problems.append(f"cudnn_attention must be true or false, got {reprlib.repr(data['cudnn_attention'])}")
    if problems:
        raise UserError(f"{path}: {'; '.join(problems)}")


def warn_changed_providers(metadata: dict, path: Path) -> None:
    """Warn about each name in a (validated) qaframe.json that another plugin provides now than when the model was
    trained, as an override installed since would: the answers can then differ from the run's."""
    host = plugins.get_host()
    for kind, plugin in metadata.get("plugins", {}).items():
        name = metadata.get(kind)
        if kind in ("head", "featurizer", "refiner") and isinstance(name, str) and name in host.registry(kind):
            now = host.registry(kind).get(name).provider.plugin
            if now != plugin:
                log.warning("%s: %s '%s' was provided by plugin '%s' when this model was trained, and is by '%s' now "
                            "(an override?); its answers can differ from the run's", path, kind, name, plugin, now)
