"""Category paths written with other separators, or as one column per level (issue 23)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from skulens.catalog import CatalogError, read_catalog
from skulens.catalog.validation import detect_separator
from skulens.cli import app

PATHS = {
    ">": "Apparel > Topwear > Tshirts",
    "/": "Apparel/Topwear/Tshirts",
    "|": "Apparel | Topwear | Tshirts",
    ">>": "Apparel >> Topwear >> Tshirts",
}


def _export(tmp_path, path: str, rows: int = 6):
    frame = pd.DataFrame(
        {
            "sku": [f"s{i}" for i in range(rows)],
            "name": [f"Cotton tee {i}" for i in range(rows)],
            "dept_path": [path.replace("Tshirts", "Tshirts" if i % 2 else "Shirts") for i in range(rows)],
        }
    )
    file = tmp_path / "export.csv"
    frame.to_csv(file, index=False)
    return file


@pytest.mark.parametrize("sep", list(PATHS))
def test_separator_is_detected_and_levels_split(tmp_path, sep):
    catalog = read_catalog(_export(tmp_path, PATHS[sep]), columns={"id": "sku", "title": "name", "category": "dept_path"})
    assert catalog.category_sep == sep
    assert catalog.depth == 3
    assert set(catalog.labels(2)) == {"Tshirts", "Shirts"} and set(catalog.labels(0)) == {"Apparel"}


def test_detection_needs_most_values_and_keeps_double_angle_brackets():
    assert detect_separator(["A >> B", "C >> D", "E"]) == ">>"
    assert detect_separator(["Shoes", "Bags", "T-shirts/Tops"]) == ">>"  # one slash in three values is not a path
    assert detect_separator(["A > B", "C > D"]) == ">"


def test_forced_separator_error_names_the_separator_and_the_suspect(tmp_path):
    file = _export(tmp_path, PATHS[">"])
    catalog = read_catalog(file, columns={"id": "sku", "category": "dept_path"}, category_sep="|")
    with pytest.raises(CatalogError) as error:
        catalog.labels(1)
    message = str(error.value)
    assert "split on '|'" in message and "--category-sep '>'" in message and "Apparel > Topwear" in message


def test_level_columns_build_the_path(tmp_path):
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "master": ["Apparel", "Footwear", "Apparel"],
            "sub": ["Topwear", "Shoes", None],
            "type": ["Tee", "Boot", "X"],
        }
    )
    file = tmp_path / "levels.csv"
    frame.to_csv(file, index=False)
    catalog = read_catalog(file, category_columns=["master", "sub", "type"])
    assert list(catalog.frame["category"]) == [("Apparel", "Topwear", "Tee"), ("Footwear", "Shoes", "Boot"), ("Apparel",)]
    with pytest.raises(CatalogError, match="category column"):
        read_catalog(file, category_columns=["master", "nope"])


def test_cli_ingest_and_label_with_separator_options(tmp_path):
    file = _export(tmp_path, PATHS[">"])
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(file), "--columns", "id=sku,title=name,category=dept_path"])
    assert result.exit_code == 0, result.output
    assert "split on '>'" in result.output
    bad = runner.invoke(app, ["ingest", str(file), "--columns", "id=sku,category=dept_path", "--category-sep", ";"])
    assert bad.exit_code == 2 and "--category-sep" in bad.output
    flipkart_like = runner.invoke(app, ["ingest", "flipkart", "--category-sep", ">"])
    assert flipkart_like.exit_code == 2 and "built-in dataset" in flipkart_like.output
