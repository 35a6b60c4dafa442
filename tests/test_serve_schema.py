"""Property-based API test: schemathesis generates requests from the OpenAPI schema (valid and invalid
ones); none may get a 5xx, and every 4xx is a JSON ``{"error", "detail"}``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from serve_helpers import shared_models  # noqa: E402

OPERATIONS = [
    "GET /health",
    "GET /ready",
    "GET /models",
    "POST /v1/categorize",
    "POST /v1/categorize/batch",
    "POST /v1/reviews",
    "POST /v1/explain",
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from skulens.serve.app import create_app

    models = tmp_path_factory.mktemp("schema") / "models"
    shutil.copytree(shared_models(tmp_path_factory), models)
    app = create_app(models, max_upload_bytes=100_000, max_batch=8)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Hypothesis cannot draw a string longer than its 8 KiB buffer: a negative case for a field whose limit is
# above that ("maxLength + 1 characters") fails to generate at random. Those limits are left out of the
# schema the cases are drawn from; test_long_texts_are_refused checks them on the real app instead.
HYPOTHESIS_MAX_CHARS = 8_000


def _without_long_limits(node):
    if isinstance(node, dict):
        return {
            key: _without_long_limits(value)
            for key, value in node.items()
            if not (key == "maxLength" and isinstance(value, int) and value > HYPOTHESIS_MAX_CHARS)
        }
    if isinstance(node, list):
        return [_without_long_limits(value) for value in node]
    return node


@pytest.fixture(scope="module")
def generation_schema(api_schema):
    schema = schemathesis.openapi.from_dict(_without_long_limits(api_schema.raw_schema))
    schema.app = api_schema.app
    schema.location = api_schema.location
    return schema


def test_schema_lists_every_operation(api_schema):
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= labels


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors(generation_schema, label):
    operation = generation_schema.find_operation_by_label(label)
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    strategy = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])

    @given(case=strategy)
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: keep the run short
    )
    def check(case):
        response = case.call(timeout=30)
        assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
        if response.status_code >= 400:
            body = json.loads(response.text)
            assert "error" in body and "detail" in body, body

    check()


def test_schema_declares_the_batch_limit(api_schema):
    schemas = api_schema.raw_schema["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["products"]["maxItems"] == 8
    assert schemas["ReviewsRequest"]["properties"]["texts"]["maxItems"] == 8


def test_schema_states_which_fields_a_request_needs(api_schema):
    """The rules the routes check beyond single fields are in the schema (issue 24: schema-valid requests
    were refused): one of text/photo for search, a photo or a text for zero-shot and explain, image files
    and base64 images declared as such."""
    import re

    from skulens.serve.schemas import NOT_BLANK_PATTERN

    schemas = api_schema.raw_schema["components"]["schemas"]
    required = lambda name, key: [b["required"] for b in schemas[name][key]]  # noqa: E731
    assert required("SearchRequest", "oneOf") == [["text"], ["image_base64"]]
    assert required("ZeroShotRequest", "anyOf") == [["image_base64"], ["text"]]
    assert [["title"], ["description"]] == [r for r in required("ExplainRequest", "anyOf") if r != ["image_base64"]]
    body = next(v for k, v in schemas.items() if k.startswith("Body_categorize"))
    assert body["properties"]["image"]["format"] == "binary"
    assert body["anyOf"][-1]["properties"]["description"]["pattern"] == NOT_BLANK_PATTERN
    image = schemas["CaptionRequest"]["properties"]["image_base64"]
    assert image["format"] == "byte" and image["minLength"] == 32
    assert re.match(image["pattern"], "aGk=") and not re.match(image["pattern"], "0.1.0")


def test_long_texts_are_refused(api_schema):
    """The limits above Hypothesis' reach, checked directly: one character past each is a JSON 422."""
    from fastapi.testclient import TestClient

    client = TestClient(api_schema.app)
    too_long = [
        client.post("/v1/categorize", data={"title": "x" * 10_001}),
        client.post("/v1/categorize", data={"description": "x" * 100_001}),
        client.post("/v1/categorize/batch", json={"products": [{"description": "x" * 100_001}]}),
        client.post("/v1/reviews", json={"texts": ["x" * 100_001]}),
    ]
    for response in too_long:
        assert response.status_code == 422, response.text[:300]
        assert set(response.json()) >= {"error", "detail"}
    fits = client.post("/v1/reviews", json={"texts": ["great shoes " * 8_000]})
    assert fits.status_code == 200, fits.text[:300]


def test_image_parts_are_declared_as_image_files(api_schema):
    """The multipart image part's media type is the form's ``encoding`` (OpenAPI's way for a part), not a
    ``contentMediaType`` of the string: with the latter, generators drew the part as text (schemathesis sent
    ``b'--'``, a schema-valid request the service must refuse; issue 24's last conformance finding)."""
    for path in ("/v1/categorize", "/v1/attributes"):
        form = api_schema.raw_schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert form["encoding"] == {"image": {"contentType": "image/*"}}
        body = api_schema.raw_schema["components"]["schemas"][form["schema"]["$ref"].rsplit("/", 1)[1]]
        assert body["properties"]["image"]["format"] == "binary" and "contentMediaType" not in body["properties"]["image"]


# ----- docs/serve.md states every limit per route as the code declares it ----------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "serve.md"


def _limit(schema: dict, *path: str, key: str = "maxLength"):
    """The ``key`` limit of the property at ``path`` (through ``anyOf`` branches and list ``items``)."""
    node = schema
    for name in path:
        node = node["items"] if name == "[]" else node["properties"][name]
    options = [node, *node.get("anyOf", [])]
    for option in options:
        inner = [option, *option.get("anyOf", [])]
        found = [o[key] for o in inner if key in o and not (key == "maxLength" and o[key] == 0)]
        if found:
            value = found[0]
            return int(value) if float(value).is_integer() else value
    raise AssertionError(f"no {key} at {path}")


def _n(value: int) -> str:
    return f"{value:,}"


def test_the_doc_lists_each_routes_limits_as_the_code_declares_them(api_schema):
    """Each route's row in docs/serve.md holds the limits its request schema declares (and the code constants
    of the other limits), so a limit changed in the code fails here until the doc says so too."""
    from skulens.catalog.images import DEFAULT_MAX_PIXELS
    from skulens.explain.text_attribution import MAX_EXPLAINED_CHARS
    from skulens.serve.app import DEFAULT_MAX_BATCH
    from skulens.serve.explain_routes import EXPLAIN_SLOTS
    from skulens.serve.uploads import DEFAULT_DECODE_SLOTS, DEFAULT_MAX_DECODED_PIXELS, DEFAULT_MAX_UPLOAD_BYTES
    from skulens.tasks.caption import MAX_BEAM

    raw = api_schema.raw_schema
    schemas = raw["components"]["schemas"]

    def body(path: str) -> dict:
        ref = raw["paths"][path]["post"]["requestBody"]["content"]
        ref = next(iter(ref.values()))["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    def span(schema: dict, *path: str) -> str:
        low = _limit(schema, *path, key="minimum")
        return f"{low}..{_limit(schema, *path, key='maximum')}"

    categorize, attributes = body("/v1/categorize"), body("/v1/attributes")
    batch, reviews, search = schemas["BatchRequest"], schemas["ReviewsRequest"], schemas["SearchRequest"]
    zero_shot, caption, explain = schemas["ZeroShotRequest"], schemas["CaptionRequest"], schemas["ExplainRequest"]
    similar_k = next(p for p in raw["paths"]["/v1/similar/{product_id}"]["get"]["parameters"] if p["name"] == "k")["schema"]
    product = schemas["ProductIn"]
    where = search["properties"]["where"]["anyOf"][0]
    expected = {
        "`POST /v1/categorize`": [
            f"`title` {_n(_limit(categorize, 'title'))}",
            f"`description` {_n(_limit(categorize, 'description'))} characters",
            f"`k` {span(categorize, 'k')}",
            f"`model` {_limit(categorize, 'model')}",
        ],
        "`POST /v1/attributes`": [
            f"`title` {_n(_limit(attributes, 'title'))}",
            f"`description` {_n(_limit(attributes, 'description'))} characters",
            f"`k` {span(attributes, 'k')}",
            f"`model` {_limit(attributes, 'model')}",
        ],
        "`POST /v1/categorize/batch`": [
            f"`products` {_limit(batch, 'products', key='minItems')}..`--max-batch` ({DEFAULT_MAX_BATCH}",
            f"`id` {_limit(product, 'id')}",
            f"`title` {_n(_limit(product, 'title'))}",
            f"`description` {_n(_limit(product, 'description'))}",
            f"`image_base64` {_n(_limit(product, 'image_base64'))} characters",
            f"`k` {span(batch, 'k')}",
            f"`model` {_limit(batch, 'model')}",
        ],
        "`POST /v1/reviews`": [
            f"`texts` {_limit(reviews, 'texts', key='minItems')}..`--max-batch`",
            f"each {_limit(reviews, 'texts', '[]', key='minLength')}..{_n(_limit(reviews, 'texts', '[]'))} characters",
            f"`model` {_limit(reviews, 'model')}",
        ],
        "`POST /v1/search`": [
            f"`text` {_n(_limit(search, 'text'))} characters",
            f"`k` {span(search, 'k')}",
            f"at most {where['maxProperties']} keys of at most {where['propertyNames']['maxLength']} characters",
            f"a list of at most {_limit({'properties': where}, 'additionalProperties', key='maxItems')} strings of at most "
            f"{_limit({'properties': where}, 'additionalProperties')} characters",
            f"`model` {_limit(search, 'model')}",
        ],
        "`GET /v1/similar/{id}`": [f"`k` {similar_k['minimum']}..{similar_k['maximum']}", "cut to 200 characters"],
        "`POST /v1/zero-shot`": [
            f"`labels` {_limit(zero_shot, 'labels', key='minItems')}..{_limit(zero_shot, 'labels', key='maxItems')}, "
            f"each at most {_limit(zero_shot, 'labels', '[]')} characters",
            f"`templates` at most {_limit(zero_shot, 'templates', key='maxItems')}, each at most "
            f"{zero_shot['properties']['templates']['anyOf'][0]['items']['maxLength']} characters",
            f"`text` {_n(_limit(zero_shot, 'text'))} characters",
            f"`k` {span(zero_shot, 'k')}",
            f"`model` {_limit(zero_shot, 'model')}",
        ],
        "`POST /v1/caption`": [
            f"`beam` {span(caption, 'beam')} (a saved captioner's own beam is 1..{MAX_BEAM})",
            f"`nearest` {span(caption, 'nearest')}",
            f"`model` {_limit(caption, 'model')}",
        ],
        "`POST /v1/explain`": [
            f"`title` {_n(_limit(explain, 'title'))}",
            f"`description` {_n(_limit(explain, 'description'))}",
            f"`category` {_n(_limit(explain, 'category'))} characters",
            f"`model` {_limit(explain, 'model')}",
            f"only the first {_n(MAX_EXPLAINED_CHARS)} characters",
        ],
    }
    rows = {line.split("|")[1].strip(): line for line in DOC.read_text().splitlines() if line.startswith("| `")}
    missing = {route: [s for s in snippets if s not in rows.get(route, "")] for route, snippets in expected.items()}
    assert not {route: gone for route, gone in missing.items() if gone}, missing

    limits = DOC.read_text()
    for snippet in (
        f"{DEFAULT_MAX_PIXELS // 1_000_000} MP (`DEFAULT_MAX_PIXELS`)",
        f"{DEFAULT_MAX_DECODED_PIXELS // 1_000_000} MP (`create_app(max_decoded_pixels=)`",
        f"| concurrent decodes | {DEFAULT_DECODE_SLOTS} (`create_app(decode_slots=)`)",
        f"| concurrent explanations | {EXPLAIN_SLOTS} (`EXPLAIN_SLOTS`)",
        f"`--max-upload-mb` ({DEFAULT_MAX_UPLOAD_BYTES // 1024**2} MB)",
        f"`--max-batch` ({DEFAULT_MAX_BATCH}) products or texts",
    ):
        assert snippet in limits, snippet
