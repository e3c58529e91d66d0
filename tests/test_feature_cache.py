"""The feature cache: hits, keys that separate vocabularies and settings, damaged files rebuilt, pickles never run."""

from __future__ import annotations

import logging
import os
import pickle
import shutil

import numpy as np
import pytest

from qaframe.errors import UserError
from qaframe.features import cache_key, cache_path, load_or_build
from qaframe.types import Answer, CorpusSplit, FeaturizerSettings, QAExample
from qaframe_plugins.featurizers import SlidingWindowFeaturizer

CONTEXT = "한빛 교향악단은 1978년에 창단되었다. 창단 연주회에서는 베토벤의 교향곡 제5번을 연주하였다. " * 4


@pytest.fixture
def split() -> CorpusSplit:
    """Three examples about one context."""
    answers = ["1978년", "베토벤의 교향곡 제5번", "한빛 교향악단"]
    return CorpusSplit([QAExample(str(i), "", "무엇?", CONTEXT, (Answer(a, CONTEXT.index(a)),)) for i, a in enumerate(answers)])


@pytest.fixture
def featurizer() -> SlidingWindowFeaturizer:
    """Small windows so that each example has several."""
    return SlidingWindowFeaturizer(FeaturizerSettings(48, 12, 16))


class Counting(SlidingWindowFeaturizer):
    """Counts how often it really featurizes."""

    calls = 0

    def featurize(self, examples, tokenizer):
        Counting.calls += 1
        return super().featurize(examples, tokenizer)


def assert_same(a, b):
    """Two Features hold identical arrays."""
    assert a.arrays().keys() == b.arrays().keys()
    for name, array in a.arrays().items():
        np.testing.assert_array_equal(array, b.arrays()[name], err_msg=name)
        assert array.dtype == b.arrays()[name].dtype


def test_second_identical_call_is_a_hit(kcbert_tokenizer, split, tmp_path):
    featurizer = Counting(FeaturizerSettings(48, 12, 16))
    Counting.calls = 0
    built, hit = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)
    assert not hit and Counting.calls == 1 and len(built) > 3
    cached, hit = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)
    assert hit and Counting.calls == 1
    assert_same(built, cached)
    rebuilt, hit = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path, overwrite=True)
    assert not hit and Counting.calls == 2
    assert_same(built, rebuilt)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]


def test_different_vocabularies_never_share_an_entry(kcbert_tokenizer, tiny_model_dir, featurizer, split, tmp_path):
    from transformers import AutoTokenizer

    folder = shutil.copytree(tiny_model_dir, tmp_path / "other-vocab")
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines[1000], lines[1001] = lines[1001], lines[1000]  # same size, same class, two ids swapped
    (folder / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    other = AutoTokenizer.from_pretrained(folder)
    assert type(other) is type(kcbert_tokenizer) and len(other) == len(kcbert_tokenizer)
    assert cache_key(featurizer, other, split.examples) != cache_key(featurizer, kcbert_tokenizer, split.examples)
    load_or_build(featurizer, kcbert_tokenizer, split, tmp_path / "cache")
    _, hit = load_or_build(featurizer, other, split, tmp_path / "cache")
    assert not hit


def test_key_follows_padding_side_settings_and_examples_but_not_call_state(kcbert_tokenizer, tiny_model_dir, featurizer, split):
    from transformers import AutoTokenizer

    key = cache_key(featurizer, kcbert_tokenizer, split.examples)
    left = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    assert cache_key(featurizer, left, split.examples) != key
    assert cache_key(SlidingWindowFeaturizer(FeaturizerSettings(48, 10, 16)), kcbert_tokenizer, split.examples) != key
    moved = [split.examples[0], QAExample("1", "", "무엇?", CONTEXT, (Answer("1978년", CONTEXT.rindex("1978년")),)), split.examples[2]]
    assert cache_key(featurizer, kcbert_tokenizer, moved) != key
    kcbert_tokenizer("질문", "문맥", truncation="only_second", max_length=20, stride=3)  # leaves truncation state behind
    assert cache_key(featurizer, kcbert_tokenizer, split.examples) == key


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "zip-version", "encrypted-flag"])
def test_damaged_file_is_rebuilt_with_a_warning(kcbert_tokenizer, featurizer, split, tmp_path, caplog, damage):
    built, _ = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)
    path = cache_path(featurizer, kcbert_tokenizer, split.examples, tmp_path)
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the first central directory entry of the zip
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "zip-version":  # one byte of "version needed to extract": zipfile raises NotImplementedError
        data[entry + 6] = 0xFF
    elif damage == "encrypted-flag":  # the encryption bit of its flags: zipfile raises RuntimeError (password required)
        data[entry + 8] |= 0x01
    path.write_bytes(bytes(data[: len(data) // 2] if damage == "truncate" else b"" if damage == "empty" else data))
    with caplog.at_level(logging.WARNING, logger="qaframe.features"):
        features, hit = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)
    assert not hit and f"feature cache file {path} is damaged" in caplog.text and "rebuilding" in caplog.text
    assert_same(built, features)
    assert load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)[1]  # the rebuilt file is good again


def test_consistent_but_altered_arrays_fail_the_checksum(kcbert_tokenizer, featurizer, split, tmp_path, caplog):
    built, _ = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)
    path = cache_path(featurizer, kcbert_tokenizer, split.examples, tmp_path)
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["start_positions"] = arrays["start_positions"] + 1  # a valid zip with valid arrays, wrong labels
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with caplog.at_level(logging.WARNING, logger="qaframe.features"):
        features, hit = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path)
    assert not hit and "checksum mismatch" in caplog.text
    assert_same(built, features)


class Payload:
    """Creates a folder when unpickled: proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("form", ["pickle-file", "object-array-in-npz"])
def test_a_crafted_pickle_in_the_cache_folder_is_never_executed(kcbert_tokenizer, featurizer, split, tmp_path, caplog, form):
    marker = tmp_path / "pwned"
    path = cache_path(featurizer, kcbert_tokenizer, split.examples, tmp_path / "cache")
    path.parent.mkdir()
    if form == "pickle-file":
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:
        with open(path, "wb") as handle:
            np.savez(handle, input_ids=np.array([Payload(marker)], dtype=object))
    with caplog.at_level(logging.WARNING, logger="qaframe.features"):
        features, hit = load_or_build(featurizer, kcbert_tokenizer, split, tmp_path / "cache")
    assert not marker.exists()
    assert not hit and "is damaged" in caplog.text and len(features) > 3
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload is live: unpickling it does create the marker
    assert marker.exists()


def test_an_unwritable_cache_folder_is_a_user_error(kcbert_tokenizer, featurizer, split, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(UserError, match=r"cannot write the feature cache file .*not-a-folder.*; choose a writable cache folder"):
        load_or_build(featurizer, kcbert_tokenizer, split, blocker)


def test_a_cache_folder_that_cannot_be_looked_into_is_a_user_error(kcbert_tokenizer, featurizer, split, tmp_path):
    # a name too long for the file system fails stat() the way a folder without search permission does (root passes
    # permission checks, so the test uses this error, which it meets whoever runs it)
    unreachable = tmp_path / ("x" * 300) / "cache"
    with pytest.raises(UserError, match=r"cannot write the feature cache file .*xxx/cache/.*; choose a writable cache folder"):
        load_or_build(featurizer, kcbert_tokenizer, split, unreachable)
