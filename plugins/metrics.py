"""Built-in metrics: `korquad` (KorQuAD 1.0's official scorer) and `squad` (SQuAD v1.1's official scorer).

Both score exact match and F1 in 0-100, take the best value over an example's gold answers,
and count a question without a prediction as 0 (reported as `missing`). They differ in how
they normalize and what F1 counts:

- `korquad` follows KorQuAD's evaluate-v1.0.py: the characters ' " 《 》 < > 〈 〉 ( ) ‘ ’ become
  spaces, then the text is lowercased, ASCII punctuation (`string.punctuation`) is dropped and
  whitespace runs collapse to one space. F1 counts characters: the normalized words are split
  into characters with the spaces left out. Other quotes and brackets (“ ” 「 」 『 』 [ ] ...)
  are not in the script's list: “ ” 「 」 『 』 stay, [ ] { } go with the ASCII punctuation.
- `squad` follows SQuAD v1.1's evaluate-v1.1.py: lowercase, drop ASCII punctuation, drop the
  articles a/an/the, collapse whitespace; F1 counts words.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Mapping, Sequence

from qaframe import hookimpl

PUNCTUATION = frozenset(string.punctuation)
KORQUAD_SPACED = re.compile("['\"《》<>〈〉()‘’]")  # the characters evaluate-v1.0.py turns into spaces
ARTICLES = re.compile(r"\b(a|an|the)\b")


def _drop_punctuation(text: str) -> str:
    return "".join(ch for ch in text if ch not in PUNCTUATION)


def korquad_normalize(text: str) -> str:
    """KorQuAD 1.0's normalize_answer: listed quotes/brackets to spaces, lowercase, no punctuation, single spaces."""
    return " ".join(_drop_punctuation(KORQUAD_SPACED.sub(" ", text).lower()).split())


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's normalize_answer: lowercase, no punctuation, no articles, single spaces."""
    return " ".join(ARTICLES.sub(" ", _drop_punctuation(text.lower())).split())


def _f1(prediction: Sequence[str], gold: Sequence[str]) -> float:
    same = sum((Counter(prediction) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _score(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    normalize: Callable[[str], str],
    units: Callable[[str], Sequence[str]],
) -> dict[str, float]:
    exact = f1 = 0.0
    missing = 0
    for key, golds in references.items():
        if key not in predictions:
            missing += 1
            continue
        predicted = normalize(predictions[key])
        normalized = [normalize(gold) for gold in golds]
        exact += max((float(predicted == gold) for gold in normalized), default=0.0)
        f1 += max((_f1(units(predicted), units(gold)) for gold in normalized), default=0.0)
    total = len(references)
    return {
        "exact_match": 100.0 * exact / total if total else 0.0,
        "f1": 100.0 * f1 / total if total else 0.0,
        "missing": missing,
    }


def _characters(normalized: str) -> list[str]:
    return list(normalized.replace(" ", ""))


class KorQuADMetric:
    """KorQuAD 1.0 official scoring: exact match and character-level F1 (evaluate-v1.0.py)."""

    name = "korquad"

    def compute(self, predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """`{id: text}` against `{id: [gold texts]}` -> exact_match, f1 (0-100) and the count of missing ids."""
        return _score(predictions, references, korquad_normalize, _characters)


class SQuADMetric:
    """SQuAD v1.1 official scoring: exact match and word-level F1 (evaluate-v1.1.py)."""

    name = "squad"

    def compute(self, predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """`{id: text}` against `{id: [gold texts]}` -> exact_match, f1 (0-100) and the count of missing ids."""
        return _score(predictions, references, squad_normalize, str.split)


@hookimpl(trylast=True)
def register_metrics(register):
    """Register the built-in metrics."""
    register("korquad", KorQuADMetric)
    register("squad", SQuADMetric)
