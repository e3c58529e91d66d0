"""The sliding-window featurizer on the real KcBERT tokenizer: windows, labels, offsets, settings; origin-style functions refused."""

from __future__ import annotations

import string
import unicodedata
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugins_for_tests import origin_featurizer
from plugins_for_tests.offsetless_featurizer import OffsetlessFeaturizer

from qaframe import hookimpl
from qaframe.errors import UserError
from qaframe.features import build_featurizer, require_offsets
from qaframe.testing import check_featurizer
from qaframe.types import Answer, CorpusOptions, FeaturizerSettings, QAExample
from qaframe.text import to_nfc
from qaframe_plugins.featurizers import SlidingWindowFeaturizer, truncate_questions

LONG_CONTEXT = (
    "교향곡은 여러 악장으로 이루어진 큰 규모의 관현악곡이다. 베토벤은 1824년에 아홉 번째 교향곡을 완성하였고, "
    "이 곡은 마지막 악장에 합창을 넣은 것으로 유명하다. 초연은 빈의 케른트너토어 극장에서 열렸으며 청중은 "
    "다섯 번이나 기립 박수를 보냈다고 전해진다. 오늘날 이 곡의 합창 부분은 유럽 연합의 공식 노래로 쓰인다."
)


def example(context: str, answer: str, start: int | None = None, question: str = "무엇인가?", id: str = "q") -> QAExample:
    """A one-answer example; the answer's start defaults to its first occurrence."""
    start = context.index(answer) if start is None else start
    assert context[start : start + len(answer)] == answer
    return QAExample(id, "", question, context, (Answer(answer, start),))


def featurize(examples, tokenizer, max_seq_length=384, doc_stride=128, max_query_length=64):
    """Run the sliding-window featurizer with the given settings."""
    featurizer = SlidingWindowFeaturizer(FeaturizerSettings(max_seq_length, doc_stride, max_query_length))
    return featurizer.featurize(examples, tokenizer)


def window(features, i):
    """(input_ids, offsets, token_type_ids or None) of window i."""
    rows = slice(features.row_splits[i], features.row_splits[i + 1])
    types = features.token_type_ids[rows] if features.token_type_ids is not None else None
    return features.input_ids[rows], features.offsets[rows], types


def labelled_text(features, examples, i):
    """The context text window i labels, or None when it is labelled at CLS."""
    _, offsets, _ = window(features, i)
    start, end = features.start_positions[i], features.end_positions[i]
    if offsets[start, 0] < 0:
        return None
    return examples[features.example_index[i]].context[offsets[start, 0] : offsets[end, 1]]


def holds_answer(features, examples, i) -> bool:
    """Whether the context tokens of window i cover the example's first answer."""
    _, offsets, _ = window(features, i)
    context_tokens = offsets[offsets[:, 0] >= 0]
    answer = examples[features.example_index[i]].answers[0]
    return context_tokens[0, 0] <= answer.start and answer.end <= context_tokens[-1, 1]


def assert_labels_round_trip(features, examples):
    """Every window holding its answer labels exactly the answer text; every other window labels CLS."""
    labelled = set()
    for i in range(len(features)):
        if holds_answer(features, examples, i):
            assert labelled_text(features, examples, i) == examples[features.example_index[i]].answers[0].text
            labelled.add(int(features.example_index[i]))
        else:
            assert features.start_positions[i] == features.end_positions[i] == 0
    assert labelled == set(range(len(examples)))


def test_kcbert_tokenizer_is_the_real_vocabulary(kcbert_tokenizer):
    assert kcbert_tokenizer.tokenize("교향곡") == ["교", "##향", "##곡"]
    assert len(kcbert_tokenizer) == 30000


def test_answers_at_offset_zero_and_at_the_end_of_the_context(kcbert_tokenizer):
    examples = [example(LONG_CONTEXT, "교향곡", start=0, id="first"), example(LONG_CONTEXT, "노래로 쓰인다.", id="last")]
    assert examples[1].answers[0].end == len(LONG_CONTEXT)
    for length, stride in ((384, 128), (40, 10)):
        features = featurize(examples, kcbert_tokenizer, length, stride, 16)
        assert_labels_round_trip(features, examples)
    first = featurize(examples[:1], kcbert_tokenizer)
    assert first.start_positions[0] == window(first, 0)[0].tolist().index(kcbert_tokenizer.sep_token_id) + 1


def test_windows_overlap_by_doc_stride_and_fit_max_seq_length(kcbert_tokenizer):
    features = featurize([example(LONG_CONTEXT, "1824년")], kcbert_tokenizer, 48, 12, 16)
    assert len(features) >= 3 and features.lengths.max() == 48
    spans = [window(features, i)[1] for i in range(len(features))]
    for previous, current in zip(spans, spans[1:]):
        shared = {tuple(o) for o in previous if o[0] >= 0} & {tuple(o) for o in current if o[0] >= 0}
        assert len(shared) == 12
    assert features.token_type_ids is not None and features.token_type_ids.dtype == np.int8


def test_answer_crossing_a_window_boundary_is_labelled_only_where_it_fits(kcbert_tokenizer):
    features = featurize([example(LONG_CONTEXT, "1824년")], kcbert_tokenizer, 48, 12, 16)
    _, offsets, _ = window(features, 0)
    last = offsets[offsets[:, 0] >= 0][-1]
    encoded = kcbert_tokenizer(LONG_CONTEXT, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    k = encoded.index(tuple(last))
    crossing = example(LONG_CONTEXT, LONG_CONTEXT[encoded[k - 1][0] : encoded[k + 1][1]], start=encoded[k - 1][0])
    features = featurize([crossing], kcbert_tokenizer, 48, 12, 16)
    assert features.start_positions[0] == features.end_positions[0] == 0  # half outside the first window
    assert labelled_text(features, [crossing], 1) == crossing.answers[0].text
    assert_labels_round_trip(features, [crossing])


def test_question_longer_than_max_query_length_is_cut_to_it(kcbert_tokenizer):
    question = "베토벤이 아홉 번째 교향곡을 완성한 해는 " * 10 + "언제인가?"
    examples = [example(LONG_CONTEXT, "1824년", question=question)]
    features = featurize(examples, kcbert_tokenizer, 64, 8, 12)
    question_ids = kcbert_tokenizer(question, add_special_tokens=False)["input_ids"]
    assert len(question_ids) > 100
    for i in range(len(features)):
        ids, offsets, types = window(features, i)
        assert int((types == 0).sum()) - 2 == 12  # [CLS] question [SEP]
        assert ids[1:13].tolist() == question_ids[:12]
    assert_labels_round_trip(features, examples)


def byte_level_bpe(folder):
    """A small byte-level BPE tokenizer (RoBERTa's kind) trained here: one Hangul syllable is two or three of its tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["the quick brown fox jumps over the lazy dog " * 50, "서울 대한민국 평양 " * 5], trainer)
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    bpe.save(str(folder / "tokenizer.json"))
    return RobertaTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


def test_a_question_longer_than_the_model_takes_is_cut_without_transformers_warning(kcbert_tokenizer, capfd):
    question = "베토벤이 아홉 번째 교향곡을 완성한 해는 " * 200 + "언제인가?"  # over 300 tokens: the tokenizer would warn
    features = featurize([example(LONG_CONTEXT, "1824년", question=question)], kcbert_tokenizer, 64, 8, 12)
    assert len(features) > 0
    assert "Token indices sequence length is longer" not in capfd.readouterr().err


def test_questions_are_cut_to_max_query_length_tokens_where_a_character_is_several(tmp_path):
    tokenizer = byte_level_bpe(tmp_path)
    questions = ["가나다라마바사아자차카타파하", "가나다라마", "서울", "가"]
    assert [len(tokenizer.tokenize(q)) for q in questions] == [41, 15, 1, 3]  # 3 tokens a syllable, 서울 learned whole
    cut = truncate_questions(questions, tokenizer, 10)
    assert cut == ["가나다", "가나다", "서울", "가"]  # 가나다라 would be 12 tokens
    assert truncate_questions(["가"], tokenizer, 2) == [""]  # not even one character fits
    context = "the quick brown fox jumps over the lazy dog " * 6
    examples = [example(context, "lazy", question="가나다라마바사아자차카타파하")]
    features = featurize(examples, tokenizer, 40, 22, 10)  # room for context: 40 - 10 - 4 = 26 > 22
    assert features.lengths.max() <= 40
    assert_labels_round_trip(features, examples)


def test_empty_tokens_of_a_decomposed_context_stay_inside_it(tmp_path):
    tokenizer = byte_level_bpe(tmp_path)
    context = unicodedata.normalize("NFD", "서울  평양  ")  # byte-level BPE makes empty tokens of the spaces
    examples = [example(context, unicodedata.normalize("NFD", "평양"))]
    features = featurize(examples, tokenizer, 64, 8, 4)
    offsets = features.offsets[features.offsets[:, 0] >= 0]
    assert (offsets[:, 0] <= offsets[:, 1]).all() and offsets.max() <= len(context)
    assert_labels_round_trip(features, examples)


@pytest.mark.parametrize(
    "context, answer",
    [("수도는 서울 ", "서울 "), (" 서울이 수도", " 서울"), ("수도는 서울\n", "서울\n"), ("수도는 서울\u200b", "서울\u200b")],
    ids=["trailing-space-at-the-end", "leading-space-at-the-start", "newline", "zero-width-space"],
)
def test_answers_with_blank_ends_are_labelled_on_their_visible_characters(kcbert_tokenizer, context, answer):
    features = featurize([example(context, answer)], kcbert_tokenizer, 32, 4, 8)
    assert labelled_text(features, [example(context, answer)], 0) == "서울"


def test_an_answer_whose_leading_space_ends_the_previous_window_is_labelled_in_the_next(kcbert_tokenizer):
    context = "가 나 다 라 마 바 사 아 자 차 카 타 파 하 서울 평양"
    features = featurize([example(context, "가")], kcbert_tokenizer, 16, 0, 4)
    _, offsets, _ = window(features, 1)
    first = offsets[offsets[:, 0] >= 0][0]  # the first context token of window 1, and the space before it
    answer = example(context, context[first[0] - 1 : first[1]], start=int(first[0]) - 1)
    features = featurize([answer], kcbert_tokenizer, 16, 0, 4)
    assert features.start_positions[0] == 0 and labelled_text(features, [answer], 1) == context[first[0] : first[1]]


@pytest.mark.parametrize(
    "context, form",
    [
        ("서울\u200b특별시의 인구는 약 940만\u200b 명이고 \u200b한강이 흐른다.", "NFC"),
        ("서울\u200e특별시의\u200e 인구는 약 940만 명이고 \u200e한강이 흐른다.", "NFC"),
        ("서울특별시의 인구는\r\n약 940만 명이고\r\n한강이 흐른다.\r\n", "NFC"),
        (unicodedata.normalize("NFD", "서울특별시의 인구는 약 940만 명이고 한강이 흐른다."), "NFD"),
    ],
    ids=["zero-width-space", "left-to-right-mark", "crlf", "nfd-hangul"],
)
def test_unusual_characters_keep_offsets_on_the_original_context(kcbert_tokenizer, context, form):
    river, city = (unicodedata.normalize(form, text) for text in ("한강", "서울"))
    examples = [example(context, river), example(context, city, start=0, id="start")]
    features = featurize(examples, kcbert_tokenizer)
    assert kcbert_tokenizer.unk_token_id not in features.input_ids  # NFD jamo are read as the composed syllables
    assert_labels_round_trip(features, examples)


def test_to_nfc_maps_each_composed_character_back_to_its_jamo():
    text = "a " + unicodedata.normalize("NFD", "한강") + "\u200b이"
    normalized, spans = to_nfc(text)
    assert normalized == unicodedata.normalize("NFC", text) == "a 한강\u200b이"
    assert [text[a:b] for a, b in spans] == ["a", " ", unicodedata.normalize("NFD", "한"), unicodedata.normalize("NFD", "강"), "\u200b", "이"]
    assert to_nfc("이미 NFC") == ("이미 NFC", None)


def test_left_padding_tokenizer_puts_the_context_first(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    examples = [example(LONG_CONTEXT, "1824년"), example(LONG_CONTEXT, "교향곡", start=0, id="zero")]
    features = featurize(examples, tokenizer, 48, 12, 16)
    ids, offsets, types = window(features, 0)
    assert ids[0] == tokenizer.cls_token_id and offsets[1, 0] == 0  # [CLS] context [SEP] question [SEP]
    assert types[1] == 0 and types[-1] == 1
    assert_labels_round_trip(features, examples)


def test_unanswerable_and_missing_answers_label_cls(kcbert_tokenizer):
    impossible = QAExample("x", "", "누가 설계했나?", LONG_CONTEXT, (), is_impossible=True)
    features = featurize([impossible], kcbert_tokenizer, 48, 12, 16)
    assert np.all(features.start_positions == 0) and np.all(features.end_positions == 0)


def test_batches_of_examples_give_the_same_features_as_one_call(kcbert_tokenizer):
    examples = [example(LONG_CONTEXT, word, id=str(n)) for n, word in enumerate(["교향곡", "1824년", "합창", "빈의", "기립 박수"])]
    featurizer = SlidingWindowFeaturizer(FeaturizerSettings(48, 12, 16))
    whole = featurizer.featurize(examples, kcbert_tokenizer)
    featurizer.chunk_size = 2
    chunked = featurizer.featurize(examples, kcbert_tokenizer)
    for name, array in whole.arrays().items():
        np.testing.assert_array_equal(array, chunked.arrays()[name], err_msg=name)
    assert sorted(set(whole.example_index.tolist())) == list(range(5))


def test_featurizer_passes_the_conformance_check_on_the_sample_corpus(qaframe_host, kcbert_tokenizer):
    split = qaframe_host.create("corpus", "sample", CorpusOptions()).load("dev")
    featurizer = build_featurizer("sliding-window", FeaturizerSettings(128, 32, 32))
    features = check_featurizer(featurizer, kcbert_tokenizer, split.examples)
    assert len(features) > len(split.examples)  # some contexts need two windows at 128 tokens


@pytest.mark.parametrize(
    "lengths, message",
    [
        ((64, 48, 16), r"--doc-stride 48 \(the overlap between windows, in tokens\) must be smaller than the room for context, 45"),
        ((64, -1, 16), r"--doc-stride -1 .* must be 0 or more"),
        ((64, 8, 0), r"--max-query-length 0 must be at least 1"),
        ((32, 8, 40), r"--max-seq-length 32 leaves no room for context after --max-query-length 40"),
    ],
)
def test_settings_are_validated(lengths, message):
    with pytest.raises(UserError, match=message):
        SlidingWindowFeaturizer(FeaturizerSettings(*lengths))


# -- property: labels of aligned answers always decode back exactly -------------------------------
SYLLABLES = "가나다라마바사아자차카타파하서울한국의수도이다교향곡베토벤년월일에서는을를강산시군구청장님들것수있없"
WORDS = st.one_of(
    st.text(alphabet=SYLLABLES, min_size=1, max_size=6),
    st.text(alphabet=st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), min_size=1, max_size=4),
    st.text(alphabet=SYLLABLES, min_size=1, max_size=4).map(lambda word: unicodedata.normalize("NFD", word)),
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
    st.integers(0, 10**6).map(str),
    st.sampled_from(list(".,!?()'\"-%·~")),
)
SEPARATORS = st.sampled_from([" ", " ", " ", "", "  ", "\n", "\r\n", "\u200b", " \u200e"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_aligned_answers_round_trip_in_every_window_that_holds_them(kcbert_tokenizer, data):
    words = data.draw(st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=60))
    context = "".join(word + separator for word, separator in words)
    stride = data.draw(st.integers(0, 10), label="doc_stride")
    normalized, spans = to_nfc(context)  # the featurizer reads decomposed Hangul composed
    offsets = kcbert_tokenizer(normalized, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    first = data.draw(st.integers(0, len(offsets) - 1), label="first answer token")
    count = data.draw(st.integers(1, max(1, min(stride, len(offsets) - first))), label="answer tokens")
    start, end = offsets[first][0], offsets[first + count - 1][1]
    if spans is not None:
        start, end = int(spans[start, 0]), int(spans[end - 1, 1])
    examples = [example(context, context[start:end], start=start, question=data.draw(st.sampled_from(["무엇?", "who is 누구?"])))]
    features = featurize(examples, kcbert_tokenizer, 32, stride, 8)
    assert_labels_round_trip(features, examples)


# -- the origin's featurizer signature --------------------------------------------------
def test_an_origin_style_function_is_refused(register_plugin):
    register_plugin(origin_featurizer, name="origin")
    with pytest.raises(UserError, match=r"^featurizer 'origin-style' makes no offset mapping, .*origin-style function fn\(examples, "):
        build_featurizer("origin-style", FeaturizerSettings(32, 8, 8))


def stepping_factory(settings, rule="step", extra=0):
    """A featurizer factory with optional parameters: three positional ones, but callable as factory(settings)."""
    return SlidingWindowFeaturizer(settings)


def test_a_factory_with_optional_parameters_is_no_origin_function(register_plugin):
    register_plugin(SimpleNamespace(register_featurizers=hookimpl(lambda register: register("stepping", stepping_factory))), name="stepping")
    assert isinstance(build_featurizer("stepping", FeaturizerSettings(32, 8, 8)), SlidingWindowFeaturizer)


def test_the_no_offsets_error_fits_a_featurizer_class(kcbert_tokenizer):
    features = OffsetlessFeaturizer(FeaturizerSettings(32, 8, 8)).featurize([example(LONG_CONTEXT, "1824년")], kcbert_tokenizer)
    with pytest.raises(UserError) as info:
        require_offsets(features, "offsetless")
    assert "origin-style function)" not in str(info.value) and "make its featurize() record offsets" in str(info.value)


def replacing_featurizer(settings):
    """Replaces sliding-window, reusing the built-in's class in the factory as docs/writing-plugins.md advises."""
    return SlidingWindowFeaturizer(settings)


def test_a_replacement_reuses_the_built_in_by_its_class(register_plugin, kcbert_tokenizer):
    replacement = SimpleNamespace(register_featurizers=hookimpl(lambda register: register("sliding-window", replacing_featurizer, override=True)))
    register_plugin(replacement, name="replacement")
    featurizer = build_featurizer("sliding-window", FeaturizerSettings(32, 8, 8))
    assert len(featurizer.featurize([example(LONG_CONTEXT, "1824년")], kcbert_tokenizer)) > 1
