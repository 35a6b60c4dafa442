"""``skulens serve`` (FastAPI + uvicorn) and ``skulens ui`` (Streamlit) commands.

Register them on the main Typer app with :func:`register`, or run this module's own ``app``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

UI_SCRIPT = Path(__file__).resolve().parents[1] / "ui" / "app.py"

app = typer.Typer(help="Serve skulens models over HTTP or in a web UI.", no_args_is_help=True, add_completion=False)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@app.command()
def serve(
    models: Path = typer.Option(..., "--models", help="Folder of saved model folders (or one model folder)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Require this X-API-Key on every /v1 route (default: $SKULENS_API_KEY, else none)."
    ),
    max_upload_mb: float = typer.Option(10.0, help="Largest accepted image upload, in MB."),
    max_batch: int = typer.Option(64, help="Most products/texts per batch request."),
    model_batch: int = typer.Option(8, help="Most queued requests one model call takes (micro-batching; 1 = off)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the models under MODELS: /health, /ready, /models, /v1/categorize, /v1/categorize/batch,
    /v1/reviews, with OpenAPI docs at /docs."""
    import uvicorn

    from skulens.runtime import ModelLoadError
    from skulens.serve.app import create_app

    try:
        service = create_app(
            models,
            api_key=api_key,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_batch=max_batch,
            model_batch=model_batch,
        )
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    names = ", ".join(f"{m.name} ({m.task})" for m in service.state.models.values())
    typer.echo(f"skulens: serving {names} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(service, host=host, port=port, log_level=log_level)


@app.command()
def ui(
    models: Path = typer.Option(..., "--models", help="Folder of saved model folders (or one model folder)."),
    port: int = typer.Option(8501, help="Port for the web UI."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    reports: Path | None = typer.Option(None, help="Folder of saved reports to browse (default: the folder holding MODELS)."),
) -> None:
    """Open the Streamlit UI on the models under MODELS (categorize, reviews, CSV batches, reports)."""
    if not models.is_dir():
        raise _fail(f"models folder {models} does not exist; train one with `make demo`")
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise _fail("the UI needs Streamlit: pip install streamlit") from None
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
    try:
        raise typer.Exit(subprocess.call(command, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(main: typer.Typer) -> None:
    """Add ``serve`` and ``ui`` to the main ``skulens`` command line."""
    main.command("serve")(serve)
    main.command("ui")(ui)


if __name__ == "__main__":  # pragma: no cover
    app()
