"""Hidden aliases for the names of earlier releases: ``skulens train|predict|evaluate`` (now under
``skulens categorize``) and ``skulens benchmark categorize|reviews``."""

from __future__ import annotations

import typer

from skulens.cli import categorize, reviews
from skulens.cli.commands import Command, group

benchmark_app = group("Benchmarks (now `skulens categorize benchmark` and `skulens reviews benchmark`).")
benchmark_app.command("categorize", cls=Command)(categorize.benchmark)
benchmark_app.command("reviews", cls=Command)(reviews.benchmark)


def register(app: typer.Typer) -> None:
    """Add the aliases, hidden from ``--help``."""
    for command in (categorize.train, categorize.predict, categorize.evaluate):
        app.command(hidden=True, cls=Command)(command)
    app.add_typer(benchmark_app, name="benchmark", hidden=True)
