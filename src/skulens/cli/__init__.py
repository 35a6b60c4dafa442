"""The ``skulens`` command line: :mod:`skulens.cli.main` holds the dispatch table, one module per group.

``app`` is imported on first use, so ``python -m skulens.cli.main`` and ``python -m skulens.cli.serve`` run
their module once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from skulens.cli.main import app

        return app
    raise AttributeError(f"module 'skulens.cli' has no attribute {name!r}")
