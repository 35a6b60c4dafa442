""":func:`run_job`: runs a job with the engine a command names (``local`` or ``ray``).

The top of the engines package: it imports both engines, and neither imports it.
"""

from __future__ import annotations

from pathlib import Path

from skulens.catalog.schema import CatalogError
from skulens.catalog.streaming import CatalogStream
from skulens.engines.jobs import Job
from skulens.engines.local import run_local
from skulens.engines.output import RunSummary, write_run_issues

ENGINES = ("local", "ray")


def run_job(
    stream: CatalogStream,
    job: Job,
    out: str | Path,
    engine: str = "local",
    address: str | None = None,
    num_cpus: int | None = None,
    actors: int | None = None,
    progress: bool = False,
) -> RunSummary:
    """Run ``job`` with the named engine (``local`` or ``ray``; ``address``/``num_cpus``/``actors`` are Ray's),
    then write the run's row issues into ``out/_issues.csv`` (see :func:`~skulens.engines.output.run_issues`)."""
    if engine == "local":
        if address is not None:
            raise CatalogError("--ray-address needs --engine ray")
        summary = run_local(stream, job, out, progress)
    elif engine == "ray":
        from skulens.engines.ray_engine import run_ray

        summary = run_ray(stream, job, out, address=address, num_cpus=num_cpus, actors=actors, progress=progress)
    else:
        raise CatalogError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
    return write_run_issues(stream, summary)
