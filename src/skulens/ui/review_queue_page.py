"""Catalog audit and review queue: a ``skulens audit`` report's suggestions to accept or reject
(:mod:`skulens.ui.audit_page`), then every product with its thumbnail, predicted category and confidence, least sure first.

A human checks the products the model is least confident about: the page filters them by a
confidence threshold, charts the predicted category distribution and exports the queue as CSV.
The catalog is read on the server (a built-in dataset name or a file path), so its images can be shown.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from skulens.catalog import Catalog, CatalogError, load_catalog
from skulens.evaluation.explore import catalog_thumbnails
from skulens.outputs import csv_safe
from skulens.runtime import LoadedModel
from skulens.ui import audit_page
from skulens.ui.common import bar_chart, pick_model

QUEUE_COLUMNS = ["thumbnail", "id", "title", "predicted category", "confidence", "runner-up", "margin"]
DEFAULT_ROWS = 200


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
def _load(source: str, rows: int) -> Catalog:
    catalog = load_catalog(source)
    return catalog.head(rows) if rows < len(catalog) else catalog


def page(models: dict[str, LoadedModel]) -> None:
    audit_page.section()
    st.header("Catalog review queue")
    model = pick_model(models, "categorize", "queue-model")
    if model is None:
        st.info("No categorization model in the models folder; train one with `skulens categorize train` or `make demo`.")
        return
    st.write("Score a catalog and check the products the model is least sure about first.")
    with st.form("queue-form"):
        source = st.text_input(
            "Catalog (a dataset name such as flipkart, or a file path on this machine)",
            value=os.environ.get("SKULENS_QUEUE_CATALOG", ""),
            key="queue-source",
        )
        rows = int(st.number_input("Rows (first N)", min_value=1, max_value=20_000, value=DEFAULT_ROWS, key="queue-rows"))
        submitted = st.form_submit_button("Score catalog", type="primary")
    if submitted:
        if not source.strip():
            st.error("Give a dataset name or a catalog file path.")
            return
        try:
            catalog = _load(source.strip(), rows)
            with st.spinner(f"Scoring {len(catalog):,} products..."):
                st.session_state.queue_result = (model.name, source.strip(), review_queue(model.predictor, catalog))
        except (CatalogError, OSError, ValueError) as exc:
            st.error(str(exc))
            return
    stored = st.session_state.get("queue_result")
    if stored and stored[0] == model.name:
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
