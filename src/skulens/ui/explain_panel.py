"""The "Explain" panel of the Categorize page: Grad-CAM of the photo, highlighted words, photo vs text."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from skulens.runtime import LoadedModel


def explain_panel(model: LoadedModel, image: object | None, title: str, description: str) -> None:
    """A toggle that, when on, explains the prediction shown above it (the same product and model)."""
    if not st.toggle("Explain this prediction", key="cat_explain", help="Where the photo and which words support the category."):
        return
    from skulens.catalog import CatalogError
    from skulens.explain import ExplainError, explain_product
    from skulens.explain.render import gradcam_figure, overlay, text_html
    from skulens.extras import MissingExtraError

    with st.spinner("Explaining..."):
        try:
            explanation = explain_product(
                model.predictor, image=image, title=title.strip() or None, description=description.strip() or None
            )
        except (CatalogError, ExplainError, MissingExtraError) as exc:
            st.error(str(exc))
            return
    st.subheader(f"Why {explanation.target}?")
    modality = explanation.modality
    (st.error if modality.conflict else st.info)(modality.statement)
    rows = [
        {
            "modality": name,
            "alone predicts": f"{view.top} ({view.top_probability:.0%})",
            f"alone gives {explanation.target}": f"{view.target_probability:.0%}",
            "moved the answer's log-odds by": "" if shift is None else f"{shift:+.2f}",
        }
        for name, view, shift in (("photo", modality.image, modality.image_shift), ("text", modality.text, modality.text_shift))
        if view is not None
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    for image_map in explanation.image_maps:
        st.image(
            overlay(explanation.image, image_map.cam),
            caption=f"Grad-CAM ({image_map.encoder}): red = where the photo supports {explanation.target}",
            width=320,
        )
        with st.expander("Interactive map"):
            st.plotly_chart(gradcam_figure(explanation.image, image_map), key=f"gradcam-{image_map.encoder}")
    if explanation.text is not None and explanation.text.words:
        st.markdown(text_html(explanation.text), unsafe_allow_html=True)
        st.caption(f"Green words pushed towards {explanation.target}, red words away (hover a word for its score).")
    for note in explanation.notes + (explanation.text.notes if explanation.text else []):
        st.caption(note)
