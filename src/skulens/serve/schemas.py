"""Pydantic models for every request and response of the skulens service (they make the OpenAPI docs)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _valid_unicode(text: str) -> str:
    """Refuse text with lone surrogates (JSON lets ``"\\ud800"`` through; it is not Unicode text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode text") from None
    return text


#: At least one character that is not whitespace, for Python (``str.isspace``) and for JSON Schema
#: (ECMA-262 ``\\s``, which also counts U+FEFF) alike, so the schema and the service agree on "blank".
NOT_BLANK_PATTERN = "[^\\s\\x1c-\\x1f\\x85]"
_NOT_BLANK = re.compile("[^\\s\\x1c-\\x1f\\x85\\ufeff]")


def is_blank(text: str | None) -> bool:
    """No text, or only whitespace (as :data:`NOT_BLANK_PATTERN` says in the schema)."""
    return not text or not _NOT_BLANK.search(text)


def given(field: str, text: bool = True) -> dict:
    """JSON Schema saying ``field`` is given: a text with a character that is not blank, or (``text=False``)
    a base64 image (at least ``MIN_BASE64_CHARS``); for the ``anyOf``/``oneOf`` of a request that needs one of several fields."""
    kind = {"pattern": NOT_BLANK_PATTERN} if text else {"minLength": MIN_BASE64_CHARS}
    return {"required": [field], "properties": {field: {"type": "string", **kind}}}


def _not_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError("is empty (or only spaces); give the review text")
    return text


#: A string of a request: valid Unicode (no lone surrogates).
Text = Annotated[str, AfterValidator(_valid_unicode)]

# Limits of every list and text of a request (declared in the OpenAPI schema as maxItems/maxLength).
#: A model name, a product id, a label, a metadata key or value.
MAX_NAME_CHARS = 200
#: A base64 image: no image file is under 24 bytes (32 characters), and the 10 MB upload limit in base64 (the
#: body limit refuses more anyway).
MIN_BASE64_CHARS = 32
MAX_BASE64_CHARS = 14_000_000
#: Zero-shot labels and prompt templates per request, and the length of one template.
MAX_LABELS = 500
MAX_TEMPLATES = 20
MAX_TEMPLATE_CHARS = 200
#: Search metadata filters: keys per request and values per key.
MAX_FILTER_KEYS = 20
MAX_FILTER_VALUES = 100

#: Plain base64 with padding, optionally after a ``data:<type>;base64,`` prefix (what the schema declares; the
#: service also takes line-wrapped MIME base64).
BASE64_PATTERN = (
    "^(data:[A-Za-z0-9_.+/-]*(;[A-Za-z0-9_.+-]+=[A-Za-z0-9_.+-]+)*;base64,)?"
    "([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)
#: A short name (model, id, label, filter key or value).
Name = Annotated[Text, Field(max_length=MAX_NAME_CHARS)]
#: How the schema describes a base64 image (declared, not enforced here: the decoder answers 400 for a string
#: that is not an image).
_BASE64_IMAGE = {"format": "byte", "contentEncoding": "base64", "contentMediaType": "image/*", "pattern": BASE64_PATTERN}
#: An optional base64 image: empty (no image) or an image file of at least 32 characters.
Base64Image = Annotated[
    Text,
    Field(
        max_length=MAX_BASE64_CHARS,
        description="An image file (JPEG/PNG/WebP...) as base64; empty means no image.",
        json_schema_extra={**_BASE64_IMAGE, "anyOf": [{"maxLength": 0}, {"minLength": MIN_BASE64_CHARS}]},
    ),
]
#: A base64 image a request cannot do without.
RequiredBase64Image = Annotated[
    Text,
    Field(
        max_length=MAX_BASE64_CHARS,
        description="An image file (JPEG/PNG/WebP...) as base64.",
        json_schema_extra={**_BASE64_IMAGE, "minLength": MIN_BASE64_CHARS},
    ),
]
#: One review text: not blank (declared in the schema too, so generated clients know), at most 100,000 characters.
ReviewText = Annotated[
    Text, AfterValidator(_not_blank), Field(max_length=100_000, json_schema_extra={"minLength": 1, "pattern": NOT_BLANK_PATTERN})
]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a short machine-readable code and a sentence saying what is wrong."""

    error: str = Field(..., examples=["invalid_image"])
    detail: str = Field(..., examples=["image 'x.jpg' is not an image file (unrecognised format)"])


class Health(BaseModel):
    status: str = Field("ok", examples=["ok"])


class Ready(BaseModel):
    ready: bool
    models: int = Field(..., description="How many models are loaded.")
    load_seconds: float = Field(..., description="Seconds it took to load and warm up the models.")


class ModelInfo(BaseModel):
    name: str = Field(..., description="The model folder's name; pass it as `model` in requests.")
    task: str = Field(..., examples=["categorize", "reviews"])
    classes: list[str] = Field(default_factory=list)
    encoders: dict[str, str] = Field(default_factory=dict, description="Encoder name -> identity (name@version).")
    metrics: dict = Field(default_factory=dict, description="Metrics saved with the model (accuracy, macro_f1...).")
    default: bool = Field(False, description="Used when a request names no model for this task.")


class ModelList(BaseModel):
    models: list[ModelInfo]


class CategoryScore(BaseModel):
    category: str
    probability: float = Field(..., ge=0.0, le=1.0)


class CategorizeResponse(BaseModel):
    model: str
    categories: list[CategoryScore] = Field(..., description="Top-k categories, most likely first.")
    used_image: bool
    used_text: bool


class AttributeScore(BaseModel):
    value: str
    probability: float = Field(..., ge=0.0, le=1.0)


class AttributesResponse(BaseModel):
    model: str
    attributes: dict[str, list[AttributeScore]] = Field(
        ..., description="Per attribute column, the top values, most likely first."
    )
    used_image: bool
    used_text: bool


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Name | None = Field(None, description="Echoed back in the result.")
    title: Text | None = Field(None, max_length=10_000)
    description: Text | None = Field(None, max_length=100_000)
    image_base64: Base64Image | None = Field(
        None, description="Optional image file (JPEG/PNG/WebP...) encoded as base64; same limits as uploads."
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Name | None = Field(None, description="Model name from GET /models; the default categorizer if omitted.")
    k: int = Field(5, ge=1, le=1000, description="How many categories per product.")
    products: list[ProductIn] = Field(..., min_length=1, description="The products (at most the service's batch limit).")


class BatchItem(BaseModel):
    index: int
    id: str | None = None
    categories: list[CategoryScore] = Field(default_factory=list)
    error: str | None = Field(None, description="Why this product could not be categorized (others still are).")


class BatchResponse(BaseModel):
    model: str
    results: list[BatchItem]


class ReviewsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Name | None = Field(None, description="Reviews model name; the default one if omitted.")
    texts: list[ReviewText] = Field(..., min_length=1, description="Review texts (at most the service's batch limit).")


class ReviewResult(BaseModel):
    """What the reviews predictor says about one review (extra keys it returns are passed through)."""

    model_config = ConfigDict(extra="allow")

    index: int
    stars: int | None = Field(None, ge=1, le=5, description="The predicted star rating.")
    star_proba: dict[str, float] | None = Field(None, description="Probability of each star rating 1..5.")
    expected_rating: float | None = Field(None, description="Sum of k * p(k).")
    sentiment: str | None = Field(None, examples=["positive", "neutral", "negative"])
    sentiment_score: float | None = Field(None, description="P(positive) - P(negative), in [-1, 1].")
    recommend_proba: float | None = Field(None, description="Probability that the reviewer recommends the product.")
    error: str | None = Field(None, description="Why this review could not be read.")


class ReviewsResponse(BaseModel):
    model: str
    results: list[ReviewResult]
