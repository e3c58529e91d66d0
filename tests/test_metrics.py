"""Tests pinning the `korquad` and `squad` metric plugins to hand-computed values on tricky strings."""

from __future__ import annotations

import pytest

from qaframe import hookimpl
from qaframe.testing import check_metric
from qaframe_plugins.metrics import KorQuADMetric, SQuADMetric, korquad_normalize, squad_normalize


def score(metric, prediction: str, golds: list[str]) -> tuple[float, float]:
    result = metric.compute({"q": prediction}, {"q": golds})
    return result["exact_match"], result["f1"]


@pytest.mark.parametrize(
    "prediction, golds, exact, f1",
    [
        ("《임수경》", ["임수경"], 100, 100),  # the script's quote list becomes spaces
        ("〈로미오와 줄리엣〉", ["로미오와 줄리엣"], 100, 100),
        ("‘서울’", ["서울"], 100, 100),
        ("“서울”", ["서울"], 0, 100 * 2 * 0.5 * 1 / 1.5),  # “ ” are not in its list: 4 characters vs 2
        ("서울(Seoul)", ["서울 seoul"], 100, 100),  # brackets become spaces, then lowercase
        ("김'철수", ["김철수"], 0, 100),  # the quote becomes a space: not exact, same characters
        ("1,000명.", ["1000명"], 100, 100),  # ASCII punctuation dropped
        ("  서울   특별시 ", ["서울 특별시"], 100, 100),
        ("서울 특별시", ["서울특별시"], 0, 100),  # character F1 ignores spaces
        ("", ["서울"], 0, 0),
        ("서울시", ["서울특별시", "서울"], 0, 100 * 2 * (2 / 3) / (5 / 3)),  # best of 0.75 and 0.8
        ("가나가", ["가가가나"], 0, 100 * 2 * 0.75 / 1.75),  # character counts, not sets
        ("The Beatles", ["Beatles"], 0, 100 * 2 * 0.7 / 1.7),  # no article removal: 7 of 10 characters
    ],
)
def test_korquad_matches_hand_computed_values(prediction, golds, exact, f1):
    got_exact, got_f1 = score(KorQuADMetric(), prediction, golds)
    assert got_exact == pytest.approx(exact) and got_f1 == pytest.approx(f1)


@pytest.mark.parametrize(
    "prediction, golds, exact, f1",
    [
        ("The Beatles", ["Beatles"], 100, 100),  # articles removed
        ("the quick brown fox", ["a quick fox jumps"], 0, 100 * 2 / 3),  # 2 of 3 words each way
        ("서울(Seoul)", ["서울 seoul"], 0, 0),  # brackets dropped, not spaced: one word against two
        ("김'철수", ["김철수"], 100, 100),
        ("서울 특별시", ["서울특별시"], 0, 0),  # word-level
        ("1,000명.", ["1000명"], 100, 100),
        ("", ["서울"], 0, 0),
        ("“서울”", ["서울"], 0, 0),  # curly quotes are not ASCII punctuation
        ("new york city", ["New York", "York City Hall"], 0, 100 * 0.8),  # max(0.8, 2*(2/3)*(2/3)/(4/3))
    ],
)
def test_squad_matches_hand_computed_values(prediction, golds, exact, f1):
    got_exact, got_f1 = score(SQuADMetric(), prediction, golds)
    assert got_exact == pytest.approx(exact) and got_f1 == pytest.approx(f1)


def test_same_input_scores_differently_under_the_two_metrics():
    predictions = {"a": "서울(Seoul)", "b": "서울 특별시"}
    references = {"a": ["서울 seoul"], "b": ["서울특별시"]}
    korquad = KorQuADMetric().compute(predictions, references)
    squad = SQuADMetric().compute(predictions, references)
    assert (korquad["exact_match"], korquad["f1"]) == pytest.approx((50.0, 100.0))
    assert (squad["exact_match"], squad["f1"]) == pytest.approx((0.0, 0.0))


def test_missing_predictions_count_as_zero_and_extra_ones_are_ignored():
    references = {"a": ["서울"], "b": ["부산"], "c": ["대구"]}
    result = KorQuADMetric().compute({"a": "서울", "b": "부산", "zzz": "x"}, references)
    assert result["exact_match"] == pytest.approx(200 / 3) and result["f1"] == pytest.approx(200 / 3)
    assert result["missing"] == 1
    assert SQuADMetric().compute({}, references) == {"exact_match": 0.0, "f1": 0.0, "missing": 3}
    assert KorQuADMetric().compute({}, {}) == {"exact_match": 0.0, "f1": 0.0, "missing": 0}


def test_normalizers():
    assert korquad_normalize(" 《A》 <b>  (C) ‘d’ \"e\" ") == "a b c d e"
    assert korquad_normalize("「서울」『부산』") == "「서울」『부산』"
    assert squad_normalize("An apple, THE pear & a-plum") == "apple pear aplum"


@pytest.mark.parametrize("name", ["korquad", "squad"])
def test_metric_plugins_pass_conformance(qaframe_host, name):
    metric = qaframe_host.create("metric", name)
    assert metric.name == name
    check_metric(metric)


class CharacterCount:
    """A third-party metric for the hook test: scores 100 when the lengths match."""

    name = "same-length"

    def compute(self, predictions, references):
        hits = [any(len(predictions.get(k, "")) == len(g) for g in golds) for k, golds in references.items()]
        score = 100.0 * sum(hits) / len(hits) if hits else 0.0
        return {"exact_match": score, "f1": score}


class ThirdPartyMetrics:
    """An in-process plugin registering a metric through the public hook."""

    @hookimpl
    def register_metrics(self, register):
        register("same-length", CharacterCount)


def test_a_plugin_adds_a_metric_through_the_hook(qaframe_host, register_plugin):
    register_plugin(ThirdPartyMetrics(), name="same-length-plugin")
    assert {"korquad", "squad", "same-length"} <= set(qaframe_host.registry("metric").names())
    metric = qaframe_host.create("metric", "same-length")
    assert metric.compute({"a": "서울", "b": "x"}, {"a": ["부산"], "b": ["yy"]}) == {"exact_match": 50.0, "f1": 50.0}
