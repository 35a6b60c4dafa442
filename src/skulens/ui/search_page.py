"""Search the catalog by words or by a photo, browse "more like this", and categorise with typed labels
(zero-shot), all through an alignment model and the product index saved beside it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from skulens.runtime import LoadedModel, task_models
from skulens.runtime.search import has_index, model_index, product_image
from skulens.ui.common import MAX_IMAGE_MB, bar_chart

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]
COLUMNS = 5
MAX_FILTER_VALUES = 60


def _more_like(product_id: str) -> None:
    st.session_state.update(search_mode="similar", search_similar=product_id)


def _searched() -> None:
    st.session_state.search_mode = "query"


def _filters(index) -> dict:
    """A select box per short metadata column (gender, colour...); 'any' keeps every product."""
    where = {}
    candidates = [
        c
        for c in index.metadata.columns
        if c not in ("id", "title", "image", "category") and 1 < index.metadata[c].nunique() <= MAX_FILTER_VALUES
    ]
    if not candidates:
        return where
    boxes = st.columns(len(candidates[:4]))
    for box, column in zip(boxes, candidates[:4]):
        values = ["any", *sorted(index.metadata[column].dropna().astype(str).unique())]
        choice = box.selectbox(column, values, key=f"search_where_{column}")
        if choice != "any":
            where[column] = choice
    return where


def _gallery(index, hits: list[dict]) -> None:
    for start in range(0, len(hits), COLUMNS):
        for box, hit in zip(st.columns(COLUMNS), hits[start : start + COLUMNS]):
            with box:
                photo = product_image(index, hit)
                if photo is not None:
                    st.image(photo, width="stretch")
                st.markdown(f"**{hit.get('title') or hit['id']}**")
                st.caption(f"id {hit['id']} · similarity {hit['score']:.2f}")
                st.button("More like this", key=f"more_{hit['id']}", on_click=_more_like, args=(hit["id"],))


def search_section(model: LoadedModel) -> None:
    if not has_index(model.folder):
        st.info(
            f"Model **{model.name}** has no product index yet: run "
            f"`skulens search index CATALOG --model {model.folder} --out {model.folder}/index`."
        )
        return
    try:
        index = model_index(model.folder, model.predictor.identity)
    except Exception as exc:  # noqa: BLE001 - an index from another model, a broken folder: say so
        st.error(str(exc))
        return
    st.caption(f"{len(index):,} products indexed ({index.kind} index).")
    with st.form("search_form"):
        text = st.text_input("What are you looking for?", key="search_text", placeholder="red running shoes for men")
        photo = st.file_uploader(
            f"...or find products that look like a photo (up to {MAX_IMAGE_MB} MB)",
            type=IMAGE_TYPES,
            key="search_photo",
            max_upload_size=MAX_IMAGE_MB,
        )
        k = st.slider("Results", 5, 50, 10, step=5, key="search_k")
        where = _filters(index)
        st.form_submit_button("Search", on_click=_searched)
    mode = st.session_state.get("search_mode")
    predictor = model.predictor
    try:
        if mode == "similar":
            product_id = st.session_state.search_similar
            title = index.metadata["title"].iloc[index.row(product_id)] if "title" in index.metadata.columns else None
            st.subheader(f"More like {product_id}" + (f": {title}" if isinstance(title, str) and title else ""))
            hits = predictor.similar(index, product_id, k=min(k, len(index) - 1), where=where or None)
        elif mode == "query":
            if photo is not None:
                if photo.size > MAX_IMAGE_MB * 1024 * 1024:
                    st.error(f"{photo.name} is over {MAX_IMAGE_MB} MB.")
                    return
                hits = predictor.search(index, image=photo.getvalue(), k=min(k, len(index)), where=where or None)
                st.subheader(f"Products that look like {photo.name}")
            else:
                hits = predictor.search(index, text=text, k=min(k, len(index)), where=where or None)
                st.subheader(f"Results for “{text}”")
        else:
            return
    except ValueError as exc:  # AlignmentError / SearchIndexError: empty query, unknown id...
        st.error(str(exc))
        return
    if not hits:
        st.info("No product matches these filters.")
        return
    _gallery(index, hits)


def zero_shot_section(model: LoadedModel) -> None:
    st.write("Type the categories you want; the model scores each product photo or title against them, no training needed.")
    with st.form("zero_shot_form"):
        labels_text = st.text_area("Categories, one per line or comma-separated", key="zs_labels", height=100)
        photo = st.file_uploader("Product photo", type=IMAGE_TYPES, key="zs_photo", max_upload_size=MAX_IMAGE_MB)
        title = st.text_input("...or a product title", key="zs_title")
        submitted = st.form_submit_button("Categorise")
    if not submitted:
        return
    labels = [part.strip() for line in labels_text.splitlines() for part in line.split(",") if part.strip()]
    try:
        image = photo.getvalue() if photo is not None else None
        top = model.predictor.predict_one(image=image, text=title or None, labels=labels, k=len(labels))
    except ValueError as exc:
        st.error(str(exc))
        return
    frame = pd.DataFrame(top, columns=["category", "probability"])
    st.success(f"Most likely: **{frame.category[0]}** ({frame.probability[0]:.0%})")
    bar_chart(frame, "category", "probability", "probability")


def pick_alignment(models: dict[str, LoadedModel]) -> LoadedModel | None:
    """An alignment model: a picker when several are loaded, and a line saying what it reads."""
    names = task_models(models, "align")
    if not names:
        return None
    name = st.selectbox("Model", names, key="search-model") if len(names) > 1 else names[0]
    model = models[name]
    st.caption(f"Model **{name}** puts product photos and texts in one space ({', '.join(model.predictor.encoders)}).")
    return model


def page(models: dict[str, LoadedModel]) -> None:
    st.header("Search and zero-shot")
    model = pick_alignment(models)
    if model is None:
        st.info("No alignment model in the models folder; train one with `skulens search train CATALOG --out DIR`.")
        return
    search, zero_shot = st.tabs(["Search", "Zero-shot categories"])
    with search:
        search_section(model)
    with zero_shot:
        zero_shot_section(model)
