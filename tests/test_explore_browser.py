"""The explore and maps pages in headless Chromium: they render offline, with no console errors, and hovering
a map point shows its thumbnail. Skips without Playwright for Python or a Chromium binary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("playwright.sync_api")

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "") if p and Path(p).is_file()),
    None,
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
COLOURS = {"Shoes": (210, 30, 30), "Bags": (30, 200, 40), "Hats": (30, 40, 210)}
WORDS = {"Shoes": "running sneaker sole", "Bags": "leather handbag strap", "Hats": "woollen beanie brim"}


@pytest.fixture
def pages(tmp_path):
    from skulens.catalog import build_catalog
    from skulens.evaluation.explore import explore_catalog
    from skulens.evaluation.maps import write_maps

    rows = []
    for i in range(30):
        name = list(COLOURS)[i % 3]
        Image.new("RGB", (48, 40 + i), COLOURS[name]).save(tmp_path / f"p{i}.png")
        rows.append({"id": str(i), "title": f"{WORDS[name]} {i}", "image": f"p{i}.png", "category": f"Fashion >> {name}"})
    catalog = build_catalog(pd.DataFrame(rows), root=tmp_path, name="tiny")
    out = tmp_path / "out"
    maps = write_maps(catalog, ["tfidf"], out, label=1, methods=("tsne",), log=lambda _: None)
    return explore_catalog(catalog, out, maps_page=maps.name), maps


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")
def test_explore_and_maps_pages_open_without_console_errors(pages):
    from playwright.sync_api import sync_playwright

    explore, maps = pages
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "request", lambda request: requests.append(request.url) if not request.url.startswith(("file:", "data:")) else None
        )
        page.goto(explore.as_uri())
        page.wait_for_selector("#examples img")
        assert page.locator(".js-plotly-plot").count() >= 3  # class bars and histograms rendered by inline plotly.js
        assert page.locator("#examples img").count() == 18  # 6 per class

        page.goto(maps.as_uri())
        plot = page.locator(".js-plotly-plot").first
        plot.wait_for()
        plot.scroll_into_view_if_needed()
        box = plot.bounding_box()
        shown = False
        for fy in (0.3, 0.4, 0.5, 0.6, 0.7):
            for fx in (0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75):
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
                page.wait_for_timeout(60)
                if page.evaluate("document.getElementById('preview').style.display") == "block":
                    shown = True
                    break
            if shown:
                break
        assert shown, "hovering the map never showed a preview"
        assert page.locator("#preview img").get_attribute("src").startswith("data:image/jpeg;base64,")
        browser.close()
    assert errors == [] and requests == []
