"""Every speed benchmark of issue 14 in one sequence, with the machine load checked before each part.

Parts, in this order (each a subprocess running one benchmark script, sized to fit the whole suite in
about 20 minutes on a quiet 2-core machine):

1. ``encode``: ``encode_throughput.py`` (images/s end to end, titles/s, product texts/s; naive references);
2. ``train``: ``train_speed.py --only flipkart reviews myntra`` (fast and reference probe path, macro-F1 parity);
3. ``serve``: a Flipkart categorizer (EfficientNet-Lite0 + MiniLM + TF-IDF) trained with the CLI, then
   ``serve_load.py`` (single-client latency, 20-client throughput, ``ready_s``);
4. ``predict``: ``predict_latency.py`` (single-product latency in a warm process, ``cli_predict_s``,
   ``skulens --help`` time);
5. ``loaded``: ``train_speed.py --only loaded`` (review training beside two busy processes / alone);
6. ``caption`` (issue 25): ``caption_speed.py`` (captioner training on Myntra's 7,448 training pairs with warm
   region maps, beam-3 captions/s on the 1,000 test rows beside the prefix-rescoring peer, BLEU interval);
7. ``align`` (issue 25): ``align_speed.py`` (alignment training on Myntra and on Myntra + myntra_more, warm
   cache, beside the dense-input peer, gallery R@10 intervals).

Before each part the 1-minute load average must fall to ``--max-load`` (default 1.5); the suite waits up
to ``--wait`` seconds for it (the previous part's own load decays in about a minute), then runs the part
anyway and marks it ``"quiet": false`` (``--strict``: skips it instead). Load at the start and end of
every part is recorded. The parts write their usual ``benchmarks/results/*.json|md``; this script adds
``speed_suite.{json,md}``: per part its command, exit status, seconds and loads, and the issue-14 target
numbers read back from the parts' results with met / missed. ``--quick`` runs tiny sizes into a scratch
results folder (it checks that everything runs; its numbers mean nothing).

    python benchmarks/speed_suite.py [--quick] [--only encode train serve predict loaded caption align] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("encode", "train", "serve", "predict", "loaded", "caption", "align")

#: Issue 14's numbers: (result file, key path, comparison, target).
TARGETS = {
    "images_per_s": ("encode_throughput.json", ("images_per_s",), ">=", 250),
    "titles_per_s": ("encode_throughput.json", ("text", "titles_per_s"), ">=", 600),
    "product_texts_per_s": ("encode_throughput.json", ("text", "product_texts_per_s"), ">=", 100),
    "flipkart_level0_benchmark_warm_s": ("train_speed.json", ("flipkart_level0_benchmark_warm_s",), "<=", 60),
    "reviews_train_s": ("train_speed.json", ("reviews_train_s",), "<=", 20),
    "myntra_text_train_s": ("train_speed.json", ("myntra_text_train_s",), "<=", 10),
    "loaded_slowdown": ("train_speed.json", ("loaded_slowdown",), "<=", 3),
    "single_p50_ms": ("serve_load.json", ("single_p50_ms",), "<=", 25),
    "single_p99_ms": ("serve_load.json", ("single_p99_ms",), "<=", 80),
    "concurrent_rps": ("serve_load.json", ("concurrent_rps",), ">=", 60),
    "concurrent_p99_ms": ("serve_load.json", ("concurrent_p99_ms",), "<=", 600),
    "serve_errors": ("serve_load.json", ("errors",), "<=", 0),
    "ready_s": ("serve_load.json", ("ready_seconds",), "<=", 5),
    "cli_predict_s": ("predict_latency.json", ("cli_predict_s",), "<=", 3),
    "cli_help_s": ("predict_latency.json", ("cli_help_s",), "<", 1),
    # issue 25
    "caption_train_s": ("caption_speed.json", ("caption_train_s",), "<=", 180),
    "caption_beam3_per_s": ("caption_speed.json", ("caption_beam3_per_s",), ">=", 40),
    "align_train_s": ("align_speed.json", ("align_train_s",), "<=", 45),
    "align_train_43k_s": ("align_speed.json", ("align_train_43k_s",), "<=", 300),
}
#: Parity checks read back: (result file, key path), each must be true.
PARITY = {
    "flipkart_macro_f1_fast_vs_slow_within_0_005": (
        "train_speed.json",
        ("details", "flipkart_level0_benchmark_warm_s", "macro_f1_fast_vs_slow", "within_0_005"),
    ),
    "reviews_macro_f1_fast_vs_slow_within_0_005": (
        "train_speed.json",
        ("details", "reviews_train_s", "macro_f1_fast_vs_slow", "within_0_005"),
    ),
    "myntra_macro_f1_fast_vs_slow_within_0_005": (
        "train_speed.json",
        ("details", "myntra_text_train_s", "macro_f1_fast_vs_slow", "within_0_005"),
    ),
    "myntra_macro_f1_fast_vs_converged_within_0_005": (
        "train_speed.json",
        ("details", "myntra_text_train_s", "macro_f1_fast_vs_converged", "within_0_005"),
    ),
    "caption_bleu_reference_within_interval": ("caption_speed.json", ("reference", "bleu_within_this_interval")),
    "caption_peer_same_titles": ("caption_speed.json", ("peer", "same_titles")),
    "align_peer_r10_within_interval": ("align_speed.json", ("peer", "r10_within_interval")),
}


def cpu_description() -> str:
    """The CPU model and its vector extensions (speeds differ by about 2x between hosts with and without AVX-512)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = sorted({f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")})
    return f"{model} ({', '.join(vector) or 'no AVX2'})"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet(max_load: float, wait_s: float) -> tuple[float, float]:
    """Poll the 1-minute load average until it is <= ``max_load`` or ``wait_s`` passed: (load, seconds waited)."""
    started = time.perf_counter()
    while load() > max_load and time.perf_counter() - started < wait_s:
        time.sleep(5)
    return load(), round(time.perf_counter() - started, 1)


def part_commands(part: str, quick: bool, results: Path, work: Path) -> list[list[str]]:
    """The commands of one part (run in order; the last one is the measurement)."""
    py = [sys.executable]
    if part == "encode":
        sizes = ["--limit", "32", "--repeats", "1", "--text-limit", "32"] if quick else ["--limit", "256", "--repeats", "2"]
        return [[*py, str(HERE / "encode_throughput.py"), *sizes, "--out", str(results)]]
    if part == "train":
        only = ["--only", "flipkart", "reviews", "myntra", "--converged", "myntra"]
        return [
            [*py, str(HERE / "train_speed.py"), *only, "--work", str(work / "train"), "--results", str(results)]
            + (["--quick", "--no-warmup"] if quick else [])
        ]
    if part == "loaded":
        return [
            [*py, str(HERE / "train_speed.py"), "--only", "loaded", "--work", str(work / "loaded"), "--results", str(results)]
            + (["--quick"] if quick else [])
        ]
    if part == "caption":
        sizes = ["--limit", "400", "--epochs", "1", "--peer-rows", "20", "--resamples", "50"] if quick else []
        return [[*py, str(HERE / "caption_speed.py"), *sizes, "--out", str(results)]]
    if part == "align":
        sizes = ["--limit", "400"] if quick else []
        return [[*py, str(HERE / "align_speed.py"), *sizes, "--out", str(results)]]
    if part == "serve":
        model = work / "models" / "flipkart-categorizer"
        train = [
            *py,
            "-m",
            "skulens.cli.main",
            "categorize",
            "train",
            "flipkart",
            "--label",
            "0",
            "--no-track",
            "--out",
            str(model),
        ]
        train += ["-e", "efficientnet-lite0", "-e", "minilm", "-e", "tfidf"]
        seconds = (
            ["--single-seconds", "3", "--concurrent-seconds", "3"]
            if quick
            else ["--single-seconds", "15", "--concurrent-seconds", "20"]
        )
        load_run = [
            *py,
            str(HERE / "serve_load.py"),
            "--models",
            str(work / "models"),
            *seconds,
            "--out",
            str(results / "serve_load.json"),
        ]
        return [train, load_run]
    if part == "predict":
        sizes = ["--predictions", "40", "--window", "5"] if quick else ["--predictions", "300", "--window", "30"]
        return [[*py, str(HERE / "predict_latency.py"), *sizes, "--out", str(results)]]
    raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")


def run_part(part: str, commands: list[list[str]], log: Path, max_load: float, wait_s: float, strict: bool) -> dict:
    """Wait for a quiet machine, run the part's commands (output to ``log``), and record loads and seconds."""
    load_before, waited = wait_for_quiet(max_load, wait_s)
    entry = {
        "commands": [shlex.join(c) for c in commands],
        "load_start": load_before,
        "waited_s": waited,
        "quiet": load_before <= max_load,
    }
    if strict and not entry["quiet"]:
        print(f"[{part}] skipped: load {load_before} > {max_load} after waiting {waited}s", flush=True)
        return {**entry, "skipped": True}
    print(f"[{part}] load {load_before} (waited {waited}s); log: {log}", flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    with open(log, "w") as handle:
        for command in commands:
            handle.write(f"$ {shlex.join(command)}\n")
            handle.flush()
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
            entry["returncode"] = done.returncode
            if done.returncode != 0:
                break
    entry.update(seconds=round(time.perf_counter() - started, 1), load_end=load())
    status = "ok" if entry["returncode"] == 0 else f"FAILED ({entry['returncode']}; see {log})"
    print(f"[{part}] {status} in {entry['seconds']}s, load at end {entry['load_end']}", flush=True)
    return entry


def _lookup(results: Path, file: str, path: tuple[str, ...]):
    try:
        node = json.loads((results / file).read_text())
    except (OSError, ValueError):
        return None
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _met(value, op: str, target: float) -> bool | None:
    if not isinstance(value, int | float):
        return None
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[op]


def targets(results: Path) -> dict:
    out = {}
    for name, (file, path, op, target) in TARGETS.items():
        value = _lookup(results, file, path)
        out[name] = {"value": value, "target": f"{op} {target}", "met": _met(value, op, target), "from": file}
    for name, (file, path) in PARITY.items():
        value = _lookup(results, file, path)
        out[name] = {"value": value, "target": "true", "met": None if value is None else bool(value), "from": file}
    return out


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        "# Speed suite (issue 14)",
        "",
        f"`{report['command']}`; {report['started']} to {report['finished']}, {report['seconds']} s; "
        f"{report['cores']} cores ({report.get('cpu', 'CPU not recorded')}); quiet means 1-minute load <= {report['max_load']} at the start of a part."
        + (" **Quick run: tiny sizes, the numbers mean nothing.**" if report["quick"] else ""),
        "",
        "| part | seconds | load start / end | quiet | status |",
        "|---|---:|---|---|---|",
    ]
    for name, entry in report["parts"].items():
        status = "skipped (load)" if entry.get("skipped") else ("ok" if entry.get("returncode") == 0 else "FAILED")
        lines.append(
            f"| {name} | {entry.get('seconds', '-')} | {entry['load_start']} / {entry.get('load_end', '-')} | "
            f"{'yes' if entry['quiet'] else 'NO'} | {status} |"
        )
    lines += ["", "| target | value | wanted | met |", "|---|---:|---|---|"]
    for name, entry in report["targets"].items():
        met = {True: "yes", False: "**no**", None: "not measured"}[entry["met"]]
        lines.append(f"| {name} | {entry['value']} | {entry['target']} | {met} |")
    lines += ["", "Each part's own JSON (same folder) has its command, machine and loads."]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=list(PARTS), choices=PARTS, help="parts to run (default: all, in order)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes into a scratch results folder (a smoke test)")
    parser.add_argument("--max-load", type=float, default=1.5, help="1-minute load average a part waits for (default 1.5)")
    parser.add_argument("--wait", type=float, default=90, help="seconds to wait for that load before each part (default 90)")
    parser.add_argument("--strict", action="store_true", help="skip a part when the load stays high (default: run it, flagged)")
    parser.add_argument(
        "--results", type=Path, default=None, help="results folder (default: benchmarks/results; --quick: scratch)"
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for models and logs (default: a temporary one)")
    options = parser.parse_args()
    work = options.work or Path(tempfile.mkdtemp(prefix="skulens-speed-suite-"))
    results = options.results or (work / "results" if options.quick else RESULTS)
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    wait_s = min(options.wait, 10) if options.quick else options.wait
    report = {
        "command": shlex.join(["python", "benchmarks/speed_suite.py", *sys.argv[1:]]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_start": load(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu_description(),
        "max_load": options.max_load,
        "quick": options.quick,
        "work": str(work),
        "parts": {},
    }
    started = time.perf_counter()
    for part in [p for p in PARTS if p in options.only]:
        commands = part_commands(part, options.quick, results, work)
        report["parts"][part] = run_part(part, commands, work / f"{part}.log", options.max_load, wait_s, options.strict)
    report.update(
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 1),
        load_end=load(),
        targets=targets(results),
    )
    report["all_quiet"] = all(p["quiet"] for p in report["parts"].values())
    (results / "speed_suite.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, results / "speed_suite.md")
    print((results / "speed_suite.md").read_text())
    failed = [name for name, p in report["parts"].items() if p.get("returncode", 0) != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
