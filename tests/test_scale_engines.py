"""The Ray engine against the local engine on one private local Ray (node address 127.0.0.1, 2 CPUs, started once for the session):
the same embeddings and predictions, and every row exactly once when an encoding actor is killed mid-run.

Ray is a dependency: if it is missing or cannot start, these tests fail (they do not skip)."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import ray
from scale_helpers import write_catalog
from typer.testing import CliRunner

from skulens.catalog.streaming import CatalogStream
from skulens.engines import EmbedJob, PredictJob, read_output, read_vectors, run_job


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory):
    """One local Ray for every test here: node address 127.0.0.1, 2 CPUs, workers limited to one model thread."""
    from skulens.engines.ray_engine import connect

    os.environ.setdefault("SKULENS_THREADS", "1")
    resources = connect(num_cpus=2)
    assert resources["CPU"] == 2
    yield resources
    ray.shutdown()


@pytest.fixture(scope="module")
def catalog_csv(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("scale-ray-catalog"), rows=40)


@pytest.fixture(scope="module")
def model_dir(catalog_csv, tmp_path_factory):
    from skulens.catalog import read_catalog
    from skulens.tasks.categorize import CategoryPredictor

    folder = tmp_path_factory.mktemp("scale-model")
    predictor = CategoryPredictor(["classical-image", "minilm", "tfidf"], label=0, min_class_count=2)
    predictor.fit(read_catalog(catalog_csv)).save(folder)
    return folder


def _both(catalog_csv: Path, job, tmp_path: Path, chunk_rows: int = 8):
    stream = CatalogStream.open(catalog_csv, chunk_rows=chunk_rows)
    local = run_job(stream, job, tmp_path / "local")
    remote = run_job(stream, job, tmp_path / "ray", engine="ray", actors=1)
    return local, remote, read_output(tmp_path / "local"), read_output(tmp_path / "ray")


def test_embed_gives_the_same_vectors_on_both_engines(local_ray, catalog_csv, tmp_path):
    job = EmbedJob("efficientnet-lite0", cache_dir=str(tmp_path / "cache"))
    local, remote, a, b = _both(catalog_csv, job, tmp_path)
    assert local.rows_out == remote.rows_out == 40 and remote.engine == "ray"
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.column("present").to_pylist() == b.column("present").to_pylist()
    assert a.column("issue").to_pylist() == b.column("issue").to_pylist()
    assert a.column("present").to_pylist().count(False) == 2  # the missing photo and the one outside the roots
    np.testing.assert_allclose(read_vectors(b), read_vectors(a), rtol=0, atol=1e-5)
    assert np.abs(read_vectors(a)).sum() > 0


def test_predict_gives_the_same_categories_on_both_engines(local_ray, catalog_csv, model_dir, tmp_path):
    """The Ray side runs through the command line (`skulens categorize predict ... --engine ray`)."""
    from skulens.cli.main import app

    stream = CatalogStream.open(catalog_csv, chunk_rows=8)
    run_job(stream, PredictJob(str(model_dir), k=2), tmp_path / "local")
    out = tmp_path / "ray"
    args = ["categorize", "predict", str(model_dir), "-i", str(catalog_csv), "--output", str(out), "--engine", "ray"]
    result = CliRunner().invoke(app, [*args, "-k", "2", "--chunk-rows", "8"])
    assert result.exit_code == 0, result.output
    assert "40 rows categorized with the ray engine" in result.output and (out / "_manifest.json").is_file()
    a, b = read_output(tmp_path / "local").to_pandas(), read_output(out).to_pandas()
    assert a["id"].tolist() == b["id"].tolist() and len(a) == 40
    assert a["category_1"].tolist() == b["category_1"].tolist()
    assert a["category_2"].tolist() == b["category_2"].tolist()
    assert a["issue"].fillna("").tolist() == b["issue"].fillna("").tolist()
    np.testing.assert_allclose(b["probability_1"], a["probability_1"], atol=1e-6)
    assert set(a["category_1"]) == {"Red things", "Blue things"}


@dataclass(frozen=True)
class KilledOnce:
    """An embed job whose actor process SIGKILLs itself on its second chunk, once (a marker file remembers)."""

    inner: EmbedJob
    marker: str

    def start(self):
        run = self.inner.start()
        calls = []

        def killing(catalog):
            calls.append(len(catalog))
            if len(calls) == 2 and not os.path.exists(self.marker):
                Path(self.marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return run(catalog)

        return killing


def test_a_killed_actor_is_replaced_and_every_row_is_written_once(local_ray, catalog_csv, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors unpickle KilledOnce from here
    marker = tmp_path / "killed"
    inner = EmbedJob("classical-image", use_cache=False)
    stream = CatalogStream.open(catalog_csv, chunk_rows=8)
    summary = run_job(stream, KilledOnce(inner, str(marker)), tmp_path / "ray", engine="ray", actors=1)
    assert marker.is_file()  # an actor really died mid-run
    assert int(marker.read_text()) != os.getpid()
    table = read_output(tmp_path / "ray")
    ids = table.column("id").to_pylist()
    assert summary.rows_out == len(ids) == len(set(ids)) == 40  # every row exactly once
    run_job(stream, inner, tmp_path / "local")
    expected = read_output(tmp_path / "local")
    assert ids == expected.column("id").to_pylist()
    np.testing.assert_array_equal(read_vectors(table), read_vectors(expected))


@pytest.mark.slow
def test_search_index_on_ray_equals_the_local_engine(local_ray, tmp_path):
    from skulens.cli.main import app
    from skulens.index import VectorIndex

    catalog_csv = write_catalog(tmp_path / "shop", rows=80)  # an alignment trains on 64 pairs or more
    runner = CliRunner()
    fast = ["--image-encoder", "classical-image", "--text-encoder", "tfidf", "--dim", "16", "--epochs", "3"]
    trained = runner.invoke(app, ["search", "train", str(catalog_csv), "--out", str(tmp_path / "align"), *fast])
    assert trained.exit_code == 0, trained.output
    for name, extra in (("local", ["--parquet"]), ("ray", ["--engine", "ray"])):
        args = ["search", "index", str(catalog_csv), "--model", str(tmp_path / "align"), "--out", str(tmp_path / name)]
        result = runner.invoke(app, [*args, *extra, "--chunk-rows", "8"])
        assert result.exit_code == 0, result.output
    local, remote = VectorIndex.load(tmp_path / "local"), VectorIndex.load(tmp_path / "ray")
    assert remote.ids == local.ids and len(local) == 78
    np.testing.assert_allclose(remote.index.reconstruct_n(0, 78), local.index.reconstruct_n(0, 78), atol=1e-5)
    assert remote.metadata.equals(local.metadata)


def test_the_local_ray_is_watched_so_it_ends_with_its_driver(local_ray):
    """Issue 24: a watcher holds the head processes of the local Ray (killed when the driver ends, even by kill -9)."""
    from skulens.engines import ray_reaper
    from skulens.engines.ray_engine import _head_pids

    heads = _head_pids()
    names = {open(f"/proc/{pid}/comm").read().strip() for pid in heads}
    assert {"raylet", "gcs_server"} <= names
    assert ray_reaper._WATCHERS and ray_reaper._WATCHERS[-1].poll() is None
