"""Write a product title from a photo: the generated title, the other beam candidates, the attributes
read from the photo and the titles of the most similar catalog photos, through a captioner model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from skulens.catalog.images import ImageLoadError, decode_image
from skulens.runtime import LoadedModel, task_models
from skulens.ui.common import MAX_IMAGE_MB

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]


def _show(model: LoadedModel, name: str, data: bytes, beam: int, nearest: int) -> None:
    try:
        image = decode_image(data, name=name)
        caption = model.predictor.predict_one(image, beam=beam, nearest=nearest)
    except (ImageLoadError, ValueError) as exc:  # not an image, a damaged model...
        st.error(str(exc))
        return
    left, right = st.columns([1, 2])
    left.image(image, width="stretch", caption=name)
    with right:
        st.subheader(caption.title)
        if caption.attributes:
            st.caption(" · ".join(f"{key}: **{value}**" for key, value in caption.attributes.items()))
        if caption.alternatives:
            st.markdown("**Other beam candidates**")
            st.dataframe(pd.DataFrame(caption.alternatives, columns=["title", "score"]), hide_index=True, width="stretch")
        if caption.nearest:
            st.markdown("**Nearest catalog titles**")
            st.dataframe(pd.DataFrame(caption.nearest, columns=["title", "similarity"]), hide_index=True, width="stretch")


def page(models: dict[str, LoadedModel]) -> None:
    st.header("Captions")
    names = task_models(models, "caption")
    if not names:
        st.info("No captioner in the models folder; train one with `skulens caption train CATALOG --out DIR`.")
        return
    name = st.selectbox("Model", names, key="caption-model") if len(names) > 1 else names[0]
    model = models[name]
    report = model.predictor.fit_report_
    if report:
        st.caption(f"Model **{name}** writes titles learnt from {report.get('rows', 0):,} catalog photos.")
    with st.form("caption_form"):
        photos = st.file_uploader(
            f"Product photos (up to {MAX_IMAGE_MB} MB each)",
            type=IMAGE_TYPES,
            accept_multiple_files=True,
            key="caption_photos",
            max_upload_size=MAX_IMAGE_MB,
        )
        beam = st.slider("Beam width (1 = greedy)", 1, 5, 3, key="caption_beam")
        nearest = st.slider("How many nearest titles", 0, 10, 3, key="caption_nearest")
        submitted = st.form_submit_button("Write titles")
    if not submitted:
        return
    if not photos:
        st.warning("Upload at least one photo.")
        return
    for photo in photos:
        if photo.size > MAX_IMAGE_MB * 1024 * 1024:
            st.error(f"{photo.name} is over {MAX_IMAGE_MB} MB.")
            continue
        _show(model, photo.name, photo.getvalue(), beam, nearest)
