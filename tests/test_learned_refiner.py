"""Tests of the `learned-suffix` refiner with the real KcBERT tokenizer on original Korean sentences, and of the
exact-match ceilings that `qaframe inspect` reports per refiner."""

from __future__ import annotations

import json
import unicodedata

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from qaframe.cli import cli
from qaframe.commands.inspect import exact_match_ceilings, gold_token_spans
from qaframe.testing import check_refiner
from qaframe.types import Answer, CorpusOptions, FeaturizerSettings, QAExample, TrainableRefiner
from qaframe_plugins.featurizers import SlidingWindowFeaturizer
from qaframe_plugins.refiners import KoreanParticles, LearnedSuffix

# (context, answer): the answers the refiner learns from
TRAINING = [
    ("분식집 메뉴 가운데 가장 많이 팔린 것은 떡볶이 였다.", "떡볶이"),
    ("시장 골목에서 파는 떡볶이 맛이 유명하다.", "떡볶이"),
    ("그는 1989년 평양 축전에서 임수경을 만났다.", "임수경"),
    ("1950년에 전쟁이 일어났다.", "전쟁"),
    ("아이가 놀이터에서 울었다.", "아이"),
    ("대한민국의 수도는 서울이다.", "대한민국"),
    ("민주주의를 지키기 위해 싸웠다.", "민주주의"),
    ("그 나라는 조선이었다.", "조선"),
    ("해마다 가을이면 축제가 열린다.", "축제"),
]
SENTENCES = [
    "동네 분식집 떡볶이 가격이 올랐다.",
    "그는 1989년 평양 축전에서 임수경을 만났다.",
    "세종대왕께서 한글을 만드셨다.",
    "고양이는 밤에도 잘 본다.",
    "솔빛시의 인구는 약 27만 명이며, 반도체와 정밀 기계 산업이 발달하였다.",
]


def examples_of(pairs) -> list[QAExample]:
    return [
        QAExample(id=f"q{i}", title="t", question="무엇인가?", context=c, answers=(Answer(a, c.index(a)),))
        for i, (c, a) in enumerate(pairs)
    ]


def token_offsets(tokenizer, context: str) -> list[tuple[int, int]]:
    return [tuple(o) for o in tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]


def token_span(tokenizer, context: str, answer: str) -> tuple[int, int, int]:
    """(start, end, last_token_start) of the tokens covering `answer`, as decoding returns a span."""
    first = context.index(answer)
    covering = [o for o in token_offsets(tokenizer, context) if o[0] < first + len(answer) and o[1] > first]
    return covering[0][0], covering[-1][1], covering[-1][0]


def refined(refiner, tokenizer, context: str, answer: str) -> str:
    start, end = refiner.refine(context, *token_span(tokenizer, context, answer))
    return context[start:end]


def all_token_spans(tokenizer, context: str) -> list[tuple[int, int, int]]:
    offsets = token_offsets(tokenizer, context)
    return [(offsets[s][0], offsets[e][1], offsets[e][0]) for s in range(len(offsets)) for e in range(s, min(s + 6, len(offsets)))]


@pytest.fixture(scope="module")
def fitted(kcbert_tokenizer) -> LearnedSuffix:
    refiner = LearnedSuffix()
    refiner.fit(examples_of(TRAINING), kcbert_tokenizer)
    return refiner


def test_a_word_the_data_keeps_whole_stays_whole_where_the_rule_cuts_it(fitted, kcbert_tokenizer):
    context = "동네 분식집 떡볶이 가격이 올랐다."  # 떡 / ##볶이, never seen in this sentence
    assert refined(KoreanParticles(), kcbert_tokenizer, context, "떡볶이") == "떡볶"
    assert refined(fitted, kcbert_tokenizer, context, "떡볶이") == "떡볶이"


@pytest.mark.parametrize(
    "context, answer",
    [
        ("경찰은 광장에서 임수경을 체포했다.", "임수경"),  # 임 / ##수 / ##경을
        ("1950년에 전쟁이 일어났다.", "전쟁"),  # 전쟁이
        ("서울에서의 생활은 힘들었다.", "서울"),  # 서울에서 / ##의: no data, the rule's prior decides
    ],
)
def test_particles_merged_into_the_last_token_are_still_cut(fitted, kcbert_tokenizer, context, answer):
    start, end, _ = token_span(kcbert_tokenizer, context, answer)
    assert context[start:end] != answer
    assert refined(fitted, kcbert_tokenizer, context, answer) == answer


def test_what_was_fitted_is_counted_per_word_and_per_distinct_word_for_suffixes(fitted):
    assert fitted.counts["tail"]["볶이"] == {0: 2}  # both answers
    assert fitted.counts["suffix-1"]["C이"] == {0: 1, 1: 1}  # 볶이 once (distinct), 쟁이 once
    assert fitted.counts["tail"]["경을"] == {1: 1}


def test_an_unfitted_refiner_decides_as_the_rule(kcbert_tokenizer):
    learned, rule = LearnedSuffix(), KoreanParticles()
    for context in SENTENCES:
        for span in all_token_spans(kcbert_tokenizer, context):
            assert learned.refine(context, *span) == rule.refine(context, *span)


def test_json_round_trip_gives_identical_decisions(fitted, kcbert_tokenizer):
    restored = LearnedSuffix()
    restored.load_json(json.loads(json.dumps(fitted.to_json(), ensure_ascii=False)))
    assert restored.counts == fitted.counts
    spans = [(c, span) for c in SENTENCES + [c for c, _ in TRAINING] for span in all_token_spans(kcbert_tokenizer, c)]
    assert [restored.refine(c, *s) for c, s in spans] == [fitted.refine(c, *s) for c, s in spans]


@pytest.mark.parametrize("state", [{}, {"format": "other"}, {"format": "qaframe-learned-suffix-1"}, {"format": "qaframe-learned-suffix-1", "counts": {"tail": {"a": {"x": 1}}}}])
def test_a_state_that_is_not_a_learned_suffix_state_is_a_value_error(state):
    with pytest.raises(ValueError, match="learned-suffix state"):
        LearnedSuffix().load_json(state)


@pytest.mark.parametrize("context", SENTENCES)
def test_every_token_span_stays_a_substring_and_only_its_end_moves_inside_the_last_token(fitted, kcbert_tokenizer, context):
    check_refiner(fitted, context, all_token_spans(kcbert_tokenizer, context))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_span_of_any_text_stays_inside_the_context(data):
    refiner = LearnedSuffix()
    refiner.counts["tail"] = {"볶이": {0: 3, 5: 2}, "이": {1: 4}}  # includes cuts that fit no span
    refiner.counts["suffix-1"] = {"C이": {1: 2, 0: 1}, "V가": {1: 3}}
    alphabet = st.sampled_from(list("떡볶이가고양을를은는의에서로 .,1A"))
    context = "".join(data.draw(st.lists(alphabet, min_size=1, max_size=15)))
    start = data.draw(st.integers(0, len(context) - 1))
    end = data.draw(st.integers(start + 1, len(context)))
    last_token_start = data.draw(st.integers(start, end - 1))
    check_refiner(refiner, context, [(start, end, last_token_start)])


def test_decomposed_hangul_is_fitted_and_refined_as_composed(kcbert_tokenizer):
    pairs = [(unicodedata.normalize("NFD", c), unicodedata.normalize("NFD", a)) for c, a in TRAINING]
    examples = examples_of(pairs)
    refiner = LearnedSuffix()
    refiner.fit(examples, kcbert_tokenizer)
    composed = LearnedSuffix()
    composed.fit(examples_of(TRAINING), kcbert_tokenizer)
    assert refiner.counts == composed.counts  # tails are read in NFC, the form `refine` is given
    settings = FeaturizerSettings(max_seq_length=64, doc_stride=16, max_query_length=16)
    refiners = {"none": None, "rule": KoreanParticles(), "learned": refiner}
    ceilings = exact_match_ceilings(examples, SlidingWindowFeaturizer(settings).featurize(examples, kcbert_tokenizer), refiners)
    nfc_examples = examples_of(TRAINING)
    nfc_ceilings = exact_match_ceilings(nfc_examples, SlidingWindowFeaturizer(settings).featurize(nfc_examples, kcbert_tokenizer), refiners)
    assert ceilings == nfc_ceilings and ceilings["learned"] == 100.0 and ceilings["none"] < 50.0 < ceilings["rule"]


def test_registered_as_a_trainable_refiner(qaframe_host):
    refiner = qaframe_host.create("refiner", "learned-suffix")
    assert isinstance(refiner, TrainableRefiner) and not isinstance(KoreanParticles(), TrainableRefiner)
    check_refiner(refiner, "임수경을 만났다", [(0, 4, 2), (0, 8, 5), (5, 8, 7)])


def corpus_ceilings(qaframe_host, tokenizer, corpus_name: str) -> dict:
    corpus = qaframe_host.create("corpus", corpus_name, CorpusOptions())
    train, dev = corpus.load("train").examples, corpus.load("dev").examples
    learned = LearnedSuffix()
    learned.fit(train, tokenizer)
    features = SlidingWindowFeaturizer(FeaturizerSettings(max_seq_length=300)).featurize(dev, tokenizer)
    assert len(gold_token_spans(features)) == len(dev)
    return exact_match_ceilings(dev, features, {"none": None, "korean-particles": KoreanParticles(), "learned-suffix": learned})


def test_on_the_sample_dev_split_the_learned_ceiling_is_at_least_the_rules(qaframe_host, kcbert_tokenizer):
    ceilings = corpus_ceilings(qaframe_host, kcbert_tokenizer, "sample")
    # measured: none 68.06, korean-particles 100.00, learned-suffix 100.00
    assert ceilings["none"] <= 75.0
    assert ceilings["korean-particles"] >= 97.0
    assert ceilings["learned-suffix"] >= ceilings["korean-particles"]


def test_on_the_synthetic_dev_split_the_learned_ceiling_beats_the_rule(qaframe_host, kcbert_tokenizer):
    ceilings = corpus_ceilings(qaframe_host, kcbert_tokenizer, "synthetic")
    # measured: none 89.33, korean-particles 98.33 (cuts 떡볶이 and 화가), learned-suffix 100.00
    assert ceilings["none"] <= 93.0
    assert ceilings["learned-suffix"] >= ceilings["korean-particles"] + 1.0


def test_inspect_reports_the_ceiling_of_every_refiner(qaframe_host):
    result = CliRunner().invoke(cli, ["inspect", "--corpus", "sample", "--json"])
    assert result.exit_code == 0, result.output
    splits = json.loads(result.output)["splits"]
    for name in ("train", "dev"):
        ceilings = splits[name]["exact_match_ceiling_pct"]
        assert list(ceilings) == ["none", "korean-particles", "learned-suffix"]
        assert ceilings["none"] == splits[name]["label_round_trip_pct"]
        assert ceilings["learned-suffix"] >= ceilings["korean-particles"] > ceilings["none"]
    assert splits["dev"]["exact_match_ceiling_pct"]["learned-suffix"] >= 97.0  # measured 100.00
    text = CliRunner().invoke(cli, ["inspect", "--corpus", "sample"])
    assert "exact-match ceiling      none 68.06 %, korean-particles 100.00 %, learned-suffix 100.00 %" in text.output


def test_inspect_without_a_train_split_reports_trainable_refiners_as_not_available(qaframe_host, fixtures_dir):
    result = CliRunner().invoke(cli, ["inspect", "--corpus", "squad-json", "--dev-file", str(fixtures_dir / "korquad_mini_dev.json"), "--json"])
    assert result.exit_code == 0, result.output
    ceilings = json.loads(result.output)["splits"]["dev"]["exact_match_ceiling_pct"]
    assert ceilings["learned-suffix"] is None and ceilings["none"] is not None
