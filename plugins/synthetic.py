"""Synthetic Korean QA corpus: one person per context, one attribute asked per question.

A tiny BERT trained from scratch on it should reach exact match >= 90 on the dev split
within a few epochs, so a low score points at a bug in labels, features or decoding
rather than at the model. Each context states a person's four attributes (hometown, job,
year of graduation from university, favourite food) in templated sentences, mixed with two
or three attribute-free distractor sentences in shuffled order; every context is
asked two different questions, so the answer depends on the question. Some templates
attach a particle to the value ("부산에서 태어나", "교사이다"), which the KcBERT
WordPiece tokenizer sometimes merges into the value's last token; that exercises
answer-boundary refinement while most answers still fall on token boundaries.

Pure Python and deterministic: everything comes from `random.Random(seed)`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice

from qaframe.types import no_such_split
from qaframe_plugins.refiners import sound

TRAIN_SIZE = 2400
DEV_SIZE = 300
QUESTIONS_PER_CONTEXT = 2
DISTRACTORS_PER_CONTEXT = (2, 3)

SURNAMES = (
    "김 이 박 최 정 강 조 윤 장 임 한 오 서 신 권 황 안 송 류 전 홍 고 문 양 손 배 백 허 남 노"
).split()
GIVEN_NAMES = (
    "민준 서연 지훈 하은 도윤 수아 예준 지우 시우 서윤 주원 하린 지호 채원 준서 지민 현우 다은 "
    "건우 소윤 우진 예린 선우 수빈 연우 유진 정우 가은 승현 나연 태윤 은서 재원 민서 동현 서진 "
    "준영 혜린 성민 다인"
).split()
CITIES = (
    "서울 부산 대구 인천 광주 대전 울산 세종 수원 춘천 강릉 원주 청주 충주 천안 공주 전주 군산 "
    "목포 여수 순천 포항 경주 안동 구미 창원 진주 통영 김해 제주 서귀포 속초 삼척 제천 익산 남원 "
    "상주 거제 양산 평택"
).split()
JOBS = (
    "교사 의사 간호사 변호사 요리사 기자 경찰관 소방관 약사 작가 화가 가수 배우 농부 어부 목수 "
    "회계사 건축가 통역사 사진작가 프로그래머 디자이너 엔지니어 판사 검사 군인 미용사 제빵사 "
    "조종사 교수 연구원 은행원 공무원 상담사 피아니스트 운동선수 과학자 수의사"
).split()
FOODS = (
    "김치찌개 된장찌개 불고기 비빔밥 냉면 떡볶이 삼겹살 갈비탕 짜장면 짬뽕 칼국수 순대 김밥 라면 "
    "잡채 만두 닭갈비 보쌈 족발 설렁탕 육개장 미역국 부대찌개 순두부찌개 해물파전 감자탕 삼계탕 "
    "우동 초밥 돈가스 피자 치킨 떡국 수제비 콩국수 제육볶음 오므라이스 카레 파스타 햄버거"
).split()

# Sentence templates per attribute, as (template, weight). {value} is the answer text;
# {을} etc. are particles chosen for the preceding word. The weights keep particle-merged
# answers (value and particle in one KcBERT token) at roughly one in ten.
FACTS = {
    "hometown": (
        ("{name은} {value} 출신이다.", 4),
        ("{name은} {value}에서 태어나 자랐다.", 2),
        ("{name의} 고향은 {value}이다.", 1),
    ),
    "job": (
        ("{name은} {value} 일을 한다.", 4),
        ("{name의} 직업은 {value}이다.", 1),
        ("{name은} 요즘 {value}{로} 일하고 있다.", 1),
    ),
    "graduation_year": (
        ("{name은} {value}에 대학을 졸업했다.", 1),
        ("{name은} {value} 봄에 대학을 졸업했다.", 1),
    ),
    "food": (
        ("{name은} {value} 먹는 것을 즐긴다.", 4),
        ("{name이} 가장 좋아하는 음식은 {value}이다.", 1),
        ("{name은} {value}{을} 가장 좋아한다.", 1),
    ),
}
QUESTIONS = {
    "hometown": ("{name의} 고향은 어디인가?", "{name은} 어느 도시 출신인가?", "{name이} 태어난 도시는 어디인가?"),
    "job": ("{name의} 직업은 무엇인가?", "{name은} 무슨 일을 하는가?", "{name은} 어떤 일을 하고 있는가?"),
    "graduation_year": ("{name은} 몇 년에 대학을 졸업했는가?", "{name이} 대학을 졸업한 해는 언제인가?"),
    "food": ("{name이} 가장 좋아하는 음식은 무엇인가?", "{name은} 어떤 음식을 가장 좋아하는가?"),
}
DISTRACTORS = (
    "{name은} 주말마다 산책한다.",
    "{name은} 아침 일찍 일어난다.",
    "{name은} 매일 일기를 쓴다.",
    "{name은} 자전거를 즐겨 탄다.",
    "{name은} 요즘 운동을 시작했다.",
    "{name은} 가끔 영화를 본다.",
    "{name은} 작은 텃밭을 가꾼다.",
    "{name은} 피아노를 배운다.",
    "{name은} 늘 친절하다.",
    "{name은} 여행을 자주 다닌다.",
    "{name의} 집 근처에는 공원이 있다.",
    "{name의} 책상 위에는 화분이 있다.",
)
PRONOUN = "그"  # stands for the person after the first sentence
SEED = 13  # the splits' base seed


def _particles(word: str) -> dict[str, str]:
    """The particle forms that agree with `word`'s last syllable, keyed as they appear in templates."""
    last = sound(word[-1])  # V: a vowel, L: final ㄹ (takes 로, not 으로), C: another final consonant
    final = last in "LC"
    return {
        "은": "은" if final else "는",
        "이": "이" if final else "가",
        "을": "을" if final else "를",
        "로": "으로" if last == "C" else "로",
    }


def _fill(template: str, name: str, value: str = "") -> tuple[str, int]:
    """Fill a template; return the sentence and the index of `value` in it (-1 if absent)."""
    names = {f"name{key}": name + particle for key, particle in _particles(name).items()}
    names["name의"] = name + "의"
    head, sep, tail = template.partition("{value}")
    head = head.format(**names)
    if not sep:
        return head, -1
    return head + value + tail.format(**_particles(value)), len(head)


def _person(rng: random.Random) -> tuple[str, dict[str, str]]:
    """Draw a name and the person's attribute values (graduation year 1950-2020)."""
    name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
    return name, {
        "hometown": rng.choice(CITIES),
        "job": rng.choice(JOBS),
        "graduation_year": f"{rng.randint(1950, 2020)}년",
        "food": rng.choice(FOODS),
    }


def _records(seed: int) -> Iterator[dict]:
    """Yield flattened SQuAD records without end, QUESTIONS_PER_CONTEXT per context."""
    rng = random.Random(seed)
    count = 0
    while True:
        name, values = _person(rng)
        chosen = [(rng.choices(*zip(*FACTS[attribute]))[0], attribute) for attribute in values]
        chosen += [(t, None) for t in rng.sample(DISTRACTORS, rng.randint(*DISTRACTORS_PER_CONTEXT))]
        rng.shuffle(chosen)
        context, starts = "", {}
        for index, (template, attribute) in enumerate(chosen):
            sentence, offset = _fill(template, PRONOUN if index else name, values.get(attribute, ""))
            if context:
                context += " "
            if attribute is not None:
                starts[attribute] = len(context) + offset
            context += sentence
        for attribute in rng.sample(sorted(values), QUESTIONS_PER_CONTEXT):
            count += 1
            question = _fill(rng.choice(QUESTIONS[attribute]), name)[0]
            yield {
                "id": f"synthetic-{seed}-{count:05d}",
                "title": name,
                "context": context,
                "question": question,
                "answers": [{"text": values[attribute], "answer_start": starts[attribute]}],
            }


def generate_synthetic(n_examples: int, seed: int) -> list[dict]:
    """Return `n_examples` flattened SQuAD records, the same ones for the same seed."""
    if n_examples < 0:
        raise ValueError(f"n_examples must be >= 0, got {n_examples}")
    return list(islice(_records(seed), n_examples))


def synthetic_dataset(split: str) -> list[dict]:
    """Return the "train" (2,400 records) or "dev" (300 records) split.

    The splits are drawn from disjoint seeds (2*SEED and 2*SEED+1), and a dev record
    whose context and question also occur in train is skipped, so the splits never overlap.
    """
    if split not in ("train", "dev"):
        raise no_such_split("synthetic", split, ("train", "dev"))
    train = generate_synthetic(TRAIN_SIZE, 2 * SEED)
    if split == "train":
        return train
    seen = {(r["context"], r["question"]) for r in train}
    fresh = (r for r in _records(2 * SEED + 1) if (r["context"], r["question"]) not in seen)
    return list(islice(fresh, DEV_SIZE))
