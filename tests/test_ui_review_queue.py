"""The UI's review-queue page: the queue itself (least confident first, thumbnails, agreement) and the page in AppTest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

UI = Path(__file__).resolve().parents[1] / "src" / "skulens" / "ui" / "app.py"
COLOURS = {"Shoes": (210, 30, 30), "Bags": (30, 200, 40), "Hats": (30, 40, 210)}
WORDS = {"Shoes": "running sneaker sole", "Bags": "leather handbag strap", "Hats": "woollen beanie brim"}


@pytest.fixture
def shop(tmp_path):
    """A 30-product catalog CSV with images and a tf-idf categorizer in ``models/`` trained on all but the first, unclear, product."""
    from skulens.catalog import read_catalog
    from skulens.tasks.categorize import CategoryPredictor

    rows = []
    for i in range(30):
        name = list(COLOURS)[i % 3]
        Image.new("RGB", (40, 40), COLOURS[name]).save(tmp_path / f"p{i}.png")
        rows.append({"id": f"p{i}", "title": f"{WORDS[name]} {i}", "image": f"p{i}.png", "category": f"Fashion >> {name}"})
    rows[0]["title"] = "mystery gadget"  # no word the model knows, and it is not trained on: it cannot be sure
    path = tmp_path / "shop.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    catalog = read_catalog(path)
    predictor = CategoryPredictor(["tfidf"], label=1, min_class_count=2).fit(catalog.subset(range(1, 30)))
    predictor.save(tmp_path / "models" / "shop-categorizer")
    return path, catalog, predictor


def test_review_queue_orders_by_confidence_with_thumbnails(shop):
    from skulens.ui.review_queue_page import review_queue

    _, catalog, predictor = shop
    queue = review_queue(predictor, catalog)
    assert len(queue) == 30 and queue["confidence"].is_monotonic_increasing
    assert queue.loc[0, "id"] == "p0"  # the ambiguous product comes first
    assert queue["thumbnail"].str.startswith("data:image/jpeg;base64,").all()
    assert {"predicted category", "runner-up", "margin", "catalog category", "agrees"} <= set(queue.columns)
    assert (queue["margin"] >= 0).all() and queue["agrees"].sum() >= 28


def test_review_queue_page_scores_filters_and_exports(shop, monkeypatch):
    path, _, _ = shop
    monkeypatch.setenv("SKULENS_MODELS", str(path.parent / "models"))
    monkeypatch.setenv("SKULENS_REPORTS", str(path.parent))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.sidebar.radio(key="page").set_value("Review queue").run()
    assert not at.exception and "Catalog review queue" in [h.value for h in at.header]
    at.text_input(key="queue-source").set_value(str(path))
    at.number_input(key="queue-rows").set_value(30)
    [button] = [b for b in at.button if b.label == "Score catalog"]
    button.click().run()
    assert not at.exception, at.exception
    [table] = at.dataframe
    low = len(table.value)
    assert low == 1 and table.value.iloc[0]["id"] == "p0"
    assert any(f"{low} of 30 products are below 60% confidence" in s.value for s in at.success)
    at.slider(key="queue-threshold").set_value(1.0).run()
    assert len(at.dataframe[0].value) == 30
    at.checkbox(key="queue-only-low").uncheck().run()
    at.slider(key="queue-threshold").set_value(0.0).run()
    assert len(at.dataframe[0].value) == 30 and any("0 of 30 products" in s.value for s in at.success)
    assert at.get("download_button")  # the CSV export is offered


def test_review_queue_page_reports_a_missing_catalog(shop, monkeypatch, tmp_path):
    path, _, _ = shop
    monkeypatch.setenv("SKULENS_MODELS", str(path.parent / "models"))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    at.sidebar.radio(key="page").set_value("Review queue").run()
    at.text_input(key="queue-source").set_value(str(tmp_path / "nope.csv"))
    [button] = [b for b in at.button if b.label == "Score catalog"]
    button.click().run()
    assert not at.exception, at.exception
    assert at.error and "nope.csv" in at.error[0].value


def test_audit_section_accepts_and_rejects_suggestions(shop, monkeypatch, tmp_path):
    """A real audit of the shop (two products mislabelled), then Accept on one suggestion and Reject on the other:
    the accepted fix lands in the corrections file, the rejected one in rejected.csv, and neither is offered again."""
    from skulens.catalog import read_catalog
    from skulens.catalog.corrections import apply_corrections, read_corrections
    from skulens.evaluation.audit import AuditSettings, CatalogAuditor
    from skulens.evaluation.audit_report import write_audit_report

    path, _, _ = shop
    frame = pd.read_csv(path)
    for i, name in enumerate(frame["category"].str.split(" >> ").str[1]):  # distinct photos: identical ones form one group
        image = Image.new("RGB", (40, 40), COLOURS[name])
        image.putpixel((i, i), (255, 255, 255))
        image.save(path.parent / f"p{i}.png")
    frame.loc[3, "category"], frame.loc[4, "category"] = "Fashion >> Bags", "Fashion >> Shoes"  # p3 is Shoes, p4 Bags
    frame.to_csv(path, index=False)
    catalog = read_catalog(path)
    result = CatalogAuditor(AuditSettings(label=1, encoders=("classical-image", "tfidf"), folds=3)).run(catalog)
    result.summary["source"] = str(path)
    folder = tmp_path / "audit"
    write_audit_report(result, catalog, folder)
    labels = result.findings[result.findings["kind"] == "label"]
    assert {"p3", "p4"} <= set(labels["id"])

    monkeypatch.setenv("SKULENS_MODELS", str(path.parent / "models"))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    at.sidebar.radio(key="page").set_value("Review queue").run()
    at.text_input(key="audit-folder").set_value(str(folder)).run()
    assert not at.exception, at.exception
    before = int(at.success[0].value.split()[0])
    first = at.markdown[[i for i, m in enumerate(at.markdown) if "→" in m.value][0]].value
    at.button(key="audit-accept-0").click().run()
    assert not at.exception, at.exception
    second = [m.value for m in at.markdown if "→" in m.value][0]
    at.button(key="audit-reject-0").click().run()
    assert int(at.success[0].value.split()[0]) == before - 2
    corrections = read_corrections(folder / "corrections.csv")
    rejected = read_corrections(folder / "rejected.csv")
    assert len(corrections) == 1 and corrections.loc[0, "id"] in first and rejected.loc[0, "id"] in second
    applied = apply_corrections(catalog, corrections)
    assert applied.applied == 1 and not applied.refused


def test_review_queue_page_maps_columns_and_says_how_many_rows_it_scored(shop, monkeypatch):
    """Issue 23: a shop export with its own column names showed no photos and no current category, and only
    the first 200 rows were scored without a word; the page now maps columns as the CSV page does."""
    path, _, _ = shop
    frame = pd.read_csv(path).rename(columns={"id": "sku", "title": "name", "image": "photo", "category": "dept_path"})
    export = path.parent / "export.csv"
    frame.to_csv(export, index=False)
    monkeypatch.setenv("SKULENS_MODELS", str(path.parent / "models"))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    at.sidebar.radio(key="page").set_value("Review queue").run()
    at.text_input(key="queue-source").set_value(str(export)).run()
    assert not at.exception, at.exception
    assert [at.selectbox(key=f"queue-map-{f}").value for f in ("id", "title", "image")] == ["sku", "name", "photo"]
    assert at.selectbox(key="queue-map-category").value == "(none)"  # dept_path is no common name: the user maps it
    at.selectbox(key="queue-map-category").set_value("dept_path").run()
    assert any("--columns" in c.value and "category=dept_path" in c.value for c in at.caption)
    at.number_input(key="queue-rows").set_value(10)
    [button] = [b for b in at.button if b.label == "Score catalog"]
    button.click().run()
    assert not at.exception, at.exception
    assert any("Scored the first 10 of 30 products" in i.value for i in at.info)
    at.checkbox(key="queue-only-low").uncheck().run()
    table = at.dataframe[0].value
    assert len(table) == 10 and table["thumbnail"].notna().all()
    assert table["catalog category"].notna().all() and table["agrees"].sum() >= 8
    at.checkbox(key="queue-all-rows").check()
    [button] = [b for b in at.button if b.label == "Score catalog"]
    button.click().run()
    assert any("Scored all 30 products" in i.value for i in at.info)
    assert len(at.dataframe[0].value) == 30
