"""What `--model NAME` means and how the model is run: an alias, a local folder or a hub id; a quick check
that the hub is reachable; loading its tokenizer and config; its position limit; the inputs a batch gives
the model (`model_inputs`); the kernel choices on a CUDA GPU.

transformers is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
import socket
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from qaframe import plugins
from qaframe.errors import UserError, one_line
from qaframe.registry import first_line
from qaframe.types import ModelSpec

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# files from which transformers can build a tokenizer (the fast one's, or a vocabulary it converts)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
# the weights files from which AutoModel*.from_pretrained loads a folder (safetensors first; a sharded model's index)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# model types whose position table reserves pad_token_id + 1 slots (positions start after the padding index)
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "xmod", "roberta-prelayernorm"}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the batch entries a model is called with
# encoder types whose transformers classes, where their module builds masks with create_bidirectional_mask (transformers
# 5), take a prepared 4D mask as is and give the same logits (tests/test_models.py checks each)
PREPARED_MASK_TYPES = frozenset({
    "albert", "bert", "camembert", "data2vec-text", "distilbert", "electra", "ernie", "mobilebert", "roberta",
    "roberta-prelayernorm", "roc_bert", "xlm-roberta", "xlm-roberta-xl",
})


def resolve_model(name: str) -> ModelSpec:
    """An alias from the `model` registry, else an existing local folder, else a hub id."""
    registry = plugins.get_host().registry("model")
    if not name.strip():  # Path("") is the current folder
        raise UserError(f"--model is empty; pass an alias ({', '.join(registry.names())}), a model folder or a hub id")
    if name in registry:
        spec = registry.create(name)
        if not isinstance(spec, ModelSpec):
            raise UserError(
                f"model '{name}' of plugin {registry.get(name).provider} built a {type(spec).__name__}, "
                "not the ModelSpec (qaframe.types) a model factory returns"
            )
        return spec
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSpec(source=str(path))
    looks_like_path = name.startswith((".", "~", "/")) or "\\" in name or name.count("/") > 1
    if looks_like_path or path.exists():
        raise UserError(f"--model {name}: no such model folder; pass an existing folder, a hub id or one of: {', '.join(registry.names())}")
    if "/" not in name and difflib.get_close_matches(name, registry.names(), n=1, cutoff=0.75):
        raise UserError(registry.unknown_message(name))
    if not HUB_ID.match(name):
        raise UserError(f"--model {name!r} is neither a registered alias, a folder nor a hub id; available aliases: {', '.join(registry.names())}")
    return ModelSpec(source=name)


def takes_prepared_mask(model) -> bool:
    """Whether `model` is a transformers encoder on SDPA attention whose module takes a prepared 4D mask as is."""
    config = getattr(model, "config", None)  # a third-party head's model may be no transformers model
    return (
        getattr(config, "model_type", None) in PREPARED_MASK_TYPES
        and getattr(config, "_attn_implementation", None) == "sdpa"
        and type(model).__module__.startswith("transformers.models.")
        and hasattr(sys.modules[type(model).__module__], "create_bidirectional_mask")
    )


def model_inputs(batch: dict, prepared_mask: bool) -> dict:
    """The model's keyword arguments from a batch: ids, attention mask, token types where there are any.

    With `prepared_mask` (see `takes_prepared_mask`), the (batch, width) mask goes in as the
    (batch, 1, width, width) boolean view that transformers would build from it. From the 2D mask
    transformers first asks whether any position is padding (`mask.all()`), to leave the mask out
    when none is: a read of a GPU tensor that makes the host wait for the GPU at every forward pass.
    """
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    if prepared_mask:
        mask = inputs["attention_mask"].bool()
        inputs["attention_mask"] = mask[:, None, None, :].expand(-1, 1, mask.shape[1], -1)
    return inputs


def native_bf16() -> bool:
    """Whether the current CUDA GPU computes bfloat16 natively (Ampere and newer, or ROCm).

    `torch.cuda.is_bf16_supported()` says yes also where bfloat16 is only emulated (Volta,
    Turing), and slower there than float32.
    """
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


@contextlib.contextmanager
def cuda_kernels(device, *, matmul_precision: str = "high", cudnn_attention: bool = False) -> Iterator[None]:
    """Within: the kernel choices for running on `device`, restored after (nothing changes unless it is a CUDA device).

    `matmul_precision`: torch.set_float32_matmul_precision (high: TF32 for float32 matmuls).
    `cudnn_attention`: whether SDPA may pick cuDNN's attention kernels. On Hopper and newer,
    PyTorch puts them first, and cuDNN builds an execution plan for every new batch shape, at
    hundreds of milliseconds each; qaframe pads every batch to its own width, so a plan would be
    built for nearly every batch early in training and for each single question answered. Off,
    SDPA takes flash or memory-efficient attention, which need no plan. Both switches are
    process-wide in torch, so they are set only for the work inside and then put back: a program
    that uses the Predictor keeps its own settings. A program that chose its matmul precision
    with torch's per-backend settings (`torch.backends.fp32_precision`, which transformers' tf32
    option sets; reading the process-wide one then raises) keeps that choice.
    """
    import torch

    if torch.device(device).type != "cuda":
        yield
        return
    try:
        precision = torch.get_float32_matmul_precision()
    except RuntimeError:  # set through the per-backend settings: the program's choice stands
        precision = None
    cudnn = torch.backends.cuda.cudnn_sdp_enabled()
    if precision is not None:
        torch.set_float32_matmul_precision(matmul_precision)
    torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)
    try:
        yield
    finally:
        if precision is not None:
            torch.set_float32_matmul_precision(precision)
        torch.backends.cuda.enable_cudnn_sdp(cudnn)


def _file_errors() -> tuple[type[Exception], ...]:
    """What transformers raises for a model file that is missing, unreadable or malformed (a JSON value of the wrong type:
    TypeError, or a config field that fails huggingface_hub's validation), or for model code that does not compile."""
    from huggingface_hub import errors

    validation = getattr(errors, "StrictDataclassError", ValueError)  # huggingface_hub 0.32+; transformers 5 checks configs so
    return (OSError, ValueError, KeyError, TypeError, SyntaxError, validation)


def uncompiled_code(error: SyntaxError, folder: Path) -> str:
    """`its code (<files>) does not compile: <message> at line <n>` for a remote-code model's folder; transformers parses
    the code from its text, so the error seldom names the file, and then the folder's .py files are named."""
    files = [error.filename] if Path(error.filename or "").is_file() else sorted(path.name for path in folder.glob("*.py"))
    code = f"its code ({', '.join(files)})" if files else "its code"
    return f"{code} does not compile: {error.msg} at line {error.lineno}"


def _cannot_load(what: str, spec: ModelSpec, error: Exception) -> UserError:
    folder = Path(spec.source).expanduser()
    where = "the folder" if folder.is_dir() else "the hub id; without network, pass a local model folder instead"
    if isinstance(error, SyntaxError):
        reason = uncompiled_code(error, folder)
    else:
        reason = one_line(str(error)) or type(error).__name__  # whole: transformers' first line can end in "from one of:"
    return UserError(f"cannot load the {what} of model '{spec.source}' (tried {where}): {reason}")


HUB_PROBE_SECONDS = 5  # one TCP connection attempt, instead of the hub client's retries (about 25 s) when offline


@functools.lru_cache(maxsize=None)
def hub_unreachable(endpoint: str) -> str | None:
    """Why the Hugging Face endpoint cannot be reached (one TCP connection attempt), or None when it can."""
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), HUB_PROBE_SECONDS).close()
    except OSError as error:
        return f"{url.hostname}: {first_line(str(error)) or type(error).__name__}"
    return None


def check_hub_reachable(spec: ModelSpec) -> None:
    """Fail at once, in one line, for a hub model that is neither cached nor reachable.

    Folders, names that are no hub id, offline mode (HF_HUB_OFFLINE, where the hub client fails
    fast itself) and models whose config is in the local cache pass without a probe.
    """
    if Path(spec.source).expanduser().is_dir() or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(spec.source, "config.json"), str):
            return
    except ValueError:  # not a valid hub id (e.g. a missing folder): transformers says what is wrong
        return
    reason = hub_unreachable(constants.ENDPOINT)
    if reason:
        raise UserError(
            f"model '{spec.source}' is not in the local Hugging Face cache and the hub cannot be reached ({reason}); "
            f"connect to the network, or download it where there is one (`hf download {spec.source}`) and pass its folder to --model"
        )


def load_tokenizer(spec: ModelSpec):
    """The model's fast tokenizer (code from the model only with `spec.trust_remote_code`); UserError when it cannot be
    found or only a slow one exists: every featurizer gets a fast one, with offsets."""
    from transformers import AutoTokenizer

    check_hub_reachable(spec)
    folder = Path(spec.source).expanduser()
    if folder.is_dir() and not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise UserError(
            f"model folder {folder} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}); "
            "pass the model/ folder that `qaframe run` wrote, or a saved Hugging Face model"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.source, trust_remote_code=spec.trust_remote_code)
    except _file_errors() as error:
        raise _cannot_load("tokenizer", spec, error) from error
    if len(tokenizer) <= len(tokenizer.all_special_tokens):  # transformers 5 builds an empty one when files are missing
        raise UserError(
            f"the tokenizer of model '{spec.source}' has no vocabulary (only {len(tokenizer)} special tokens); "
            "the folder lacks its tokenizer files (tokenizer.json or vocab.txt with tokenizer_config.json)"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"model '{spec.source}' has only a slow tokenizer ({type(tokenizer).__name__}); "
            "qaframe needs a fast (tokenizers-backed) one for offsets: pick a model that ships tokenizer.json or a fast tokenizer class"
        )
    return tokenizer


def load_config(spec: ModelSpec):
    """The model's transformers config (code from the model only with `spec.trust_remote_code`); UserError when it cannot be found."""
    from transformers import AutoConfig

    check_hub_reachable(spec)
    try:
        return AutoConfig.from_pretrained(spec.source, trust_remote_code=spec.trust_remote_code)
    except _file_errors() as error:
        raise _cannot_load("config", spec, error) from error


def require_weights(spec: ModelSpec) -> None:
    """UserError when `spec` is a local folder, not built with random weights, that holds no weights file; hub ids pass."""
    folder = Path(spec.source).expanduser()
    if spec.random_init or not folder.is_dir() or any((folder / name).is_file() for name in WEIGHT_FILES):
        return
    raise UserError(
        f"model folder {folder} has no weights (none of {', '.join(WEIGHT_FILES)}); pass a folder that save_pretrained "
        "wrote, or the model's hub id"
    )


def position_limit(spec: ModelSpec, config) -> int | None:
    """The longest sequence the model can take: the alias's limit and the config's position table, whichever is lower."""
    limits = [spec.max_positions] if spec.max_positions else []
    table = getattr(config, "max_position_embeddings", None)
    if isinstance(table, int) and table > 0:
        if getattr(config, "model_type", None) in OFFSET_POSITIONS:
            table -= (getattr(config, "pad_token_id", None) or 0) + 1
        limits.append(table)
    return min(limits) if limits else None


def check_max_seq_length(spec: ModelSpec, config, max_seq_length: int, setting: str = "--max-seq-length") -> None:
    """UserError naming both numbers when max_seq_length exceeds the model's position limit; `setting` says where it was set."""
    limit = position_limit(spec, config)
    if limit is not None and max_seq_length > limit:
        raise UserError(
            f"{setting} {max_seq_length} exceeds the {limit} positions of model '{spec.source}'; "
            f"use {setting} {limit} or less"
        )
