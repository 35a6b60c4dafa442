"""The ``skulens`` command line: a table of command modules, each registering its commands.

Adding a command group is one line in :data:`COMMAND_MODULES`. Command modules import only Typer and the
standard library at module level (models, pandas, torch load inside the commands), so ``skulens --help``
and ``skulens --version`` answer at once.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated

import typer

from skulens import __version__
from skulens.cli.commands import HELP_NAMES, Group
from skulens.cli.output import route_warnings

#: Modules with a ``register(app)`` function, in the order their commands appear in ``--help``.
COMMAND_MODULES = (
    "skulens.cli.demo",  # demo
    "skulens.cli.catalog",  # encoders, ingest, embed
    "skulens.cli.categorize",  # categorize train|predict|evaluate|benchmark
    "skulens.cli.reviews",  # reviews train|predict|evaluate|summary|benchmark
    "skulens.cli.finetune",  # finetune image
    "skulens.cli.search",  # search train|index|query, similar, dedupe, zero-shot
    "skulens.cli.explain",  # explain
    "skulens.cli.audit",  # audit
    "skulens.cli.caption",  # caption train|evaluate, caption IMAGE...
    "skulens.cli.serve",  # serve, ui
    "skulens.cli.explore",  # explore, drift
    "skulens.cli.runs",  # runs list|compare|ui
    "skulens.cli.aliases",  # hidden: train, predict, evaluate, benchmark (earlier names)
)

#: Quiet third-party progress lines ("Loading weights...") so skulens' own progress is the only one.
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}

app = typer.Typer(
    help="skulens: multimodal product intelligence for e-commerce catalogs.\n\n"
    "DATA is a built-in dataset (flipkart, myntra, reviews; read from $SKULENS_DATA or ../shared/datasets) "
    "or your file (CSV, TSV, Parquet, JSON Lines). Common column names are detected; map others with "
    "--columns title=product_name,image=img.\n\n"
    "Examples:\n\n"
    "  skulens demo\n\n"
    "  skulens ingest products.csv --columns title=product_name,image=img\n\n"
    "  skulens categorize train flipkart --label 0 --out runs/model\n\n"
    "  skulens categorize predict runs/model --image shirt.jpg --text 'Cotton shirt'\n\n"
    "  skulens reviews predict runs/reviews-model --text 'Runs small, fabric feels cheap'",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP_NAMES,
    cls=Group,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"skulens {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print skulens' version and exit.", callback=_print_version, is_eager=True, metavar=""
        ),
    ] = False,
) -> None:
    """skulens: multimodal product intelligence for e-commerce catalogs."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    route_warnings()


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)

if __name__ == "__main__":
    app()
