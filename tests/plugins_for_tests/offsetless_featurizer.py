"""A Featurizer class (not an origin-style function) whose windows carry no offsets, registered through the public
hook as a third party would (`register_plugin(offsetless_featurizer)`). It builds, but nothing can decode its windows."""

from __future__ import annotations

from qaframe import hookimpl
from qaframe_plugins.featurizers import SlidingWindowFeaturizer


class OffsetlessFeaturizer(SlidingWindowFeaturizer):
    """The sliding-window featurizer with the offsets dropped."""

    def featurize(self, examples, tokenizer):
        features = super().featurize(examples, tokenizer)
        features.offsets = None
        return features


@hookimpl
def register_featurizers(register):
    register("offsetless", OffsetlessFeaturizer)
