"""Corpora: KorQuAD (files, download, no network), SQuAD 1.1/2.0, sample, synthetic, and validation while loading."""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import logging
import re
import shutil
import unicodedata
import urllib.error

import numpy as np
import pytest

from qaframe.errors import UserError
from qaframe.testing import check_corpus
from qaframe.types import CorpusOptions
from qaframe_plugins import corpora


def write(path, data) -> str:
    """Write a JSON document and return its path as a string."""
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def squad(*paragraphs) -> dict:
    """A SQuAD document with one article holding (context, qas) paragraphs."""
    return {"version": "1.1", "data": [{"title": "제목", "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs]}]}


def qa(id, question, *answers, **extra) -> dict:
    """One question record with (text, start) answers."""
    return {"id": id, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers], **extra}


@pytest.fixture
def korquad_dir(tmp_path, fixtures_dir):
    """A data folder holding the two mini KorQuAD files under their official names."""
    shutil.copy(fixtures_dir / "korquad_mini_train.json", tmp_path / "KorQuAD_v1.0_train.json")
    shutil.copy(fixtures_dir / "korquad_mini_dev.json", tmp_path / "KorQuAD_v1.0_dev.json")
    return tmp_path


def test_korquad_reads_both_files_and_keeps_answers_at_offset_zero(qaframe_host, korquad_dir):
    corpus = qaframe_host.create("corpus", "korquad", CorpusOptions(data_dir=korquad_dir))
    assert (corpus.metric, corpus.refiner) == ("korquad", "korean-particles")
    loaded = check_corpus(corpus)
    train, dev = loaded["train"], loaded["dev"]
    assert len(train.examples) == 5 and len(dev.examples) == 3
    assert not train.repaired and not train.skipped
    at_zero = [e.id for split in (train, dev) for e in split.examples if e.answers[0].start == 0]
    assert at_zero == ["mini-train-4", "mini-dev-1"]
    assert [a.text for a in dev.examples[1].answers] == ["세 개", "세 개가"]  # every gold answer kept for scoring
    assert dev.files == (korquad_dir / "KorQuAD_v1.0_dev.json",)


def test_korquad_downloads_missing_files_into_data_dir(qaframe_host, tmp_path, fixtures_dir, monkeypatch):
    fetched = []

    def fake_download(url, target):
        fetched.append((url, target))
        shutil.copy(fixtures_dir / f"korquad_mini_{'train' if 'train' in url else 'dev'}.json", target)

    monkeypatch.setattr(corpora, "download", fake_download)
    corpus = qaframe_host.create("corpus", "korquad", CorpusOptions(data_dir=tmp_path / "kq"))
    assert len(corpus.load("dev").examples) == 3
    assert fetched == [("https://korquad.github.io/dataset/KorQuAD_v1.0_dev.json", tmp_path / "kq" / "KorQuAD_v1.0_dev.json")]
    corpus.load("dev")
    assert len(fetched) == 1  # present now: not fetched again


class FakeResponse(io.BytesIO):
    """What urlopen returns: a readable body with headers."""

    def __init__(self, body: bytes, length: int):
        super().__init__(body)
        self.headers = {"Content-Length": str(length)}


def test_download_writes_the_file_atomically_with_its_full_length(tmp_path, fixtures_dir, monkeypatch):
    body = (fixtures_dir / "korquad_mini_dev.json").read_bytes()
    monkeypatch.setattr(corpora.urllib.request, "urlopen", lambda url, timeout: FakeResponse(body, len(body)))
    path = corpora.ensure_korquad(tmp_path, "dev", ["dev"])
    assert path.read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == ["KorQuAD_v1.0_dev.json"]


def test_interrupted_download_leaves_nothing_and_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b'{"data": [', 5000))
    with pytest.raises(UserError, match="stopped after 10 of 5000 bytes"):
        corpora.ensure_korquad(tmp_path, "train", ["train", "dev"])
    assert list(tmp_path.iterdir()) == []


class CutOffResponse(FakeResponse):
    """A chunked response whose connection breaks after the first block, as http.client reports it."""

    def read(self, size=-1):
        if self.tell():
            raise http.client.IncompleteRead(b"", 16)
        return super().read(size)


def test_a_response_cut_off_mid_chunk_is_a_user_error_and_leaves_nothing(tmp_path, monkeypatch):
    response = CutOffResponse(b'{"data": [', 0)
    response.headers = {}  # chunked: no Content-Length
    monkeypatch.setattr(corpora.urllib.request, "urlopen", lambda url, timeout: response)
    with pytest.raises(UserError, match=r"^cannot download KorQuAD 1\.0 \(IncompleteRead.*put it in .*kq") as caught:
        corpora.ensure_korquad(tmp_path / "kq", "dev", ["dev"])
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no partial file, and no folder made for it



@pytest.mark.parametrize("given, missing", [
    ({"train_file": "mine.json"}, ["dev"]),
    ({"dev_file": "mine.json"}, ["train"]),
    ({}, ["train", "dev"]),
])
def test_a_failed_download_names_only_the_missing_files_and_the_option_for_ones_own(qaframe_host, tmp_path, monkeypatch, given, missing):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(corpora.urllib.request, "urlopen", offline)
    options = CorpusOptions(data_dir=tmp_path / "kq", **{key: tmp_path / name for key, name in given.items()})
    corpus = qaframe_host.create("corpus", "korquad", options)
    with pytest.raises(UserError) as caught:
        corpus.path(missing[0])
    files = " and ".join(f"KorQuAD_v1.0_{split}.json" for split in missing)
    flags = " and ".join(f"--{split}-file" for split in missing)
    assert str(caught.value) == (
        f"cannot download KorQuAD 1.0 (no network); download {files} from https://korquad.github.io/dataset/ and put "
        f"{'them' if len(missing) > 1 else 'it'} in {tmp_path / 'kq'} (or pass --data-dir), or read your own copy with {flags}"
    )

def test_a_data_dir_that_cannot_be_made_is_one_line_exit_2_before_downloading(qaframe_host, capsys, monkeypatch, tmp_path):
    from qaframe.cli import main

    monkeypatch.setattr(corpora, "download", lambda url, target: pytest.fail("downloaded into a folder that cannot exist"))
    (tmp_path / "a-file").write_text("a file where the data folder's parent should be")
    data_dir = tmp_path / "a-file" / "korquad"
    argv = ["inspect", "--corpus", "korquad", "--model", "tiny", "--data-dir", str(data_dir)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"Error: KorQuAD data folder {data_dir} (--data-dir): cannot write in {tmp_path / 'a-file'} (it is a file)")


def test_a_folder_named_like_the_korquad_file_is_one_line_exit_2_before_downloading(qaframe_host, capsys, monkeypatch, tmp_path):
    from qaframe.cli import main

    monkeypatch.setattr(corpora, "download", lambda url, target: pytest.fail("downloaded onto a folder"))
    (tmp_path / "KorQuAD_v1.0_train.json").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--corpus", "korquad", "--model", "tiny", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"Error: {tmp_path / 'KorQuAD_v1.0_train.json'} is a folder, not the KorQuAD file;")
    assert (tmp_path / "KorQuAD_v1.0_train.json").is_dir()


@pytest.mark.parametrize("folder", ["data", "data/korquad"])
def test_no_network_is_one_line_naming_the_files_and_the_folder(qaframe_host, tmp_path, monkeypatch, folder):
    def refuse(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(corpora.urllib.request, "urlopen", refuse)
    corpus = qaframe_host.create("corpus", "korquad", CorpusOptions(data_dir=tmp_path / folder))
    with pytest.raises(UserError) as caught:
        corpus.load("train")
    message = str(caught.value)
    assert "\n" not in message
    for part in ("KorQuAD_v1.0_train.json", "KorQuAD_v1.0_dev.json", str(tmp_path / folder), "name resolution"):
        assert part in message
    assert list(tmp_path.iterdir()) == []  # no folder made for the download is left behind, a parent neither


def test_korquad_2_file_is_refused_clearly(qaframe_host, fixtures_dir):
    options = CorpusOptions(train_file=fixtures_dir / "korquad_v2_mini.json", dev_file=fixtures_dir / "korquad_v2_mini.json")
    corpus = qaframe_host.create("corpus", "korquad", options)
    with pytest.raises(UserError, match=r"korquad_v2_mini\.json is a KorQuAD 2\.0 file .*HTML"):
        corpus.load("train")


def test_malformed_json_names_file_line_and_column(fixtures_dir):
    with pytest.raises(UserError, match=r"malformed\.json:5:34: malformed JSON: Expecting value"):
        corpora.load_squad_file(fixtures_dir / "malformed.json")


@pytest.mark.parametrize("document", [[1, 2], {"version": "1.1"}, {"data": {"title": "x"}}, "text"])
def test_wrong_top_level_type_is_a_user_error(tmp_path, document):
    with pytest.raises(UserError, match=r"bad\.json: expected a SQuAD-format JSON object with a 'data' list"):
        corpora.load_squad_file(write(tmp_path / "bad.json", document))


def test_file_with_byte_order_mark_and_korean_text_loads(tmp_path):
    document = squad(("가나다 라마", [qa("q1", "무엇?", ("가나다", 0))]))
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(document, ensure_ascii=False).encode("utf-8"))
    assert corpora.load_squad_file(path).examples[0].answers[0].text == "가나다"


def messy_document() -> dict:
    """One paragraph per kind of problem, plus clean and repairable records."""
    context = "서울은 한국의 수도이다. 서울의 인구는 약 940만 명이다. 서울에는 한강이 흐른다."
    return {
        "version": "1.1",
        "data": [
            {
                "title": "서울",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            qa("ok-zero", "한국의 수도는?", ("서울", 0)),
                            qa("moved", "서울에 흐르는 강은?", ("한강", 30)),  # true start 39
                            qa("nearest", "인구를 말하는 문장의 도시는?", ("서울", 16)),  # occurrences 0, 14, 34: nearest is 14
                            qa("absent", "부산의 인구는?", ("부산", 3)),
                            qa("negative", "수도는?", ("서울", -1)),
                            qa("too-large", "수도는?", ("서울", 500)),
                            qa("no-question", "", ("서울", 0)),
                            {"id": "no-answers", "question": "질문?"},
                            qa("bad-start", "수도는?", ("서울", "0")),
                            qa("half", "수도는?", ("서울", 0), ("대전", 0)),
                            qa("ok-zero", "한국의 수도는?", ("서울", 0)),  # an exact repeat
                            {"question": "아이디 없음?", "answers": []},
                            qa(True, "참 아이디?", ("서울", 0)),
                            qa("bad-flag", "수도는?", ("서울", 0), is_impossible="no"),
                        ],
                    },
                    {"context": "   ", "qas": [qa("empty-context", "무엇?", ("가", 0))]},
                    {"context": 42, "qas": [qa("number-context", "무엇?", ("가", 0))]},
                    {"context": context},
                ],
            },
            {"title": "빈 기사"},
        ],
    }


def test_records_are_repaired_or_skipped_with_reasons_in_the_split(tmp_path, caplog):
    path = write(tmp_path / "messy.json", messy_document())
    with caplog.at_level(logging.WARNING, logger="qaframe.corpora"):
        split = corpora.load_squad_file(path)
    kept = {e.id: e for e in split.examples}
    assert sorted(kept) == ["half", "moved", "nearest", "ok-zero"]
    assert kept["moved"].answers[0].start == 39 and kept["nearest"].answers[0].start == 14
    assert kept["ok-zero"].answers[0].start == 0 and kept["ok-zero"].question == "한국의 수도는?"
    assert [a.text for a in kept["half"].answers] == ["서울"]
    assert split.repaired == ["moved", "nearest"]
    reasons = dict(split.skipped)
    assert "does not occur" in reasons["absent"] and "example dropped" in reasons["absent"]
    assert "outside the context" in reasons["negative"] and "outside the context" in reasons["too-large"]
    assert "'question'" in reasons["no-question"] and "'answers'" in reasons["no-answers"]
    assert "not an integer" in reasons["bad-start"] and "answer dropped" in reasons["half"]
    assert reasons["ok-zero"] == "duplicate id" and "'is_impossible'" in reasons["bad-flag"]
    assert "context" in reasons["empty-context"] and "context" in reasons["number-context"]
    assert "'id'" in reasons["article 0 paragraph 0 question 11"] and "'id'" in reasons["article 0 paragraph 0 question 12"]
    assert "paragraphs" in reasons["article 1"] and "qas" in reasons["article 0 paragraph 3"]
    assert len(split.skipped) == 15
    assert not caplog.records  # the commands report the split's counts, once (the corpus logging them too was a second report)


def test_strict_loading_stops_at_the_first_problem_naming_file_and_record(tmp_path):
    path = write(tmp_path / "messy.json", messy_document())
    with pytest.raises(UserError, match=r"messy\.json: record moved: answer 1: answer_start 30 does not point at '한강'.*strict"):
        corpora.load_squad_file(path, strict=True)
    clean = write(tmp_path / "clean.json", squad(("서울은 수도이다.", [qa("a", "수도는?", ("서울", 0))])))
    assert len(corpora.load_squad_file(clean, strict=True).examples) == 1


def test_strict_option_reaches_the_corpus(qaframe_host, tmp_path):
    path = write(tmp_path / "one.json", squad(("서울은 수도이다.", [qa("gone", "수도는?", ("부산", 0))])))
    corpus = qaframe_host.create("corpus", "squad-json", CorpusOptions(dev_file=path, strict=True))
    with pytest.raises(UserError, match="record gone: .*does not occur"):
        corpus.load("dev")


def test_contexts_are_kept_exactly_as_written(tmp_path):
    context = "첫 줄\r\n둘째\u200b 줄에는 \u200e한강이 있다. 한강"
    split = corpora.load_squad_file(write(tmp_path / "raw.json", squad((context, [qa("raw", "강은?", ("한강", context.index("한강")))]))))
    example = split.examples[0]
    assert example.context == context and example.context[example.answers[0].start :].startswith("한강")


def test_squad_v2_unanswerable_questions_have_no_gold_answers(qaframe_host, fixtures_dir):
    corpus = qaframe_host.create("corpus", "squad-json", CorpusOptions(train_file=fixtures_dir / "squad_v2_mini.json"))
    assert (corpus.metric, corpus.refiner, corpus.splits()) == ("squad", "none", ("train",))
    examples = {e.id: e for e in check_corpus(corpus)["train"].examples}
    assert examples["v2-2"].is_impossible and examples["v2-2"].answers == ()
    assert not examples["v2-1"].is_impossible and [a.text for a in examples["v2-1"].answers] == ["1871", "in 1871"]
    assert examples["v2-3"].answers[0].start == 100
    with pytest.raises(UserError, match=r"^corpus 'squad-json' has no 'dev' split \(it has: train\)$"):
        corpus.load("dev")


def test_squad_json_needs_a_file(qaframe_host):
    with pytest.raises(UserError, match="--train-file and/or --dev-file"):
        qaframe_host.create("corpus", "squad-json", CorpusOptions())


def test_missing_file_is_a_user_error(qaframe_host, tmp_path):
    corpus = qaframe_host.create("corpus", "squad-json", CorpusOptions(dev_file=tmp_path / "nope.json"))
    with pytest.raises(UserError, match=r"nope\.json: no such file"):
        corpus.load("dev")


def test_sample_corpus_ships_clean_korquad_format_data(qaframe_host):
    corpus = qaframe_host.create("corpus", "sample", CorpusOptions(strict=True))
    assert (corpus.metric, corpus.refiner) == ("korquad", "korean-particles")
    loaded = check_corpus(corpus)
    assert len(loaded["train"].examples) + len(loaded["dev"].examples) >= 250
    assert not set(e.id for e in loaded["train"].examples) & set(e.id for e in loaded["dev"].examples)


def test_synthetic_corpus_loads_generated_splits(qaframe_host):
    corpus = qaframe_host.create("corpus", "synthetic", CorpusOptions(strict=True))
    assert corpus.metric == "korquad"
    loaded = check_corpus(corpus, ["dev"])
    assert len(loaded["dev"].examples) == 300
    with pytest.raises(UserError, match=r"^corpus 'synthetic' has no 'test' split \(it has: train, dev\)$"):
        corpus.load("test")


def test_integer_too_long_to_read_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / "long_start.json"
    text = json.dumps(squad(("서울은 수도이다.", [qa("q1", "수도는?", ("서울", 0))])), ensure_ascii=False)
    path.write_text(text.replace('"answer_start": 0', '"answer_start": ' + "1" * 5000), encoding="utf-8")
    with pytest.raises(UserError, match=r"long_start\.json: holds an integer of thousands of digits"):
        corpora.load_squad_file(path)


def test_deeply_nested_json_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(UserError, match=r"deep\.json: JSON nested too deeply"):
        corpora.load_squad_file(path)


@pytest.mark.parametrize("corpus", ["sample", "synthetic"])
@pytest.mark.parametrize("flag, options", [("--train-file", CorpusOptions(train_file="x.json")), ("--dev-file", CorpusOptions(dev_file="x.json"))])
def test_built_in_corpora_refuse_files_they_would_ignore(qaframe_host, corpus, flag, options):
    with pytest.raises(UserError, match=f"^{flag} x.json: corpus {corpus} reads no files; use --corpus squad-json or korquad"):
        qaframe_host.create("corpus", corpus, options)


@pytest.mark.parametrize("command", [["inspect", "--corpus", "sample"], ["run", "--corpus", "synthetic"]])
def test_a_file_given_to_a_built_in_corpus_is_one_line_exit_2(qaframe_host, capsys, monkeypatch, tmp_path, command):
    from qaframe.cli import main

    argv = [*command, "--train-file", str(tmp_path / "x.json")]
    monkeypatch.setattr("sys.argv", ["qaframe", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"Error: --train-file {tmp_path / 'x.json'}: corpus {command[2]} reads no files")


@pytest.mark.parametrize("invisible", ["\u200b", "\u2063", "\u00ad", "\u202e", "\x7f"])
def test_an_answers_invisible_ends_stay_in_the_gold_text_and_out_of_the_labels(tmp_path, kcbert_tokenizer, invisible):
    """No token covers a format (Cf) or control (Cc) character at an answer's end; the labels leave it out, the gold keeps it."""
    from qaframe.types import Answer, FeaturizerSettings
    from qaframe_plugins.featurizers import SlidingWindowFeaturizer

    context = f"한국의 수도는 {invisible}서울{invisible}이다."
    document = squad((context, [qa("edges", "수도는?", (f"{invisible}서울{invisible}", 8))]))
    split = corpora.load_squad_file(write(tmp_path / "edges.json", document))
    [example] = split.examples
    assert not split.repaired and example.answers == (Answer(f"{invisible}서울{invisible}", 8),)
    featurizer = SlidingWindowFeaturizer(FeaturizerSettings(64, 16, 16))
    kept = featurizer.featurize([example], kcbert_tokenizer)
    visible = featurizer.featurize([dataclasses.replace(example, answers=(Answer("서울", 9),))], kcbert_tokenizer)
    labels = [kept.start_positions.tolist(), kept.end_positions.tolist()]
    assert labels == [visible.start_positions.tolist(), visible.end_positions.tolist()] and labels[0][0] > 0  # not CLS


def test_a_gold_answer_with_a_zero_width_end_scores_as_the_official_korquad_scorer_does(qaframe_host, tmp_path, kcbert_tokenizer):
    """The token 시\u200b는 covers the zero-width space inside the word: the refined prediction keeps it, and so does the gold."""
    from qaframe.task import Evaluator
    from qaframe.types import FeaturizerSettings
    from qaframe_plugins.featurizers import SlidingWindowFeaturizer

    context = "서울특별시\u200b는 대한민국의 수도이다."
    split = corpora.load_squad_file(write(tmp_path / "zw.json", squad((context, [qa("zw", "수도는?", ("서울특별시\u200b", 0))]))))
    features = SlidingWindowFeaturizer(FeaturizerSettings(64, 16, 16)).featurize(split.examples, kcbert_tokenizer)
    start, end = (np.where(np.arange(features.lengths[0]) == label[0], 10.0, 0.0)[None] for label in
                  (features.start_positions, features.end_positions))
    evaluator = Evaluator(split.examples, features, qaframe_host.create("metric", "korquad"), qaframe_host.create("refiner", "korean-particles"))
    evaluation = evaluator.evaluate(start, end)
    assert evaluation.predictions == {"zw": "서울특별시\u200b"}  # official evaluate-v1.0.py: exact match 1
    assert evaluation.scores["exact_match"] == 100.0


# -- data from labelling tools and other systems --------------------------------------------
@pytest.mark.parametrize("text", [" 경북대학교  ", "프로그래머 ", "1977년\xa0", "서울\n"])
def test_whitespace_at_an_answers_ends_is_trimmed_and_reported_as_a_repair(qaframe_host, tmp_path, text):
    context = "그는 경북대학교를 나와 프로그래머로 일했고, 1977년에 서울로 갔다."
    word = text.strip()
    start = context.index(word) - (len(text) - len(text.lstrip()))  # the leading whitespace sits where the context has it or not
    path = write(tmp_path / "spaces.json", squad((context, [qa("q1", "무엇?", (text, start))])))
    split = corpora.load_squad_file(path)
    assert [e.answers for e in split.examples] == [(corpora.Answer(word, context.index(word)),)]
    assert split.repaired == ["q1"] and not split.skipped
    with pytest.raises(UserError, match=rf"record q1: answer 1: whitespace trimmed from the ends of {re.escape(repr(text))} \(strict"):
        corpora.load_squad_file(path, strict=True)
    for metric in ("korquad", "squad"):  # the official scorers split on whitespace: trimming changes no score
        scorer = qaframe_host.create("metric", metric)
        assert scorer.compute({"q1": word}, {"q1": [text]}) == scorer.compute({"q1": word}, {"q1": [word]})


def korean_document(form: str, answer_form: str = "NFC") -> dict:
    """Two records about one context in Unicode `form`, answers in `answer_form`, answer_start counted in the context as
    written. "한강" occurs three times; the second record's answer is the second occurrence, at NFC offset 10 and NFD
    offset 20, nearer the third occurrence (NFC 21) than the second: an unmapped offset would land on the wrong one."""
    context = unicodedata.normalize(form, "한강은 길다. 그 한강이 흐른다. 큰 한강 다리가 있다.")
    answer = unicodedata.normalize(form, "한강")
    second = context.index(answer, context.index(answer) + 1)
    records = [qa("q1", unicodedata.normalize(form, "무엇이 길다?"), (unicodedata.normalize(answer_form, "한강은"), 0)),
               qa("q2", unicodedata.normalize(form, "무엇이 흐르나?"), (unicodedata.normalize(answer_form, "한강"), second))]
    return squad((context, records))


@pytest.mark.parametrize("form, answer_form", [("NFD", "NFC"), ("NFC", "NFD"), ("NFD", "NFD")])
def test_decomposed_hangul_is_brought_to_nfc_with_answer_start_mapped(tmp_path, form, answer_form):
    composed = corpora.load_squad_file(write(tmp_path / "nfc.json", korean_document("NFC")))
    assert not composed.repaired and [e.answers[0].start for e in composed.examples] == [0, 10]
    split = corpora.load_squad_file(write(tmp_path / "mixed.json", korean_document(form, answer_form)))
    assert split.examples == composed.examples  # the same examples, so the same scores, as the file written in NFC
    assert split.repaired == ["q1", "q2"] and not split.skipped  # one repair per record normalized; no answer_start moved
    with pytest.raises(UserError, match=r"mixed\.json: record q1: context, question or answer text not in Unicode NFC .*strict"):
        corpora.load_squad_file(tmp_path / "mixed.json", strict=True)


@pytest.mark.parametrize("record_id, kept", [(7, "7"), (0, "0"), (-3, "-3"), ("7", "7")])
def test_an_integer_id_becomes_its_decimal_string(tmp_path, record_id, kept):
    split = corpora.load_squad_file(write(tmp_path / "ids.json", squad(("서울은 수도이다.", [qa(record_id, "수도는?", ("서울", 0))]))))
    assert [e.id for e in split.examples] == [kept] and not split.skipped


@pytest.mark.parametrize("record_id, kind", [(True, "bool"), (7.0, "float"), ([7], "list")])
def test_other_non_string_ids_are_still_skipped(tmp_path, record_id, kind):
    records = [qa("ok", "수도는?", ("서울", 0)), qa(record_id, "수도는?", ("서울", 0))]
    split = corpora.load_squad_file(write(tmp_path / "ids.json", squad(("서울은 수도이다.", records))))
    assert split.skipped == [("article 0 paragraph 0 question 1", f"'id' is not a string ({kind})")]


def test_an_exact_repeat_of_a_record_is_skipped_as_a_duplicate_and_loses_nothing(tmp_path):
    record = qa("1", "수도는?", ("서울", 0))
    split = corpora.load_squad_file(write(tmp_path / "dup.json", squad(("서울은 수도이다.", [record, record, qa("2", "무엇?", ("수도", 4))]))))
    assert [e.id for e in split.examples] == ["1", "2"] and split.skipped == [("1", "duplicate id")]


@pytest.mark.parametrize("second", [
    ("서울은 수도이다.", [qa("1", "어디가 수도인가?", ("서울", 0))]),  # another question
    ("부산은 항구이다.", [qa("1", "수도는?", ("부산", 0))]),  # another context (a labelling tool restarted its ids)
    ("서울은 수도이다.", [qa("1", "수도는?", ("서울은", 0))]),  # other answers
])
@pytest.mark.parametrize("strict", [False, True])
def test_an_id_given_to_two_different_records_is_an_error_naming_both_places(tmp_path, second, strict):
    path = write(tmp_path / "restart.json", squad(("서울은 수도이다.", [qa(1, "수도는?", ("서울", 0))]), second))
    with pytest.raises(UserError) as caught:
        corpora.load_squad_file(path, strict=strict)
    assert str(caught.value) == (f"{path}: id '1' names two different records (article 0 paragraph 0 question 0 and article 0 "
                                 "paragraph 1 question 0); ids must be unique: give one of them another id")


@pytest.mark.parametrize("records, found", [
    ([qa("u1", "무엇?", is_impossible=True), qa("u2", "누구?", is_impossible=True)], "all 2 unanswerable (is_impossible)"),
    ([qa("u1", "무엇?", is_impossible=True), qa("gone", "누구?", ("부산", 0))],
     "all 1 unanswerable (is_impossible), 1 skipped, first: gone (answer 1: text '부산' does not occur"),
])
def test_a_split_without_an_answerable_question_is_one_line_exit_2(qaframe_host, capsys, tmp_path, records, found):
    from qaframe.cli import main

    path = write(tmp_path / "dev.json", squad(("서울은 수도이다.", records)))
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--corpus", "squad-json", "--model", "tiny", "--dev-file", path])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"Error: {path}: no usable question records ({found}") and "training and scoring need answered questions" in err
