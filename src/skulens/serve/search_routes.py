"""Service routes of the image-text alignment: ``POST /v1/search``, ``GET /v1/similar/{id}``, ``POST /v1/zero-shot``.

:func:`add_search_routes` adds them to the service's ``/v1`` router. Search needs the product index
saved beside the alignment model (``<model>/index``); zero-shot needs only the model. Model calls run
in the thread pool; every bad input is a 4xx JSON error through the service's ``ServiceError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from skulens.index import IndexIdentityError, SearchIndexError
from skulens.runtime.search import NoIndexError, model_index
from skulens.serve.query_scripts import QueryScripts
from skulens.serve.schemas import (
    MAX_FILTER_KEYS,
    MAX_FILTER_VALUES,
    MAX_LABELS,
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATES,
    NOT_BLANK_PATTERN,
    Base64Image,
    Name,
    Text,
    given,
    is_blank,
)
from skulens.serve.uploads import ImageDecoder

TASK = "align"


class SearchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"oneOf": [given("text"), given("image_base64", text=False)]})

    text: Text | None = Field(None, max_length=2_000, examples=["red running shoes for men"])
    image_base64: Base64Image | None = Field(None, description="Query by a product photo instead of a text (base64).")
    k: int = Field(10, ge=1, le=1000, description="How many products to return (at most: all the indexed products).")
    where: dict[Name, Name | Annotated[list[Name], Field(max_length=MAX_FILTER_VALUES)]] | None = Field(
        None, max_length=MAX_FILTER_KEYS, examples=[{"gender": "Men"}], description="Metadata filters."
    )
    model: Name | None = Field(None, description="Alignment model name from GET /models.")


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
    model_config = ConfigDict(json_schema_extra={"anyOf": [given("image_base64", text=False), given("text")]})

    labels: list[Annotated[Name, Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN})]] = Field(
        ...,
        min_length=2,
        max_length=MAX_LABELS,
        examples=[["Watches", "Shoes", "Handbags"]],
        description="Label names, none blank, no two alike.",
        json_schema_extra={"uniqueItems": True},
    )
    text: Text | None = Field(None, max_length=10_000, description="The product's title (or description).")
    image_base64: Base64Image | None = Field(None, description="The product photo (base64).")
    templates: (
        list[Annotated[Text, Field(max_length=MAX_TEMPLATE_CHARS, json_schema_extra={"pattern": "\\{label\\}"})]] | None
    ) = Field(
        None,
        max_length=MAX_TEMPLATES,
        description="Prompt templates; '{label}' is replaced by each label (plain text, no other placeholders). "
        "Default: the built-in ensemble.",
    )
    k: int = Field(5, ge=1, le=500)
    model: Name | None = Field(None, description="Alignment model name from GET /models.")


class LabelScore(BaseModel):
    label: str
    probability: float = Field(..., ge=0.0, le=1.0)


class ZeroShotResponse(BaseModel):
    model: str
    labels: list[LabelScore]
    used_image: bool
    used_text: bool


#: An absolute path in a message (a run of non-space characters starting with a slash).
_PATH = re.compile(r"(?<![\w.])/[^\s,;:'\"]+")


def without_paths(message: str) -> str:
    """``message`` with absolute paths replaced by their last part (errors never show the server's folders)."""
    return _PATH.sub(lambda m: m.group().rstrip("/").rsplit("/", 1)[-1], message)


def filterable_columns(models) -> list[str] | None:
    """The metadata columns every loadable index of these alignment models can filter on (for the schema of
    ``where``); None when no index loads (its requests are answered 404/409 anyway)."""
    common = None
    for model in models:
        try:
            index = model_index(model.folder, model.predictor.identity)
        except (NoIndexError, IndexIdentityError, SearchIndexError):
            continue
        columns = {str(c) for c in index.metadata.columns if c != "id"}
        common = columns if common is None else common & columns
    return None if common is None else sorted(common)


def add_search_routes(
    router: APIRouter,
    pick: Callable,
    service_error: type[Exception],
    images: ImageDecoder,
    scripts: QueryScripts | None = None,
) -> None:
    """Add the alignment routes to ``router``; ``pick(task, name)`` finds a loaded model, ``service_error``
    is the service's 4xx exception ``(status, code, detail)``, ``images`` the service's image decoder,
    ``scripts`` the scripts queries, labels and templates must be written in (None: any)."""

    def check_scripts(texts: list[str | None], what: str, templates: list[str] = ()) -> None:
        """A 422 naming the first text or template written in a script the models never saw."""
        if scripts is None:
            return
        reasons = [scripts.refusal(text, what) for text in texts] + [scripts.template_refusal(t) for t in templates]
        reason = next((r for r in reasons if r), None)
        if reason:
            raise service_error(422, "invalid_query", reason)

    def image_from(data_b64: str):
        return images.decode_base64(data_b64)

    def index_of(model):
        """The model's index; its errors say what is wrong without the server's paths."""
        try:
            return model_index(model.folder, model.predictor.identity)
        except NoIndexError:
            raise service_error(
                404, "no_index", f"model '{model.name}' has no product index; build one with `skulens search index`"
            ) from None
        except IndexIdentityError as exc:
            raise service_error(409, "index_mismatch", without_paths(str(exc))) from None
        except SearchIndexError as exc:
            raise service_error(
                409, "broken_index", f"the index of model '{model.name}' cannot be used: {without_paths(str(exc))}"
            ) from None

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
        text = None if is_blank(request.text) else request.text
        if request.text is not None and text is None and not request.image_base64:
            raise service_error(422, "invalid_query", "the query is empty: type some words describing the product")
        if (text is None) == (not request.image_base64):
            raise service_error(422, "invalid_query", "give exactly one of 'text' or 'image_base64'")
        check_scripts([text], "query")
        model = pick(TASK, request.model)
        index = await run_in_threadpool(index_of, model)
        image = await run_in_threadpool(image_from, request.image_base64) if request.image_base64 else None
        hits = await run_in_threadpool(
            model.predictor.search, index, text=text, image=image, k=min(request.k, len(index)), where=request.where
        )
        return answer(model, index, hits)

    @router.get("/similar/{product_id}", response_model=SearchResponse, tags=["search"], summary="More like this product")
    async def similar(
        product_id: str = Path(..., description="An indexed product id."),
        k: int = Query(10, ge=1, le=1000, description="How many products to return (at most: all the other indexed products)."),
        model: str | None = Query(None, description="Alignment model name from GET /models."),
    ) -> SearchResponse:
        """The ``k`` indexed products most similar to ``product_id`` (itself excluded)."""
        chosen = pick(TASK, model)
        index = await run_in_threadpool(index_of, chosen)
        hits = await run_in_threadpool(chosen.predictor.similar, index, product_id, k=max(1, min(k, len(index) - 1)))
        return answer(chosen, index, hits)

    @router.post("/zero-shot", response_model=ZeroShotResponse, tags=["search"], summary="Categorise with typed labels")
    async def zero_shot(request: ZeroShotRequest) -> ZeroShotResponse:
        """Scores a product (photo and/or text) against label names the caller types; no training needed.
        Probabilities are a softmax over the model's learned temperature."""
        if any(is_blank(label) for label in request.labels):
            raise service_error(422, "invalid_query", "zero-shot needs at least two non-empty label names")
        if len({label.strip() for label in request.labels}) != len(request.labels):
            raise service_error(422, "invalid_query", "label names must be unique")
        check_scripts([request.text], "text")
        check_scripts(request.labels, "label", request.templates or [])
        model = pick(TASK, request.model)
        image = await run_in_threadpool(image_from, request.image_base64) if request.image_base64 else None
        text = None if is_blank(request.text) else request.text
        from skulens.tasks.align import DEFAULT_TEMPLATES

        templates = tuple(request.templates) if request.templates else DEFAULT_TEMPLATES
        top = await run_in_threadpool(
            model.predictor.predict_one, image=image, text=text, labels=request.labels, k=request.k, templates=templates
        )
        return ZeroShotResponse(
            model=model.name,
            labels=[LabelScore(label=label, probability=min(max(p, 0.0), 1.0)) for label, p in top],
            used_image=image is not None,
            used_text=text is not None,
        )
