"""The ``skulens`` command line: :mod:`skulens.cli.main` holds the dispatch table, one module per group."""

from skulens.cli.main import app

__all__ = ["app"]
