"""Streaming catalog readers and the local engine: same rows and vectors as the in-memory path, bounded chunks,
issues numbered in the whole file, resume from the cache after an interrupted run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scale_helpers import write_catalog
from typer.testing import CliRunner

from skulens.catalog import CatalogError, read_catalog
from skulens.catalog.streaming import ISSUE_COLUMN, CatalogStream, open_stream, rows_frame
from skulens.embed import embed_catalog
from skulens.engines import EmbedJob, read_output, read_vectors, run_local


@pytest.fixture(scope="module")
def catalog_csv(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("scale-catalog"))


def test_chunks_match_the_whole_file_read(catalog_csv):
    whole = read_catalog(catalog_csv)
    stream = CatalogStream.open(catalog_csv, chunk_rows=7)
    chunks = list(stream.chunks())
    assert all(len(chunk) <= 7 for chunk in chunks)
    ids = [i for chunk in chunks for i in chunk.ids]
    assert ids == whole.ids  # the repeated id (42 rows on) and the id-less row are skipped, as read_catalog does
    titles = [t for chunk in chunks for t in chunk.frame["title"]]
    assert titles == whole.frame["title"].tolist()
    issues = {(i.row, i.column) for chunk in chunks for i in chunk.issues}
    assert issues == {(i.row, i.column) for i in whole.issues}  # row numbers count from the top of the file
    assert (41, "id") in issues and (5, "image") in issues


def test_parquet_streams_by_row_group_with_the_same_mapping(catalog_csv, tmp_path):
    frame = pd.read_csv(catalog_csv, dtype={"sku": str})
    path = tmp_path / "catalog.parquet"
    frame.to_parquet(path, row_group_size=10)
    stream = open_stream(path, image_roots=[catalog_csv.parent], chunk_rows=16)
    assert stream.count_rows() == len(frame)
    assert stream.mapping.detected["title"] == "product_name" and stream.id_source == "sku"
    rows = pd.concat([rows_frame(chunk) for chunk in stream.chunks()], ignore_index=True)
    assert rows["id"].tolist() == read_catalog(catalog_csv).ids
    assert rows.loc[rows["id"] == "00000", "category"].item() == "Red things >> mug"  # text survives Arrow
    assert rows.loc[rows["id"] == "00005", ISSUE_COLUMN].item().startswith("image '../outside.jpg' is outside")


def test_csv_cells_stay_text_when_a_later_block_disagrees(tmp_path):
    lines = ["id,title,rating"] + [f"{i},item {i},{i % 5}" for i in range(3000)] + ["x1,odd one,no rating available"]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    chunks = list(CatalogStream.open(path, chunk_rows=1000).chunks())
    assert [len(c) for c in chunks] == [1000, 1000, 1000, 1]
    assert chunks[-1].frame["rating"].isna().all() and chunks[0].frame["rating"].iloc[3] == 3


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        CatalogStream.open(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(CatalogError, match="cannot stream"):
        CatalogStream.open(tmp_path / "x.xlsx")
    (tmp_path / "noid.csv").write_text("name,price\nmug,3\n")
    with pytest.raises(CatalogError, match="no id column"):
        list(CatalogStream.open(tmp_path / "noid.csv").chunks())


def _both_paths(path):
    """(whole-file read, streamed chunks) of one file, each as (rows, issues) or the CatalogError message."""

    def read():
        catalog = read_catalog(path)
        return len(catalog), [(i.row, i.column) for i in catalog.issues]

    def stream():
        chunks = list(CatalogStream.open(path, chunk_rows=1).chunks())
        return sum(len(c) for c in chunks), [(i.row, i.column) for c in chunks for i in c.issues]

    out = []
    for run in (read, stream):
        try:
            out.append(run())
        except CatalogError as exc:
            out.append(str(exc))
    return out


def test_parquet_list_title_is_a_row_issue_on_both_paths(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "title": [["red", "mug"], None, ["x"]]}), path)
    read, streamed = _both_paths(path)
    assert read == streamed == (3, [(0, "title"), (1, "title"), (2, "title")])
    issues = read_catalog(path).issues
    assert "title is a list, not one value" in issues[0].message and "empty title" in issues[1].message
    pq.write_table(pa.table({"id": [["a"], ["b"]], "title": ["mug", "cup"]}), path)
    assert _both_paths(path)[0] == (0, [(0, "id"), (1, "id")])


def test_json_lines_that_are_not_objects_are_named_on_both_paths(tmp_path):
    path = tmp_path / "bad.jsonl"
    for bad, what in (("[1, 2]", "JSON list"), ('"text"', "JSON str"), ("{oops", "not valid JSON")):
        path.write_text('{"id": "a", "title": "mug"}\n' + bad + '\n{"id": "b", "title": "cup"}\n')
        read, streamed = _both_paths(path)
        assert read == streamed and "line 2" in read and what in read, (read, streamed)
    path.write_text("[1, 2]\n[3, 4]\n")
    with pytest.raises(CatalogError, match="line 1 is a JSON list"):
        CatalogStream.open(path)


def test_repeated_header_names_stream_as_they_read(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,title,title\na,red mug,x\nb,blue cup,y\n")
    assert _both_paths(path)[0] == _both_paths(path)[1] == (2, [])
    chunk = next(CatalogStream.open(path).chunks())
    assert chunk.frame["title"].tolist() == read_catalog(path).frame["title"].tolist() == ["red mug", "blue cup"]


def test_csv_cut_inside_a_quoted_field_is_refused_on_both_paths(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text('id,title\na,"a ""quoted"" mug"\nb,"cut short, like a kill\n')
    read, streamed = _both_paths(path)
    assert isinstance(read, str) and isinstance(streamed, str)
    assert "starting on line 3 is never closed" in streamed
    path.write_text('id,title\na,"a ""quoted"" mug"\nb,5" screen\n')  # odd quote count, but every field is closed
    assert _both_paths(path)[1] == (2, [])


def test_local_engine_equals_the_in_memory_embedding(catalog_csv, tmp_path):
    from skulens.encoders import create_encoder

    summary = run_local(CatalogStream.open(catalog_csv, chunk_rows=8), EmbedJob("classical-image", use_cache=False), tmp_path)
    table = read_output(tmp_path)
    whole = read_catalog(catalog_csv)
    expected = embed_catalog(whole, create_encoder("classical-image"), use_cache=False)
    assert summary.rows_in == len(whole) + 2 and summary.rows_out == len(whole) == table.num_rows
    assert table.column("id").to_pylist() == expected.ids
    np.testing.assert_array_equal(read_vectors(table), expected.vectors)
    assert table.column("present").to_pylist() == expected.present.tolist()
    issues = dict(zip(table.column("id").to_pylist(), table.column(ISSUE_COLUMN).to_pylist()))
    assert "not found" in issues["00003"] and "outside" in issues["00005"] and issues["00000"] is None
    assert summary.rows_with_issue == 2


def test_an_interrupted_run_resumes_from_the_cache(catalog_csv, tmp_path, monkeypatch, counting):
    import skulens.encoders as encoders

    real = encoders.create_encoder("classical-image")
    made = []

    def create(name, **kwargs):
        made.append(counting(real, batch_size=4, fail_after=len(made) == 0 and 3 or None))
        return made[-1]

    monkeypatch.setattr(encoders, "create_encoder", create)
    job = EmbedJob("classical-image", cache_dir=str(tmp_path / "cache"))
    stream = CatalogStream.open(catalog_csv, chunk_rows=8)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_local(stream, job, tmp_path / "out")  # dies inside the second chunk
    done = made[0].items
    assert 0 < done < 40
    summary = run_local(stream, job, tmp_path / "out")
    usable = 38  # 40 photos, one missing, one outside the roots
    assert made[1].items == usable - done  # the rerun encodes only what the first run had not cached
    assert summary.rows_out == 40


def test_embed_and_predict_commands_write_parquet(catalog_csv, tmp_path):
    from skulens.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["embed", str(catalog_csv), "-e", "classical-image", "--parquet", "-o", str(tmp_path / "emb")])
    assert result.exit_code == 0, result.output
    assert "40 rows embedded with the local engine" in result.output
    assert read_output(tmp_path / "emb").num_rows == 40
    train = runner.invoke(
        app, ["categorize", "train", str(catalog_csv), "-e", "tfidf", "--test-size", "0", "--no-track", "-o", str(tmp_path / "m")]
    )
    assert train.exit_code == 0, train.output
    out = tmp_path / "pred"
    result = runner.invoke(
        app, ["categorize", "predict", str(tmp_path / "m"), "-i", str(catalog_csv), "--output", str(out), "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    table = read_output(out).to_pandas()
    assert table.columns.tolist() == [
        *("id", "title", "image", "current_category"),
        *("category_1", "probability_1", "category_2", "probability_2"),
        *("differs_from_current", "issue"),
    ]
    assert (table["differs_from_current"] == (table["category_1"] != table["current_category"])).all()
    assert len(pd.read_parquet(out)) == 40 and (out / "_manifest.json").is_file()  # the folder reads as one dataset
    assert (table["category_1"] == np.where(table["id"].astype(int) % 2 == 0, "Red things", "Blue things")).mean() > 0.9
    refused = runner.invoke(app, ["categorize", "predict", str(tmp_path / "m"), "--text", "mug", "--engine", "ray"])
    assert refused.exit_code == 2 and "--engine ray needs --input" in refused.output


def test_search_index_streamed_equals_the_in_memory_index(tmp_path):
    from skulens.cli.main import app
    from skulens.index import VectorIndex

    catalog_csv = write_catalog(tmp_path / "shop", rows=80)  # an alignment trains on 64 pairs or more
    runner = CliRunner()
    fast = ["--image-encoder", "classical-image", "--text-encoder", "tfidf", "--dim", "16", "--epochs", "3"]
    model = tmp_path / "align"
    trained = runner.invoke(app, ["search", "train", str(catalog_csv), "--out", str(model), *fast])
    assert trained.exit_code == 0, trained.output
    for name, extra in (("whole", []), ("streamed", ["--parquet", "--chunk-rows", "8"])):
        args = ["search", "index", str(catalog_csv), "--model", str(model), "--out", str(tmp_path / name), *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "indexed 78 products (flat" in result.output  # the missing photo and the one outside the roots left out
    whole, streamed = VectorIndex.load(tmp_path / "whole"), VectorIndex.load(tmp_path / "streamed")
    assert streamed.ids == whole.ids and streamed.identity == whole.identity
    np.testing.assert_allclose(streamed.index.reconstruct_n(0, 78), whole.index.reconstruct_n(0, 78), atol=1e-6)
    assert set(whole.metadata.columns) <= set(streamed.metadata.columns) | {"image"}
    assert streamed.metadata["category"].iloc[0] == whole.metadata["category"].iloc[0]
    hits = streamed.search(whole.index.reconstruct_n(0, 1), k=1)[0]
    assert hits[0].id == "00000"


def test_normalise_keeps_categories_of_arrow_backed_batches(catalog_csv):
    """Ray hands batches with pyarrow-backed string columns; the category path must survive them."""
    stream = CatalogStream.open(catalog_csv)
    raw = pd.read_csv(catalog_csv, dtype=str).astype("string[pyarrow]").head(4)
    rows = stream.normalise(raw)
    assert rows["category"].tolist() == [
        "Red things >> mug",
        "Blue things >> shirt",
        "Red things >> lamp",
        "Blue things >> chair",
    ]
    assert rows["id"].tolist() == ["00000", "00001", "00002", "00003"] and rows["description"].iloc[0] is None
