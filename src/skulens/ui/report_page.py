"""Browse the evaluation reports saved under the reports folder (found without typing a path)."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from skulens.ui.reports import ReportPathError, find_reports, read_report, subfolder

HEADLINE_NAMES = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "ece": "Calibration error (ECE)", "n": "Products"}


def page(root: Path | None) -> None:
    st.header("Evaluation reports")
    if root is None or not root.is_dir():
        st.info("No reports folder: start the UI with `skulens ui --models DIR --reports DIR`.")
        return
    st.caption(f"Reports found under {root.resolve()}")
    with st.expander("Look in a sub-folder"):
        typed = st.text_input("Folder under the reports folder", key="report-folder", placeholder="e.g. report")
    try:
        folder = subfolder(root, typed or "")
        folders = find_reports(folder, root)
    except ReportPathError as exc:
        st.error(str(exc))
        return
    if not folders:
        st.info(
            "No saved report here yet. `make demo` writes one, as do "
            "`skulens evaluate MODEL DATA --out DIR` and `skulens benchmark ...`."
        )
        return
    base = root.resolve()
    chosen = st.selectbox("Report", folders, format_func=lambda p: str(p.relative_to(base)) or ".", key="report")
    show_report(chosen, root)


def show_report(folder: Path, root: Path) -> None:
    try:
        report = read_report(folder, root)
    except ReportPathError as exc:
        st.error(str(exc))
        return
    if report.metrics_error:
        st.error(report.metrics_error)
    if report.headline:
        for column, (key, value) in zip(st.columns(len(report.headline)), report.headline.items()):
            column.metric(HEADLINE_NAMES[key], f"{value:.3f}" if isinstance(value, float) else f"{value:,}")
    if report.markdown:
        st.markdown(re.sub(r"^(#{1,4}) ", r"##\1 ", report.markdown, flags=re.MULTILINE))  # below the page's own header
    elif report.html:
        components.html(report.html, height=900, scrolling=True)
    per_class = report.per_class()
    if per_class is not None:
        st.subheader("Per-class metrics")
        st.dataframe(per_class, width="stretch")
    for png in report.images:
        st.image(str(png), caption=png.name, width=640)
