"""Categorize a CSV catalog: map its columns, see each product's predicted category, download the results."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import streamlit as st

from skulens.catalog import Catalog, CatalogError
from skulens.catalog.readers import apply_columns, resolve_columns
from skulens.catalog.validation import build_catalog
from skulens.outputs import csv_safe
from skulens.runtime import LoadedModel, top_k_from_proba
from skulens.ui.common import MAX_CSV_MB, bar_chart, pick_model

NONE = "(none)"
ROW_NUMBER = "(row number)"
#: Schema field -> what the mapping form calls it.
FIELDS = {"id": "Product id", "title": "Title", "description": "Description"}
MAX_ROWS = 20_000
CHUNK = 32
RESULT_COLUMNS = ["id", "title", "predicted category", "confidence"]


def read_upload(data: bytes, name: str) -> pd.DataFrame:
    """The uploaded CSV (or TSV) as text columns; :class:`CatalogError` says why it cannot be read."""
    try:
        frame = pd.read_csv(io.BytesIO(data), sep="\t" if name.lower().endswith(".tsv") else ",", dtype=str)
    except pd.errors.EmptyDataError:
        raise CatalogError(f"{name} is empty; it needs a header row and at least one product") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise CatalogError(f"{name} is not a readable CSV: {exc}") from None
    if frame.empty:
        raise CatalogError(f"{name} has a header but no rows")
    if len(frame) > MAX_ROWS:
        raise CatalogError(
            f"{name} has {len(frame):,} rows; the UI takes at most {MAX_ROWS:,} (use `skulens categorize predict MODEL --input FILE --output predictions.csv` for more)"
        )
    return frame


def default_mapping(columns: list[str]) -> dict[str, str]:
    """Each schema field mapped to the column of the same name, else to a common name the readers detect
    (``product_name`` -> title, ``sku`` -> id, ...), else to nothing (row numbers for the id)."""
    try:
        detected = resolve_columns(columns, None, "upload").detected
    except CatalogError:
        detected = {}
    found = {field: field if field in columns else detected.get(field) for field in FIELDS}
    return {field: column or (ROW_NUMBER if field == "id" else NONE) for field, column in found.items()}


def mapping_text(mapping: dict[str, str]) -> str:
    """The mapping as the command line's ``--columns`` value (only the renamed fields)."""
    return ",".join(f"{f}={c}" for f, c in mapping.items() if c not in (NONE, ROW_NUMBER, f))


def to_catalog(frame: pd.DataFrame, mapping: dict[str, str], name: str) -> Catalog:
    """The uploaded rows as a catalog with the chosen columns as id/title/description (others kept as extras)."""
    chosen = {f: c for f, c in mapping.items() if c not in (NONE, ROW_NUMBER)}
    if len(set(chosen.values())) < len(chosen):
        raise CatalogError("each column can be used for one field only; pick different columns")
    if not {"title", "description"} & set(chosen):
        raise CatalogError("choose the column that holds the title and/or the one with the description")
    unused = {f: f"{f} (not used)" for f in FIELDS if f not in chosen and f in frame.columns}
    frame = frame.rename(columns=unused)
    frame = apply_columns(frame, resolve_columns(frame.columns, chosen, name, names={}))
    if "id" not in chosen:
        frame.insert(0, "id", [str(i) for i in range(1, len(frame) + 1)])
    return build_catalog(frame, root=None, name=Path(name).stem)


def categorize_catalog(model: LoadedModel, catalog: Catalog, progress=None) -> pd.DataFrame:
    """Each product's predicted category and confidence; the id, title, prediction and confidence come first."""
    texts = catalog.texts(model.predictor.text_fields)
    categories: list[str | None] = [None] * len(texts)
    confidence = [float("nan")] * len(texts)
    todo = [i for i, text in enumerate(texts) if text]
    for start in range(0, len(todo), CHUNK):
        rows = todo[start : start + CHUNK]
        for i, proba in zip(rows, model.batcher([(None, texts[i]) for i in rows])):
            ((categories[i], confidence[i]),) = top_k_from_proba(model.classes, proba[None, :], 1)[0]
        if progress is not None:
            done = min(start + CHUNK, len(todo))
            progress.progress(done / len(todo), text=f"{done} / {len(todo)} products")
    out = catalog.frame.copy()
    if "title" not in out.columns:
        out["title"] = None
    out["predicted category"] = categories
    out["confidence"] = confidence
    out["note"] = ["" if text else "no title or description" for text in texts]
    rest = [c for c in out.columns if c not in RESULT_COLUMNS and c != "note"]
    return out[RESULT_COLUMNS + rest + ["note"]].reset_index(drop=True)


def page(models: dict[str, LoadedModel]) -> None:
    st.header("Categorize a CSV catalog")
    model = pick_model(models, "categorize", "csv-model")
    if model is None:
        st.info("No categorization model in the models folder; train one with `skulens train` or `make demo`.")
        return
    st.write(
        "Upload a CSV of products. skulens reads each product's title and description "
        "(photos are not read from an upload; use `skulens categorize predict MODEL --input FILE --image-root PHOTOS` for that)."
    )
    upload = st.file_uploader("Catalog CSV", type=["csv", "tsv"], key="csv", max_upload_size=MAX_CSV_MB)
    if upload is None:
        return
    try:
        frame = read_upload(upload.getvalue(), upload.name)
    except CatalogError as exc:
        st.error(str(exc))
        return
    columns = [str(c) for c in frame.columns]
    st.caption(f"{upload.name}: {len(frame):,} rows; columns {', '.join(columns)}")
    defaults = default_mapping(columns)
    with st.form("csv-form"):
        st.write("Which column holds what?")
        mapping = {}
        for column, (field, label) in zip(st.columns(len(FIELDS)), FIELDS.items()):
            options = [ROW_NUMBER if field == "id" else NONE, *columns]
            mapping[field] = column.selectbox(label, options, index=options.index(defaults[field]), key=f"csv-{field}")
        submitted = st.form_submit_button(f"Categorize {len(frame):,} products", type="primary")
    if submitted:
        try:
            catalog = to_catalog(frame, mapping, upload.name)
        except CatalogError as exc:
            st.error(str(exc))
            return
        progress = st.progress(0.0, text=f"0 / {len(catalog):,} products")
        st.session_state.csv_result = (upload.file_id, model.name, catalog.issues, categorize_catalog(model, catalog, progress))
        progress.empty()
        if mapping_text(mapping):
            st.caption(f"Same mapping on the command line: `--columns {mapping_text(mapping)}`")
    stored = st.session_state.get("csv_result")
    if stored and stored[0] == upload.file_id and stored[1] == model.name:
        show_result(stored[3], stored[2], upload.name)


def show_result(result: pd.DataFrame, issues: list, name: str) -> None:
    done = result["predicted category"].notna()
    st.success(f"Categorized {int(done.sum()):,} of {len(result):,} products.")
    for issue in issues[:20]:
        st.warning(str(issue))
    if (~done).any():
        st.caption(f"{int((~done).sum()):,} rows have no title or description; see the `note` column.")
    counts = result.loc[done, "predicted category"].value_counts().rename_axis("category").reset_index(name="products")
    if len(counts):
        st.subheader("Predicted categories")
        bar_chart(counts, "category", "products", "products", percent=False)
    columns = {
        "id": st.column_config.TextColumn(width="small"),
        "title": st.column_config.TextColumn(width="medium"),
        "predicted category": st.column_config.TextColumn(width="medium"),
        "confidence": st.column_config.NumberColumn(format="percent", width="small"),
    }
    st.dataframe(result, hide_index=True, column_config=columns)
    st.download_button(
        "Download results (CSV)",
        csv_safe(result).to_csv(index=False).encode(),
        file_name=f"{Path(name).stem}-categories.csv",
        mime="text/csv",
        on_click="ignore",
    )
