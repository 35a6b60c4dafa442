"""``skulens runs list|compare|ui``: look at the runs tracked in MLflow."""

from __future__ import annotations

from typing import Annotated

import typer

from skulens.cli.commands import Command, add_commands, flag, group
from skulens.cli.output import console, fail, note
from skulens.cli.tracking import TrackingUri

runs_app = group(
    "Look at tracked runs (training, benchmarks) in the MLflow store.\n\n"
    "Examples:\n\n"
    "  skulens runs list\n\n"
    "  skulens runs compare 3f2a... 9bc1...\n\n"
    "  skulens runs ui --port 5000"
)

Experiment = Annotated[str, typer.Option(metavar="NAME", help="MLflow experiment.")]


def _print_frame(frame, index: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(header_style="bold")
    for column in (["key"] if index else []) + [str(c) for c in frame.columns]:
        whole = column in ("run_id", "key")  # ids and keys are copied into other commands: never cut them
        table.add_column(column, no_wrap=whole, min_width=32 if column == "run_id" else None)
    for key, row in frame.iterrows():
        cells = [
            "" if v is None or v != v else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.tolist()
        ]  # v != v: NaN
        table.add_row(*([str(key)] if index else []), *map(escape, cells))
    console.print(table)


def list_runs(
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "skulens",
    limit: Annotated[int, typer.Option(metavar="N", help="How many of the newest runs.")] = 20,
) -> None:
    """The newest runs: id, name, status, start time and a few metrics.

    Example: skulens runs list --tracking-uri runs/mlruns
    """
    from skulens.tracking.runs import list_runs as read_runs

    frame = read_runs(tracking_uri, experiment, max_results=limit)
    if frame.empty:
        note(f"no runs in experiment '{experiment}'")
        return
    _print_frame(frame)


def compare(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN", help="Two or more run ids (see `skulens runs list`).")],
    tracking_uri: TrackingUri = None,
    all_keys: Annotated[bool, flag("--all", help="Show every parameter and metric, not only those that differ.")] = False,
) -> None:
    """Params and metrics of runs side by side (by default only the keys whose values differ).

    Example: skulens runs compare 3f2a9c 9bc1d4
    """
    from skulens.tracking.runs import compare_runs

    frame = compare_runs(run_ids, tracking_uri, only_differences=not all_keys)
    _print_frame(frame, index=True)


def ui(
    tracking_uri: TrackingUri = None,
    port: Annotated[int, typer.Option(metavar="PORT", help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Start the MLflow UI on http://127.0.0.1:PORT for the store (Ctrl+C stops it).

    Example: skulens runs ui --tracking-uri runs/mlruns
    """
    from skulens.tracking.runs import start_ui, ui_command

    command = ui_command(tracking_uri, port)
    note(f"MLflow UI on http://127.0.0.1:{port} (Ctrl+C to stop)")
    code = start_ui(tracking_uri, port)
    if code:
        raise fail(f"`{' '.join(command)}` exited with code {code}")


runs_app.command("list", cls=Command)(list_runs)
add_commands(runs_app, compare, ui)


def register(main: typer.Typer) -> None:
    """Add the ``runs`` group."""
    main.add_typer(runs_app, name="runs", rich_help_panel="Tracking")
