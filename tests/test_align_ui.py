"""The UI's Search page (search box, photo gallery, "more like this", zero-shot with typed labels) under
Streamlit's AppTest, on a real tiny alignment model and its index."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_align import FAST, _shop

from skulens.heads.align import AlignConfig
from skulens.tasks.align import AlignmentModel

UI = Path(__file__).resolve().parents[1] / "src" / "skulens" / "ui" / "app.py"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("align-ui")
    shop = _shop(root, per_kind=8)
    config = AlignConfig(dim=32, epochs=40, patience=40, dropout=0.1, batch_size=32, lr=3e-3)
    model = AlignmentModel(**FAST, head_config=config, cache_dir=root / "cache").fit(shop)
    models = root / "models"
    model.save(models / "shapes-align")
    model.build_index(shop).save(models / "shapes-align" / "index")
    return models


def start(monkeypatch, models: Path, tmp_path: Path) -> AppTest:
    monkeypatch.setenv("SKULENS_MODELS", str(models))
    monkeypatch.setenv("SKULENS_REPORTS", str(tmp_path))
    at = AppTest.from_file(str(UI), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.sidebar.radio(key="page").set_value("Search").run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, label: str, index: int = 0) -> AppTest:
    [b for b in at.button if b.label == label][index].click().run()
    assert not at.exception, at.exception
    return at


def test_search_gallery_and_more_like_this(monkeypatch, models_dir, tmp_path):
    at = start(monkeypatch, models_dir, tmp_path)
    assert at.header[0].value == "Search and zero-shot"
    assert not [b for b in at.button if b.label == "More like this"]  # nothing searched yet
    at.text_input(key="search_text").input("yellow triangle sticker")
    click(at, "Search")
    assert at.subheader[0].value == "Results for “yellow triangle sticker”"
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(titles) == 10 and sum("yellow" in t or "triangle" in t for t in titles) >= 5
    assert len(at.image) == 10  # every hit shows its photo
    click(at, "More like this", index=2)
    assert at.subheader[0].value.startswith("More like p")
    assert len([b for b in at.button if b.label == "More like this"]) == 10


def test_search_filters_and_empty_query(monkeypatch, models_dir, tmp_path):
    at = start(monkeypatch, models_dir, tmp_path)
    at.selectbox(key="search_where_colour").set_value("red")
    at.text_input(key="search_text").input("circle")
    click(at, "Search")
    captions = [c.value for c in at.caption if c.value.startswith("id ")]
    assert captions and all("red" in m.value for m in at.markdown if m.value.startswith("**"))
    at.text_input(key="search_text").input("   ")
    click(at, "Search")
    assert at.error and "empty" in at.error[0].value


def test_zero_shot_with_typed_labels(monkeypatch, models_dir, tmp_path):
    at = start(monkeypatch, models_dir, tmp_path)
    at.text_area(key="zs_labels").input("red, green\nblue, yellow")
    at.text_input(key="zs_title").input("large blue square sticker")
    click(at, "Categorise")
    assert at.success[0].value.startswith("Most likely: **blue**")
    at.text_area(key="zs_labels").input("red")
    click(at, "Categorise")
    assert "at least two" in at.error[0].value


def test_model_without_index_says_how_to_build_one(monkeypatch, models_dir, tmp_path):
    import shutil

    bare = tmp_path / "models" / "shapes-align"
    shutil.copytree(models_dir / "shapes-align", bare, ignore=shutil.ignore_patterns("index"))
    at = start(monkeypatch, bare.parent, tmp_path)
    assert any("skulens search index" in i.value for i in at.info)
