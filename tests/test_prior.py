"""The training-free ImageNet-vocabulary prior (issue #21): vocabulary, classifier, tags, placement, zero-shot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skulens.catalog import Catalog
from skulens.encoders.imagenet_prior import class_probabilities, imagenet_classes
from skulens.tasks.prior import VisionLanguagePrior


@pytest.fixture(scope="module")
def prior():
    return VisionLanguagePrior()


def test_vocabulary_is_the_classifier_order():
    classes = imagenet_classes()
    assert len(classes) == 1000 and classes["synset"].is_unique
    assert classes.loc[285, "name"] == "Egyptian cat" and classes.loc[967, "name"] == "espresso"
    assert classes.loc[770, "name"] == "running shoe" and classes["definition"].str.len().min() > 0


def test_class_probabilities_from_pooled_features(lite0):
    from skimage import data

    features = lite0.encode([Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())])
    probs = class_probabilities(features)
    assert probs.shape == (2, 1000) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert probs.argmax(axis=1).tolist() == [285, 967]


def test_tags_flag_photos_with_no_confident_class(prior, lite0):
    from skimage import data

    grey = Image.new("RGB", (224, 224), (128, 128, 128))
    features = lite0.encode([Image.fromarray(data.coffee()), grey])
    cup, flat = prior.tags(features)
    assert cup.confident and cup.tags[0] == "espresso" and cup.text().startswith("looks like: espresso")
    assert not flat.confident and flat.tags == [] and "no confident ImageNet class" in flat.text()


def test_placement_says_which_labels_the_vocabulary_cannot_place(prior):
    placed = {label: ok for label, _, _, ok in prior.placement(["running shoe", "wrist watch", "tax invoice", "qwzx"])}
    assert placed == {"running shoe": True, "wrist watch": True, "tax invoice": False, "qwzx": False}


def test_zero_shot_from_photos_without_training(prior, tmp_path):
    from skimage import data

    (tmp_path / "images").mkdir()
    Image.fromarray(data.coffee()).save(tmp_path / "images" / "cup.jpg")
    Image.fromarray(data.chelsea()).save(tmp_path / "images" / "cat.jpg")
    catalog = Catalog(
        pd.DataFrame({"id": ["a", "b"], "title": ["morning coffee", "house cat"], "image": ["images/cup.jpg", "images/cat.jpg"]}),
        root=tmp_path,
    )
    labels = ["coffee cup", "cat", "car"]
    for use in ("image", "text", "both"):
        probs = prior.zero_shot_probabilities(catalog, labels, use=use)
        assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert probs.argmax(axis=1).tolist() == [0, 1], use
    with pytest.raises(ValueError, match="use must be"):
        prior.zero_shot_probabilities(catalog, labels, use="audio")
