"""Exploratory data analysis of a catalog as one self-contained HTML page (``explore.html`` + ``explore.json``).

Sections: overview, missing values, classes per category level and their balance, text lengths,
image sizes / aspect ratios / colour statistics, duplicate rows (same normalised title, same image
bytes) and example images per class as inline thumbnails. Images are sampled (``max_images``) on
large catalogs; unreadable images are counted, never fatal.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from skulens.catalog.images import ImageLoadError, decode_image, read_image_bytes
from skulens.catalog.schema import Catalog
from skulens.evaluation.html_page import figure_div, page, table, thumbnail_uri
from skulens.extras import require_extra

TEXT_COLUMNS = ("title", "description", "review_text")


@dataclass
class ImageStats:
    """Per-image numbers for the sampled rows that have an image, and the thumbnails kept for examples."""

    frame: pd.DataFrame
    sampled: int
    unreadable: list[str] = field(default_factory=list)
    thumbnails: dict[int, str] = field(default_factory=dict)


def normalise_title(value: object) -> str:
    """Lower-case, whitespace-collapsed text; empty for missing values (the key for same-title duplicates)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else " ".join(str(value).lower().split())


def class_balance(catalog: Catalog) -> list[dict[str, Any]]:
    """For each category level: labelled rows, classes, largest/smallest class, imbalance ratio, normalised entropy."""
    rows = []
    for level in range(catalog.depth):
        counts = catalog.labels(level).value_counts()
        shares = counts / counts.sum()
        entropy = float(-(shares * np.log(shares)).sum() / np.log(len(counts))) if len(counts) > 1 else 1.0
        rows.append(
            {
                "level": level,
                "labelled rows": int(counts.sum()),
                "classes": int(len(counts)),
                "largest": f"{counts.index[0]} ({counts.iloc[0]})",
                "smallest": f"{counts.index[-1]} ({counts.iloc[-1]})",
                "imbalance (largest/smallest)": float(counts.iloc[0] / counts.iloc[-1]),
                "balance (normalised entropy)": entropy,
                "classes with < 5 rows": int((counts < 5).sum()),
            }
        )
    return rows


def text_lengths(catalog: Catalog) -> dict[str, pd.Series]:
    """Word counts of each text column's non-empty values."""
    lengths = {}
    for column in TEXT_COLUMNS:
        if catalog.has(column):
            values = catalog.frame[column].dropna().astype(str).str.strip()
            lengths[column] = values[values != ""].str.split().map(len)
    return lengths


def image_stats(catalog: Catalog, max_images: int = 2000, seed: int = 0, thumb_size: int = 96) -> ImageStats:
    """Size, aspect ratio, file size, mean colour, brightness, saturation and a content hash per sampled image."""
    if not catalog.has("image"):
        return ImageStats(pd.DataFrame(), 0)
    rows = np.flatnonzero(catalog.frame["image"].notna().to_numpy())
    if len(rows) > max_images:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_images, replace=False))
    records, unreadable, thumbnails = [], [], {}
    for row in rows:
        path = catalog.frame.at[row, "image"]
        try:
            data = read_image_bytes(path, catalog.root)
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
            small = decode_image(data, name=str(path), draft_size=thumb_size)
        except (ImageLoadError, OSError) as exc:
            unreadable.append(f"row {row}: {exc}")
            continue
        pixels = np.asarray(small.resize((48, 48)), dtype=np.float32) / 255.0
        hsv = np.asarray(small.resize((48, 48)).convert("HSV"), dtype=np.float32) / 255.0
        thumbnails[int(row)] = thumbnail_uri(small, thumb_size)
        records.append(
            {
                "row": int(row),
                "width": width,
                "height": height,
                "aspect": width / height,
                "kilobytes": len(data) / 1024,
                "red": float(pixels[..., 0].mean()),
                "green": float(pixels[..., 1].mean()),
                "blue": float(pixels[..., 2].mean()),
                "brightness": float(pixels.mean()),
                "saturation": float(hsv[..., 1].mean()),
                "sha1": hashlib.sha1(data).hexdigest(),
            }
        )
    return ImageStats(pd.DataFrame(records), len(rows), unreadable, thumbnails)


def duplicate_groups(catalog: Catalog, images: ImageStats, limit: int = 20) -> dict[str, Any]:
    """Rows sharing a normalised title and rows sharing identical image bytes (among sampled images)."""
    result: dict[str, Any] = {"same_title_rows": 0, "same_image_rows": 0, "title_groups": [], "image_groups": []}
    if catalog.has("title"):
        titles = catalog.frame["title"].map(normalise_title)
        titled = titles[titles != ""]
        repeated = titled[titled.duplicated(keep=False)]
        result["same_title_rows"] = int(len(repeated))
        for title, group in list(repeated.groupby(repeated, sort=False))[:limit]:
            result["title_groups"].append(
                {"title": title[:80], "rows": len(group), "ids": ", ".join(catalog.frame.loc[group.index, "id"][:6])}
            )
    if not images.frame.empty:
        hashes = images.frame.set_index("row")["sha1"]
        repeated = hashes[hashes.duplicated(keep=False)]
        result["same_image_rows"] = int(len(repeated))
        for digest, group in list(repeated.groupby(repeated, sort=False))[:limit]:
            result["image_groups"].append(
                {"sha1": digest[:12], "rows": len(group), "ids": ", ".join(catalog.frame.loc[group.index, "id"][:6])}
            )
    return result


def _bar(counts: pd.Series, title: str) -> Any:
    import plotly.graph_objects as go

    shown = counts.head(40)
    figure = go.Figure(go.Bar(x=[str(i)[:40] for i in shown.index], y=shown.values))
    return figure.update_layout(title=title, height=380, margin={"t": 40, "b": 120}, xaxis_tickangle=-45)


def _histogram(values: pd.Series | np.ndarray, title: str, x: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure(go.Histogram(x=np.asarray(values), nbinsx=50))
    return figure.update_layout(title=title, height=300, margin={"t": 40}, xaxis_title=x, yaxis_title="rows")


def _examples(catalog: Catalog, images: ImageStats, level: int, per_class: int, max_classes: int = 60) -> str:
    if not images.thumbnails or catalog.depth <= level:
        return "<p class='note'>no images or no categories</p>"
    labels = catalog.labels(level)
    blocks = []
    for name in labels.value_counts().index[:max_classes]:
        rows = [r for r in np.flatnonzero((labels == name).to_numpy()) if int(r) in images.thumbnails][:per_class]
        figures = "".join(
            f"<figure><img src='{images.thumbnails[int(r)]}' alt='{_attr(catalog, r)}'><figcaption>{_attr(catalog, r)}</figcaption></figure>"
            for r in rows
        )
        blocks.append(
            f"<h3>{_escape(name)}</h3><div class='thumbs'>{figures or '<span class=note>no sampled image</span>'}</div>"
        )
    return "".join(blocks)


def _escape(value: Any) -> str:
    import html

    return html.escape(str(value), quote=True)


def _attr(catalog: Catalog, row: int) -> str:
    title = catalog.frame.at[row, "title"] if "title" in catalog.frame.columns else catalog.frame.at[row, "id"]
    return _escape(str(title)[:60])


def explore_catalog(
    catalog: Catalog,
    out: str | Path,
    max_images: int = 2000,
    examples_per_class: int = 6,
    example_level: int | None = None,
    seed: int = 0,
    maps_page: str | None = None,
) -> Path:
    """Write ``explore.html`` and ``explore.json`` for ``catalog`` into ``out``; returns the HTML path.

    Example images are shown per class of ``example_level`` (default: the coarsest level with two or more classes).
    """
    require_extra("explore", "plotly", feature="the exploration report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = catalog.frame
    missing = [
        {"column": c, "missing": int(frame[c].isna().sum()), "share": float(frame[c].isna().mean())}
        for c in frame.columns
        if c != "id"
    ]
    balance = class_balance(catalog)
    if example_level is None:
        example_level = next((b["level"] for b in balance if b["classes"] > 1), 0)
    lengths = text_lengths(catalog)
    images = image_stats(catalog, max_images, seed)
    duplicates = duplicate_groups(catalog, images)
    summary: dict[str, Any] = {
        "catalog": catalog.name,
        "rows": len(catalog),
        "columns": list(frame.columns),
        "duplicate_ids": int(frame["id"].duplicated().sum()),
        "ingest_issues": len(catalog.issues),
        "missing": {m["column"]: m["missing"] for m in missing},
        "levels": balance,
        "text_words": {
            c: {"rows": int(len(v)), "mean": float(v.mean()), "median": float(v.median()), "p95": float(v.quantile(0.95))}
            for c, v in lengths.items()
            if len(v)
        },
        "images": {"sampled": images.sampled, "read": int(len(images.frame)), "unreadable": len(images.unreadable)},
        "duplicates": {"same_title_rows": duplicates["same_title_rows"], "same_image_rows": duplicates["same_image_rows"]},
    }
    if not images.frame.empty:
        summary["images"].update(
            {k: float(images.frame[k].median()) for k in ("width", "height", "aspect", "brightness", "saturation")}
        )
    sections = [
        "<section id='overview'><h2>Overview</h2>"
        + table(
            [
                {
                    "rows": len(catalog),
                    "columns": ", ".join(frame.columns),
                    "duplicate ids": summary["duplicate_ids"],
                    "rows with ingest issues": len(catalog.issues),
                }
            ]
        )
        + (f"<p><a href='{_escape(maps_page)}'>Embedding maps (t-SNE / UMAP)</a></p>" if maps_page else "")
        + "</section>",
        "<section id='missing'><h2>Missing values</h2>" + table(missing) + "</section>",
    ]
    class_html = table(balance, table_id="balance")
    for level in range(catalog.depth):
        class_html += figure_div(_bar(catalog.labels(level).value_counts(), f"level {level}: rows per class (largest 40)"))
    sections.append("<section id='classes'><h2>Classes per level</h2>" + class_html + "</section>")
    text_html = table([{"column": c, **summary["text_words"][c]} for c in summary["text_words"]])
    for column, values in lengths.items():
        if len(values):
            text_html += figure_div(_histogram(values.clip(upper=values.quantile(0.99)), f"{column}: words per row", "words"))
    sections.append("<section id='text'><h2>Text lengths</h2>" + text_html + "</section>")
    image_html = f"<p>{len(images.frame)} of {images.sampled} sampled images read; {len(images.unreadable)} unreadable.</p>"
    if not images.frame.empty:
        described = images.frame.drop(columns=["row", "sha1"]).describe(percentiles=[0.05, 0.5, 0.95]).T
        image_html += table([{"measure": k, **{c: float(v) for c, v in row.items()}} for k, row in described.iterrows()])
        image_html += figure_div(_histogram(images.frame["aspect"], "aspect ratio (width / height)", "aspect"))
        image_html += figure_div(_histogram(images.frame["brightness"], "mean brightness (0-1)", "brightness"))
        image_html += figure_div(_histogram(images.frame["saturation"], "mean saturation (0-1)", "saturation"))
    if images.unreadable:
        image_html += "<ul>" + "".join(f"<li>{_escape(u)}</li>" for u in images.unreadable[:20]) + "</ul>"
    sections.append("<section id='images'><h2>Images</h2>" + image_html + "</section>")
    sections.append(
        "<section id='duplicates'><h2>Duplicates</h2>"
        f"<p>{duplicates['same_title_rows']} rows share a normalised title; {duplicates['same_image_rows']} sampled rows share identical image bytes.</p>"
        "<h3>Same title</h3>"
        + table(duplicates["title_groups"])
        + "<h3>Same image bytes</h3>"
        + table(duplicates["image_groups"])
        + "</section>"
    )
    sections.append(
        f"<section id='examples'><h2>Example images per class (level {example_level})</h2>{_examples(catalog, images, example_level, examples_per_class)}</section>"
    )
    path = out / "explore.html"
    path.write_text(page(f"Catalog exploration: {catalog.name}", "".join(sections), with_plotly=True))
    (out / "explore.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path


def catalog_thumbnails(catalog: Catalog, size: int = 64) -> list[str | None]:
    """A ``data:`` URI thumbnail per row (None where a row has no readable image)."""
    out: list[str | None] = [None] * len(catalog)
    if "image" not in catalog.frame.columns:
        return out
    for row, path in enumerate(catalog.frame["image"]):
        if not isinstance(path, str) or not path:
            continue
        try:
            out[row] = thumbnail_uri(decode_image(read_image_bytes(path, catalog.root), name=path, draft_size=size), size)
        except (ImageLoadError, OSError):
            continue
    return out
