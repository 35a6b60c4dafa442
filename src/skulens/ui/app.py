"""The skulens web UI (Streamlit): categorize a product, read a review, run a CSV catalog, view reports.

Run it with ``skulens ui --models DIR`` (or ``streamlit run src/skulens/ui/app.py -- --models DIR``).
It loads the same predictors as the CLI and the service (through :mod:`skulens.runtime`) and holds
no modelling logic of its own.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

TOP_K = 5
CSV_CHUNK = 32


def settings() -> tuple[Path | None, Path | None]:
    """Models and reports folders: ``-- --models DIR [--reports DIR]`` or $SKULENS_MODELS / $SKULENS_REPORTS."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--models", default=os.environ.get("SKULENS_MODELS"))
    parser.add_argument("--reports", default=os.environ.get("SKULENS_REPORTS"))
    args, _ = parser.parse_known_args(sys.argv[1:])
    models = Path(args.models).expanduser() if args.models else None
    reports = Path(args.reports).expanduser() if args.reports else models
    return models, reports


@st.cache_resource(show_spinner="Loading models...")
def load(models_dir: str):
    from skulens.runtime import load_models

    return load_models(models_dir, warm_up=True)


def chosen_model(models: dict, task: str, key: str):
    from skulens.runtime import default_models

    default = default_models(models).get(task)
    names = sorted((m.name for m in models.values() if m.task == task), key=lambda n: (n != default, n))
    if not names:
        return None
    name = st.selectbox("Model", names, key=key) if len(names) > 1 else names[0]
    model = models[name]
    metrics = model.metrics
    caption = f"Model **{name}** — encoders: {', '.join(model.encoders)}"
    if "accuracy" in metrics:
        caption += f"; saved accuracy {metrics['accuracy']:.3f}"
    st.caption(caption)
    return model


# ----- pages ------------------------------------------------------------------------------------------


def page_categorize(models: dict) -> None:
    from skulens.catalog.images import ImageLoadError, decode_image
    from skulens.runtime import image_resolution, prepare_image, top_k_from_proba, uses_images

    st.header("Categorize a product")
    model = chosen_model(models, "categorize", "categorize-model")
    if model is None:
        st.info("No categorization model in the models folder.")
        return
    inputs, results = st.columns([1, 1], gap="large")
    image_file = None
    with inputs:
        if uses_images(model.predictor):
            image_file = st.file_uploader("Product image", type=["jpg", "jpeg", "png", "webp", "bmp", "gif"], key="image")
        title = st.text_input("Title", key="title")
        description = st.text_area("Description", key="description", height=100)
    image = None
    if image_file is not None:
        try:
            image = decode_image(image_file.getvalue(), name=image_file.name, draft_size=image_resolution(model.predictor))
        except ImageLoadError as exc:
            results.error(str(exc))
            return
        inputs.image(image, caption=image_file.name, width=200)
    text = model.text_of(title, description)
    if image is None and not text:
        results.info("Upload an image and/or type a title or description.")
        return
    with results, st.spinner("Categorizing..."):
        proba = model.batcher([(prepare_image(model.predictor, image), text)])[0]
    top = top_k_from_proba(model.classes, proba[None, :], min(TOP_K, len(model.classes)))[0]
    best, p = top[0]
    used = " + ".join(x for x, on in (("image", image is not None), ("text", bool(text))) if on)
    with results:
        st.success(f"Top category: {best} ({p:.1%})")
        st.caption(f"From {used}; top {len(top)} of {len(model.classes)} categories")
        frame = pd.DataFrame(top, columns=["category", "probability"])
        st.bar_chart(frame, x="category", y="probability", horizontal=True, sort="-probability", height=260)
        st.dataframe(frame.style.format({"probability": "{:.3f}"}), hide_index=True)


def page_reviews(models: dict) -> None:
    st.header("Read a review")
    model = chosen_model(models, "reviews", "reviews-model")
    if model is None:
        st.info("No reviews model in the models folder; train one (`skulens train reviews ...`) to use this page.")
        return
    text = st.text_area("Review text", key="review", height=150)
    if not text.strip():
        st.info("Paste a review to read it.")
        return
    with st.spinner("Reading..."):
        result = model.batcher([text])[0]
    if result.get("error"):
        st.error(result["error"])
        return
    cols = st.columns(3)
    stars = result.get("stars")
    cols[0].metric("Stars", f"{stars} / 5" if stars is not None else "—", f"expected {result.get('expected_rating', 0):.2f}")
    cols[1].metric("Sentiment", str(result.get("sentiment", "—")), f"score {result.get('sentiment_score', 0):+.2f}")
    if result.get("recommend_proba") is not None:
        cols[2].metric("Would recommend", f"{result['recommend_proba']:.0%}")
    if result.get("star_proba"):
        frame = pd.DataFrame({"stars": list(result["star_proba"]), "probability": list(result["star_proba"].values())})
        st.bar_chart(frame, x="stars", y="probability")


def categorize_frame(model, frame: pd.DataFrame, progress) -> pd.DataFrame:
    """Top category for each row of an uploaded CSV (text columns; image paths cannot be read from an upload)."""
    from skulens.runtime import top_k_from_proba

    texts = [
        model.text_of(row.get("title") if pd.notna(row.get("title")) else None,
                      row.get("description") if pd.notna(row.get("description")) else None)
        for row in frame.to_dict("records")
    ]  # fmt: skip
    out = frame.copy()
    out["category"], out["probability"], out["error"] = None, float("nan"), None
    todo = [i for i, t in enumerate(texts) if t]
    for i in set(range(len(texts))) - set(todo):
        out.at[i, "error"] = "no title or description"
    for start in range(0, len(todo), CSV_CHUNK):
        rows = todo[start : start + CSV_CHUNK]
        probas = model.batcher([(None, texts[i]) for i in rows])
        for i, proba in zip(rows, probas):
            (category, p), *_ = top_k_from_proba(model.classes, proba[None, :], 1)[0]
            out.at[i, "category"], out.at[i, "probability"] = category, round(p, 4)
        done = min(start + CSV_CHUNK, len(todo))
        progress.progress(done / max(len(todo), 1), text=f"{done} / {len(todo)} products")
    return out


def page_csv(models: dict) -> None:
    st.header("Categorize a CSV catalog")
    model = chosen_model(models, "categorize", "csv-model")
    if model is None:
        st.info("No categorization model in the models folder.")
        return
    st.caption(
        "The CSV needs a `title` and/or `description` column (an `id` column is kept). Image paths are not read from uploads."
    )
    upload = st.file_uploader("Catalog CSV", type=["csv"], key="csv")
    if upload is None:
        return
    try:
        frame = pd.read_csv(io.BytesIO(upload.getvalue()))
    except Exception as exc:  # noqa: BLE001 - show any parse problem to the user
        st.error(f"{upload.name} is not a readable CSV: {exc}")
        return
    if not {"title", "description"} & set(frame.columns):
        st.error(f"{upload.name} has no 'title' or 'description' column; it has: {', '.join(map(str, frame.columns))}")
        return
    frame = frame.reset_index(drop=True)
    progress = st.progress(0.0, text=f"0 / {len(frame)} products")
    result = categorize_frame(model, frame, progress)
    st.dataframe(result, hide_index=True)
    st.download_button(
        "Download results (CSV)",
        result.to_csv(index=False).encode(),
        file_name=f"{Path(upload.name).stem}-categories.csv",
        mime="text/csv",
    )


def report_folders(root: Path) -> list[Path]:
    if not root or not root.is_dir():
        return []
    found = {p.parent for pattern in ("report.md", "metrics.json") for p in root.rglob(pattern)}
    return sorted(found)


def page_report(reports: Path | None) -> None:
    st.header("Evaluation report")
    root = st.text_input("Folder with report folders (report.md / metrics.json / *.png)", value=str(reports or ""))
    folders = report_folders(Path(root).expanduser()) if root else []
    if not folders:
        st.info("No saved report here; write one with `skulens evaluate MODEL DATA --out DIR` or `skulens benchmark`.")
        return
    folder = st.selectbox("Report", folders, format_func=lambda p: str(p.relative_to(Path(root).expanduser())) or ".")
    markdown = folder / "report.md"
    if markdown.is_file():
        text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown.read_text())  # images are shown below
        st.markdown(text)
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            st.error(f"{metrics_path} is not valid JSON: {exc}")
            metrics = {}
        headline = {k: metrics[k] for k in ("accuracy", "macro_f1", "ece", "n") if isinstance(metrics.get(k), (int, float))}
        if headline:
            cols = st.columns(len(headline))
            for col, (key, value) in zip(cols, headline.items()):
                col.metric(key, f"{value:.3f}" if isinstance(value, float) else str(value))
        if isinstance(metrics.get("per_class"), dict):
            st.subheader("Per-class metrics")
            st.dataframe(pd.DataFrame(metrics["per_class"]).T, width="stretch")
    for png in sorted(folder.glob("*.png")):
        st.image(str(png), caption=png.name)


# ----- main ---------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="skulens", layout="wide")
    models_dir, reports = settings()
    st.sidebar.title("skulens")
    if models_dir is None:
        st.error("No models folder: start with `skulens ui --models DIR` (or set SKULENS_MODELS).")
        return
    try:
        models = load(str(models_dir))
    except Exception as exc:  # noqa: BLE001 - ModelLoadError and friends: say what is wrong
        st.error(f"Cannot load the models in {models_dir}: {exc}")
        return
    pages = {
        "Categorize": lambda: page_categorize(models),
        "Reviews": lambda: page_reviews(models),
        "CSV catalog": lambda: page_csv(models),
        "Report": lambda: page_report(reports),
    }
    page = st.sidebar.radio("Page", list(pages), key="page")
    st.sidebar.caption(f"Models: {models_dir} ({len(models)} loaded)")
    pages[page]()


if __name__ == "__main__":  # `streamlit run` executes this file as __main__
    main()
