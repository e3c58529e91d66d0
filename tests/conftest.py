"""Shared test fixtures: the packaged tiny KcBERT folder, its real KcBERT tokenizer, and the test data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The packaged plugins/data/tiny-kcbert folder (KcBERT vocabulary, 2-layer config, no weights)."""
    from qaframe_plugins.models import TINY_FOLDER

    return TINY_FOLDER


@pytest.fixture(scope="session")
def kcbert_tokenizer(tiny_model_dir):
    """The real KcBERT fast tokenizer (right padding), loaded from the packaged folder; do not mutate it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: small SQuAD/KorQuAD-format files written for these tests."""
    return FIXTURES
