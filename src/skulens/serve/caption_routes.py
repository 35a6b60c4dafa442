"""Service route of the captioner: ``POST /v1/caption`` (a product title written from a photo).

:func:`add_caption_routes` adds it to the service's ``/v1`` router, as ``search_routes`` does for search.
The model call runs in the thread pool; bad input is a 4xx JSON error through the service's ``ServiceError``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from skulens.serve.schemas import Name, RequiredBase64Image
from skulens.serve.uploads import ImageDecoder

TASK = "caption"


class CaptionRequest(BaseModel):
    image_base64: RequiredBase64Image = Field(..., description="The product photo (base64 JPEG, PNG, WebP...).")
    beam: int | None = Field(None, ge=1, le=8, description="Beam width (1 = greedy; default: the model's).")
    nearest: int = Field(3, ge=0, le=20, description="How many nearest training titles to return.")
    model: Name | None = Field(None, description="Captioner name from GET /models.")


class ScoredTitle(BaseModel):
    title: str
    score: float = Field(..., description="Beam: length-normalised log-probability; nearest: cosine similarity.")


class CaptionResponse(BaseModel):
    model: str
    title: str = Field(..., min_length=1, examples=["Nike Men Black Sports Shoes"])
    alternatives: list[ScoredTitle] = Field(default_factory=list, description="The other beam candidates, best first.")
    nearest: list[ScoredTitle] = Field(default_factory=list, description="Titles of the most similar training photos.")
    attributes: dict[str, str] = Field(default_factory=dict, description="Attributes predicted from the photo.")


def add_caption_routes(router: APIRouter, pick: Callable, service_error: type[Exception], images: ImageDecoder) -> None:
    """Add ``/caption`` to ``router``; ``pick(task, name)`` finds a loaded model."""

    def caption(model, request: CaptionRequest):
        image = images.decode_base64(request.image_base64)
        return model.predictor.predict_one(image, beam=request.beam, nearest=request.nearest)

    @router.post("/caption", response_model=CaptionResponse, tags=["caption"], summary="Write a product title from a photo")
    async def caption_route(request: CaptionRequest) -> CaptionResponse:
        """A title for the photo from the captioner, the other beam candidates and the nearest catalog titles."""
        model = pick(TASK, request.model)
        result = await run_in_threadpool(caption, model, request)
        return CaptionResponse(
            model=model.name,
            title=result.title,
            alternatives=[ScoredTitle(title=t, score=s) for t, s in result.alternatives],
            nearest=[ScoredTitle(title=t, score=s) for t, s in result.nearest],
            attributes=result.attributes,
        )
