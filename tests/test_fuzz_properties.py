"""Property tests: random bytes, CSVs and model configs give a skulens error or a result, never another
exception. Small example counts here; ``benchmarks/fuzz.py`` runs the same targets far longer."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from fuzz_targets import CATALOG_SUFFIXES, ModelTemplate, catalog_target, image_target, mutate, seed_images  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from serve_helpers import shared_models  # noqa: E402

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
SEEDS = seed_images()
flips = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8)
cuts = st.one_of(st.none(), st.integers(0, 4_000))

COLUMNS = ["id", "sku", "title", "name", "description", "category", "image", "review_text", "rating", "price", "", "id"]
cell = st.one_of(
    st.text(alphabet=string.printable + "é漢\u00a0\"',;\t", max_size=12),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "nan", "None", "../../etc/passwd", "http://x/y.jpg", "a\x00b.jpg", "1e309", ">>"]),
)


def csv_text(header: list[str], rows: list[list[str]], sep: str) -> bytes:
    def quote(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in f'{sep}"\n\r') else value

    lines = [sep.join(quote(v) for v in header)] + [sep.join(quote(v) for v in row) for row in rows]
    return "\n".join(lines).encode("utf-8")


@SETTINGS
@given(st.binary(max_size=3_000))
def test_random_bytes_decode_or_refuse(data):
    image_target(data)


@SETTINGS
@given(st.sampled_from(SEEDS), flips, cuts)
def test_mutated_images_decode_or_refuse(seed, changes, cut):
    image_target(mutate(seed, changes, cut))


@SETTINGS
@given(st.binary(max_size=2_000), st.sampled_from(CATALOG_SUFFIXES))
def test_random_bytes_read_as_a_catalog_or_refuse(tmp_path, data, suffix):
    catalog_target(data, suffix, tmp_path)


@SETTINGS
@given(
    st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=6),
    st.lists(st.lists(cell, min_size=0, max_size=7), max_size=6),
    st.sampled_from([(",", ".csv"), ("\t", ".tsv")]),
)
def test_random_csvs_read_or_refuse(tmp_path, header, rows, format_):
    sep, suffix = format_
    catalog_target(csv_text(header, rows, sep), suffix, tmp_path)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, ModelTemplate]:
    models = shared_models(tmp_path_factory)
    return {"categorize": ModelTemplate(models / "text-only"), "reviews": ModelTemplate(models / "tiny-reviews")}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@SETTINGS
@given(st.sampled_from(["categorize", "reviews"]), st.data())
def test_random_model_configs_load_or_refuse(templates, tmp_path, task, data):
    template = templates[task]
    config = dict(template.config)
    for key in data.draw(st.lists(st.sampled_from([*config, "extra"]), min_size=1, max_size=3)):
        if data.draw(st.booleans()):
            config.pop(key, None)
        else:
            config[key] = data.draw(json_values)
    template.load(config, template.weights, tmp_path)


@SETTINGS
@given(st.sampled_from(["categorize", "reviews"]), flips, cuts)
def test_mutated_model_weights_load_or_refuse(templates, tmp_path, task, changes, cut):
    template = templates[task]
    template.load(template.config, mutate(template.weights, changes, None if cut is None else cut * 10), tmp_path)


@SETTINGS
@given(st.binary(max_size=500))
def test_random_config_bytes_load_or_refuse(templates, tmp_path, raw):
    template = templates["categorize"]
    template.load(raw, template.weights, tmp_path)


def test_targets_can_fail(tmp_path: Path):
    """The targets let a foreign exception through (else the properties above could never fail)."""
    with pytest.raises(FileNotFoundError):
        catalog_target(b"id,title\n1,x\n", ".csv", tmp_path / "missing-folder")


#: A 501-byte TIFF found by benchmarks/fuzz.py: Pillow's TIFF parser raised TypeError (IFDRational) on it.
FUZZ_FOUND_TIFF = (
    "SUkqAAgAAAAKEAABBAABAAAACgAAAAEBBAABAAAADAAAAAIBAwADAAAAhgAAAAMBAwABAAAAAQAAAAYBAwABAAAAAgAAABEBBQAB"
    "AAAAjAAAABUBAwABAAAAAwAAABYBBAABAAAADAAAABcBBAABAAAAaAEAABwBAwABAAAAAQAAAAAAAAAIAAgACABegcHYzuoOoiDW"
    "2IH3vA9Et+fMTag8fAkc70EStSY6AzpQ3St3eTHPTRs/pXhYqeh+sex/cHpLmkSZgfdeSL+5vn7boOYAKorsvlWOBudf7ks2RkzG"
    "2s+vj72qZ3ey7/TlY77XfdoelOaMcg+YB3jSzsIGsslLpSa410jD9isNftoVOUr42y14pwTYMpyJNxGUEx/quEvw1SV6zjk0awui"
    "OWY89D4GZ8ldAF8G0B6n6h0BqAmtqrrhjYU5Na2kMGXdQO+InN9kGZjCMrA3YRn0/XR8JUj+PsQSzVUFF/oscCdg8qx+rj3FOPLF"
    "foOlu6Qd1n8KPa+uaDgns7tZj2K5OgnfPa6UIRQDMpO4dLK3Omlw1/CdfIUXTRpf9AFrThcMRmvAs157QrIDt4V4tOKRpasR0Xgc"
    "7psfBYdLdpda0KQ3q2rGTpHs3SxASwdlUaLVMLf4CiOXQZMggJ1YgFW7kbnBjiNAY+lI"
)


def test_tiff_found_by_fuzzing_is_refused():
    import base64

    from skulens.catalog.images import ImageLoadError, decode_image

    with pytest.raises(ImageLoadError, match="corrupt"):
        decode_image(base64.b64decode(FUZZ_FOUND_TIFF))


@pytest.fixture(scope="module")
def index_template(tmp_path_factory):
    pytest.importorskip("faiss")
    from fuzz_targets import build_index_template

    return build_index_template(tmp_path_factory.mktemp("fuzz-index"))


@SETTINGS
@given(name=st.sampled_from(["manifest.json", "index.faiss", "metadata.parquet"]), changes=flips, cut=cuts)
def test_mutated_index_files_load_or_refuse(index_template, tmp_path, name, changes, cut):
    """Issue 24: a damaged index folder is a SearchIndexError, never another exception."""
    index_template.load(name, mutate(index_template.files[name], changes, cut), tmp_path)


@SETTINGS
@given(
    manifest=st.dictionaries(
        st.sampled_from(["format_version", "kind", "dim", "params", "count", "identity"]),
        st.one_of(
            st.none(),
            st.integers(-5, 10**12),
            st.floats(allow_nan=True),
            st.text(max_size=5),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(
                st.sampled_from(["nprobe", "nlist", "efSearch"]), st.one_of(st.integers(-3, 10**9), st.text(max_size=3))
            ),
        ),
    )
)
def test_random_index_manifests_load_or_refuse(index_template, tmp_path, manifest):
    import json

    base = json.loads(index_template.files["manifest.json"])
    index_template.load("manifest.json", json.dumps({**base, **manifest}).encode(), tmp_path)
