"""The new-products split (issue #21): family keys, id-ordered galleries, family removal, grouped fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skulens.catalog import Catalog, CatalogError, load_catalog
from skulens.catalog.splits import concat_catalogs, family_key, family_keys, new_products_split


def _catalog(rows: list[tuple], name: str = "shop", root=None) -> Catalog:
    frame = pd.DataFrame(rows, columns=["id", "title", "colour", "category"])
    frame["image"] = [f"images/{i}.jpg" for i in frame["id"]]
    return Catalog(frame, root=root, name=name)


def test_family_key_drops_colours_and_punctuation():
    assert family_key("Nike Men Navy Blue Tee!", ["Navy Blue"]) == "nike men tee"
    assert family_key("Nike Men  BLACK tee") == family_key("nike men off-white tee") == "nike men tee"
    assert family_key("Nike Men Blue Tee") != family_key("Nike Women Blue Tee")
    assert family_key("Bluestone ring") == "bluestone ring"  # whole words only


def test_family_keys_use_catalog_colours_and_isolate_blank_titles():
    shop = _catalog([("1", "Puma Mushroom Brown Cap", "Mushroom Brown", None), ("2", None, "Red", None)])
    assert family_keys(shop).tolist() == ["puma cap", "id:2"]


def test_id_ordered_split_removes_gallery_families(tmp_path):
    rows = [(str(10 + i), f"Brand{i % 7} Men Black Style{i} Shirt", "Black", ("Apparel",)) for i in range(30)]
    rows.append(("5", "Brand4 Men Red Style25 Shirt", "Red", ("Apparel",)))  # colour variant of id 35
    shop = _catalog(rows, root=tmp_path)
    extra = _catalog(
        [("100", "Brand5 Men Sea Green Style26 Shirt", "Green", ("Apparel",)), ("101", "Other Cap", "Blue", None)], "more"
    )
    split = new_products_split(shop, [extra], id_threshold=25, gallery_size=5, seed=0)
    expected = np.random.default_rng(0).choice(np.arange(25, 40), 5, replace=False)
    assert sorted(map(int, split.gallery.ids)) == sorted(expected.tolist())
    everything = new_products_split(shop, [extra], id_threshold=25, gallery_size=15)
    assert everything.removed == 2 and not {"5", "100"} & set(everything.train.ids)
    train_ids = set(split.train.ids)
    assert not train_ids & set(split.gallery.ids)
    assert not set(family_keys(split.train)) & set(family_keys(split.gallery))
    assert split.removed == len({"5", "100"} - train_ids) == split.protocol["family_rows_removed"]
    assert "101" in train_ids and all(int(i) < 25 or int(i) >= 100 for i in train_ids)
    plain = new_products_split(shop, [extra], id_threshold=25, gallery_size=5, remove_families=False)
    assert plain.removed == 0 and len(plain.train) == len(split.train) + split.removed


def test_concat_makes_image_paths_absolute_and_refuses_shared_ids(tmp_path):
    a = _catalog([("1", "A", None, None)], "a", root=tmp_path / "a")
    b = _catalog([("2", "B", None, None)], "b", root=tmp_path / "b")
    both = concat_catalogs([a, b], "ab")
    assert both.frame["image"].tolist() == [
        str((tmp_path / "a/images/1.jpg").resolve()),
        str((tmp_path / "b/images/2.jpg").resolve()),
    ]
    assert set(both.image_roots) == {(tmp_path / "a").resolve(), (tmp_path / "b").resolve()}
    with pytest.raises(CatalogError, match="share ids"):
        concat_catalogs([a, a], "aa")


def test_unordered_ids_split_by_brand_and_category():
    rows = [(f"sku-{i}", f"Maker{i % 4} thing {i}", None, (f"Cat{i % 2}",)) for i in range(40)]
    split = new_products_split(_catalog(rows), id_threshold=18000, gallery_size=10, seed=1)
    keys = lambda c: {(t.split()[0], cat[0]) for t, cat in zip(c.frame["title"], c.frame["category"])}  # noqa: E731
    assert len(split.gallery) >= 10 and not keys(split.gallery) & keys(split.train)
    assert len(split.gallery) + len(split.train) == 40


def test_too_few_later_products_is_a_clear_error():
    shop = _catalog([(str(i), f"t{i}", None, None) for i in range(5)])
    with pytest.raises(CatalogError, match="gallery needs 10"):
        new_products_split(shop, id_threshold=3, gallery_size=10)


@pytest.mark.integration
def test_myntra_new_products_split(datasets_root):
    myntra, more = load_catalog("myntra"), load_catalog("myntra_more")
    assert len(more) == 34500 and more.name == "myntra_more" and more.depth == 3
    split = new_products_split(myntra, [more])
    assert len(split.gallery) == 1000 and all(int(i) >= 18000 for i in split.gallery.ids)
    assert split.removed > 0 and len(split.train) + split.removed == len(more) + int(
        (myntra.frame["id"].astype(int) < 18000).sum()
    )
    assert not set(family_keys(split.train)) & set(family_keys(split.gallery))
