"""qaframe.text: one definition of a blank character, shared by `unusable_text` (every command and the server)
and the featurizer's answer labels."""

from __future__ import annotations

import sys

import pytest

from qaframe.text import blank, unusable_text

BLANK_TEXT = "empty (or only spaces and invisible characters)"


def test_a_character_is_refused_alone_exactly_when_it_is_blank():
    disagree = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and (unusable_text(chr(code) * 2) == BLANK_TEXT) != blank(chr(code))
    ]
    assert disagree == []


@pytest.mark.parametrize("value", ["", " \n\t", "\u200b", "\ufeff", "\u2063\u2063", "\u00ad", "\u200e\u2063 \u3000\x00"])
def test_text_of_only_spaces_and_invisible_characters_is_unusable(value):
    assert unusable_text(value) == BLANK_TEXT


@pytest.mark.parametrize("value", ["가", "a\u2063", "\u200b서울", "\u00ad1978"])
def test_text_with_a_visible_character_is_usable(value):
    assert unusable_text(value) is None


@pytest.mark.parametrize("value, reason", [
    (None, "missing or not a string"),
    (7, "not a string (int)"),
    ("a\ud800", "not valid Unicode (an unpaired surrogate such as \\ud800)"),
])
def test_other_unusable_values_say_why(value, reason):
    assert unusable_text(value) == reason
