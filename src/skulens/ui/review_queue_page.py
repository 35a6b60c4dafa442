"""Catalog audit and review queue: a ``skulens audit`` report's suggestions to accept or reject
(:mod:`skulens.ui.audit_page`), then every product with its thumbnail, predicted category and confidence, least sure first.

A human checks the products the model is least confident about: the page filters them by a
confidence threshold, charts the predicted category distribution and exports the queue as CSV.
The catalog is read on the server (a built-in dataset name or a file path), so its images can be shown;
a file's columns are mapped to id / title / image / category as on the CSV page and the command line
(``--columns``), and the page says how many of its rows were scored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from skulens.catalog import ADAPTERS, Catalog, CatalogError, load_catalog
from skulens.catalog.readers import read_table, resolve_columns
from skulens.evaluation.explore import catalog_thumbnails
from skulens.outputs import csv_safe
from skulens.runtime import LoadedModel
from skulens.ui import audit_page
from skulens.ui.common import bar_chart, pick_model

QUEUE_COLUMNS = ["thumbnail", "id", "title", "predicted category", "confidence", "runner-up", "margin"]
DEFAULT_ROWS = 200
NONE = "(none)"
#: Schema field -> what the mapping form calls it.
FIELDS = {"id": "Product id", "title": "Title", "image": "Photo path", "category": "Current category"}


def review_queue(predictor: Any, catalog: Catalog, thumbnails: bool = True) -> pd.DataFrame:
    """Each product's top category, confidence, runner-up and margin (top-1 minus top-2), least confident first."""
    proba = predictor.predict_proba(catalog)
    classes = np.asarray(predictor.classes_).astype(str)
    order = np.argsort(-proba, axis=1)
    top, second = order[:, 0], order[:, 1] if proba.shape[1] > 1 else order[:, 0]
    rows = np.arange(len(catalog))
    frame = pd.DataFrame(
        {
            "thumbnail": catalog_thumbnails(catalog) if thumbnails else [None] * len(catalog),
            "id": catalog.ids,
            "title": catalog.frame["title"] if "title" in catalog.frame.columns else None,
            "predicted category": classes[top],
            "confidence": proba[rows, top],
            "runner-up": classes[second],
            "margin": proba[rows, top] - proba[rows, second],
        }
    )
    label = getattr(predictor, "label", None)
    if label is not None:
        try:
            truth = catalog.labels(label)
        except CatalogError:
            truth = None
        if truth is not None and truth.notna().any():
            frame["catalog category"] = truth.to_numpy()
            frame["agrees"] = frame["catalog category"].astype(str) == frame["predicted category"]
    return frame.sort_values("confidence", kind="stable").reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=4)
def _load(source: str, mapping: tuple[tuple[str, str], ...]) -> Catalog:
    return load_catalog(source, columns=dict(mapping) or None)


@st.cache_data(show_spinner=False, max_entries=8)
def file_columns(source: str) -> list[str] | None:
    """The columns of catalog file ``source`` (None for a built-in dataset, which maps its own)."""
    if source in ADAPTERS:
        return None
    return [str(c) for c in read_table(source).columns]


def default_mapping(columns: list[str]) -> dict[str, str]:
    """Each field mapped to the column of its name, else to a common name the readers detect (``sku`` -> id,
    ``product_name`` -> title...), else to nothing."""
    try:
        detected = resolve_columns(columns, None, "catalog").detected
    except CatalogError:
        detected = {}
    return {field: field if field in columns else detected.get(field, NONE) for field in FIELDS}


def mapping_form(columns: list[str]) -> dict[str, str]:
    """Select boxes mapping the file's columns to the fields (keys ``queue-map-<field>``); the chosen mapping."""
    st.caption("Which column holds each field (detected where the name is a common one):")
    defaults = default_mapping(columns)
    chosen = {}
    for column, (field, label) in zip(st.columns(len(FIELDS)), FIELDS.items()):
        options = [NONE, *columns]
        chosen[field] = column.selectbox(label, options, index=options.index(defaults[field]), key=f"queue-map-{field}")
    return {field: name for field, name in chosen.items() if name != NONE}


def scored_note(scored: int, total: int) -> str:
    """What was scored: every row, or the first ``scored`` of ``total`` (and how to score more)."""
    if scored >= total:
        return f"Scored all {total:,} products."
    return f"Scored the first {scored:,} of {total:,} products; raise 'Rows' or tick 'Score every row' to score more."


def page(models: dict[str, LoadedModel]) -> None:
    audit_page.section()
    st.header("Catalog review queue")
    model = pick_model(models, "categorize", "queue-model")
    if model is None:
        st.info("No categorization model in the models folder; train one with `skulens categorize train` or `make demo`.")
        return
    st.write("Score a catalog and check the products the model is least sure about first.")
    source = st.text_input(
        "Catalog (a dataset name such as flipkart, or a file path on this machine)",
        value=os.environ.get("SKULENS_QUEUE_CATALOG", ""),
        key="queue-source",
    ).strip()
    mapping: dict[str, str] = {}
    if source and (source in ADAPTERS or Path(source).is_file()):
        try:
            columns = file_columns(source)
        except (CatalogError, OSError, ValueError) as exc:
            st.error(str(exc))
            return
        if columns is not None:
            mapping = mapping_form(columns)
            renamed = ",".join(f"{field}={name}" for field, name in mapping.items() if field != name)
            if renamed:
                st.caption(f"Same mapping on the command line: `--columns {renamed}`")
    with st.form("queue-form"):
        rows = int(st.number_input("Rows (first N)", min_value=1, max_value=20_000, value=DEFAULT_ROWS, key="queue-rows"))
        every = st.checkbox("Score every row", value=False, key="queue-all-rows")
        submitted = st.form_submit_button("Score catalog", type="primary")
    if submitted:
        if not source:
            st.error("Give a dataset name or a catalog file path.")
            return
        try:
            catalog = _load(source, tuple(sorted(mapping.items())))
            scored = catalog if every or rows >= len(catalog) else catalog.head(rows)
            with st.spinner(f"Scoring {len(scored):,} products..."):
                queue = review_queue(model.predictor, scored)
            st.session_state.queue_result = (model.name, source, queue, scored_note(len(scored), len(catalog)))
        except (CatalogError, OSError, ValueError) as exc:
            st.error(str(exc))
            return
    stored = st.session_state.get("queue_result")
    if stored and stored[0] == model.name:
        st.info(stored[3])
        show_queue(stored[2], stored[1])


def show_queue(queue: pd.DataFrame, source: str) -> None:
    threshold = st.slider("Low-confidence threshold", 0.0, 1.0, 0.6, 0.05, key="queue-threshold")
    only_low = st.checkbox("Only products below the threshold", value=True, key="queue-only-low")
    low = queue["confidence"] < threshold
    st.success(f"{int(low.sum()):,} of {len(queue):,} products are below {threshold:.0%} confidence.")
    shown = queue[low] if only_low else queue
    counts = queue["predicted category"].value_counts().rename_axis("category").reset_index(name="products")
    st.subheader("Predicted categories")
    bar_chart(counts, "category", "products", "products", percent=False)
    st.subheader("Queue (least confident first)")
    columns = {
        "thumbnail": st.column_config.ImageColumn("photo", width="small"),
        "confidence": st.column_config.NumberColumn(format="percent", width="small"),
        "margin": st.column_config.NumberColumn(format="percent", width="small"),
    }
    st.dataframe(shown, hide_index=True, column_config=columns, key="queue-table")
    export = shown.drop(columns=["thumbnail"])
    st.download_button(
        "Download queue (CSV)",
        csv_safe(export).to_csv(index=False).encode(),
        file_name=f"{source.replace('/', '_')}-review-queue.csv",
        mime="text/csv",
        on_click="ignore",
    )
