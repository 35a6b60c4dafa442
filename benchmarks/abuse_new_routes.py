"""Abuse suite of the routes added after the first hardening (issue 24), a kill -9 sweep of the output
writers, the CSV-injection check, and schemathesis over every operation.

1. Trains small real models on Flipkart (the abuse suite's categorizers, an alignment of classical image
   features + TF-IDF with its product index, a small captioner on EfficientNet-Lite0 region maps), starts
   the service in a child process and sends ``/v1/search``, ``/v1/zero-shot``, ``/v1/caption`` and
   ``/v1/explain`` the cases of issue 24: format-string templates, oversized lists and texts, pixel bombs
   (16 at once), wide beams, 100,000-character texts, a tampered index. Records every status and the
   server's peak RSS.
2. Kill sweep: ``categorize predict`` to CSV and to Parquet, ``categorize train``, ``search index``,
   ``caption train`` (300 photos, 2 epochs) and ``finetune image`` (12 photos per class, 2 epochs) are each
   killed (SIGKILL) at ``--kills`` random points after one complete run; after each kill the output must be
   the previous complete one or absent, never a partial output that reads as complete.
3. CSV injection: formula-like ids, titles, reviews and labels through ``categorize predict`` (and its
   issues file), ``reviews predict``, ``zero-shot`` and ``dedupe``: every such cell must be escaped.
4. schemathesis (positive and negative cases) on every operation of a service holding all model kinds.

    OMP_NUM_THREADS=1 python benchmarks/abuse_new_routes.py --kills 10 --schemathesis-examples 30
    OMP_NUM_THREADS=1 python benchmarks/abuse_new_routes.py --parts routes,schemathesis   # only those keys
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd
from abuse import Recorder, big_jpeg, palette_png, schemathesis_run
from reliability_results import update_results
from reliability_service import ROOT, Service, train_models

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", NO_COLOR="1")
#: Labelled photos per Flipkart category the swept ``finetune image`` run trains on (small: the sweep runs it 11 times).
FINETUNE_PER_CLASS = 12
FORMULAS = ['=HYPERLINK("http://x","y")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3+cmd|' /C calc'!A0", "\t=1", "\r=1"]


def flipkart_subset(per_class: int = 40):
    from skulens.catalog import load_catalog

    catalog = load_catalog("flipkart")
    labels = catalog.labels(0)
    rows = [i for label in sorted(labels.dropna().unique()) for i in labels.index[labels == label][:per_class]]
    return catalog.subset(rows)


def train_new_models(work: Path) -> Path:
    """``work/models`` with the abuse suite's models plus ``align`` (with ``align/index``), ``align-broken``
    (its index claims a 1 GiB vector array) and ``caption``."""
    from skulens.heads.align import AlignConfig
    from skulens.tasks.align import AlignmentModel
    from skulens.tasks.caption import CaptionModel

    models = train_models(work)
    done = work / "new-models.done"
    if done.is_file():
        return models
    subset = flipkart_subset()
    config = AlignConfig(dim=64, epochs=20, patience=5, batch_size=64)
    align = AlignmentModel(["classical-image"], ["tfidf"], head_config=config, cache_dir=work / "cache").fit(subset)
    align.save(models / "align")
    align.build_index(subset).save(models / "align" / "index")
    shutil.copytree(models / "align", models / "align-broken")
    data = bytearray((models / "align-broken" / "index" / "index.faiss").read_bytes())
    data[37:45] = (2**28).to_bytes(8, "little")
    (models / "align-broken" / "index" / "index.faiss").write_bytes(bytes(data))
    hyper = {"d_model": 64, "layers": 1, "heads": 2, "epochs": 3, "patience": 3, "batch_size": 32, "min_count": 2}
    CaptionModel(**hyper, attributes=(), progress=False).fit(subset).save(models / "caption")
    done.touch()
    return models


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def new_route_cases(url: str, record: Recorder, detail: dict) -> None:
    """Every issue-24 case against the running service; ``record`` gets each status."""
    photo = big_jpeg(800, 800)
    bomb = b64(palette_png(7999, 7999))
    long_text = "steel pan for cooking " * 4_500  # 99,000 characters: under the 100,000 schema limit
    timings: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def post(case: str, path: str, body: dict) -> httpx.Response:
            started = time.perf_counter()
            response = await client.post(path, json=body)
            timings[case] = max(timings.get(case, 0.0), round(time.perf_counter() - started, 2))
            record.add(case, response.status_code)
            return response

        zero = {"labels": ["Watches", "Shoes", "Baby Care"], "text": "a leather watch", "model": "align"}
        for template in [
            "{label}{label:a>10000000}",
            "{label} {0}",
            "{label} {}",
            "{label} {x}",
            "{label} {",
            "{label} {label:d}",
        ]:
            await post("zero_shot_format_template", "/v1/zero-shot", {**zero, "templates": [template]})
        await post("zero_shot_21_templates", "/v1/zero-shot", {**zero, "templates": [f"{{label}} {i}" for i in range(21)]})
        await post("zero_shot_long_template", "/v1/zero-shot", {**zero, "templates": ["{label}" + "x" * 10_000]})
        await post("zero_shot_501_labels", "/v1/zero-shot", {**zero, "labels": [f"l{i}" for i in range(501)]})
        await post("zero_shot_long_label", "/v1/zero-shot", {**zero, "labels": ["x" * 5_000, "y"]})
        many = {**zero, "labels": [f"label {i}" for i in range(100)], "templates": [f"{{label}} v{i}" for i in range(20)]}
        await post("zero_shot_100_labels_20_templates", "/v1/zero-shot", many)
        await post("zero_shot_photo", "/v1/zero-shot", {**zero, "text": None, "image_base64": b64(photo)})
        for path, body in (
            ("/v1/search", {"image_base64": bomb, "model": "align"}),
            ("/v1/zero-shot", {**zero, "image_base64": bomb}),
            ("/v1/caption", {"image_base64": bomb}),
            ("/v1/explain", {"image_base64": bomb, "title": "watch", "model": "flipkart"}),
        ):
            await post(f"pixel_bomb_{path.rsplit('/', 1)[-1]}", path, body)
        bombs = [
            post("pixel_bomb_concurrent", path, body)
            for path, body in [
                ("/v1/search", {"image_base64": bomb, "model": "align"}),
                ("/v1/zero-shot", {**zero, "image_base64": bomb}),
                ("/v1/caption", {"image_base64": bomb}),
                ("/v1/explain", {"image_base64": bomb, "title": "watch", "model": "flipkart"}),
            ]
            * 4
        ]
        await asyncio.gather(*bombs)
        await post(
            "search_21_filter_keys", "/v1/search", {"text": "watch", "where": {f"k{i}": "x" for i in range(21)}, "model": "align"}
        )
        await post(
            "search_101_filter_values",
            "/v1/search",
            {"text": "watch", "where": {"k": [str(i) for i in range(101)]}, "model": "align"},
        )
        await post("search_long_id_echo", "/v1/search", {"text": "watch", "model": "m" * 2_000})
        await post("search_photo", "/v1/search", {"image_base64": b64(photo), "model": "align", "k": 5})
        for _ in range(3):
            await post("search_tampered_index", "/v1/search", {"text": "watch", "model": "align-broken"})
        response = await client.get(f"/v1/similar/{'x' * 2_000}", params={"model": "align"})
        record.add("similar_long_id", response.status_code)
        detail["similar_long_id_detail_chars"] = len(response.json().get("detail", ""))
        for beam in (0, 9, 2000):
            await post("caption_bad_beam", "/v1/caption", {"image_base64": b64(photo), "beam": beam})
        await post("caption_photo", "/v1/caption", {"image_base64": b64(photo), "beam": 8, "nearest": 20})
        await post("explain_long_text", "/v1/explain", {"title": "watch", "description": long_text, "model": "flipkart"})
        await asyncio.gather(
            *[
                post(
                    "explain_long_text_concurrent",
                    "/v1/explain",
                    {"title": "watch", "description": long_text, "model": "flipkart"},
                )
                for _ in range(4)
            ]
        )
        await post("explain_photo", "/v1/explain", {"image_base64": b64(photo), "title": "analog watch", "model": "flipkart"})
    detail["seconds"] = timings


def new_routes_abuse(models: Path) -> dict:
    record, detail = Recorder(), {}
    service = Service(models, header_timeout_s=5.0, body_timeout_s=5.0)
    try:
        detail["memory_start"] = service.memory_mb()
        asyncio.run(new_route_cases(service.url, record, detail))
        alive = service.alive()
        memory = service.memory_mb() if alive else {}
    finally:
        log = service.stop()
    detail.update(
        server_alive_after=alive,
        server_log_tracebacks=log.count("Traceback"),
        memory_end=memory,
        statuses={case: dict(counts) for case, counts in record.cases.items()},
    )
    return {"cases": record.total, "5xx": record.server_errors, "peak_rss_mb": memory.get("peak_rss_mb"), "detail": detail}


# ----- kill sweep -----------------------------------------------------------------------------------


def skulens(*args: str) -> list[str]:
    return [sys.executable, "-m", "skulens.cli", *args]


def run_to_end(command: list[str], env: dict[str, str] = ENV) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - started


def run_and_kill(command: list[str], after_s: float, env: dict[str, str] = ENV) -> None:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=after_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def csv_state(path: Path, rows: int) -> str:
    if not path.exists():
        return "none"
    try:
        return "complete" if len(pd.read_csv(path)) == rows else "partial"
    except Exception:  # noqa: BLE001 - an unreadable file is a partial output too
        return "partial"


def parquet_state(folder: Path, rows: int) -> str:
    manifest = folder / "_manifest.json"
    if not manifest.exists():
        return "none"  # no manifest: the folder does not claim to be complete
    try:
        claimed = json.loads(manifest.read_text())["rows_out"]
        read = pd.read_parquet(sorted(folder.glob("*.parquet"))).shape[0] if list(folder.glob("*.parquet")) else 0
    except Exception:  # noqa: BLE001
        return "partial"
    return "complete" if claimed == read == rows else "partial"


def model_state(folder: Path, _rows: int) -> str:
    from skulens.tasks.categorize import CategoryPredictor

    if not (folder / "weights.npz").exists() and not (folder / "config.json").exists():
        return "none"
    try:
        CategoryPredictor.load(folder)
        return "complete"
    except Exception:  # noqa: BLE001
        return "partial"


def caption_state(folder: Path) -> str:
    from skulens.tasks.caption import CaptionModel

    if not (folder / "config.json").exists():
        return "none"
    try:
        CaptionModel.load(folder)
        return "complete"
    except Exception:  # noqa: BLE001
        return "partial"


def encoder_state(folder: Path) -> str:
    """A fine-tuned encoder folder: complete when it loads (finite safetensors weights that fit its spec)."""
    from skulens.encoders.finetuned import SPEC_NAME, load_finetuned

    if not (folder / SPEC_NAME).exists():
        return "none"
    try:
        load_finetuned(folder)
        return "complete"
    except Exception:  # noqa: BLE001
        return "partial"


def index_state(folder: Path) -> str:
    from skulens.index import VectorIndex

    if not (folder / "manifest.json").exists():
        return "none"
    try:
        index = VectorIndex.load(folder)
        return "complete" if len(index) == index.manifest["count"] else "partial"
    except Exception:  # noqa: BLE001
        return "partial"


def kill_sweep(models: Path, work: Path, kills: int, rows: int, seed: int = 0, only: set[str] | None = None) -> dict:
    """Kill each writer (those named in ``only``, else all) at ``kills`` random points; count outputs that read as
    complete but are not."""
    rng = random.Random(seed)
    data = work / "sweep"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    subset = flipkart_subset(per_class=1_000)
    base = subset.frame[["id", "title"]].astype(str)
    big = pd.concat([base.assign(id=base["id"] + f"-{i}") for i in range(rows // len(base) + 1)]).head(rows)
    big.to_csv(data / "big.csv", index=False)
    train = subset.frame[["id", "title"]].assign(category=subset.labels(0).astype(str))
    train.to_csv(data / "train.csv", index=False)
    photos = subset.frame[["id", "title"]].assign(
        image=[str(subset.root / p) for p in subset.frame["image"]], category=subset.labels(0).astype(str)
    )
    photos.head(300).to_csv(data / "photos.csv", index=False)
    few = photos.groupby("category", group_keys=False).head(FINETUNE_PER_CLASS)
    few.to_csv(data / "few_photos.csv", index=False)
    root = ["--image-root", str(subset.root)]
    env = {**ENV, "SKULENS_CACHE": str(work / "sweep-cache")}  # killed runs write this cache, not the user's
    text_model = str(models / "flipkart-text")
    writers = {
        "categorize_predict_csv": (
            skulens("categorize", "predict", text_model, "--input", str(data / "big.csv"), "--output", str(data / "out.csv")),
            lambda: csv_state(data / "out.csv", rows),
        ),
        "categorize_predict_parquet": (
            skulens("categorize", "predict", text_model, "--input", str(data / "big.csv"), "--output", str(data / "parts")),
            lambda: parquet_state(data / "parts", rows),
        ),
        "categorize_train": (
            skulens(
                "categorize",
                "train",
                str(data / "train.csv"),
                "-e",
                "tfidf",
                "--out",
                str(data / "model"),
                "--no-track",
            ),
            lambda: model_state(data / "model", 0),
        ),
        "search_index": (
            skulens("search", "index", "flipkart", "--model", str(models / "align"), "--out", str(data / "index")),
            lambda: index_state(data / "index"),
        ),
        "caption_train": (
            skulens(
                "caption",
                "train",
                str(data / "photos.csv"),
                *root,
                "--limit",
                "300",
                "--epochs",
                "2",
                "--dim",
                "64",
                "--layers",
                "1",
                "--out",
                str(data / "caption"),
            ),
            lambda: caption_state(data / "caption"),
        ),
        "finetune_image": (
            skulens(
                "finetune",
                "image",
                str(data / "few_photos.csv"),
                *root,
                "--label",
                "category",
                "--epochs",
                "2",
                "--views",
                "1",
                "--batch-size",
                "16",
                "--no-track",
                "--out",
                str(data / "finetuned"),
            ),
            lambda: encoder_state(data / "finetuned"),
        ),
    }
    writers = {name: writer for name, writer in writers.items() if only is None or name in only}
    detail = {}
    for name, (command, state) in writers.items():
        try:
            run_to_end(command, env)  # fills the sweep's embedding cache, so the timed run is what the killed runs do
            seconds = run_to_end(command, env)
        except subprocess.CalledProcessError as exc:
            detail[name] = {"error": (exc.stderr or b"").decode()[-500:]}
            continue
        outcomes = {"complete": 0, "none": 0, "partial": 0}
        if state() != "complete":
            detail[name] = {"error": "a complete run does not read as complete"}
            continue
        for _ in range(kills):
            run_and_kill(command, rng.uniform(0.2, 1.0) * seconds, env)
            outcome = state()
            outcomes[outcome] += 1
            if outcome == "none":
                run_to_end(command, env)  # the next kill starts from a complete previous output again
        leftovers = [p.name for p in data.rglob("*.tmp")]
        detail[name] = {"full_run_seconds": round(seconds, 1), **outcomes, "temporary_files_left": leftovers}
    runs = sum(d.get("complete", 0) + d.get("none", 0) + d.get("partial", 0) for d in detail.values())
    partial = sum(d.get("partial", 0) for d in detail.values())
    return {"runs": runs, "partial": partial, "detail": detail}


# ----- CSV injection -------------------------------------------------------------------------------


def is_number(cell: str) -> bool:
    """A numeric cell (a score of -0.2): a spreadsheet reads it as a number, not a formula."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def csv_injection(models: Path, work: Path) -> dict:
    """Formula-like ids, titles, reviews and labels through every CSV writer of the command line (categorize
    predict and its issues file, reviews predict, zero-shot, dedupe): no written cell may start
    like a formula."""
    folder = work / "injection"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    photos = flipkart_subset(per_class=1)
    images = [str(photos.root / p) for p in photos.frame["image"]][: len(FORMULAS) + 1]
    frame = pd.DataFrame(
        {
            "id": FORMULAS + ["plain"],
            "title": [f"watch {f}" for f in FORMULAS] + ["=1+1"],
            "review_text": FORMULAS + ["=1+1 great"],
            "image": images,
        }
    )
    frame.to_csv(folder / "in.csv", index=False)
    source = [str(folder / "in.csv"), "--image-root", str(photos.root)]
    align = str(models / "align")
    writers = {
        "categorize_predict": (
            skulens(
                "categorize", "predict", str(models / "flipkart-text"), "--input", source[0], "--output", str(folder / "c.csv")
            ),
            [folder / "c.csv", folder / "c.issues.csv"],
        ),
        "reviews_predict": (
            skulens("reviews", "predict", str(models / "reviews"), "--input", source[0], "--output", str(folder / "r.csv")),
            [folder / "r.csv"],
        ),
        "zero_shot": (
            skulens("zero-shot", *source, "--model", align, "--use", "text", "--labels", "=SUM(1),+cmd,Shoes")
            + ["--out", str(folder / "z.csv")],
            [folder / "z.csv"],
        ),
        "dedupe": (
            skulens("dedupe", *source, "--model", align, "--threshold", "-1", "--out", str(folder / "d.csv")),
            [folder / "d.csv"],
        ),
    }
    detail: dict = {"formula_inputs": len(FORMULAS), "writers": {}}
    dangerous: list[str] = []
    for name, (command, outputs) in writers.items():
        subprocess.run(command, env=ENV, check=True, capture_output=True)
        cells = [
            str(c) for path in outputs if path.is_file() for c in pd.read_csv(path, dtype=str, keep_default_na=False).columns
        ]
        cells += [
            str(v)
            for path in outputs
            if path.is_file()
            for v in pd.read_csv(path, dtype=str, keep_default_na=False).to_numpy().ravel()
        ]
        bad = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r")) and not is_number(c)]
        escaped = sum(c.startswith("'") and c[1:].startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
        detail["writers"][name] = {"files": [p.name for p in outputs if p.is_file()], "cells": len(cells), "escaped": escaped}
        dangerous += bad
    detail["cells"] = sum(w["cells"] for w in detail["writers"].values())
    return {**detail, "unescaped": dangerous, "escaped": not dangerous}


PARTS = ("routes", "injection", "sweep", "schemathesis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10, help="Random kill points per writer.")
    parser.add_argument("--writers", default="", help="Comma-separated writers the kill sweep covers (default: all).")
    parser.add_argument("--rows", type=int, default=30_000, help="Rows of the catalog the kill sweep predicts.")
    parser.add_argument("--schemathesis-examples", type=int, default=30, help="schemathesis cases per operation.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "skulens-reliability")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"Comma-separated parts to run (of {', '.join(PARTS)}); their keys are updated."
    )
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    models = train_new_models(args.work)
    values: dict = {}
    if "routes" in parts:
        abuse = new_routes_abuse(models)
        print(f"new routes: {abuse['cases']} cases, {abuse['5xx']} 5xx, peak RSS {abuse['peak_rss_mb']} MB")
        values.update(
            abuse_cases_new_routes=abuse["cases"],
            abuse_5xx_new_routes=abuse["5xx"],
            abuse_peak_rss_mb_new_routes=abuse["peak_rss_mb"],
            abuse_new_routes_detail=abuse["detail"],
        )
    if "injection" in parts:
        injection = csv_injection(models, args.work)
        print(f"CSV injection: escaped={injection['escaped']}")
        values.update(csv_injection_cells_escaped=injection["escaped"], csv_injection_detail=injection)
    if "sweep" in parts:
        sweep = kill_sweep(models, args.work, args.kills, args.rows, only=set(args.writers.split(",")) if args.writers else None)
        print(f"kill sweep: {sweep['runs']} runs, {sweep['partial']} partial outputs")
        values.update(
            kill_sweep_runs=sweep["runs"], kill_sweep_partial_outputs=sweep["partial"], kill_sweep_detail=sweep["detail"]
        )
    if "schemathesis" in parts:
        served = Path(tempfile.mkdtemp()) / "models"
        for name in ("flipkart-text", "reviews", "align", "caption"):
            shutil.copytree(models / name, served / name)
        schema = schemathesis_run(models, args.schemathesis_examples, folder=served)
        print(f"schemathesis: {schema['cases']} cases, {schema['failures']} failures, {schema['conformance_findings']}")
        values.update(
            schemathesis_cases=schema["cases"],
            schemathesis_failures=schema["failures"],
            schemathesis_conformance_findings=sum(schema["conformance_findings"].values()),
            schemathesis_detail=schema,
        )
    section = "abuse_new_routes" if parts == list(PARTS) else f"abuse_new_routes ({', '.join(parts)})"
    command = "OMP_NUM_THREADS=1 python benchmarks/abuse_new_routes.py " + " ".join(sys.argv[1:])
    update_results(RESULTS, values, section, command)


if __name__ == "__main__":
    main()
