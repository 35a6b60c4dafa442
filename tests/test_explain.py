"""Explanations on tiny real models: Grad-CAM finds the drawn object, TF-IDF words, modality conflicts, files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import DATASETS
from PIL import Image, ImageDraw
from serve_helpers import product_image, tiny_catalog

from skulens.catalog.schema import Catalog, CatalogError
from skulens.explain import ExplainError, explain_product
from skulens.explain.heads import log_odds
from skulens.explain.render import overlay, save_explanation, text_html
from skulens.tasks.categorize import CategoryPredictor

SIZE = 224
SHAPES = {"disc": (200, 40, 40), "box": (40, 70, 200), "wedge": (30, 150, 50)}


def object_image(kind: str, seed: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A plain light background with one coloured shape (about a tenth of the area) at a random place."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(225, 250, size=3)))
    side = int(rng.integers(64, 80))
    x, y = (int(v) for v in rng.integers(4, SIZE - side - 4, size=2))
    box = (x, y, x + side, y + side)
    draw = ImageDraw.Draw(image)
    if kind == "disc":
        draw.ellipse(box, fill=SHAPES[kind])
    elif kind == "box":
        draw.rectangle(box, fill=SHAPES[kind])
    else:
        draw.polygon([(x + side // 2, y), (x, y + side), (x + side, y + side)], fill=SHAPES[kind])
    return image, box


@pytest.fixture(scope="module")
def object_model(tmp_path_factory):
    """An image-only linear probe on EfficientNet-Lite0 features of drawn objects (three shapes/colours)."""
    folder = tmp_path_factory.mktemp("objects")
    rows = []
    for kind in SHAPES:
        for i in range(8):
            name = f"{kind}-{i}.png"
            object_image(kind, seed=100 + i)[0].save(folder / name)
            rows.append({"id": name, "title": "", "image": name, "category": (kind,)})
    catalog = Catalog(pd.DataFrame(rows), root=folder, name="objects")
    return CategoryPredictor(["efficientnet-lite0"], min_class_count=2, cache_dir=folder / "cache").fit(catalog)


@pytest.fixture(scope="module")
def fused_model(tmp_path_factory):
    """Photo + text (EfficientNet-Lite0 + TF-IDF) on the tiny shop catalog (Kitchen, Garden, Toys)."""
    folder = tmp_path_factory.mktemp("fused")
    return CategoryPredictor(["efficientnet-lite0", "tfidf"], min_class_count=2, cache_dir=folder / "cache").fit(
        tiny_catalog(folder / "data")
    )


@pytest.mark.parametrize("kind", list(SHAPES))
def test_gradcam_highlights_the_drawn_object(object_model, kind):
    image, (x0, y0, x1, y1) = object_image(kind, seed=7)
    explanation = explain_product(object_model, image=image)
    assert explanation.predicted == kind
    [image_map] = explanation.image_maps
    cam = image_map.cam
    assert cam.shape == (SIZE, SIZE) and cam.max() == pytest.approx(1.0)
    inside = np.zeros_like(cam, dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert cam[inside].mean() > 1.5 * cam[~inside].mean()
    # the share of the map on the object is larger than the object's share of the image
    assert cam[inside].sum() / cam.sum() > inside.mean()


def test_gradcam_path_reproduces_the_models_probability(fused_model):
    explanation = explain_product(fused_model, image=product_image("Garden", seed=3), title="garden hose")
    [image_map] = explanation.image_maps
    target = explanation.classes.index(explanation.target)
    # the differentiable copy (PyTorch) and the model (ONNX Runtime features) agree
    assert image_map.log_proba == pytest.approx(np.log(explanation.proba[target]), abs=1e-3)
    assert image_map.log_odds == pytest.approx(log_odds(explanation.proba, target)[0], rel=1e-2, abs=1e-3)
    assert not explanation.notes


def test_a_feature_map_that_does_not_match_the_encoder_is_reported(fused_model, monkeypatch):
    model = fused_model.extractor.encoder("efficientnet-lite0").model
    original = model.feature_map
    monkeypatch.setattr(model, "feature_map", lambda x: original(x) * 3.0)
    explanation = explain_product(fused_model, image=product_image("Garden", seed=3), title="garden hose")
    assert any("may not follow the model" in note for note in explanation.notes)


def test_gradcam_for_a_chosen_class_differs_from_the_predicted(object_model):
    image, _ = object_image("disc", seed=11)
    predicted = explain_product(object_model, image=image)
    other = explain_product(object_model, image=image, target="box")
    assert other.target == "box" and predicted.target == "disc"
    assert not np.allclose(predicted.image_maps[0].grid, other.image_maps[0].grid)
    with pytest.raises(ExplainError, match="not one of this model's classes"):
        explain_product(object_model, image=image, target="Sofa")


def test_tfidf_ranks_the_class_word_first(tmp_path):
    fillers = ["red", "large", "new", "classic", "daily", "soft", "light", "bright"]
    rows = []
    for label, word in (("Kitchen", "skillet"), ("Garden", "trowel"), ("Toys", "yoyo")):
        for i in range(10):
            rows.append({"id": f"{label}{i}", "title": f"{fillers[i % 8]} {word} {fillers[(i + 3) % 8]}", "category": (label,)})
    catalog = Catalog(pd.DataFrame(rows), root=None, name="words")
    model = CategoryPredictor(["tfidf"], min_class_count=2, cache_dir=tmp_path).fit(catalog)
    explanation = explain_product(model, title="bright classic trowel light")
    assert explanation.predicted == "Garden"
    assert explanation.text.ranked("tfidf")[0][0] == "trowel"
    assert explanation.text.ranked()[0][0] == "trowel"  # occlusion on the whole model agrees
    assert explanation.image_maps == [] and explanation.modality.image is None
    assert "text only" in explanation.modality.statement
    html = text_html(explanation.text)
    assert html.count("<span") == 4 and "trowel</span>" in html


def test_photo_given_to_a_text_only_model_is_said_not_used(tmp_path):
    model = CategoryPredictor(["tfidf"], min_class_count=2, cache_dir=tmp_path).fit(tiny_catalog(tmp_path / "data"))
    explanation = explain_product(model, image=product_image("Toys"), title="teddy bear")
    assert explanation.image is None and explanation.image_maps == []
    assert any("reads no images" in note for note in explanation.notes)
    with pytest.raises(CatalogError, match="nothing this model"):
        explain_product(model, image=product_image("Toys"))


def test_conflict_fires_on_disagreeing_photo_and_title(fused_model):
    clash = explain_product(fused_model, image=product_image("Kitchen", seed=5), title="teddy bear toy car")
    agree = explain_product(fused_model, image=product_image("Kitchen", seed=5), title="steel frying pan")
    assert clash.modality.conflict and not agree.modality.conflict
    assert clash.modality.image.top == "Kitchen" and clash.modality.text.top == "Toys"
    assert "disagree" in clash.modality.statement and "agree on Kitchen" in agree.modality.statement
    assert clash.modality.divergence > 0.5 > agree.modality.divergence
    # the photo pulled the clash's answer away from the text's class; the title pushed towards it
    target = clash.classes.index(clash.target)
    if clash.target == "Toys":
        assert clash.modality.image_shift < 0 < clash.modality.text_shift
    assert np.isfinite(log_odds(clash.proba, target)).all()


def test_weak_photo_support_gives_a_weak_map(fused_model):
    clash = explain_product(fused_model, image=product_image("Kitchen", seed=5), title="teddy bear toy car")
    agree = explain_product(fused_model, image=product_image("Kitchen", seed=5), title="steel frying pan")
    weak, strong = clash.image_maps[0], agree.image_maps[0]
    # each map is scaled by the photo's own probability of the explained class, not to its own peak
    assert weak.cam.max() == pytest.approx(clash.modality.image.target_probability, abs=1e-5)
    assert strong.cam.max() == pytest.approx(agree.modality.image.target_probability, abs=1e-5)
    if clash.target != "Kitchen":
        assert weak.cam.max() < 0.5 < strong.cam.max()


def test_swapped_title_with_honest_description_is_a_conflict(fused_model):
    photo = product_image("Kitchen", seed=5)
    swapped = explain_product(
        fused_model, image=photo, title="teddy bear toy car", description="a steel frying pan for the kitchen shelf"
    )
    honest = explain_product(
        fused_model, image=photo, title="steel frying pan", description="a steel frying pan for the kitchen shelf"
    )
    assert set(swapped.modality.fields) == {"title", "description"}
    assert swapped.modality.fields["title"].top == "Toys" and swapped.modality.fields["description"].top == "Kitchen"
    assert swapped.modality.conflict and swapped.modality.conflict_view == "title"
    assert "title alone says Toys" in swapped.modality.statement
    assert not honest.modality.conflict


def test_catalog_conflicts_flags_the_swapped_listing(fused_model, tmp_path):
    from skulens.explain.conflicts import catalog_conflicts

    catalog = tiny_catalog(tmp_path / "shop", per_class=4)
    row = int(np.flatnonzero(catalog.frame["id"] == "Kitchen-1")[0])
    catalog.frame.at[row, "title"] = "teddy bear toy car"
    found = catalog_conflicts(fused_model, catalog)
    assert list(found["id"]) == catalog.ids
    flagged = set(found.loc[found["conflict"], "id"])
    assert "Kitchen-1" in flagged and len(flagged) <= 2
    clash = found.set_index("id").loc["Kitchen-1"]
    assert clash["title_top"] == "Toys" and clash["conflict_view"] == "title"


def test_catalog_conflicts_without_any_view_flags_nothing(fused_model):
    """Products with neither a photo nor text give the model no view: no conflict, no view named, no score."""
    from skulens.explain.conflicts import catalog_conflicts

    catalog = Catalog(pd.DataFrame({"id": ["a", "b"], "title": [None, None], "image": [None, None]}), name="bare")
    found = catalog_conflicts(fused_model, catalog)
    assert list(found["id"]) == ["a", "b"]
    assert not found["conflict"].any() and found["conflict_view"].isna().all() and found["conflict_score"].isna().all()
    assert not any(column.endswith("_top") for column in found.columns)


def test_explanation_files(fused_model, tmp_path):
    explanation = explain_product(fused_model, image=product_image("Toys", seed=2), title="rubber duck", description="a toy")
    written = save_explanation(explanation, tmp_path / "out")
    names = {p.name for p in written}
    assert {"explanation.json", "explanation.html", "gradcam-efficientnet-lite0.png", "text.html", "text.png"} <= names
    summary = json.loads((tmp_path / "out" / "explanation.json").read_text())
    assert summary["predicted"] == "Toys" and len(summary["image_maps"][0]["grid"]) == 7
    assert [w["word"] for w in summary["text"]["words"]] == ["rubber", "duck", "a", "toy"]
    page = (tmp_path / "out" / "explanation.html").read_text()
    assert "Plotly.newPlot" in page and "cdn" not in page.lower().split("<script>")[0]
    with Image.open(tmp_path / "out" / "gradcam-efficientnet-lite0.png") as png:
        assert png.size == explanation.image.size
    blended = np.asarray(overlay(explanation.image, explanation.image_maps[0].cam), dtype=float)
    assert np.abs(blended - np.asarray(explanation.image, dtype=float)).mean() > 1.0


@pytest.mark.parametrize("head, fusion", [("mlp", "late"), ("linear", "early")])
def test_other_heads_and_fusions(tmp_path, head, fusion):
    model = CategoryPredictor(["efficientnet-lite0", "tfidf"], head=head, fusion=fusion, min_class_count=2, cache_dir=tmp_path)
    model.fit(tiny_catalog(tmp_path / "data"))
    explanation = explain_product(model, image=product_image("Toys", seed=9), title="teddy bear")
    target = explanation.classes.index(explanation.target)
    assert [w.text for w in explanation.text.words] == ["teddy", "bear"]
    if fusion == "late":  # the MLP heads have a differentiable copy too; TF-IDF + MLP is scored by occlusion
        [image_map] = explanation.image_maps
        assert image_map.log_proba == pytest.approx(np.log(explanation.proba[target]), abs=1e-3)
        assert "occlusion" in explanation.text.methods["tfidf"]
    else:
        assert explanation.image_maps == [] and any("early fusion" in n for n in explanation.notes)
        assert explanation.text.blocks == {}
    assert explanation.modality.image is not None and explanation.modality.text is not None


def test_any_encoder_exposing_the_feature_map_works(tmp_path):
    """Grad-CAM follows the encoder's torch model, not its name: here a renamed Lite0 with changed weights
    (as a fine-tuned encoder would be), run on PyTorch so its features come from those weights."""
    import torch

    from skulens.encoders import create_encoder

    encoder = create_encoder("efficientnet-lite0", backend="torch")
    encoder.name, encoder.version = "finetuned:demo", "changed-weights"
    with torch.no_grad():
        encoder.model._conv_head.weight.mul_(1.5)
    rows = []
    for kind in SHAPES:
        for i in range(6):
            name = f"{kind}-{i}.png"
            object_image(kind, seed=200 + i)[0].save(tmp_path / name)
            rows.append({"id": name, "title": "", "image": name, "category": (kind,)})
    model = CategoryPredictor(["efficientnet-lite0"], min_class_count=2, cache_dir=tmp_path / "cache")
    model.extractor._encoders["efficientnet-lite0"] = encoder
    model.fit(Catalog(pd.DataFrame(rows), root=tmp_path, name="objects"))
    image, (x0, y0, x1, y1) = object_image("box", seed=5)
    explanation = explain_product(model, image=image)
    [image_map] = explanation.image_maps
    assert image_map.encoder == "finetuned:demo" and not explanation.notes
    cam = image_map.cam
    inside = np.zeros_like(cam, dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert cam[inside].mean() > cam[~inside].mean()


@pytest.mark.skipif(not (DATASETS / "flipkart").is_dir(), reason="needs ../shared/datasets/flipkart")
def test_flipkart_watch_titled_baby_diaper_pack_is_a_conflict(tmp_path):
    from skulens.catalog import load_catalog

    catalog = load_catalog("flipkart")
    labels = catalog.labels(0).to_numpy()
    rows = {c: np.flatnonzero(labels == c) for c in sorted(set(labels))}
    train = catalog.subset([int(i) for r in rows.values() for i in r[:20]])
    model = CategoryPredictor(["efficientnet-lite0", "tfidf"], min_class_count=2, cache_dir=tmp_path).fit(train)
    watch = catalog.frame.iloc[int(rows["Watches"][30])]  # not a training row
    photo = catalog.root / watch["image"]
    clash = explain_product(model, image=photo, title="Baby diaper pack")
    assert clash.modality.image.top == "Watches" and clash.modality.text.top == "Baby Care"
    assert clash.modality.conflict and "disagree" in clash.modality.statement
    honest = explain_product(model, image=photo, title=watch["title"])
    assert honest.predicted == "Watches" and not honest.modality.conflict


@pytest.fixture(scope="module")
def minilm_model(tmp_path_factory):
    """A MiniLM + TF-IDF linear model on short titles of three classes (word scores by occlusion)."""
    rows = []
    for label, word in (("Kitchen", "skillet"), ("Garden", "trowel"), ("Toys", "yoyo")):
        for i in range(6):
            rows.append({"id": f"{label}{i}", "title": f"{word} number {i} for sale", "category": (label,)})
    catalog = Catalog(pd.DataFrame(rows), root=None, name="words")
    return CategoryPredictor(["minilm", "tfidf"], min_class_count=2, cache_dir=tmp_path_factory.mktemp("minilm")).fit(catalog)


def _counted(model, name, counting):
    """Wrap the model's encoder ``name`` in a counter of encode calls and texts (restored by the caller)."""
    original = model.extractor.encoder(name)
    model.extractor._encoders[name] = counting(original)
    return original, model.extractor._encoders[name]


def test_occlusion_of_a_short_text_is_unchanged(minilm_model, counting):
    """Encoding the occluded copies in small calls gives the scores one batch of every copy gives."""
    from skulens.explain.text_attribution import occluded_texts, occlusion_scores, words_of

    text = "a small trowel for the garden beds and pots"
    original, counter = _counted(minilm_model, "minilm", counting)
    try:
        explanation = explain_product(minilm_model, title=text)
    finally:
        minilm_model.extractor._encoders["minilm"] = original
    words = words_of(text)
    texts = [text, *occluded_texts(text, words)]
    batch = minilm_model.extractor.transform_inputs([None] * len(texts), texts)
    index = minilm_model.classes_.tolist().index(explanation.target)
    expected = occlusion_scores(log_odds(minilm_model.proba_from_features(batch), index), len(words))
    np.testing.assert_allclose([w.score for w in explanation.text.words], expected, atol=1e-5)
    assert counter.items == len(texts) + 1  # the copies, plus the full text once for the prediction


def test_occlusion_of_a_long_text_encodes_a_bounded_number_of_texts(minilm_model, counting):
    """Copies MiniLM reads exactly as the full text (the removed word lies past its 256-token cut) are
    encoded once, and every call holds at most VARIANTS_PER_CALL texts."""
    from skulens.explain.product import VARIANTS_PER_CALL
    from skulens.explain.text_attribution import MAX_OCCLUDED_WORDS

    text = " ".join(f"qz{i}xv{i}kw" for i in range(2_000))  # each word is several word pieces
    original, counter = _counted(minilm_model, "minilm", counting)
    calls = []
    encode = counter.encode
    counter.encode = lambda batch: (calls.append(len(batch)), encode(batch))[1]
    try:
        explanation = explain_product(minilm_model, title=text)
    finally:
        minilm_model.extractor._encoders["minilm"] = original
    read = len(minilm_model.extractor.encoder("minilm").token_ids([text])[0])
    assert read == minilm_model.extractor.encoder("minilm").max_seq_length
    fit = counter.items - 2  # less the prediction's encoding and the full text among the copies
    assert 0 < fit < MAX_OCCLUDED_WORDS // 2  # the words that fit in 256 tokens, not all 160
    assert max(calls[1:]) <= VARIANTS_PER_CALL  # calls[0]: the prediction's own encoding
    scores = explanation.text.blocks["minilm"]
    assert any(s != 0.0 for s in scores[:fit])
    assert all(s == 0.0 for s in scores[fit:])  # words past the cut cannot move MiniLM's block
