"""Script detection: which Unicode scripts a text is written in (queries in unseen scripts are refused)."""

from __future__ import annotations

import unicodedata
from collections import Counter

#: Letters whose character name does not start with their script's name: the ordinal indicators ª and º are
#: Latin (Unicode's Scripts.txt), not a script called "FEMININE" or "MASCULINE".
NAMED_OTHERWISE = {"\u00aa": "LATIN", "\u00ba": "LATIN"}


def count_scripts(text: str) -> Counter:
    """Letters of ``text`` counted by Unicode script (the first word of the character name: LATIN, CYRILLIC...)."""
    counts: Counter = Counter()
    for char in text:
        if char.isalpha():
            counts[NAMED_OTHERWISE.get(char) or unicodedata.name(char, "UNKNOWN").split(" ")[0]] += 1
    return counts
