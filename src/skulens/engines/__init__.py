"""Engines run a job (embed, predict, search vectors) over a streamed catalog and write Parquet: ``local`` (one process,
chunk after chunk, bounded memory) or ``ray`` (Ray Data: read -> validate as tasks -> encode in an actor
pool -> write Parquet, on a local Ray or a cluster). Both give the same rows.

Imports run one way: ``output`` (Parquet parts, run summary) <- ``jobs`` <- ``local`` / ``ray_engine`` <- ``dispatch``
(:func:`run_job`, which picks the engine)."""

from skulens.engines.dispatch import ENGINES, run_job
from skulens.engines.jobs import ChunkRunner, EmbedJob, IndexJob, Job, PredictJob, index_from_output, read_vectors, vector_column
from skulens.engines.local import run_local
from skulens.engines.output import RunSummary, read_output

__all__ = [
    "ENGINES",
    "ChunkRunner",
    "EmbedJob",
    "IndexJob",
    "Job",
    "PredictJob",
    "RunSummary",
    "index_from_output",
    "read_output",
    "read_vectors",
    "run_job",
    "run_local",
    "vector_column",
]
