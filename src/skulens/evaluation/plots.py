"""Report plots (matplotlib, Agg backend, PNG): configuration comparison with intervals, reliability
diagram, confusion matrix in counts beside its row-normalised (recall) version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def short_label(name: object, width: int) -> str:
    """A class name that fits ``width`` characters: a category path keeps its last levels (what tells two
    classes apart), with ``…`` where the start was cut; other names keep their start."""
    text = str(name)
    if len(text) <= width:
        return text
    for sep in (" >> ", " > ", " | ", "/"):
        if sep in text:
            return "…" + text[-(width - 1) :]
    return text[: width - 1] + "…"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def comparison_chart(
    names: Sequence[str], values: Sequence[float], intervals: Sequence[Sequence[float]], path: Path, xlabel: str, title: str
) -> Path:
    """Horizontal bars of one score per configuration with its interval as error bars."""
    plt = _pyplot()
    values = np.asarray(values, dtype=float)
    low = values - np.array([i[0] for i in intervals], dtype=float)
    high = np.array([i[1] for i in intervals], dtype=float) - values
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(names) + 1.4))
    positions = np.arange(len(names))[::-1]
    ax.barh(positions, values, xerr=[np.clip(low, 0, None), np.clip(high, 0, None)], color="#4c78a8", capsize=3, height=0.6)
    for pos, value in zip(positions, values):
        ax.text(value, pos + 0.32, f"{value:.3f}", va="bottom", ha="right", fontsize=7)
    ax.set_yticks(positions, labels=[short_label(n, 40) for n in names], fontsize=8)
    finite = np.concatenate([values - low, values + high])
    finite = finite[np.isfinite(finite)]
    left = max(0.0, float(finite.min()) - 0.05) if len(finite) else 0.0
    ax.set_xlim(left, max(1.0, float(finite.max()) + 0.01) if len(finite) else 1.0)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict:
    """Per equal-width confidence bin: mean confidence, accuracy and row count (empty bins dropped)."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out: dict[str, list] = {"confidence": [], "accuracy": [], "count": [], "lower": [], "upper": []}
    for b in range(bins):
        mask = which == b
        if mask.any():
            out["confidence"].append(float(confidence[mask].mean()))
            out["accuracy"].append(float(correct[mask].mean()))
            out["count"].append(int(mask.sum()))
            out["lower"].append(float(edges[b]))
            out["upper"].append(float(edges[b + 1]))
    return out


def reliability_diagram(bins: dict, ece: float | None, path: Path, title: str) -> Path:
    """Accuracy per confidence bin against the diagonal, with the share of rows per bin below."""
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.6, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    widths = np.array(bins["upper"]) - np.array(bins["lower"])
    ax.bar(bins["lower"], bins["accuracy"], width=widths, align="edge", color="#4c78a8", edgecolor="white", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="#888", label="perfect calibration")
    centres = np.array(bins["lower"]) + widths / 2
    ax.plot(centres, bins["confidence"], "_", color="#e45756", markersize=10, markeredgewidth=2, label="mean confidence in bin")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title + (f"\nECE {ece:.3f}" if ece is not None else ""), fontsize=9)
    total = max(1, sum(bins["count"]))
    hist.bar(bins["lower"], np.array(bins["count"]) / total, width=widths, align="edge", color="#999", edgecolor="white")
    hist.set_xlim(0, 1)
    hist.set_xlabel("confidence (top-1 probability)")
    hist.set_ylabel("share")
    fig.tight_layout()
    return _save(fig, path)


def confusion_pair(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str) -> Path:
    """Counts (left) and row-normalised recall (right); rows are true classes, columns predicted."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    support = matrix.sum(axis=1, keepdims=True)
    recall = np.divide(matrix, support, out=np.zeros_like(matrix), where=support > 0)
    k = len(classes)
    size = max(4.0, 0.36 * k + 2.4)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size + 0.6))
    labels = [short_label(c, 24) for c in classes]
    for ax, data, name, fmt in ((axes[0], matrix, "counts", "{:.0f}"), (axes[1], recall, "row-normalised (recall)", "{:.2f}")):
        ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        ax.set_xticks(range(k), labels=labels, rotation=60, ha="right", fontsize=7 if k <= 20 else 6)
        ax.set_yticks(range(k), labels=labels, fontsize=7 if k <= 20 else 6)
        if k <= 20:
            top = data.max() if data.max() > 0 else 1
            for (i, j), value in np.ndenumerate(data):
                if value:
                    ax.text(
                        j,
                        i,
                        fmt.format(value),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if value > top / 2 else "black",
                    )
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
