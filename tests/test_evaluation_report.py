"""``write_evaluation_report``: the files it writes, and the HTML opened in headless Chromium (no console
error, every image decodes, nothing fetched from outside the file). A missing browser fails the test:
``make test`` installs Chromium (Debian: ``apt-get install -y chromium``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skulens.catalog.schema import Catalog
from skulens.evaluation.model_report import confident_mistakes, confused_pairs, write_evaluation_report

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def chromium_path() -> str | None:
    env = os.environ.get("SKULENS_CHROMIUM")
    for candidate in ([env] if env else []) + list(CHROMIUM_CANDIDATES) + [shutil.which("chromium") or ""]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture
def evaluated(tmp_path):
    """30 products in 3 classes with images; a model that is right on 2/3 of them, with probabilities."""
    rng = np.random.default_rng(0)
    classes = np.array(["Mugs", "Shirts", "Watches"])
    y_true = classes[np.arange(30) % 3]
    y_pred = np.where(np.arange(30) % 3 == 0, classes[(np.arange(30) + 1) % 3], y_true)
    proba = rng.dirichlet(np.ones(3), size=30) * 0.4
    proba[np.arange(30), np.searchsorted(classes, y_pred)] += 0.6
    rows = []
    for i in range(30):
        Image.new("RGB", (40, 30), (8 * i, 100, 200 - 5 * i)).save(tmp_path / f"p{i}.jpg")
        rows.append({"id": f"p{i}", "title": f"product <{i}> & co", "image": f"p{i}.jpg"})
    rows[3]["image"] = "missing.jpg"  # a gallery card without a readable image
    catalog = Catalog(pd.DataFrame(rows), root=tmp_path, name="tiny")
    metrics = {"excluded_training_rows": 12, "unknown_class_rows": 2, "unknown_classes": {"Toys": 2}, "unlabelled_rows": 0}
    return metrics, y_true, y_pred, proba, classes, catalog


def test_error_analysis_helpers():
    pairs = confused_pairs([[5, 3, 0], [1, 4, 0], [0, 0, 2]], ["a", "b", "c"], top=5)
    assert pairs == [
        {"true": "a", "predicted": "b", "rows": 3, "share": 3 / 8},
        {"true": "b", "predicted": "a", "rows": 1, "share": 1 / 5},
    ]
    order = confident_mistakes(np.array(list("aabb")), np.array(list("abab")), np.array([0.9, 0.6, 0.8, 0.7]), limit=5)
    assert order.tolist() == [2, 1]


def test_write_evaluation_report_files(evaluated, tmp_path):
    metrics, y_true, y_pred, proba, classes, catalog = evaluated
    out = tmp_path / "report"
    html_path = write_evaluation_report(metrics, y_true, y_pred, proba, classes, catalog, out, "tiny hold-out", resamples=200)
    assert html_path == out / "report.html"
    for name in ("report.md", "metrics.json", "confusion_model.png", "reliability_model.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    low, high = saved["intervals"]["macro_f1"]["ci95"]
    assert 0.0 <= low <= high <= 1.0
    markdown = (out / "report.md").read_text()
    assert "12 rows the model was trained on were excluded" in markdown
    assert "2 rows carry a class the model does not know" in markdown
    html = html_path.read_text()
    assert html.count('class="card"') == 10  # every third product is wrong
    assert "product &lt;0&gt; &amp; co" in html
    assert "no image" in html


def test_report_html_renders_in_headless_chromium(evaluated, tmp_path):
    executable = chromium_path()
    if executable is None:
        pytest.fail("no Chromium found; install it (Debian: apt-get install -y chromium) or set SKULENS_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is not installed (pip install playwright)")
    metrics, y_true, y_pred, proba, classes, catalog = evaluated
    html_path = write_evaluation_report(metrics, y_true, y_pred, proba, classes, catalog, tmp_path / "r", "tiny", resamples=100)
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "request", lambda request: None if request.url.startswith(("data:", "file:")) else outside.append(request.url)
            )
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
            headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
        finally:
            browser.close()
    assert errors == []
    assert outside == []
    assert len(images) >= 2 + 9  # two figures and nine product thumbnails
    assert all(complete and width > 0 for complete, width in images)
    assert "Calibration and confusion" in headings


def test_long_category_paths_keep_the_level_that_tells_them_apart():
    from skulens.evaluation.plots import short_label

    track, trousers = "Apparel > Bottomwear > Track Pants", "Apparel > Bottomwear > Trousers"
    assert short_label(track, 24) != short_label(trousers, 24)
    assert short_label(track, 24).endswith("Track Pants") and short_label(track, 24).startswith("…")
    assert len(short_label(track, 24)) == 24
    assert short_label("Watches", 24) == "Watches"
    assert short_label("A very long plain class name without levels", 10) == "A very lo…"
