"""Built-in model heads: `span`, the standard linear start/end head of `AutoModelForQuestionAnswering`.

A head factory turns a ModelSpec into a QAModel. `span` models are ordinary Hugging Face models:
what `save_pretrained` writes loads with `AutoModelForQuestionAnswering.from_pretrained` (and in
transformers 4's `pipeline("question-answering")`; transformers 5 removed that pipeline).
"""

from __future__ import annotations

import logging
from pickle import UnpicklingError
from pathlib import Path

from safetensors import SafetensorError

from qaframe import hookimpl
from qaframe.errors import UserError, first_few, held_back
from qaframe.models import load_config, uncompiled_code
from qaframe.types import ModelSpec

# what loading the weights raises for a folder or hub model that cannot give them: missing or unreadable files, no network
# (OSError, ValueError), corrupt or unsafe ones (SafetensorError, UnpicklingError, RuntimeError: also weights whose shapes
# are not the config's), a malformed index of shards (TypeError, AttributeError, KeyError), model code that does not compile
LOAD_REPORT_LOG = logging.getLogger("transformers.modeling_utils")
log = logging.getLogger("qaframe.heads")
LOAD_ERRORS = (
    OSError, ValueError, UnpicklingError, SafetensorError, RuntimeError, TypeError, AttributeError, KeyError, SyntaxError,
)


def describe_source(source: str) -> str:
    """What loading `source` tries, in words: a local folder or a Hub id with the local cache."""
    if Path(source).expanduser().is_dir():
        return f"the local folder {source}"
    return f"the Hugging Face Hub id '{source}' (and the local cache)"


def load_error(spec: ModelSpec, error: Exception, reported: bool = False) -> UserError:
    """A one-line UserError for a model whose weights or architecture could not be loaded; `reported`: transformers logged
    its load report before failing."""
    folder = Path(spec.source).expanduser()
    reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    if isinstance(error, SafetensorError):
        files = ", ".join(str(path) for path in sorted(folder.glob("*.safetensors"))) or "the cached .safetensors files"
        hint = f"its safetensors weights ({files}) are truncated or corrupt; save, copy or download the model again"
    elif isinstance(error, RuntimeError):
        if reported:  # transformers' reason points at its report, which only --debug shows
            reason = "its weights do not have the shapes its config.json gives; `qaframe --debug` shows transformers' report"
        hint = (
            "its config.json and its weights come from different models, or the weights are damaged; put the weights' own "
            "config.json beside them, or save, copy or download the model again"
        )
    elif isinstance(error, SyntaxError):
        reason = uncompiled_code(error, folder)
        hint = "fix it, or download the model again"
    elif isinstance(error, (TypeError, AttributeError, KeyError)):
        hint = (
            "one of its files holds a value of the wrong type or lacks a key (model.safetensors.index.json?); "
            "save, copy or download the model again"
        )
    elif folder.is_dir():
        hint = "the folder needs a config.json and model.safetensors (or pytorch_model.bin), as save_pretrained writes them"
    else:
        hint = (
            "check the name and the network, or download it first (`hf download ID`) and pass the folder; "
            "set HF_HUB_OFFLINE=1 to use a cached copy"
        )
    return UserError(f"model '{spec.source}' could not be loaded: tried {describe_source(spec.source)} ({reason}); {hint}")


def check_no_missing_weights(spec: ModelSpec, config, missing: list[str]) -> None:
    """UserError for a question-answering model (config.json's `architectures`) whose weights lack parameters its config
    names: transformers would start them from random values. A pretrained encoder's new qa_outputs is expected."""
    if missing and any(name.endswith("ForQuestionAnswering") for name in getattr(config, "architectures", None) or ()):
        raise UserError(
            f"model '{spec.source}': its weights lack {len(missing)} parameters its config.json names "
            f"({first_few(missing, 3)}), which would start from random values; its config.json and weights come from "
            "different models, or the weights are damaged: put the weights' own config.json beside them, or save, copy "
            "or download the model again"
        )


def span(spec: ModelSpec, *, pretrained: bool):
    """Linear start/end span head on any encoder (AutoModelForQuestionAnswering), SDPA attention where supported."""
    import torch
    from transformers import AutoModelForQuestionAnswering
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING


    config = load_config(spec)
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
    # transformers' load report (weights missing, unexpected or of another shape) is logged once the load succeeded, in
    # one line where it says only what a pretrained encoder always gets (a new qa_outputs, its pretraining heads unused);
    # a failed load gives it to the traceback of --debug instead
    missing, unexpected = [], []
    try:
        with held_back(LOAD_REPORT_LOG) as report:
            if pretrained and not spec.random_init:
                model, loading = AutoModelForQuestionAnswering.from_pretrained(
                    spec.source, config=config, output_loading_info=True, **options)
                missing, unexpected = sorted(loading["missing_keys"]), sorted(loading["unexpected_keys"])
                check_no_missing_weights(spec, config, missing)
            else:
                model = AutoModelForQuestionAnswering.from_config(config, **options)
    except LOAD_ERRORS as error:
        cause = error
        if report:
            cause = RuntimeError("\n".join(record.getMessage() for record in report))
            cause.__cause__ = error
        raise load_error(spec, error, reported=bool(report)) from cause
    new_head_only = bool(missing) and all(key.startswith("qa_outputs.") for key in missing)
    for record in report:
        if not (new_head_only and "LOAD REPORT" in record.getMessage()):
            LOAD_REPORT_LOG.handle(record)
    if new_head_only:
        shown = ", ".join(unexpected[:2]) + (", ..." if len(unexpected) > 2 else "")
        unused = f"; {len(unexpected)} weights of its pretraining heads unused ({shown})" if unexpected else ""
        log.warning("model '%s': the span head (qa_outputs) starts from random values, as on any pretrained encoder%s",
                    spec.source, unused)
    return model


@hookimpl(trylast=True)
def register_heads(register):
    """Register the built-in heads."""
    register("span", span)
