"""Built-in model aliases: `kcbert`, `kcbert-large` (hub ids) and `tiny` (a packaged 2-layer KcBERT for tests)."""

from __future__ import annotations

from pathlib import Path

from qaframe import hookimpl
from qaframe.types import ModelSpec

TINY_FOLDER = Path(__file__).parent / "data" / "tiny-kcbert"


def kcbert() -> ModelSpec:
    """KcBERT-base (beomi/kcbert-base): Korean comments BERT, cased, 300 positions."""
    return ModelSpec(source="beomi/kcbert-base", max_positions=300)


def kcbert_large() -> ModelSpec:
    """KcBERT-large (beomi/kcbert-large): Korean comments BERT, cased, 300 positions."""
    return ModelSpec(source="beomi/kcbert-large", max_positions=300)


def tiny() -> ModelSpec:
    """A 2-layer KcBERT (hidden 128) with random weights and the real KcBERT vocabulary, packaged for tests."""
    return ModelSpec(source=str(TINY_FOLDER), max_positions=300, random_init=True)


@hookimpl(trylast=True)
def register_models(register):
    """Register the built-in model aliases."""
    register("kcbert", kcbert)
    register("kcbert-large", kcbert_large)
    register("tiny", tiny)
