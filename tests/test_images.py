"""Safe image handling: decoding, path confinement, and bad images inside a real embedding run."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import skulens.embed
from skulens.catalog import (
    ImageLoadError,
    check_images,
    decode_image,
    load_image,
    read_catalog,
    resolve_image_path,
)
from skulens.embed import embed_catalog

# --------------------------------------------------------------------------------------------------
# decode_image
# --------------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied(jpeg_bytes):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = jpeg_bytes(size=(64, 32), exif=exif)
    assert Image.open(io.BytesIO(data)).size == (64, 32)  # stored landscape
    image = decode_image(data, name="rotated.jpg")
    assert image.size == (32, 64)  # displayed portrait
    assert image.mode == "RGB"
    assert decode_image(jpeg_bytes(size=(64, 32))).size == (64, 32)  # no tag: untouched


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "1", "CMYK"])
def test_modes_are_converted_to_rgb(mode):
    image = Image.new("RGB", (16, 12), (200, 40, 10)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if mode == "CMYK" else "PNG")
    decoded = decode_image(buffer.getvalue(), name=f"{mode}.png")
    assert decoded.mode == "RGB"
    assert decoded.size == (16, 12)
    assert np.asarray(decoded).shape == (12, 16, 3)


def test_rgba_pixels_keep_their_colour():
    image = Image.new("RGBA", (8, 8), (10, 200, 30, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert decode_image(buffer.getvalue()).getpixel((3, 3)) == (10, 200, 30)


def test_max_pixels_guard():
    buffer = io.BytesIO()
    Image.new("RGB", (100, 80)).save(buffer, "PNG")
    with pytest.raises(ImageLoadError) as info:
        decode_image(buffer.getvalue(), name="wide.png", max_pixels=5_000)
    message = str(info.value)
    assert "'wide.png'" in message and "100x80" in message and "8,000 pixels" in message
    assert "over the limit of 5,000" in message and "max_pixels" in message
    assert decode_image(buffer.getvalue(), max_pixels=8_000).size == (100, 80)  # at the limit is fine


def test_huge_png_is_real_and_cheap(huge_png, monkeypatch):
    assert huge_png.stat().st_size < 1_000_000  # written compressed, chunk by chunk
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # read the header only, to prove it is a real PNG
    with Image.open(huge_png) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (20_000, 20_000), "1")
        image.verify()  # chunk CRCs are valid


def test_huge_png_is_refused_without_decoding(huge_png):
    with pytest.raises(ImageLoadError) as info:
        decode_image(huge_png.read_bytes(), name="huge.png")
    message = str(info.value)
    assert "'huge.png'" in message
    assert "decompression bomb" in message or "over the limit" in message
    assert "400000000" in message.replace(",", "")


def test_truncated_and_non_image_bytes(jpeg_bytes):
    data = jpeg_bytes(size=(64, 64), seed=3)
    with pytest.raises(ImageLoadError, match=r"'cut.jpg' is corrupt or truncated"):
        decode_image(data[: len(data) // 2], name="cut.jpg")
    with pytest.raises(ImageLoadError, match=r"'text.jpg' is not an image file"):
        decode_image(b"this is not a jpeg, just text\n" * 10, name="text.jpg")
    with pytest.raises(ImageLoadError, match="not an image file"):
        decode_image(b"", name="empty.jpg")


def test_draft_decoding_keeps_enough_pixels(jpeg_bytes):
    data = jpeg_bytes(size=(1024, 768))
    image = decode_image(data, draft_size=224)
    assert min(image.size) >= 224 and image.size[0] < 1024
    assert image.size[0] / image.size[1] == pytest.approx(1024 / 768, rel=0.02)


# --------------------------------------------------------------------------------------------------
# Path confinement
# --------------------------------------------------------------------------------------------------


def test_resolve_image_path_confines_to_root(tmp_path, write_jpeg):
    root = tmp_path / "root"
    good = write_jpeg(root / "img" / "a.jpg")
    assert resolve_image_path("img/a.jpg", root) == good.resolve()
    assert resolve_image_path(good, root) == good.resolve()  # absolute inside the root
    for bad in ("../../etc/passwd", "img/../../outside.jpg", "/etc/passwd"):
        with pytest.raises(ImageLoadError, match="outside the image roots"):
            resolve_image_path(bad, root)
    outside = write_jpeg(tmp_path / "outside" / "secret.jpg")
    (root / "img" / "link.jpg").symlink_to(outside)
    with pytest.raises(ImageLoadError, match="'img/link.jpg' is outside the image roots"):
        resolve_image_path("img/link.jpg", root)
    with pytest.raises(ImageLoadError, match="no image root"):
        resolve_image_path("img/a.jpg", None)


def test_load_image(tmp_path, write_jpeg):
    write_jpeg(tmp_path / "a.jpg", size=(40, 30))
    assert load_image("a.jpg", tmp_path).size == (40, 30)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image("b.jpg", tmp_path)
    with pytest.raises(ImageLoadError, match="over the 100-byte limit"):
        load_image("a.jpg", tmp_path, max_bytes=100)


# --------------------------------------------------------------------------------------------------
# A catalog that mixes good and bad images
# --------------------------------------------------------------------------------------------------

GOOD = ["good0", "good1", "good2", "good3", "good4"]


@pytest.fixture
def mixed_catalog(tmp_path, write_jpeg, jpeg_bytes, huge_png):
    """good rows interleaved with every kind of bad image; returns (catalog, expected bad messages)."""
    root = tmp_path / "catalog"
    images = root / "images"
    for i, name in enumerate(GOOD):
        write_jpeg(images / f"{name}.jpg", seed=10 + i)
    full = jpeg_bytes(seed=99)
    (images / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (images / "text.jpg").write_bytes(b"<html>not an image</html>\n" * 20)
    shutil.copyfile(huge_png, images / "huge.png")
    secret = write_jpeg(tmp_path / "outside" / "secret.jpg", seed=5)
    (images / "link.jpg").symlink_to(secret)
    rows = [
        ("good0", "images/good0.jpg"),
        ("truncated", "images/truncated.jpg"),
        ("good1", "images/good1.jpg"),
        ("text", "images/text.jpg"),
        ("good2", "images/good2.jpg"),
        ("huge", "images/huge.png"),
        ("missing", "images/missing.jpg"),
        ("good3", "images/good3.jpg"),
        ("passwd", "../../etc/passwd"),
        ("link", "images/link.jpg"),
        ("absolute", str(secret)),
        ("noimage", ""),
        ("good4", "images/good4.jpg"),
    ]
    pd.DataFrame({"id": [r[0] for r in rows], "title": [f"title {r[0]}" for r in rows], "image": [r[1] for r in rows]}).to_csv(
        root / "catalog.csv", index=False
    )
    return read_catalog(root / "catalog.csv")


def test_catalog_build_refuses_paths_outside_root(mixed_catalog):
    catalog = mixed_catalog
    assert len(catalog) == 13  # nothing is skipped: the text of refused rows is kept
    refused = {issue.id: issue for issue in catalog.issues}
    assert set(refused) == {"passwd", "link", "absolute"}
    for issue in refused.values():
        assert issue.column == "image"
        assert "outside the image roots" in issue.message and "image dropped, text kept" in issue.message
    assert "'../../etc/passwd'" in refused["passwd"].message
    frame = catalog.frame.set_index("id")
    for row_id in ("passwd", "link", "absolute", "noimage"):
        assert frame.at[row_id, "image"] is None
    assert frame.at["passwd", "title"] == "title passwd"
    assert frame.at["good3", "image"] == "images/good3.jpg"


def test_check_images_reports_each_bad_image(mixed_catalog):
    found = {issue.id: issue.message for issue in check_images(mixed_catalog)}
    assert set(found) == {"text", "huge", "missing", "truncated"}  # decoded: truncation is found too
    assert "truncated" in found["truncated"]
    assert "not found" in found["missing"]
    assert "huge.png" in found["huge"]
    assert "text.jpg" in found["text"]


@pytest.mark.parametrize("batch_size", [None, 2])
def test_embedding_skips_only_the_bad_rows(mixed_catalog, lite0, counting, tmp_path, monkeypatch, batch_size):
    requested: list[str] = []
    real_read = skulens.embed.read_image_bytes

    def spy(path, root, *args, **kwargs):
        requested.append(str(path))
        return real_read(path, root, *args, **kwargs)

    monkeypatch.setattr(skulens.embed, "read_image_bytes", spy)
    encoder = counting(lite0, batch_size=batch_size)
    result = embed_catalog(mixed_catalog, encoder, cache_dir=tmp_path / "cache")

    ids = mixed_catalog.ids
    assert result.ids == ids and result.vectors.shape == (13, 1280)
    present = dict(zip(ids, result.present.tolist()))
    assert {i for i, p in present.items() if p} == set(GOOD)
    assert result.encoded == 5 and encoder.items == 5 and result.cached == 0

    messages = {issue.id: issue.message for issue in result.issues}
    assert set(messages) == {"truncated", "text", "huge", "missing"}
    assert all(issue.column == "image" for issue in result.issues)
    assert "'images/truncated.jpg' is corrupt or truncated" in messages["truncated"]
    assert "'images/text.jpg' is not an image file" in messages["text"]
    assert "'images/huge.png'" in messages["huge"]
    assert "decompression bomb" in messages["huge"] or "over the limit" in messages["huge"]
    assert "'images/missing.jpg' not found" in messages["missing"]
    rows = {issue.id: issue.row for issue in result.issues}
    assert all(ids[row] == row_id for row_id, row in rows.items())

    # refused paths were never opened; only catalog paths inside the root were requested
    assert sorted(requested) == sorted(
        [f"images/{name}.jpg" for name in GOOD + ["truncated", "text", "missing"]] + ["images/huge.png"]
    )

    # every good row holds the vector of its own image (no shift from the skipped rows)
    for name in GOOD:
        row = ids.index(name)
        image = load_image_for(mixed_catalog, name)
        expected = lite0.encode([image])[0]
        np.testing.assert_allclose(result.vectors[row], expected, rtol=1e-3, atol=1e-4)
    for row_id in set(ids) - set(GOOD):
        assert not result.vectors[ids.index(row_id)].any()


def load_image_for(catalog, row_id):
    from skulens.catalog import load_image

    path = catalog.frame.set_index("id").at[row_id, "image"]
    return load_image(path, catalog.root)


# --------------------------------------------------------------------------------------------------
# Declared image roots
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def linked_shop(tmp_path, write_jpeg):
    """A catalog whose images/ folder is a symlink to a folder outside the catalog; returns (csv, real folder)."""
    pictures = tmp_path / "storage" / "pictures"
    for i in range(3):
        write_jpeg(pictures / f"p{i}.jpg", seed=40 + i)
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "images").symlink_to(pictures, target_is_directory=True)
    pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "title": ["one", "two", "three", "four"], "image": [f"images/p{i}.jpg" for i in range(4)]}
    ).to_csv(shop / "products.csv", index=False)
    return shop / "products.csv", pictures


def test_symlinked_image_folder_needs_a_declared_root(linked_shop, lite0, tmp_path):
    path, pictures = linked_shop
    refused = read_catalog(path)
    assert refused.image_roots == (path.parent.resolve(),)
    assert refused.frame["image"].isna().all()
    assert [i.id for i in refused.issues] == ["a", "b", "c", "d"]
    assert all("outside the image roots" in i.message and "--image-root" in i.message for i in refused.issues)

    catalog = read_catalog(path, image_roots=[pictures])
    assert catalog.image_roots == (path.parent.resolve(), pictures.resolve())
    assert catalog.frame["image"].tolist() == [f"images/p{i}.jpg" for i in range(4)]
    assert catalog.issues == []
    assert catalog.head(2).image_roots == catalog.image_roots  # subsets keep the roots
    [missing] = check_images(catalog)
    assert missing.id == "d" and "not found" in missing.message

    result = embed_catalog(catalog, lite0, cache_dir=tmp_path / "cache")
    assert result.present.tolist() == [True, True, True, False]
    direct = lite0.encode([load_image(pictures / "p1.jpg", pictures)])[0]
    np.testing.assert_allclose(result.vectors[1], direct, rtol=1e-3, atol=1e-4)

    # declaring the link itself works too: roots are compared after resolving symlinks
    assert read_catalog(path, image_roots=[path.parent / "images"]).issues == []


def test_read_image_bytes_takes_one_root_or_several(tmp_path, write_jpeg):
    from skulens.catalog import read_image_bytes

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    data = write_jpeg(second / "only-here.jpg").read_bytes()
    with pytest.raises(ImageLoadError, match="not found"):
        read_image_bytes("only-here.jpg", first)  # one root: looked up there only
    assert read_image_bytes("only-here.jpg", [first, second]) == data  # a relative path is tried under each root
    assert read_image_bytes(second / "only-here.jpg", (first, second)) == data
    with pytest.raises(ImageLoadError, match="outside the image roots"):
        read_image_bytes(second / "only-here.jpg", [first])
    with pytest.raises(ImageLoadError, match="no image root"):
        read_image_bytes("only-here.jpg", [])
    with pytest.raises(ImageLoadError, match="is a URL"):
        read_image_bytes("https://example.invalid/a.jpg", first)


def test_issue_summary_is_one_line_by_reason(mixed_catalog):
    from skulens.catalog import issue_summary, row_issues
    from skulens.catalog.images import image_problem

    issues = row_issues(mixed_catalog, check_images(mixed_catalog))
    line = issue_summary(mixed_catalog, issues, "issues.csv")
    # 3 image paths refused at read time, 4 found by the check (text, huge, missing, truncated)
    assert line == (
        "7 of 13 rows have an issue: 3 image outside the image roots, 1 image corrupt, 1 image missing, "
        "1 image not an image, 1 image too large — see issues.csv"
    )
    good = mixed_catalog.subset([0, 2, 4])
    assert issue_summary(good, row_issues(good, check_images(good))) is None  # only good rows
    assert image_problem("image 'x.jpg' is corrupt or truncated: broken data") == "corrupt"
    assert image_problem("permission denied") == "unreadable"
