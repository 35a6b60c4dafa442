"""End-to-end: the UI's Captions page in headless Chromium (upload a photo, read the generated title, the
beam alternatives and the nearest catalog titles) on a real tiny captioner. Like the other browser tests
it needs Chromium (``make test`` installs it); screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright
from test_caption import TINY, _draw, _shapes_catalog
from test_ui_browser import CHROMIUM_FLAGS, TIMEOUT_MS, chromium_path, open_page, running_ui, screenshot, settle

from skulens.tasks.caption import CaptionModel


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption-browser")
    catalog = _shapes_catalog(root)
    CaptionModel(**TINY, progress=False, attributes=("colour",)).fit(catalog).save(root / "models" / "shapes-caption")
    photo = root / "upload.png"
    _draw("red", "triangle", 7).save(photo)
    with running_ui(root / "models", root / "streamlit.log") as url:
        yield url, photo


def test_caption_page(ui):
    url, photo = ui
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(url, wait_until="domcontentloaded")
        expect(tab.get_by_test_id("stSidebar")).to_be_visible(timeout=TIMEOUT_MS)
        open_page(tab, "Captions", "Captions")
        tab.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(photo))
        settle(tab)
        tab.get_by_role("button", name="Write titles").click()
        expect(tab.get_by_role("heading", name="bright red triangle sticker")).to_be_visible(timeout=TIMEOUT_MS)
        expect(tab.get_by_text("Other beam candidates")).to_be_visible()
        expect(tab.get_by_text("Nearest catalog titles", exact=True)).to_be_visible()
        settle(tab)
        screenshot(tab, "caption")
        browser.close()
    assert not errors, f"browser console errors: {errors}"
