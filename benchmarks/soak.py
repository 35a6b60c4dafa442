"""Soak test: many clients send a mix of valid requests for a while; errors and memory growth recorded.

Starts the service (the models of benchmarks/reliability_service.py) in a child process and runs
``--clients`` threads, each looping over: categorize with a Flipkart photo + title, categorize from the
title only, a batch of 4 products, and reviews of 4 texts. Every answer must be a 200. Memory is read
after a warm-up (``--warm-up`` seconds; allocator pools fill then) and at the end; the growth between
the two is ``soak_rss_growth_mb``. Writes ``soak_*`` numbers into benchmarks/results/reliability.json.

    OMP_NUM_THREADS=1 python benchmarks/soak.py --clients 20 --seconds 240
"""

from __future__ import annotations

import argparse
import base64
import sys
import threading
import time
from collections import Counter

import httpx
import numpy as np
from reliability_results import update_results
from reliability_service import ROOT, Service, products, review_texts, train_models

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"


def client_loop(
    url: str, seed: int, stop: threading.Event, items: list, texts: list[str], out: dict, lock: threading.Lock
) -> None:
    rng = np.random.default_rng(seed)
    kinds = ("image_and_title", "title_only", "batch", "reviews")
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            kind = kinds[int(rng.integers(len(kinds)))]
            data, name, title = items[int(rng.integers(len(items)))]
            started = time.perf_counter()
            try:
                if kind == "image_and_title":
                    response = client.post("/v1/categorize", files={"image": (name, data, "image/jpeg")}, data={"title": title})
                elif kind == "title_only":
                    response = client.post("/v1/categorize", data={"title": title, "model": "flipkart-text"})
                elif kind == "batch":
                    chosen = [items[int(i)] for i in rng.integers(len(items), size=4)]
                    products_in = [{"id": n, "title": t, "image_base64": base64.b64encode(d).decode()} for d, n, t in chosen]
                    response = client.post("/v1/categorize/batch", json={"products": products_in})
                else:
                    response = client.post(
                        "/v1/reviews", json={"texts": [texts[int(i)] for i in rng.integers(len(texts), size=4)]}
                    )
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            with lock:
                out["statuses"][f"{kind}:{status}"] += 1
                out["latency"].append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=600.0, help="How long the clients run (the issue asks 10 minutes).")
    parser.add_argument("--warm-up", type=float, default=30.0, help="Seconds before the baseline memory reading.")
    args = parser.parse_args()
    models = train_models()
    items, texts = products(64), review_texts(200)
    service = Service(models)
    out = {"statuses": Counter(), "latency": []}
    lock, stop = threading.Lock(), threading.Event()
    start_memory = service.memory_mb()
    threads = [
        threading.Thread(target=client_loop, args=(service.url, seed, stop, items, texts, out, lock), daemon=True)
        for seed in range(args.clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    samples = []
    try:
        time.sleep(args.warm_up)
        baseline = service.memory_mb()
        while time.perf_counter() - started < args.seconds:
            time.sleep(5)
            samples.append(service.memory_mb()["rss_mb"])
        stop.set()
        for thread in threads:
            thread.join(180)
        end = service.memory_mb()
        alive = service.alive()
    finally:
        log = service.stop()
    statuses = dict(out["statuses"])
    requests = sum(statuses.values())
    errors = sum(n for key, n in statuses.items() if not key.endswith(":200"))
    latency = np.array(out["latency"]) * 1000
    growth = round(end["rss_mb"] - baseline["rss_mb"], 1)
    print(f"{requests} requests, {errors} errors, RSS {baseline['rss_mb']} -> {end['rss_mb']} MB (growth {growth} MB)")
    update_results(
        RESULTS,
        {
            "soak_requests": requests,
            "soak_errors": errors,
            "soak_rss_growth_mb": growth,
            "soak_seconds": args.seconds,
            "soak_clients": args.clients,
            "soak_detail": {
                "statuses": statuses,
                "rss_start_mb": start_memory["rss_mb"],
                "rss_after_warm_up_mb": baseline["rss_mb"],
                "rss_end_mb": end["rss_mb"],
                "peak_rss_mb": end["peak_rss_mb"],
                "rss_samples_mb": samples,
                "latency_ms": {
                    "p50": round(float(np.percentile(latency, 50)), 1),
                    "p99": round(float(np.percentile(latency, 99)), 1),
                },
                "server_alive_after": alive,
                "server_log_tracebacks": log.count("Traceback"),
                "warm_up_seconds": args.warm_up,
            },
        },
        "soak",
        "OMP_NUM_THREADS=1 python benchmarks/soak.py " + " ".join(sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
