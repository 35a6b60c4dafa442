"""End-to-end: ``skulens ui`` on localhost driven in headless Chromium, every page, a screenshot of each.

The UI serves its own small models, trained here: a categorizer on a few Flipkart products per category
when ``../shared/datasets`` is there (else on PIL-drawn products) and a tiny reviews model, laid out
like ``make demo``'s output (``models/`` + ``report/``). Chromium is required: ``make test`` installs it,
and without it these tests fail (they never skip). Screenshots are kept in ``tests/artifacts/``;
``SKULENS_UPDATE_SCREENSHOT=1`` also copies the categorize page to ``docs/ui.png``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import DATASETS
from playwright.sync_api import Page, expect, sync_playwright
from serve_helpers import ui_models

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]
TIMEOUT_MS = 90_000


def chromium_path() -> str:
    """The Chromium binary ($SKULENS_CHROMIUM, Debian's, or on PATH); a missing browser fails the test."""
    env = os.environ.get("SKULENS_CHROMIUM")
    for candidate in ([env] if env else []) + list(CHROMIUM_CANDIDATES) + [shutil.which("chromium") or ""]:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("Chromium is not installed: `make test` installs it (apt-get install chromium), or set SKULENS_CHROMIUM")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_ui(models: Path, log: Path):
    """``skulens ui --models MODELS`` on a free localhost port; yields its URL."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "skulens.cli.main", "ui", "--models", str(models), "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if process.poll() is not None:
                pytest.fail(f"skulens ui exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"skulens ui did not start in 90 s:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(models folder, held-out products) — Flipkart when the data set is there, else drawn products."""
    return ui_models(tmp_path_factory.mktemp("ui"), flipkart=(DATASETS / "flipkart").is_dir(), per_class=20)


@pytest.fixture(scope="module")
def ui_url(trained, tmp_path_factory):
    with running_ui(trained[0], tmp_path_factory.mktemp("ui-log") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, ui_url):
    """A fresh tab on the UI's first page; fails the test if the browser console logged an error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(ui_url, wait_until="domcontentloaded")
    expect(tab.get_by_role("heading", name="Categorize a product")).to_be_visible(timeout=TIMEOUT_MS)
    yield tab
    context.close()
    assert not errors, f"browser console errors: {errors}"


def open_page(tab: Page, name: str, heading: str) -> None:
    """Switch to another page in the sidebar and wait until it has replaced the previous one."""
    tab.get_by_test_id("stSidebar").get_by_text(name, exact=True).click()
    expect(tab.get_by_role("heading", name=heading)).to_be_visible(timeout=TIMEOUT_MS)
    settle(tab)


def settle(tab: Page) -> None:
    """Wait until Streamlit has finished running the script (and charts have drawn)."""
    expect(tab.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT_MS)
    tab.wait_for_timeout(800)


def screenshot(tab: Page, name: str) -> Path:
    """``tests/artifacts/ui-NAME.png`` of the whole page (Streamlit scrolls inside its main block, so the
    window is sized to the content first)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    height = tab.get_by_test_id("stMainBlockContainer").evaluate("element => element.scrollHeight")
    tab.set_viewport_size({"width": 1400, "height": max(700, min(int(height) + 40, 4000))})
    settle(tab)
    tab.screenshot(path=str(path))
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000
    return path


def test_categorize_photo_and_title(page, trained, tmp_path):
    from skulens.tasks.categorize import CategoryPredictor

    models, held_out = trained
    [folder] = [p for p in models.iterdir() if p.name.endswith("-categorizer")]
    product = held_out.frame.iloc[len(held_out) - 1]  # Flipkart: a watch
    image = held_out.root / product["image"]
    predictor = CategoryPredictor.load(folder, cache_dir=tmp_path / "cache")
    expected, _ = predictor.predict_one(image=image, title=product["title"])[0]

    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(image))
    page.get_by_label("Title", exact=True).fill(product["title"])
    page.get_by_role("button", name="Categorize", exact=True).click()
    expect(page.get_by_text(f"Top category: {expected} (")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("From the photo and the title;")).to_be_visible()
    settle(page)
    path = screenshot(page, "categorize")
    if os.environ.get("SKULENS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(path, REPO / "docs" / "ui.png")


def test_explain_panel(page, trained):
    models, held_out = trained
    product = held_out.frame.iloc[0]
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(held_out.root / product["image"]))
    page.get_by_label("Title", exact=True).fill(product["title"])
    page.get_by_role("button", name="Categorize", exact=True).click()
    expect(page.get_by_text("Top category: ")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_text("Explain this prediction").click()
    expect(page.get_by_role("heading", name="Why ")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Grad-CAM (efficientnet-lite0)")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("span.w").first).to_be_visible()
    settle(page)
    screenshot(page, "explain")


def test_categorize_example_product(page):
    page.get_by_role("button", name="Wrist watch").click()
    expect(page.get_by_text("Top category: ")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("From the photo, the title and the description;")).to_be_visible()
    expect(page.get_by_label("Title", exact=True)).to_have_value("Analog wrist watch with leather strap")


def test_reviews_with_the_submit_button(page):
    open_page(page, "Reviews", "Read a review")
    page.get_by_label("Review text", exact=True).fill("Awful fabric, cheap, returned it")
    expect(page.get_by_text("Sentiment")).to_have_count(0)  # nothing happens until the button
    page.get_by_role("button", name="Read review").click()
    expect(page.get_by_text("Negative", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    stars = page.get_by_text("☆☆☆")
    expect(stars).to_be_visible()
    assert stars.inner_text().strip() in ("★☆☆☆☆", "★★☆☆☆")
    expect(page.get_by_test_id("stMetricDelta")).to_have_count(0)  # no up/down arrows
    settle(page)
    screenshot(page, "reviews")


def test_csv_with_column_mapping(page, trained, tmp_path):
    _, held_out = trained
    rows = held_out.frame.head(6)
    csv = tmp_path / "my-shop.csv"
    csv.write_text(
        rows.rename(columns={"id": "sku", "title": "product_name", "description": "about"})[["sku", "product_name", "about"]]
        .assign(about=lambda f: f["about"].str.slice(0, 300))
        .to_csv(index=False)
    )
    open_page(page, "CSV catalog", "Categorize a CSV catalog")
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(csv))
    for label, column in (("Product id", "sku"), ("Title", "product_name"), ("Description", "about")):
        page.get_by_test_id("stSelectbox").filter(has_text=label).click()
        page.get_by_role("option", name=column, exact=True).click()
    page.get_by_role("button", name="Categorize 6 products").click()
    expect(page.get_by_text("Categorized 6 of 6 products.")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("--columns id=sku,title=product_name,description=about")).to_be_visible()
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    # The grid draws on a canvas; its accessible table holds the columns on screen: these four come first.
    expect(grid.locator("[role=columnheader]").nth(3)).to_have_text("confidence", timeout=TIMEOUT_MS)
    headers = grid.locator("[role=columnheader]").all_text_contents()
    assert headers[:4] == ["id", "title", "predicted category", "confidence"], headers
    cells = [c.strip() for c in grid.locator("[role=gridcell]").all_text_contents()]
    assert str(rows.iloc[0]["id"]) in cells and str(rows.iloc[5]["id"]) in cells, cells
    expect(page.get_by_role("button", name="Download results (CSV)")).to_be_visible()
    settle(page)
    screenshot(page, "csv")


def test_report_found_without_typing_a_path(page):
    open_page(page, "Report", "Evaluation reports")
    expect(page.get_by_test_id("stSelectbox").filter(has_text="report")).to_be_visible()
    expect(page.get_by_role("heading", name="categorizer on")).to_be_visible()  # report.md's title
    expect(page.get_by_text("Accuracy", exact=True)).to_be_visible()
    expect(page.get_by_text("Per-class metrics")).to_have_count(0)  # report.md's table is the only one
    expect(page.locator("[data-testid=stMarkdown] table")).to_have_count(1)
    expect(page.get_by_test_id("stImage")).to_have_count(1)
    settle(page)
    screenshot(page, "report")


def test_audit_accept_and_reject(page, tmp_path):
    """The Review queue page opens an audit report; Accept writes a correction, Reject records the rejection."""
    import pandas as pd

    from skulens.catalog.corrections import read_corrections

    folder = tmp_path / "audit"
    folder.mkdir()
    findings = [
        {"rank": 1, "id": "a1", "kind": "label", "column": "0", "given": "Baby Care", "suggested": "Kitchen & Dining"},
        {"rank": 2, "id": "a2", "kind": "attribute", "column": "colour", "given": "Blue", "suggested": "Red"},
    ]
    frame = pd.DataFrame(findings).assign(score=[0.9, 0.8], photo_says="", text_says="", evidence="", title="", category="")
    frame.to_csv(folder / "findings.csv", index=False)
    (folder / "audit.json").write_text('{"source": ""}')
    open_page(page, "Review queue", "Catalog audit")
    page.get_by_label("Audit report folder", exact=True).fill(str(folder))
    page.get_by_label("Audit report folder", exact=True).press("Enter")
    expect(page.get_by_text("2 suggestion(s) to review")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Accept").first.click()
    expect(page.get_by_text("1 suggestion(s) to review")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Reject").first.click()
    expect(page.get_by_text("0 suggestion(s) to review")).to_be_visible(timeout=TIMEOUT_MS)
    accepted, rejected = read_corrections(folder / "corrections.csv"), read_corrections(folder / "rejected.csv")
    assert accepted[["id", "column", "old", "new"]].values.tolist() == [["a1", "0", "Baby Care", "Kitchen & Dining"]]
    assert rejected[["id", "column", "new"]].values.tolist() == [["a2", "colour", "Red"]]
    screenshot(page, "audit")


def test_example_description_is_cleared_for_the_users_own_product(page, trained):
    """Issue 23: the "Wrist watch" example's description stayed in the field and was used with the user's own photo."""
    _, held_out = trained
    product = held_out.frame.iloc[0]
    page.get_by_role("button", name="Wrist watch").click()
    expect(page.get_by_label("Description", exact=True)).to_have_value("Round stainless steel dial, water resistant, for men")
    photo = held_out.root / product["image"]
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(photo))
    expect(page.get_by_role("button", name=f"Remove {photo.name}")).to_be_visible(
        timeout=TIMEOUT_MS
    )  # the upload reached the app
    page.get_by_label("Title", exact=True).fill(product["title"])
    page.get_by_role("button", name="Categorize", exact=True).click()
    expect(page.get_by_text("The description of the “Wrist watch” example was cleared")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_label("Description", exact=True)).to_have_value("")
    expect(page.get_by_text("From the photo and the title;")).to_be_visible(timeout=TIMEOUT_MS)  # the description was not used


def test_low_confidence_answer_is_a_warning_not_a_success(page):
    """Issue 23: a 24% answer was shown in green as "Top category: ..."."""
    page.get_by_label("Title", exact=True).fill("qwzx vrrp")  # no word the model knows, no photo: no class stands out
    page.get_by_role("button", name="Categorize", exact=True).click()
    warning = page.get_by_test_id("stAlertContentWarning").filter(has_text="Low confidence — top category:")
    expect(warning).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stAlertContentSuccess")).to_have_count(0)


def test_review_queue_maps_a_shop_export(page, trained, tmp_path):
    """Issue 23: the Review queue page maps a shop export's own column names (id, title, photo, category)."""
    import pandas as pd

    _, held_out = trained
    rows = []
    for product in held_out.frame.itertuples(index=False):
        shutil.copyfile(held_out.root / product.image, tmp_path / Path(product.image).name)
        rows.append(
            {
                "sku": product.id,
                "name": product.title,
                "photo": Path(product.image).name,
                "dept_path": " > ".join(product.category),
            }
        )
    export = tmp_path / "export.csv"
    pd.DataFrame(rows).to_csv(export, index=False)
    open_page(page, "Review queue", "Catalog audit")
    source = page.get_by_label("Catalog (a dataset name such as flipkart, or a file path on this machine)", exact=True)
    source.fill(str(export))
    source.press("Enter")
    category = page.get_by_test_id("stSelectbox").filter(has_text="Current category")
    expect(category).to_be_visible(timeout=TIMEOUT_MS)
    settle(page)
    category.click()
    page.get_by_role("option", name="dept_path", exact=True).click()
    expect(page.get_by_text("category=dept_path")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_label("Rows (first N)", exact=True).fill("5")
    page.get_by_role("button", name="Score catalog").click()
    expect(page.get_by_text(f"Scored the first 5 of {len(rows)} products")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_text("Only products below the threshold").click()
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible(timeout=TIMEOUT_MS)
    settle(page)
    # The grid draws only the columns in view, so the mapped column is checked in the downloaded queue.
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download queue (CSV)").click()
    queue = pd.read_csv(download.value.path())
    assert len(queue) == 5
    assert set(queue["catalog category"]) <= {product.category[0] for product in held_out.frame.itertuples()}
    screenshot(page, "review-queue-mapping")
