"""2-D embedding maps (t-SNE, UMAP) per encoder as one offline, interactive Plotly page (``maps.html``).

Each encoder's L2-normalised embeddings are reduced to 50 principal directions, then projected to
2-D. Points are coloured by category, or by KMeans cluster with the menu; hovering a point shows its
title, and its thumbnail in the preview box (the thumbnails are inline base64, plotly.js is inline).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skulens.catalog.schema import Catalog
from skulens.evaluation.clustering import kmeans_labels
from skulens.evaluation.embedding_space import catalog_vectors, reduce_vectors
from skulens.evaluation.explore import image_stats
from skulens.evaluation.html_page import figure_div, page
from skulens.extras import require_extra

METHODS = ("tsne", "umap")

HOVER_SCRIPT = """
const THUMBS = %s;
window.addEventListener('load', () => {
  const box = document.getElementById('preview');
  document.querySelectorAll('.js-plotly-plot').forEach((plot) => {
    plot.on('plotly_hover', (event) => {
      const point = event.points[0];
      const src = THUMBS[String(point.customdata)];
      box.replaceChildren();
      if (src) { const img = document.createElement('img'); img.src = src; box.appendChild(img); }
      const caption = document.createElement('div'); caption.textContent = point.text; box.appendChild(caption);
      box.style.display = 'block';
    });
  });
});
"""
PREVIEW = (
    "<div id='preview' style='display:none;position:fixed;top:1em;right:1em;width:140px;background:#fff;"
    "border:1px solid #ccc;padding:6px;font-size:.8em;z-index:10'></div>"
)


def project(points: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates of ``points`` by t-SNE (scikit-learn) or UMAP (umap-learn)."""
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    if method == "umap":
        require_extra("explore", "umap", feature="UMAP maps")
        import umap

        neighbours = int(min(15, len(points) - 1))
        return umap.UMAP(n_neighbors=neighbours, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(points)
    raise ValueError(f"unknown map method '{method}'; use one of {', '.join(METHODS)}")


def map_figure(
    coords: np.ndarray, rows: np.ndarray, titles: Sequence[str], categories: Sequence[str], clusters: np.ndarray, title: str
) -> Any:
    """A scatter of ``coords`` with one trace per category and one per cluster, switched by a menu."""
    import plotly.graph_objects as go

    categories = np.asarray([str(c) for c in categories])
    titles = np.asarray([str(t) for t in titles])
    figure = go.Figure()
    groups = [("category", name, categories == name) for name in sorted(set(categories.tolist()))]
    groups += [("cluster", f"cluster {c}", clusters == c) for c in sorted(set(clusters.tolist()))]
    for kind, name, mask in groups:
        figure.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=name[:40],
                text=titles[mask],
                customdata=rows[mask],
                hovertemplate="%{text}<extra>" + html.escape(name[:40]) + "</extra>",
                marker={"size": 6, "opacity": 0.8},
                visible=kind == "category",
            )
        )
    by_category = [kind == "category" for kind, _, _ in groups]
    buttons = [
        {"label": "colour by category", "method": "update", "args": [{"visible": by_category}]},
        {"label": "colour by cluster", "method": "update", "args": [{"visible": [not v for v in by_category]}]},
    ]
    return figure.update_layout(
        title=title,
        height=600,
        updatemenus=[{"type": "buttons", "buttons": buttons, "direction": "right", "x": 0, "y": 1.12, "xanchor": "left"}],
    )


def write_maps(
    catalog: Catalog,
    encoders: Sequence[str],
    out: str | Path,
    label: int | str = 0,
    methods: Sequence[str] = METHODS,
    max_rows: int = 2000,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Write ``maps.html`` into ``out`` with a t-SNE and/or UMAP map per encoder; returns its path."""
    require_extra("explore", "plotly", feature="embedding maps")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = catalog.labels(label) if catalog.depth or isinstance(label, str) else None
    if len(catalog) > max_rows:
        catalog = catalog.subset(np.sort(np.random.default_rng(seed).choice(len(catalog), size=max_rows, replace=False)))
        labels = catalog.labels(label) if labels is not None else None
    categories = labels.fillna("(none)").astype(str).to_numpy() if labels is not None else np.full(len(catalog), "(none)")
    titles = (
        catalog.frame["title"].fillna("").astype(str).to_numpy() if "title" in catalog.frame.columns else np.asarray(catalog.ids)
    )
    thumbnails = image_stats(catalog, max_images=len(catalog), seed=seed, thumb_size=96).thumbnails
    n_clusters = max(2, len(set(categories.tolist())))
    divs = []
    for name in encoders:
        space = catalog_vectors(catalog, name, cache_dir=cache_dir)
        if len(space.rows) < 5:
            log(f"{name}: only {len(space.rows)} rows could be embedded; no map")
            continue
        points = reduce_vectors(space.vectors, 50, seed)
        clusters = kmeans_labels(points, min(n_clusters, len(points) - 1), seed)
        for method in methods:
            log(f"{name}: {method} map of {len(points)} rows")
            coords = project(points, method, seed)
            figure = map_figure(
                coords, space.rows, titles[space.rows], categories[space.rows], clusters, f"{name} — {method.upper()}"
            )
            divs.append(f"<section id='map-{html.escape(name)}-{method}'>{figure_div(figure)}</section>")
    body = (
        f"<p>{len(catalog)} rows of {html.escape(catalog.name)}; colour by category (label {html.escape(str(label))}) or by KMeans "
        "cluster (k = number of categories) with the buttons; hover a point for its title and thumbnail.</p>"
        + PREVIEW
        + "".join(divs)
    )
    path = out / "maps.html"
    script = HOVER_SCRIPT % json.dumps({str(k): v for k, v in thumbnails.items()})
    path.write_text(page(f"Embedding maps: {catalog.name}", body, with_plotly=True, script=script))
    return path
