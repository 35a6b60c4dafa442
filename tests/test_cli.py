"""The ``skulens`` command line through Typer's CliRunner."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skulens.cli import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _text(result) -> str:
    """Everything the command printed (stdout and stderr), with whitespace collapsed."""
    parts = [result.output]
    try:
        parts.append(result.stderr)
    except ValueError:  # older Click without separate stderr
        pass
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p))


@pytest.fixture
def small_csv(tmp_path, write_jpeg):
    root = tmp_path / "shop"
    for i in range(3):
        write_jpeg(root / "img" / f"s{i}.jpg", seed=200 + i)
    pd.DataFrame(
        {
            "id": ["s0", "s1", "s2", "s1", "s3"],
            "title": ["Red shirt", "Blue jeans", "Green hat", "dup", "Lost product"],
            "category": ["Apparel >> Tops", "Apparel >> Bottoms", "Accessories >> Hats", "Apparel", "Apparel >> Tops"],
            "image": ["img/s0.jpg", "img/s1.jpg", "img/s2.jpg", "img/s1.jpg", "img/missing.jpg"],
        }
    ).to_csv(root / "products.csv", index=False)
    return root / "products.csv"


def test_encoders_lists_names(runner):
    result = runner.invoke(app, ["encoders"], env=ENV)
    assert result.exit_code == 0, result.output
    for name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "minilm", "tfidf"):
        assert name in result.output
    text_only = runner.invoke(app, ["encoders", "--modality", "text"], env=ENV)
    assert text_only.exit_code == 0
    assert "minilm" in text_only.output and "efficientnet-lite0" not in text_only.output


def test_ingest_small_csv(runner, small_csv):
    result = runner.invoke(app, ["ingest", str(small_csv)], env=ENV)
    assert result.exit_code == 0, _text(result)
    out = _text(result)
    assert "products: 4 rows" in out
    assert "level 0: 2 classes" in out and "Apparel (3)" in out
    assert "level 1: 3 classes" in out
    assert "images unusable: 1" in out
    assert "duplicate id" in out and "missing.jpg" in out
    assert "2 row issue(s)" in out


def test_embed_writes_outputs_and_reuses_cache(runner, small_csv, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["embed", str(small_csv), "--encoder", "efficientnet-lite0", "--out", str(out), "--cache-dir", str(cache)]
    first = runner.invoke(app, args, env=ENV)
    assert first.exit_code == 0, _text(first)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 4 and manifest["present"] == 3
    assert manifest["encoded"] == 3 and manifest["from_cache"] == 0
    assert manifest["dim"] == 1280 and manifest["encoder"].startswith("efficientnet-lite0@")
    assert manifest["issues"] == 2  # the repeated id s1 (row skipped) and the missing image of s3
    with np.load(out / "embeddings.npz", allow_pickle=False) as data:
        assert data["ids"].tolist() == ["s0", "s1", "s2", "s3"]
        assert data["vectors"].shape == (4, 1280)
        assert data["present"].tolist() == [True, True, True, False]
    issues = pd.read_csv(out / "issues.csv")
    assert issues.columns.tolist() == ["row", "line", "id", "column", "message"]
    assert set(issues["column"]) == {"id", "image"}
    assert any("missing.jpg" in m for m in issues["message"])
    assert any(cache.glob("*/index.sqlite"))  # the embedding cache was written

    second = runner.invoke(app, args, env=ENV)
    assert second.exit_code == 0, _text(second)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["from_cache"] == manifest["present"] == 3 and manifest["encoded"] == 0
    assert "3 from cache" in _text(second)


def test_embed_with_limit_and_text_encoder(runner, small_csv, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["embed", str(small_csv), "-e", "tfidf", "-o", str(out), "--limit", "2"], env=ENV)
    assert result.exit_code == 0, _text(result)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 2 and manifest["present"] == 2


def test_unknown_dataset_or_file(runner, tmp_path):
    result = runner.invoke(app, ["ingest", "no-such-dataset"], env=ENV)
    assert result.exit_code == 2
    assert "error[catalog]:" in _text(result) and "neither a built-in dataset" in _text(result)
    missing = runner.invoke(app, ["embed", str(tmp_path / "nope.csv"), "-e", "minilm", "-o", str(tmp_path / "o")], env=ENV)
    assert missing.exit_code == 2 and "nope.csv" in _text(missing)
    assert not (tmp_path / "o").exists()


def test_builtin_dataset_missing(runner, tmp_path):
    result = runner.invoke(app, ["ingest", "flipkart"], env={**ENV, "SKULENS_DATA": str(tmp_path)})
    assert result.exit_code == 2
    assert "dataset 'flipkart' not found" in _text(result)


def test_unknown_encoder(runner, small_csv, tmp_path):
    result = runner.invoke(app, ["embed", str(small_csv), "-e", "resnet-9000", "-o", str(tmp_path / "o")], env=ENV)
    assert result.exit_code == 2
    text = _text(result)
    assert "unknown encoder 'resnet-9000'" in text and "efficientnet-lite0" in text
    assert not result.exception or isinstance(result.exception, SystemExit)


def test_messages_with_brackets_are_printed_verbatim(runner, tmp_path):
    path = tmp_path / "[/x]catalog.csv"
    result = runner.invoke(app, ["ingest", str(path)], env=ENV)
    assert result.exit_code == 2
    assert "[/x]catalog.csv" in _text(result)


# --------------------------------------------------------------------------------------------------
# Start-up and help
# --------------------------------------------------------------------------------------------------

HEAVY = ("torch", "sklearn", "pandas", "transformers", "streamlit", "fastapi", "numpy", "PIL", "scipy")
PROBE = f"""
import json, sys
from skulens.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print(json.dumps(dict(code=code, heavy=heavy)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["categorize", "--help"], ["reviews", "-h"]])
def test_help_and_version_import_nothing_heavy(args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, **ENV, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, done.stderr
    if args == ["--version"]:
        from skulens import __version__

        assert done.stdout.strip() == f"skulens {__version__}"
    else:
        assert "Usage:" in done.stdout


COMMANDS = [
    [],
    ["demo"],
    ["encoders"],
    ["ingest"],
    ["embed"],
    ["serve"],
    ["ui"],
    *[["categorize", name] for name in ("train", "predict", "evaluate", "benchmark")],
    *[["reviews", name] for name in ("train", "predict", "evaluate", "summary", "benchmark")],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "skulens")
def test_help_shows_no_internal_type_names(runner, command):
    result = runner.invoke(app, [*command, "--help"], env=ENV)
    assert result.exit_code == 0, _text(result)
    text = result.output
    for name in ("<str>", "<bool>", "<int>", "<float>", "<path>", "<Path>", "list[", " TEXT ", " PATH ", "INTEGER", "FLOAT"):
        assert name not in text, (name, text)


def test_top_level_lists_groups_and_hides_aliases(runner):
    text = runner.invoke(app, ["--help"], env=ENV).output
    listed = {line.split()[1] for line in text.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert {"demo", "encoders", "ingest", "embed", "categorize", "reviews", "serve", "ui"} <= listed
    assert not {"train", "predict", "evaluate", "benchmark"} & listed


# --------------------------------------------------------------------------------------------------
# Column mapping on the command line
# --------------------------------------------------------------------------------------------------


def _colour_image(path, colour, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-25, 25, (48, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG")
    return path


COLOURS = {"Shoes": (210, 30, 30), "Bags": (30, 200, 40), "Hats": (30, 40, 210)}
WORDS = {"Shoes": "running sneaker sole", "Bags": "leather handbag strap", "Hats": "woollen beanie brim"}


@pytest.fixture
def own_catalog(tmp_path):
    """A user's file with its own column names: sku, product_name, desc, img, dept (flat label), price."""
    rows = []
    for i in range(24):
        dept = list(COLOURS)[i % 3]
        _colour_image(tmp_path / "pics" / f"p{i}.jpg", COLOURS[dept], seed=i)
        rows.append(
            {"sku": f"{i:03d}", "product_name": f"{WORDS[dept]} {i}", "desc": f"a {dept.lower()} item", "img": f"pics/p{i}.jpg"}
            | {"dept": dept, "price": 10 + i}
        )
    path = tmp_path / "products.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_ingest_reports_detected_columns_and_unused_ones(runner, own_catalog):
    result = runner.invoke(app, ["ingest", str(own_catalog)], env=ENV)
    assert result.exit_code == 0, _text(result)
    out = _text(result)
    assert "products: 24 rows, columns: id, title, description, image, dept, price" in out
    assert (
        "id <- sku (detected), title <- product_name (detected), description <- desc (detected), image <- img (detected)" in out
    )
    assert "2 column(s) of products are not used by this command: 'dept', 'price'" in out
    assert "images unusable: 0" in out and "could not be used" not in out

    mapped = runner.invoke(app, ["ingest", str(own_catalog), "--columns", "title=desc,description=product_name"], env=ENV)
    assert mapped.exit_code == 0, _text(mapped)
    assert "title <- desc, description <- product_name" in _text(mapped)
    bad = runner.invoke(app, ["ingest", str(own_catalog), "--columns", "name=product_name"], env=ENV)
    assert bad.exit_code == 2 and "unknown schema column(s) ['name']" in _text(bad)
    missing = runner.invoke(app, ["ingest", str(own_catalog), "--columns", "title=product_title"], env=ENV)
    assert missing.exit_code == 2 and "['product_title'] not found" in _text(missing) and "product_name" in _text(missing)


def test_train_on_a_flat_label_column_and_the_old_names(runner, own_catalog, tmp_path):
    model = tmp_path / "model"
    args = ["categorize", "train", str(own_catalog), "--label", "dept", "-e", "tfidf", "--out", str(model)]
    result = runner.invoke(app, [*args, "--test-size", "0.25", "--min-class-count", "2"], env=ENV)
    assert result.exit_code == 0, _text(result)
    out = _text(result)
    assert "held-out 6 rows" in out and "(3 classes)" in out
    assert (
        "not used by this command: 'price'" in out and "'dept'" not in out.split("not used by this command:")[1]
    )  # the label column is used
    assert json.loads((model / "config.json").read_text())["label"] == "dept"

    predicted = runner.invoke(app, ["categorize", "predict", str(model), "--text", "leather handbag", "-k", "1"], env=ENV)
    assert predicted.exit_code == 0, _text(predicted)
    assert "categories from the text" in _text(predicted) and "Bags" in predicted.output

    alias = runner.invoke(app, ["predict", str(model), "--text", "woollen beanie", "--k", "1"], env=ENV)
    assert alias.exit_code == 0 and "Hats" in alias.output  # the earlier top-level name still works

    unknown = runner.invoke(app, ["categorize", "train", str(own_catalog), "--label", "colour", "-e", "tfidf", "-o", str(model)])
    assert unknown.exit_code == 2 and "no column 'colour'" in _text(unknown) and "dept" in _text(unknown)


# --------------------------------------------------------------------------------------------------
# embed -e tfidf: fitted on the same text fields it encodes
# --------------------------------------------------------------------------------------------------


def test_embed_tfidf_fits_on_the_fields_it_encodes(runner, tmp_path):
    from skulens.catalog import read_catalog
    from skulens.encoders.text import TfidfEncoder

    path = tmp_path / "mixed.csv"
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "title": ["red shirt", "blue jeans", None, "green hat"],
            "description": ["cotton", "denim", None, "wool"],
            "review_text": ["fits well", None, "zebra pattern unique", "warm"],
        }
    ).to_csv(path, index=False)
    out = tmp_path / "tfidf"
    result = runner.invoke(app, ["embed", str(path), "-e", "tfidf", "-o", str(out), "--no-cache"], env=ENV)
    assert result.exit_code == 0, _text(result)
    with np.load(out / "embeddings.npz", allow_pickle=False) as data:
        vectors, present = data["vectors"], data["present"]
    assert present.tolist() == [True, True, True, True]
    assert np.abs(vectors[2]).sum() > 0  # row c has only review text: its words are in the vocabulary
    texts = read_catalog(path).texts(("title", "description", "review_text"))
    expected = TfidfEncoder().fit(texts).encode(texts)
    np.testing.assert_allclose(vectors, expected.toarray() if hasattr(expected, "toarray") else expected, atol=1e-6)
    assert json.loads((out / "manifest.json").read_text())["text_fields"] == ["title", "description", "review_text"]

    titles = runner.invoke(app, ["embed", str(path), "-e", "tfidf", "-o", str(out), "--text-fields", "title"], env=ENV)
    assert titles.exit_code == 0, _text(titles)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["text_fields"] == ["title"] and manifest["present"] == 3
    none = runner.invoke(app, ["embed", str(path), "-e", "tfidf", "-o", str(out), "--text-fields", "body"], env=ENV)
    assert none.exit_code == 2 and "none of the text fields ['body']" in _text(none)


# --------------------------------------------------------------------------------------------------
# Image roots and the one-line image summary
# --------------------------------------------------------------------------------------------------


def test_image_root_option_reaches_a_symlinked_folder(runner, tmp_path, write_jpeg):
    pictures = tmp_path / "storage"
    for i in range(3):
        write_jpeg(pictures / f"p{i}.jpg", seed=60 + i)
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "images").symlink_to(pictures, target_is_directory=True)
    pd.DataFrame({"id": list("abcd"), "title": list("wxyz"), "image": [f"images/p{i}.jpg" for i in range(4)]}).to_csv(
        shop / "products.csv", index=False
    )
    out = tmp_path / "emb"
    args = ["embed", str(shop / "products.csv"), "-e", "efficientnet-lite0", "-o", str(out), "--cache-dir", str(tmp_path / "c")]
    refused = runner.invoke(app, args, env=ENV)
    assert refused.exit_code == 0, _text(refused)
    assert json.loads((out / "manifest.json").read_text())["present"] == 0
    assert (
        f"4 of 4 rows have an issue: 4 image outside the image roots — see {out / 'issues.csv'} "
        "(declare image folders with --image-root DIR)"
    ) in _text(refused)

    accepted = runner.invoke(app, [*args, "--image-root", str(pictures)], env=ENV)
    assert accepted.exit_code == 0, _text(accepted)
    assert json.loads((out / "manifest.json").read_text())["present"] == 3
    assert "1 of 4 rows have an issue: 1 image missing" in _text(accepted)
    issues = pd.read_csv(out / "issues.csv")
    assert issues["id"].tolist() == ["d"] and "not found" in issues["message"][0]

    not_a_folder = runner.invoke(app, [*args, "--image-root", str(tmp_path / "nowhere")], env=ENV)
    assert not_a_folder.exit_code == 2 and "is not a folder" in _text(not_a_folder)


# --------------------------------------------------------------------------------------------------
# categorize predict with a bad image; evaluate's notes and report
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def photo_model(runner, own_catalog, tmp_path):
    model = tmp_path / "photo-model"
    args = ["categorize", "train", str(own_catalog), "--label", "dept", "-e", "efficientnet-lite0", "-e", "tfidf"]
    result = runner.invoke(app, [*args, "--out", str(model), "--test-size", "0", "--min-class-count", "2"], env=ENV)
    assert result.exit_code == 0, _text(result)
    return model


def test_predict_with_a_bad_image_fails_or_says_it_used_the_text(runner, photo_model, own_catalog, tmp_path):
    missing = tmp_path / "no-such-photo.jpg"
    result = runner.invoke(app, ["categorize", "predict", str(photo_model), "--image", str(missing)], env=ENV)
    assert result.exit_code == 2
    assert f"image '{missing}' not found" in _text(result)

    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a photo at all" * 20)
    result = runner.invoke(app, ["categorize", "predict", str(photo_model), "--image", str(garbage)], env=ENV)
    assert result.exit_code == 2 and f"image '{garbage}' is not an image file" in _text(result)

    result = runner.invoke(
        app, ["categorize", "predict", str(photo_model), "--image", str(garbage), "--text", "running sneaker"], env=ENV
    )
    assert result.exit_code == 0, _text(result)
    out = _text(result)
    assert "WARNING: the image was NOT used" in out and "garbage.jpg" in out and "comes from the text alone" in out
    assert "categories from the text:" in out and "Shoes" in out

    photo = own_catalog.parent / "pics" / "p1.jpg"  # a Bags photo
    result = runner.invoke(app, ["categorize", "predict", str(photo_model), "--image", str(photo), "-k", "3"], env=ENV)
    assert result.exit_code == 0, _text(result)
    assert "categories from the photo:" in _text(result) and "NOT used" not in _text(result)
    rows = [line for line in result.output.splitlines() if any(name in line for name in COLOURS)]
    assert len(rows) == 3 and "Bags" in rows[0]  # the most likely category first


def test_evaluate_writes_a_report_and_says_what_it_left_out(runner, photo_model, own_catalog, tmp_path):
    frame = pd.read_csv(own_catalog, dtype={"sku": str})
    frame.loc[12:, "sku"] = frame.loc[12:, "sku"] + "-new"  # 12 products the model was not trained on
    frame.loc[12:14, "dept"] = "Gloves"  # 3 of them in a class the model has never seen
    holdout = tmp_path / "holdout.csv"
    frame.to_csv(holdout, index=False)
    out = tmp_path / "report"
    result = runner.invoke(app, ["categorize", "evaluate", str(photo_model), str(holdout), "--out", str(out)], env=ENV)
    assert result.exit_code == 0, _text(result)
    text = _text(result)
    assert "3 rows have a class the model does not know and were not scored" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 9 and metrics["excluded_training_rows"] == 12 and metrics["unknown_class_rows"] == 3
    assert "12 rows excluded: the model was trained on them" in text
    report = (out / "report.md").read_text()
    assert report.startswith("# photo-model on ") and "| class | precision | recall | F1 | support |" in report
    assert "3 rows have a class the model does not know" in report
    assert (out / "confusion_model.png").is_file() and (out / "report.html").is_file() and (out / "issues.csv").is_file()


def test_evaluation_notes_name_every_exclusion():
    from skulens.cli.categorize import evaluation_notes

    notes = evaluation_notes(
        {
            "excluded_training_rows": 840,
            "unknown_class_rows": 5,
            "unknown_classes": {"Toys": 3, "Garden": 2},
            "unlabelled_rows": 4,
            "absent_classes": ["Free Items"],
        },
        "holdout.csv",
        include_training_rows=False,
    )
    assert notes == [
        "840 rows excluded: the model was trained on them (score them too with --include-training-rows)",
        "5 rows have a class the model does not know and were not scored: 'Toys' (3), 'Garden' (2)",
        "4 rows have no label and were not scored",
        "1 of the model's classes have no rows in holdout.csv (not in macro-F1): 'Free Items'",
    ]
    trained_only = evaluation_notes(
        {"absent_classes": ["Free Items", "Home"], "classes_only_in_training_rows": ["Home"]},
        "h.csv",
        include_training_rows=False,
    )
    assert trained_only == [
        "1 of the model's classes have rows in h.csv only among the excluded training rows (not in macro-F1): 'Home'",
        "1 of the model's classes have no rows in h.csv (not in macro-F1): 'Free Items'",
    ]
    opted_in = evaluation_notes({"excluded_training_rows": 0}, "x.csv", include_training_rows=True)
    assert opted_in == ["rows the model was trained on are included (--include-training-rows): scores on them are optimistic"]
    assert evaluation_notes({}, "x.csv", include_training_rows=False) == []


# --------------------------------------------------------------------------------------------------
# Reviews: JSON Lines with the same mapping, and `reviews evaluate`
# --------------------------------------------------------------------------------------------------

REVIEW_WORDS = {
    1: "awful broke returned refund",
    2: "poor cheap disappointing flimsy",
    3: "okay average fine acceptable",
    4: "good nice comfortable solid",
    5: "excellent perfect love amazing",
}


def test_reviews_train_and_evaluate_on_json_lines(runner, tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(100):
        stars = i % 5 + 1
        words = REVIEW_WORDS[stars].split()
        body = " ".join(rng.choice(words, size=4)) + f" item{i}"
        lines.append(json.dumps({"asin": f"B{i % 9}", "reviewText": body, "overall": float(stars), "summary": words[0]}))
    path = tmp_path / "amazon.jsonl"
    path.write_text("\n".join(lines) + "\n")
    model = tmp_path / "reviews-model"
    result = runner.invoke(app, ["reviews", "train", str(path), "-e", "tfidf", "--out", str(model), "--test-size", "0"], env=ENV)
    assert result.exit_code == 0, _text(result)
    assert "title <- summary (detected), rating <- overall (detected), review_text <- reviewText (detected)" in _text(result)

    held_out = tmp_path / "more.jsonl"
    held_out.write_text("\n".join(json.dumps({"body": REVIEW_WORDS[s], "stars": s}) for s in (1, 2, 3, 4, 5, 5, 1)) + "\n")
    out = tmp_path / "review-eval"
    args = ["reviews", "evaluate", str(model), str(held_out), "--columns", "review_text=body", "--out", str(out)]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, _text(result)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 7 and metrics["star_accuracy"] >= 5 / 7
    assert f"evaluated (7 reviews): star accuracy {metrics['star_accuracy']:.3f}" in _text(result)


# --------------------------------------------------------------------------------------------------
# Report tables and progress
# --------------------------------------------------------------------------------------------------


def test_markdown_report_tables_become_rich_tables():
    from skulens.cli.output import markdown_tables

    text = "# Results\n\nintro\n\n| config | accuracy | note |\n|---|---|---|\n| tfidf LR | 0.912 [0.90, 0.93] | ok |\n| minilm | 0.95 | best |\n\n## Timing\n| step | s |\n|---|---|\n| embed | 12.5 |\n"
    tables = markdown_tables(text)
    assert [heading for heading, _ in tables] == ["Results", "Timing"]
    first = tables[0][1]
    assert [c.header for c in first.columns] == ["config", "accuracy", "note"]
    assert first.row_count == 2
    assert [c.justify for c in first.columns] == ["left", "right", "left"]
    assert list(first.columns[0].cells) == ["tfidf LR", "minilm"]


def test_progress_steps_hold_bars_and_report_failures(capsys):
    import skulens.progress as progress

    with progress.step("training"):
        with progress.progress_bar(3, "minilm texts") as bar:
            bar.advance(3)
        with progress.step("fitting heads"):
            pass
    assert progress._display is None
    with pytest.raises(RuntimeError), progress.step("doomed"):
        raise RuntimeError("boom")
    assert progress._display is None
    err = capsys.readouterr().err
    assert "✓ training" in err and "3/3" in err and "✓ fitting heads" in err
    assert "doomed (failed)" in err


# --------------------------------------------------------------------------------------------------
# skulens ui: signals reach the Streamlit child
# --------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(p) for p in text.split()]
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="needs Linux /proc")
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_ui_passes_signals_to_streamlit(tmp_path, signal_name):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("streamlit")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    (tmp_path / "models").mkdir()
    command = [sys.executable, "-m", "skulens.cli", "ui", "--models", str(tmp_path / "models"), "--port", str(port)]
    parent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        children: list[int] = []
        while time.time() < deadline and not children:
            children = [c for c in _children(parent.pid) if "streamlit" in Path(f"/proc/{c}/cmdline").read_text()]
            time.sleep(0.2)
        assert children, "skulens ui started no Streamlit child"
        number = getattr(signal, signal_name)
        parent.send_signal(number)
        assert parent.wait(timeout=60) in (0, 128 + number)  # stopped cleanly, or by the signal
        assert not _alive(children[0]), "the Streamlit child outlived skulens ui"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_fusion_weights_are_printed_for_people():
    from skulens.cli.reviews import _weights_text

    assert _weights_text({"minilm": 0.38123, "tfidf": 0.61877}) == "tfidf 0.62, minilm 0.38"
    assert _weights_text(None) == "none (one encoder)"
