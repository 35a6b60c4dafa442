"""Text a model cannot read: another script, or words its vocabulary does not know.

A review model trained on English reviews still returns confident-looking stars for a Russian review (its
features carry no sentiment it learned). :func:`unreadable_reason` flags such text before it is scored: a
text whose letters are mostly outside the Latin script, or (when the model has a vocabulary, e.g. its
TF-IDF terms) whose words are mostly unknown to it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

#: Below this share of Latin letters (of all letters) a text is treated as written in another script.
MIN_LATIN_SHARE = 0.5
#: Below this share of known words (texts of at least ``MIN_WORDS`` words) a text is out of vocabulary.
MIN_KNOWN_SHARE = 0.3
MIN_WORDS = 4
_WORD = re.compile(r"(?u)\b\w\w+\b")


def latin_share(text: str) -> float:
    """Share of the letters in ``text`` that belong to the Latin script (1.0 when it has no letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum(unicodedata.name(c, "").startswith("LATIN") for c in letters) / len(letters)


def known_share(text: str, vocabulary: Collection[str]) -> tuple[float, int]:
    """(share of ``text``'s lower-cased words found in ``vocabulary``, number of words)."""
    words = _WORD.findall(text.lower())
    if not words:
        return 1.0, 0
    return sum(w in vocabulary for w in words) / len(words), len(words)


def unreadable_reason(text: str, vocabulary: Collection[str] | None = None) -> str | None:
    """Why the model cannot read ``text`` (one line), or None when it can."""
    share = latin_share(text)
    if share < MIN_LATIN_SHARE:
        return (
            f"the text is mostly not in Latin script ({1 - share:.0%} of its letters); the model was trained on English "
            "reviews and gives no stars for it (translate it first)"
        )
    if vocabulary:
        known, words = known_share(text, vocabulary)
        if words >= MIN_WORDS and known < MIN_KNOWN_SHARE:
            return (
                f"only {known:.0%} of the text's {words} words are in the model's vocabulary (another language?); "
                "no stars given (translate it or train on such reviews)"
            )
    return None
