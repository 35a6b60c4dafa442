"""Seeded, stratified splits and optional class balancing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from skulens.catalog.schema import Catalog, CatalogError


@dataclass(frozen=True)
class Split:
    train: Catalog
    val: Catalog
    test: Catalog


def _stratify(labels: pd.Series, n_parts: int) -> pd.Series | None:
    """Labels to stratify on, or ``None`` when some class is too small to appear in every part."""
    counts = labels.value_counts()
    return labels if len(counts) > 1 and counts.min() >= n_parts else None


def split_catalog(
    catalog: Catalog,
    label: int | str | None = None,
    val_size: float = 0.15,
    test_size: float = 0.15,
    seed: int = 0,
) -> Split:
    """Train/val/test split, stratified on ``label`` (a category level or column) when given.

    Classes too small to appear in every part fall back to an unstratified split of those rows' part.
    """
    if len(catalog) < 3:
        raise CatalogError(f"catalog '{catalog.name}' has {len(catalog)} rows; a split needs at least 3")
    rows = np.arange(len(catalog))
    labels = catalog.labels(label).fillna("<none>").astype(str) if label is not None else None
    holdout = val_size + test_size
    strat = _stratify(labels, 3) if labels is not None else None
    train, rest = train_test_split(rows, test_size=holdout, random_state=seed, stratify=strat)
    if val_size <= 0:
        val, test = rest[:0], rest
    else:
        rest_strat = _stratify(labels.iloc[rest], 2) if labels is not None else None
        val, test = train_test_split(rest, test_size=test_size / holdout, random_state=seed, stratify=rest_strat)
    return Split(catalog.subset(sorted(train)), catalog.subset(sorted(val)), catalog.subset(sorted(test)))


def balance_catalog(catalog: Catalog, label: int | str, strategy: str = "under", seed: int = 0) -> Catalog:
    """Equalise class counts by undersampling to the smallest class or oversampling to the largest."""
    if strategy not in ("under", "over"):
        raise CatalogError(f"balance strategy must be 'under' or 'over', not '{strategy}'")
    labels = catalog.labels(label)
    present = labels.notna()
    groups = labels[present].groupby(labels[present]).groups
    target = (min if strategy == "under" else max)(len(idx) for idx in groups.values())
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for idx in groups.values():
        idx = np.asarray(idx)
        replace = strategy == "over" and len(idx) < target
        chosen.extend(rng.choice(idx, size=target, replace=replace).tolist())
    balanced = catalog.subset(sorted(chosen))
    if strategy == "over":
        balanced.frame["id"] = balanced.frame["id"] + np.where(
            balanced.frame["id"].duplicated(), "#" + balanced.frame.groupby("id").cumcount().astype(str), ""
        )
    return balanced


def normalise_text(text: object) -> str:
    """Lower-case, whitespace-collapsed text (punctuation kept): the key that finds duplicate reviews."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    return " ".join(str(text).lower().split())


def text_groups(catalog: Catalog, fields: tuple[str, ...] = ("review_text",)) -> np.ndarray:
    """A group key per row: the hash of its normalised text in ``fields`` (rows without text get their id,
    so each is a group of its own). Rows with the same key must stay on one side of a split."""
    import hashlib

    texts = catalog.texts(fields, sep=" ")
    keys = []
    for row_id, text in zip(catalog.ids, texts):
        norm = normalise_text(text)
        keys.append(hashlib.sha1(norm.encode("utf-8")).hexdigest() if norm else f"id:{row_id}")
    return np.array(keys)


def group_split(
    catalog: Catalog,
    test_size: float = 0.2,
    label: int | str | None = None,
    groups: np.ndarray | list | None = None,
    fields: tuple[str, ...] = ("review_text",),
    seed: int = 0,
) -> tuple[Catalog, Catalog]:
    """Seeded train/test split that keeps every group on one side (no leakage of duplicate texts).

    ``groups`` defaults to :func:`text_groups` (duplicate normalised texts share a group). The split is
    drawn over groups (``test_size`` of the groups go to test), stratified on each group's ``label`` (its
    first row's) when given and every class has at least two groups. With mostly singleton groups, as in
    review data, the row shares match ``test_size`` closely; it is much faster than StratifiedGroupKFold.
    """
    if len(catalog) < 2:
        raise CatalogError(f"catalog '{catalog.name}' has {len(catalog)} rows; a split needs at least 2")
    if not 0 < test_size < 1:
        raise CatalogError(f"test_size must be between 0 and 1, not {test_size}")
    groups = text_groups(catalog, fields) if groups is None else np.asarray(groups)
    if len(groups) != len(catalog):
        raise CatalogError(f"groups has {len(groups)} entries but the catalog has {len(catalog)} rows")
    unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if len(unique) < 2:
        raise CatalogError("every row is in the same group; a group-aware split needs at least two groups")
    strat = None
    if label is not None:
        labels = catalog.labels(label).fillna("<none>").astype(str).to_numpy()
        group_labels = pd.Series(labels[first])
        strat = _stratify(group_labels, 2)
        n_test = max(1, int(round(test_size * len(unique))))
        if strat is not None and (n_test < group_labels.nunique() or len(unique) - n_test < group_labels.nunique()):
            strat = None  # too few groups for every class on both sides
    _, test_groups = train_test_split(np.arange(len(unique)), test_size=test_size, random_state=seed, stratify=strat)
    in_test = np.isin(inverse, test_groups)
    return catalog.subset(np.flatnonzero(~in_test)), catalog.subset(np.flatnonzero(in_test))
