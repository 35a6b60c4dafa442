"""What both engines share: the output folder of Parquet parts, reading it back, and the run summary.

Output only: nothing here knows a job or an engine, so the jobs and both engines import it (one direction).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from skulens.catalog.schema import CatalogError


@dataclass
class RunSummary:
    """What a run did: rows read from the source (None when the engine does not count them), rows written,
    rows written with an issue, seconds, and where the Parquet files are."""

    engine: str
    rows_in: int | None
    rows_out: int
    rows_with_issue: int
    seconds: float
    output: str

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_output(folder: Path) -> Path:
    """Create ``folder`` (a file there is an error) and remove the Parquet files an earlier run left in it."""
    if folder.exists() and not folder.is_dir():
        raise CatalogError(f"output {folder} is a file; give a folder for the Parquet parts")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    return folder


def part_files(folder: str | Path) -> list[Path]:
    """The Parquet parts of an output folder in row order: ``part-00000.parquet`` (local engine) or Ray's
    ``<uuid>_<write uuid>_<task index>-<block index>.parquet``, ordered by task, then block."""

    def order(path: Path) -> tuple:
        found = re.search(r"_(\d+)-(\d+)\.parquet$", path.name)
        return (int(found[1]), int(found[2]), path.name) if found else (-1, -1, path.name)

    return sorted(Path(folder).glob("*.parquet"), key=order)


def read_output(folder: str | Path, columns: list[str] | None = None) -> pa.Table:
    """All Parquet parts of an output folder as one table, in file-name order."""
    files = part_files(folder)
    if not files:
        raise CatalogError(f"{folder} holds no Parquet output (*.parquet)")
    tables = [pq.read_table(file, columns=columns) for file in files]
    return pa.concat_tables([table for table in tables if table.num_rows] or tables[:1])


def count_output(folder: Path) -> tuple[int, int]:
    """Rows, and rows with an issue, in an output folder (reads only the ``issue`` column)."""
    table = read_output(folder, columns=["issue"])
    return table.num_rows, table.num_rows - table.column("issue").null_count


def drop_repeated_ids(folder: Path) -> int:
    """Rewrite the Parquet parts of ``folder`` (in file-name order) without rows whose id an earlier row has;
    returns how many were dropped. Reads only the id column unless a part holds a repeat."""
    seen: set[str] = set()
    dropped = 0
    for file in part_files(folder):
        ids = pq.read_table(file, columns=["id"]).column("id").to_pylist()
        keep = []
        for product_id in ids:
            keep.append(product_id not in seen)
            seen.add(product_id)
        if all(keep):
            continue
        table = pq.read_table(file).filter(pa.array(keep))
        pq.write_table(table, file)
        dropped += len(keep) - sum(keep)
    return dropped
