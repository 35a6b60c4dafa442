"""What both engines share: the output folder of Parquet parts, reading it back, the run summary and the
run's ``_issues.csv``.

Output only: nothing here knows a job or an engine, so the jobs and both engines import it (one direction).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from skulens.catalog.lines import record_lines
from skulens.catalog.schema import CatalogError, RowIssue, write_issues
from skulens.catalog.streaming import ISSUE_COLUMN, CatalogStream
from skulens.outputs import atomic_file

#: Written last into an output folder: its presence says the parts beside it are complete.
MANIFEST = "_manifest.json"
#: The run's row issues beside the parts (row, id, column, message), as a run on a whole CSV writes them; the
#: leading underscore keeps Parquet dataset readers (Arrow, pandas, Spark, DuckDB) from reading it as a part.
ISSUES_FILE = "_issues.csv"


@dataclass
class RunSummary:
    """What a run did: rows read from the source (None when the engine does not count them), rows written,
    rows written with an issue, seconds, where the Parquet files are, and the run's row issues (``issues``,
    written to ``_issues.csv``; not part of :meth:`to_dict`)."""

    engine: str
    rows_in: int | None
    rows_out: int
    rows_with_issue: int
    seconds: float
    output: str
    issues: list[RowIssue] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "issues"}


def prepare_output(folder: Path) -> Path:
    """Create ``folder`` (a file there is an error) and remove what an earlier run left in it: its manifest
    first (so a run that dies from here on never leaves an old manifest beside new parts), then its parts."""
    if folder.exists() and not folder.is_dir():
        raise CatalogError(f"output {folder} is a file; give a folder for the Parquet parts")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    (folder / ISSUES_FILE).unlink(missing_ok=True)
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


def run_issues(stream: CatalogStream, folder: Path) -> tuple[list[RowIssue], int]:
    """The row issues of a finished run, numbered by source row like those of a run on a whole catalog: what
    validating the source finds (rows skipped for an empty or repeated id, dropped fields) and, for a row
    written with an issue validation did not find, that issue (an image that could not be read while encoding:
    the only issue a job finds). Validation is read again from the source, so both engines give the same.
    Returns the issues and the number of source rows read."""
    issues: list[RowIssue] = []
    source_row: dict[str, int] = {}
    rows_read = 0
    for chunk in stream.chunks():
        issues.extend(chunk.issues)
        source_row.update(zip(chunk.ids, chunk.source_rows or []))
        rows_read += len(chunk) + sum(issue.column == "id" for issue in chunk.issues)
    validated = {issue.id for issue in issues if issue.column != "id"}
    if part_files(folder):
        table = read_output(folder, columns=["id", ISSUE_COLUMN])
        for product_id, message in zip(table.column("id").to_pylist(), table.column(ISSUE_COLUMN).to_pylist()):
            if message is not None and product_id not in validated and product_id in source_row:
                issues.append(RowIssue(source_row[product_id], product_id, "image", message))
    return sorted(issues, key=lambda issue: (issue.row, issue.column)), rows_read


def write_run_issues(stream: CatalogStream, summary: RunSummary) -> RunSummary:
    """Write :func:`run_issues` into ``_issues.csv`` beside the parts (a header only when there is none); returns
    ``summary`` with them and, when the engine did not count the rows it read, that count."""
    folder = Path(summary.output)
    issues, rows_read = run_issues(stream, folder)
    lines = record_lines(stream.source, rows_read) if isinstance(stream.source, Path) else None
    if lines is not None:  # messages and the file name file lines, as for a run on the whole file
        issues = [replace(issue, line=int(lines[issue.row])) if 0 <= issue.row < len(lines) else issue for issue in issues]
    write_issues(issues, folder / ISSUES_FILE)
    summary.issues = issues
    summary.rows_in = rows_read if summary.rows_in is None else summary.rows_in
    return summary


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
        with atomic_file(file) as temp:
            pq.write_table(table, temp)
        dropped += len(keep) - sum(keep)
    return dropped
