"""Service routes of the image-text alignment: /v1/search, /v1/similar/{id}, /v1/zero-shot (TestClient, real tiny model)."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from test_align import FAST, _draw, _shop  # noqa: E402

from skulens.heads.align import AlignConfig  # noqa: E402
from skulens.serve.app import create_app  # noqa: E402
from skulens.tasks.align import AlignmentModel  # noqa: E402


def _b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("align-serve")
    shop = _shop(root, per_kind=8)
    config = AlignConfig(dim=32, epochs=40, patience=40, dropout=0.1, batch_size=32, lr=3e-3)
    models = root / "models"
    for name, seed in (("shapes-align", 0), ("no-index", 1)):
        model = AlignmentModel(**FAST, head_config=AlignConfig(**{**config.to_dict(), "seed": seed}), cache_dir=root / "cache")
        model.fit(shop).save(models / name)
        if name == "shapes-align":
            model.build_index(shop).save(models / name / "index")
    return models


@pytest.fixture(scope="module")
def client(models_dir):
    with TestClient(create_app(models_dir, max_upload_bytes=200_000)) as c:
        yield c


def assert_error(response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    for word in words:
        assert word.lower() in body["detail"].lower(), body


def test_models_lists_the_alignment(client):
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["shapes-align"]["task"] == "align" and set(models["shapes-align"]["encoders"]) == {"classical-image", "tfidf"}
    assert {"/v1/search", "/v1/similar/{product_id}", "/v1/zero-shot"} <= set(client.get("/openapi.json").json()["paths"])


def test_search_by_text_image_and_filter(client):
    body = client.post("/v1/search", json={"text": "red circle sticker", "k": 5, "model": "shapes-align"}).json()
    assert body["model"] == "shapes-align" and body["index_size"] == 96 and len(body["results"]) == 5
    assert body["results"][0]["score"] >= body["results"][-1]["score"]
    filtered = client.post(
        "/v1/search", json={"text": "red circle", "k": 4, "where": {"colour": "blue"}, "model": "shapes-align"}
    )
    assert filtered.status_code == 200 and all(h["metadata"]["colour"] == "blue" for h in filtered.json()["results"])
    by_image = client.post(
        "/v1/search", json={"image_base64": _b64(_draw("green", "square", 3)), "k": 3, "model": "shapes-align"}
    )
    assert by_image.status_code == 200 and len(by_image.json()["results"]) == 3


def test_similar(client):
    body = client.get("/v1/similar/p5", params={"k": 3, "model": "shapes-align"}).json()
    assert len(body["results"]) == 3 and all(h["id"] != "p5" for h in body["results"])
    assert_error(client.get("/v1/similar/nope", params={"model": "shapes-align"}), 404, "unknown_product", "'nope'")


def test_zero_shot(client):
    body = client.post(
        "/v1/zero-shot",
        json={
            "labels": ["red", "green", "blue", "yellow"],
            "image_base64": _b64(_draw("blue", "circle", 9)),
            "k": 2,
            "model": "shapes-align",
        },
    ).json()
    assert len(body["labels"]) == 2 and body["used_image"] and not body["used_text"]
    assert body["labels"][0]["probability"] >= body["labels"][1]["probability"]
    assert_error(
        client.post("/v1/zero-shot", json={"labels": ["a", "b"], "model": "shapes-align"}), 422, "invalid_query", "photo"
    )
    assert client.post("/v1/zero-shot", json={"labels": ["a"], "text": "x"}).status_code == 422


@pytest.mark.parametrize(
    ("payload", "status", "code", "words"),
    [
        ({"text": "  "}, 422, "invalid_query", ("empty",)),
        ({"text": "красные кроссовки"}, 422, "invalid_query", ("cyrillic",)),
        ({"text": "red", "image_base64": "aGk="}, 422, "invalid_query", ("exactly one",)),
        ({}, 422, "invalid_query", ("exactly one",)),
        ({"image_base64": "%%%"}, 400, "invalid_image", ("base64",)),
        ({"image_base64": base64.b64encode(b"not an image").decode()}, 400, "invalid_image", ()),
        ({"text": "red", "where": {"brand": "x"}}, 422, "invalid_request", ("brand",)),
        ({"text": "red", "model": "nope"}, 404, "unknown_model", ("nope",)),
    ],
)
def test_bad_search_requests(client, payload, status, code, words):
    assert_error(client.post("/v1/search", json={"model": "shapes-align", **payload}), status, code, *words)


def test_k_over_the_index_size_returns_every_product(client):
    """The service answers at most ``k`` products: a ``k`` the schema allows but the index cannot fill gives them all."""
    size = client.post("/v1/search", json={"model": "shapes-align", "text": "red", "k": 1}).json()["index_size"]
    body = client.post("/v1/search", json={"model": "shapes-align", "text": "red", "k": 1000}).json()
    assert len(body["results"]) == size
    similar = client.get("/v1/similar/p5", params={"k": 1000, "model": "shapes-align"}).json()
    assert len(similar["results"]) == size - 1 and "p5" not in {hit["id"] for hit in similar["results"]}


def test_missing_and_mismatched_index(client, models_dir, tmp_path):
    assert_error(client.post("/v1/search", json={"text": "red", "model": "no-index"}), 404, "no_index", "skulens search index")
    other = tmp_path / "models"
    shutil.copytree(models_dir / "no-index", other / "no-index")
    shutil.copytree(models_dir / "shapes-align" / "index", other / "no-index" / "index")
    with TestClient(create_app(other)) as c:
        assert_error(c.post("/v1/search", json={"text": "red"}), 409, "index_mismatch", "built with model")


@pytest.mark.parametrize(
    "path, raw",
    [
        ("/v1/search", '{"text": "\\ud800 shoes"}'),
        ("/v1/search", '{"text": "shoes", "where": {"\\udfff": "Men"}}'),
        ("/v1/zero-shot", '{"labels": ["a", "\\ud800"], "text": "x"}'),
    ],
)
def test_lone_surrogates_get_a_clean_422(client, path, raw):
    response = client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")


# ----- issue 24: templates are plain text, every list and text is bounded, one image decode path ------


@pytest.mark.parametrize(
    "template", ["{label}{label:a>10000000}", "{label} {0}", "{label} {}", "{label} {x}", "{label} {", "{label} {label:d}"]
)
def test_zero_shot_templates_are_plain_text(client, template):
    """A template is substituted, never formatted: format specs and stray braces are just characters."""
    response = client.post(
        "/v1/zero-shot", json={"labels": ["Shoes", "Shirts"], "text": "x", "templates": [template], "model": "shapes-align"}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["labels"]) == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"templates": ["{label} v" + str(i) for i in range(21)]},
        {"templates": ["{label}" + "x" * 300]},
        {"labels": ["a" * 201, "b"]},
        {"labels": [f"l{i}" for i in range(501)]},
    ],
)
def test_zero_shot_lists_and_texts_are_bounded(client, payload):
    request = {"labels": ["Shoes", "Shirts"], "text": "x", "model": "shapes-align", **payload}
    assert_error(client.post("/v1/zero-shot", json=request), 422, "invalid_request")


def test_search_filters_are_bounded(client):
    many_keys = {f"k{i}": "x" for i in range(21)}
    assert_error(client.post("/v1/search", json={"text": "red", "where": many_keys}), 422, "invalid_request")
    many_values = {"colour": [f"c{i}" for i in range(101)]}
    assert_error(client.post("/v1/search", json={"text": "red", "where": many_values}), 422, "invalid_request")
    assert_error(client.post("/v1/search", json={"text": "red", "model": "m" * 201}), 422, "invalid_request")


def test_openapi_declares_the_bounds(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    def prop(schema, name):
        field = schemas[schema]["properties"][name]
        return next((option for option in field.get("anyOf", [field]) if option.get("type") != "null"), field)

    templates = prop("ZeroShotRequest", "templates")
    assert templates["maxItems"] == 20 and templates["items"]["maxLength"] == 200
    assert prop("ZeroShotRequest", "labels")["items"]["maxLength"] == 200
    assert prop("SearchRequest", "where")["maxProperties"] == 20
    for schema in ("SearchRequest", "ZeroShotRequest"):
        assert prop(schema, "image_base64")["maxLength"] > 0 and prop(schema, "model")["maxLength"] == 200


@pytest.mark.parametrize("path", ["/v1/search", "/v1/zero-shot"])
def test_decoded_pixel_cap_on_alignment_routes(client, tmp_path, path):
    """A tiny PNG that decodes to 64 MP is refused (400) before its pixels are allocated."""
    from conftest import write_huge_png

    data = write_huge_png(tmp_path / "big.png", 7999, 7999).read_bytes()
    request = {"image_base64": base64.b64encode(data).decode(), "model": "shapes-align"}
    if path == "/v1/zero-shot":
        request["labels"] = ["a", "b"]
    assert_error(client.post(path, json=request), 400, "invalid_image", "decoded pixels")


# ----- issue 24: tampered index folders are a clear 409, read once, and never show the server's paths ------


def _nan_index(index):
    import faiss

    vectors = faiss.read_index(str(index / "index.faiss"))
    broken = faiss.IndexFlatIP(vectors.d)
    broken.add(np.full((vectors.ntotal, vectors.d), np.nan, dtype=np.float32))
    faiss.write_index(broken, str(index / "index.faiss"))


def _huge_header(index):
    data = bytearray((index / "index.faiss").read_bytes())
    data[37:45] = (2**28).to_bytes(8, "little")  # a vector array of 1 GiB declared in a small file
    (index / "index.faiss").write_bytes(bytes(data))


def _binary_index(index):
    """A FAISS binary index (bits, not floats) where the float index belongs."""
    import faiss

    vectors = faiss.read_index(str(index / "index.faiss"))
    binary = faiss.IndexBinaryFlat(vectors.d * 8)
    binary.add(np.zeros((vectors.ntotal, vectors.d), dtype=np.uint8))
    faiss.write_index_binary(binary, str(index / "index.faiss"))


def _manifest(change):
    def tamper(index):
        manifest = json.loads((index / "manifest.json").read_text())
        (index / "manifest.json").write_text(json.dumps(change(manifest)))

    return tamper


TAMPERED_INDEXES = {
    "truncated": lambda i: (i / "index.faiss").write_bytes((i / "index.faiss").read_bytes()[:100]),
    "empty": lambda i: (i / "index.faiss").write_bytes(b""),
    "garbage": lambda i: (i / "index.faiss").write_bytes(os.urandom((i / "index.faiss").stat().st_size)),
    "pickled": lambda i: (i / "index.faiss").write_bytes(pickle.dumps(list(range(3000)))),
    "huge-header": _huge_header,
    "nan-vectors": _nan_index,
    "manifest-list": lambda i: (i / "manifest.json").write_text("[1, 2]"),
    "manifest-not-utf8": lambda i: (i / "manifest.json").write_bytes(b"\xff\xfe{}"),
    "ivf-without-params": _manifest(lambda m: {**m, "kind": "ivf", "params": {}}),
    "dim-string": _manifest(lambda m: {**m, "dim": "32"}),
    "garbage-metadata": lambda i: (i / "metadata.parquet").write_bytes(b"PAR1 not parquet PAR1"),
    "binary-index": _binary_index,
}


@pytest.fixture(scope="module")
def tampered(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("tampered-indexes")
    for name, tamper in TAMPERED_INDEXES.items():
        shutil.copytree(models_dir / "shapes-align", root / name)
        tamper(root / name / "index")
    with TestClient(create_app(root, max_upload_bytes=200_000)) as c:
        yield c, root


@pytest.mark.parametrize("name", sorted(TAMPERED_INDEXES))
def test_tampered_index_is_a_clear_409_without_paths(tampered, name):
    client, root = tampered
    for _ in range(2):
        response = client.post("/v1/search", json={"text": "red circle", "model": name})
        assert_error(response, 409, "broken_index", "rebuild")
        assert str(root) not in response.json()["detail"] and "/tmp" not in response.json()["detail"]
    assert client.get("/v1/similar/p5", params={"model": name}).status_code == 409


def test_a_failed_index_load_is_remembered(tampered, models_dir):
    """The second request does not read the folder again: repairing it needs a restart (or reload)."""
    client, root = tampered
    assert client.post("/v1/search", json={"text": "red", "model": "empty"}).status_code == 409
    shutil.rmtree(root / "empty" / "index")
    shutil.copytree(models_dir / "shapes-align" / "index", root / "empty" / "index")
    assert_error(client.post("/v1/search", json={"text": "red", "model": "empty"}), 409, "broken_index")


# ----- issue 24: tampered alignment folders are one clear ModelFolderError --------------------------------


def _config_change(change):
    def tamper(folder):
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))

    return tamper


def _shrunk_projection(folder):
    with np.load(folder / "weights.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if k.startswith("heads.image_proj") and k.endswith("weight"))
    arrays[key] = arrays[key][:, :-1]
    np.savez(folder / "weights.npz", **arrays)


TAMPERED_ALIGNMENTS = {
    "st-absolute": _config_change(lambda c: c.update(text_encoders=["st:/etc", *c["text_encoders"][1:]])),
    "st-parent": _config_change(lambda c: c.update(text_encoders=["st:../../../x", *c["text_encoders"][1:]])),
    "finetuned-outside": _config_change(lambda c: c.update(image_encoders=["finetuned:/tmp/elsewhere"])),
    "huge-dim": _config_change(lambda c: c["align"].update(dim=200_000)),
    "dim-string": _config_change(lambda c: c["align"].update(dim="32")),
    "dropout-nan": _config_change(lambda c: c["align"].update(dropout=float("nan"))),
    "align-list": _config_change(lambda c: c.update(align=[1, 2])),
    "encoders-number": _config_change(lambda c: c.update(image_encoders=5)),
    "fields-string": _config_change(lambda c: c.update(text_fields="title")),
    "identities-list": _config_change(lambda c: c.update(encoder_identities=[1])),
    "missing-align": _config_change(lambda c: c.pop("align")),
    "projection-shape": _shrunk_projection,
}


@pytest.mark.parametrize("name", sorted(TAMPERED_ALIGNMENTS))
def test_tampered_alignment_folder_is_one_clear_error(models_dir, tmp_path, name):
    from skulens.tasks.model_folder import ModelFolderError

    folder = Path(shutil.copytree(models_dir / "no-index", tmp_path / name))
    TAMPERED_ALIGNMENTS[name](folder)
    with pytest.raises(ModelFolderError, match="damaged|outside the model folder"):
        AlignmentModel.load(folder)


def test_list_and_mapping_metadata_are_served_as_json(models_dir, tmp_path):
    """Issue 24: nested metadata columns (a list, a mapping) made every search a 500 (not serialisable)."""
    import pandas as pd

    folder = Path(shutil.copytree(models_dir / "shapes-align", tmp_path / "models" / "nested"))
    metadata = pd.read_parquet(folder / "index" / "metadata.parquet")
    metadata["tags"] = [[f"t{i}", "shop"] for i in range(len(metadata))]
    metadata["sizes"] = [{"s": i, "m": i + 1} for i in range(len(metadata))]
    metadata.to_parquet(folder / "index" / "metadata.parquet", index=False)
    with TestClient(create_app(tmp_path / "models", max_upload_bytes=200_000)) as nested:
        response = nested.post("/v1/search", json={"text": "red circle", "k": 3, "model": "nested"})
        assert response.status_code == 200, response.text
        hits = response.json()["results"]
        assert len(hits) == 3 and all(h["metadata"]["tags"][1] == "shop" for h in hits)
        assert all(h["metadata"]["sizes"]["m"] == h["metadata"]["sizes"]["s"] + 1 for h in hits)


def test_unknown_ids_are_quoted_short_and_no_indexed_id_is_listed(client):
    """Issue 24: a 404 echoed a 2,000-character id in full and listed ids of the index."""
    long_id = "x" * 2_000
    response = client.get(f"/v1/similar/{long_id}", params={"model": "shapes-align"})
    assert_error(response, 404, "unknown_product")
    detail = response.json()["detail"]
    assert "x" * 199 in detail and "x" * 201 not in detail and len(detail) < 400
    assert not any(f"p{i}" in detail for i in range(10))


# ----- issue 24 (schemathesis conformance): the script rule is declared in the schema and applied alike ------


def _zero_shot_items(schemas: dict, field: str) -> dict:
    prop = schemas["ZeroShotRequest"]["properties"][field]
    return next(option for option in prop.get("anyOf", [prop]) if option.get("type") == "array")["items"]


@pytest.mark.parametrize(
    "text, accepted",
    [("red shoes", True), ("1º piso", True), ("42", True), ("red 衬衫", True), ("衬衫", False), ("Кожаная сумка", False)],
)
def test_query_scripts_are_declared_and_applied_alike(client, text, accepted):
    """A Latin-trained model: a query with a Latin letter or no letter passes, one only in other scripts is a
    422 that names the script; the schema's pattern says the same for the query, the zero-shot text and labels."""
    import re

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    query = next(o for o in schemas["SearchRequest"]["properties"]["text"]["anyOf"] if o.get("type") == "string")
    label = _zero_shot_items(schemas, "labels")
    assert bool(re.search(query["pattern"], text)) == accepted and bool(re.search(label["pattern"], text)) == accepted

    search = client.post("/v1/search", json={"text": text, "k": 2, "model": "shapes-align"})
    zero_shot = client.post("/v1/zero-shot", json={"labels": [text, "Shoes"], "text": "x", "model": "shapes-align"})
    for response in (search, zero_shot):
        if accepted:
            assert response.status_code == 200, response.text
        else:
            assert_error(response, 422, "invalid_query", "script", "LATIN")


@pytest.mark.parametrize(
    "template, labels, accepted",
    [
        ("{label}", ["42", "43"], True),
        ("a photo of {label}", ["衬衫", "Shoes"], False),
        ("фото {label}", ["Shoes", "Shirts"], False),
    ],
)
def test_templates_in_unseen_scripts_are_refused_as_declared(client, template, labels, accepted):
    import re

    pattern = _zero_shot_items(client.get("/openapi.json").json()["components"]["schemas"], "templates")["pattern"]
    assert bool(re.search(pattern, template)) == (template != "фото {label}")
    response = client.post(
        "/v1/zero-shot", json={"labels": labels, "text": "x", "templates": [template], "model": "shapes-align"}
    )
    assert response.status_code == 200 if accepted else response.status_code == 422, response.text


def test_script_patterns_agree_with_the_rule_on_drawn_texts():
    """Property: for drawn texts over several scripts, each declared pattern matches exactly when the service's
    check lets the text through (so schema-valid requests are never refused for their script)."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from skulens.serve.query_scripts import QueryScripts
    from skulens.serve.schemas import is_blank

    rule = QueryScripts(frozenset({"LATIN", "GREEK"}))
    text, label, template = (re.compile(p) for p in (rule.text_pattern, rule.label_pattern, rule.template_pattern))
    alphabet = st.sampled_from(list("aZé ª1-!\t衬Кжλµ\u0301\u00a0") + ["{label}"])

    @given(st.lists(alphabet, max_size=12).map("".join))
    @settings(max_examples=300, deadline=None, database=None)
    def check(drawn):
        assert bool(text.search(drawn)) == (rule.refusal(drawn, "query") is None or not drawn)
        assert bool(label.search(drawn)) == (rule.refusal(drawn, "label") is None and not is_blank(drawn))
        has_placeholder = "{label}" in drawn
        assert bool(template.search(drawn)) == (has_placeholder and rule.template_refusal(drawn) is None)

    check()
