"""Tests of the `korean-particles` refiner with the real KcBERT tokenizer on original Korean sentences."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qaframe import hookimpl
from qaframe.decoding import postprocess
from qaframe.testing import check_refiner
from qaframe.types import Features, QAExample
from qaframe_plugins.refiners import ENDINGS, KoreanParticles

PACKAGED = Path(__file__).resolve().parents[1] / "plugins" / "data" / "tiny-kcbert"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "kcbert-base"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    folder = PACKAGED if (PACKAGED / "vocab.txt").exists() else SHARED
    return AutoTokenizer.from_pretrained(str(folder))


def token_offsets(tokenizer, context: str) -> list[tuple[int, int]]:
    return [tuple(o) for o in tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]


def token_span(tokenizer, context: str, answer: str) -> tuple[int, int, int]:
    """The character span (start, end, last_token_start) of the tokens that cover `answer`, as decoding returns it."""
    first = context.index(answer)
    last = first + len(answer)
    covering = [o for o in token_offsets(tokenizer, context) if o[0] < last and o[1] > first]
    return covering[0][0], covering[-1][1], covering[-1][0]


def refined_text(tokenizer, context: str, answer: str) -> str:
    start, end, last_token_start = token_span(tokenizer, context, answer)
    new_start, new_end = KoreanParticles().refine(context, start, end, last_token_start)
    return context[new_start:new_end]


@pytest.mark.parametrize(
    "context, answer",
    [
        ("그는 1989년 평양 축전에서 임수경을 만났다.", "임수경"),  # 임 / ##수 / ##경을
        ("그는 1989년 평양 축전에서 임수경을 만났다.", "축전"),  # 축 / ##전에서
        ("1950년에 전쟁이 일어났다.", "1950년"),  # ##년에
        ("1950년에 전쟁이 일어났다.", "전쟁"),  # 전쟁이
        ("대한민국의 수도는 서울이다.", "대한민국"),  # 대한민국의
        ("민주주의를 지키기 위해 싸웠다.", "민주주의"),  # 민주주의를: 의 is part of the word, 를 is cut
        ("아이가 울었다.", "아이"),  # 가 after a vowel
        ("서울에서의 생활은 힘들었다.", "서울"),  # 서울에서 / ##의: the word ends in 에서의
        ("그 나라는 조선이었다.", "조선"),  # 조선이 / ##었다: the copula
        ("국가 대표로 뽑혔다.", "대표"),  # 로 after a vowel
    ],
)
def test_particles_merged_into_the_last_token_are_cut(tokenizer, context, answer):
    start, end, _ = token_span(tokenizer, context, answer)
    assert context[start:end] != answer  # the tokenizer alone cannot give the answer
    assert refined_text(tokenizer, context, answer) == answer


@pytest.mark.parametrize(
    "context, answer",
    [
        ("고양이는 밤에도 잘 본다.", "고양이"),  # 고양이 / ##는: the tokenizer split the particle off itself
        ("회의에서 결정했다.", "회의"),  # 회의 / ##에서
        ("그 아이 이름은 철수다.", "아이"),  # 이 after a vowel is no particle
        ("그 마을 사람들은 친절하다.", "마을"),  # 을 after a vowel is no particle
        ("국가 대표로 뽑혔다.", "국가"),  # 가 after a final consonant is no particle
        ("그의 직업은 교사이다.", "교사"),  # 교사 / ##이다
        ("그 고양이 이름은 나비였다.", "나비"),  # 나 / ##비 / ##였다: the last token is one syllable
        ("이순신은 부산에서 태어났다.", "부산"),  # 부산 / ##에서
    ],
)
def test_answers_on_token_boundaries_are_left_alone(tokenizer, context, answer):
    start, end, _ = token_span(tokenizer, context, answer)
    assert context[start:end] == answer
    assert refined_text(tokenizer, context, answer) == answer


SENTENCES = [
    "그는 1989년 평양 축전에서 임수경을 만났다.",
    "대한민국의 수도는 서울이다.",
    "세종대왕께서 한글을 만드셨다.",
    "한국전쟁으로 많은 사람이 죽었다.",
    "고양이는 밤에도 잘 본다.",
    "솔빛시의 인구는 약 27만 명이며, 반도체와 정밀 기계 산업이 발달하였다.",
]


@pytest.mark.parametrize("context", SENTENCES)
def test_every_token_span_stays_a_nonempty_substring_inside_its_last_token(tokenizer, context):
    offsets = token_offsets(tokenizer, context)
    spans = [
        (offsets[s][0], offsets[e][1], offsets[e][0])
        for s in range(len(offsets))
        for e in range(s, min(s + 6, len(offsets)))
    ]
    check_refiner(KoreanParticles(), context, spans)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_span_of_any_text_stays_inside_the_context(data):
    alphabet = st.sampled_from(list("가나고양이을를은는의에서로으과와다 .,1A") + list(ENDINGS))
    context = "".join(data.draw(st.lists(alphabet, min_size=1, max_size=15)))
    start = data.draw(st.integers(0, len(context) - 1))
    end = data.draw(st.integers(start + 1, len(context)))
    last_token_start = data.draw(st.integers(start, end - 1))
    check_refiner(KoreanParticles(), context, [(start, end, last_token_start)])


def test_inconsistent_token_start_leaves_the_span_unchanged():
    assert KoreanParticles().refine("임수경을 만났다", 0, 4, 4) == (0, 4)
    assert KoreanParticles().refine("임수경을 만났다", 0, 4, 2) == (0, 3)


def test_postprocess_keeps_raw_and_refined_answers(tokenizer):
    context = "그는 1989년 평양 축전에서 임수경을 만났다."
    encoded = tokenizer("누구를 만났나?", context, return_offsets_mapping=True)
    sequence = encoded.sequence_ids()
    offsets = [o if s == 1 else (-1, -1) for o, s in zip(encoded["offset_mapping"], sequence)]
    n = len(offsets)
    features = Features(
        input_ids=np.array(encoded["input_ids"], np.int32),
        row_splits=np.array([0, n], np.int64),
        example_index=np.zeros(1, np.int64),
        start_positions=np.zeros(1, np.int64),
        end_positions=np.zeros(1, np.int64),
        offsets=np.array(offsets, np.int32),
    )
    tokens = encoded.tokens()
    start_logits = np.zeros((1, n))
    end_logits = np.zeros((1, n))
    start_logits[0, tokens.index("임")] = 8.0
    end_logits[0, tokens.index("##경을")] = 8.0
    example = QAExample(id="k1", title="", question="누구를 만났나?", context=context)
    decoded = postprocess([example], features, start_logits, end_logits, refiner=KoreanParticles())
    assert decoded.raw_predictions["k1"] == "임수경을"
    assert decoded.predictions["k1"] == "임수경"
    best = decoded.nbest["k1"][0]
    assert (best["raw_text"], best["text"]) == ("임수경을", "임수경")
    assert context[best["start"] : best["end"]] == "임수경"
    assert len({(e["start"], e["end"]) for e in decoded.nbest["k1"]}) == len(decoded.nbest["k1"])


def test_a_decomposed_context_is_refined_as_composed_and_answered_in_its_own_form(kcbert_tokenizer):
    from qaframe_plugins.featurizers import SlidingWindowFeaturizer
    from qaframe.types import FeaturizerSettings

    context = unicodedata.normalize("NFD", "그는 1989년 임수경을 만났다")
    example = QAExample(id="d1", title="", question="누구를 만났나?", context=context)
    features = SlidingWindowFeaturizer(FeaturizerSettings(64, 16, 16)).featurize([example], kcbert_tokenizer)
    tokens = kcbert_tokenizer.convert_ids_to_tokens(features.input_ids.tolist())
    start_logits, end_logits = np.zeros((2, 1, len(tokens)), np.float32)
    start_logits[0, tokens.index("임")] = end_logits[0, tokens.index("##경을")] = 8.0
    decoded = postprocess([example], features, start_logits, end_logits, refiner=KoreanParticles())
    assert decoded.raw_predictions["d1"] == unicodedata.normalize("NFD", "임수경을")
    assert decoded.predictions["d1"] == unicodedata.normalize("NFD", "임수경")  # a substring of the user's text
    best = decoded.nbest["d1"][0]
    assert context[best["start"] : best["end"]] == decoded.predictions["d1"]


def test_refiner_plugin_is_registered_and_conforms(qaframe_host):
    refiner = qaframe_host.create("refiner", "korean-particles")
    assert refiner.name == "korean-particles"
    check_refiner(refiner, "임수경을 만났다", [(0, 4, 2), (0, 8, 5), (5, 8, 7)])


class TrailingSpaceRefiner:
    """A third-party refiner for the hook test: trims trailing spaces inside the last token."""

    name = "trim-spaces"

    def refine(self, context, start, end, last_token_start):
        while end - 1 > last_token_start and context[end - 1] == " ":
            end -= 1
        return start, end


class ThirdPartyRefiners:
    """An in-process plugin registering a refiner through the public hook."""

    @hookimpl
    def register_refiners(self, register):
        register("trim-spaces", TrailingSpaceRefiner)


def test_a_plugin_adds_a_refiner_through_the_hook(qaframe_host, register_plugin):
    register_plugin(ThirdPartyRefiners(), name="trim-spaces-plugin")
    assert {"korean-particles", "trim-spaces"} <= set(qaframe_host.registry("refiner").names())
    refiner = qaframe_host.create("refiner", "trim-spaces")
    check_refiner(refiner, "ab   c", [(0, 5, 0), (0, 6, 5)])
    assert refiner.refine("ab   c", 0, 4, 0) == (0, 2)
