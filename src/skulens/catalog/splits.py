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
