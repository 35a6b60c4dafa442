"""Catalog schema, readers, built-in dataset adapters (on small hand-written files), splits, balancing."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skulens.catalog import (
    Catalog,
    CatalogError,
    RowIssue,
    balance_catalog,
    build_catalog,
    data_root,
    load_catalog,
    read_catalog,
    split_catalog,
    write_issues,
)
from skulens.catalog.datasets import load_myntra

# --------------------------------------------------------------------------------------------------
# Built-in adapters on small files in each dataset's real column layout
# --------------------------------------------------------------------------------------------------

FLIPKART_COLUMNS = [
    "uniq_id",
    "crawl_timestamp",
    "product_url",
    "product_name",
    "product_category_tree",
    "pid",
    "retail_price",
    "discounted_price",
    "image",
    "is_FK_Advantage_product",
    "description",
    "product_rating",
    "overall_rating",
    "brand",
    "product_specifications",
]


def _tree(*levels: str) -> str:
    return json.dumps([" >> ".join(levels)])


@pytest.fixture
def flipkart_root(tmp_path, write_jpeg, monkeypatch) -> Path:
    folder = tmp_path / "data" / "flipkart"
    rows = [
        (
            "a1",
            "Cotton Curtain Blue",
            _tree("Home Furnishing", "Curtains & Accessories", "Curtains"),
            "a1.jpg",
            "No rating available",
            "Acme",
        ),
        ("b2", "Steel Analog Watch", _tree("Watches", "Wrist Watches"), "b2.jpg", "4.5", "TimeCo"),
        ("c3", "Baby Soft Towel", _tree("Baby Care", "Baby Bath & Skin", "Baby Bath Towels", "Soft Towels"), "c3.jpg", "3", None),
    ]
    folder.mkdir(parents=True)
    with open(folder / "flipkart_com-ecommerce_sample_1050.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FLIPKART_COLUMNS)
        for uid, name, tree, image, rating, brand in rows:
            record = {
                "uniq_id": uid,
                "crawl_timestamp": "2016-01-01 00:00:00 +0000",
                "product_url": f"http://example.invalid/{uid}",
                "product_name": name,
                "product_category_tree": tree,
                "pid": uid.upper(),
                "retail_price": "100.0",
                "discounted_price": "90.0",
                "image": image,
                "is_FK_Advantage_product": "False",
                "description": f"Description of {name}",
                "product_rating": rating,
                "overall_rating": rating,
                "brand": brand or "",
                "product_specifications": '{"product_specification"=>[]}',
            }
            writer.writerow([record[c] for c in FLIPKART_COLUMNS])
    for i, (_, _, _, image, _, _) in enumerate(rows[:2]):  # c3.jpg is missing on purpose
        write_jpeg(folder / "images" / image, seed=i)
    monkeypatch.setenv("SKULENS_DATA", str(tmp_path / "data"))
    return folder


def test_data_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKULENS_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()


def test_flipkart_adapter(flipkart_root):
    catalog = load_catalog("flipkart")
    assert catalog.name == "flipkart"
    assert catalog.ids == ["a1", "b2", "c3"]
    assert catalog.frame["title"].tolist() == ["Cotton Curtain Blue", "Steel Analog Watch", "Baby Soft Towel"]
    assert catalog.frame["description"][1] == "Description of Steel Analog Watch"
    assert catalog.frame["category"][0] == ("Home Furnishing", "Curtains & Accessories", "Curtains")
    assert catalog.frame["category"][2] == ("Baby Care", "Baby Bath & Skin", "Baby Bath Towels", "Soft Towels")
    assert catalog.depth == 4
    assert catalog.labels(0).tolist() == ["Home Furnishing", "Watches", "Baby Care"]
    assert catalog.labels(2).fillna("-").tolist() == ["Curtains", "-", "Baby Bath Towels"]
    assert catalog.frame["image"].tolist() == ["images/a1.jpg", "images/b2.jpg", "images/c3.jpg"]
    assert catalog.root == flipkart_root.resolve()
    ratings = catalog.frame["rating"]
    assert math.isnan(ratings[0])  # "No rating available"
    assert ratings[1] == 4.5 and ratings[2] == 3.0
    assert catalog.frame["brand"].tolist()[:2] == ["Acme", "TimeCo"]
    # "No rating available" is a known placeholder, not a data problem
    assert not [issue for issue in catalog.issues if issue.column == "rating"]
    assert catalog.texts(("title", "description"))[0] == "Cotton Curtain Blue. Description of Cotton Curtain Blue"


def test_flipkart_adapter_reports_bad_rating(flipkart_root):
    path = flipkart_root / "flipkart_com-ecommerce_sample_1050.csv"
    raw = pd.read_csv(path, dtype=str)
    raw.loc[1, "product_rating"] = "great"
    raw.to_csv(path, index=False)
    catalog = load_catalog("flipkart")
    assert math.isnan(catalog.frame["rating"][1])
    [issue] = [issue for issue in catalog.issues if issue.column == "rating"]
    assert issue.row == 1 and issue.id == "b2" and "'great' is not a number" in issue.message


MYNTRA_COLUMNS = [
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
]
MYNTRA_ROWS = [
    ["15970", "Men", "Apparel", "Topwear", "Shirts", "Navy Blue", "Fall", "2011.0", "Casual", "Test Men Navy Shirt"],
    ["18653", "Women", "Footwear", "Flip Flops", "Flip Flops", "Black", "Summer", "2012.0", "Casual", "Test Women Slippers"],
    ["10042", "Unisex", "Accessories", "Bags", "Backpacks", "Red", "Winter", "", "Sports", "Test Red Backpack"],
]


@pytest.fixture
def myntra_root(tmp_path, write_jpeg, monkeypatch) -> Path:
    folder = tmp_path / "data" / "myntra"
    folder.mkdir(parents=True)
    for name, rows in (
        ("styles_with_images.csv", MYNTRA_ROWS),
        (
            "styles.csv",
            MYNTRA_ROWS
            + [["20001", "Men", "Apparel", "Bottomwear", "Jeans", "Blue", "Fall", "2011.0", "Casual", "No Image Jeans"]],
        ),
    ):
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(MYNTRA_COLUMNS)
            writer.writerows(rows)
    for i, row in enumerate(MYNTRA_ROWS):
        write_jpeg(folder / "images" / f"{row[0]}.jpg", seed=i)
    monkeypatch.setenv("SKULENS_DATA", str(tmp_path / "data"))
    return folder


def test_myntra_adapter(myntra_root):
    catalog = load_catalog("myntra")
    assert catalog.ids == ["15970", "18653", "10042"]
    assert catalog.depth == 3
    assert catalog.frame["category"][0] == ("Apparel", "Topwear", "Shirts")
    assert catalog.labels(0).tolist() == ["Apparel", "Footwear", "Accessories"]
    assert catalog.labels(2).tolist() == ["Shirts", "Flip Flops", "Backpacks"]
    assert catalog.frame["title"][1] == "Test Women Slippers"
    assert catalog.frame["image"].tolist() == ["images/15970.jpg", "images/18653.jpg", "images/10042.jpg"]
    assert catalog.frame["gender"].tolist() == ["Men", "Women", "Unisex"]
    assert catalog.frame["colour"][2] == "Red"
    assert catalog.issues == []


def test_myntra_all_styles_keeps_rows_without_images(myntra_root):
    catalog = load_myntra(myntra_root, with_images_only=False)
    assert len(catalog) == 4
    assert catalog.frame["image"].tolist()[:3] == ["images/15970.jpg", "images/18653.jpg", "images/10042.jpg"]
    assert catalog.frame["image"][3] is None
    assert catalog.frame["title"][3] == "No Image Jeans"


REVIEW_COLUMNS = [
    "",
    "Clothing ID",
    "Age",
    "Title",
    "Review Text",
    "Rating",
    "Recommended IND",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    "Class Name",
]


@pytest.fixture
def reviews_root(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data" / "reviews"
    folder.mkdir(parents=True)
    rows = [
        ["0", "767", "33", "", "Soft and comfy test review", "4", "1", "0", "Initmates", "Intimate", "Intimates"],
        ["1", "1080", "34", "Nice dress", "A test review of a dress", "5", "1", "4", "General", "Dresses", "Dresses"],
        ["2", "1077", "60", "Bad fit", "", "2", "0", "0", "", "", ""],
    ]
    with open(folder / "womens_clothing_reviews.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REVIEW_COLUMNS)
        writer.writerows(rows)
    monkeypatch.setenv("SKULENS_DATA", str(tmp_path / "data"))
    return folder


def test_reviews_adapter(reviews_root):
    catalog = load_catalog("reviews")
    assert catalog.ids == ["r0", "r1", "r2"]
    assert catalog.frame["rating"].tolist() == [4, 5, 2]
    assert catalog.frame["recommended"].tolist() == [1, 1, 0]
    assert catalog.frame["product_id"].tolist() == ["767", "1080", "1077"]
    assert catalog.frame["title"].tolist() == [None, "Nice dress", "Bad fit"]
    assert catalog.frame["review_text"].tolist() == ["Soft and comfy test review", "A test review of a dress", None]
    assert catalog.frame["category"][0] == ("Initmates", "Intimate", "Intimates")
    assert catalog.frame["category"][2] is None  # no division/department/class
    assert catalog.labels(1).fillna("-").tolist() == ["Intimate", "Dresses", "-"]
    assert catalog.texts(("title", "review_text")) == [
        "Soft and comfy test review",
        "Nice dress. A test review of a dress",
        "Bad fit",
    ]


def test_missing_builtin_dataset_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SKULENS_DATA", str(tmp_path))
    with pytest.raises(CatalogError, match=r"dataset 'myntra' not found .*SKULENS_DATA"):
        load_catalog("myntra")


def test_unknown_name_or_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="neither a built-in dataset"):
        load_catalog(str(tmp_path / "nope.csv"))


# --------------------------------------------------------------------------------------------------
# read_catalog
# --------------------------------------------------------------------------------------------------


def test_read_catalog_with_column_mapping(tmp_path):
    path = tmp_path / "products.csv"
    pd.DataFrame(
        {
            "sku": ["007", "010", "123"],
            "name": ["Red Shirt", "Blue Jeans", "Green Hat"],
            "img": ["a.jpg", "", "sub/c.jpg"],
            "cat": ["Apparel >> Tops", "Apparel >> Bottoms", "Accessories"],
            "stars": [4.0, None, 2.5],
            "colour": ["red", "blue", "green"],
        }
    ).to_csv(path, index=False)
    catalog = read_catalog(path, columns={"id": "sku", "title": "name", "image": "img", "category": "cat", "rating": "stars"})
    assert catalog.ids == ["007", "010", "123"]  # ids stay strings, leading zeros kept
    assert catalog.frame["title"].tolist() == ["Red Shirt", "Blue Jeans", "Green Hat"]
    assert catalog.frame["image"].tolist() == ["a.jpg", None, "sub/c.jpg"]
    assert catalog.frame["category"].tolist() == [("Apparel", "Tops"), ("Apparel", "Bottoms"), ("Accessories",)]
    assert catalog.depth == 2
    assert catalog.labels(1).fillna("-").tolist() == ["Tops", "Bottoms", "-"]
    assert catalog.frame["rating"][0] == 4.0 and math.isnan(catalog.frame["rating"][1])
    assert catalog.frame["colour"].tolist() == ["red", "blue", "green"]  # extra columns kept
    assert "sku" not in catalog.frame.columns
    assert catalog.root == tmp_path.resolve() and catalog.name == "products"
    assert catalog.issues == []


def test_mapped_column_missing_names_it(tmp_path):
    path = tmp_path / "products.csv"
    pd.DataFrame({"sku": ["1"], "name": ["x"]}).to_csv(path, index=False)
    with pytest.raises(CatalogError) as info:
        read_catalog(path, columns={"id": "sku", "title": "product_title"})
    message = str(info.value)
    assert "product_title" in message and "not found" in message
    assert "sku" in message and "name" in message  # lists what the file does have


def test_unknown_schema_column_in_mapping(tmp_path):
    path = tmp_path / "products.csv"
    pd.DataFrame({"sku": ["1"]}).to_csv(path, index=False)
    with pytest.raises(CatalogError, match="unknown schema column"):
        read_catalog(path, columns={"identifier": "sku"})


def test_no_id_column(tmp_path):
    path = tmp_path / "products.csv"
    pd.DataFrame({"name": ["a", "b"]}).to_csv(path, index=False)
    with pytest.raises(CatalogError, match="no 'id' column"):
        read_catalog(path)
    with pytest.raises(CatalogError, match="no 'id' column"):
        Catalog(pd.DataFrame({"name": ["a"]}))


def test_duplicate_and_empty_ids(tmp_path):
    path = tmp_path / "products.csv"
    pd.DataFrame({"id": ["a", "b", "a", "", "c"], "title": ["first a", "b", "second a", "no id", "c"]}).to_csv(path, index=False)
    catalog = read_catalog(path)
    assert catalog.ids == ["a", "b", "c"]
    assert catalog.frame["title"].tolist() == ["first a", "b", "c"]  # the first occurrence is kept
    by_row = {issue.row: issue for issue in catalog.issues}
    assert set(by_row) == {2, 3}
    assert by_row[2].id == "a" and "duplicate id" in by_row[2].message and "first occurrence kept" in by_row[2].message
    assert by_row[3].id is None and "empty id" in by_row[3].message
    assert "line 4 (id a), column 'id'" in str(by_row[2])  # row 2 of the data; the header is line 1


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(CatalogError, match="is empty"):
        read_catalog(path)


def test_header_only_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("id,title,image\n")
    with pytest.raises(CatalogError, match="has no rows"):
        read_catalog(path)


def test_unsupported_suffix_and_missing_file(tmp_path):
    path = tmp_path / "products.xlsx"
    path.write_text("id\n1\n")
    with pytest.raises(CatalogError, match="unsupported file type"):
        read_catalog(path)
    with pytest.raises(CatalogError, match="not found"):
        read_catalog(tmp_path / "missing.csv")


def test_unicode_titles_survive(tmp_path):
    titles = ["Café crème à la française", "東京 Tシャツ 👕", "Ünïcödé — «quoted» ‘test’"]
    path = tmp_path / "unicode.csv"
    pd.DataFrame({"id": ["1", "2", "3"], "title": titles, "category": ["Boissons >> Café", "衣類 >> シャツ", "Misc"]}).to_csv(
        path, index=False, encoding="utf-8"
    )
    catalog = read_catalog(path)
    assert catalog.frame["title"].tolist() == titles
    assert catalog.frame["category"][1] == ("衣類", "シャツ")
    assert catalog.texts(("title",)) == titles


def test_tsv_is_read(tmp_path):
    path = tmp_path / "products.tsv"
    path.write_text("id\ttitle\n1\tTab, separated\n")
    assert read_catalog(path).frame["title"].tolist() == ["Tab, separated"]


def test_parquet_round_trip(tmp_path):
    source = read_catalog_from_frame(
        tmp_path,
        pd.DataFrame(
            {
                "id": ["001", "002", "003"],
                "title": ["Red Shirt", "東京 Tシャツ", "Hat"],
                "category": ["Apparel >> Tops >> Shirts", "Apparel >> Tops", "Accessories"],
                "rating": [4.5, None, 3.0],
                "image": ["a.jpg", None, "c.jpg"],
            }
        ),
    )
    path = tmp_path / "catalog.parquet"
    source.frame.to_parquet(path)  # category holds tuples -> stored as lists
    again = read_catalog(path)
    assert again.ids == source.ids
    assert again.frame["title"].tolist() == source.frame["title"].tolist()
    assert again.frame["category"].tolist() == source.frame["category"].tolist()
    assert again.frame["image"].tolist() == source.frame["image"].tolist()
    np.testing.assert_array_equal(again.frame["rating"].to_numpy(), source.frame["rating"].to_numpy())
    assert again.depth == 3


def read_catalog_from_frame(folder: Path, frame: pd.DataFrame) -> Catalog:
    path = folder / "source.csv"
    frame.to_csv(path, index=False)
    return read_catalog(path)


def test_build_catalog_from_frame_and_write_issues(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 2], "category": [["A", " B "], ("C",), "D"], "rating": ["5", "n/a", "4"]})
    catalog = build_catalog(frame, root=tmp_path, name="frame")
    assert catalog.ids == ["1", "2"]
    assert catalog.frame["category"].tolist() == [("A", "B"), ("C",)]
    out = write_issues(catalog.issues, tmp_path / "issues.csv")
    written = pd.read_csv(out)
    assert written.columns.tolist() == ["row", "line", "id", "column", "message"]
    assert sorted(written["column"]) == ["id", "rating"]
    assert RowIssue(1, "2", "rating", "'n/a' is not a number; value dropped") in catalog.issues


def test_catalog_helpers(tmp_path):
    catalog = build_catalog(
        pd.DataFrame({"id": ["a", "b", "c"], "title": ["x", None, "z"], "category": ["A >> B", "A", None]}), root=tmp_path
    )
    assert catalog.has("title") and not catalog.has("image")
    with pytest.raises(CatalogError, match="no column 'price'"):
        catalog.column("price")
    with pytest.raises(CatalogError, match="level 5 does not exist"):
        catalog.labels(5)
    head = catalog.head(2)
    assert head.ids == ["a", "b"] and len(catalog) == 3
    assert catalog.subset(catalog.frame["id"] != "b").ids == ["a", "c"]
    assert "rows=3" in repr(catalog)


# --------------------------------------------------------------------------------------------------
# Splits and balancing
# --------------------------------------------------------------------------------------------------


def _labelled(counts: dict[str, int]) -> Catalog:
    labels = [name for name, count in counts.items() for _ in range(count)]
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(labels))], "category": labels, "title": labels})
    return build_catalog(frame, name="labelled")


def test_split_is_stratified_seeded_and_disjoint():
    catalog = _labelled({"A": 100, "B": 60, "C": 40})
    split = split_catalog(catalog, label=0, val_size=0.15, test_size=0.15, seed=7)
    parts = {"train": split.train.ids, "val": split.val.ids, "test": split.test.ids}
    sets = {name: set(ids) for name, ids in parts.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert sets["train"] | sets["val"] | sets["test"] == set(catalog.ids)
    assert sum(map(len, parts.values())) == len(catalog)
    assert len(split.test) == 30 and len(split.val) == 30 and len(split.train) == 140
    for part, size in ((split.train, 140), (split.val, 30), (split.test, 30)):
        counts = Counter(part.labels(0))
        for name, total in {"A": 100, "B": 60, "C": 40}.items():
            assert abs(counts[name] - total * size / 200) <= 1, (name, counts)

    again = split_catalog(catalog, label=0, val_size=0.15, test_size=0.15, seed=7)
    assert again.train.ids == split.train.ids and again.val.ids == split.val.ids and again.test.ids == split.test.ids
    other = split_catalog(catalog, label=0, val_size=0.15, test_size=0.15, seed=8)
    assert other.test.ids != split.test.ids


def test_split_tolerates_tiny_classes_and_rejects_tiny_catalogs():
    catalog = _labelled({"A": 30, "B": 30, "C": 1})
    split = split_catalog(catalog, label=0, seed=0)
    assert set(split.train.ids) | set(split.val.ids) | set(split.test.ids) == set(catalog.ids)
    with pytest.raises(CatalogError, match="at least 3"):
        split_catalog(_labelled({"A": 2}), label=0)


def test_balance_under_and_over():
    catalog = _labelled({"A": 12, "B": 5, "C": 8})
    under = balance_catalog(catalog, 0, "under", seed=1)
    assert Counter(under.labels(0)) == {"A": 5, "B": 5, "C": 5}
    assert set(under.ids) <= set(catalog.ids) and len(set(under.ids)) == 15
    assert balance_catalog(catalog, 0, "under", seed=1).ids == under.ids  # seeded

    over = balance_catalog(catalog, 0, "over", seed=1)
    assert Counter(over.labels(0)) == {"A": 12, "B": 12, "C": 12}
    assert len(set(over.ids)) == 36  # duplicated rows get unique ids
    originals = {i.split("#")[0] for i in over.ids}
    assert originals <= set(catalog.ids)
    assert {i for i in catalog.ids if i in set(catalog.frame["id"][catalog.labels(0) == "A"])} <= originals
    with pytest.raises(CatalogError, match="'under' or 'over'"):
        balance_catalog(catalog, 0, "sideways")


def test_flipkart_ids_stay_verbatim_strings(flipkart_root):
    """Hex ids that look numeric ("12e4", leading zeros) must not be parsed as numbers."""
    path = flipkart_root / "flipkart_com-ecommerce_sample_1050.csv"
    raw = pd.read_csv(path, dtype=str)
    raw["uniq_id"] = ["0012", "12e4", "55"]
    raw.to_csv(path, index=False)
    assert load_catalog("flipkart").ids == ["0012", "12e4", "55"]


# --------------------------------------------------------------------------------------------------
# Column mapping: explicit, detected, ignored
# --------------------------------------------------------------------------------------------------


def test_common_column_names_are_detected(tmp_path):
    path = tmp_path / "shop.csv"
    pd.DataFrame(
        {
            "SKU": ["007", "010"],
            "Product Name": ["Red Shirt", "Blue Jeans"],
            "desc": ["soft cotton", "denim"],
            "img_path": ["a.jpg", "b.jpg"],
            "categories": ["Apparel >> Tops", "Apparel >> Bottoms"],
            "stars": ["4", "5"],
            "price": [9.5, 20.0],
        }
    ).to_csv(path, index=False)
    catalog = read_catalog(path)
    assert catalog.ids == ["007", "010"]  # the detected id column is read as text: zeros kept
    assert catalog.frame["title"].tolist() == ["Red Shirt", "Blue Jeans"]
    assert catalog.frame["description"].tolist() == ["soft cotton", "denim"]
    assert catalog.frame["image"].tolist() == ["a.jpg", "b.jpg"]
    assert catalog.frame["category"][1] == ("Apparel", "Bottoms")
    assert catalog.frame["rating"].tolist() == [4.0, 5.0]
    assert catalog.mapping.given == {}
    assert catalog.mapping.detected == {
        "id": "SKU",
        "title": "Product Name",
        "description": "desc",
        "image": "img_path",
        "category": "categories",
        "rating": "stars",
    }
    assert catalog.mapping.ignored == {"price": "not a schema column (kept as an extra column)"}
    assert catalog.extra_columns == ["price"]


def test_detection_prefers_the_schema_name_and_the_first_common_name(tmp_path):
    path = tmp_path / "shop.csv"
    pd.DataFrame({"id": ["1"], "name": ["short"], "product_name": ["long name"], "title": ["the title"]}).to_csv(
        path, index=False
    )
    catalog = read_catalog(path)
    assert catalog.frame["title"].tolist() == ["the title"]
    assert catalog.mapping.detected == {}
    assert set(catalog.mapping.ignored) == {"name", "product_name"}
    path.write_text("id,name,product_name\n1,short,long name\n")
    catalog = read_catalog(path)
    assert catalog.frame["title"].tolist() == ["long name"]  # product_name ranks before name
    assert catalog.mapping.detected == {"title": "product_name"} and "name" in catalog.mapping.ignored


def test_explicit_mapping_replaces_a_same_named_column(tmp_path):
    path = tmp_path / "shop.csv"
    pd.DataFrame({"id": ["1", "2"], "title": ["code A1", "code B2"], "label_text": ["Red Shirt", "Blue Jeans"]}).to_csv(
        path, index=False
    )
    catalog = read_catalog(path, columns={"title": "label_text"})
    assert catalog.frame["title"].tolist() == ["Red Shirt", "Blue Jeans"]
    assert list(catalog.frame.columns) == ["id", "title"]
    assert catalog.mapping.given == {"title": "label_text"}
    assert catalog.mapping.ignored == {"title": "replaced by the mapping title=label_text"}


def test_parse_columns():
    from skulens.catalog import parse_columns

    assert parse_columns("title=product_name, image = img") == {"title": "product_name", "image": "img"}
    assert parse_columns(None) == {} and parse_columns(" ") == {}
    for bad in ("title", "title=", "=img", "title=a,image"):
        with pytest.raises(CatalogError, match="SCHEMA=COLUMN"):
            parse_columns(bad)


def test_builtin_dataset_refuses_a_column_mapping(flipkart_root):
    with pytest.raises(CatalogError, match="built-in dataset with its own column mapping"):
        load_catalog("flipkart", columns={"title": "product_name"})


# --------------------------------------------------------------------------------------------------
# Labels: flat columns, named levels
# --------------------------------------------------------------------------------------------------


def test_flat_label_column(tmp_path):
    path = tmp_path / "shop.csv"
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "title": ["w", "x", "y", "z"],
            "dept": [" Shoes", "Bags", None, "Shoes "],
            "code": [3, 7.0, None, 3],
        }
    ).to_csv(path, index=False)
    catalog = read_catalog(path)
    assert catalog.labels("dept").tolist() == ["Shoes", "Bags", None, "Shoes"]
    assert catalog.labels("code").tolist() == ["3", "7", None, "3"]  # whole numbers read as floats stay "3"
    flat = read_catalog(path, columns={"category": "dept"})
    assert flat.frame["category"].tolist() == [("Shoes",), ("Bags",), None, ("Shoes",)]
    assert flat.labels(0).fillna("-").tolist() == ["Shoes", "Bags", "-", "Shoes"]


def test_category_column_as_label_is_the_whole_path():
    catalog = build_catalog(pd.DataFrame({"id": ["a", "b"], "category": ["A >> B", '["C >> D >> E"]']}))
    assert catalog.frame["category"].tolist() == [("A", "B"), ("C", "D", "E")]  # a JSON list holding one path
    assert catalog.labels("category").tolist() == ["A >> B", "C >> D >> E"]


def test_myntra_levels_are_label_columns(myntra_root):
    catalog = load_catalog("myntra")
    assert catalog.labels("masterCategory").tolist() == catalog.labels(0).tolist() == ["Apparel", "Footwear", "Accessories"]
    assert catalog.labels("articleType").tolist() == catalog.labels(2).tolist()


# --------------------------------------------------------------------------------------------------
# Reviews files: the catalog formats plus JSON Lines, with the same mapping
# --------------------------------------------------------------------------------------------------

AMAZON_STYLE = [
    {"asin": "B001", "reviewerID": "u1", "reviewText": "Great fit, soft.", "overall": 5, "summary": "Love it"},
    {"asin": "B001", "reviewerID": "u2", "reviewText": "Ripped after a wash", "overall": 1, "summary": "Bad"},
    {"asin": "B002", "reviewerID": "u3", "reviewText": "", "overall": 3, "summary": "Meh"},
]


def test_read_reviews_from_json_lines(tmp_path):
    from skulens.catalog import read_reviews

    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in AMAZON_STYLE) + "\n")
    catalog = read_reviews(path)
    assert catalog.ids == ["reviews:0", "reviews:1", "reviews:2"]  # asin names the product, not the review: ids are file:row
    assert catalog.frame["review_text"].tolist() == ["Great fit, soft.", "Ripped after a wash", None]  # blank text is missing
    assert catalog.frame["rating"].tolist() == [5, 1, 3]
    assert catalog.frame["title"].tolist() == ["Love it", "Bad", "Meh"]
    assert catalog.frame["asin"].tolist() == ["B001", "B001", "B002"]
    assert catalog.mapping.detected == {"title": "summary", "rating": "overall", "review_text": "reviewText"}

    array = tmp_path / "reviews.json"
    array.write_text(json.dumps(AMAZON_STYLE))
    assert read_reviews(array).frame["review_text"].tolist() == catalog.frame["review_text"].tolist()
    mapped = read_reviews(path, columns={"id": "reviewerID", "review_text": "summary"})
    assert mapped.ids == ["u1", "u2", "u3"] and mapped.frame["review_text"].tolist() == ["Love it", "Bad", "Meh"]


def test_read_reviews_csv_with_original_clothing_names(tmp_path):
    from skulens.catalog import read_reviews

    path = tmp_path / "reviews.csv"
    pd.DataFrame({"Review Text": ["nice", "poor"], "Rating": [5, 2], "Clothing ID": [7, 7]}).to_csv(path, index=False)
    catalog = read_reviews(path)
    assert catalog.frame["review_text"].tolist() == ["nice", "poor"] and catalog.frame["rating"].tolist() == [5, 2]
    assert catalog.ids == ["reviews:0", "reviews:1"]


def test_reviews_and_json_errors_name_the_file(tmp_path):
    from skulens.catalog import read_reviews

    path = tmp_path / "numbers.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(CatalogError, match=r"numbers.csv has no review text column .*--columns review_text="):
        read_reviews(path)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"reviewText": "fine"}\n{not json\n')
    with pytest.raises(CatalogError, match=r"cannot read .*broken.jsonl"):
        read_reviews(broken)
    catalog_lines = tmp_path / "products.jsonl"
    catalog_lines.write_text('{"sku": "007", "name": "Hat"}\n')
    products = read_catalog(catalog_lines)
    assert products.ids == ["007"] and products.frame["title"].tolist() == ["Hat"]


def test_spaces_only_text_is_missing_everywhere(tmp_path):
    """Issue 23: one rule in validation: blank or spaces-only title, description or review text is missing
    (ingest counted a spaces-only field as present; caption training skipped it)."""
    from typer.testing import CliRunner

    from skulens.cli.main import app
    from skulens.tasks.caption import CaptionModel

    path = tmp_path / "shop.csv"
    path.write_text('id,title,description,review_text\na,"   ",x,"  "\nb,"\t",y,ok\nc,ok,"  ",fine\n')
    catalog = read_catalog(path)
    assert catalog.frame["title"].notna().tolist() == [False, False, True]
    assert catalog.frame["description"].notna().tolist() == [True, True, False]
    assert catalog.frame["review_text"].notna().tolist() == [False, True, True]
    _, skipped = CaptionModel().usable_rows(catalog, np.ones(len(catalog), dtype=bool))
    assert skipped["no_title"] == 2  # what captioning skips is what validation calls missing
    result = CliRunner().invoke(app, ["ingest", str(path)], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    counts = {line.split()[0]: int(line.split()[1]) for line in result.output.splitlines() if "rows have it" in line}
    assert counts == {"title": 1, "description": 2, "review_text": 2}
