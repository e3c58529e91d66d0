"""Built-in model heads: `span`, the standard linear start/end head of `AutoModelForQuestionAnswering`.

A head factory turns a ModelSpec into a QAModel. `span` models are ordinary Hugging Face models:
what `save_pretrained` writes loads with `AutoModelForQuestionAnswering.from_pretrained` (and in
transformers 4's `pipeline("question-answering")`; transformers 5 removed that pipeline).
"""

from __future__ import annotations

from pickle import UnpicklingError
from pathlib import Path

from safetensors import SafetensorError

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.registry import first_line
from qaframe.types import ModelSpec


def describe_source(source: str) -> str:
    """What loading `source` tries, in words: a local folder or a Hub id with the local cache."""
    if Path(source).expanduser().is_dir():
        return f"the local folder {source}"
    return f"the Hugging Face Hub id '{source}' (and the local cache)"


def load_error(spec: ModelSpec, error: Exception) -> UserError:
    """A one-line UserError for a model whose weights or architecture could not be loaded."""
    folder = Path(spec.source).expanduser()
    if isinstance(error, SafetensorError):
        files = ", ".join(str(path) for path in sorted(folder.glob("*.safetensors"))) or "the cached .safetensors files"
        hint = f"its safetensors weights ({files}) are truncated or corrupt; save, copy or download the model again"
    elif folder.is_dir():
        hint = "the folder needs a config.json and model.safetensors (or pytorch_model.bin), as save_pretrained writes them"
    else:
        hint = (
            "check the name and the network, or download it first (`hf download ID`) and pass the folder; "
            "set HF_HUB_OFFLINE=1 to use a cached copy"
        )
    reason = first_line(str(error)) or type(error).__name__
    return UserError(f"model '{spec.source}' could not be loaded: tried {describe_source(spec.source)} ({reason}); {hint}")


def span(spec: ModelSpec, *, pretrained: bool):
    """Linear start/end span head on any encoder (AutoModelForQuestionAnswering), SDPA attention where supported."""
    import torch
    from transformers import AutoModelForQuestionAnswering
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING

    from qaframe.models import load_config

    config = load_config(spec, trust_remote_code=spec.trust_remote_code)
    model_class = MODEL_FOR_QUESTION_ANSWERING_MAPPING.get(type(config), None)
    if model_class is None and not getattr(config, "auto_map", None):  # auto_map: a remote-code model names its own class
        raise UserError(
            f"model '{spec.source}' could not be loaded: tried AutoModelForQuestionAnswering, which has no class for "
            f"model type '{config.model_type}'; pick an encoder with a question-answering class (BERT, ELECTRA, RoBERTa, ...)"
        )
    # None lets transformers choose (SDPA when the class supports it), e.g. for remote-code models
    attention = "sdpa" if getattr(model_class, "_supports_sdpa", False) else None
    # float32 weights, whatever the checkpoint holds: mixed precision casts per op, AdamW keeps fp32 state
    options = {"attn_implementation": attention, "dtype": torch.float32, "trust_remote_code": spec.trust_remote_code}
    try:
        if pretrained and not spec.random_init:
            return AutoModelForQuestionAnswering.from_pretrained(spec.source, config=config, **options)
        return AutoModelForQuestionAnswering.from_config(config, **options)
    except (OSError, ValueError, UnpicklingError, SafetensorError) as error:  # missing, unreadable, corrupt or unsafe weights; no network
        raise load_error(spec, error) from error


@hookimpl(trylast=True)
def register_heads(register):
    """Register the built-in heads."""
    register("span", span)
