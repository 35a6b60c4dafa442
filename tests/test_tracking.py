"""Tracking: a real MLflow store in a tmp folder (round trip, registry, runs tables) and failure tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skulens.tracking import MlflowTracker, NoopTracker, make_tracker, resolve_store
from skulens.tracking.runs import RunsError, compare_runs, list_runs, ui_command
from skulens.tracking.tracker import numeric_metrics, param_strings

pytest.importorskip("mlflow")


def _model_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"classes": ["a", "b"]}))
    np.savez(folder / "weights.npz", w=np.arange(6, dtype=np.float32).reshape(2, 3))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlruns")


@pytest.fixture(scope="module")
def two_runs(store, tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("work")
    reports = tmp / "reports"
    reports.mkdir()
    (reports / "report.md").write_text("# report\n")
    ids = []
    for lr, f1 in ((0.1, 0.8), (0.5, 0.9)):
        tracker = MlflowTracker(str(store), experiment="tests")
        with tracker.start_run("train", {"lr": lr, "encoders": ["tfidf", "minilm"], "head": {"kind": "linear"}}) as run_id:
            tracker.log_metrics({"macro_f1": f1, "per_class": {"a": 0.7}, "note": "text", "bad": float("nan")})
            tracker.log_artifacts(reports, "reports")
            version = tracker.register_model("tests-categorizer", _model_folder(tmp / f"model{lr}"))
        assert run_id is not None and tracker.enabled
        assert version == str(len(ids) + 1)
        ids.append(run_id)
    return ids


def test_round_trip_params_metrics_artifacts_and_registry(store, two_runs):
    from mlflow import MlflowClient

    uri = resolve_store(str(store)).uri
    client = MlflowClient(uri, registry_uri=uri)
    run = client.get_run(two_runs[0])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "encoders": "tfidf,minilm", "head.kind": "linear"}
    assert run.data.metrics == {"macro_f1": 0.8, "per_class.a": 0.7}
    artifacts = {a.path for a in client.list_artifacts(two_runs[0])}
    assert artifacts == {"reports", "model"}
    assert {a.path for a in client.list_artifacts(two_runs[0], "model")} == {"model/config.json", "model/weights.npz"}
    versions = client.search_model_versions("name='tests-categorizer'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    source = Path(versions[0].source.replace("file://", ""))
    assert (source / "config.json").is_file()
    with np.load(source / "weights.npz", allow_pickle=False) as weights:
        assert weights["w"].shape == (2, 3)
    assert (store / "mlflow.db").is_file() and (store / "artifacts").is_dir()


def test_runs_list_and_compare(store, two_runs):
    table = list_runs(str(store), experiment="tests")
    assert list(table["run_id"]) == two_runs[::-1]
    assert set(table.columns) >= {"run_id", "name", "status", "started", "macro_f1"}
    compared = compare_runs(two_runs, str(store))
    assert compared.shape[1] == 2
    assert compared.loc["metric.macro_f1"].tolist() == [0.8, 0.9]
    assert compared.loc["param.lr"].tolist() == ["0.1", "0.5"]
    different = compare_runs(two_runs, str(store), only_differences=True)
    assert "param.encoders" not in different.index and "param.lr" in different.index
    with pytest.raises(RunsError, match="at least two"):
        compare_runs(two_runs[:1], str(store))
    with pytest.raises(RunsError, match="not found"):
        compare_runs([two_runs[0], "0" * 32], str(store))
    with pytest.raises(RunsError, match="no tracking store"):
        list_runs(str(store / "missing"))


def test_failed_block_marks_run_failed_and_reraises(store):
    from mlflow import MlflowClient

    tracker = MlflowTracker(str(store), experiment="tests")
    with pytest.raises(RuntimeError, match="boom"), tracker.start_run("train", {}) as run_id:
        raise RuntimeError("boom")
    uri = resolve_store(str(store)).uri
    assert MlflowClient(uri).get_run(run_id).info.status == "FAILED"


@pytest.mark.parametrize("kind", ["unwritable", "bogus-scheme", "unreachable-server"])
def test_tracking_failure_warns_and_keeps_the_model(tmp_path, kind):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    uri = {
        "unwritable": str(blocker / "mlruns"),
        "bogus-scheme": "bogus-scheme://nowhere",
        "unreachable-server": "http://127.0.0.1:9",
    }[kind]
    warnings: list[str] = []
    tracker = MlflowTracker(uri, warn=warnings.append)
    with tracker.start_run("train", {"lr": 1}) as run_id:
        model = _model_folder(tmp_path / "model")
        tracker.log_metrics({"macro_f1": 0.5})
        tracker.log_artifacts(model)
        assert tracker.register_model("m", model) is None
    assert run_id is None and not tracker.enabled
    assert len(warnings) == 1 and "tracking is off" in warnings[0] and "model and outputs are kept" in warnings[0]
    assert (model / "config.json").is_file() and (model / "weights.npz").is_file()


def test_noop_tracker_and_factory(tmp_path):
    tracker = make_tracker(enabled=False, uri=str(tmp_path))
    assert isinstance(tracker, NoopTracker)
    with tracker.start_run("x", {"a": 1}) as run_id:
        tracker.log_metrics({"m": 1.0})
        tracker.log_artifacts(tmp_path)
        assert tracker.register_model("m", tmp_path) is None
    assert run_id is None and list(tmp_path.iterdir()) == []
    assert isinstance(make_tracker(uri=str(tmp_path)), MlflowTracker)
    assert list(tmp_path.iterdir()) == []  # nothing is written before a run starts


def test_store_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = resolve_store()
    assert default.folder == Path("mlruns").resolve() and default.uri.endswith("mlruns/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "env"))
    assert resolve_store().folder == tmp_path / "env"
    assert resolve_store(str(tmp_path / "opt")).folder == tmp_path / "opt"
    assert resolve_store("http://127.0.0.1:5000").artifact_root is None
    database = resolve_store(f"sqlite:///{tmp_path}/x.db")
    assert database.artifact_root == (tmp_path / "artifacts").as_uri()
    command = ui_command(str(tmp_path), port=5123)
    assert command[command.index("--host") + 1] == "127.0.0.1" and "5123" in command


def test_metric_and_param_cleaning():
    assert numeric_metrics({"a": 1, "b": True, "c": "x", "d": {"e f": 2.5}, "g": float("inf"), "h": [1]}) == {
        "a": 1.0,
        "d.e f": 2.5,
    }
    assert param_strings({"k": "x" * 900, "l": (1, 2), "bad:key": 1}) == {"k": "x" * 500, "l": "1,2", "bad_key": "1"}


def test_runs_list_on_an_unreachable_server_is_one_clear_error():
    """Issue 24: a dead tracking server gave a 4-minute hang and a traceback; now short retries, one line."""
    from typer.testing import CliRunner

    from skulens.cli.main import app

    result = CliRunner().invoke(app, ["runs", "list", "--tracking-uri", "http://127.0.0.1:9"], env={"NO_COLOR": "1"})
    assert result.exit_code != 0 and "cannot read" in result.output and "Traceback" not in result.output


def test_a_store_that_cannot_be_opened_turns_tracking_off_without_mlflow_retries(tmp_path, monkeypatch):
    """Issue 24: MLflow retried an unopenable SQLite store 10 times with backoff (about 100 s) before training;
    the store is opened once up front and tracking turns off at the first failure, with no retry."""
    import mlflow.store.db.utils as db_utils

    retries: list[float] = []
    monkeypatch.setattr(db_utils.time, "sleep", retries.append)
    (tmp_path / "store" / "mlflow.db").mkdir(parents=True)  # a database SQLite cannot open (read-only for root too)
    warnings: list[str] = []
    tracker = MlflowTracker(str(tmp_path / "store"), warn=warnings.append)
    with tracker.start_run("train", {"lr": 1}) as run_id:
        tracker.log_metrics({"macro_f1": 0.5})
    assert run_id is None and retries == []
    assert len(warnings) == 1 and "cannot write the tracking database" in warnings[0] and "--no-track" in warnings[0]
