"""Read one review: its expected star rating, sentiment and whether the customer would recommend."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from skulens.runtime import LoadedModel
from skulens.ui.common import bar_chart, model_details, pick_model
from skulens.ui.examples import EXAMPLE_REVIEWS

#: A review is "mixed" when both 1-2 stars and 4-5 stars are at least this likely.
MIXED_SHARE = 0.3
COLOURS = {"negative": "red", "neutral": "gray", "positive": "green"}


@dataclass(frozen=True)
class StarView:
    """How a review result is shown: the model's stars, its expected rating and sentiment, and a note when mixed."""

    filled: int
    rating: float
    sentiment: str
    note: str | None

    @property
    def stars(self) -> str:
        return "★" * self.filled + "☆" * (5 - self.filled)

    @property
    def colour(self) -> str:
        return COLOURS.get(self.sentiment, "gray")


def star_view(result: dict) -> StarView:
    """The stars the model gives (``result["stars"]``: the one star rule the CLI and the service show too,
    :func:`skulens.tasks.reviews.prior_corrected_stars`) with the expected rating beside them; a review whose star
    distribution is split (say 40% one star, 60% five stars) gets a note that it is mixed."""
    sentiment = str(result.get("sentiment") or "neutral")
    proba = {int(k): float(v) for k, v in (result.get("star_proba") or {}).items()}
    bad, good = proba.get(1, 0) + proba.get(2, 0), proba.get(4, 0) + proba.get(5, 0)
    note = None
    if min(bad, good) >= MIXED_SHARE:
        note = f"A mixed review: {bad:.0%} chance of 1-2 stars, {good:.0%} chance of 4-5 stars."
    return StarView(int(result["stars"]), float(result["expected_rating"]), sentiment, note)


def _choose_example(text: str) -> None:
    st.session_state.update(review_text=text, review_source="example")


def _submitted() -> None:
    st.session_state.review_source = "form"


def page(models: dict[str, LoadedModel]) -> None:
    st.header("Read a review")
    model = pick_model(models, "reviews", "reviews-model")
    if model is None:
        st.info("No reviews model in the models folder; train one with `skulens reviews train ...` to use this page.")
        return
    st.write("Try an example:")
    for column, (label, text) in zip(st.columns(len(EXAMPLE_REVIEWS)), EXAMPLE_REVIEWS.items()):
        column.button(label, key=f"review-example-{label}", on_click=_choose_example, args=(text,))
    with st.form("review-form"):
        st.text_area("Review text", key="review_text", height=130, placeholder="Paste a customer review here")
        st.form_submit_button("Read review", type="primary", on_click=_submitted)
    text = st.session_state.get("review_text", "") if st.session_state.get("review_source") else ""
    if not text.strip():
        st.info("Paste a review and press **Read review** — or try an example.")
        return
    with st.spinner("Reading..."):
        result = model.batcher([text])[0]
    if result.get("error"):
        st.error(result["error"])
        return
    show_result(result)
    model_details(model)


def show_result(result: dict) -> None:
    view = star_view(result)
    stars, sentiment, recommend = st.columns(3)
    with stars:
        st.markdown("**Rating**")
        st.markdown(f"### :{view.colour}[{view.stars}]")
        st.markdown(f"{view.rating:.1f} out of 5 (expected)")
    with sentiment:
        score = float(result.get("sentiment_score", 0.0))
        st.markdown(
            f"**Sentiment**  \n:{view.colour}[{view.sentiment.capitalize()}]  \nscore {score:+.2f} "
            "(from −1 negative to +1 positive)"
        )
    if result.get("recommend_proba") is not None:
        with recommend:
            st.markdown(f"**Would recommend**  \n{float(result['recommend_proba']):.0%} likely")
    if view.note:
        st.caption(view.note)
    if result.get("star_proba"):
        frame = pd.DataFrame(
            {
                "rating": [f"{k} star{'s' if k != '1' else ''}" for k in result["star_proba"]],
                "probability": list(result["star_proba"].values()),
            }
        )
        bar_chart(frame.iloc[::-1], "rating", "probability", "probability", largest_first=False)
