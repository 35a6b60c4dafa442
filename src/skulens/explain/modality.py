"""How much the photo and the text each moved a fused prediction, and whether they disagree.

Each modality is removed in turn (its blocks marked absent, exactly as the model treats a product without
a photo or without text), and the fused log-odds of the target class (``log p_c - log sum_{k != c} p_k``)
is compared with and without it. The modalities' own predictions (each alone) are compared too: when their top classes differ
and each is confident, the product is flagged as a conflict (the watch photo titled "Baby diaper pack").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from skulens.explain.heads import log_odds
from skulens.heads.fusion import EPS

#: Each modality must give its own top class at least this probability for a disagreement to be a conflict.
CONFLICT_CONFIDENCE = 0.6


@dataclass
class ModalityView:
    """What one modality alone predicts: its top class, that class's probability, and the target's."""

    top: str
    top_probability: float
    target_probability: float


@dataclass
class ModalityContribution:
    """``image_shift`` / ``text_shift``: the fused log-odds of the target with everything minus without
    that modality (positive: it pushed towards the target). ``None`` where a modality is absent
    or there is nothing left without it. ``conflict``: both modalities present, their top classes
    differ and each is at least :data:`CONFLICT_CONFIDENCE` sure; ``divergence``: Jensen-Shannon
    divergence (bits, 0..1) between the two single-modality predictions."""

    target: str
    probability: float
    image: ModalityView | None
    text: ModalityView | None
    image_shift: float | None
    text_shift: float | None
    conflict: bool
    divergence: float | None
    statement: str

    def to_dict(self) -> dict:
        return asdict(self)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two distributions, in bits (0 = equal, 1 = disjoint)."""
    p, q = np.clip(p, EPS, 1.0), np.clip(q, EPS, 1.0)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum())


def modality_contribution(
    proba_with: Callable[[set[str]], np.ndarray | None],
    classes: np.ndarray,
    target: int,
    available: set[str],
    readable: set[str],
) -> ModalityContribution:
    """Contributions of ``"image"`` and ``"text"`` to the prediction of class index ``target``.

    ``proba_with(modalities)`` gives the model's class probabilities using only those modalities (None
    when the model has nothing to read then); ``available``: modalities this product has;
    ``readable``: modalities the model reads.
    """
    full = proba_with(available & readable)
    alone = {m: proba_with({m}) for m in ("image", "text") if m in available & readable}
    views = {
        m: ModalityView(str(classes[int(p.argmax())]), float(p.max()), float(p[target]))
        for m, p in alone.items()
        if p is not None
    }

    def shift(modality: str) -> float | None:
        rest = (available & readable) - {modality}
        if modality not in views or not rest:
            return None
        without = proba_with(rest)
        return float(log_odds(full, target)[0] - log_odds(without, target)[0])

    both = "image" in views and "text" in views
    divergence = js_divergence(alone["image"], alone["text"]) if both else None
    conflict = bool(
        both
        and views["image"].top != views["text"].top
        and min(views["image"].top_probability, views["text"].top_probability) >= CONFLICT_CONFIDENCE
    )
    return ModalityContribution(
        target=str(classes[target]),
        probability=float(full[target]),
        image=views.get("image"),
        text=views.get("text"),
        image_shift=shift("image"),
        text_shift=shift("text"),
        conflict=conflict,
        divergence=divergence,
        statement=_statement(views, readable, available, conflict),
    )


def _statement(views: dict[str, ModalityView], readable: set[str], available: set[str], conflict: bool) -> str:
    if "image" not in readable:
        return "This model reads text only: the explanation covers the text (no photo attribution is possible)."
    if "text" not in readable:
        return "This model reads photos only: the explanation covers the photo."
    if "image" not in available:
        return "No photo was given: the prediction and its explanation come from the text alone."
    if "text" not in available:
        return "No text was given: the prediction and its explanation come from the photo alone."
    image, text = views["image"], views["text"]
    if conflict:
        return (
            f"Photo and text disagree: the photo alone says {image.top} ({image.top_probability:.0%}), the text alone "
            f"says {text.top} ({text.top_probability:.0%}). Check the product's photo and title."
        )
    if image.top == text.top:
        return f"Photo and text agree on {image.top}."
    return f"Photo and text lean different ways ({image.top} vs {text.top}), without both being confident."
