"""The Streamlit UI's pages, run headless with Streamlit's AppTest (no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit")
from serve_helpers import shared_models  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

UI = Path(__file__).resolve().parents[1] / "src" / "skulens" / "ui" / "app.py"


@pytest.fixture
def app(tmp_path_factory, monkeypatch, tmp_path):
    report = tmp_path / "reports" / "tiny-eval"
    report.mkdir(parents=True)
    (report / "report.md").write_text("# tiny on tiny\n\naccuracy 1.000\n\n![confusion matrix](confusion.png)\n")
    metrics = {
        "accuracy": 1.0,
        "macro_f1": 1.0,
        "n": 24,
        "per_class": {"Garden": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 8}},
    }
    (report / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setenv("SKULENS_MODELS", str(shared_models(tmp_path_factory)))
    monkeypatch.setenv("SKULENS_REPORTS", str(tmp_path / "reports"))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_categorize_page_from_text(app):
    assert app.header[0].value == "Categorize a product"
    app.text_input(key="title").input("frying pan").run()
    assert not app.exception
    assert any(s.value.startswith("Top category: Kitchen") for s in app.success), [s.value for s in app.success]


def test_reviews_page_without_model(app):
    app.sidebar.radio[0].set_value("Reviews").run()
    assert any("No reviews model" in i.value for i in app.info)


def test_report_page(app):
    app.sidebar.radio[0].set_value("Report").run()
    assert not app.exception
    assert any("tiny on tiny" in m.value for m in app.markdown)
    assert any(m.label == "accuracy" for m in app.metric)


def test_csv_rows_are_categorized(tmp_path_factory):
    import skulens.ui.app as ui
    from skulens.runtime.models import load_models

    class Progress:
        value = 0.0

        def progress(self, value, text=""):
            self.value = value

    models = load_models(shared_models(tmp_path_factory) / "text-only", warm_up=False)
    frame = pd.DataFrame({"id": [1, 2, 3], "title": ["frying pan", None, "teddy bear"], "description": ["", None, "toy"]})
    progress = Progress()
    out = ui.categorize_frame(models["text-only"], frame, progress)
    assert out["category"].tolist() == ["Kitchen", None, "Toys"]
    assert out["error"].tolist()[1] == "no title or description" and progress.value == 1.0
