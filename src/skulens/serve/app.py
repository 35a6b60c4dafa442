"""The skulens HTTP service (FastAPI): categorize products, read reviews, list models.

``create_app(models_dir)`` loads every model folder under ``models_dir`` before it returns (a broken
one stops start-up with a message naming it). Model calls run on one worker thread per model that
micro-batches concurrent requests; image decoding runs in the thread pool; the event loop only
awaits. Every bad input is answered with a 4xx JSON ``{"error", "detail"}``. ``/docs`` (Swagger UI)
is served from local files, so it works offline; ``GET /`` redirects there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from skulens import __version__
from skulens.catalog.images import DEFAULT_MAX_PIXELS
from skulens.errors import SkulensError
from skulens.runtime import (
    LoadedModel,
    default_models,
    image_resolution,
    load_models,
    prepare_image,
    top_k_from_proba,
)
from skulens.serve.caption_routes import add_caption_routes
from skulens.serve.errors import error_status
from skulens.serve.explain_routes import add_explain_routes
from skulens.serve.guard import MAX_QUOTED_CHARS, RequestGuard, error_response, media_type, safe_text
from skulens.serve.query_scripts import QueryScripts
from skulens.serve.schemas import (
    MAX_NAME_CHARS,
    AttributeScore,
    AttributesResponse,
    BatchItem,
    BatchRequest,
    BatchResponse,
    CategorizeResponse,
    CategoryScore,
    ErrorResponse,
    Health,
    ModelInfo,
    ModelList,
    Ready,
    ReviewResult,
    ReviewsRequest,
    ReviewsResponse,
    given,
    is_blank,
)
from skulens.serve.search_routes import add_search_routes, filterable_columns
from skulens.serve.uploads import DEFAULT_DECODE_SLOTS, DEFAULT_MAX_DECODED_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, ImageDecoder

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 64
#: Seconds a request body may take to arrive.
DEFAULT_BODY_TIMEOUT_S = 60.0
API_KEY_ENV = "SKULENS_API_KEY"
#: Room for the form fields and multipart boundaries on top of the image itself.
FORM_OVERHEAD_BYTES = 256 * 1024
#: Swagger UI's JavaScript, CSS and favicon, vendored from the swagger-ui-dist npm package (see its README).
SWAGGER_ASSETS = Path(__file__).resolve().parent / "static" / "swagger-ui"


class ServiceError(Exception):
    """A request the service refuses: HTTP status, short code, and what is wrong."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


_error = error_response


ERROR_RESPONSES = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Bad input (e.g. an unreadable image)",
        401: "Missing or wrong X-API-Key",
        404: "Unknown model",
        408: "The request body did not arrive in time",
        413: "Upload or batch over the limit",
        415: "Content-Type not accepted",
        422: "Invalid request (e.g. neither text nor image)",
    }.items()
}


def create_app(
    models_dir: str | Path,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    warm_up: bool = True,
    model_batch: int = 8,
    max_decoded_pixels: int = DEFAULT_MAX_DECODED_PIXELS,
    decode_slots: int = DEFAULT_DECODE_SLOTS,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
) -> FastAPI:
    """The service for the model folders under ``models_dir`` (loaded now; raises ``ModelLoadError``).

    Limits: request bodies of at most ``max_upload_bytes`` plus form overhead (counted as read, 413),
    arriving within ``body_timeout_s`` (408); images of at most ``max_pixels`` in their header and
    ``max_decoded_pixels`` once decoded, at most ``decode_slots`` decoded at a time."""
    started = time.perf_counter()
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    models = load_models(models_dir, max_batch=model_batch, warm_up=warm_up)
    load_seconds = time.perf_counter() - started
    defaults = default_models(models)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Model workers stop when the server does (and revive if the lifespan runs again)."""
        yield
        for model in models.values():
            model.close()

    app = FastAPI(
        title="skulens",
        version=__version__,
        description=(
            "Multimodal product intelligence. `/v1/categorize` (one product: photo and/or text, multipart) and "
            "`/v1/categorize/batch` (JSON, base64 photos) give categories; `/v1/attributes` gives attributes such as "
            "colour (categorize models trained with `--attributes`); `/v1/explain` says why (Grad-CAM, words, "
            "photo-vs-text conflicts); `/v1/reviews` reads stars, sentiment and recommendation from review text; "
            "`/v1/search` finds products by text or photo, `/v1/similar/{product_id}` finds look-alikes of an indexed "
            "product and `/v1/zero-shot` categorises with typed labels (alignment models with an index); `/v1/caption` writes a product title from a photo. `/health`, `/ready` and `/models` "
            "say what is loaded. Each route below lists its limits. "
            + ("Every /v1 route needs the `X-API-Key` header." if api_key else "")
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from the vendored Swagger UI assets
        redoc_url=None,
    )
    app.state.models = models
    app.state.max_upload_bytes = max_upload_bytes
    app.state.max_batch = max_batch
    max_body_bytes = max_upload_bytes + FORM_OVERHEAD_BYTES
    app.add_middleware(RequestGuard, api_key=api_key, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s)
    # Uploads stay in memory (bounded by the guard's body limit): no temporary files on disk.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_body_bytes)
    images = ImageDecoder(ServiceError, max_upload_bytes, max_pixels, max_decoded_pixels, decode_slots)
    app.mount("/static/swagger-ui", StaticFiles(directory=SWAGGER_ASSETS), name="swagger-ui")

    # ----- errors: always JSON, always saying what is wrong ---------------------------------------
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return _error(exc.status, exc.error, exc.detail)

    @app.exception_handler(SkulensError)
    async def _skulens_error(request: Request, exc: SkulensError):
        status, error = error_status(exc)
        return _error(status, error, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        """Says where and what, never the input itself (it may be huge or not even valid Unicode)."""
        errors, parts = [], []
        for e in exc.errors()[:20]:
            loc = [p if isinstance(p, int) else safe_text(p, MAX_QUOTED_CHARS) for p in e.get("loc", ())]
            msg = safe_text(e.get("msg", "invalid"), MAX_QUOTED_CHARS)
            errors.append({"loc": loc, "msg": msg, "type": safe_text(e.get("type", "invalid"), 50)})
            where = ".".join(str(p) for p in loc if p != "body") or "request"
            parts.append(f"{where}: {msg}")
        body = {"error": "invalid_request", "detail": safe_text("; ".join(parts) or "invalid request"), "errors": errors}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        error = getattr(exc, "error", None) or codes.get(exc.status_code, "http_error")
        return _error(exc.status_code, error, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # pragma: no cover - a bug, but still JSON
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal_error", f"the service failed on this request ({type(exc).__name__}); see its log")

    # ----- helpers ---------------------------------------------------------------------------------
    def pick(task: str, name: str | None) -> LoadedModel:
        if not name:
            if task not in defaults:
                raise ServiceError(404, "unknown_model", f"no '{task}' model is loaded; available: {', '.join(models)}")
            return models[defaults[task]]
        model = models.get(name)
        if model is None or model.task != task:
            names = [m.name for m in models.values() if m.task == task]
            raise ServiceError(404, "unknown_model", f"no '{task}' model named '{name}'; available: {', '.join(names) or 'none'}")
        return model

    def decode(data: bytes, name: str, model: LoadedModel):
        """The upload decoded and prepared for ``model`` (draft-decoded JPEGs at its input size)."""
        return images.decode(
            data, name, draft_size=image_resolution(model.predictor), then=lambda image: prepare_image(model.predictor, image)
        )

    def scores(model: LoadedModel, proba, k: int) -> list[CategoryScore]:
        top = top_k_from_proba(model.classes, proba[None, :], min(k, len(model.classes)))[0]
        return [CategoryScore(category=c, probability=min(max(p, 0.0), 1.0)) for c, p in top]

    def require_media(*accepted: str):
        """A dependency refusing (415) a request whose Content-Type is given and not one of ``accepted``."""

        def check(request: Request) -> None:
            kind = media_type({k.lower(): v for k, v in request.headers.items()})
            if kind and kind not in accepted:
                raise ServiceError(415, "unsupported_media_type", f"this route takes {' or '.join(accepted)}, not {kind[:100]!r}")

        return Depends(check)

    form_body = require_media("multipart/form-data", "application/x-www-form-urlencoded")
    json_body = require_media("application/json")

    # ----- open routes ------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="skulens API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/health", response_model=Health, tags=["status"], summary="Liveness")
    def health() -> Health:
        return Health(status="ok")

    @app.get("/ready", response_model=Ready, tags=["status"], summary="Readiness: models loaded and warmed up")
    def ready() -> Ready:
        return Ready(ready=bool(models), models=len(models), load_seconds=round(load_seconds, 3))

    @app.get("/models", response_model=ModelList, tags=["status"], summary="The loaded models")
    def list_models() -> ModelList:
        return ModelList(
            models=[
                ModelInfo(
                    name=m.name,
                    task=m.task,
                    classes=m.classes,
                    encoders=m.encoders,
                    metrics=m.metrics,
                    default=defaults.get(m.task) == m.name,
                )
                for m in models.values()
            ]
        )

    # ----- /v1 ----------------------------------------------------------------------------------------
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when the service has an API key.")

    def documented_key(_: str | None = Depends(key_header)) -> None:
        """Declares the key in the OpenAPI schema; :class:`GuardMiddleware` enforces it."""

    deps = [Depends(documented_key)] if api_key else []
    v1 = APIRouter(prefix="/v1", dependencies=deps, responses=ERROR_RESPONSES)

    async def product_inputs(chosen: LoadedModel, image: UploadFile | None, title, description, what: str):
        """(decoded photo or None, product text) of a multipart product request; 422 when it gives neither."""
        picture = None
        if image is not None and (image.filename or image.size):
            data = await image.read(max_upload_bytes + 1)
            picture = await run_in_threadpool(decode, data, image.filename or "upload", chosen)
        text = chosen.text_of(title, description)
        text = "" if is_blank(text) else text
        if picture is None and not text:
            raise ServiceError(422, "empty_input", f"give an image file, a title or a description to {what}")
        return picture, text

    @v1.post(
        "/categorize",
        response_model=CategorizeResponse,
        tags=["categorize"],
        summary="Categorize one product",
        dependencies=[form_body],
    )
    async def categorize(
        image: UploadFile | None = File(None, description="Product image (JPEG, PNG, WebP...)."),
        title: str | None = Form(None, max_length=10_000),
        description: str | None = Form(None, max_length=100_000),
        model: str | None = Form(None, max_length=MAX_NAME_CHARS, description="Model name from GET /models."),
        k: int = Form(5, ge=1, le=1000, description="How many categories to return."),
        response: Response = None,
    ) -> CategorizeResponse:
        """Top-k categories of one product from a multipart image and/or title/description fields.

        The ``Server-Timing`` header says where the time went: image decoding, waiting for the model
        worker, and the model call (with the size of the micro-batch it ran in)."""
        chosen = pick("categorize", model)
        started = time.perf_counter()
        picture, text = await product_inputs(chosen, image, title, description, "categorize")
        decoded = time.perf_counter()
        if picture is not None and not chosen.reads_images and not text:
            raise ServiceError(422, "empty_input", f"model '{chosen.name}' reads text only; give a title or description")
        future = chosen.batcher.submit((picture, text))
        proba = await asyncio.wrap_future(future)
        waited = (time.perf_counter() - decoded) * 1000
        compute = getattr(future, "compute_ms", 0.0)
        response.headers["Server-Timing"] = (
            f"decode;dur={(decoded - started) * 1000:.1f}, queue;dur={max(waited - compute, 0):.1f}, "
            f'model;dur={compute:.1f};desc="batch of {getattr(future, "batch_size", 1)}"'
        )
        return CategorizeResponse(
            model=chosen.name,
            categories=scores(chosen, proba, k),
            used_image=picture is not None and chosen.reads_images,
            used_text=bool(text) and chosen.reads_text,
        )

    @v1.post(
        "/categorize/batch",
        response_model=BatchResponse,
        tags=["categorize"],
        summary="Categorize many products",
        dependencies=[json_body],
    )
    async def categorize_batch(request: BatchRequest) -> BatchResponse:
        """Up to the batch limit of products (text and/or base64 image). A bad product gets an ``error``, the rest results."""
        if len(request.products) > max_batch:
            raise ServiceError(
                413,
                "batch_too_large",
                f"{len(request.products)} products is over the batch limit of {max_batch}; split the request",
            )
        chosen = pick("categorize", request.model)

        def prepare(product) -> tuple:
            picture = None
            if product.image_base64:
                picture = images.decode_base64(
                    product.image_base64,
                    product.id or "image_base64",
                    draft_size=image_resolution(chosen.predictor),
                    then=lambda image: prepare_image(chosen.predictor, image),
                )
            text = chosen.text_of(product.title, product.description)
            if picture is None and not text:
                raise ServiceError(422, "empty_input", "no image and no title/description")
            return picture, text

        items, futures = [], []
        for index, product in enumerate(request.products):
            try:
                prepared = await run_in_threadpool(prepare, product)
            except ServiceError as exc:
                items.append(BatchItem(index=index, id=product.id, error=exc.detail))
                continue
            items.append(BatchItem(index=index, id=product.id))
            futures.append((len(items) - 1, chosen.batcher.submit(prepared)))
        for position, future in futures:
            proba = await asyncio.wrap_future(future)
            items[position].categories = scores(chosen, proba, request.k)
        return BatchResponse(model=chosen.name, results=items)

    @v1.post("/reviews", response_model=ReviewsResponse, tags=["reviews"], summary="Read reviews", dependencies=[json_body])
    async def reviews(request: ReviewsRequest) -> ReviewsResponse:
        """Stars distribution, expected rating, sentiment and recommend probability for each review text."""
        if len(request.texts) > max_batch:
            raise ServiceError(413, "batch_too_large", f"{len(request.texts)} texts is over the batch limit of {max_batch}")
        chosen = pick("reviews", request.model)
        futures = [chosen.batcher.submit(text) for text in request.texts]
        results = []
        for index, future in enumerate(futures):
            out = json.loads(json.dumps(await asyncio.wrap_future(future), default=_plain))
            out.pop("index", None)
            results.append(ReviewResult(index=index, **out))
        return ReviewsResponse(model=chosen.name, results=results)

    query_scripts = QueryScripts.of(m.predictor for m in models.values() if m.task == "align")
    add_search_routes(v1, pick, ServiceError, images, query_scripts)
    attribute_models: dict[str, object] = {}

    @v1.post(
        "/attributes",
        response_model=AttributesResponse,
        tags=["categorize"],
        summary="Attributes of one product (colour, gender...)",
        dependencies=[form_body],
    )
    async def attributes(
        image: UploadFile | None = File(None, description="Product image (JPEG, PNG, WebP...)."),
        title: str | None = Form(None, max_length=10_000),
        description: str | None = Form(None, max_length=100_000),
        model: str | None = Form(
            None, max_length=MAX_NAME_CHARS, description="A categorize model trained with --attributes (GET /models)."
        ),
        k: int = Form(3, ge=1, le=100, description="How many values to return per attribute."),
    ) -> AttributesResponse:
        """The attribute values of one product, from the attribute models saved with a categorize model
        (``skulens categorize train --attributes colour,gender``); the same inputs as ``/v1/categorize``."""
        from skulens.tasks.attributes import AttributeModels

        chosen = pick("categorize", model)
        if chosen.name not in attribute_models:
            attribute_models[chosen.name] = await run_in_threadpool(AttributeModels.load, chosen.folder)
        found = attribute_models[chosen.name]
        if found is None:
            raise ServiceError(404, "no_attributes", f"model '{chosen.name}' has no attribute models; train it with --attributes")
        picture, text = await product_inputs(chosen, image, title, description, "read attributes from")
        top = await run_in_threadpool(found.predict_product, picture, title, description, k)
        return AttributesResponse(
            model=chosen.name,
            attributes={
                c: [AttributeScore(value=str(v), probability=min(max(p, 0.0), 1.0)) for v, p in t] for c, t in top.items()
            },
            used_image=picture is not None and chosen.reads_images,
            used_text=bool(text) and chosen.reads_text,
        )

    add_explain_routes(v1, pick, ServiceError, images)
    add_caption_routes(v1, pick, ServiceError, images)
    app.include_router(v1)
    generated_openapi = app.openapi

    def openapi() -> dict:
        """The generated schema, plus what the static models cannot say: categorize needs an image file, a
        title or a description (the image only where a loaded categorize model reads images, for explain
        too), and batch lists hold at most this service's ``max_batch`` items."""
        if app.openapi_schema is None:
            schemas = generated_openapi().get("components", {}).get("schemas", {})
            photos = any(m.task == "categorize" and m.reads_images for m in models.values())
            # the part's media type is declared the multipart way (the request body's ``encoding``), not as a
            # ``contentMediaType`` of the string: generators then draw the field as a file, not as text
            upload = {"type": "string", "format": "binary"}
            for body in (v for k, v in schemas.items() if k.startswith(("Body_categorize", "Body_attributes"))):
                body["properties"]["image"] = {**upload, "description": body["properties"]["image"].get("description", "")}
                image = [{"required": ["image"], "properties": {"image": upload}}] if photos else []
                body["anyOf"] = image + [given("title"), given("description")]
            for path in ("/v1/categorize", "/v1/attributes"):  # a product is needed: the form body is too
                request = app.openapi_schema.get("paths", {}).get(path, {}).get("post", {}).get("requestBody")
                if request is not None:
                    request["required"] = True
                    form = request.get("content", {}).get("multipart/form-data")
                    if form is not None:
                        form["encoding"] = {"image": {"contentType": "image/*"}}
            columns = filterable_columns(m for m in models.values() if m.task == "align")
            where = schemas.get("SearchRequest", {}).get("properties", {}).get("where", {}).get("anyOf", [{}])[0]
            if columns is not None and "propertyNames" in where:  # the columns the loaded indexes hold
                where["propertyNames"]["enum"] = columns
            if query_scripts is not None:
                query_scripts.declare(schemas)
            explain = schemas.get("ExplainRequest")
            if explain is not None and not photos:
                explain["anyOf"] = [branch for branch in explain["anyOf"] if branch["required"] != ["image_base64"]]
            for schema, field in (("BatchRequest", "products"), ("ReviewsRequest", "texts")):
                prop = schemas.get(schema, {}).get("properties", {}).get(field)
                if prop is not None:
                    prop["maxItems"] = max_batch
        return app.openapi_schema

    app.openapi = openapi
    return app


def _plain(value):
    """JSON fallback for numpy scalars/arrays in predictor outputs."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory skulens.serve.app:app_from_env`` (reads SKULENS_MODELS...)."""
    models = os.environ.get("SKULENS_MODELS")
    if not models:
        raise RuntimeError("set SKULENS_MODELS to the folder of saved models")
    return create_app(
        models,
        max_upload_bytes=int(os.environ.get("SKULENS_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)),
        max_batch=int(os.environ.get("SKULENS_MAX_BATCH", DEFAULT_MAX_BATCH)),
        max_decoded_pixels=int(os.environ.get("SKULENS_MAX_DECODED_PIXELS", DEFAULT_MAX_DECODED_PIXELS)),
    )
