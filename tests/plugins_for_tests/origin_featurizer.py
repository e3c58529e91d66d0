"""An origin-style featurizer: a ratsnlp-style function `convert(examples, tokenizer, args) -> list[dict]` whose
features carry no offsets, registered through the public hook as a third party would (`register_plugin(origin_featurizer)`).
Every command refuses to build it."""

from __future__ import annotations

from qaframe import hookimpl


def convert(examples, tokenizer, args):
    """One [CLS] [SEP] window per example, labelled at [CLS]."""
    return [{"input_ids": [tokenizer.cls_token_id, tokenizer.sep_token_id], "start_positions": 0, "end_positions": 0}
            for _ in examples]


@hookimpl
def register_featurizers(register):
    register("origin-style", convert)
