"""What every UI page shares: the model picker, plain-language descriptions, charts."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from skulens.runtime import LoadedModel, task_models

#: Largest photo and CSV the UI accepts (MB).
MAX_IMAGE_MB = 10
MAX_CSV_MB = 50


def reads_phrase(model: LoadedModel) -> str:
    """What the model looks at, in plain words."""
    if model.task == "reviews":
        return "the review text"
    parts = (["the photo"] if model.reads_images else []) + (["the title and description"] if model.reads_text else [])
    return " and ".join(parts)


def used_phrase(photo: bool, title: bool, description: bool) -> str:
    """'From the photo and the title' style summary of the inputs a prediction used."""
    parts = [name for name, on in (("the photo", photo), ("the title", title), ("the description", description)) if on]
    if len(parts) > 1:
        return f"From {', '.join(parts[:-1])} and {parts[-1]}"
    return f"From {parts[0]}" if parts else "From nothing"


def pick_model(models: dict[str, LoadedModel], task: str, key: str) -> LoadedModel | None:
    """A model of ``task``: a picker when several are loaded, and a plain line saying what it reads."""
    names = task_models(models, task)
    if not names:
        return None
    if len(names) > 1:
        name = st.selectbox("Model", names, key=key, help="Several models are loaded; the first is the default.")
    else:
        name = names[0]
    model = models[name]
    st.caption(f"Model **{name}** reads {reads_phrase(model)}.")
    return model


def model_details(model: LoadedModel) -> None:
    """An expander with the technical side: encoders, identities, classes, saved metrics."""
    with st.expander("Model details"):
        rows = []
        for name, identity in model.encoders.items():
            modality = model.predictor.extractor.encoder(name).modality
            rows.append({"encoder": name, "reads": "photo" if modality == "image" else "text", "identity": identity})
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        if model.classes:
            st.write(f"{len(model.classes)} categories: " + ", ".join(model.classes))
        metrics = {k: v for k, v in model.metrics.items() if isinstance(v, (int, float))}
        if metrics:
            st.write("Saved with the model: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        st.caption(f"Folder: {model.folder}")


def bar_chart(frame: pd.DataFrame, label: str, value: str, title: str, percent: bool = True, largest_first: bool = True) -> None:
    """Horizontal bars (largest first, or in the frame's order) with labels never cut off, one per row."""
    axis = alt.Axis(format=".0%", tickCount=5) if percent else alt.Axis(format="d", tickMinStep=1)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=title, axis=axis, scale=alt.Scale(domain=[0, 1]) if percent else alt.Undefined),
            y=alt.Y(f"{label}:N", sort="-x" if largest_first else list(frame[label]), title=None, axis=alt.Axis(labelLimit=0)),
            tooltip=[alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{value}:Q", format=".1%" if percent else "d")],
        )
        .properties(height=32 * len(frame) + 50)
    )
    st.altair_chart(chart, width="stretch")
