"""End-to-end: start ``skulens ui`` on localhost, drive it in headless Chromium, upload an image.

Skips cleanly without Streamlit, Playwright for Python or a Chromium binary (Debian: ``apt-get install
chromium``; Playwright is pointed at it because browser downloads are not possible here). Set
``SKULENS_UI_MODELS=<demo models>`` to also categorize a real Flipkart product, and
``SKULENS_UPDATE_SCREENSHOT=1`` with it to refresh ``docs/ui.png``.
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
from serve_helpers import image_bytes, shared_models

pytest.importorskip("streamlit")
pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]


def chromium_path() -> str | None:
    env = os.environ.get("SKULENS_CHROMIUM")
    for candidate in ([env] if env else []) + list(CHROMIUM_CANDIDATES) + [shutil.which("chromium") or ""]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_ui(models: Path, log: Path):
    """``skulens ui --models MODELS`` on a free localhost port; yields its URL."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "skulens.cli.serve", "ui", "--models", str(models), "--port", str(port)]
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


def screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("SKULENS_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        return REPO / "docs" / "ui.png"
    return tmp_path / "ui.png"


def categorize_in_browser(url: str, image: Path, expected: str, screenshot: Path, title: str | None = None) -> None:
    """Open the UI, upload ``image`` (and type ``title``), see ``expected`` as the top category."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            expect(page.get_by_text("Categorize a product")).to_be_visible(timeout=90_000)
            upload = page.locator("input[type=file]").first
            upload.wait_for(state="attached", timeout=90_000)  # after the models are loaded
            upload.set_input_files(str(image), timeout=60_000)
            expect(page.get_by_text(f"Top category: {expected}")).to_be_visible(timeout=90_000)
            if title:
                page.get_by_label("Title").fill(title)
                page.get_by_label("Title").press("Enter")
                expect(page.get_by_text("From image + text")).to_be_visible(timeout=60_000)
                expect(page.get_by_text(f"Top category: {expected}")).to_be_visible(timeout=60_000)
            expect(page.locator("[data-testid=stStatusWidget]")).to_have_count(0, timeout=60_000)
            page.wait_for_timeout(1000)  # let the bar chart finish drawing
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def test_upload_image_shows_top_category(tmp_path, tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    image = tmp_path / "garden-product.jpg"
    image.write_bytes(image_bytes("Garden", seed=202))
    with running_ui(shared_models(tmp_path_factory), tmp_path / "streamlit.log") as url:
        categorize_in_browser(url, image, "Garden", tmp_path / "ui.png", title="flower pot for the garden")


def test_flipkart_image_with_demo_models(tmp_path):
    """With ``SKULENS_UI_MODELS`` (e.g. the ``make demo`` models) and the Flipkart data: a real product."""
    models = os.environ.get("SKULENS_UI_MODELS")
    if not models:
        pytest.skip("set SKULENS_UI_MODELS to a models folder trained on Flipkart (e.g. the demo models)")
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from skulens.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog("flipkart")
    except CatalogError as exc:
        pytest.skip(str(exc))
    row = catalog.frame.iloc[int(os.environ.get("SKULENS_UI_ROW", "0"))]
    image = catalog.root / row["image"]
    with running_ui(Path(models), tmp_path / "streamlit.log") as url:
        categorize_in_browser(url, image, row["category"][0], screenshot_path(tmp_path), title=row["title"])
