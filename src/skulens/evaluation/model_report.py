"""What a data scientist looks at for one classifier: reliability beside ECE, confusion in counts and
recall, the most confused class pairs, and the most confident mistakes with their product images.

:func:`write_evaluation_report` writes ``report.md`` + ``report.html`` for one model on one labelled
file (``skulens evaluate`` calls it); the categorize benchmark uses the same sections per selected model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skulens.catalog.schema import Catalog
from skulens.evaluation.html_report import Report, thumbnail_uri
from skulens.evaluation.plots import confusion_pair, reliability_bins, reliability_diagram
from skulens.evaluation.report import write_json
from skulens.metrics import classification_intervals, classification_metrics

GALLERY_SIZE = 24


def confused_pairs(matrix: Sequence[Sequence[int]], classes: Sequence[str], top: int = 10) -> list[dict]:
    """The ``top`` off-diagonal cells by count: true class, predicted class, rows, share of the true class."""
    matrix = np.asarray(matrix)
    support = matrix.sum(axis=1)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] == 0:
            break
        pairs.append(
            {
                "true": str(classes[i]),
                "predicted": str(classes[j]),
                "rows": int(off[i, j]),
                "share": float(off[i, j] / support[i]),
            }
        )
    return pairs


def confident_mistakes(y_true: Sequence, y_pred: Sequence, confidence: np.ndarray, limit: int = GALLERY_SIZE) -> np.ndarray:
    """Row indices of wrong predictions, most confident first (at most ``limit``)."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    return wrong[np.argsort(-np.asarray(confidence)[wrong], kind="stable")][:limit]


def _image_bytes(catalog: Catalog, row: int) -> bytes | None:
    from skulens.catalog.images import ImageLoadError, read_image_bytes

    if "image" not in catalog.frame.columns:
        return None
    path = catalog.frame["image"].iloc[row]
    if not isinstance(path, str) or not path.strip():
        return None
    try:
        return read_image_bytes(path, getattr(catalog, "image_roots", None) or catalog.root)
    except (ImageLoadError, OSError):
        return None


def gallery_items(
    catalog: Catalog | None, rows: np.ndarray, y_true: Sequence, y_pred: Sequence, confidence: np.ndarray
) -> list[dict]:
    """Gallery cards for ``rows`` (positions in ``catalog``, which is aligned with the predictions)."""
    items = []
    for row in rows:
        data = _image_bytes(catalog, int(row)) if catalog is not None else None
        title = ""
        if catalog is not None and "title" in catalog.frame.columns:
            value = catalog.frame["title"].iloc[int(row)]
            title = value if isinstance(value, str) else ""
        items.append(
            {
                "id": catalog.ids[int(row)] if catalog is not None else str(row),
                "title": title,
                "true": str(np.asarray(y_true)[row]),
                "predicted": str(np.asarray(y_pred)[row]),
                "confidence": float(confidence[row]),
                "thumbnail": thumbnail_uri(data) if data else None,
            }
        )
    return items


def add_model_sections(
    report: Report,
    out: Path,
    key: str,
    label: str,
    y_true: Sequence,
    y_pred: Sequence,
    proba: np.ndarray | None,
    classes: Sequence[str],
    confusion: Sequence[Sequence[int]],
    ece: float | None,
) -> dict:
    """Reliability diagram (with ECE) and confusion matrices as figures, then the confused-pairs table.
    Writes ``reliability_<key>.png`` and ``confusion_<key>.png`` into ``out``; returns the reliability bins."""
    figures = []
    bins: dict = {}
    if proba is not None:
        confidence = np.asarray(proba).max(axis=1)
        bins = reliability_bins(confidence, np.asarray(y_true) == np.asarray(y_pred))
        figures.append((reliability_diagram(bins, ece, out / f"reliability_{key}.png", label), f"reliability, ECE {ece:.3f}"))
    figures.append((confusion_pair(confusion, classes, out / f"confusion_{key}.png", label), "confusion: counts and recall"))
    report.figures(figures)
    pairs = confused_pairs(confusion, classes)
    if pairs:
        report.paragraph(f"Most confused class pairs ({label}):")
        report.table(
            pairs, [("true", "true class"), ("predicted", "predicted as"), ("rows", "rows"), ("share", "share of true class")]
        )
    return bins


def write_evaluation_report(
    metrics: dict,
    y_true: Sequence,
    y_pred: Sequence,
    proba: np.ndarray | None,
    classes: Sequence[str],
    catalog_rows: Catalog | None,
    out: Path,
    title: str,
    resamples: int = 1000,
    seed: int = 0,
    given_notes: Sequence[str] | None = None,
) -> Path:
    """Write ``metrics.json``, ``report.md``, ``report.html`` and PNGs for one model on labelled rows.

    ``y_true``/``y_pred``/``proba`` (columns in ``classes`` order) are aligned with ``catalog_rows``
    (the evaluated rows, used for titles and thumbnails of the misclassified gallery; may be ``None``).
    ``metrics`` is what the predictor's ``evaluate`` returned (its counts of excluded, unknown-class and
    unlabelled rows are reported when present); bootstrap intervals are added under ``"intervals"``.
    ``given_notes`` (e.g. the CLI's sentences about what was left out) replace the generated ones when given.
    Returns the HTML path.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = [str(c) for c in classes]
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    scored = classification_metrics(y_true, y_pred, classes, proba)
    intervals = classification_intervals(y_true, y_pred, resamples=resamples, seed=seed)
    metrics = {**metrics, "intervals": intervals}
    report = Report(title)
    report.paragraph(
        f"{len(y_true)} labelled rows scored. Macro-F1 averages the {len(classes) - len(scored['absent_classes'])} classes "
        f"present in these rows; 95% intervals are a {intervals['method']} ({resamples} resamples, seed {seed})."
    )
    notes = []
    for key, text in (
        ("excluded_training_rows", "rows the model was trained on were excluded"),
        ("unknown_class_rows", "rows carry a class the model does not know (not scored)"),
        ("unlabelled_rows", "rows have no label (not scored)"),
    ):
        if metrics.get(key):
            notes.append(f"{metrics[key]} {text}")
    if scored["absent_classes"]:
        notes.append("classes without rows here (not scored): " + ", ".join(scored["absent_classes"]))
    notes = list(given_notes) if given_notes is not None else notes
    if notes:
        report.paragraph("; ".join(notes) + ".")
    summary = {
        "rows": len(y_true),
        "accuracy": scored["accuracy"],
        "accuracy_ci": "[{:.3f}, {:.3f}]".format(*intervals["accuracy"]["ci95"]),
        "macro_f1": scored["macro_f1"],
        "macro_f1_ci": "[{:.3f}, {:.3f}]".format(*intervals["macro_f1"]["ci95"]),
        "ece": scored.get("ece"),
    }
    report.table(
        [summary],
        [
            ("rows", "rows"),
            ("accuracy", "accuracy"),
            ("accuracy_ci", "95% CI"),
            ("macro_f1", "macro-F1"),
            ("macro_f1_ci", "95% CI"),
            ("ece", "ECE"),
        ],
    )
    report.heading("Calibration and confusion")
    bins = add_model_sections(
        report, out, "model", title, y_true, y_pred, proba, classes, scored["confusion_matrix"], scored.get("ece")
    )
    metrics["reliability_bins"] = bins
    report.heading("Per class")
    report.table(
        [{"class": c, **v} for c, v in scored["per_class"].items()],
        [("class", "class"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("support", "support")],
    )
    if proba is not None:
        confidence = np.asarray(proba).max(axis=1)
        wrong = confident_mistakes(y_true, y_pred, confidence)
        if len(wrong):
            report.heading("Most confident mistakes")
            report.gallery(gallery_items(catalog_rows, wrong, y_true, y_pred, confidence))
    write_json(metrics, out / "metrics.json")
    return report.write(out)
