"""Seeded, stratified splits, duplicate groups for group-aware splits, and optional class balancing."""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

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
    from sklearn.model_selection import train_test_split  # imported on use: ~1.5 s of every CLI start otherwise

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


def normalise_title(text: object) -> str:
    """Lower-case text with every run of whitespace or punctuation collapsed to one space: the key under
    which two product titles count as the same ("Blue T-Shirt!" == "blue t shirt")."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    return re.sub(r"[\W_]+", " ", str(text).lower()).strip()


def _image_digests(catalog: Catalog) -> list[str | None]:
    """sha256 of each row's image file (``None`` where a row has no readable image)."""
    from skulens.catalog.images import ImageLoadError, read_image_bytes

    if "image" not in catalog.frame.columns:
        return [None] * len(catalog)
    roots = getattr(catalog, "image_roots", None) or catalog.root
    digests: list[str | None] = []
    for path in catalog.frame["image"]:
        if path is None or (isinstance(path, float) and np.isnan(path)) or not str(path).strip():
            digests.append(None)
            continue
        try:
            digests.append(hashlib.sha256(read_image_bytes(path, roots)).hexdigest())
        except (ImageLoadError, OSError):
            digests.append(None)
    return digests


def duplicate_groups(catalog: Catalog, title_field: str = "title", images: bool = True) -> np.ndarray:
    """A group id per row (0..groups-1): rows that share a normalised title (:func:`normalise_title`) or
    identical image bytes (sha256 of the file) are in one group, transitively (connected components).

    Rows without a title or a readable image only join groups through what they have; a row with
    neither is a group of its own. Use the ids with a group-aware splitter so duplicates never
    straddle train and test.
    """
    keys: list[list[str]] = [[] for _ in range(len(catalog))]
    if title_field in catalog.frame.columns:
        for row, title in enumerate(catalog.frame[title_field]):
            norm = normalise_title(title)
            if norm:
                keys[row].append("t:" + norm)
    if images:
        for row, digest in enumerate(_image_digests(catalog)):
            if digest:
                keys[row].append("i:" + digest)
    key_ids: dict[str, int] = {}
    rows, cols = [], []
    for row, row_keys in enumerate(keys):
        for key in row_keys:
            rows.append(row)
            cols.append(len(catalog) + key_ids.setdefault(key, len(key_ids)))
    size = len(catalog) + len(key_ids)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    _, groups = np.unique(labels[: len(catalog)], return_inverse=True)
    return groups.astype(np.int64)


def grouping_summary(groups: Sequence, by: Sequence[str]) -> dict:
    """What was grouped and how: ``{"by": [...], "groups": N, "rows_in_shared_groups": M}`` (M counts
    rows whose group has at least two rows)."""
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    return {"by": list(by), "groups": int(len(counts)), "rows_in_shared_groups": int((counts[inverse] > 1).sum())}


def grouped_folds(y: Sequence, groups: Sequence, folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Seeded ``StratifiedGroupKFold`` (train, test) row indices: no group is on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    y, groups = np.asarray(y), np.asarray(groups)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        yield from splitter.split(np.zeros(len(y)), y, groups)


def grouped_holdout(rows: np.ndarray, y: Sequence, groups: Sequence, val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` (indices into ``y``/``groups``) into (fit, validation) parts, about ``val_size`` of
    them in validation, stratified on ``y`` and grouped: one fold of a seeded ``StratifiedGroupKFold``."""
    rows = np.asarray(rows)
    folds = max(2, int(round(1 / val_size)))
    y_rows, group_rows = np.asarray(y)[rows], np.asarray(groups)[rows]
    fit, val = next(grouped_folds(y_rows, group_rows, folds, seed))
    return rows[fit], rows[val]


def text_groups(catalog: Catalog, fields: tuple[str, ...] = ("review_text",)) -> np.ndarray:
    """A group key per row: the hash of its normalised text in ``fields`` (rows without text get their id,
    so each is a group of its own). Rows with the same key must stay on one side of a split."""
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
    from sklearn.model_selection import train_test_split

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


#: Colour words removed from titles by :func:`family_key` besides a catalog's own colour values.
COLOUR_WORDS: tuple[str, ...] = (
    "black", "white", "blue", "navy", "red", "green", "yellow", "pink", "purple", "grey", "gray", "brown",
    "orange", "beige", "maroon", "cream", "gold", "golden", "silver", "olive", "teal", "khaki", "charcoal",
    "magenta", "violet", "turquoise", "peach", "tan", "rust", "mustard", "lavender", "burgundy", "multi",
    "multicolour", "multicolor", "multicoloured", "copper", "bronze", "coffee", "mauve", "nude", "metallic",
    "steel", "taupe", "rose", "fuchsia", "indigo", "aqua", "lime", "melange", "off white", "sea green",
)  # fmt: skip


def colour_pattern(colours: Sequence[str] = ()) -> re.Pattern[str]:
    """A regex matching any colour phrase (``colours`` plus :data:`COLOUR_WORDS`) as whole words of a
    :func:`normalise_title` text; longer phrases first, so "navy blue" goes before "blue"."""
    phrases = {normalise_title(c) for c in (*colours, *COLOUR_WORDS)} - {""}
    ordered = sorted(phrases, key=lambda p: (-len(p), p))
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in ordered) + r")\b")


def family_key(title: object, colours: re.Pattern[str] | Sequence[str] = ()) -> str:
    """The product-family key of a title: lower-cased, punctuation and colour words removed, whitespace
    collapsed, so colour variants of one style share it ("Nike Men Black Tee" == "Nike Men Navy Blue Tee")."""
    pattern = colours if isinstance(colours, re.Pattern) else colour_pattern(colours)
    return " ".join(pattern.sub(" ", normalise_title(title)).split())


def family_keys(catalog: Catalog, colour_column: str = "colour") -> np.ndarray:
    """:func:`family_key` of every row's title, removing the catalog's own ``colour_column`` values too
    (rows without a title get ``id:<id>``, a family of their own)."""
    colours = catalog.frame[colour_column].dropna().astype(str).unique().tolist() if colour_column in catalog.frame else []
    pattern = colour_pattern(colours)
    titles = catalog.frame["title"] if "title" in catalog.frame.columns else pd.Series([None] * len(catalog))
    keys = [family_key(t, pattern) for t in titles]
    return np.array([k or f"id:{i}" for k, i in zip(keys, catalog.ids)], dtype=object)


def brand_category_keys(catalog: Catalog) -> np.ndarray:
    """The coarse family key for catalogs without ordered ids: brand (else the first title word) + the
    top category level."""
    brands = catalog.frame["brand"] if "brand" in catalog.frame.columns else pd.Series([None] * len(catalog))
    titles = catalog.frame["title"] if "title" in catalog.frame.columns else pd.Series([None] * len(catalog))
    tops = catalog.labels(0) if catalog.has("category") else pd.Series([None] * len(catalog))
    keys = []
    for brand, title, top, row_id in zip(brands, titles, tops, catalog.ids):
        maker = normalise_title(brand) or (normalise_title(title).split() or [""])[0]
        keys.append(f"{maker}|{normalise_title(top)}" if maker else f"id:{row_id}")
    return np.array(keys, dtype=object)


def concat_catalogs(catalogs: Sequence[Catalog], name: str) -> Catalog:
    """One catalog from several with distinct ids; relative image paths are made absolute under each
    catalog's own root, and the image roots are the union."""
    frames, roots = [], []
    for catalog in catalogs:
        frame = catalog.frame.copy()
        if "image" in frame.columns and catalog.root is not None:
            root = Path(catalog.root).resolve()
            frame["image"] = [p if p is None or Path(p).is_absolute() else str(root / p) for p in frame["image"]]
        frames.append(frame)
        roots.extend(catalog.image_roots)
    frame = pd.concat(frames, ignore_index=True)
    repeated = frame["id"][frame["id"].duplicated()]
    if len(repeated):
        raise CatalogError(f"catalogs {[c.name for c in catalogs]} share ids (e.g. {repeated.iloc[0]}); give them distinct ids")
    return Catalog(frame, root=None, name=name, image_roots=tuple(roots))


@dataclass(frozen=True)
class NewProductsSplit:
    """A gallery of products listed after training, and a training pool without their families.

    ``removed`` counts training-pool rows dropped because their family key equals a gallery product's;
    ``protocol`` describes the split (for a benchmark's JSON).
    """

    train: Catalog
    gallery: Catalog
    removed: int
    protocol: dict


def _numeric_ids(catalog: Catalog) -> np.ndarray | None:
    ids = pd.to_numeric(catalog.frame["id"], errors="coerce")
    return None if ids.isna().any() else ids.to_numpy(dtype=np.int64)


def new_products_split(
    catalog: Catalog,
    extra_training: Sequence[Catalog] = (),
    id_threshold: int | None = 18000,
    gallery_size: int = 1000,
    seed: int = 0,
    remove_families: bool = True,
) -> NewProductsSplit:
    """The new-products protocol (issue #21).

    With numeric ids and ``id_threshold``: the gallery is ``gallery_size`` products drawn with
    ``numpy.random.default_rng(seed).choice(sorted(ids >= id_threshold), gallery_size, replace=False)``;
    the training pool is the rows with ids below the threshold plus every row of ``extra_training``,
    minus (when ``remove_families``) rows whose :func:`family_key` equals a gallery product's. Without
    ordered ids (or ``id_threshold=None``) whole brand/first-word + top-category groups
    (:func:`brand_category_keys`) are drawn, seeded, into the gallery until it holds ``gallery_size`` rows;
    the rest of the catalog and ``extra_training`` is the training pool, again without gallery families.
    """
    ids = _numeric_ids(catalog) if id_threshold is not None else None
    if ids is not None:
        later = np.flatnonzero(ids >= id_threshold)
        if len(later) < gallery_size:
            raise CatalogError(
                f"catalog '{catalog.name}' has {len(later)} products with id >= {id_threshold}; "
                f"the gallery needs {gallery_size} (lower gallery_size or id_threshold)"
            )
        order = later[np.argsort(ids[later], kind="stable")]
        chosen = np.random.default_rng(seed).choice(ids[order], gallery_size, replace=False)
        gallery_rows = np.sort(np.flatnonzero(np.isin(ids, chosen)))
        own_train_rows = np.flatnonzero(ids < id_threshold)
        how = f"id >= {id_threshold}: seeded choice of {gallery_size} (seed {seed}); training ids < {id_threshold}"
    else:
        groups = brand_category_keys(catalog)
        unique = np.unique(groups)
        if len(unique) < 2:
            raise CatalogError(f"catalog '{catalog.name}' forms one brand/category group; a new-products split needs two or more")
        taken: list[int] = []
        for group in np.random.default_rng(seed).permutation(unique):
            if len(taken) >= min(gallery_size, len(catalog) // 2):
                break
            taken.extend(np.flatnonzero(groups == group).tolist())
        gallery_rows = np.sort(np.array(taken, dtype=np.int64))
        own_train_rows = np.setdiff1d(np.arange(len(catalog)), gallery_rows)
        how = f"whole brand/first-word + top-category groups drawn (seed {seed}) until {len(gallery_rows)} rows"
    gallery = catalog.subset(gallery_rows)
    pool = concat_catalogs([catalog.subset(own_train_rows), *extra_training], name=f"{catalog.name}-train")
    removed = 0
    if remove_families:
        gallery_families = set(family_keys(gallery))
        clash = np.isin(family_keys(pool), list(gallery_families))
        removed = int(clash.sum())
        pool = pool.subset(np.flatnonzero(~clash))
    protocol = {
        "gallery": how,
        "gallery_rows": len(gallery),
        "train_rows": len(pool),
        "train_sources": [catalog.name, *(c.name for c in extra_training)],
        "family_rows_removed": removed,
        "family_key": "lower-cased title, punctuation and colour words removed" if remove_families else None,
    }
    return NewProductsSplit(train=pool, gallery=gallery, removed=removed, protocol=protocol)
