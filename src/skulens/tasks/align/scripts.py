"""Script detection: which Unicode scripts a text is written in (queries in unseen scripts are refused)."""

from __future__ import annotations

import unicodedata
from collections import Counter


def count_scripts(text: str) -> Counter:
    """Letters of ``text`` counted by Unicode script (the first word of the character name: LATIN, CYRILLIC...)."""
    counts: Counter = Counter()
    for char in text:
        if char.isalpha():
            counts[unicodedata.name(char, "UNKNOWN").split(" ")[0]] += 1
    return counts
