"""Engines run a job (embed, predict, search vectors) over a streamed catalog and write Parquet: ``local`` (one process,
chunk after chunk, bounded memory) or ``ray`` (Ray Data: read -> validate as tasks -> encode in an actor
pool -> write Parquet, on a local Ray or a cluster). Both give the same rows."""

from skulens.engines.jobs import ChunkRunner, EmbedJob, IndexJob, Job, PredictJob, index_from_output, read_vectors, vector_column
from skulens.engines.local import ENGINES, RunSummary, read_output, run_job, run_local

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
