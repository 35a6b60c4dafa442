"""Packaging: the core API and core commands import no extra's packages; a missing extra is named in one error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skulens.extras import EXTRAS, MissingExtraError, require_extra

SRC = str(Path(__file__).resolve().parents[1] / "src")
#: Top-level modules of every extra's packages (starlette comes with fastapi, multipart with python-multipart).
EXTRA_MODULES = sorted({m for modules in EXTRAS.values() for m in modules} | {"starlette", "multipart"})

CORE_RUN = """
import json, sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

root = Path(sys.argv[1])
rows = []
for i in range(24):
    name, colour = [("Bags", (200, 30, 30)), ("Hats", (30, 200, 30)), ("Shoes", (30, 30, 200))][i % 3]
    Image.fromarray(np.full((32, 32, 3), colour, np.uint8)).save(root / f"p{i}.jpg")
    rows.append({"id": f"{i:03d}", "title": f"{name} item {i}", "description": f"a {name.lower()} product", "image": f"p{i}.jpg",
                 "category": name, "review": f"{name} fine", "rating": 1 + i % 5})
pd.DataFrame(rows).to_csv(root / "products.csv", index=False)

import skulens.cache, skulens.catalog, skulens.embed, skulens.encoders, skulens.heads, skulens.index, skulens.metrics
import skulens.tasks.align, skulens.tasks.categorize, skulens.tasks.reviews
from skulens.cli import app

codes = []
for args in (
    ["ingest", str(root / "products.csv")],
    ["embed", str(root / "products.csv"), "-e", "tfidf", "-o", str(root / "vectors")],
    ["categorize", "train", str(root / "products.csv"), "-e", "tfidf", "--out", str(root / "model"), "--test-size", "0.25"],
    ["categorize", "predict", str(root / "model"), "--text", "a red bag"],
    ["categorize", "evaluate", str(root / "model"), str(root / "products.csv"), "--out", str(root / "report"), "--include-training-rows"],
):
    codes.append(app(args, standalone_mode=False) or 0)  # a typer.Exit's code is returned, not raised
print(json.dumps({"codes": codes, "imported": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))}))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment | (env or {}), timeout=600
    )


def test_core_api_and_commands_import_no_extra(tmp_path):
    done = _run(CORE_RUN, str(tmp_path), *EXTRA_MODULES, env={"SKULENS_NO_TRACK": "1"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0, 0, 0, 0], "imported": []}, done.stderr
    assert (tmp_path / "model" / "config.json").is_file()


# A missing extra is simulated the way Python itself marks a module unimportable: sys.modules[name] = None.
BLOCKED_RUN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from skulens.cli import app
app(sys.argv[2:])
"""


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("fastapi", ["serve", "--models", "."], "serve"),
        ("streamlit", ["ui", "--models", "."], "ui"),
        ("mlflow", ["runs", "list"], "track"),
    ],
)
def test_a_command_without_its_extra_names_it(blocked, args, extra):
    done = _run(BLOCKED_RUN, blocked, *args)
    assert done.returncode == 2, done.stderr
    assert f"pip install 'skulens[{extra}]'" in done.stderr and blocked in done.stderr
    assert "Traceback" not in done.stderr


def test_training_without_mlflow_is_untracked_unless_tracking_is_asked_for(monkeypatch):
    from skulens.tracking import NoopTracker, make_tracker

    monkeypatch.setitem(sys.modules, "mlflow", None)
    warnings: list[str] = []
    tracker = make_tracker(uri="unused", warn=warnings.append)
    assert isinstance(tracker, NoopTracker) and "pip install 'skulens[track]'" in warnings[0]
    with pytest.raises(MissingExtraError, match=r"skulens\[track\]"):
        make_tracker(uri="unused", warn=warnings.append, required=True)
    assert isinstance(make_tracker(enabled=False, required=True), NoopTracker)


def test_require_extra():
    require_extra("serve")  # installed here (make test installs [all])
    with pytest.raises(MissingExtraError) as caught:
        require_extra("caption", "skulens_no_such_module", feature="caption metrics")
    assert str(caught.value) == (
        "caption metrics needs the 'caption' extra (skulens_no_such_module not installed): pip install 'skulens[caption]'"
    )
    assert caught.value.extra == "caption" and caught.value.missing == ["skulens_no_such_module"]
    with pytest.raises(KeyError, match="unknown extra"):
        require_extra("gpu")


def test_every_extra_is_declared_in_pyproject():
    import tomllib

    declared = tomllib.loads((Path(SRC).parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared)
    assert declared["all"] == [f"skulens[{','.join(EXTRAS)}]"]
    assert "skulens[all]" in declared["dev"]


@pytest.mark.parametrize(
    ("blocked", "module", "function", "args", "extra"),
    [
        ("sacrebleu", "skulens.metrics.captioning", "corpus_bleu", (["a"], ["a"]), "caption"),
        ("umap", "skulens.evaluation.maps", "project", (np.eye(4), "umap"), "explore"),
        ("plotly", "skulens.evaluation.maps", "write_maps", (None, [], "unused"), "explore"),
    ],
)
def test_library_calls_name_the_missing_extra(monkeypatch, blocked, module, function, args, extra):
    import importlib

    call = getattr(importlib.import_module(module), function)
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(MissingExtraError, match=rf"pip install 'skulens\[{extra}\]'"):
        call(*args)
