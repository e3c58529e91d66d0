"""Text helpers: what makes a string unusable as a question or context, and text in Unicode NFC
with a map back to the original characters, for offsets that survive normalization.

KcBERT's vocabulary knows Hangul only composed (NFC); text pasted from some systems arrives
decomposed (NFD jamo). The built-in corpora bring their records to NFC as they load them; for
text that arrives otherwise (a question and context given to `predict` or `serve`), the
featurizer tokenizes the NFC form and refiners read it, while every offset a user sees points
into the text as given. `to_nfc` normalizes unit by unit (a base
character with the marks or jamo that compose with it) and records where each NFC character
came from; the three position functions move a boundary between the two texts.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

SURROGATE = re.compile("[\ud800-\udfff]")  # only an unpaired \uXXXX escape in JSON (or a bad terminal) puts one in a str
# a character with the combining marks or Hangul jamo that NFC may compose into it
UNIT = re.compile(r"[\u1100-\u115f][\u1160-\u11a7]?[\u11a8-\u11ff]?|.[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u3099\u309a\u11a8-\u11ff]*", re.S)


def unusable_text(value: Any) -> str | None:
    """Why `value` cannot be a question, context or answer text (not a string, blank, a lone surrogate), or None."""
    if not isinstance(value, str):
        return "missing or not a string" if value is None else f"not a string ({type(value).__name__})"
    if all(blank(character) for character in value):
        return "empty (or only spaces and invisible characters)"
    if SURROGATE.search(value):
        return "not valid Unicode (an unpaired surrogate such as \\ud800)"
    return None


def blank(character: str) -> bool:
    """Whitespace, or an invisible control or format character (zero-width, direction marks, BOM): no token covers it."""
    return character.isspace() or unicodedata.category(character) in ("Cc", "Cf")


def to_nfc(text: str) -> tuple[str, np.ndarray | None]:
    """`text` in NFC and, when that changes it, the (start, end) in `text` of each NFC character."""
    if unicodedata.is_normalized("NFC", text):
        return text, None
    pieces, spans = [], []
    for unit in UNIT.finditer(text):
        piece = unicodedata.normalize("NFC", unit.group())
        pieces.append(piece)
        spans.extend([unit.span()] * len(piece))
    return "".join(pieces), np.array(spans, dtype=np.int32).reshape(-1, 2)


def original_starts(spans: np.ndarray, length: int) -> np.ndarray:
    """For each boundary 0..n of the NFC text (n characters), where it lies in the original text of `length` characters."""
    return np.append(spans[:, 0], length).astype(np.int64)


def original_position(spans: np.ndarray, position: int, length: int) -> int:
    """Where NFC boundary `position` lies in the original text of `length` characters (one entry of `original_starts`)."""
    return int(spans[position, 0]) if position < len(spans) else length


def nfc_position(spans: np.ndarray, position: int) -> int:
    """The NFC boundary of an original boundary (the first NFC character that starts at or after it)."""
    return int(np.searchsorted(spans[:, 0], position, side="left"))
