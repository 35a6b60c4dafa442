"""Exploration: the EDA page on a tiny built catalog, clustering scores on planted clusters, embedding maps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image

from skulens.catalog import build_catalog
from skulens.evaluation.clustering import score_clustering
from skulens.evaluation.embedding_space import reduce_vectors
from skulens.evaluation.explore import explore_catalog

COLOURS = {"Shoes": (200, 30, 30), "Bags": (30, 200, 30), "Watches": (30, 30, 200)}
WORDS = {"Shoes": "running shoe sole lace", "Bags": "leather bag strap zip", "Watches": "analog watch dial strap"}


@pytest.fixture
def tiny_catalog(tmp_path):
    """12 products in 3 classes with solid-colour images, one repeated title, one repeated image, one corrupt image."""
    rows = []
    for index in range(12):
        name = list(COLOURS)[index % 3]
        path = tmp_path / f"img{index}.png"
        Image.new("RGB", (60 + 10 * index, 40), COLOURS[name]).save(path)
        rows.append(
            {"id": f"p{index}", "title": f"{WORDS[name]} model {index}", "image": path.name, "category": f"Fashion >> {name}"}
        )
    rows[1]["title"] = rows[4]["title"].upper()  # same normalised title
    (tmp_path / "img7.png").write_bytes((tmp_path / "img10.png").read_bytes())  # same image bytes
    (tmp_path / "img11.png").write_bytes(b"not an image")
    rows.append({"id": "p12", "title": None, "image": None, "category": "Fashion >> Shoes"})
    return build_catalog(pd.DataFrame(rows), root=tmp_path, name="tiny")


def test_explore_report_has_every_section_and_the_numbers(tiny_catalog, tmp_path):
    page = explore_catalog(tiny_catalog, tmp_path / "out", examples_per_class=2)
    text = page.read_text()
    for section in ("overview", "missing", "classes", "text", "images", "duplicates", "examples"):
        assert f"id='{section}'" in text
    assert "Shoes" in text and "Watches" in text
    assert len(re.findall(r"<img src='data:image/jpeg;base64,", text)) == 6  # 2 per class
    assert not re.search(r"<script[^>]+src=", text) and "cdn" not in text.lower().split("<script>")[0]
    summary = json.loads((tmp_path / "out" / "explore.json").read_text())
    assert summary["rows"] == 13
    assert summary["missing"]["title"] == 1 and summary["missing"]["image"] == 1
    assert summary["duplicates"] == {"same_title_rows": 2, "same_image_rows": 2}
    assert summary["images"]["sampled"] == 12 and summary["images"]["read"] == 11 and summary["images"]["unreadable"] == 1
    level1 = summary["levels"][1]
    assert (
        level1["classes"] == 3
        and level1["largest"] == "Shoes (5)"
        and level1["imbalance (largest/smallest)"] == pytest.approx(5 / 4)
    )
    assert summary["text_words"]["title"]["rows"] == 12


def test_explore_samples_images_on_request(tiny_catalog, tmp_path):
    explore_catalog(tiny_catalog, tmp_path / "out", max_images=5)
    summary = json.loads((tmp_path / "out" / "explore.json").read_text())
    assert summary["images"]["sampled"] == 5


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 10) * 5
    points = np.vstack([centre + rng.normal(scale=0.3, size=(40, 10)) for centre in centres])
    return points, np.repeat(["a", "b", "c"], 40)


def test_clustering_recovers_planted_clusters():
    points, truth = _blobs()
    scores = score_clustering(reduce_vectors(points, dims=5), truth, min_cluster_size=10)
    assert scores["ari"] > 0.95 and scores["nmi"] > 0.95 and scores["silhouette"] > 0.5
    assert scores["hdbscan"]["ari"] > 0.8 and scores["hdbscan"]["clusters"] == 3
    assert scores["silhouette_true"] > 0.5 and scores["classes"] == 3 and scores["rows"] == 120


def test_clustering_scores_near_zero_for_random_labels():
    points, truth = _blobs()
    shuffled = np.random.default_rng(1).permutation(truth)
    scores = score_clustering(reduce_vectors(points, dims=5), shuffled, min_cluster_size=10)
    assert abs(scores["ari"]) < 0.1 and scores["nmi"] < 0.1
    assert scores["silhouette_true"] < 0.1  # the space does not separate random labels


def test_reduce_vectors_sparse_and_dense():
    rng = np.random.default_rng(0)
    dense = reduce_vectors(rng.normal(size=(30, 100)), dims=10)
    sparse = reduce_vectors(sp.random(30, 200, density=0.1, random_state=0, format="csr"), dims=10)
    for reduced in (dense, sparse):
        assert reduced.shape == (30, 10) and np.allclose(np.linalg.norm(reduced, axis=1), 1, atol=1e-5)
    assert reduce_vectors(rng.normal(size=(30, 4)), dims=10).shape == (30, 4)


def test_tsne_map_page_is_offline_with_hover_thumbnails(tiny_catalog, tmp_path):
    from skulens.evaluation.maps import write_maps

    logged: list[str] = []
    page = write_maps(tiny_catalog, ["tfidf"], tmp_path / "maps", label=1, methods=("tsne",), log=logged.append)
    text = page.read_text()
    assert "id='map-tfidf-tsne'" in text and "plotly_hover" in text and "colour by cluster" in text
    assert text.count("data:image/jpeg;base64,") == 11  # every readable image, once
    assert not re.search(r"<script[^>]+src=", text)
    assert logged == ["tfidf: tsne map of 12 rows"]


def test_unknown_map_method_is_refused():
    from skulens.evaluation.maps import project

    with pytest.raises(ValueError, match="unknown map method 'pca'"):
        project(np.zeros((5, 2)), "pca")


@pytest.mark.slow
def test_umap_projection(tmp_path):
    pytest.importorskip("umap")
    from skulens.evaluation.maps import project

    points, _ = _blobs()
    coords = project(reduce_vectors(points, dims=5), "umap")
    assert coords.shape == (120, 2) and np.isfinite(coords).all()


def test_html_pages_never_reference_a_cdn(tmp_path: Path):
    from skulens.evaluation.html_page import page

    text = page("t", "<p>x</p>", with_plotly=True)
    assert "Plotly" in text and not re.search(r"<script[^>]+src=", text)
