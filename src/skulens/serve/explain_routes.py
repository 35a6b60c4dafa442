"""Service route of the explanations: ``POST /v1/explain``.

:func:`add_explain_routes` adds it to the service's ``/v1`` router. The explanation runs in the thread
pool (Grad-CAM takes a forward and a backward pass of the image network); bad input is a 4xx JSON error
through the service's ``ServiceError``; images obey the same upload limits as the other routes.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from skulens.runtime import image_resolution
from skulens.serve.schemas import Base64Image, Name, Text, given, is_blank
from skulens.serve.uploads import ImageDecoder

TASK = "categorize"
#: Longest side of the overlay PNG sent back.
OVERLAY_SIDE = 512
#: Explanations computed at once (each re-encodes up to 161 copies of the text and runs Grad-CAM); more wait.
EXPLAIN_SLOTS = 2


class ExplainRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [given("image_base64", text=False), given("title"), given("description")]}
    )

    image_base64: Base64Image | None = Field(None, description="The product photo (base64).")
    title: Text | None = Field(None, max_length=10_000, examples=["Baby diaper pack"])
    description: Text | None = Field(
        None, max_length=100_000, description="Long texts are explained (and predicted on) on their first 5,000 characters."
    )
    category: Text | None = Field(
        None, max_length=1_000, description="Explain this category (default: the predicted one); one the model lacks is a 404."
    )
    model: Name | None = Field(None, description="Categorize model name from GET /models.")


class ModalityOut(BaseModel):
    top: str = Field(..., description="What this modality alone predicts.")
    top_probability: float = Field(..., ge=0.0, le=1.0)
    target_probability: float = Field(..., ge=0.0, le=1.0, description="What it alone gives the explained category.")
    shift: float | None = Field(None, description="How much it moved the explained category's fused log-odds (nats).")


class ImageMapOut(BaseModel):
    encoder: str
    grid: list[list[float]] = Field(..., description="The Grad-CAM map at the feature-map resolution (row-major).")
    overlay_png_base64: str = Field(..., description="The photo with the map blended over it (PNG, base64).")


class WordOut(BaseModel):
    word: str
    start: int
    end: int
    score: float = Field(..., description="Drop of the category's fused log-odds when the word is removed (nats).")


class ExplainResponse(BaseModel):
    model: str
    predicted: str
    category: str = Field(..., description="The explained category.")
    probability: float = Field(..., ge=0.0, le=1.0)
    conflict: bool = Field(..., description="Photo and text each confidently predict a different category.")
    statement: str
    image: ModalityOut | None = None
    text: ModalityOut | None = None
    image_maps: list[ImageMapOut] = Field(default_factory=list)
    words: list[WordOut] = Field(default_factory=list)
    word_scores_by_encoder: dict[str, list[float]] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _png_base64(image) -> str:
    copy = image.copy()
    copy.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE))
    buffer = io.BytesIO()
    copy.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _answer(name: str, explanation) -> ExplainResponse:
    from skulens.explain.render import overlay

    m = explanation.modality

    def view(v, shift) -> ModalityOut | None:
        return None if v is None else ModalityOut(**vars(v), shift=shift)

    text = explanation.text
    return ExplainResponse(
        model=name,
        predicted=explanation.predicted,
        category=explanation.target,
        probability=min(max(m.probability, 0.0), 1.0),
        conflict=m.conflict,
        statement=m.statement,
        image=view(m.image, m.image_shift),
        text=view(m.text, m.text_shift),
        image_maps=[
            ImageMapOut(
                encoder=im.encoder,
                grid=[[round(float(v), 6) for v in row] for row in im.grid],
                overlay_png_base64=_png_base64(overlay(explanation.image, im.cam)),
            )
            for im in explanation.image_maps
        ],
        words=[] if text is None else [WordOut(word=w.text, start=w.start, end=w.end, score=w.score) for w in text.words],
        word_scores_by_encoder={} if text is None else text.blocks,
        notes=explanation.notes + ([] if text is None else text.notes),
    )


def add_explain_routes(router: APIRouter, pick: Callable, service_error: type[Exception], images: ImageDecoder) -> None:
    """Add ``/explain`` to ``router``; ``pick(task, name)`` finds a loaded model, ``service_error`` is the
    service's 4xx exception ``(status, code, detail)``."""

    slots = threading.BoundedSemaphore(EXPLAIN_SLOTS)

    def run(model, image, request: ExplainRequest):
        from skulens.explain import explain_product

        # a missing 'explain' extra (Grad-CAM) is a MissingExtraError: the app's handler answers 501 extra_not_installed
        with slots:  # bounds the memory of concurrent explanations
            explanation = explain_product(
                model.predictor, image=image, title=request.title, description=request.description, target=request.category
            )
        return _answer(model.name, explanation)

    @router.post("/explain", response_model=ExplainResponse, tags=["categorize"], summary="Why this category?")
    async def explain(request: ExplainRequest) -> ExplainResponse:
        """Explains a categorize model's answer for one product: a Grad-CAM map of the photo, a score per
        word of the title/description, how much the photo and the text each moved the answer, and a
        ``conflict`` flag when they confidently disagree (a watch photo titled "Baby diaper pack")."""
        model = pick(TASK, request.model)
        has_text = not (is_blank(request.title) and is_blank(request.description))
        if not request.image_base64 and not has_text:
            raise service_error(422, "empty_input", "give image_base64, a title or a description to explain")
        image = (
            await run_in_threadpool(images.decode_base64, request.image_base64, "image_base64", image_resolution(model.predictor))
            if request.image_base64
            else None
        )
        return await run_in_threadpool(run, model, image, request)
