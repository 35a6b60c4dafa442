"""Catalog audit: planted mislabels and attribute contradictions are found, corrections round-trip into training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from skulens.catalog import read_catalog
from skulens.catalog.corrections import append_corrections, apply_corrections, read_corrections
from skulens.cli import app
from skulens.evaluation.audit import AuditSettings, CatalogAuditor, auditable_rows

COLOURS = {"Red": (210, 30, 30), "Green": (30, 190, 40), "Blue": (30, 40, 210)}
KINDS = {"Mugs": ("ceramic coffee mug handle", "circle"), "Lamps": ("desk lamp bulb shade", "square")}
ENCODERS = ("classical-image", "tfidf")  # real encoders that run in milliseconds


def _product(folder, i: int, kind: str, colour: str) -> dict:
    image = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(image)
    box = (8 + i % 5, 8, 56, 56 - i % 4)
    (draw.ellipse if KINDS[kind][1] == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
    image.save(folder / f"p{i}.png")
    return {
        "id": f"p{i}",
        "title": f"{KINDS[kind][0]} model {i}",
        "image": f"p{i}.png",
        "category": f"Home >> {kind}",
        "colour": colour,
    }


@pytest.fixture
def shop(tmp_path):
    """60 products: mugs are circles, lamps squares, colour drawn; row p0 is a mug labelled Lamps, p1 a red item listed Blue."""
    rows = [_product(tmp_path, i, list(KINDS)[i % 2], list(COLOURS)[(i // 2) % 3]) for i in range(60)]
    rows[0]["category"] = "Home >> Lamps"  # planted: p0 is a mug (circle, mug title)
    rows[1]["colour"] = "Blue"  # planted: p1 is drawn red
    rows[2]["colour"] = None  # a missing attribute to fill (p2 is drawn green)
    rows.append({"id": "odd", "title": "garden hose", "image": "p3.png", "category": "Home >> Hoses", "colour": "Red"})
    path = tmp_path / "shop.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_audit_finds_planted_mislabel_wrong_colour_and_fills_missing(shop):
    catalog = read_catalog(shop)
    settings = AuditSettings(label=1, encoders=ENCODERS, attributes=("colour",), folds=3, attribute_confidence=0.7)
    result = CatalogAuditor(settings).run(catalog)
    findings = result.findings
    label = findings[findings["kind"] == "label"]
    assert "p0" in set(label["id"]) and label.set_index("id").loc["p0", "suggested"] == "Mugs"
    assert len(label) <= 3  # the clean rows are not flagged wholesale
    colour = findings[findings["kind"] == "attribute"].set_index("id")
    assert colour.loc["p1", "suggested"] == "Red" and colour.loc["p1", "given"] == "Blue"
    missing = findings[findings["kind"] == "missing_attribute"].set_index("id")
    assert missing.loc["p2", "suggested"] == "Green"
    assert any("Hoses (1)" in n for n in result.notes)  # the class with fewer rows than folds is named
    assert findings["rank"].tolist() == list(range(1, len(findings) + 1))
    assert findings["score"].is_monotonic_decreasing


def test_auditable_rows_cuts_rare_and_beyond_top_values():
    values = pd.Series(["a"] * 10 + ["b"] * 8 + ["c"] * 6 + ["d"] * 2 + [None])
    rows, cut = auditable_rows(values, folds=3, max_values=2)
    assert cut["rare"] == {"d": 2} and cut["kept_values"] == 2 and cut["beyond_top_values"] == 1
    assert cut["beyond_top_rows"] == 6 and len(rows) == 18


def test_corrections_apply_refuse_unknown_ids_columns_and_stale_rows(shop, tmp_path):
    catalog = read_catalog(shop)
    fixes = tmp_path / "fixes.csv"
    append_corrections(
        fixes,
        [
            {"id": "p0", "column": "1", "old": "Lamps", "new": "Mugs", "source": "test"},
            {"id": "nope", "column": "1", "old": "", "new": "Mugs", "source": "test"},
            {"id": "p4", "column": "price", "old": "", "new": "3", "source": "test"},
            {"id": "p5", "column": "colour", "old": "Purple", "new": "Red", "source": "test"},
            {"id": "p6", "column": "colour", "old": "", "new": "Blue", "source": "test"},
        ],
    )
    result = apply_corrections(catalog, read_corrections(fixes))
    assert result.applied == 2 and len(result.refused) == 3
    messages = " | ".join(i.message for i in result.refused)
    assert "'nope' is not in catalog" in messages and "column 'price'" in messages and "stale" in messages
    labels = result.catalog.labels(1)
    assert labels[result.catalog.ids.index("p0")] == "Mugs"
    assert result.catalog.frame.set_index("id").loc["p6", "colour"] == "Blue"
    assert catalog.labels(1)[0] == "Lamps"  # the input catalog is not modified


def test_categorize_train_uses_corrected_labels(shop, tmp_path):
    """Relabelling six lamps as 'Desk lamps' through a corrections file creates that class in the trained model."""
    catalog = read_catalog(shop)
    lamps = [i for i, c in zip(catalog.ids, catalog.labels(1)) if c == "Lamps" and i != "p0"][:6]
    fixes = tmp_path / "fixes.csv"
    append_corrections(fixes, [{"id": i, "column": "1", "old": "Lamps", "new": "Desk lamps", "source": "review"} for i in lamps])
    runner = CliRunner()
    for name, extra in (("plain", []), ("corrected", ["--corrections", str(fixes)])):
        out = tmp_path / name
        args = [
            "categorize",
            "train",
            str(shop),
            "--label",
            "1",
            "-e",
            "tfidf",
            "--test-size",
            "0",
            "--no-track",
            "--out",
            str(out),
        ]
        result = runner.invoke(app, args + extra)
        assert result.exit_code == 0, result.output
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())["classes"]
    corrected = json.loads((tmp_path / "corrected" / "config.json").read_text())["classes"]
    assert "Desk lamps" not in plain and "Desk lamps" in corrected


def test_audit_cli_writes_report_and_says_once_when_unlabelled(shop, tmp_path):
    runner = CliRunner()
    out = tmp_path / "audit"
    args = ["audit", str(shop), "--label", "1", "-e", "classical-image", "-e", "tfidf", "--attributes", "colour", "--folds", "3"]
    result = runner.invoke(app, args + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in html and "<script src" not in html and "id='kind'" in html
    findings = pd.read_csv(out / "findings.csv")
    assert {"rank", "id", "kind", "given", "suggested", "photo_says", "text_says"} <= set(findings.columns)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["counts"]["label"] >= 1 and summary["command"]

    frame = pd.read_csv(shop).drop(columns=["category"])
    bare = tmp_path / "bare.csv"
    frame.to_csv(bare, index=False)
    result = runner.invoke(
        app,
        [
            "audit",
            str(bare),
            "-e",
            "classical-image",
            "-e",
            "tfidf",
            "--attributes",
            "colour",
            "--folds",
            "3",
            "--out",
            str(tmp_path / "a2"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("no label audit") == 1
    kinds = set(pd.read_csv(tmp_path / "a2" / "findings.csv")["kind"])
    assert "label" not in kinds and "attribute" in kinds
    assert np.isfinite(pd.read_csv(tmp_path / "a2" / "findings.csv")["score"]).all()


def test_attribute_models_in_predict_and_service(shop, tmp_path):
    """`categorize train --attributes colour` saves a colour model; predict (one product and batch) and
    POST /v1/attributes return the colour the photo shows."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from skulens.serve.app import create_app

    runner = CliRunner()
    model = tmp_path / "models" / "shop"
    args = ["categorize", "train", str(shop), "--label", "1", "-e", "classical-image", "-e", "tfidf", "--test-size", "0"]
    result = runner.invoke(app, args + ["--attributes", "colour", "--no-track", "--out", str(model)])
    assert result.exit_code == 0, result.output
    assert (model / "attributes" / "colour" / "config.json").is_file()
    red = shop.parent / "p0.png"  # i=0 is drawn red
    result = runner.invoke(app, ["categorize", "predict", str(model), "--image", str(red), "--text", "ceramic coffee mug"])
    assert result.exit_code == 0, result.output
    assert "attributes:" in result.output and "Red" in result.output.split("attributes:")[1]
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["categorize", "predict", str(model), "--input", str(shop), "--output", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert {"colour", "colour_probability"} <= set(frame.columns)
    truth = pd.read_csv(shop).set_index("id")["colour"]
    assert (frame.set_index("id")["colour"] == truth.reindex(frame["id"]).to_numpy()).mean() > 0.9

    with TestClient(create_app(tmp_path / "models", warm_up=False)) as client:
        response = client.post("/v1/attributes", files={"image": ("p0.png", red.read_bytes(), "image/png")}, data={"k": "2"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["attributes"]["colour"][0]["value"] == "Red" and len(body["attributes"]["colour"]) == 2
        assert body["used_image"] and not body["used_text"]
        assert client.post("/v1/attributes", data={}).status_code == 422


def test_formula_like_ids_are_escaped_in_findings_and_corrections_and_read_back(shop, tmp_path):
    """Issue 24 item 5 for the audit's CSVs: findings.csv and the corrections file escape formula-like cells
    for spreadsheets, and the audit page / `--corrections` read the original ids back."""
    pytest.importorskip("streamlit")
    from skulens.ui.audit_page import decide, pending

    frame = pd.read_csv(shop)
    frame.loc[frame["id"] == "p0", "id"] = "=p0"  # the planted mislabel, with an id a spreadsheet would run
    catalog = tmp_path / "formula.csv"
    frame.to_csv(catalog, index=False)
    out = tmp_path / "audit"
    args = ["audit", str(catalog), "--label", "1", "-e", "classical-image", "-e", "tfidf", "--folds", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    raw = pd.read_csv(out / "findings.csv", dtype=str, keep_default_na=False)
    assert "'=p0" in set(raw["id"]) and "=p0" not in set(raw["id"])

    corrections = tmp_path / "fixes.csv"
    found = pending(out, corrections)
    finding = found[found["id"] == "=p0"].iloc[0].to_dict()
    decide(out, corrections, finding, accept=True)
    assert pd.read_csv(corrections, dtype=str)["id"].tolist() == ["'=p0"]
    assert read_corrections(corrections)["id"].tolist() == ["=p0"]
    assert "=p0" not in set(pending(out, corrections)["id"])
    applied = apply_corrections(read_catalog(catalog), read_corrections(corrections))
    assert applied.applied == 1 and not applied.refused
