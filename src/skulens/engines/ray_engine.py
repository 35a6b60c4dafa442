"""The Ray engine: the same job as the local engine, as a Ray Data pipeline on a local Ray or a cluster.

read (Ray Data's CSV/Parquet readers, every CSV cell as text as in the local engine)
-> validate (:meth:`CatalogStream.normalise` as Ray tasks)
-> encode (an actor pool of :class:`~skulens.engines.jobs.ChunkRunner`: one model, one ONNX session, per
   actor; images are read and decoded in the actor's threads, overlapping the model)
-> write Parquet (one file per block).

Without an address a private local Ray starts (node address 127.0.0.1, token authentication on) with a bounded number of CPUs,
its processes watched by :mod:`~skulens.engines.ray_reaper` so that they end with the driver, even after a kill -9;
``auto`` joins the cluster this machine belongs to, ``ray://host:10001`` connects through Ray Client.
Ray Data restarts a dead actor and retries its tasks (its defaults: ``max_restarts=-1``,
``max_task_retries=-1``); a block is handed on only when its task succeeds, so every row is written
once (tested by killing an actor mid-run).
The embedding cache is shared through its files: point ``--cache-dir`` at a folder every node sees.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from skulens.catalog.schema import CatalogError
from skulens.catalog.streaming import CatalogStream, rows_frame
from skulens.engines.jobs import ChunkRunner, Job
from skulens.engines.output import RunSummary, count_output, drop_repeated_ids, prepare_output
from skulens.engines.ray_reaper import watch
from skulens.extras import require_extra
from skulens.threads import available_cores

LOOPBACK = "127.0.0.1"
#: CPUs a local Ray gets at least when none is asked for: one for reading, one or more for encoding actors.
DEFAULT_LOCAL_CPUS = 2
#: Validation tasks are light; they take no CPU slot away from the encoding actors.
VALIDATE_CPUS = 0


def connect(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Join Ray at ``address`` (``auto``, ``ray://host:port``) or start a private local one (node address 127.0.0.1) with
    ``num_cpus`` CPUs (default: the machine's cores, between 2 and 4). Returns the cluster's resources."""
    require_extra("ray", feature="--engine ray")
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            cpus = num_cpus or max(DEFAULT_LOCAL_CPUS, min(available_cores(), 4))
            if cpus < 2:
                raise CatalogError(f"a local Ray needs at least 2 CPUs (one reads, the others encode), not {cpus}")
            ray.init(  # "local": always a new Ray, never one a `ray start` left running on this machine
                address="local", num_cpus=cpus, include_dashboard=False, _node_ip_address=LOOPBACK, logging_level=logging.WARNING
            )
            watch(_head_pids())  # its processes end with this one, even after a kill -9
    return ray.cluster_resources()


def _head_pids() -> list[int]:
    """The process ids of the local Ray this driver started (GCS, raylet, monitors)."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    processes = getattr(node, "all_processes", {}) or {}
    return [info.process.pid for infos in processes.values() for info in infos if getattr(info, "process", None)]


def _read(stream: CatalogStream):
    """The source as a Ray dataset of validated rows."""
    import ray.data as rd

    path = stream.path
    if path is None:  # a built-in dataset, already in memory and validated
        return rd.from_pandas([rows_frame(chunk) for chunk in stream.chunks()])
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        raw = rd.read_parquet(str(path), num_cpus=VALIDATE_CPUS)
    elif suffix in (".csv", ".tsv"):
        raw = rd.read_csv(str(path), num_cpus=VALIDATE_CPUS, file_extensions=None, **stream.csv_options)
    else:
        raw = rd.read_json(str(path), lines=True, num_cpus=VALIDATE_CPUS, file_extensions=None)
    return raw.map_batches(stream.normalise, batch_format="pandas", num_cpus=VALIDATE_CPUS)


def run_ray(
    stream: CatalogStream,
    job: Job,
    out: str | Path,
    address: str | None = None,
    num_cpus: int | None = None,
    actors: int | None = None,
    threads_per_actor: int = 1,
    progress: bool = False,
) -> RunSummary:
    """Run ``job`` over ``stream`` on Ray and write Parquet parts into ``out`` (rows in source order).

    ``actors`` encoding actors (default: one per CPU of the cluster but one, which Ray Data's readers need:
    with every CPU held by an actor, a Parquet read never starts), each with ``threads_per_actor``
    model threads. A row repeating an earlier row's id is dropped, as the local engine drops it.
    """
    import ray.data as rd

    out = prepare_output(Path(out)).resolve()
    resources = connect(address, num_cpus)
    started = time.perf_counter()
    context = rd.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = progress
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    pool = actors or max(1, int(resources.get("CPU", 1)) - 1)  # one CPU stays free for the read tasks
    encoded = _read(stream).map_batches(
        ChunkRunner,
        fn_constructor_args=(job, [str(root) for root in stream.image_roots], threads_per_actor),
        batch_size=stream.chunk_rows,
        batch_format="pandas",
        compute=rd.ActorPoolStrategy(size=pool),
        num_cpus=1,
    )  # Ray Data restarts dead actors and retries their tasks (max_restarts=-1, max_task_retries=-1 by default)
    encoded.write_parquet(str(out))
    drop_repeated_ids(out)  # validation tasks see one block each: ids repeated across blocks are dropped here
    rows_out, with_issue = count_output(out)
    return RunSummary("ray", stream.count_rows(), rows_out, with_issue, round(time.perf_counter() - started, 3), str(out))
