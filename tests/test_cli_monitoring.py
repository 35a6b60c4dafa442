"""The tracking, exploration and drift commands through Typer's CliRunner: ``runs``, ``explore``, ``drift``,
and ``--tracking-uri`` / ``--no-track`` / ``--register`` on training."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from skulens.cli import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
COLOURS = {"Shoes": (210, 30, 30), "Bags": (30, 200, 40), "Hats": (30, 40, 210)}
WORDS = {"Shoes": "running sneaker sole", "Bags": "leather handbag strap", "Hats": "woollen beanie brim"}


def _text(result) -> str:
    parts = [result.output]
    try:
        parts.append(result.stderr)
    except ValueError:
        pass
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p))


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("SKULENS_NO_TRACK", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return CliRunner()


def _catalog(folder, classes=("Shoes", "Bags", "Hats"), rows: int = 24, start: int = 0):
    records = []
    for i in range(start, start + rows):
        category = classes[i % len(classes)]
        path = folder / "pics" / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40 + i, 40), COLOURS[category]).save(path)
        records.append(
            {"id": f"{i:03d}", "title": f"{WORDS[category]} {i}", "image": f"pics/p{i}.png", "category": f"Fashion >> {category}"}
        )
    path = folder / f"products{start}.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["runs", "compare"], ["runs", "ui"], ["explore"], ["drift"]],
)
def test_every_new_command_has_help(runner, command):
    result = runner.invoke(app, [*command, "--help"], env=ENV)
    assert result.exit_code == 0, _text(result)
    assert "Example" in result.output or "Examples" in result.output


def test_train_logs_registers_and_runs_list_compare(runner, tmp_path):
    catalog = _catalog(tmp_path)
    store = tmp_path / "mlruns"
    ids = []
    for seed in (0, 1):
        args = ["categorize", "train", str(catalog), "--label", "1", "-e", "tfidf", "--out", str(tmp_path / f"model{seed}")]
        args += ["--min-class-count", "2", "--seed", str(seed), "--tracking-uri", str(store), "--register", "shop"]
        result = runner.invoke(app, args, env=ENV)
        assert result.exit_code == 0, _text(result)
        found = re.search(r"MLflow run ([0-9a-f]{32}) logged to .*registered as version (\d)", _text(result))
        assert found and found.group(2) == str(seed + 1), _text(result)
        ids.append(found.group(1))
    listed = runner.invoke(app, ["runs", "list", "--tracking-uri", str(store)], env=ENV)
    assert listed.exit_code == 0, _text(listed)
    assert all(run_id in listed.output for run_id in ids) and "FINISHED" in listed.output
    compared = runner.invoke(app, ["runs", "compare", *ids, "--tracking-uri", str(store)], env=ENV)
    assert compared.exit_code == 0, _text(compared)
    assert "param.seed" in compared.output and "param.encoders" not in compared.output  # only what differs
    everything = runner.invoke(app, ["runs", "compare", *ids, "--tracking-uri", str(store), "--all"], env=ENV)
    assert "param.encoders" in everything.output and "metric.macro_f1" in everything.output
    missing = runner.invoke(app, ["runs", "compare", ids[0], "f" * 32, "--tracking-uri", str(store)], env=ENV)
    assert missing.exit_code == 2 and "not found" in _text(missing)


def test_no_track_writes_no_store_and_a_broken_store_keeps_the_model(runner, tmp_path, monkeypatch):
    catalog = _catalog(tmp_path)
    monkeypatch.chdir(tmp_path)
    base = ["categorize", "train", str(catalog), "--label", "1", "-e", "tfidf", "--min-class-count", "2"]
    quiet = runner.invoke(app, [*base, "--out", str(tmp_path / "m1"), "--no-track"], env=ENV)
    assert quiet.exit_code == 0, _text(quiet)
    assert not (tmp_path / "mlruns").exists() and "MLflow" not in _text(quiet)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    broken = runner.invoke(app, [*base, "--out", str(tmp_path / "m2"), "--tracking-uri", str(blocker / "mlruns")], env=ENV)
    assert broken.exit_code == 0, _text(broken)
    assert "warning: MLflow tracking" in _text(broken) and "model and outputs are kept" in _text(broken)
    assert (tmp_path / "m2" / "config.json").is_file()


def test_runs_list_without_a_store_fails_clearly(runner, tmp_path):
    result = runner.invoke(app, ["runs", "list", "--tracking-uri", str(tmp_path / "nothing")], env=ENV)
    assert result.exit_code == 2 and "no tracking store" in _text(result)


def test_explore_writes_the_report_and_maps(runner, tmp_path):
    catalog = _catalog(tmp_path)
    out = tmp_path / "explore"
    result = runner.invoke(
        app, ["explore", str(catalog), "--out", str(out), "--maps", "-e", "tfidf", "--methods", "tsne"], env=ENV
    )
    assert result.exit_code == 0, _text(result)
    page = (out / "explore.html").read_text()
    assert "id='classes'" in page and "maps.html" in page
    assert "id='map-tfidf-tsne'" in (out / "maps.html").read_text()
    assert json.loads((out / "explore.json").read_text())["rows"] == 24


def test_drift_flags_a_changed_catalog(runner, tmp_path):
    reference = _catalog(tmp_path, rows=60)
    shifted = _catalog(tmp_path, classes=("Hats",), rows=60, start=100)
    model = tmp_path / "model"
    trained = runner.invoke(
        app, ["categorize", "train", str(reference), "--label", "1", "-e", "tfidf", "--out", str(model), "--no-track"], env=ENV
    )
    assert trained.exit_code == 0, _text(trained)
    out = tmp_path / "drift"
    args = ["drift", str(reference), str(shifted), "--model", str(model), "--out", str(out), "--permutations", "100"]
    result = runner.invoke(app, [*args, "--fail-on-drift"], env=ENV)
    assert result.exit_code == 1, _text(result)
    assert "verdict: drift" in _text(result) and "Verdict: drift" in (out / "drift.html").read_text()
    assert json.loads((out / "drift.json").read_text())["verdict"] == "drift"


def test_benchmark_and_reviews_train_are_tracked(runner, tmp_path):
    from mlflow import MlflowClient

    from skulens.tracking import resolve_store

    catalog = _catalog(tmp_path, rows=45)
    store = tmp_path / "mlruns"
    bench = tmp_path / "bench"
    args = ["categorize", "benchmark", "--dataset", str(catalog), "--label", "1", "--folds", "3", "--configs", "tfidf LR"]
    result = runner.invoke(app, [*args, "--out", str(bench), "--min-class-count", "2", "--tracking-uri", str(store)], env=ENV)
    assert result.exit_code == 0, _text(result)
    reviews = tmp_path / "reviews.csv"
    words = {1: "awful broke refund", 3: "okay average fine", 5: "excellent perfect love"}
    rows = [{"id": f"r{i}", "review_text": f"{words[s]} thing{i}", "rating": s} for i, s in enumerate([1, 3, 5] * 20)]
    pd.DataFrame(rows).to_csv(reviews, index=False)
    trained = runner.invoke(
        app,
        ["reviews", "train", str(reviews), "-e", "tfidf", "--out", str(tmp_path / "rm"), "--tracking-uri", str(store)],
        env=ENV,
    )
    assert trained.exit_code == 0, _text(trained)

    uri = resolve_store(str(store)).uri
    client = MlflowClient(uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("skulens").experiment_id])}
    assert set(runs) == {"categorize-benchmark", "reviews-train"}
    bench_run = runs["categorize-benchmark"]
    assert bench_run.data.params["configs"] == "tfidf LR" and "tfidf LR.macro_f1" in bench_run.data.metrics
    assert {a.path for a in client.list_artifacts(bench_run.info.run_id, "report")} >= {"report/metrics.json", "report/report.md"}
    review_run = runs["reviews-train"]
    assert "star_accuracy" in review_run.data.metrics
    assert "model/config.json" in {a.path for a in client.list_artifacts(review_run.info.run_id, "model")}
