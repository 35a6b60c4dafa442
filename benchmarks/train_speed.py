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
- ``--converged NAME...``: those measurements also run the reference to gradient tolerance 1e-6
  (``SKULENS_PROBE_TOL``), the solution both paths approach, and compare macro-F1 with it;
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
#: Paths a CLI run can take: (probe solver, gradient tolerance or None for the default 1e-4). ``converged`` is the
#: reference run to tol 1e-6: at 1e-4 scikit-learn stops early, and that alone moves macro-F1 by up to ~0.015.
PATHS = {"fast": ("path", None), "slow": ("sklearn", None), "converged": ("sklearn", "1e-6")}
CLI = [sys.executable, "-m", "skulens.cli.main"]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_cli(args: list[str], path: str, log: Path) -> dict:
    """Run ``skulens args`` with the probe solver ``solver``: wall seconds, CPU seconds (user + system, all
    threads; on a busy machine they vary far less than wall time) and the load around it."""
    solver, tol = PATHS[path]
    env = dict(os.environ, SKULENS_PROBE_SOLVER=solver, HF_HUB_OFFLINE="1")
    if tol:
        env["SKULENS_PROBE_TOL"] = tol
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


def comparisons(f1s: dict[str, dict]) -> dict:
    """Fast path against the reference (and against the converged reference when it ran)."""
    out = {}
    if "fast" in f1s and "slow" in f1s:
        out["macro_f1_fast_vs_slow"] = compare(f1s["fast"], f1s["slow"])
    for other in ("fast", "slow"):
        if other in f1s and "converged" in f1s:
            out[f"macro_f1_{other}_vs_converged"] = compare(f1s[other], f1s["converged"])
    return out


#: The untimed cache-filling run: every dense encoder of the default configurations, few fits.
WARMUP_CONFIGS = "classical-image LR,lite0+lite2 late,minilm linear"
#: ``--quick``: a few configurations (every head and fusion kind) instead of all 13.
QUICK_CONFIGS = "classical-image LR,tfidf LR,lite0 linear,minilm mlp,lite0+minilm early,lite0+minilm+tfidf late"


def measure_flipkart(paths: list[str], work: Path, warm: bool = True, quick: bool = False) -> dict:
    args = ["categorize", "benchmark", "--dataset", "flipkart", "--label", "0", "--folds", "2" if quick else "5"]
    args += ["--configs", QUICK_CONFIGS] if quick else []
    if warm:  # untimed: fills the embedding cache (a small run embedding all four dense encoders)
        warm_args = [*args[:7], "2", "--configs", WARMUP_CONFIGS, "--no-track", "--out", str(work / "flipkart-warmup")]
        run_cli(warm_args, "fast", work / "flipkart-warmup.log")
    out: dict = {"command": "skulens " + shlex.join([*args, "--out", "DIR"])}
    f1s = {}
    for path in paths:
        folder = work / f"flipkart-{path}"
        out[path] = run_cli([*args, "--out", str(folder)], path, work / f"flipkart-{path}.log")
        metrics = json.loads((folder / "metrics.json").read_text())
        out[path]["embed_seconds"] = metrics.get("embed_seconds")
        f1s[path] = {row["name"]: row["macro_f1"] for row in metrics["results"]}
        out[path]["macro_f1"] = {k: round(v, 4) for k, v in f1s[path].items()}
    return out | comparisons(f1s)


def measure_train(name: str, args: list[str], paths: list[str], work: Path, warm: bool = False) -> dict:
    if warm:  # untimed: fills the embedding cache
        run_cli([*args, "--out", str(work / f"{name}-warmup")], "fast", work / f"{name}-warmup.log")
    out: dict = {"command": "skulens " + shlex.join([*args, "--out", "DIR"])}
    f1s = {}
    for path in paths:
        folder = work / f"{name}-{path}"
        out[path] = run_cli([*args, "--out", str(folder)], path, work / f"{name}-{path}.log")
        f1s[path] = _f1_from(folder)
        out[path]["macro_f1"] = {k: round(v, 4) for k, v in f1s[path].items()}
    return out | comparisons(f1s)


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
    quiet = run_cli([*args, "--out", str(work / "loaded-quiet")], "fast", work / "loaded-quiet.log")
    hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    try:
        loaded = run_cli([*args, "--out", str(work / "loaded-busy")], "fast", work / "loaded-busy.log")
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
        "| measurement | fast s (CPU s) | slow s (CPU s) | macro-F1 max abs diff fast vs slow | fast vs converged "
        "| load at start of fast / slow run |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("flipkart_level0_benchmark_warm_s", "reviews_train_s", "myntra_text_train_s"):
        entry = report.get("details", {}).get(key)
        if not entry:
            continue
        fast, slow = entry.get("fast", {}), entry.get("slow", {})
        diff = entry.get("macro_f1_fast_vs_slow", {}).get("max_abs_diff")
        converged = entry.get("macro_f1_fast_vs_converged", {}).get("max_abs_diff", "-")
        lines.append(
            f"| {key} | {fast.get('seconds')} ({fast.get('cpu_seconds')}) | {slow.get('seconds')} ({slow.get('cpu_seconds')}) "
            f"| {diff} | {converged} | {fast.get('load_before')} / {slow.get('load_before')} |"
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
    lines += [
        "",
        "Runs that started at load > 1.5 are not quiet-machine numbers (`quiet: false` in the JSON). *converged*: the "
        "scikit-learn reference run to gradient tolerance 1e-6 (at the default 1e-4 it stops early, which alone moves "
        "macro-F1 by up to ~0.015).",
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["flipkart", "reviews", "myntra", "loaded"])
    parser.add_argument("--paths", nargs="+", default=["fast", "slow"], choices=list(PATHS))
    parser.add_argument(
        "--converged", nargs="*", default=[], metavar="NAME", help="measurements that also run the reference to tol 1e-6"
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed cache-filling runs (cache already warm)")
    parser.add_argument("--work", default=None, help="folder for models and logs (default: a temporary one)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (2 folds and 6 configurations, 2,000 reviews) to check the script runs"
    )
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
        paths = options.paths + (["converged"] if name in options.converged and "converged" not in options.paths else [])
        if name == "flipkart":
            details["flipkart_level0_benchmark_warm_s"] = entry = measure_flipkart(
                paths, work, not options.no_warmup, options.quick
            )
            report["flipkart_level0_benchmark_warm_s"] = entry[options.paths[0]]["seconds"]
        elif name == "reviews":
            details["reviews_train_s"] = entry = measure_train("reviews", reviews, paths, work)
            report["reviews_train_s"] = entry[options.paths[0]]["seconds"]
        elif name == "myntra":
            details["myntra_text_train_s"] = entry = measure_train("myntra", myntra, paths, work, not options.no_warmup)
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
