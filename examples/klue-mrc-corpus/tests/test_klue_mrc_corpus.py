"""Tests of the klue-mrc corpus plugin: conformance, JSON lines vs arrays, unanswerable questions, repairs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qaframe_klue_mrc
from qaframe.errors import UserError
from qaframe.testing import check_corpus
from qaframe.types import CorpusOptions

CONTEXT = "서하시는 1962년에 시로 승격하였다. 서하시의 특산물은 잣과 송이버섯이다."


def record(guid: str, question: str, texts: list[str], *, starts: list[int] | None = None, impossible: bool = False, **extra) -> dict:
    """One flat KLUE-MRC record about CONTEXT; answer starts found in the context unless given."""
    starts = starts if starts is not None else [CONTEXT.find(t) for t in texts]
    return {"title": "서하시", "context": CONTEXT, "news_category": "사회", "source": "test", "guid": guid,
            "is_impossible": impossible, "question_type": 3 if impossible else 1, "question": question,
            "answers": {"answer_start": starts, "text": texts}, **extra}


RECORDS = [
    record("t-1", "서하시가 시로 승격한 해는?", ["1962년"]),
    record("t-2", "서하시의 특산물은?", ["잣과 송이버섯", "송이버섯"]),
    record("t-3", "서하시의 시장은 누구인가?", ["잣과 송이버섯"], impossible=True),
]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def write_array(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def make_corpus(qaframe_host, register_plugin):
    """Build klue-mrc through an isolated plugin host, as `--corpus klue-mrc` would."""
    register_plugin(qaframe_klue_mrc)

    def make(**options):
        return qaframe_host.create("corpus", "klue-mrc", CorpusOptions(**options))

    return make


def test_packaged_sample_fits_the_corpus_contract(make_corpus):
    loaded = check_corpus(make_corpus())
    corpus = make_corpus()
    assert (corpus.metric, corpus.refiner) == ("korquad", "korean-particles")
    train, dev = loaded["train"], loaded["dev"]
    assert (len(train.examples), len(dev.examples)) == (39, 12)
    assert not train.repaired and not train.skipped and not dev.repaired and not dev.skipped
    assert sum(e.is_impossible for e in train.examples) == 4 and sum(e.is_impossible for e in dev.examples) == 1
    assert [f.name for f in train.files + dev.files] == ["train.jsonl", "validation.json"]  # both readers run


def test_json_lines_and_json_array_read_the_same(make_corpus, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", RECORDS)
    write_array(tmp_path / "validation.json", RECORDS)
    corpus = make_corpus(data_dir=tmp_path)
    assert corpus.load("train").examples == corpus.load("dev").examples
    assert check_corpus(corpus)["train"].examples[1].answers[1].text == "송이버섯"


def test_hub_json_export_is_json_lines_even_with_a_json_suffix(make_corpus, tmp_path):
    """`Dataset.to_json("validation.json")` writes JSON lines; the suffix does not decide the format."""
    write_jsonl(tmp_path / "train.json", RECORDS)
    write_jsonl(tmp_path / "validation.json", RECORDS[:1])
    corpus = make_corpus(data_dir=tmp_path)
    assert [e.id for e in corpus.load("train").examples] == ["t-1", "t-2", "t-3"]
    assert [e.id for e in corpus.load("dev").examples] == ["t-1"]


def test_unanswerable_questions_keep_no_answers(make_corpus, tmp_path):
    no_answers = {k: v for k, v in record("t-4", "서하시의 면적은?", [], impossible=True).items() if k != "answers"}
    split = make_corpus(train_file=write_jsonl(tmp_path / "t.jsonl", [RECORDS[0], RECORDS[2], no_answers])).load("train")
    assert [(e.id, e.is_impossible, e.answers) for e in split.examples[1:]] == [("t-3", True, ()), ("t-4", True, ())]
    assert not split.skipped


def test_a_file_without_an_answerable_question_is_refused(make_corpus, tmp_path):
    with pytest.raises(UserError, match=r"t\.jsonl: no usable question records \(all 1 unanswerable"):
        make_corpus(train_file=write_jsonl(tmp_path / "t.jsonl", [RECORDS[2]])).load("train")


def test_answer_start_mismatch_is_repaired_and_strict_refuses_it(make_corpus, tmp_path):
    shifted = record("t-5", "서하시가 시로 승격한 해는?", ["1962년"], starts=[CONTEXT.find("1962년") + 3])
    path = write_jsonl(tmp_path / "train.jsonl", [shifted])
    split = make_corpus(train_file=path).load("train")
    assert split.repaired == ["t-5"]
    answer = split.examples[0].answers[0]
    assert CONTEXT[answer.start : answer.end] == "1962년"
    with pytest.raises(UserError, match=r"train\.jsonl: record t-5: .*answer_start"):
        make_corpus(train_file=path, strict=True).load("train")


def test_unusable_records_are_skipped_with_their_reason(make_corpus, tmp_path):
    bad = [
        record("t-6", "어긋난 답?", ["1962년", "잣"], starts=[5]),  # lists of unequal length
        {k: v for k, v in RECORDS[0].items() if k != "guid"},
        record("t-7", "없는 답?", ["부산"], starts=[0]),
        RECORDS[0],
        RECORDS[0],  # duplicate guid
    ]
    split = make_corpus(train_file=write_array(tmp_path / "train.json", bad)).load("train")
    assert [e.id for e in split.examples] == ["t-1"]
    reasons = dict(split.skipped)
    assert "equal length" in reasons["t-6"] and "guid" in reasons["item 1"]
    assert "does not occur" in reasons["t-7"] and reasons["t-1"] == "duplicate id"


def test_malformed_line_names_file_and_line(make_corpus, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(RECORDS[0], ensure_ascii=False) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"train\.jsonl:2:2: malformed JSON: .*; fix the line"):
        make_corpus(train_file=path).load("train")


@pytest.mark.parametrize("indent", [2, None], ids=["pretty-printed", "on-one-line"])
def test_nested_original_release_is_refused_with_a_hint(make_corpus, tmp_path, indent):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"version": "v1.1", "data": [{"paragraphs": []}]}, indent=indent), encoding="utf-8")
    with pytest.raises(UserError, match="flat Hugging Face layout"):
        make_corpus(train_file=path).load("train")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000, r"train\.json: JSON nested too deeply to read; fix the JSON array"),
        ("[" + "1" * 5000 + "]", r"train\.json: holds an integer of thousands of digits \(too long to read\); fix the JSON array"),
        ('{"guid": ' + "1" * 5000 + "}\n", r"train\.json:1: holds an integer of thousands of digits \(too long to read\); fix the line"),
        ("[" * 100_000 + "\n", r"train\.json: JSON nested too deeply to read; fix the JSON array"),
    ],
    ids=["deep-array", "long-integer-array", "long-integer-line", "deep-line"],
)
def test_json_that_python_cannot_read_is_one_line_naming_the_file(make_corpus, tmp_path, text, message):
    path = tmp_path / "train.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message) as caught:
        make_corpus(train_file=path).load("train")
    assert "\n" not in str(caught.value)


def test_data_dir_problems_name_the_folder(make_corpus, tmp_path):
    with pytest.raises(UserError, match=r"no train\.jsonl or train\.json .*README"):
        make_corpus(data_dir=tmp_path).load("train")
    write_jsonl(tmp_path / "validation.jsonl", RECORDS)
    write_jsonl(tmp_path / "validation.json", RECORDS)
    with pytest.raises(UserError, match="holds both validation.jsonl and validation.json"):
        make_corpus(data_dir=tmp_path).load("dev")


def test_named_files_alone_give_only_their_splits(make_corpus, tmp_path):
    corpus = make_corpus(train_file=write_jsonl(tmp_path / "mine.jsonl", RECORDS))
    assert corpus.splits() == ("train",)
    with pytest.raises(UserError, match="no 'dev' split"):
        corpus.load("dev")


def test_dev_file_overrides_the_data_dir(make_corpus, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", RECORDS)
    dev = write_array(tmp_path / "other.json", RECORDS[:1])
    corpus = make_corpus(data_dir=tmp_path, dev_file=dev)
    assert corpus.splits() == ("train", "dev")
    assert corpus.load("dev").files == (dev,)
