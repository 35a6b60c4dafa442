"""The audit part of the Review queue page: accept or reject each suggestion of a ``skulens audit`` report.

An accepted suggestion is appended to the corrections file (``id, column, old, new, source``) that
``skulens categorize train --corrections`` and ``skulens audit --corrections`` apply; a rejected one is
recorded in ``rejected.csv`` beside the report, so neither comes back when the page is opened again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from skulens.catalog import CatalogError, load_catalog
from skulens.catalog.corrections import append_corrections
from skulens.evaluation.explore import catalog_thumbnails
from skulens.outputs import read_escaped_csv

#: Finding kinds that carry a suggested value a person can accept.
FIXABLE = ("label", "attribute", "missing_attribute")
SHOWN = 20


def decided(folder: Path, corrections: Path) -> set[tuple[str, str]]:
    """(id, column) pairs already accepted (in the corrections file) or rejected (``rejected.csv``)."""
    done: set[tuple[str, str]] = set()
    for path in (corrections, folder / "rejected.csv"):
        if path.is_file() and path.stat().st_size:
            frame = read_escaped_csv(path)
            done |= set(zip(frame["id"], frame["column"]))
    return done


def pending(folder: Path, corrections: Path) -> pd.DataFrame:
    """The report's fixable findings not yet decided, in rank order."""
    findings = read_escaped_csv(folder / "findings.csv")
    findings = findings[findings["kind"].isin(FIXABLE) & (findings["suggested"] != "")]
    done = decided(folder, corrections)
    keep = [(i, c) not in done for i, c in zip(findings["id"], findings["column"])]
    return findings[keep].reset_index(drop=True)


def decide(folder: Path, corrections: Path, finding: dict, accept: bool) -> None:
    """Append the finding as a correction (accept) or to ``rejected.csv`` (reject)."""
    row = {"id": finding["id"], "column": finding["column"], "old": finding["given"], "new": finding["suggested"]}
    row["source"] = f"audit {finding['kind']} (ui)"
    append_corrections(corrections if accept else folder / "rejected.csv", [row])


def _thumbnails(folder: Path, ids: list[str]) -> dict[str, str | None]:
    """Thumbnails of ``ids`` from the audited catalog (named in audit.json); empty when it cannot be read."""
    try:
        source = json.loads((folder / "audit.json").read_text()).get("source", "")
        catalog = load_catalog(source) if source else None
    except (CatalogError, OSError, ValueError):
        catalog = None
    if catalog is None:
        return {}
    rows = [i for i, row_id in enumerate(catalog.ids) if row_id in set(ids)]
    subset = catalog.subset(rows)
    return dict(zip(subset.ids, catalog_thumbnails(subset, size=96)))


def section() -> None:
    st.header("Catalog audit")
    st.write("Open a report written by `skulens audit DATA --out DIR`; accept or reject each suggested fix.")
    report = st.text_input("Audit report folder", key="audit-folder")
    if not report.strip():
        return
    folder = Path(report.strip()).expanduser()
    if not (folder / "findings.csv").is_file():
        st.error(f"{folder} has no findings.csv; write one with `skulens audit DATA --out {folder}`")
        return
    corrections = Path(st.text_input("Corrections file", value=str(folder / "corrections.csv"), key="audit-corrections"))
    todo = pending(folder, corrections)
    st.success(f"{len(todo):,} suggestion(s) to review; accepted fixes go to {corrections}.")
    shown = todo.head(SHOWN).to_dict(orient="records")
    thumbs = _thumbnails(folder, [f["id"] for f in shown])
    for number, finding in enumerate(shown):
        photo, text, buttons = st.columns([1, 5, 2])
        if thumbs.get(finding["id"]):
            photo.image(thumbs[finding["id"]], width=72)
        given = finding["given"] or "(missing)"
        text.markdown(
            f"**{finding['id']}** · {finding['kind']} · `{finding['column']}`: {given} → **{finding['suggested']}**  \n"
            f"photo: {finding['photo_says'] or '-'} · text: {finding['text_says'] or '-'}"
        )
        buttons.button("Accept", key=f"audit-accept-{number}", on_click=decide, args=(folder, corrections, finding, True))
        buttons.button("Reject", key=f"audit-reject-{number}", on_click=decide, args=(folder, corrections, finding, False))
