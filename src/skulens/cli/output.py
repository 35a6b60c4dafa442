"""Console output shared by the command-line modules."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error (verbatim, never as markup) and return the exit to raise (code 2)."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=2)
