"""``skulens serve`` (FastAPI + uvicorn) and ``skulens ui`` (Streamlit) commands.

Register them on the main Typer app with :func:`register`, or run this module's own ``app``
(``python -m skulens.cli.serve ui ...``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import add_commands, group
from skulens.cli.output import fail
from skulens.extras import require_extra

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
UI_SCRIPT = Path(__file__).resolve().parents[1] / "ui" / "app.py"

app = group("Serve skulens models over HTTP or in a web UI.")
PANEL = "Serve"


Models = Annotated[Path, typer.Option("--models", metavar="DIR", help="Folder of saved model folders (or one model folder).")]
Host = Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on (loopback by default).")]


def serve(
    models: Models,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", metavar="KEY", help="Require this X-API-Key on every /v1 route (default: $SKULENS_API_KEY, else none)."
        ),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(metavar="MB", help="Largest accepted image upload.")] = 10.0,
    max_batch: Annotated[int, typer.Option(metavar="N", help="Most products/texts per batch request.")] = 64,
    model_batch: Annotated[
        int, typer.Option(metavar="N", help="Most queued requests one model call takes (micro-batching; 1 = off).")
    ] = 8,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the models under MODELS over HTTP, with OpenAPI docs at /docs (offline).

    Routes: /health, /ready, /models; /v1/categorize, /v1/categorize/batch, /v1/attributes, /v1/explain (categorize models);
    /v1/reviews (review models); /v1/search, /v1/similar/{product_id}, /v1/zero-shot (alignment models);
    /v1/caption (caption models).

    Example: skulens serve --models runs/demo/models
    """
    from skulens.serve.app import create_app
    from skulens.serve.server import exposure_warning, run_server

    service = create_app(
        models,
        api_key=api_key,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_batch=max_batch,
        model_batch=model_batch,
    )
    names = ", ".join(f"{m.name} ({m.task})" for m in service.state.models.values())
    typer.echo(f"skulens: serving {names} on http://{host}:{port} (docs at /docs)")
    warning = exposure_warning(host, api_key or os.environ.get("SKULENS_API_KEY"))
    if warning:
        typer.secho(warning, err=True, fg="yellow")
    run_server(service, host=host, port=port, log_level=log_level)


def ui(
    models: Models,
    port: Annotated[int, typer.Option(metavar="PORT", help="Port for the web UI.")] = 8501,
    host: Host = "127.0.0.1",
    reports: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Folder of saved reports to browse (default: the folder holding MODELS).")
    ] = None,
) -> None:
    """Open the web UI (Streamlit) on the models under MODELS: categorize, reviews, CSV batches, reports.

    Example: skulens ui --models runs/demo/models
    """
    if not models.is_dir():
        raise fail(f"models folder {models} does not exist; train one with `make demo`")
    require_extra("ui", feature="skulens ui")
    env = dict(os.environ, SKULENS_MODELS=str(models.resolve()))
    if reports is not None:
        env["SKULENS_REPORTS"] = str(reports.resolve())
    command = [
        sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    typer.echo(f"skulens: UI on http://{host}:{port}")
    raise typer.Exit(run_forwarding_signals(command, env))


def run_forwarding_signals(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` as a child, pass SIGTERM/SIGINT on to it, and wait for it: no orphan is left.

    Returns the child's exit code; after a forwarded signal, 0 if the child stopped cleanly, else the
    shell's convention for "stopped by a signal" (128 + the signal number).
    """
    received: list[int] = []
    child: list[subprocess.Popen] = []

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        if child and child[0].poll() is None:
            child[0].send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        child.append(subprocess.Popen(command, env=env))
        if received:  # a signal arrived before the child existed
            child[0].send_signal(received[0])
        code = child[0].wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received and code != 0:
        return 128 + received[0]
    return code


def register(main: typer.Typer) -> None:
    """Add ``serve`` and ``ui`` to the main ``skulens`` command line."""
    add_commands(main, serve, ui, rich_help_panel=PANEL)


add_commands(app, serve, ui)


if __name__ == "__main__":  # pragma: no cover
    app()
