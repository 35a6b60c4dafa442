"""The Streamlit UI's pages, run headless with Streamlit's AppTest (no browser), on real tiny models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from serve_helpers import image_bytes, shared_models
from streamlit.testing.v1 import AppTest

from skulens.ui.reports import ReportPathError, find_reports, read_report, subfolder
from skulens.ui.reviews_page import star_view

UI = Path(__file__).resolve().parents[1] / "src" / "skulens" / "ui" / "app.py"
PER_CLASS = {
    "Garden": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 8},
    "Kitchen": {"precision": 0.9, "recall": 1.0, "f1": 0.947, "support": 9},
}


def write_reports(root: Path) -> Path:
    """A reports root laid out like ``make demo`` + a benchmark: ``demo/report`` (report.md with the
    per-class table, metrics.json, a PNG), ``bench`` (metrics.json only) and ``demo/models`` (no report)."""
    demo = root / "demo" / "report"
    demo.mkdir(parents=True)
    table = "| class | precision |\n|---|---|\n| Garden | 1.000 |\n| Kitchen | 0.900 |\n"
    (demo / "report.md").write_text(f"# tiny on tiny\n\naccuracy 0.950\n\n{table}\n![confusion matrix](confusion.png)\n")
    (demo / "metrics.json").write_text(json.dumps({"accuracy": 0.95, "macro_f1": 0.97, "n": 17, "per_class": PER_CLASS}))
    (demo / "confusion.png").write_bytes(image_bytes("Garden", fmt="PNG"))
    (root / "demo" / "models").mkdir()
    bench = root / "bench"
    bench.mkdir()
    (bench / "metrics.json").write_text(json.dumps({"fused": {"accuracy": 0.9, "per_class": PER_CLASS}}))
    os.utime(bench / "metrics.json", (1, 1))  # older: the demo report is listed first
    return root


def start(monkeypatch, models: Path, reports: Path) -> AppTest:
    monkeypatch.setenv("SKULENS_MODELS", str(models))
    monkeypatch.setenv("SKULENS_REPORTS", str(reports))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app(tmp_path_factory, monkeypatch, tmp_path):
    return start(monkeypatch, shared_models(tmp_path_factory), write_reports(tmp_path / "reports"))


def go(at: AppTest, page: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, at.exception
    return at


def submit(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, at.exception
    return at


def successes(at: AppTest) -> list[str]:
    return [s.value for s in at.success]


def image_captions(at: AppTest) -> list[str]:
    return [image.caption for element in at.image for image in element.proto.imgs]


# ----- categorize -------------------------------------------------------------------------------------


def test_categorize_waits_for_the_button(app):
    assert app.header[0].value == "Categorize a product"
    app.text_input(key="cat_title").input("frying pan").run()
    assert not successes(app)  # typing alone does not categorize
    app.text_input(key="cat_title").input("frying pan")
    submit(app, "Categorize")
    [message] = successes(app)
    assert message.startswith("Top category: Kitchen (") and message.endswith("%)")
    assert any(c.value.startswith("From the title;") for c in app.caption), [c.value for c in app.caption]


def test_categorize_photo_upload(app):
    app.file_uploader(key="cat_image").set_value(("toy.jpg", image_bytes("Toys", seed=404), "image/jpeg"))
    app.text_input(key="cat_title").input("teddy bear")
    submit(app, "Categorize")
    assert successes(app)[0].startswith("Top category: Toys")
    assert any(c.value.startswith("From the photo and the title;") for c in app.caption)
    assert image_captions(app) == ["toy.jpg"]


def test_model_picker_and_plain_words(app):
    picker = app.selectbox(key="categorize-model")
    assert picker.options == ["tiny-categorizer", "text-only"]  # the default (more encoders) first
    assert any("reads the photo and the title and description" in c.value for c in app.caption)
    assert not any("efficientnet" in c.value or "tfidf" in c.value for c in app.caption)  # names live in the expander
    assert app.expander[0].label == "Model details"
    picker.set_value("text-only").run()
    assert any("Model **text-only** reads the title and description." == c.value for c in app.caption)
    assert not app.file_uploader  # a text-only model asks for no photo
    app.text_input(key="cat_title").input("garden hose")
    submit(app, "Categorize")
    assert successes(app)[0].startswith("Top category: Garden")


def answers(at: AppTest) -> list[str]:
    """The top-category line, whether shown as a success or as a low-confidence warning."""
    return [m for m in [*successes(at), *(w.value for w in at.warning)] if "op category: " in m]


def test_example_product(app):
    submit(app, "Wrist watch")
    assert app.text_input(key="cat_title").value == "Analog wrist watch with leather strap"
    assert image_captions(app) == ["Example: Wrist watch"]
    assert len(answers(app)) == 1
    assert any(c.value.startswith("From the photo, the title and the description;") for c in app.caption)


def test_example_description_is_not_mixed_into_your_own_product(app):
    submit(app, "Wrist watch")
    assert app.text_area(key="cat_description").value  # the example filled it
    app.text_input(key="cat_title").input("garden hose")
    submit(app, "Categorize")
    assert app.text_area(key="cat_description").value == ""
    assert any("example was cleared" in i.value for i in app.info)
    assert any(c.value.startswith("From the title;") for c in app.caption), [c.value for c in app.caption]


def test_low_confidence_answer_is_a_warning_not_a_success(app):
    app.selectbox(key="categorize-model").set_value("text-only").run()
    app.text_input(key="cat_title").input("number 3")  # a word every class's titles share: no class stands out
    submit(app, "Categorize")
    assert not successes(app)
    [warning] = [w.value for w in app.warning if "top category" in w.value]
    assert warning.startswith("Low confidence — top category: ")
    app.text_input(key="cat_title").input("garden hose")
    submit(app, "Categorize")
    assert successes(app)[0].startswith("Top category: Garden")


# ----- reviews --------------------------------------------------------------------------------------------


def test_reviews_form_and_examples(app):
    go(app, "Reviews")
    app.text_area(key="review_text").input("awful fabric, cheap, returned it").run()
    assert not [m for m in app.markdown if "Sentiment" in m.value]  # nothing read before the button
    app.text_area(key="review_text").input("awful fabric, cheap, returned it")
    submit(app, "Read review")
    text = " ".join(m.value for m in app.markdown)
    assert ":red[Negative]" in text and (":red[★☆☆☆☆]" in text or ":red[★★☆☆☆]" in text), text
    assert not app.metric  # no metric deltas (arrows) on ratings or scores
    submit(app, "Happy customer")
    text = " ".join(m.value for m in app.markdown)
    assert ":green[Positive]" in text and (":green[★★★★☆]" in text or ":green[★★★★★]" in text), text
    assert "likely" in text


def test_reviews_page_without_model(tmp_path_factory, monkeypatch, tmp_path):
    at = start(monkeypatch, shared_models(tmp_path_factory) / "text-only", tmp_path)
    go(at, "Reviews")
    assert any("No reviews model" in i.value for i in at.info)


@pytest.mark.parametrize(
    "result, filled, note",
    [
        ({"stars": 2, "expected_rating": 2.26, "sentiment": "negative"}, 2, False),
        ({"stars": 5, "expected_rating": 4.6, "sentiment": "positive", "star_proba": {"4": 0.3, "5": 0.7}}, 5, False),
        ({"stars": 3, "expected_rating": 3.0, "sentiment": "neutral"}, 3, False),
        # a split review: 40% one star, 60% five stars -> expected 3.4, the model's stars 5, a note says it is mixed
        ({"stars": 5, "expected_rating": 3.4, "sentiment": "positive", "star_proba": {"1": 0.4, "5": 0.6}}, 5, True),
        ({"stars": 1, "expected_rating": 2.8, "sentiment": "negative", "star_proba": {"1": 0.55, "5": 0.45}}, 1, True),
    ],
)
def test_star_view_shows_the_models_stars(result, filled, note):
    view = star_view(result)
    assert view.filled == filled and len(view.stars) == 5 and view.stars.count("★") == filled
    assert (view.note is not None) == note
    assert view.colour == {"negative": "red", "neutral": "gray", "positive": "green"}[result["sentiment"]]
    if note:
        assert "mixed" in view.note.lower()


# ----- CSV ----------------------------------------------------------------------------------------------


def test_csv_upload_with_column_mapping(app):
    go(app, "CSV catalog")
    csv = "sku,product_name,about\nA1,frying pan,for the kitchen\nA2,,\nA3,teddy bear,a toy\n"
    app.file_uploader(key="csv").set_value(("shop.csv", csv.encode(), "text/csv")).run()
    # common names are detected (sku -> id, product_name -> title); an unusual one is mapped by the user
    assert app.selectbox(key="csv-id").value == "sku"
    assert app.selectbox(key="csv-title").value == "product_name"
    assert app.selectbox(key="csv-description").value == "(none)"
    app.selectbox(key="csv-description").set_value("about")
    submit(app, "Categorize 3 products")
    assert successes(app) == ["Categorized 2 of 3 products."]
    result = app.dataframe[0].value
    assert list(result.columns[:4]) == ["id", "title", "predicted category", "confidence"]
    assert result["id"].tolist() == ["A1", "A2", "A3"]
    assert result["predicted category"].tolist()[0] == "Kitchen" and result["predicted category"].tolist()[2] == "Toys"
    assert result["note"].tolist() == ["", "no title or description", ""]
    assert any("--columns id=sku,title=product_name,description=about" in c.value for c in app.caption)
    assert app.get("download_button")


def test_csv_mapping_errors(app):
    go(app, "CSV catalog")
    app.file_uploader(key="csv").set_value(("shop.csv", b"colour,weight\nred,2kg\n", "text/csv")).run()
    submit(app, "Categorize 1 products")
    assert any("title" in e.value for e in app.error)
    app.file_uploader(key="csv").set_value(("bad.csv", b"", "text/csv")).run()
    assert any("empty" in e.value for e in app.error)


# ----- reports ------------------------------------------------------------------------------------------


def test_report_page_finds_reports(app):
    go(app, "Report")
    picker = app.selectbox(key="report")
    assert [str(p).split("reports/")[-1] for p in picker.options] == ["demo/report", "bench"]
    assert any("tiny on tiny" in m.value for m in app.markdown)
    assert {m.label for m in app.metric} == {"Accuracy", "Macro-F1", "Products"}
    assert not [s for s in app.subheader if s.value == "Per-class metrics"]  # report.md already has the table
    assert image_captions(app) == ["confusion.png"]
    picker.set_value(picker.options[1]).run()
    assert [s.value for s in app.subheader] == ["Per-class metrics"]  # shown once, from metrics.json
    assert len(app.dataframe) == 1 and app.dataframe[0].value.index.tolist() == ["Garden", "Kitchen"]


def test_report_folder_box_stays_under_the_root(app, tmp_path):
    go(app, "Report")
    app.text_input(key="report-folder").input("../..").run()
    assert any("outside the reports folder" in e.value for e in app.error)
    app.text_input(key="report-folder").input("/etc").run()
    assert any("outside the reports folder" in e.value for e in app.error)
    app.text_input(key="report-folder").input("bench").run()
    assert not app.error and [str(p).split("reports/")[-1] for p in app.selectbox(key="report").options] == ["bench"]


def test_reports_symlinks_out_of_the_root_are_refused(tmp_path):
    root = write_reports(tmp_path / "reports")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "report.md").write_text("# secret\n")
    (outside / "secret.png").write_bytes(image_bytes("Toys", fmt="PNG"))
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "demo" / "report" / "leak.png").symlink_to(outside / "secret.png")
    assert all("elsewhere" not in str(p) for p in find_reports(root, root))  # links are not followed
    with pytest.raises(ReportPathError, match="outside"):
        subfolder(root, "linked")
    with pytest.raises(ReportPathError, match="outside"):
        read_report(root / "linked", root)
    report = read_report(root / "demo" / "report", root)
    assert [p.name for p in report.images] == ["confusion.png"]
    with pytest.raises(ReportPathError, match="not a folder"):
        subfolder(root, "missing")


def test_explain_panel_on_the_categorize_page(app):
    app.file_uploader(key="cat_image").set_value(("pan.jpg", image_bytes("Kitchen", seed=404), "image/jpeg"))
    app.text_input(key="cat_title").input("teddy bear toy car")
    submit(app, "Categorize")
    assert not app.subheader  # nothing explained until asked
    app.toggle(key="cat_explain").set_value(True).run()
    assert not app.exception, app.exception
    assert app.subheader[0].value.startswith("Why ")
    assert any("disagree" in e.value for e in app.error), [e.value for e in app.error]
    assert any(c.startswith("Grad-CAM (efficientnet-lite0)") for c in image_captions(app))
    assert any("<span class='w'" in m.value for m in app.markdown)
    picker = app.selectbox(key="categorize-model")
    picker.set_value("text-only").run()
    submit(app, "Categorize")
    assert any("reads text only" in i.value for i in app.info)
