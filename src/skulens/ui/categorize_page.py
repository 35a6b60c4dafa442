"""Categorize one product from a photo and/or its title and description."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from skulens.catalog.images import ImageLoadError, decode_image
from skulens.runtime import LoadedModel, image_resolution, prepare_image, top_k_from_proba
from skulens.ui.common import MAX_IMAGE_MB, bar_chart, model_details, pick_model, used_phrase
from skulens.ui.examples import EXAMPLES
from skulens.ui.explain_panel import explain_panel

TOP_K = 5
#: Below this probability the top category is shown as a warning, not a success.
LOW_CONFIDENCE = 0.5
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]


def _choose_example(index: int) -> None:
    example = EXAMPLES[index]
    st.session_state.update(cat_source=f"example:{index}", cat_title=example.title, cat_description=example.description)


def _submitted() -> None:
    """The form was sent: an example's description the user did not touch is not mixed into their own product."""
    source = st.session_state.get("cat_source") or ""
    st.session_state.pop("cat_cleared", None)
    if source.startswith("example:"):
        example = EXAMPLES[int(source.split(":")[1])]
        own = st.session_state.get("cat_title", "") != example.title or st.session_state.get("cat_image") is not None
        if own and example.description and st.session_state.get("cat_description", "") == example.description:
            st.session_state.cat_description = ""
            st.session_state.cat_cleared = (
                f"The description of the “{example.label}” example was cleared: it is not your product's."
            )
    st.session_state.cat_source = "form"


def current_input(model: LoadedModel) -> tuple[object | None, str | None, str, str] | None:
    """(decoded image or None, its caption, title, description) of the product to show, if any."""
    source = st.session_state.get("cat_source")
    if source is None:
        return None
    title = st.session_state.get("cat_title", "")
    description = st.session_state.get("cat_description", "")
    if source.startswith("example:"):
        example = EXAMPLES[int(source.split(":")[1])]
        return example.image(), f"Example: {example.label}", title, description
    upload = st.session_state.get("cat_image")
    if upload is None:
        return None, None, title, description
    image = decode_image(upload.getvalue(), name=upload.name, draft_size=image_resolution(model.predictor))
    return image, upload.name, title, description


def page(models: dict[str, LoadedModel]) -> None:
    st.header("Categorize a product")
    model = pick_model(models, "categorize", "categorize-model")
    if model is None:
        st.info("No categorization model in the models folder; train one with `skulens train` or `make demo`.")
        return
    inputs, results = st.columns([1, 1], gap="large")
    with inputs:
        st.write("Try an example:")
        for column, (index, example) in zip(st.columns(len(EXAMPLES)), enumerate(EXAMPLES)):
            column.button(example.label, key=f"example-{index}", on_click=_choose_example, args=(index,))
        with st.form("categorize-form"):
            if model.reads_images:
                st.file_uploader("Product photo", type=IMAGE_TYPES, key="cat_image", max_upload_size=MAX_IMAGE_MB)
            st.text_input("Title", key="cat_title")
            st.text_area("Description", key="cat_description", height=100)
            st.form_submit_button("Categorize", type="primary", on_click=_submitted)
        model_details(model)
    with results:
        show_result(model)


def show_result(model: LoadedModel) -> None:
    try:
        product = current_input(model)
    except ImageLoadError as exc:
        st.error(str(exc))
        return
    if product is None:
        st.info("Upload a photo and/or type a title, then press **Categorize** — or try an example.")
        return
    image, caption, title, description = product
    if st.session_state.get("cat_cleared"):
        st.info(st.session_state.cat_cleared)
    photo = image is not None and model.reads_images
    text = model.text_of(title, description)
    if not photo and not text:
        st.warning("Give a photo or a title/description to categorize." if model.reads_images else "Type a title or description.")
        return
    if image is not None:
        st.image(image, caption=caption, width=200)
        if not model.reads_images:
            st.warning(f"Model {model.name} reads text only: the photo was not used.")
    with st.spinner("Categorizing..."):
        proba = model.batcher([(prepare_image(model.predictor, image) if photo else None, text)])[0]
    top = top_k_from_proba(model.classes, proba[None, :], min(TOP_K, len(model.classes)))[0]
    best, p = top[0]
    if p >= LOW_CONFIDENCE:
        st.success(f"Top category: {best} ({p:.0%})")
    else:
        st.warning(f"Low confidence — top category: {best} ({p:.0%}). Check the alternatives below.")
    st.caption(
        f"{used_phrase(photo, bool(title.strip()), bool(description.strip()))}; "
        f"the {len(top)} most likely of {len(model.classes)} categories:"
    )
    bar_chart(pd.DataFrame(top, columns=["category", "probability"]), "category", "probability", "probability")
    explain_panel(model, image if photo else None, title, description)
