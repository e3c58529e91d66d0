"""Featurizer resolution and the on-disk feature cache.

The cache key is a sha256 over everything that decides the features: the examples' content,
the tokenizer (its vocabulary, normalizer and settings, padding side and class) and the
featurizer's name, version and settings. Each entry is one `.npz` of plain arrays written
atomically and read with `allow_pickle=False`; it stores a hash of its own arrays, and an entry
that fails to load or to verify is rebuilt with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qaframe import plugins
from qaframe.errors import UserError
from qaframe.io import atomic_path
from qaframe.registry import accepts
from qaframe.types import CorpusSplit, Features, Featurizer, FeaturizerSettings, QAExample

log = logging.getLogger("qaframe.features")

CACHE_FORMAT = "qaframe-features-1"
CHECKSUM = "__checksum__"


# -- resolution -------------------------------------------------------------------
def is_origin_function(factory: Callable) -> bool:
    """Whether a registered featurizer is an origin-style `fn(examples, tokenizer, args)` rather than a factory:
    a function that cannot be called as `factory(settings)` but can with those three arguments."""
    if inspect.isclass(factory):
        return False
    return not accepts(factory, (None,), {}) and accepts(factory, (None, None, None), {})


def build_featurizer(name: str, settings: FeaturizerSettings) -> Featurizer:
    """The featurizer registered as `name`, built with `settings`; UserError for an origin-style function, whose
    features carry no offsets to map answers back to the text (every command decodes answers or labels through them)."""
    host = plugins.get_host()
    if is_origin_function(host.registry("featurizer").get(name).factory):
        raise UserError(
            f"featurizer '{name}' makes no offset mapping, so its windows cannot be decoded into answers: it is an "
            "origin-style function fn(examples, tokenizer, args); port it to a Featurizer that records offsets (docs/hooks.md) "
            "or use the sliding-window featurizer"
        )
    return host.create("featurizer", name, settings)  # contract checked, re-entry refused


def require_offsets(features: Features, featurizer_name: str) -> None:
    """UserError when features lack the offsets that evaluation and prediction decode answers through."""
    if features.offsets is None:
        raise UserError(
            f"featurizer '{featurizer_name}' makes no offset mapping, so its windows cannot be decoded into answers; make "
            "its featurize() record offsets (docs/hooks.md), or use the sliding-window featurizer"
        )


def empty_features() -> Features:
    """Features with no windows."""
    return Features(
        input_ids=np.zeros(0, np.int32),
        row_splits=np.zeros(1, np.int64),
        example_index=np.zeros(0, np.int64),
        start_positions=np.zeros(0, np.int64),
        end_positions=np.zeros(0, np.int64),
    )


def concatenate(parts: Sequence[Features]) -> Features:
    """Join Features of consecutive example batches into one (example indices must already be global)."""
    if not parts:
        return empty_features()
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [len(p.input_ids) for p in parts[:-1]])
    row_splits = np.concatenate([parts[0].row_splits[:1]] + [p.row_splits[1:] + s for p, s in zip(parts, shifts)])

    def join(column: str):
        values = [getattr(p, column) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return Features(
        input_ids=join("input_ids"),
        row_splits=row_splits,
        example_index=join("example_index"),
        start_positions=join("start_positions"),
        end_positions=join("end_positions"),
        token_type_ids=join("token_type_ids"),
        offsets=join("offsets"),
    )


# -- cache ------------------------------------------------------------------------
def tokenizer_fingerprint(tokenizer: Any) -> str:
    """What decides a tokenizer's output: vocabulary, normalizer, pre-tokenizer and post-processor, padding side, class."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)  # call-time settings the featurizer sets anyway
        state.pop("padding", None)
    else:
        state = {"vocab": sorted(tokenizer.get_vocab().items())}
    described = {
        "class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
        "model_input_names": list(getattr(tokenizer, "model_input_names", [])),
        "backend": state,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def examples_digest(examples: Sequence[QAExample]) -> str:
    """A sha256 over the examples' ids, questions, contexts, answers and answerability."""
    digest = hashlib.sha256()
    for e in examples:
        record = [e.id, e.question, e.context, [[a.text, a.start] for a in e.answers], e.is_impossible]
        digest.update(json.dumps(record, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_key(featurizer: Featurizer, tokenizer: Any, examples: Sequence[QAExample]) -> str:
    """The sha256 that names a cache entry."""
    parts = {
        "format": CACHE_FORMAT,
        "examples": examples_digest(examples),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "featurizer": [featurizer.name, str(featurizer.version), dataclasses.asdict(featurizer.settings)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cache_path(featurizer: Featurizer, tokenizer: Any, examples: Sequence[QAExample], cache_dir: Path) -> Path:
    """The file a cache entry lives in: `<cache_dir>/<featurizer>-<key>.npz`."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", featurizer.name)
    return Path(cache_dir) / f"{safe}-{cache_key(featurizer, tokenizer, examples)}.npz"


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """A sha256 over the names, dtypes, shapes and bytes of the arrays."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_features(features: Features, path: Path) -> None:
    """Write features as one .npz (plain arrays plus their checksum), atomically."""
    arrays = features.arrays()
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays, **{CHECKSUM: np.array(arrays_checksum(arrays))})


def read_features(path: Path) -> Features:
    """Read a cache entry without unpickling anything; raises ValueError when it does not verify."""
    stored = np.load(path, allow_pickle=False)
    if not isinstance(stored, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    with stored:
        arrays = {name: stored[name] for name in stored.files}
    checksum = str(arrays.pop(CHECKSUM, ""))
    if checksum != arrays_checksum(arrays):
        raise ValueError("checksum mismatch")
    features = Features(**arrays)
    if features.row_splits[-1] != len(features.input_ids):
        raise ValueError("row_splits do not cover input_ids")
    return features


def load_or_build(
    featurizer: Featurizer, tokenizer: Any, split: CorpusSplit, cache_dir: Path, *, overwrite: bool = False
) -> tuple[Features, bool]:
    """Features for the split from the cache, or freshly built and cached; the bool says whether it was a cache hit."""
    path = cache_path(featurizer, tokenizer, split.examples, cache_dir)
    if os.path.exists(path) and not overwrite:  # False, not PermissionError, inside a folder this user cannot look into
        try:
            features = read_features(path)
            log.info("feature cache hit: %s", path)
            return features, True
        # zipfile raises NotImplementedError (unknown version or compression) and RuntimeError (encryption flag) on damaged headers
        except (OSError, ValueError, KeyError, TypeError, EOFError, NotImplementedError, RuntimeError, zipfile.BadZipFile) as error:
            log.warning("feature cache file %s is damaged (%s); rebuilding it", path, error)
    features = featurizer.featurize(split.examples, tokenizer)
    try:
        save_features(features, path)
    except OSError as error:
        raise UserError(f"cannot write the feature cache file {path}: {error.strerror or error}; choose a writable cache folder") from error
    return features, False
