"""Training speed of the probe fast path against the scikit-learn reference path, and under load.

Each measurement runs a real CLI command in a fresh process with ``SKULENS_PROBE_SOLVER`` set to
``path`` (fast, the default) or ``sklearn`` (the former cold per-C fits) and records its wall time
and macro-F1:

- ``flipkart_level0_benchmark_warm_s``: ``skulens categorize benchmark --dataset flipkart --label 0
  --folds 5`` with every embedding cached (an untimed run first warms the cache);
- ``reviews_train_s``: ``skulens reviews train reviews -e tfidf`` (23k reviews, default grid);
- ``myntra_text_train_s``: ``skulens categorize train myntra --label 0 -e minilm`` (warm cache);
- ``probe_fit`` (``--only probe``): ``LinearProbe.fit`` alone, CPU seconds of each solver on cached
  Flipkart embeddings, with the agreement of their predictions;
- ``loaded_slowdown``: the fast review training with two CPU-bound processes beside it, divided by
  the quiet time.

The 1-minute load average is recorded at the start and end and around each run; a measurement that
started at load > 1.5 is marked ``"quiet": false``. Writes (merges into)
``benchmarks/results/train_speed.{json,md}``.

    python benchmarks/train_speed.py [--only flipkart reviews myntra loaded] [--paths fast slow]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
QUIET_LOAD = 1.5
SOLVERS = {"fast": "path", "slow": "sklearn"}
CLI = [sys.executable, "-m", "skulens.cli.main"]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_cli(args: list[str], solver: str, log: Path) -> dict:
    """Run ``skulens args`` with the probe solver ``solver``: wall seconds, CPU seconds (user + system, all
    threads; on a busy machine they vary far less than wall time) and the load around it."""
    env = dict(os.environ, SKULENS_PROBE_SOLVER=solver, HF_HUB_OFFLINE="1")
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, start = load(), time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(CLI + args, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"`skulens {shlex.join(args)}` failed ({done.returncode}); see {log}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "load_before": before,
        "load_after": load(),
        "quiet": before <= QUIET_LOAD,
    }


def _f1_from(folder: Path) -> dict:
    """Held-out macro-F1 values a train command saved with its model (config.json, metrics*.json)."""
    found: dict[str, float] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("macro_f1") and isinstance(value, int | float):
                    found[f"{prefix}.{key}"] = float(value)
                else:
                    walk(value, f"{prefix}.{key}" if prefix else key)

    for path in sorted(folder.glob("*.json")):
        walk(json.loads(path.read_text()), path.stem)
    return found


def compare(fast: dict, slow: dict) -> dict:
    common = sorted(set(fast) & set(slow))
    diffs = {key: round(abs(fast[key] - slow[key]), 4) for key in common}
    return {"max_abs_diff": max(diffs.values(), default=None), "within_0_005": all(d <= 0.005 for d in diffs.values())}


def measure_flipkart(paths: list[str], work: Path, warm: bool = True, folds: int = 5) -> dict:
    args = ["categorize", "benchmark", "--dataset", "flipkart", "--label", "0", "--folds", str(folds)]
    if warm:  # untimed: fills the embedding cache
        run_cli([*args, "--out", str(work / "flipkart-warmup")], "path", work / "flipkart-warmup.log")
    out: dict = {"command": "skulens " + shlex.join([*args, "--out", "DIR"])}
    f1s = {}
    for path in paths:
        folder = work / f"flipkart-{path}"
        out[path] = run_cli([*args, "--out", str(folder)], SOLVERS[path], work / f"flipkart-{path}.log")
        metrics = json.loads((folder / "metrics.json").read_text())
        out[path]["embed_seconds"] = metrics.get("embed_seconds")
        f1s[path] = {row["name"]: row["macro_f1"] for row in metrics["results"]}
        out[path]["macro_f1"] = {k: round(v, 4) for k, v in f1s[path].items()}
    if len(f1s) == 2:
        out["macro_f1_fast_vs_slow"] = compare(f1s["fast"], f1s["slow"])
    return out


def measure_train(name: str, args: list[str], paths: list[str], work: Path, warm: bool = False) -> dict:
    if warm:  # untimed: fills the embedding cache
        run_cli([*args, "--out", str(work / f"{name}-warmup")], "path", work / f"{name}-warmup.log")
    out: dict = {"command": "skulens " + shlex.join([*args, "--out", "DIR"])}
    f1s = {}
    for path in paths:
        folder = work / f"{name}-{path}"
        out[path] = run_cli([*args, "--out", str(folder)], SOLVERS[path], work / f"{name}-{path}.log")
        f1s[path] = _f1_from(folder)
        out[path]["macro_f1"] = {k: round(v, 4) for k, v in f1s[path].items()}
    if len(f1s) == 2:
        out["macro_f1_fast_vs_slow"] = compare(f1s["fast"], f1s["slow"])
    return out


def measure_probe(work: Path) -> dict:
    """Probe fitting alone, in this process: CPU seconds of ``LinearProbe.fit`` (C search + refit) with each
    solver on the cached Flipkart level-0 embeddings of the first 840 rows (dense encoders) and on TF-IDF
    of their titles + descriptions, and the agreement of the two solvers' test predictions (rows 840+)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from skulens.catalog import load_catalog
    from skulens.embed import embed_catalog
    from skulens.encoders import create_encoder
    from skulens.heads import LinearProbe

    catalog = load_catalog("flipkart")
    labels = catalog.labels(0).to_numpy()
    out: dict = {"what": measure_probe.__doc__.split("\n\n")[0].replace("\n", " ")}
    for name in ("classical-image", "efficientnet-lite0", "minilm", "tfidf"):
        encoder = create_encoder(name)
        if name == "tfidf":
            encoder.fit(catalog.texts()[:840])
        emb = embed_catalog(catalog, encoder)
        keep = emb.present & catalog.labels(0).notna().to_numpy()
        X, y = emb.vectors[np.flatnonzero(keep)], labels[keep].astype(str)
        entry = {}
        proba = {}
        for path, solver in SOLVERS.items():
            cpu = time.process_time()
            probe = LinearProbe(solver=solver).fit(X[:840], y[:840])
            entry[f"{path}_cpu_s"] = round(time.process_time() - cpu, 3)
            proba[path] = probe.predict_proba(X[840:])
            entry[f"{path}_test_macro_f1"] = round(float(f1_score(y[840:], probe.predict(X[840:]), average="macro")), 4)
            entry[f"{path}_C"] = probe.C_
        entry["speedup_cpu"] = round(entry["slow_cpu_s"] / max(entry["fast_cpu_s"], 1e-9), 2)
        entry["max_abs_proba_diff"] = round(float(np.abs(proba["fast"] - proba["slow"]).max()), 4)
        entry["same_argmax_share"] = round(float((proba["fast"].argmax(1) == proba["slow"].argmax(1)).mean()), 4)
        out[name] = entry
        print(name, entry, flush=True)
    return out


def _busy() -> None:
    while True:
        pass


def measure_loaded(args: list[str], work: Path) -> dict:
    quiet = run_cli([*args, "--out", str(work / "loaded-quiet")], "path", work / "loaded-quiet.log")
    hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    try:
        loaded = run_cli([*args, "--out", str(work / "loaded-busy")], "path", work / "loaded-busy.log")
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    return {
        "command": "skulens " + shlex.join([*args, "--out", "DIR"]) + " (alone, then beside 2 busy-loop processes)",
        "quiet": quiet,
        "loaded": loaded,
        "loaded_slowdown": round(loaded["seconds"] / quiet["seconds"], 2),
    }


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        "# Training speed: probe fast path vs scikit-learn reference",
        "",
        f"Assembled from several invocations (each entry in the JSON has its command and loads); last: "
        f"`{report['command']}`; {report['finished']}; load average {report['load_start']} at start, "
        f"{report['load_end']} at end (quiet machine: <= {QUIET_LOAD}).",
        "",
        "| measurement | fast s (CPU s) | slow s (CPU s) | macro-F1 max abs diff | load at start of fast / slow run |",
        "|---|---|---|---|---|",
    ]
    for key in ("flipkart_level0_benchmark_warm_s", "reviews_train_s", "myntra_text_train_s"):
        entry = report.get("details", {}).get(key)
        if not entry:
            continue
        fast, slow = entry.get("fast", {}), entry.get("slow", {})
        diff = entry.get("macro_f1_fast_vs_slow", {}).get("max_abs_diff")
        lines.append(
            f"| {key} | {fast.get('seconds')} ({fast.get('cpu_seconds')}) | {slow.get('seconds')} ({slow.get('cpu_seconds')}) "
            f"| {diff} | {fast.get('load_before')} / {slow.get('load_before')} |"
        )
    probe = report.get("details", {}).get("probe_fit")
    if probe:
        lines += [
            "",
            "`LinearProbe.fit` alone (C search + refit, 840 Flipkart rows, one thread), CPU seconds:",
            "",
            "| features | fast CPU s | reference CPU s | speed-up | max abs probability diff | same argmax |",
            "|---|---|---|---|---|---|",
        ]
        for name, e in probe.items():
            if isinstance(e, dict):
                lines.append(
                    f"| {name} | {e['fast_cpu_s']} | {e['slow_cpu_s']} | {e['speedup_cpu']}x | {e['max_abs_proba_diff']} "
                    f"| {e['same_argmax_share']} |"
                )
    if "loaded_slowdown" in report:
        loaded = report["details"]["loaded_slowdown"]
        lines += [
            "",
            f"`loaded_slowdown` = {report['loaded_slowdown']} (review training {loaded['loaded']['seconds']} s beside two "
            f"busy processes / {loaded['quiet']['seconds']} s alone).",
        ]
    lines += ["", "Runs that started at load > 1.5 are not quiet-machine numbers (`quiet: false` in the JSON)."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["flipkart", "reviews", "myntra", "loaded"])
    parser.add_argument("--paths", nargs="+", default=["fast", "slow"], choices=list(SOLVERS))
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed cache-filling runs (cache already warm)")
    parser.add_argument("--work", default=None, help="folder for models and logs (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="small sizes (2 folds, 2,000 reviews) to check the script runs")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of train_speed.{json,md} (default: benchmarks/results)"
    )
    options = parser.parse_args()
    work = Path(options.work or tempfile.mkdtemp(prefix="skulens-train-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    options.results.mkdir(parents=True, exist_ok=True)
    target = options.results / "train_speed.json"
    report = json.loads(target.read_text()) if target.exists() else {}
    report.update(
        command="python benchmarks/train_speed.py " + shlex.join(sys.argv[1:]),
        load_start=load(),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        threads_env=os.environ.get("SKULENS_THREADS"),
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        quick=options.quick,
    )
    details = report.setdefault("details", {})
    reviews = ["reviews", "train", "reviews", "-e", "tfidf", *(["--limit", "2000"] if options.quick else [])]
    myntra = ["categorize", "train", "myntra", "--label", "0", "-e", "minilm"]
    for name in options.only:
        if name == "flipkart":
            details["flipkart_level0_benchmark_warm_s"] = entry = measure_flipkart(
                options.paths, work, not options.no_warmup, 2 if options.quick else 5
            )
            report["flipkart_level0_benchmark_warm_s"] = entry[options.paths[0]]["seconds"]
        elif name == "reviews":
            details["reviews_train_s"] = entry = measure_train("reviews", reviews, options.paths, work)
            report["reviews_train_s"] = entry[options.paths[0]]["seconds"]
        elif name == "myntra":
            details["myntra_text_train_s"] = entry = measure_train("myntra", myntra, options.paths, work, not options.no_warmup)
            report["myntra_text_train_s"] = entry[options.paths[0]]["seconds"]
        elif name == "probe":
            details["probe_fit"] = measure_probe(work)
        elif name == "loaded":
            details["loaded_slowdown"] = entry = measure_loaded(reviews, work)
            report["loaded_slowdown"] = entry["loaded_slowdown"]
        else:
            parser.error(f"unknown measurement {name!r}")
        target.write_text(json.dumps(report, indent=2) + "\n")  # keep what is measured if a later step fails
    report.update(load_end=load(), finished=datetime.now(UTC).isoformat(timespec="seconds"))
    report["quiet_machine"] = report["load_start"] <= QUIET_LOAD and report["load_end"] <= QUIET_LOAD
    target.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, options.results / "train_speed.md")
    print(json.dumps({k: v for k, v in report.items() if k != "details"}, indent=2))


if __name__ == "__main__":
    main()
