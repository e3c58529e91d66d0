"""Tests of the nfc-sliding-window featurizer: NFD Hangul and zero-width characters in, offsets into the original text out."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qaframe_nfc_featurizer
from qaframe.features import build_featurizer, cache_key
from qaframe.models import load_tokenizer
from qaframe.testing import check_featurizer
from qaframe.types import Answer, FeaturizerSettings, ModelSpec, QAExample
from qaframe_plugins.models import TINY_FOLDER
from qaframe_nfc_featurizer import ZERO_WIDTH, clean

ZWSP, LRM = "\u200b", "\u200e"
SETTINGS = FeaturizerSettings(max_seq_length=48, doc_stride=12, max_query_length=16)
# (clean context, answer); every answer is a whole word group, so its tokens cover exactly it
TEXTS = [
    ("솔빛시는 중부 내륙 분지에 자리한 도시로 1962년 시로 승격하였다. 인구는 약 27만 명이며 반도체 산업이 발달하였다. "
     "시 한가운데를 흐르는 솔내천 양쪽으로는 벚꽃길이 이어진다. 시의 특산물은 잣과 송이버섯 이다.", "잣과 송이버섯"),
    ("청라호 는 가람강 중류를 막아 만든 인공 호수로 물이 맑고 푸르다.", "청라호"),
    ("누리섬 한지 축제는 열두 번째를 맞는다. 등 2천여 개가 섬 둘레를 밝히는 천 개의 달 행사가 마지막 날 열린다.", "천 개의 달"),
]


def dirty(text: str) -> str:
    """Decompose Hangul (NFD) and sprinkle U+200B and U+200E after spaces and some syllables, character by character."""
    out = []
    for char in text:
        out.append(unicodedata.normalize("NFD", char))
        if char == " ":
            out.append(ZWSP)
        elif ord(char) % 4 == 1:
            out.append(LRM if ord(char) % 8 == 1 else ZWSP)
    return "".join(out)


def make_example(number: int, context: str, answer: str, transform=lambda s: s) -> QAExample:
    """An example whose context and answer went through `transform` (which must work character by character)."""
    start = context.index(answer)
    return QAExample(
        f"q{number}", "", transform(f"{answer}{'은' if number % 2 else '는'} 어디인가?"), transform(context),
        (Answer(transform(answer), len(transform(context[:start]))),),
    )


CLEAN = [make_example(n, c, a) for n, (c, a) in enumerate(TEXTS)]
DIRTY = [make_example(n, c, a, dirty) for n, (c, a) in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def tokenizer():
    """The real KcBERT tokenizer of qaframe's packaged tiny model."""
    return load_tokenizer(ModelSpec(source=str(TINY_FOLDER)))


@pytest.fixture
def featurizer(qaframe_host, register_plugin):
    """nfc-sliding-window built through an isolated plugin host, as `--featurizer nfc-sliding-window` would."""
    register_plugin(qaframe_nfc_featurizer)
    return build_featurizer("nfc-sliding-window", SETTINGS)


def test_the_dirty_examples_are_really_dirty():
    for example in DIRTY:
        assert not unicodedata.is_normalized("NFC", example.context)
        assert ZWSP in example.context and LRM in example.context and ZWSP in example.answers[0].text
        answer = example.answers[0]
        assert example.context[answer.start : answer.end] == answer.text


def test_check_featurizer_passes(featurizer, tokenizer):
    features = check_featurizer(featurizer, tokenizer, DIRTY)
    assert len(features) > len(DIRTY)  # the long context needs several windows


def test_labels_round_trip_to_the_gold_answer_in_the_original_context(featurizer, tokenizer):
    features = featurizer.featurize(DIRTY, tokenizer)
    labelled = {}
    for i in range(len(features)):
        offsets = features.offsets[features.row_splits[i] : features.row_splits[i + 1]]
        start, end = features.start_positions[i], features.end_positions[i]
        if offsets[start, 0] >= 0:
            example = DIRTY[features.example_index[i]]
            labelled.setdefault(example.id, set()).add(example.context[offsets[start, 0] : offsets[end, 1]])
    assert labelled == {e.id: {e.answers[0].text} for e in DIRTY}


def test_cleaning_makes_the_same_tokens_and_labels_as_clean_text(featurizer, tokenizer):
    from_dirty, from_clean = featurizer.featurize(DIRTY, tokenizer), featurizer.featurize(CLEAN, tokenizer)
    for column in ("input_ids", "row_splits", "example_index", "start_positions", "end_positions"):
        np.testing.assert_array_equal(getattr(from_dirty, column), getattr(from_clean, column))
    assert tokenizer.unk_token_id not in from_dirty.input_ids


def test_every_context_token_points_at_original_text_that_cleans_to_something(featurizer, tokenizer):
    features = featurizer.featurize(DIRTY, tokenizer)
    owner = np.repeat(features.example_index, features.lengths)
    for (start, end), k in zip(features.offsets, owner):
        if start >= 0:
            piece = DIRTY[k].context[start:end]
            assert 0 <= start < end <= len(DIRTY[k].context) and clean(piece)[0].strip(), piece
            assert piece[0] not in ZERO_WIDTH and piece[-1] not in ZERO_WIDTH


def test_on_clean_text_it_equals_sliding_window(featurizer, tokenizer):
    ours = featurizer.featurize(CLEAN, tokenizer)
    theirs = build_featurizer("sliding-window", SETTINGS).featurize(CLEAN, tokenizer)
    for name, array in theirs.arrays().items():
        np.testing.assert_array_equal(ours.arrays()[name], array, err_msg=name)


def test_version_and_cache_key_are_its_own(featurizer, tokenizer):
    plain = build_featurizer("sliding-window", SETTINGS)
    assert featurizer.version.endswith(f"{plain.name}-{plain.version}")
    assert cache_key(featurizer, tokenizer, CLEAN) != cache_key(plain, tokenizer, CLEAN)


def test_chunks_make_the_same_features_as_one_pass(featurizer, tokenizer, monkeypatch):
    whole = featurizer.featurize(DIRTY, tokenizer)
    monkeypatch.setattr(featurizer, "chunk_size", 2)
    chunked = featurizer.featurize(DIRTY, tokenizer)
    for name, array in whole.arrays().items():
        np.testing.assert_array_equal(chunked.arrays()[name], array, err_msg=name)


def test_an_answer_of_zero_width_characters_only_leaves_no_label(featurizer, tokenizer):
    context = f"서울{ZWSP}{LRM} 부산"
    empty = QAExample("z", "", "무엇?", context, (Answer(ZWSP + LRM, 2),))
    features = featurizer.featurize([empty], tokenizer)
    assert features.start_positions[0] == features.end_positions[0] == 0  # labelled at [CLS]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["한", "국", "가", "e\u0301", " ", "a", ZWSP, LRM, "\u200d", "\ufeff", "\u1100\u1161", "\u11a8"]), max_size=30))
def test_clean_maps_every_character_back_to_where_it_came_from(pieces):
    text = "".join(pieces)
    cleaned, spans = clean(text)
    assert cleaned == unicodedata.normalize("NFC", "".join(c for c in text if c not in ZERO_WIDTH))
    assert spans.shape == (len(cleaned), 2)
    assert np.all(spans[:, 0] < spans[:, 1]) and np.all(np.diff(spans[:, 0]) >= 0) and np.all(spans[:, 1] <= len(text))
    for j, (lo, hi) in enumerate(spans):
        assert cleaned[j] in clean(text[lo:hi])[0]
