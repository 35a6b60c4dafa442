"""Script detection: which Unicode scripts a text is written in (queries in unseen scripts are refused),
and the same rule as regular-expression character classes (for the service's OpenAPI schema)."""

from __future__ import annotations

import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

#: Letters whose character name does not start with their script's name: the ordinal indicators ª and º are
#: Latin (Unicode's Scripts.txt), not a script called "FEMININE" or "MASCULINE".
NAMED_OTHERWISE = {"\u00aa": "LATIN", "\u00ba": "LATIN"}


def script_of(char: str) -> str:
    """The script of one letter: the first word of its character name (LATIN, CYRILLIC, CJK...)."""
    return NAMED_OTHERWISE.get(char) or unicodedata.name(char, "UNKNOWN").split(" ")[0]


def count_scripts(text: str) -> Counter:
    """Letters of ``text`` (``str.isalpha``) counted by script (:func:`script_of`)."""
    counts: Counter = Counter()
    for char in text:
        if char.isalpha():
            counts[script_of(char)] += 1
    return counts


def reads_scripts(text: str, scripts: Iterable[str]) -> bool:
    """True when ``text`` has a letter of one of ``scripts``, or no letter at all (the rule queries follow)."""
    found = count_scripts(text)
    return not found or bool(set(found) & set(scripts))


@lru_cache(maxsize=1)
def _letters() -> tuple[tuple[int, str], ...]:
    """Every letter of this Python's Unicode database as (code point, script), in code point order (about 0.2 s, once per process)."""
    return tuple((code, script_of(chr(code))) for code in range(sys.maxunicode + 1) if chr(code).isalpha())


@lru_cache(maxsize=32)
def letter_class(scripts: frozenset[str], inside: bool = True) -> str:
    """The body of a regex character class (``[...]`` without the brackets) matching exactly the letters of
    ``scripts`` (``inside``) or every other letter (``not inside``; an empty ``scripts``: every letter).
    Letters are written as themselves, runs of consecutive code points as ``a-z`` ranges."""
    codes = [code for code, script in _letters() if (script in scripts) == inside]
    parts: list[str] = []
    start = previous = None
    for code in [*codes, None]:
        if start is not None and code == previous + 1:
            previous = code
            continue
        if start is not None:
            parts.append(chr(start) if start == previous else f"{chr(start)}-{chr(previous)}")
        start = previous = code
    return "".join(parts)
