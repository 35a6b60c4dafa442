"""The "unused columns" warning never names a column the command reads (issue 23): a search index keeps
every column for --where filters, captions read gender/colour attributes."""

from __future__ import annotations

import pandas as pd

from skulens.cli.engines import open_source_stream
from skulens.cli.sources import load_source

EXPORT = {
    "sku": ["a1", "a2"],
    "name": ["Blue denim jeans", "Steel watch"],
    "photo": ["a1.jpg", "a2.jpg"],
    "notes": ["", "gift"],
    "gender": ["Men", "Women"],
    "colour": ["Blue", "Silver"],
}


def _warnings(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def test_streamed_index_keeps_where_columns(tmp_path, capsys):
    path = tmp_path / "export.csv"
    pd.DataFrame(EXPORT).to_csv(path, index=False)
    open_source_stream(str(path), None, None, 10, keeps_columns=True)
    assert "not used" not in _warnings(capsys)
    open_source_stream(str(path), None, None, 10)  # a job that reads only schema columns still says so
    text = _warnings(capsys)
    assert "not used by this command" in text and "'gender'" in text and "--where" in text


def test_caption_attributes_are_not_called_unused(tmp_path, capsys):
    path = tmp_path / "export.csv"
    pd.DataFrame(EXPORT).to_csv(path, index=False)
    load_source(str(path), uses=("gender", "colour", "articleType"))
    text = _warnings(capsys)
    assert "'notes'" in text and "'gender'" not in text and "'colour'" not in text
