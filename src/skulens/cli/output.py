"""Console output shared by the command modules: results on stdout; notes, warnings and errors on stderr."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from skulens.errors import SkulensError

#: Width tables are laid out at when stdout is not a terminal and COLUMNS is not set (rich would use 80).
REDIRECTED_WIDTH = 200


class WideWhenRedirected(Console):
    """A rich console that lays out :data:`REDIRECTED_WIDTH` columns, not 80, when its output is not a
    terminal and ``COLUMNS`` is not set: tables in logs and pipes (``make demo > log``) are not wrapped."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and "COLUMNS" not in os.environ and not self.is_terminal:
            return ConsoleDimensions(max(size.width, REDIRECTED_WIDTH), size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = WideWhenRedirected()
#: Messages on stderr are never wrapped: paths and commands in them stay whole (and copyable).
err = WideWhenRedirected(stderr=True, soft_wrap=True)

#: A table cell holding a number, maybe with an interval: ``0.912``, ``12%``, ``0.91 [0.90, 0.93]``, ``0.9 ± 0.01``.
_NUMBER = re.compile(r"^[-+]?[\d,.]+%?(\s*(±\s*[\d.]+|\[[-\d.,\s]+\]|\([-\d.,\s–]+\)))*$")


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error (verbatim, never as markup) and return the exit to raise (code 2)."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=2)


def fail_with(error: SkulensError) -> typer.Exit:
    """Print a skulens error as ``error[CODE]: message`` (verbatim) and return the exit to raise (code 2)."""
    err.print(f"[bold red]{escape(f'error[{error.code}]:')}[/] {escape(str(error))}")
    return typer.Exit(code=2)


def warn(message: str) -> None:
    """A warning on stderr, printed verbatim."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}")


def note(message: str) -> None:
    """An informational line on stderr, printed verbatim."""
    err.print(escape(message), style="dim")


class WarningHandler(logging.Handler):
    """Shows skulens' logged warnings the way the CLI prints its own (``warning: ...`` on stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


def route_warnings() -> None:
    """Print warnings logged by skulens modules through :func:`warn` (once, however often called)."""
    logger = logging.getLogger("skulens")
    if not any(isinstance(h, WarningHandler) for h in logger.handlers):
        logger.addHandler(WarningHandler(logging.WARNING))
        logger.propagate = False


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def markdown_tables(text: str) -> list[tuple[str, Table]]:
    """Each markdown table in ``text`` as a rich table, with the heading it sits under."""
    tables: list[tuple[str, Table]] = []
    heading, block = "", []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2:
            header, rows = _cells(block[0]), [_cells(row) for row in block[2:]]
            numeric = [all(_NUMBER.match(row[i]) for row in rows if i < len(row) and row[i]) for i in range(len(header))]
            table = Table(*[escape(h) for h in header], header_style="bold")
            for i, column in enumerate(table.columns):
                column.justify = "right" if numeric[i] and rows else "left"
            for row in rows:
                table.add_row(*[escape(cell) for cell in row])
            tables.append((heading, table))
        block = []
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def print_report_tables(path: Path) -> None:
    """Show the tables of a markdown report on the terminal as rich tables, each under its heading."""
    for heading, table in markdown_tables(path.read_text(encoding="utf-8")):
        if heading:
            table.title = escape(heading)
            table.title_style = "bold"
        console.print(table)
