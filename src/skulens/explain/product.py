"""``explain_product``: why a categorizer gave one product its category (photo, words, modalities)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from skulens.catalog.schema import CatalogError
from skulens.encoders.text import TfidfEncoder
from skulens.explain.conflicts import view_proba
from skulens.explain.gradcam import ImageMap, gradcam, supports_gradcam
from skulens.explain.heads import ExplainError, UnknownClassError, fused_scores, log_odds
from skulens.explain.modality import ModalityContribution, modality_contribution
from skulens.explain.text_attribution import (
    MAX_EXPLAINED_CHARS,
    MAX_OCCLUDED_WORDS,
    TextAttribution,
    occluded_texts,
    occlusion_scores,
    spread_terms,
    tfidf_term_scores,
    words_of,
)
from skulens.heads.base import align_proba
from skulens.heads.fusion import LateFusion
from skulens.heads.linear import LinearProbe
from skulens.tasks.categorize import CategoryPredictor, top_k_from_proba
from skulens.tasks.features import Features
from skulens.tasks.inputs import ImageInput, load_product_image, product_text

#: Longest side of the photo kept for the explanation (overlays are drawn on it).
MAX_SIDE = 1024
#: Largest relative gap between the Grad-CAM path's log-odds of the target and the model's before a note says so.
PATH_TOLERANCE = 0.01


@dataclass
class ProductExplanation:
    """Everything :func:`explain_product` found: the prediction, the explained class (``target``), the
    Grad-CAM maps of the image encoders, the word attributions, the modality contributions and notes
    saying what could not be explained and why."""

    classes: list[str]
    proba: np.ndarray
    target: str
    predicted: str
    modality: ModalityContribution
    image: Image.Image | None
    image_maps: list[ImageMap] = field(default_factory=list)
    text: TextAttribution | None = None
    notes: list[str] = field(default_factory=list)

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        return top_k_from_proba(np.array(self.classes), self.proba[None, :], min(k, len(self.classes)))[0]

    def to_dict(self) -> dict:
        """A JSON-ready summary (maps as their feature-map grids; images are written by :mod:`render`)."""
        return {
            "predicted": self.predicted,
            "target": self.target,
            "target_probability": float(self.proba[self.classes.index(self.target)]),
            "top": [{"category": c, "probability": p} for c, p in self.top()],
            "modality": self.modality.to_dict(),
            "image_maps": [
                {"encoder": m.encoder, "grid": np.round(m.grid, 6).tolist(), "log_proba": m.log_proba} for m in self.image_maps
            ],
            "text": None
            if self.text is None
            else {
                "text": self.text.text,
                "words": [{"word": w.text, "start": w.start, "end": w.end, "score": w.score} for w in self.text.words],
                "blocks": self.text.blocks,
                "methods": self.text.methods,
                "notes": self.text.notes,
            },
            "notes": self.notes,
        }


def _modality(predictor: CategoryPredictor, name: str) -> str:
    return "image" if predictor.extractor.encoder(name).modality == "image" else "text"


def _with_present(features: Features, keep: set[str]) -> Features:
    present = {name: mask & (name in keep) for name, mask in features.present.items()}
    return Features(features.blocks, present)


def _target_index(predictor: CategoryPredictor, proba: np.ndarray, target: str | None) -> int:
    classes = [str(c) for c in predictor.classes_]
    if target is None:
        return int(proba.argmax())
    if target not in classes:
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        raise UnknownClassError(f"class {target!r} is not one of this model's classes: {shown}")
    return classes.index(target)


def explain_product(
    predictor: CategoryPredictor,
    image: ImageInput = None,
    title: str | None = None,
    description: str | None = None,
    target: str | None = None,
) -> ProductExplanation:
    """Explain the categorizer's answer for one product (image as path, bytes or PIL image; text fields).

    ``target`` is the class to explain (default: the predicted one). Grad-CAM covers image encoders
    with a feature map (EfficientNet-Lite, bundled or fine-tuned) in late-fusion models; word scores
    cover every text encoder; modality contributions cover any model. Parts that do not apply are
    listed in ``notes`` (e.g. a text-only model).
    """
    predictor._check_fitted()
    pixels = load_product_image(image, draft_size=predictor.image_resolution())
    if pixels is not None and max(pixels.size) > MAX_SIDE:  # the network sees ~224 px; overlays need no more
        pixels = pixels.copy()
        pixels.thumbnail((MAX_SIDE, MAX_SIDE), Image.BILINEAR)
    text = product_text({"title": title, "description": description}, predictor.text_fields)
    if pixels is None and not text:
        raise CatalogError("give an image, a title or a description to explain")
    names = list(predictor.encoders)
    kinds = {name: _modality(predictor, name) for name in names}
    readable = set(kinds.values())
    notes = []
    if len(text) > MAX_EXPLAINED_CHARS:
        notes.append(
            f"The text has {len(text):,} characters; its first {MAX_EXPLAINED_CHARS:,} are explained (and predicted on)."
        )
        text = text[:MAX_EXPLAINED_CHARS]
    if pixels is not None and "image" not in readable:
        notes.append(f"This model reads no images (encoders: {', '.join(names)}); the photo was not used.")
        pixels = None
    if text and "text" not in readable:
        notes.append(f"This model reads no text (encoders: {', '.join(names)}); the text was not used.")
        text = ""
    if pixels is None and not text:
        raise CatalogError(f"nothing this model ({', '.join(names)}) reads was given: it reads {' and '.join(sorted(readable))}")
    features = predictor.extractor.transform_inputs([pixels], [text])
    proba = predictor.proba_from_features(features)[0]
    index = _target_index(predictor, proba, target)
    classes = np.array([str(c) for c in predictor.classes_])
    available = {kinds[n] for n in names if features.present[n][0]}

    def proba_with(modalities: set[str]) -> np.ndarray | None:
        keep = {n for n in names if kinds[n] in modalities}
        if not any(features.present[n][0] for n in keep):
            return None
        return predictor.proba_from_features(_with_present(features, keep))[0]

    def proba_alone(modality: str) -> np.ndarray | None:
        keep = {n for n in names if kinds[n] == modality}
        if not any(features.present[n][0] for n in keep):
            return None
        return view_proba(predictor, features, keep)[0]

    explanation = ProductExplanation(
        classes=list(classes),
        proba=proba,
        target=str(classes[index]),
        predicted=str(classes[int(proba.argmax())]),
        modality=modality_contribution(
            proba_with,
            classes,
            index,
            available,
            readable,
            _field_proba(predictor, kinds, title, description),
            proba_alone,
        ),
        image=pixels,
        notes=notes,
    )
    if pixels is not None:
        photo = explanation.modality.image
        strength = photo.target_probability if photo is not None and "text" in available else 1.0
        explanation.image_maps = _image_maps(predictor, pixels, features, kinds, index, explanation.target, notes, strength)
    if text:
        explanation.text = _text_attribution(predictor, features, kinds, text, index)
    return explanation


def _field_proba(
    predictor: CategoryPredictor, kinds: dict[str, str], title: str | None, description: str | None
) -> dict[str, np.ndarray]:
    """What each text field alone predicts (title, description), when the model reads both and both are given."""
    given = {f: v for f, v in (("title", title), ("description", description)) if f in predictor.text_fields and v and v.strip()}
    text_names = [n for n in predictor.encoders if kinds[n] == "text"]
    if len(given) < 2 or not text_names or not isinstance(predictor.model_, LateFusion):  # per-field views need per-block heads
        return {}
    single = predictor.extractor.transform_inputs([None] * len(given), list(given.values()), text_names)
    proba = view_proba(predictor, single, set(text_names))
    return {part: proba[row] for row, part in enumerate(given)}


def _image_maps(
    predictor: CategoryPredictor,
    pixels: Image.Image,
    features: Features,
    kinds: dict[str, str],
    index: int,
    target: str,
    notes: list[str],
    strength: float = 1.0,
) -> list[ImageMap]:
    """Grad-CAM maps of the image encoders, scaled by ``strength`` (the photo's own support for the class)."""
    fusion = predictor.model_
    if not isinstance(fusion, LateFusion):
        notes.append("Grad-CAM follows late-fusion models; this model uses early fusion, so the photo has no heat map.")
        return []
    others = fusion.block_proba(features.blocks)
    expected = float(log_odds(predictor.proba_from_features(features), index)[0])
    present = {name: bool(mask[0]) for name, mask in features.present.items()}
    maps = []
    for name in (n for n in predictor.encoders if kinds[n] == "image"):
        encoder = predictor.extractor.encoder(name)
        if not supports_gradcam(encoder):
            notes.append(f"encoder {name} has no feature map, so it has no Grad-CAM (EfficientNet-Lite encoders do).")
            continue
        try:
            head = fused_scores(fusion, name, others, present)
        except ExplainError as exc:
            notes.append(str(exc))
            continue
        image_map = gradcam(encoder, head, pixels, index, target, strength)
        if abs(image_map.log_odds - expected) > PATH_TOLERANCE * (1 + abs(expected)):
            notes.append(
                f"the Grad-CAM path of {name} gives log-odds {image_map.log_odds:.3f} where the model gives {expected:.3f}: "
                "its torch model's mean-pooled feature map is not what the encoder returns, so the map may not follow the model"
            )
        maps.append(image_map)
    return maps


#: Occluded copies of a text encoded per call: bounds the text encoders' working memory on long texts.
VARIANTS_PER_CALL = 8


def _distinct(encoder, texts: list[str]) -> tuple[list[int], np.ndarray]:
    """(rows of ``texts`` to encode, for each text the position of its row among them): texts an encoder
    with ``token_ids`` reads alike (same ids after its truncation) share one row; other encoders read all."""
    if not hasattr(encoder, "token_ids"):
        return list(range(len(texts))), np.arange(len(texts))
    first: dict[tuple[int, ...], int] = {}
    where = np.array([first.setdefault(tuple(ids), len(first)) for ids in encoder.token_ids(texts)])
    rows = [int(np.flatnonzero(where == k)[0]) for k in range(len(first))]
    return rows, where


def encode_variants(predictor: CategoryPredictor, name: str, texts: list[str]) -> tuple:
    """(block, present mask) of text encoder ``name`` for ``texts``: fitted encoders (TF-IDF) in one call,
    others once per distinct input, ``VARIANTS_PER_CALL`` texts per call."""
    encoder = predictor.extractor.encoder(name)
    if encoder.requires_fit:
        features = predictor.extractor.transform_inputs([None] * len(texts), texts, [name])
        return features.blocks[name], features.present[name]
    rows, where = _distinct(encoder, texts)
    blocks, masks = [], []
    for start in range(0, len(rows), VARIANTS_PER_CALL):
        chunk = [texts[i] for i in rows[start : start + VARIANTS_PER_CALL]]
        features = predictor.extractor.transform_inputs([None] * len(chunk), chunk, [name])
        blocks.append(features.blocks[name])
        masks.append(features.present[name])
    return np.concatenate(blocks)[where], np.concatenate(masks)[where]


def _read_alike(predictor: CategoryPredictor, kinds: dict[str, str], texts: list[str]) -> int:
    """How many occluded copies (``texts[1:]``) every text encoder reads exactly as the full text ``texts[0]``
    (0 when an encoder reads every word, as TF-IDF does)."""
    alike = np.ones(len(texts) - 1, dtype=bool)
    for name in (n for n in predictor.encoders if kinds[n] == "text"):
        encoder = predictor.extractor.encoder(name)
        if not hasattr(encoder, "token_ids"):
            return 0
        _, where = _distinct(encoder, texts)
        alike &= where[1:] == where[0]
    return int(alike.sum())


def _text_attribution(
    predictor: CategoryPredictor, features: Features, kinds: dict[str, str], text: str, index: int
) -> TextAttribution:
    classes = np.array([str(c) for c in predictor.classes_])
    target = str(classes[index])
    words = words_of(text)
    attribution = TextAttribution(text=text, target=target, words=words)
    if not words:
        attribution.notes.append("the text has no words to score")
        return attribution
    if len(words) > MAX_OCCLUDED_WORDS:
        attribution.notes.append(
            f"the text has {len(words)} words; the first {MAX_OCCLUDED_WORDS} are scored by occlusion (the rest score 0)"
        )
    texts = [text, *occluded_texts(text, words)]
    n = len(texts)
    batch = Features({}, {})
    for name in predictor.encoders:
        if kinds[name] == "image":
            batch.blocks[name] = np.repeat(features.blocks[name], n, axis=0)
            batch.present[name] = np.repeat(features.present[name], n, axis=0)
        else:
            batch.blocks[name], batch.present[name] = encode_variants(predictor, name, texts)
    beyond = _read_alike(predictor, kinds, texts)
    if beyond:
        attribution.notes.append(
            f"{beyond} words lie past what the text encoders read (their token limit); removing them changes nothing there"
        )
    combined = occlusion_scores(log_odds(predictor.proba_from_features(batch), index), len(words))
    for word, score in zip(words, combined):
        word.score = float(score)
    attribution.methods["combined"] = "occlusion: drop of the fused log-odds of the class when the word is removed"
    fusion = predictor.model_
    if not isinstance(fusion, LateFusion):
        attribution.notes.append("per-encoder word scores need late fusion; the combined scores cover the whole model")
        return attribution
    weights = fusion.block_weights
    for name in (n for n in predictor.encoders if kinds[n] == "text"):
        encoder, head = predictor.extractor.encoder(name), fusion.heads_[name]
        if isinstance(encoder, TfidfEncoder) and isinstance(head, LinearProbe):
            terms = tfidf_term_scores(encoder.vectorizer, head, classes, text, target)
            scores = spread_terms(encoder.vectorizer, text, words, terms) * weights[name]
            attribution.methods[name] = (
                "tf-idf value x (coefficient of the class - other classes' expected coefficient), x fusion weight"
            )
        else:
            own = align_proba(head.predict_proba(batch.blocks[name]), head.classes_, classes)
            scores = occlusion_scores(log_odds(own, index), len(words)) * weights[name]
            attribution.methods[name] = (
                "occlusion: drop of the block's log-odds of the class when the word is removed, x fusion weight"
            )
        attribution.blocks[name] = [float(s) for s in scores]
    return attribution
