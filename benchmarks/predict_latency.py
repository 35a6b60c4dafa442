"""Does single-product prediction stay fast however many predictions came before? (issue 9)

Trains a CategoryPredictor (EfficientNet-Lite0 + MiniLM + TF-IDF, late fusion) on a small Flipkart
subset, then predicts products one at a time in the same, warm process with
``predict_one(image=path, title=...)``, drawing products from the Flipkart images and titles not
used for training. The p50 latency of a window of predictions made after the first 10 is compared
with that of a window made after the first 1,000; both windows hold products never predicted before,
drawn from the same pool. Also measured: opening an EmbeddingCache after 1,000 single-product writes,
and the wall time of ``skulens --help`` in a fresh process. Writes
``benchmarks/results/predict_latency.{json,md}``.

    python benchmarks/predict_latency.py [--train-per-class 8] [--window 30] [--predictions 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from skulens.cache import EmbeddingCache, content_key
from skulens.catalog import CatalogError, load_catalog
from skulens.tasks.categorize import CategoryPredictor

RESULTS = Path(__file__).resolve().parent / "results"
ENCODERS = ("efficientnet-lite0", "minilm", "tfidf")
FLAT_RATIO = 1.2


def p50_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1e3, 2)


def cpu_p50_ms(samples: list[tuple[float, float]]) -> float:
    return p50_ms([cpu for _, cpu in samples])


def wall(samples: list[tuple[float, float]]) -> list[float]:
    return [seconds for seconds, _ in samples]


def cache_open_ms(folder: Path, writes: int, dim: int = 1280, opens: int = 5) -> dict[str, object]:
    """Median time to open an EmbeddingCache after ``writes`` single-vector put + flush cycles."""
    rng = np.random.default_rng(0)
    with EmbeddingCache(folder, "latency-benchmark@1", dim) as cache:
        for i in range(writes):
            cache.put([content_key(f"product {i}")], rng.random((1, dim), dtype=np.float32))
            cache.flush()
        shards, stored = len(cache.shard_files()), len(cache)
    times, first_get = [], []
    for _ in range(opens):
        start = time.perf_counter()
        cache = EmbeddingCache(folder, "latency-benchmark@1", dim)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert cache.get(content_key(f"product {writes - 1}")) is not None
        first_get.append(time.perf_counter() - start)
        cache.close()
    index_files = sorted(p.name for p in cache.folder.glob("*.sqlite"))
    return {
        "open_ms": p50_ms(times),
        "first_get_ms": p50_ms(first_get),
        "vectors": stored,
        "shards": shards,
        "index_files": index_files,
    }


def cli_help_seconds(runs: int = 5) -> tuple[float, str]:
    """Median wall time of ``skulens --help`` in a new process (the installed script when there is one)."""
    script = Path(sys.executable).with_name("skulens")
    command = [str(script), "--help"] if script.is_file() else [sys.executable, "-m", "skulens.cli.main", "--help"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3), shlex.join(["skulens", "--help"] if script.is_file() else command[1:])


def cli_predict_seconds(model: Path, image: Path, title: str, runs: int = 3) -> tuple[float, list[float], str]:
    """Median wall time of ``skulens categorize predict MODEL --image FILE --text TITLE`` in a new process."""
    script = Path(sys.executable).with_name("skulens")
    args = ["categorize", "predict", str(model), "--image", str(image), "--text", title]
    command = [str(script), *args] if script.is_file() else [sys.executable, "-m", "skulens.cli.main", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "HF_HUB_OFFLINE": "1"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return (
        round(statistics.median(times), 3),
        [round(t, 3) for t in times],
        shlex.join(["skulens", *args[:2], "MODEL", *args[3:]]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-per-class", type=int, default=8, help="training products per top-level category")
    parser.add_argument("--window", type=int, default=30, help="predictions in each measured window")
    parser.add_argument("--predictions", type=int, default=1000, help="predictions made before the second window")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()

    try:
        catalog = load_catalog("flipkart")
    except CatalogError as exc:
        print(f"skipped: the Flipkart dataset is not available ({exc})")
        return 0
    frame = catalog.frame
    usable = [
        i
        for i, (image, title) in enumerate(zip(frame["image"], frame["title"]))
        if isinstance(image, str) and isinstance(title, str) and (catalog.root / image).is_file()
    ]
    load_at_start = round(os.getloadavg()[0], 2)
    rng = np.random.default_rng(args.seed)
    labels = catalog.labels(0)
    train_rows: list[int] = []
    for label in sorted(labels.iloc[usable].dropna().unique()):
        rows = [i for i in usable if labels.iloc[i] == label]
        train_rows += rng.choice(rows, size=min(args.train_per_class, len(rows)), replace=False).tolist()
    pool = rng.permutation([i for i in usable if i not in set(train_rows)]).tolist()
    window_10, window_1000, fillers = pool[: args.window], pool[args.window : 2 * args.window], pool[2 * args.window :]
    if not fillers:
        raise SystemExit("not enough Flipkart products for two windows and fillers; lower --window")

    workdir = Path(tempfile.mkdtemp(prefix="skulens-latency-"))
    os.environ["SKULENS_CACHE"] = str(workdir / "cache")  # nothing read from or left in the user's cache
    try:
        start = time.perf_counter()
        predictor = CategoryPredictor(encoders=ENCODERS, label=0, cache_dir=workdir / "cache").fit(catalog.subset(train_rows))
        train_s = time.perf_counter() - start
        print(f"trained on {len(train_rows)} products ({len(predictor.classes_)} classes) in {train_s:.1f}s")

        def predict(row: int) -> tuple[float, float]:
            """Wall and CPU (all threads of this process) seconds of one prediction."""
            began, cpu = time.perf_counter(), time.process_time()
            predictor.predict_one(image=catalog.root / frame["image"].iloc[row], title=frame["title"].iloc[row])
            return time.perf_counter() - began, time.process_time() - cpu

        made = 0
        for row in fillers[:10]:  # the first 10 predictions (cold start included)
            predict(row)
            made += 1
        after_10 = [predict(row) for row in window_10]
        made += len(after_10)
        start = time.perf_counter()
        while made < args.predictions:
            predict(fillers[(made - len(after_10)) % len(fillers)])
            made += 1
            if made % 200 == 0:
                print(f"{made} predictions, {(time.perf_counter() - start) / (made - 10 - len(after_10)) * 1e3:.0f} ms each")
        after_1000 = [predict(row) for row in window_1000]
        made += len(after_1000)

        open_stats = cache_open_ms(workdir / "open-benchmark", writes=1000)
        row = window_10[0]
        predict_s, predict_runs, predict_command = cli_predict_seconds(
            predictor.save(workdir / "model"), catalog.root / frame["image"].iloc[row], frame["title"].iloc[row]
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    help_s, help_command = cli_help_seconds()

    ratio = p50_ms(wall(after_1000)) / p50_ms(wall(after_10))
    result = {
        "single_p50_ms_after_10": p50_ms(wall(after_10)),
        "single_p50_ms_after_1000": p50_ms(wall(after_1000)),
        "ratio_after_1000_to_after_10": round(ratio, 3),
        "flat": bool(ratio <= FLAT_RATIO),
        "single_p50_cpu_ms_after_10": cpu_p50_ms(after_10),
        "single_p50_cpu_ms_after_1000": cpu_p50_ms(after_1000),
        "cpu_ratio_after_1000_to_after_10": round(cpu_p50_ms(after_1000) / cpu_p50_ms(after_10), 3),
        "cache_open_ms_after_1000": open_stats["open_ms"],
        "cache_after_1000_single_writes": open_stats,
        "cli_help_s": help_s,
        "cli_help_under_1s": bool(help_s < 1.0),
        "cli_help_command": help_command,
        "cli_predict_s": predict_s,
        "cli_predict_runs_s": predict_runs,
        "cli_predict_command": predict_command,
        "window": args.window,
        "predictions_before_second_window": made - len(after_1000),
        "p90_ms_after_10": round(float(np.percentile(wall(after_10), 90)) * 1e3, 2),
        "p90_ms_after_1000": round(float(np.percentile(wall(after_1000), 90)) * 1e3, 2),
        "load_average_at_start_1m": load_at_start,
        "encoders": list(ENCODERS),
        "encoder_identities": predictor.extractor.identities(),
        "train_products": len(train_rows),
        "train_s": round(train_s, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        },
        "command": shlex.join(sys.orig_argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "predict_latency.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    c = r["cache_after_1000_single_writes"]
    lines = [
        "# Single-product prediction latency",
        "",
        f"CategoryPredictor ({', '.join(r['encoders'])}; late fusion) trained on {r['train_products']} Flipkart products; "
        "`predict_one(image=path, title=...)` in one warm process, one product at a time. Each window holds "
        f"{r['window']} products never predicted before.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| p50 after 10 predictions | {r['single_p50_ms_after_10']} ms (p90 {r['p90_ms_after_10']} ms) |",
        f"| p50 after {r['predictions_before_second_window']} predictions | {r['single_p50_ms_after_1000']} ms "
        f"(p90 {r['p90_ms_after_1000']} ms) |",
        f"| ratio (flat when <= {FLAT_RATIO}) | {r['ratio_after_1000_to_after_10']} ({'flat' if r['flat'] else 'NOT flat'}) |",
        f"| CPU time per prediction, p50 after 10 / after {r['predictions_before_second_window']} | "
        f"{r['single_p50_cpu_ms_after_10']} / {r['single_p50_cpu_ms_after_1000']} ms "
        f"(ratio {r['cpu_ratio_after_1000_to_after_10']}; less sensitive to other load) |",
        f"| open an EmbeddingCache after 1,000 single writes | {r['cache_open_ms_after_1000']} ms "
        f"(first get {c['first_get_ms']} ms; {c['vectors']} vectors, {c['shards']} shard(s), index {', '.join(c['index_files'])}) |",
        f"| `{r['cli_help_command']}` wall time, median of 5 | {r['cli_help_s']} s "
        f"({'under' if r['cli_help_under_1s'] else 'NOT under'} 1 s) |",
        f"| `{r['cli_predict_command']}` (one product, fresh process) wall time, median of 3 | {r['cli_predict_s']} s |",
        "",
        f"Machine: {r['machine']['cpu_count']} CPUs, Python {r['machine']['python']}; load average "
        f"{r['load_average_at_start_1m']} (1 min) at the start, "
        f"{' / '.join(map(str, r['machine']['load_average_1m_5m_15m']))} (1/5/15 min) when the run ended. The CPU is "
        "shared, so wall times vary with what else runs; CPU time per prediction varies less.",
        "",
        f"Command: `{r['command']}` ({r['date']})",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
