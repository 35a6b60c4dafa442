"""CategoryPredictor: categories from image, text or both, with a probability (confidence) per class."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from skulens import __version__
from skulens.catalog.schema import Catalog, CatalogError
from skulens.heads.fusion import make_fusion, restore_fusion
from skulens.heads.prior_shift import MIN_ROWS, LabelShift, PriorShift, adapt_priors, fit_label_shift
from skulens.metrics import classification_metrics
from skulens.metrics.classification import majority_baseline
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.inputs import (
    Data,
    ImageInput,
    as_catalog,
    hash_ids,
    load_product_image,
    product_text,
    training_id_mask,
)
from skulens.tasks.model_folder import (
    array_part,
    check_config,
    check_restored,
    read_model_folder,
    restore_label_shift,
    restoring,
    saved_training_ids,
    training_record,
    write_model_folder,
)
from skulens.tasks.predictor import (
    WARM_UP_TEXT,
    ConfigField,
    ExtractorEncoders,
    catalog_row_issues,
    config_dict,
    config_from,
    row_issue_texts,
    with_issues,
)

log = logging.getLogger(__name__)

TASK = "categorize"
DEFAULT_ENCODERS = ("efficientnet-lite0", "minilm", "tfidf")


def rollup(proba: np.ndarray, classes: Sequence[str], parents: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Sum fine-level probabilities into their parent categories: (parent classes, parent proba)."""
    parent_names = np.array(sorted(set(parents[c] for c in classes)))
    index = np.searchsorted(parent_names, [parents[c] for c in classes])
    out = np.zeros((proba.shape[0], len(parent_names)))
    np.add.at(out.T, index, proba.T)
    return parent_names, out


def top_k_from_proba(classes: Sequence[str], proba: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    """For each row of ``proba``, the ``k`` most likely classes with their probabilities."""
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(str(classes[j]), float(proba[i, j])) for j in row] for i, row in enumerate(order)]


@dataclass(frozen=True)
class CategorizeConfig:
    """A categorizer's settings (saved in ``config.json``; see :class:`CategoryPredictor`)."""

    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    head: str = "linear"
    label: int | str = 0
    fusion: str = "late"
    min_class_count: int = 5
    text_fields: tuple[str, ...] = ("title", "description")
    seed: int = 0


@dataclass(frozen=True)
class Evaluation:
    """What :meth:`CategoryPredictor.evaluate_rows` scored: metrics, the rows, their labels and probabilities."""

    metrics: dict
    rows: Catalog
    y_true: np.ndarray
    proba: np.ndarray


class CategoryPredictor(ExtractorEncoders):
    """Train on a catalog with known categories, then categorize new products.

    Data is a :class:`Catalog` or a pandas DataFrame in the skulens schema. ``label`` is a category
    level (0 = coarsest) or a column name. ``encoders`` are registry names; with more than one, their
    heads are combined by ``fusion``: ``late`` (one head per encoder, a weighted product of experts with
    weights fitted on held-out log-loss) or ``early`` (one head on the concatenated features). Classes
    with fewer than ``min_class_count`` training rows are dropped, and the reason is logged and kept in
    ``dropped_classes_``. The ids of the training rows are kept as sha256 hashes (``training_ids_``,
    saved with the model) so :meth:`evaluate` can leave them out.
    """

    task: ClassVar[str] = TASK
    batched: ClassVar[bool] = True

    def __init__(
        self,
        encoders: Sequence[str] = DEFAULT_ENCODERS,
        head: str = "linear",
        label: int | str = 0,
        fusion: str = "late",
        min_class_count: int = 5,
        text_fields: Sequence[str] = ("title", "description"),
        seed: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        if not encoders:
            raise CatalogError("give at least one encoder, e.g. encoders=['minilm']")
        self.config = CategorizeConfig(tuple(encoders), head, label, fusion, min_class_count, tuple(text_fields), seed)
        self.extractor = FeatureExtractor(self.encoders, self.text_fields, cache_dir=cache_dir, progress=progress)
        self.metrics_: dict = {}

    # ----- the settings, as in config ---------------------------------------------------------
    encoders = ConfigField[list[str]](list)
    head = ConfigField[str]()
    label = ConfigField[int | str]()
    fusion = ConfigField[str]()
    min_class_count = ConfigField[int]()
    text_fields = ConfigField[tuple[str, ...]]()
    seed = ConfigField[int]()

    # ----- training -------------------------------------------------------------------------
    def training_rows(self, catalog: Catalog) -> tuple[Catalog, np.ndarray]:
        """Rows usable for training (labelled, in a class with enough rows) and their labels."""
        if len(catalog) == 0:
            raise CatalogError(f"catalog '{catalog.name}' is empty; nothing to train on")
        labels = catalog.labels(self.label)
        labelled = labels.notna().to_numpy()
        counts = labels[labelled].value_counts()
        rare = counts[counts < self.min_class_count]
        self.dropped_classes_ = {str(c): int(n) for c, n in rare.items()}
        for name, count in self.dropped_classes_.items():
            log.warning("class %r has %d training row(s) (< min_class_count=%d); dropped", name, count, self.min_class_count)
        keep = labelled & ~labels.isin(rare.index).to_numpy()
        if keep.sum() == 0:
            raise CatalogError(
                f"no trainable rows in '{catalog.name}' at label {self.label!r}: every class has fewer than "
                f"{self.min_class_count} rows; lower min_class_count or pick a coarser level"
            )
        self._record_parents(catalog, keep)
        return catalog.subset(np.flatnonzero(keep)), labels[keep].astype(str).to_numpy()

    def _record_parents(self, catalog: Catalog, keep: np.ndarray) -> None:
        self.parents_: dict[str, list[str]] = {}
        if isinstance(self.label, int) or str(self.label).isdigit():
            level = int(self.label)
            for path in catalog.frame["category"][keep]:
                if isinstance(path, tuple) and len(path) > level:
                    self.parents_.setdefault(path[level], list(path[:level]))

    def fit(self, data: Data) -> CategoryPredictor:
        """Embed the rows (cached), fit any fitted encoders and the heads. Returns self."""
        train, y = self.training_rows(as_catalog(data))
        self.extractor.fit(train)
        return self.fit_features(self.extractor.transform(train), y, ids=train.ids)

    def fit_features(
        self,
        features: Features,
        y: np.ndarray,
        ids: Sequence[str] | None = None,
        fitted_heads: dict | None = None,
        label_shift: bool = True,
    ) -> CategoryPredictor:
        """Fit the heads on precomputed features (used by benchmarks that share embeddings across folds);
        ``ids`` are the training rows' ids, recorded (hashed) so :meth:`evaluate` can leave them out;
        ``fitted_heads`` shares block heads between fits on the same rows (see :meth:`LateFusion.fit`);
        ``label_shift=False`` skips fitting the label-shift adaptation (a fit whose priors are never adapted)."""
        fusion = make_fusion(self.fusion, self.head, seed=self.seed)
        self.model_ = fusion.fit(features.blocks, features.present, np.asarray(y), fitted_heads=fitted_heads)
        self.classes_ = self.model_.classes_
        labels = np.asarray(y).astype(str)
        self.class_prior_ = np.array([np.mean(labels == str(c)) for c in self.classes_])
        self.training_ids_ = hash_ids(ids if ids is not None else [])
        self.label_shift_ = self._fit_label_shift(features, labels) if label_shift else None
        return self

    @property
    def shift_block(self) -> str:
        """The encoder whose embeddings test whether a batch lies in the training domain (a dense one if any)."""
        return next((name for name in self.encoders if name != "tfidf"), self.encoders[0])

    def _fit_label_shift(self, features: Features, labels: np.ndarray) -> LabelShift | None:
        """Label-shift adaptation fitted on the fusion's held-out posteriors (None without enough of them)."""
        rows = getattr(self.model_, "holdout_rows_", np.array([], dtype=int))
        if len(rows) < 2 * MIN_ROWS:
            return None
        y_index = np.searchsorted(np.asarray(self.classes_).astype(str), labels[rows])
        return fit_label_shift(self.model_.holdout_proba_, y_index, features.blocks[self.shift_block][rows], seed=self.seed)

    def adapted_proba(self, proba: np.ndarray, features: Features | None = None) -> tuple[np.ndarray, PriorShift]:
        """``proba`` adapted to the class priors of these rows (:mod:`skulens.heads.prior_shift`: the adaptation
        fitted with the model, or plain EM for models saved before it); ``features`` of the same rows let it
        check that the rows lie in the training domain."""
        if getattr(self, "class_prior_", None) is None:
            raise CatalogError("this model was saved without its training class priors; retrain it to use --adapt-priors")
        if getattr(self, "label_shift_", None) is None:
            return adapt_priors(proba, self.class_prior_)
        vectors = None
        if features is not None and np.all(features.present[self.shift_block]):
            vectors = features.blocks[self.shift_block]
        return self.label_shift_.adapt(proba, vectors, seed=self.seed, names=[str(c) for c in self.classes_])

    # ----- prediction -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise CatalogError("this CategoryPredictor is not trained yet; call fit(catalog) or load(folder)")

    def proba_from_features(self, features: Features) -> np.ndarray:
        """Class probabilities of precomputed features, columns in ``classes_`` order."""
        self._check_fitted()
        return self.model_.predict_proba(features.blocks, features.present)

    def predict_proba(self, data: Data) -> np.ndarray:
        """Class probabilities, shape (rows, classes), columns in ``classes_`` order."""
        self._check_fitted()
        return self.proba_from_features(self.extractor.transform(as_catalog(data)))

    def predict_inputs(self, images: Sequence, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for products held in memory (no embedding cache, no files).

        ``images[i]`` is a decoded RGB PIL image, an array made by the image encoder's ``prepare``, or
        ``None``; ``texts[i]`` is the product's text fields joined as in a catalog (see
        :func:`skulens.tasks.inputs.product_text`). Equal to :meth:`predict_proba` on the same products.
        """
        self._check_fitted()
        return self.proba_from_features(self.extractor.transform_inputs(images, texts))

    def predict(self, data: Data) -> pd.DataFrame:
        """One row per product: ``id``, the most likely ``category`` and its ``probability``, ``issue``.

        A product none of whose inputs could be read gets no category (``None``), only its issue; a product
        read in part (e.g. its photo failed, its text did not) is predicted from what was read, and says so.
        """
        self._check_fitted()
        catalog = as_catalog(data)
        features = self.extractor.transform(catalog)
        proba = self.proba_from_features(features)
        read = np.logical_or.reduce([features.present[name] for name in self.encoders])
        issues = row_issue_texts(len(catalog), catalog_row_issues(catalog, features.issues))
        issues = [
            issue or ("" if ok else f"nothing this model reads ({', '.join(self.encoders)}) is present")
            for issue, ok in zip(issues, read)
        ]
        best = proba.argmax(axis=1)
        categories = [str(self.classes_[j]) if ok else None for j, ok in zip(best, read)]
        probability = [float(proba[i, j]) if ok else float("nan") for i, (j, ok) in enumerate(zip(best, read))]
        return with_issues(catalog.ids, {"category": categories, "probability": probability}, issues)

    def top_k(self, data: Data, k: int = 5) -> list[list[tuple[str, float]]]:
        """For each row, the ``k`` most likely categories with their probabilities."""
        return top_k_from_proba(self.classes_, self.predict_proba(data), k)

    def predict_parents(self, data: Data, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Roll fine-level probabilities up to an ancestor ``level``: (parent classes, proba)."""
        self._check_fitted()
        mapping = {}
        for cls in self.classes_:
            path = self.parents_.get(str(cls), [])
            if level >= len(path):
                raise CatalogError(f"class {cls!r} has no ancestor at level {level}; the model is trained at level {self.label}")
            mapping[str(cls)] = path[level]
        return rollup(self.predict_proba(data), [str(c) for c in self.classes_], mapping)

    # ----- evaluation -----------------------------------------------------------------------
    def evaluate(self, data: Data, include_training_rows: bool = False, adapt_priors: bool = False) -> dict:
        """Metrics of :func:`skulens.metrics.classification_metrics` on the labelled rows of ``data``.

        Rows are counted, not silently dropped: ``excluded_training_rows`` (ids the model was trained
        on; left out unless ``include_training_rows``), ``unlabelled_rows`` (no label), and
        ``unknown_class_rows`` / ``unknown_classes`` (labels the model does not know, class -> rows).
        ``n`` + these three counts = the rows of ``data``. ``majority_baseline`` scores always predicting the
        most frequent training class; with ``adapt_priors`` the posteriors are first adapted to the class
        priors EM estimates on these rows (without their labels), reported in ``prior_shift``.
        """
        return self.evaluate_rows(data, include_training_rows, adapt_priors).metrics

    def evaluate_rows(self, data: Data, include_training_rows: bool = False, adapt_priors: bool = False) -> Evaluation:
        """:meth:`evaluate` plus the scored rows, their true labels and probabilities (for reports)."""
        self._check_fitted()
        catalog = as_catalog(data)
        labels = catalog.labels(self.label)
        training = np.zeros(len(catalog), dtype=bool)
        if not include_training_rows:
            training = training_id_mask(catalog.ids, self.training_ids_)
        labelled = labels.notna().to_numpy() & ~training
        known = labelled & labels.isin(self.classes_).to_numpy()
        unknown = labels[labelled & ~known].astype(str).value_counts()
        counts = {
            "excluded_training_rows": int(training.sum()),
            "unlabelled_rows": int((~training & ~labelled).sum()),
            "unknown_class_rows": int(unknown.sum()),
            "unknown_classes": {str(c): int(n) for c, n in unknown.items()},
            "training_ids_recorded": int(len(self.training_ids_)),
        }
        if not known.any():
            raise CatalogError(self._nothing_to_evaluate(catalog, counts))
        rows = catalog.subset(np.flatnonzero(known))
        features = self.extractor.transform(rows)
        proba = self.proba_from_features(features)
        shift = None
        if adapt_priors:
            proba, shift = self.adapted_proba(proba, features)
        y_true = labels[known].astype(str).to_numpy()
        metrics = classification_metrics(y_true, self.classes_[proba.argmax(axis=1)], self.classes_, proba)
        metrics.update(counts)
        trained_on = set(labels[training & labels.notna().to_numpy()].astype(str))
        metrics["classes_only_in_training_rows"] = [c for c in metrics.get("absent_classes", []) if c in trained_on]
        if getattr(self, "class_prior_", None) is not None:
            metrics["majority_baseline"] = majority_baseline(y_true, self.classes_[int(np.argmax(self.class_prior_))])
        if shift is not None:
            metrics["prior_shift"] = shift.as_dict()
            if shift.applied:  # the same rows without adapting: did it help?
                plain = self.proba_from_features(features)
                before = classification_metrics(y_true, self.classes_[plain.argmax(axis=1)], self.classes_)
                metrics["unadapted"] = {k: (before[k], metrics[k]) for k in ("accuracy", "macro_f1")}
        self.metrics_ = metrics
        return Evaluation(metrics, rows, y_true, proba)

    def _nothing_to_evaluate(self, catalog: Catalog, counts: dict) -> str:
        reason = f"no row of '{catalog.name}' ({len(catalog)} rows) can be evaluated: "
        if counts["excluded_training_rows"] and not counts["unknown_class_rows"]:
            return (
                reason + f"all {counts['excluded_training_rows']} labelled rows were used to train this model (matched by id); "
                "evaluate on held-out rows, or pass include_training_rows=True (CLI: --include-training-rows) "
                "to score training rows (optimistic)"
            )
        known = ", ".join(map(str, self.classes_[:10])) + (" ..." if len(self.classes_) > 10 else "")
        return (
            reason + f"{counts['excluded_training_rows']} were training rows, {counts['unlabelled_rows']} have no label "
            f"at {self.label!r}, {counts['unknown_class_rows']} carry classes the model does not know "
            f"({', '.join(list(counts['unknown_classes'])[:5])}); the model knows: {known}"
        )

    # ----- persistence ----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write a self-describing model folder: ``config.json`` + ``weights.npz`` (no pickle)."""
        self._check_fitted()
        config = {
            "task": TASK,
            "skulens_version": __version__,
            **config_dict(self.config),
            "encoders": self.extractor.identities(),
            "classes": [str(c) for c in self.classes_],
            "class_prior": [float(p) for p in self.class_prior_] if getattr(self, "class_prior_", None) is not None else None,
            "parents": self.parents_,
            "dropped_classes": self.dropped_classes_ if hasattr(self, "dropped_classes_") else {},
            "metrics": {k: v for k, v in self.metrics_.items() if k in ("accuracy", "macro_f1", "ece", "n")},
        }
        record, arrays = training_record(getattr(self, "label_shift_", None), self.training_ids_)
        arrays.update({f"fusion.{k}": v for k, v in self.model_.to_arrays().items()})
        arrays.update({f"encoder.{k}": v for k, v in self.extractor.to_arrays().items()})
        return write_model_folder(folder, config | record, arrays)

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None) -> CategoryPredictor:
        """Load a folder written by :meth:`save`; fails clearly if it is not one or an encoder is missing."""
        config, arrays = read_model_folder(folder, TASK)
        check_config(
            config,
            {
                "encoders": "encoders",
                "head": "str",
                "label": "label",
                "fusion": "str",
                "text_fields": "str_list",
                "classes": "classes",
            },
            folder,
        )
        with restoring(folder):
            settings = config_from(CategorizeConfig, config, encoders=tuple(config["encoders"]))
            predictor = cls(**vars(settings), cache_dir=cache_dir)
            predictor.extractor.restore_saved(arrays, config["encoders"], folder)
            predictor.classes_ = np.array(config["classes"])
            predictor.parents_ = config.get("parents", {})
            prior = config.get("class_prior")
            predictor.class_prior_ = (
                np.asarray(prior, dtype=float) if isinstance(prior, list) and len(prior) == len(predictor.classes_) else None
            )
            predictor.dropped_classes_ = config.get("dropped_classes", {})
            predictor.label_shift_ = restore_label_shift(config, arrays, folder)
            predictor.metrics_ = config.get("metrics", {})
            predictor.training_ids_ = saved_training_ids(arrays)
            predictor.model_ = restore_fusion(
                config["fusion"], array_part(arrays, "fusion"), predictor.encoders, predictor.classes_, config["head"]
            )
            check_restored(predictor.model_, predictor.extractor.zero_row(), len(predictor.classes_), folder)
        return predictor

    # ----- single products ------------------------------------------------------------------
    def image_resolution(self) -> int | None:
        """The largest input size of the model's image encoders (JPEGs are decoded at about this size)."""
        encoders = [self.extractor.encoder(name) for name in self.encoders]
        sizes = [getattr(e, "resolution", None) or 0 for e in encoders if e.modality == "image"]
        return max(sizes) if sizes else None

    def predict_one(
        self, image: ImageInput = None, title: str | None = None, description: str | None = None, k: int = 5
    ) -> list[tuple[str, float]]:
        """Top-``k`` categories of one product from an image (file path, bytes or PIL image) and/or text.

        Runs in memory, like :meth:`predict_inputs` (no embedding cache). An image that is missing or
        cannot be read raises :class:`~skulens.catalog.images.ImageLoadError` naming it, and a product
        with nothing this model reads raises :class:`CatalogError`: never a silent uniform answer.
        """
        self._check_fitted()
        resolution = self.image_resolution()
        pixels = load_product_image(image, draft_size=resolution)
        text = product_text({"title": title, "description": description}, self.text_fields)
        if pixels is None and not text:
            fields = ", ".join(self.text_fields)
            raise CatalogError(f"give an image, a title or a description to categorize (this model reads: images, {fields})")
        features = self.extractor.transform_inputs([pixels], [text])
        if not any(mask[0] for mask in features.present.values()):
            reads = "images" if resolution else "text (" + ", ".join(self.text_fields) + ")"
            raise CatalogError(f"this model ({', '.join(self.encoders)}) reads only {reads}; give the product's {reads}")
        if pixels is not None and resolution is None:
            log.warning("this model has no image encoder (%s); the image is not used", ", ".join(self.encoders))
        return top_k_from_proba(self.classes_, self.proba_from_features(features), k)[0]

    # ----- serving ----------------------------------------------------------------------------
    def serve_batch(self, items: list[tuple]) -> list[np.ndarray]:
        """Class probabilities of served items ``(prepared image or None, text)`` (see :meth:`predict_inputs`)."""
        return list(self.predict_inputs([image for image, _ in items], [text for _, text in items]))

    def warm_up(self) -> None:
        from PIL import Image

        image = Image.new("RGB", (64, 64), (128, 128, 128)) if "image" in self.modalities else None
        self.serve_batch([(image, WARM_UP_TEXT)])
