"""Service routes of the image-text alignment: ``POST /v1/search``, ``GET /v1/similar/{id}``, ``POST /v1/zero-shot``.

:func:`add_search_routes` adds them to the service's ``/v1`` router. Search needs the product index
saved beside the alignment model (``<model>/index``); zero-shot needs only the model. Model calls run
in the thread pool; every bad input is a 4xx JSON error through the service's ``ServiceError``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from skulens.catalog.images import DEFAULT_MAX_PIXELS, ImageLoadError, decode_image
from skulens.index import IndexIdentityError, SearchIndexError
from skulens.runtime.search import NoIndexError, model_index
from skulens.serve.schemas import Text

TASK = "align"


class SearchRequest(BaseModel):
    text: Text | None = Field(None, max_length=2_000, examples=["red running shoes for men"])
    image_base64: Text | None = Field(None, description="Query by a product photo instead of a text (base64).")
    k: int = Field(10, ge=1, le=1000, description="How many products to return.")
    where: dict[Text, Text | list[Text]] | None = Field(None, examples=[{"gender": "Men"}], description="Metadata filters.")
    model: Text | None = Field(None, max_length=200, description="Alignment model name from GET /models.")


class SearchHit(BaseModel):
    id: str
    score: float = Field(..., description="Cosine similarity in the shared image-text space.")
    title: str | None = None
    metadata: dict = Field(default_factory=dict, description="The indexed catalog columns of this product.")


class SearchResponse(BaseModel):
    model: str
    index_size: int
    results: list[SearchHit]


class ZeroShotRequest(BaseModel):
    labels: list[Text] = Field(..., min_length=2, max_length=500, examples=[["Watches", "Shoes", "Handbags"]])
    text: Text | None = Field(None, max_length=10_000, description="The product's title (or description).")
    image_base64: Text | None = Field(None, description="The product photo (base64).")
    templates: list[Text] | None = Field(None, description="Prompt templates with {label}; default: the built-in ensemble.")
    k: int = Field(5, ge=1, le=500)
    model: Text | None = Field(None, max_length=200)


class LabelScore(BaseModel):
    label: str
    probability: float = Field(..., ge=0.0, le=1.0)


class ZeroShotResponse(BaseModel):
    model: str
    labels: list[LabelScore]
    used_image: bool
    used_text: bool


def image_from_base64(data_b64: str, service_error: type[Exception], max_upload_bytes: int):
    """The decoded RGB image of a base64 upload; 400 (not base64, empty, undecodable) or 413 (over the limit)."""
    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise service_error(400, "invalid_image", "image_base64 is not valid base64") from None
    if not data:
        raise service_error(400, "invalid_image", "image_base64 is empty")
    if len(data) > max_upload_bytes:
        raise service_error(413, "too_large", f"the image is over the {max_upload_bytes:,}-byte upload limit")
    try:
        return decode_image(data, name="image_base64", max_pixels=DEFAULT_MAX_PIXELS)
    except ImageLoadError as exc:
        raise service_error(400, "invalid_image", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the upload's fault
        raise service_error(400, "invalid_image", f"image_base64 cannot be decoded: {exc}") from None


def add_search_routes(router: APIRouter, pick: Callable, service_error: type[Exception], max_upload_bytes: int) -> None:
    """Add the alignment routes to ``router``; ``pick(task, name)`` finds a loaded model, ``service_error``
    is the service's 4xx exception ``(status, code, detail)``."""

    def image_from(data_b64: str):
        return image_from_base64(data_b64, service_error, max_upload_bytes)

    def index_of(model):
        try:
            return model_index(model.folder, model.predictor.identity)
        except NoIndexError as exc:
            raise service_error(404, "no_index", str(exc)) from None
        except IndexIdentityError as exc:
            raise service_error(409, "index_mismatch", str(exc)) from None
        except SearchIndexError as exc:
            raise service_error(500, "broken_index", str(exc)) from None

    def answer(model, index, hits: list[dict]) -> SearchResponse:
        results = []
        for hit in hits:
            metadata = {k: v for k, v in hit.items() if k not in ("id", "score", "corpus_id", "title")}
            results.append(SearchHit(id=hit["id"], score=hit["score"], title=hit.get("title"), metadata=metadata))
        return SearchResponse(model=model.name, index_size=len(index), results=results)

    @router.post("/search", response_model=SearchResponse, tags=["search"], summary="Search products by text or photo")
    async def search(request: SearchRequest) -> SearchResponse:
        """The ``k`` indexed products closest to a text (``"red running shoes for men"``) or a photo, with
        optional metadata filters (``{"gender": "Men"}``)."""
        if (request.text is None) == (request.image_base64 is None):
            raise service_error(422, "invalid_query", "give exactly one of 'text' or 'image_base64'")
        model = pick(TASK, request.model)
        index = await run_in_threadpool(index_of, model)
        image = await run_in_threadpool(image_from, request.image_base64) if request.image_base64 is not None else None
        hits = await run_in_threadpool(
            model.predictor.search, index, text=request.text, image=image, k=request.k, where=request.where
        )
        return answer(model, index, hits)

    @router.get("/similar/{product_id}", response_model=SearchResponse, tags=["search"], summary="More like this product")
    async def similar(
        product_id: str = Path(..., description="An indexed product id."),
        k: int = Query(10, ge=1, le=1000),
        model: str | None = Query(None, description="Alignment model name from GET /models."),
    ) -> SearchResponse:
        """The ``k`` indexed products most similar to ``product_id`` (itself excluded)."""
        chosen = pick(TASK, model)
        index = await run_in_threadpool(index_of, chosen)
        hits = await run_in_threadpool(chosen.predictor.similar, index, product_id, k=k)
        return answer(chosen, index, hits)

    @router.post("/zero-shot", response_model=ZeroShotResponse, tags=["search"], summary="Categorise with typed labels")
    async def zero_shot(request: ZeroShotRequest) -> ZeroShotResponse:
        """Scores a product (photo and/or text) against label names the caller types; no training needed.
        Probabilities are a softmax over the model's learned temperature."""
        model = pick(TASK, request.model)
        image = await run_in_threadpool(image_from, request.image_base64) if request.image_base64 else None
        text = request.text if request.text and request.text.strip() else None
        from skulens.tasks.align import DEFAULT_TEMPLATES

        templates = tuple(request.templates) if request.templates else DEFAULT_TEMPLATES
        top = await run_in_threadpool(
            model.predictor.zero_shot_inputs, request.labels, image=image, text=text, templates=templates, k=request.k
        )
        return ZeroShotResponse(
            model=model.name,
            labels=[LabelScore(label=label, probability=min(max(p, 0.0), 1.0)) for label, p in top],
            used_image=image is not None,
            used_text=text is not None,
        )
