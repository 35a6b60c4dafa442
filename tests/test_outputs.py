"""Output files (issue 24): atomic writes, one writer per output folder, CSV formula cells escaped everywhere."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serve_helpers import shared_models
from typer.testing import CliRunner

from skulens.catalog.schema import RowIssue, write_issues
from skulens.outputs import OutputError, atomic_file, csv_safe, escape_cell, folder_lock, write_csv
from skulens.tasks.model_folder import read_model_folder, write_model_folder

ENV = {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}
FORMULAS = ['=HYPERLINK("http://x","y")', "@SUM(A1:A2)", "+1+1", "-2+3+cmd|' /C calc'!A0", "\tx", "\rx"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_formula_cells_are_escaped(cell):
    assert escape_cell(cell) == "'" + cell
    assert escape_cell("plain") == "plain" and escape_cell(-2.5) == -2.5


def test_escaping_is_undone_exactly_for_the_csvs_read_back(tmp_path):
    """Audit findings and corrections are escaped for spreadsheets and read back by skulens: what was written
    comes back unchanged, including text that already starts with a quote."""
    from skulens.outputs import read_escaped_csv, unescape_cell, write_csv

    values = [*FORMULAS, "plain", "'quoted", "'=already", "''+twice", "'", ""]
    for value in values:
        escaped = escape_cell(value)
        assert unescape_cell(escaped) == value and not str(escaped).startswith(("=", "+", "-", "@", "\t", "\r"))
    lines = [v for v in values if "\r" not in v]  # pandas reads a carriage return as a line end, even quoted
    write_csv(pd.DataFrame({"id": lines, "=note": ["x"] * len(lines)}), tmp_path / "f.csv")
    back = read_escaped_csv(tmp_path / "f.csv")
    assert list(back.columns) == ["id", "=note"] and back["id"].tolist() == lines


def test_csv_safe_escapes_text_cells_and_headers_only():
    frame = pd.DataFrame({"id": ["=1+1", "ok"], "=cmd": ["a", "@b"], "score": [-1.5, 2.0]})
    safe = csv_safe(frame)
    assert list(safe.columns) == ["id", "'=cmd", "score"]
    assert safe["id"].tolist() == ["'=1+1", "ok"] and safe["'=cmd"].tolist() == ["a", "'@b"]
    assert safe["score"].tolist() == [-1.5, 2.0]
    assert frame["id"].tolist() == ["=1+1", "ok"]  # the caller's frame is untouched


def test_issues_file_escapes_formula_ids(tmp_path):
    path = write_issues([RowIssue(row=1, id='=HYPERLINK("x")', column="image", message="+bad")], tmp_path / "issues.csv")
    read = pd.read_csv(path)
    assert read["id"].tolist() == ['\'=HYPERLINK("x")'] and read["message"].tolist() == ["'+bad"]


def test_atomic_file_keeps_the_previous_file_when_the_write_fails(tmp_path):
    target = tmp_path / "out.csv"
    write_csv(pd.DataFrame({"a": [1, 2]}), target)
    with pytest.raises(RuntimeError), atomic_file(target) as temp:
        temp.write_text("a\n9\n")
        raise RuntimeError("killed half-way")
    assert pd.read_csv(target)["a"].tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary file left


def test_disk_full_is_a_clear_error_and_leaves_no_temporary_file(tmp_path):
    with pytest.raises(OutputError, match="no space left"), atomic_file(tmp_path / "out.csv") as temp:
        temp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_has_one_writer_at_a_time(tmp_path):
    with folder_lock(tmp_path / "out"):
        with pytest.raises(OutputError, match="another skulens run"), folder_lock(tmp_path / "out"):
            pass
    with folder_lock(tmp_path / "out"):  # released when the first run ends
        pass


def test_concurrent_model_saves_never_mix_their_files(tmp_path):
    """Two saves racing on one folder (two `categorize train --out` runs) take turns: the folder always
    holds one save's weights and the config written with them."""
    folder = tmp_path / "model"
    errors = []

    def save(value: int) -> None:
        try:
            for _ in range(15):
                write_model_folder(folder, {"task": "t", "value": value}, {"w": np.full((200, 200), value, dtype=np.float32)})
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    config, arrays = read_model_folder(folder, "t")
    assert np.all(arrays["w"] == config["value"])
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".skulens")) == ["config.json", "weights.npz"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return shared_models(tmp_path_factory)


def test_categorize_predict_escapes_formula_cells(shared, tmp_path):
    from skulens.cli.main import app

    pd.DataFrame({"id": ['=HYPERLINK("http://evil")', "@SUM(1)", "ok"], "title": ["garden hose", "pan", "toy car"]}).to_csv(
        tmp_path / "in.csv", index=False
    )
    out = tmp_path / "out.csv"
    args = ["categorize", "predict", str(shared / "text-only"), "--input", str(tmp_path / "in.csv"), "--output", str(out)]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    ids = pd.read_csv(out)["id"].tolist()
    assert ids == ['\'=HYPERLINK("http://evil")', "'@SUM(1)", "ok"]


def test_streamed_run_replaces_the_manifest_last(shared, tmp_path):
    """A Parquet run removes the previous manifest before it writes parts, and writes its own last."""
    from skulens.cli.main import app

    pd.DataFrame({"id": ["a", "b"], "title": ["garden hose", "pan"]}).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "parts"
    out.mkdir()
    (out / "_manifest.json").write_text(json.dumps({"rows_out": 999}))
    (out / "part-00000.parquet").write_bytes(b"PAR1 cut off")
    args = ["categorize", "predict", str(shared / "text-only"), "--input", str(tmp_path / "in.csv"), "--output", str(out)]
    with folder_lock(out):  # another run holds the folder: refused, nothing touched
        busy = CliRunner().invoke(app, args, env=ENV)
    assert busy.exit_code != 0 and "another skulens run" in " ".join(busy.output.split())
    assert json.loads((out / "_manifest.json").read_text())["rows_out"] == 999
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "_manifest.json").read_text())["rows_out"] == 2
    assert pd.read_parquet(out / "part-00000.parquet")["id"].tolist() == ["a", "b"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
