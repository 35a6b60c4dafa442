"""Messages name rows by the 1-based line a person sees in the file (issue 23): CSV (header = line 1),
CSV records with line breaks inside quotes, JSON Lines; issues.csv keeps the 0-based ``row`` beside ``line``."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from skulens.catalog import read_catalog, read_reviews, row_issues, write_issues
from skulens.catalog.lines import record_lines
from skulens.cli.main import app


def _csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_csv_issue_names_the_file_line(tmp_path):
    rows = [{"id": f"p{i}", "title": f"Product {i}"} for i in range(5)]
    rows[3]["title"] = "   "  # data row 3 (0-based) sits on line 5
    catalog = read_catalog(_csv(tmp_path / "shop.csv", rows))
    (issue,) = row_issues(catalog)
    assert (issue.row, issue.line) == (3, 5)
    assert str(issue).startswith("line 5 (id p3), column 'title'")
    written = pd.read_csv(write_issues([issue], tmp_path / "issues.csv"))
    assert written.loc[0, ["row", "line"]].tolist() == [3, 5]


def test_csv_records_with_line_breaks_keep_true_lines(tmp_path):
    rows = [{"id": "a", "title": "Two\nline title"}, {"id": "a", "title": "again"}, {"id": "b", "title": "ok"}]
    path = _csv(tmp_path / "multi.csv", rows)
    assert record_lines(path, 3).tolist() == [2, 4, 5]
    catalog = read_catalog(path)
    (duplicate,) = row_issues(catalog)
    assert (duplicate.row, duplicate.line, duplicate.column) == (1, 4, "id")


def test_jsonl_issue_names_the_file_line(tmp_path):
    path = tmp_path / "reviews.jsonl"
    records = [{"review_id": f"r{i}", "body": "Fits well", "stars": 4} for i in range(4)]
    records[2]["stars"] = 6  # out of range, on line 3
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    catalog = read_reviews(path)
    (issue,) = row_issues(catalog)
    assert (issue.row, issue.line, issue.column) == (2, 3, "rating")
    assert str(issue).startswith("line 3 (id r2)")


def test_parquet_has_no_lines_and_keeps_row_numbers(tmp_path):
    path = tmp_path / "shop.parquet"
    pd.DataFrame({"id": ["a", "b"], "title": ["x", " "]}).to_parquet(path)
    (issue,) = row_issues(read_catalog(path))
    assert issue.line is None and str(issue).startswith("row 1 (id b)")


def test_ingest_prints_lines(tmp_path):
    rows = [{"id": f"p{i}", "title": f"Product {i}"} for i in range(400)]
    rows[356]["title"] = " "
    path = _csv(tmp_path / "export.csv", rows)
    result = CliRunner().invoke(app, ["ingest", str(path), "--no-check-images"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "line 358 (id p356)" in result.output
    assert "row 356" not in result.output
