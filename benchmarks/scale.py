"""Scale benchmark: rows/s of the local and Ray engines, peak memory of a 1,000,000-row run, a 2-node Ray.

Reads the synthetic catalog of ``benchmarks/make_scale_catalog.py`` (``--catalog``, outside the repo) and
runs the ``skulens`` command line in subprocesses, one thread per model (``SKULENS_THREADS=1``):

- ``text``: ``skulens embed`` with MiniLM (ONNX) on the first ``--text-slice`` rows of ``text.csv``,
  local engine vs ``--engine ray --ray-cpus 2`` (a local Ray: one CPU reads, one encoding actor), cache off;
- ``image``: the same with EfficientNet-Lite0 on the first ``--image-slice`` rows of ``images.parquet``;
- ``million``: ``skulens categorize predict`` with a TF-IDF categorizer (trained on Flipkart level 0)
  over all rows of ``text.csv`` on the local engine: the bounded-memory run (peak RSS of the process);
- ``two_node``: the text slice on a Ray head started with ``ray start --head --num-cpus 2`` alone (one
  encoding actor), then with a second node joined (``ray start --address ... --num-cpus 1``: a second
  actor): the speed-up of adding a node;
- ``fixed_cost``: both embeddings on a ``--small-slice`` slice, for the engines' fixed cost and the
  marginal rows/s (large slice minus small slice).

Rows/s is rows written / the engine's own seconds (after Ray is up); ``wall_s`` includes starting
Python, loading models and, for Ray, starting the local cluster. The load average is recorded before and
after each run: on a shared machine the numbers move with it. Results merge into
``benchmarks/results/scale.{json,md}`` (``--runs`` picks which to run).

    python benchmarks/make_scale_catalog.py --out /tmp/skulens-scale
    python benchmarks/scale.py --catalog /tmp/skulens-scale
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skulens.engines import read_output, read_vectors  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PYTHON = sys.executable
RUNS = ("text", "image", "million", "two_node", "fixed_cost")
PORT = 6391
NOTES = [
    "Notes:",
    "",
    "- Ray rows/s include starting the encoding actor and loading the model in it; the local engine's include its own model load.",
    "- The marginal rows/s (large minus small slice) are not reliable here: on this loaded machine the fixed cost (actor start) "
    "varied between runs by more than the encoding time, which is what makes Ray look faster than local in that table.",
    "- The 1,000,000-row run uses the cheapest categorizer the CLI offers (TF-IDF + logistic regression); a MiniLM pass over "
    "1M rows (hours here) and the 50,000-row image run were not run: the image and text rates come from 1,000-row slices.",
    "- The 2-node cluster runs both nodes on the same 2 cores, shared with other jobs: it shows a second node taking work, "
    "not what a second machine gains.",
]


def _env() -> dict:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "SKULENS_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "SKULENS_NO_TRACK": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            # Ray runs its workers at nice 15; on this machine, busy with other jobs at nice 0, that alone would
            # slow the Ray engine. Same priority as the local engine, so the comparison is like for like.
            "RAY_worker_niceness": "0",
        }
    )
    return env


def skulens(args: list[str], env: dict) -> dict:
    """Run ``skulens ARGS``; wall seconds, peak RSS (MB) of the process and the load average around it."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "-m", "skulens.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"skulens {' '.join(args)} failed:\n{output[-3000:]}")
    return {
        "command": "skulens " + " ".join(args),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def with_manifest(run: dict, out: Path, rows_in: int) -> dict:
    manifest = json.loads((out / "_manifest.json").read_text())
    rows_out = manifest["rows_out"]
    run.update(
        {
            "engine": manifest["engine"],
            "rows_in": rows_in,
            "rows_out": rows_out,
            "rows_out_equals_rows_in": rows_out == rows_in,
            "engine_s": manifest["seconds"],
            "rows_per_s": round(rows_out / manifest["seconds"], 1),
        }
    )
    return run


def text_slice(catalog: Path, rows: int, work: Path) -> Path:
    path = work / f"text_{rows}.csv"
    if not path.exists():
        reader = pacsv.open_csv(catalog / "text.csv")
        batches, have = [], 0
        for batch in reader:
            batches.append(batch)
            have += batch.num_rows
            if have >= rows:
                break
        pacsv.write_csv(pa.Table.from_batches(batches).slice(0, rows), path)
    return path


def image_slice(catalog: Path, rows: int, work: Path) -> Path:
    path = work / f"images_{rows}.parquet"
    if not path.exists():
        pq.write_table(pq.read_table(catalog / "images.parquet").slice(0, rows), path)
    return path


def image_roots() -> list[str]:
    """``--image-root`` for the folders of the reused photos (the synthetic catalog names them by absolute path)."""
    from skulens.catalog import data_root

    return [arg for name in ("myntra", "flipkart") for arg in ("--image-root", str(data_root() / name / "images"))]


def embed_pair(data: Path, encoder: str, rows: int, work: Path, env: dict, name: str) -> dict:
    """The same embedding on both engines, and how far their vectors are apart."""
    result = {}
    for engine in ("local", "ray"):
        out = work / f"{name}_{engine}"
        args = ["embed", str(data), "-e", encoder, "--parquet", "--no-cache", "-o", str(out), *image_roots()]
        if engine == "ray":
            args += ["--engine", "ray", "--ray-cpus", "2"]  # one CPU reads, one runs the encoding actor
        result[engine] = with_manifest(skulens(args, env), out, rows)
        present = sum(read_output(out, columns=["present"]).column("present").to_pylist())
        result[engine]["rows_embedded"] = present  # rows with something encoded (not refused, not empty)
        if present < rows * 0.9:
            raise SystemExit(f"{name} {engine}: only {present} of {rows} rows were embedded; see the issue column in {out}")
        print(name, engine, result[engine], flush=True)
    # Ray writes its parts in the order its blocks finish: compare the two outputs row by row in id order
    a, b = (read_output(work / f"{name}_{engine}").sort_by("id") for engine in ("local", "ray"))
    result["same_ids"] = a.column("id").to_pylist() == b.column("id").to_pylist()
    result["max_abs_vector_diff"] = float(np.abs(read_vectors(a) - read_vectors(b)).max())
    result["ray_vs_local_rows_per_s"] = round(result["ray"]["rows_per_s"] / result["local"]["rows_per_s"], 3)
    return result


def million(catalog: Path, work: Path, env: dict) -> dict:
    model = work / "tfidf-model"
    if not (model / "config.json").exists():
        skulens(
            [
                "categorize",
                "train",
                "flipkart",
                "--label",
                "0",
                "-e",
                "tfidf",
                "--test-size",
                "0",
                "--no-track",
                "-o",
                str(model),
            ],
            env,
        )
    rows = json.loads((catalog / "catalog.json").read_text())["text_rows"]
    out = work / "million_local"
    run = skulens(["categorize", "predict", str(model), "-i", str(catalog / "text.csv"), "--output", str(out), "-k", "1"], env)
    run = with_manifest(run, out, rows)
    run["encoder"] = "tfidf (categorizer trained on Flipkart level 0)"
    run["peak_rss_within_4096_mb"] = run["peak_rss_mb"] <= 4096
    print("million", run, flush=True)
    return run


def _ray_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    ray = str(Path(PYTHON).with_name("ray"))
    return subprocess.Popen([ray, "start", *args, "--block"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait_for_cpus(address: str, cpus: int, env: dict) -> None:
    probe = (
        f"import ray, time\nray.init(address='{address}')\nwhile ray.cluster_resources().get('CPU', 0) < {cpus}: time.sleep(1)"
    )
    subprocess.run([PYTHON, "-c", probe], env=env, check=True, timeout=300, capture_output=True)


def two_node(data: Path, rows: int, work: Path, env: dict) -> dict:
    """A Ray head with 2 CPUs (one reads, one encoding actor), then a second 1-CPU node joined (a second actor):
    rows/s of the text slice on each."""
    env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    address = f"127.0.0.1:{PORT}"
    head = ["--head", "--port", str(PORT), "--num-cpus", "2", "--include-dashboard", "false"]
    nodes = [_ray_node(head, env, work / "head.log")]
    result: dict = {
        "cluster": "ray start --head --num-cpus 2 (one reader + one encoding actor), then ray start --address "
        "127.0.0.1:6391 --num-cpus 1 (a second encoding actor); both nodes on this 2-core machine"
    }
    try:
        _wait_for_cpus(address, 2, env)
        for label, cpus in (("one_node", 2), ("two_nodes", 3)):
            if cpus == 3:
                nodes.append(_ray_node(["--address", address, "--num-cpus", "1"], env, work / "worker.log"))
                _wait_for_cpus(address, 3, env)
            out = work / f"cluster_{label}"
            args = ["embed", str(data), "-e", "minilm", "--parquet", "--no-cache", "-o", str(out), "--engine", "ray"]
            result[label] = with_manifest(skulens([*args, "--ray-address", address], env), out, rows)
            print(label, result[label], flush=True)
    finally:
        for node in reversed(nodes):  # SIGTERM: `ray start --block` stops the processes of its own node
            node.terminate()
            node.wait(timeout=120)
    result["speed_up"] = round(result["two_nodes"]["rows_per_s"] / result["one_node"]["rows_per_s"], 3)
    return result


def write_markdown(data: dict, path: Path) -> None:
    lines = [
        "# Scale: local and Ray engines",
        "",
        f"Last command: `{data.get('command', '')}` (each run's own in `scale.json`)",
        "",
    ]
    lines += [f"Machine: {data.get('machine', '')}", ""]
    lines += ["| run | engine | rows in | rows out | engine s | rows/s | wall s | peak RSS MB (driver) | load before → after |"]
    lines += ["|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, run: dict) -> None:
        load = f"{run['load_before'][0]} → {run['load_after'][0]}"
        lines.append(
            f"| {name} | {run['engine']} | {run['rows_in']:,} | {run['rows_out']:,} | {run['engine_s']} | {run['rows_per_s']:,} "
            f"| {run['wall_s']} | {run['peak_rss_mb']:,} | {load} |"
        )

    for key, label in (("text", "MiniLM embed"), ("image", "EfficientNet-Lite0 embed")):
        if key in data:
            row(f"{label}, local", data[key]["local"])
            row(f"{label}, Ray (1 actor)", data[key]["ray"])
    if "million" in data:
        row("1,000,000-row TF-IDF categorize predict", data["million"])
    if "two_node" in data:
        row("MiniLM embed, Ray 1 node (1 actor)", data["two_node"]["one_node"])
        row("MiniLM embed, Ray 2 nodes (2 actors)", data["two_node"]["two_nodes"])
    lines.append("")
    for key in ("text", "image"):
        if key in data:
            d = data[key]
            lines.append(
                f"- {key}: Ray/local rows/s {d['ray_vs_local_rows_per_s']}; same ids {d['same_ids']}; "
                f"largest vector difference {d['max_abs_vector_diff']:.2e}"
            )
    if "fixed_cost" in data:
        f = data["fixed_cost"]
        lines.append("")
        lines.append(
            f"Fixed cost (the same runs on {f['rows']} rows) and marginal rows/s (large − small slice, fixed cost left out):"
        )
        lines.append("")
        lines.append("| embedding | engine | engine s on the small slice | marginal rows/s |")
        lines.append("|---|---|---|---|")
        for key in ("text", "image"):
            for engine in ("local", "ray"):
                run = f[key][engine]
                lines.append(f"| {key} | {engine} | {run['engine_s']} | {run.get('marginal_rows_per_s')} |")
        lines.append("")
        for key in ("text", "image"):
            lines.append(f"- {key}: Ray/local marginal rows/s {f[key].get('ray_vs_local_marginal')}")
    if "two_node" in data:
        lines.append(f"- 2-node speed-up (rows/s, 2 nodes / 1 node): {data['two_node']['speed_up']}")
    if "million" in data:
        m = data["million"]
        lines.append(
            f"- 1M-row run: peak RSS {m['peak_rss_mb']:,} MB (≤ 4,096: {m['peak_rss_within_4096_mb']}); rows out = rows in: {m['rows_out_equals_rows_in']}"
        )
    lines += ["", *data.get("notes", [])]
    path.write_text("\n".join(lines) + "\n")


def fixed_cost(catalog: Path, rows: int, work: Path, env: dict, data: dict) -> dict:
    """Both embeddings again on a ``rows``-row slice: the engines' fixed cost (start-up, model load) and the
    marginal rows/s between the small and the large slice, which leaves the fixed cost out."""
    result = {
        "text": embed_pair(text_slice(catalog, rows, work), "minilm", rows, work, env, "text_small"),
        "image": embed_pair(image_slice(catalog, rows, work), "efficientnet-lite0", rows, work, env, "image_small"),
        "rows": rows,
    }
    for key in ("text", "image"):
        if key not in data:
            continue
        for engine in ("local", "ray"):
            big, small = data[key][engine], result[key][engine]
            extra = big["engine_s"] - small["engine_s"]
            result[key][engine]["marginal_rows_per_s"] = (
                round((big["rows_out"] - small["rows_out"]) / extra, 1) if extra > 0 else None
            )
        local, ray = result[key]["local"]["marginal_rows_per_s"], result[key]["ray"]["marginal_rows_per_s"]
        result[key]["ray_vs_local_marginal"] = round(ray / local, 3) if local and ray else None
    return result


def summarise(data: dict) -> None:
    """The headline keys: rows/s per engine, peak RSS of the 1M-row run."""
    for key in ("text", "image"):
        if key in data:
            data[f"{key}_rows_per_s"] = {e: data[key][e]["rows_per_s"] for e in ("local", "ray")}
    if "million" in data:
        data["peak_rss_mb"] = data["million"]["peak_rss_mb"]
        data["rows_out_equals_rows_in"] = data["million"]["rows_out_equals_rows_in"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/skulens-scale"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/skulens-scale/work"))
    parser.add_argument("--text-slice", type=int, default=2000)
    parser.add_argument("--image-slice", type=int, default=1000)
    parser.add_argument("--small-slice", type=int, default=64, help="rows of the fixed-cost runs")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated: {', '.join(RUNS)}")
    args = parser.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = set(runs) - set(RUNS)
    if unknown:
        raise SystemExit(f"unknown runs {sorted(unknown)}; choose from {', '.join(RUNS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    env = _env()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "scale.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if runs:
        data["command"] = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
    data["notes"] = NOTES
    data["machine"] = f"{os.cpu_count()} CPU cores shared with other jobs; one model thread per process/actor"
    steps = {
        "text": lambda: embed_pair(
            text_slice(args.catalog, args.text_slice, args.work), "minilm", args.text_slice, args.work, env, "text"
        ),
        "image": lambda: embed_pair(
            image_slice(args.catalog, args.image_slice, args.work),
            "efficientnet-lite0",
            args.image_slice,
            args.work,
            env,
            "image",
        ),
        "million": lambda: million(args.catalog, args.work, env),
        "two_node": lambda: two_node(text_slice(args.catalog, args.text_slice, args.work), args.text_slice, args.work, env),
        "fixed_cost": lambda: fixed_cost(args.catalog, args.small_slice, args.work, env, data),
    }
    for name in runs:  # saved after each run: a later failure keeps what was measured
        data[name] = {**steps[name](), "invoked_as": data["command"]}
        summarise(data)
        path.write_text(json.dumps(data, indent=2) + "\n")
        write_markdown(data, RESULTS / "scale.md")
    path.write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(data, RESULTS / "scale.md")
    print(f"wrote {path} and {RESULTS / 'scale.md'}")


if __name__ == "__main__":
    main()
