"""The skulens web UI (Streamlit): categorize a product, read a review, run a CSV catalog, view reports.

Run it with ``skulens ui --models DIR`` (or ``streamlit run src/skulens/ui/app.py -- --models DIR``).
It loads the same predictors as the CLI and the service (through :mod:`skulens.runtime`) and holds no
modelling of its own. Reports are looked for under ``--reports DIR`` (default: the folder that holds
the models folder, where ``make demo`` writes ``report/`` beside ``models/``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from skulens.ui import caption_page, categorize_page, csv_page, report_page, review_queue_page, reviews_page, search_page

PAGES = ("Categorize", "Reviews", "CSV catalog", "Review queue", "Search", "Captions", "Report")


def settings() -> tuple[Path | None, Path | None]:
    """Models folder and reports root: ``-- --models DIR [--reports DIR]`` or $SKULENS_MODELS / $SKULENS_REPORTS."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--models", default=os.environ.get("SKULENS_MODELS"))
    parser.add_argument("--reports", default=os.environ.get("SKULENS_REPORTS"))
    args, _ = parser.parse_known_args(sys.argv[1:])
    models = Path(args.models).expanduser().resolve() if args.models else None
    if args.reports:
        reports = Path(args.reports).expanduser().resolve()
    else:
        reports = models.parent if models is not None else None
    return models, reports


@st.cache_resource(show_spinner="Loading models...")
def load(models_dir: str):
    from skulens.runtime import load_models

    return load_models(models_dir, warm_up=True)


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
    page = st.sidebar.radio("Page", PAGES, key="page")
    st.sidebar.caption(f"{len(models)} model(s) from {models_dir}")
    if page == "Categorize":
        categorize_page.page(models)
    elif page == "Reviews":
        reviews_page.page(models)
    elif page == "CSV catalog":
        csv_page.page(models)
    elif page == "Review queue":
        review_queue_page.page(models)
    elif page == "Search":
        search_page.page(models)
    elif page == "Captions":
        caption_page.page(models)
    else:
        report_page.page(reports)


if __name__ == "__main__":  # `streamlit run` executes this file as __main__
    main()
