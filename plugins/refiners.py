"""Built-in answer-boundary refiners: `korean-particles` (a rule) and `learned-suffix` (learned from the training answers).

KcBERT's WordPiece vocabulary often keeps a particle inside the token of the word before it
("임수경을" -> 임 / ##수 / ##경을), so no token span equals the answer 임수경. Both refiners cut
such a particle off the end of a decoded span, and only ever inside the span's last token.

`korean-particles` follows these rules:

1. The cut lies inside the span's last token (from `last_token_start` to `end`), never at or
   before its first character: a token boundary the tokenizer made is never crossed and the
   span never becomes empty.
2. What the cut removes plus the rest of the word after the span (up to the next character
   that is not a letter or digit) must be one of `ENDINGS`: a particle, a stack of particles
   or a form of the copula. So 임수경을 -> 임수경 and 정주에 / ##서 -> 정주 (에서), while
   고양이 / ##는 stays: the tokenizer split 는 off itself and "이는" is no ending.
3. The earliest such cut wins (the longest ending), one cut per span.
4. Endings that come in pairs by sound must fit the syllable before them: 을 은 이 과 only
   after a final consonant (받침), 를 는 가 와 였다 라고 only after a vowel, 로... after a
   vowel or ㄹ, 으로... after a final consonant other than ㄹ. So 아이, 마을, 국가 and 작가
   keep their last syllable (화가 does not: 가 after a vowel is the subject particle). After
   a character that is not a Hangul syllable (a digit, a Latin letter) either form may follow.

Left out on purpose, because many answers end in them: bare 도 (제도, 정도, 온도), 만 (백만,
천만), 다 (바다), 고, 며, 나, 자, 란 (계란), 야 and 아. A noun that itself ends in a listed
ending (고양이 before a space, 꽃게돌이) is still cut; the rule cannot tell it from a particle.

`learned-suffix` is a lexicalized back-off model of the same decision, learned from the gold
answers of the training split (a TrainableRefiner: `fit`, `to_json`, `load_json`). The *tail*
of a span is the text from its last token's start to the end of its word (e.g. "경을", or
"정주에서" for 정주에 / ##서); the decision is the *cut*, how many characters at the tail's end
are not part of the answer, among the cuts that stay inside the last token. Fitting reads each
gold answer's tail and cut with the model's tokenizer and counts them at four levels: the whole
tail, its last 3 and 2 characters, and its last character with the sound class of the syllable
before it (vowel, final ㄹ, other final consonant, not Hangul: the distinction the particle pairs
follow). Prediction starts from the rule's cut as a prior worth `RULE_WEIGHT` observations and
updates it level by level, least specific first: p(cut) = (count(cut) + w * p_below(cut)) /
(total + w), with w = `SMOOTHING` (add-one) once data has entered; the most probable cut wins,
and a tie cuts less. So a rare key moves the estimate a little and a frequent one decides it,
with no threshold to tune, and where no level has data the rule decides alone. The tail level
counts every answer; the suffix levels count each distinct (tail, cut) once, as Kneser-Ney
does, because how a suffix behaves on an unseen word is better told by how many different
words behave so than by how often one frequent word occurs.

Why this design rather than an extra head on the encoder: it has no encoder parameters and
needs no retraining or GPU; fitting is one batched tokenizer call plus one pass of counting
over the labels (the counting takes milliseconds); its state is a small JSON table anyone can
read (fitted on the synthetic corpus, "볶이": {"0": 7} says 떡볶이 was kept whole 7 times); and it keeps a word like 떡볶이 or
화가 whole when the training data says so, where the rule cuts it, while it stays at the rule's
decision for words and suffixes the data never showed. Measured with `qaframe inspect`
(exact-match ceiling on the labelled spans): fitted on either built-in corpus and measured on
the other it equals the rule, and within a corpus it reaches 100 % where the rule does not.
"""

from __future__ import annotations

import bisect

from qaframe import hookimpl
from qaframe.text import nfc_position, to_nfc

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
FINAL_RIEUL = 8  # index of ㄹ among the final consonants


def _endings(condition: str, words: str) -> dict[str, str]:
    return dict.fromkeys(words.split(), condition)


# ending -> which syllable it may follow: "any", "consonant", "vowel", "vowel-or-rieul", "consonant-not-rieul"
ENDINGS: dict[str, str] = {
    # postpositions without sound pairs, alone and stacked ("서울에서의", "학교에는")
    **_endings("any", "의 에 에서 에게 에게서 께서 한테 까지 부터 에서부터 처럼 보다 조차 마저"),
    **_endings("any", "에는 에도 에의 에서의 에서는 에서도 에서만 에게는 에게도 까지의 까지는 까지도 부터의 부터는"),
    # the copula after a noun ("조선이었다", "교사이다", "27만 명이며")
    **_endings("any", "이다 이었다 이었으며 이었고 이었던 이며 이고 이자 이라는 이라고 이라 이면 이지만 이므로 이던 이나"),
    # pairs chosen by the syllable before them
    **_endings("consonant", "을 은 이 과 과의 과는 과도"),
    **_endings("vowel", "를 는 가 와 와의 와는 와도 였다 였으며 였고 였던 라는 라고"),
    **_endings("vowel-or-rieul", "로 로서 로써 로의 로는 로도 로부터 로만"),
    **_endings("consonant-not-rieul", "으로 으로서 으로써 으로의 으로는 으로도 으로부터 으로만"),
}
LONGEST = max(map(len, ENDINGS))
# condition -> the sound classes (see `sound`) of the syllables an ending with it may follow
SOUNDS = {"any": "VLC-", "consonant": "LC-", "vowel": "V-", "vowel-or-rieul": "VL-", "consonant-not-rieul": "C-"}


def word_end(context: str, end: int) -> int:
    """Where the word that `end` falls in ends: past the letters and digits that follow `end`."""
    while end < len(context) and context[end].isalnum():
        end += 1
    return end


def sound(character: str) -> str:
    """The sound class of a syllable for the particles after it: V (vowel), L (final ㄹ), C (other final), - (not Hangul)."""
    code = ord(character)
    if not HANGUL_FIRST <= code <= HANGUL_LAST:
        return "-"
    final = (code - HANGUL_FIRST) % 28
    return "V" if final == 0 else "L" if final == FINAL_RIEUL else "C"


def _fits(condition: str, before: str) -> bool:
    """Whether an ending with this sound condition may follow the character `before`."""
    return sound(before) in SOUNDS[condition]


class KoreanParticles:
    """Cuts a Korean particle (을, 를, 이, 가, 에서, 으로, ...) merged into the answer's last token."""

    name = "korean-particles"

    def refine(self, context: str, start: int, end: int, last_token_start: int) -> tuple[int, int]:
        """The span without a trailing particle inside its last token, or the span unchanged."""
        if not start <= last_token_start < end <= len(context):
            return start, end
        stop = word_end(context, end)
        if stop - end >= LONGEST:  # the word goes on past the longest ending
            return start, end
        for cut in range(max(last_token_start + 1, stop - LONGEST), end):
            condition = ENDINGS.get(context[cut:stop])
            if condition is not None and _fits(condition, context[cut - 1]):
                return start, cut
        return start, end


# -- learned-suffix -------------------------------------------------------------------
LEVELS = ("tail", "suffix-3", "suffix-2", "suffix-1")  # most specific first
STATE_FORMAT = "qaframe-learned-suffix-1"
SMOOTHING = 1.0  # pseudo-observations a level borrows from the less specific estimate below it
RULE_WEIGHT = 3.0  # pseudo-observations (distinct words) the korean-particles prior is worth


def tail_keys(tail: str) -> list[tuple[str, str]]:
    """(level, key) pairs of a tail, most specific first: the tail, its last 3 and 2 characters (when shorter
    than the tail), and its last character with the sound class of the one before."""
    keys = [("tail", tail)]
    keys.extend((f"suffix-{k}", tail[-k:]) for k in (3, 2) if k < len(tail))
    if len(tail) > 1:
        keys.append(("suffix-1", sound(tail[-2]) + tail[-1]))
    return keys


def gold_tails(examples, tokenizer):
    """(tail, cut) per gold answer: `tail` runs from the start of the token holding the answer's last character
    to the end of its word; `cut` is how many characters at the tail's end the answer leaves out.

    Both are read in the context's NFC form, the form `refine` is given (decoding normalizes it).
    """
    contexts = list(dict.fromkeys(e.context for e in examples if e.answers and not e.is_impossible))
    if not contexts:
        return
    normalized = {context: to_nfc(context) for context in contexts}
    encoded = tokenizer(
        [text for text, _ in normalized.values()], add_special_tokens=False, return_offsets_mapping=True,
        return_attention_mask=False, return_token_type_ids=False, verbose=False,
    )
    tokens = {}
    for context, offsets in zip(contexts, encoded["offset_mapping"]):
        ranges = [(a, b) for a, b in offsets if b > a]
        tokens[context] = ([a for a, _ in ranges], [b for _, b in ranges])
    for example in examples:
        if example.is_impossible:
            continue
        text, spans = normalized[example.context]
        starts, ends = tokens[example.context]
        for answer in example.answers:
            answer_end = answer.end if spans is None else nfc_position(spans, answer.end)
            index = bisect.bisect_left(starts, answer_end) - 1  # the last token starting before the answer ends
            if index < 0 or ends[index] < answer_end:
                continue  # the answer's last character lies in no token (a trailing space)
            stop = word_end(text, ends[index])
            yield text[starts[index] : stop], stop - answer_end


class LearnedSuffix:
    """Trims the answer's last token as the training answers did: word and suffix counts over the korean-particles rule."""

    name = "learned-suffix"

    def __init__(self):
        self.counts: dict[str, dict[str, dict[int, int]]] = {level: {} for level in LEVELS}
        self.fallback = KoreanParticles()

    def fit(self, examples, tokenizer) -> None:
        """Count the cuts of the gold answers: per tail every answer, per suffix class every distinct (tail, cut)."""
        self.counts = {level: {} for level in LEVELS}
        seen = set()
        for tail, cut in gold_tails(examples, tokenizer):
            first = (tail, cut) not in seen
            seen.add((tail, cut))
            for level, key in tail_keys(tail):
                if level == "tail" or first:
                    cuts = self.counts[level].setdefault(key, {})
                    cuts[cut] = cuts.get(cut, 0) + 1

    def refine(self, context: str, start: int, end: int, last_token_start: int) -> tuple[int, int]:
        """The most probable cut inside the last token: korean-particles' choice, updated by ever more specific counts."""
        if not start <= last_token_start < end <= len(context):
            return start, end
        stop = word_end(context, end)
        choices = range(stop - end, stop - last_token_start)  # the first keeps the span; every cut keeps a character
        rule = stop - self.fallback.refine(context, start, end, last_token_start)[1]
        probability = {cut: float(cut == rule) for cut in choices}
        weight = RULE_WEIGHT
        for level, key in reversed(tail_keys(context[last_token_start:stop])):
            cuts = self.counts[level].get(key, {})
            total = sum(cuts.get(cut, 0) for cut in choices)
            if total:
                probability = {cut: (cuts.get(cut, 0) + weight * p) / (total + weight) for cut, p in probability.items()}
                weight = SMOOTHING
        return start, stop - max(choices, key=probability.__getitem__)  # a tie cuts less

    def to_json(self) -> dict:
        """The counts as JSON: {"format", "counts": {level: {key: {cut: count}}}}."""
        counts = {level: {key: {str(c): n for c, n in cuts.items()} for key, cuts in table.items()} for level, table in self.counts.items()}
        return {"format": STATE_FORMAT, "counts": counts}

    def load_json(self, data: dict) -> None:
        """Restore counts written by `to_json`; ValueError when `data` is something else."""
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a learned-suffix state (expected format {STATE_FORMAT!r})")
        try:
            counts = {
                level: {str(key): {int(c): int(n) for c, n in cuts.items()} for key, cuts in data["counts"][level].items()}
                for level in LEVELS
            }
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"damaged learned-suffix state ({type(error).__name__}: {error})") from None
        self.counts = counts


@hookimpl(trylast=True)
def register_refiners(register):
    """Register the built-in answer-boundary refiners."""
    register("korean-particles", KoreanParticles)
    register("learned-suffix", LearnedSuffix)
