"""The root of skulens' own errors: every error skulens raises on purpose derives from :class:`SkulensError`.

Each class carries a stable ``code`` (``catalog``, ``image``, ``model_folder``...) that the CLI prints as
``error[CODE]: message`` and the service maps to an HTTP status by type, never by message text. The
classes that were ``ValueError`` before keep it as a second base, so callers catching ``ValueError`` still
catch them. This module imports nothing from skulens: every layer may use it.
"""

from __future__ import annotations

from typing import ClassVar


class SkulensError(Exception):
    """An error skulens raises on purpose; the message names the file/row/column and what to do."""

    code: ClassVar[str] = "skulens"


def error_codes() -> dict[str, type[SkulensError]]:
    """Every loaded error class by its code (subclasses defined in modules imported so far)."""
    found: dict[str, type[SkulensError]] = {}
    stack: list[type[SkulensError]] = [SkulensError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found
