"""How much the photo and the text each moved a fused prediction, and whether they disagree.

Each modality is removed in turn (its blocks marked absent, exactly as the model treats a product without
a photo or without text), and the fused log-odds of the target class (``log p_c - log sum_{k != c} p_k``)
is compared with and without it. The modalities' own predictions (each alone) are compared too: when one of them is
confident in another class and gives the chosen class a small share, the product is flagged as a conflict (the watch
photo titled "Levis men blue denim jeans": the photo alone says Watches 57% and gives Jeans 1%).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from skulens.explain.heads import log_odds
from skulens.heads.fusion import EPS

#: A modality must give its own top class at least this probability for its disagreement to count.
CONFLICT_CONFIDENCE = 0.5
#: ... and prefer that class to the chosen one by at least this log-ratio (ln 20: twenty times as likely).
CONFLICT_LOG_RATIO = float(np.log(20.0))


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
    or there is nothing left without it. ``fields``: what each text field alone predicts, when the model reads
    several and the product has several (a swapped title is out-voted by an honest description in ``text``).
    ``conflict_score``: over the views (photo, and the text or its fields), the largest :func:`disagreement`
    with the target, ``conflict_view`` the view it comes from; ``conflict``: at least two views present and
    that score at least :data:`CONFLICT_LOG_RATIO`; ``divergence``: Jensen-Shannon divergence (bits, 0..1) between the two
    single-modality predictions."""

    target: str
    probability: float
    image: ModalityView | None
    text: ModalityView | None
    image_shift: float | None
    text_shift: float | None
    conflict_score: float | None
    conflict: bool
    divergence: float | None
    statement: str
    fields: dict[str, ModalityView] = field(default_factory=dict)
    conflict_view: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two distributions, in bits (0 = equal, 1 = disjoint)."""
    p, q = np.clip(p, EPS, 1.0), np.clip(q, EPS, 1.0)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum())


def disagreement(proba: np.ndarray, target: np.ndarray | int) -> np.ndarray:
    """How strongly one modality's own prediction rejects ``target``: ``ln p(top) - ln p(target)`` (0 when
    the target is its top class), or 0 when the modality is not at least :data:`CONFLICT_CONFIDENCE` sure of
    its top class. Rows of ``proba`` (n, classes) with ``target`` (n,) class indices; a 1-d ``proba`` gives a scalar.
    """
    p = np.clip(np.atleast_2d(np.asarray(proba, dtype=np.float64)), EPS, 1.0)
    rows = np.arange(len(p))
    top = p.max(axis=1)
    score = np.log(top) - np.log(p[rows, np.broadcast_to(np.asarray(target), rows.shape)])
    score = np.where(top >= CONFLICT_CONFIDENCE, score, 0.0)
    return score if np.ndim(proba) == 2 else score[0]


def modality_contribution(
    proba_with: Callable[[set[str]], np.ndarray | None],
    classes: np.ndarray,
    target: int,
    available: set[str],
    readable: set[str],
    fields: dict[str, np.ndarray] | None = None,
    proba_alone: Callable[[str], np.ndarray | None] | None = None,
) -> ModalityContribution:
    """Contributions of ``"image"`` and ``"text"`` to the prediction of class index ``target``.

    ``proba_with(modalities)`` gives the model's class probabilities using only those modalities (None
    when the model has nothing to read then); ``available``: modalities this product has;
    ``readable``: modalities the model reads; ``fields``: the probabilities from each text field alone
    (only when there are at least two).
    """
    full = proba_with(available & readable)
    alone_of = proba_alone or (lambda modality: proba_with({modality}))
    alone = {m: alone_of(m) for m in ("image", "text") if m in available & readable}
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
    fields = fields if fields and len(fields) > 1 else {}
    field_views = {f: ModalityView(str(classes[int(p.argmax())]), float(p.max()), float(p[target])) for f, p in fields.items()}
    judged = {m: alone[m] for m in views if not (m == "text" and fields)} | fields
    scores = {m: float(disagreement(p, target)) for m, p in judged.items()}
    conflict_view = max(scores, key=scores.get) if len(scores) > 1 else None
    score = scores[conflict_view] if conflict_view else None
    conflict = bool(conflict_view and score >= CONFLICT_LOG_RATIO)
    return ModalityContribution(
        target=str(classes[target]),
        probability=float(full[target]),
        image=views.get("image"),
        text=views.get("text"),
        image_shift=shift("image"),
        text_shift=shift("text"),
        conflict_score=score,
        conflict=conflict,
        divergence=divergence,
        statement=_statement(
            {**views, **field_views}, readable, available, conflict_view if conflict else None, str(classes[target])
        ),
        fields=field_views,
        conflict_view=conflict_view,
    )


def _statement(views: dict[str, ModalityView], readable: set[str], available: set[str], conflict: str | None, target: str) -> str:
    """One sentence for a person; ``conflict`` names the view that rules out ``target`` (None: no conflict)."""
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
        names = {"image": "photo"}
        said = "; ".join(
            f"the {names.get(v, v)} alone says {view.top} ({view.top_probability:.0%}) and gives {target} {view.target_probability:.0%}"
            for v, view in views.items()
            if v != "text" or not any(k not in ("image", "text") for k in views)
        )
        return f"Photo and text disagree on {target}: {said}. Check the product's {names.get(conflict, conflict)} and the rest of the listing."
    if image.top == text.top:
        return f"Photo and text agree on {image.top}."
    return f"Photo and text lean different ways ({image.top} vs {text.top}), without either ruling out {target}."
