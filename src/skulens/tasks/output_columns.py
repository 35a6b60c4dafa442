"""The columns a person reads beside a prediction: which product (id, title, photo path), what it is now
(its current category), what the model says (top-k labels with rounded probabilities in plain columns)
and whether the two differ. Every per-product output file (CSV or Parquet) is built from these.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from skulens.catalog import Catalog, CatalogError

#: Decimals probabilities and scores are written with: enough to rank, short enough to read.
DECIMALS = 4


def _text_or_none(value: object) -> str | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return str(value)


def product_columns(catalog: Catalog, columns: Sequence[str] = ("title", "image")) -> dict[str, list]:
    """``id`` plus each of ``columns`` the catalog has (photo paths as written in the input)."""
    out: dict[str, list] = {"id": catalog.ids}
    for name in columns:
        if name in catalog.frame.columns:
            out[name] = [_text_or_none(v) for v in catalog.frame[name]]
    return out


def current_labels(catalog: Catalog, label: int | str | None) -> list[str | None] | None:
    """Each row's category now at the model's ``label`` (a level or a column), or None when the input has none."""
    if label is None:
        return None
    try:
        values = catalog.labels(label)
    except CatalogError:
        return None
    if values.isna().all():
        return None
    return [_text_or_none(v) for v in values]


def top_k_columns(rows: Sequence[Sequence[tuple[object, float]]], k: int, name: str = "category") -> dict[str, list]:
    """``{name}_1, probability_1, ... {name}_k, probability_k`` from each row's ranked (label, probability)
    pairs; probabilities rounded to :data:`DECIMALS`, blanks where a row has fewer than ``k``."""
    out: dict[str, list] = {}
    for rank in range(k):
        out[f"{name}_{rank + 1}"] = [_text_or_none(r[rank][0]) if len(r) > rank else None for r in rows]
        out[f"probability_{rank + 1}"] = [round(float(r[rank][1]), DECIMALS) if len(r) > rank else None for r in rows]
    return out


def differs_from_current(current: Sequence[str | None], predicted: Sequence[str | None]) -> list[bool | None]:
    """True where the top prediction is not the current category; None where either is missing."""
    return [None if c is None or p is None else c != p for c, p in zip(current, predicted)]


def prediction_frame(
    catalog: Catalog, rows: Sequence[Sequence[tuple[object, float]]], k: int, label: int | str | None = None
) -> pd.DataFrame:
    """id, title, image, ``current_category`` (when the input has one at ``label``), the top-k categories
    (``category_r`` / ``probability_r``) and ``differs_from_current``: the categorize output, without ``issue``."""
    columns = product_columns(catalog)
    current = current_labels(catalog, label)
    if current is not None:
        columns["current_category"] = current
    columns |= top_k_columns(rows, k)
    if current is not None:
        columns["differs_from_current"] = differs_from_current(current, columns["category_1"])
    frame = pd.DataFrame(columns)
    if "differs_from_current" in frame.columns:
        frame["differs_from_current"] = frame["differs_from_current"].astype("boolean")
    return frame


def readable_pairs(pairs: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Near-duplicate pairs (``id_a, id_b`` and scores) with each side's title and photo path beside its id
    (``title_a``, ``image_a``...) and the scores rounded to :data:`DECIMALS`."""
    products = pd.DataFrame(product_columns(catalog)).drop_duplicates("id").set_index("id")
    out = pd.DataFrame({"id_a": pairs["id_a"], "id_b": pairs["id_b"]})
    for side in ("a", "b"):
        for name in products.columns:
            out[f"{name}_{side}"] = pairs[f"id_{side}"].map(products[name])
    for name in pairs.columns.drop(["id_a", "id_b"]):
        values = pairs[name]
        out[name] = values.round(DECIMALS) if pd.api.types.is_float_dtype(values) else values
    return out


def readable_review_predictions(predictions: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Review predictions (id first) with the review's title, text and given ``rating`` (when the input has
    them) beside the id, and every probability and score rounded to :data:`DECIMALS`."""
    given = catalog.frame[[c for c in ("title", "review_text", "rating") if c in catalog.frame.columns]].reset_index(drop=True)
    out = pd.concat(
        [predictions[["id"]].reset_index(drop=True), given, predictions.drop(columns="id").reset_index(drop=True)], axis=1
    )
    floats = [c for c in out.columns if pd.api.types.is_float_dtype(out[c])]
    out[floats] = out[floats].round(DECIMALS)
    return out
