"""A second head, delivered the way a third party would: an encoder plus a 2-layer MLP span head.

Tests register this module in-process (`register_plugin(mlp_head)`) to show that a head plugged
in through the public `register_heads` hook builds, trains, saves and loads back.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from qaframe import hookimpl
from qaframe.io import atomic_path
from qaframe.models import load_config
from qaframe.types import ModelSpec

HEAD_WEIGHTS = "mlp_head.safetensors"


class MLPSpanModel(torch.nn.Module):
    """A Hugging Face encoder followed by Linear -> GELU -> Linear giving a start and an end logit per token."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        hidden = encoder.config.hidden_size
        self.head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 2))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        """Start and end logits, each (batch, sequence)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state
        start_logits, end_logits = self.head(hidden).unbind(dim=-1)
        return QuestionAnsweringModelOutput(start_logits=start_logits, end_logits=end_logits)

    def save_pretrained(self, folder) -> None:
        """The encoder as Hugging Face saves it, plus the head's weights in mlp_head.safetensors."""
        self.encoder.save_pretrained(folder)
        state = {name: tensor.detach().contiguous() for name, tensor in self.head.state_dict().items()}
        with atomic_path(Path(folder) / HEAD_WEIGHTS) as temporary:
            save_file(state, str(temporary))


def mlp_span(spec: ModelSpec, *, pretrained: bool) -> MLPSpanModel:
    """Encoder plus a 2-layer MLP span head (test plugin); loads the head's weights when the folder has them."""
    from transformers import AutoModel

    config = load_config(spec)
    # BERT-family encoders only: the pooler is left out, since nothing here would train it
    if pretrained and not spec.random_init:
        model = MLPSpanModel(AutoModel.from_pretrained(spec.source, config=config, add_pooling_layer=False))
        weights = Path(spec.source) / HEAD_WEIGHTS
        if weights.is_file():
            model.head.load_state_dict(load_file(str(weights)))
        return model
    return MLPSpanModel(AutoModel.from_config(config, add_pooling_layer=False))


@hookimpl
def register_heads(register):
    """Register the test head `mlp-span`."""
    register("mlp-span", mlp_span)
