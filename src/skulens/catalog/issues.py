"""The one record of unusable rows every command gives: the same :class:`RowIssue` list, the same count
line, the same ``issues.csv`` and the same ``issue`` column beside each output row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from skulens.catalog.images import image_problem
from skulens.catalog.schema import Catalog, RowIssue


def row_issues(catalog: Catalog, found: Iterable[RowIssue] = ()) -> list[RowIssue]:
    """The catalog's own issues (skipped rows, dropped fields) for its rows, plus ``found`` (e.g. images
    that cannot be read), one per row and column (the first wins), in source-row order, each with its file
    line where the catalog knows it."""
    rows = set(catalog.source_rows or [])
    last = max(rows, default=-1)
    own = [i for i in catalog.issues if i.row in rows or (i.column == "id" and i.row <= last)]
    unique: dict[tuple[int, str], RowIssue] = {}
    for issue in [*own, *found]:
        unique.setdefault((issue.row, issue.column), issue)
    return catalog.with_lines(sorted(unique.values(), key=lambda issue: (issue.row, issue.column)))


def issue_kind(issue: RowIssue) -> str:
    """A short name for what is wrong (``image missing``, ``duplicate id``, ``empty title``...)."""
    if issue.column == "image":
        return f"image {image_problem(issue.message)}"
    if issue.column == "id":
        return "duplicate id" if "duplicate" in issue.message else "empty id"
    if issue.column == "title":
        return "empty title"
    return f"bad {issue.column}"


def issue_summary(catalog: Catalog, issues: Iterable[RowIssue], where: str | None = None) -> str | None:
    """One line counting the rows with an issue, by kind; ``None`` when there is none.

    e.g. ``"12 of 1,050 rows have an issue: 9 image missing, 3 duplicate id — see issues.csv"``.
    """
    issues = list(issues)
    return count_line(len(catalog) + sum(issue.column == "id" for issue in issues), issues, where)


def count_line(rows_read: int, issues: Iterable[RowIssue], where: str | None = None) -> str | None:
    """:func:`issue_summary` of ``rows_read`` source rows (skipped ones included) without their catalog."""
    issues = list(issues)
    if not issues:
        return None
    rows = len({issue.row for issue in issues})
    kinds = Counter(issue_kind(issue) for issue in issues)
    reasons = ", ".join(f"{count:,} {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{rows:,} of {rows_read:,} rows have an issue: {reasons}" + (f" — see {where}" if where else "")


def issue_column(catalog: Catalog, issues: Iterable[RowIssue]) -> list[str | None]:
    """Per catalog row, its issues joined by ``"; "`` (``None`` for a clean row): the ``issue`` column."""
    by_row: dict[int, list[str]] = {}
    for issue in issues:
        if issue.column != "id":  # id issues belong to skipped rows, which have no output row
            by_row.setdefault(issue.row, []).append(f"{issue.column}: {issue.message}")
    return ["; ".join(by_row[row]) if row in by_row else None for row in map(catalog.source_row, range(len(catalog)))]
