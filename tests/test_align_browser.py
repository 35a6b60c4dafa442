"""End-to-end: the UI's Search page in headless Chromium (search box, photo gallery, "more like this",
zero-shot with typed labels) on a real tiny alignment model and its index. Like the other browser tests
it needs Chromium (``make test`` installs it) and fails without it; screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright
from test_align import FAST, _shop
from test_ui_browser import CHROMIUM_FLAGS, TIMEOUT_MS, chromium_path, open_page, running_ui, screenshot, settle

from skulens.heads.align import AlignConfig
from skulens.tasks.align import AlignmentModel


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("align-browser")
    shop = _shop(root, per_kind=8)
    config = AlignConfig(dim=32, epochs=40, patience=40, dropout=0.1, batch_size=32, lr=3e-3)
    model = AlignmentModel(**FAST, head_config=config, cache_dir=root / "cache").fit(shop)
    model.save(root / "models" / "shapes-align")
    model.build_index(shop).save(root / "models" / "shapes-align" / "index")
    with running_ui(root / "models", root / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(ui_url):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(ui_url, wait_until="domcontentloaded")
        expect(tab.get_by_test_id("stSidebar")).to_be_visible(timeout=TIMEOUT_MS)
        open_page(tab, "Search", "Search and zero-shot")
        yield tab
        browser.close()
    assert not errors, f"browser console errors: {errors}"


def test_search_gallery_and_more_like_this(page):
    page.get_by_label("What are you looking for?").fill("yellow triangle sticker")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("heading", name="Results for “yellow triangle sticker”")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page)
    expect(page.get_by_test_id("stImage")).to_have_count(10)
    page.get_by_role("button", name="More like this").nth(1).click()
    expect(page.get_by_role("heading", name="More like p")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page)
    expect(page.get_by_test_id("stImage")).to_have_count(10)
    screenshot(page, "search")


def test_zero_shot_with_typed_labels(page):
    page.get_by_role("tab", name="Zero-shot categories").click()
    page.get_by_label("Categories, one per line or comma-separated").fill("red, green, blue, yellow")
    page.get_by_label("...or a product title").fill("large green circle sticker")
    page.get_by_role("button", name="Categorise").click()
    expect(page.get_by_text("Most likely: green")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page)
    screenshot(page, "zero-shot")
