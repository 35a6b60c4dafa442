"""Encoding throughput of the default image and text encoders on the real Flipkart / Myntra data.

Images: images/s for ``skulens.embed.embed_catalog`` (read file, decode, resize, encode; no cache)
against a naive one-image-at-a-time PyTorch loop, plus the network alone on ready batches.
Text: MiniLM titles/s (Myntra product names) and product texts/s (Flipkart title + description, up to
256 tokens) for the default encoder (ONNX Runtime, length buckets) and its int8 variant, against the
sentence-transformers PyTorch reference measured in the same run. The 1-minute load average is recorded
at start and end. Writes (merges into) ``benchmarks/results/encode_throughput.{json,md}``.

    python benchmarks/encode_throughput.py [--limit 256] [--repeats 3] [--only image text]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from skulens.catalog import Catalog, CatalogError, decode_image, load_catalog
from skulens.embed import embed_catalog
from skulens.encoders import create_encoder
from skulens.encoders.image import EfficientNetLiteEncoder
from skulens.threads import available_cores, thread_budget

ENCODER = "efficientnet-lite0"
RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "thread_budget": thread_budget(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def timed_runs(run: Callable[[], int], repeats: int) -> dict[str, object]:
    """Images/s of ``repeats`` calls of ``run`` (which returns the images it processed): best, median,
    each run, and the least CPU time (all threads) per image, which varies less on a shared machine."""
    rates, cpu_ms = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        count = run()
        rates.append(count / (time.perf_counter() - start))
        cpu_ms.append((time.process_time() - cpu) / count * 1e3)
    return {
        "best": round(max(rates), 2),
        "median": round(statistics.median(rates), 2),
        "runs": [round(r, 2) for r in rates],
        "cpu_ms_per_image": round(min(cpu_ms), 2),
    }


def naive_features(catalog: Catalog, model: torch.nn.Module, size: int) -> np.ndarray:
    """One image at a time: open, RGB, resize, normalise, ``features`` on a batch of one."""
    out = []
    with torch.inference_mode():
        for path in catalog.frame["image"]:
            image = Image.open(catalog.root / path).convert("RGB").resize((size, size), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
            out.append(model.features(x)[0].numpy())
    return np.stack(out)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def text_rates(texts: list[str], repeats: int) -> dict[str, object]:
    """Texts/s of the default MiniLM (ONNX), its int8 variant and the PyTorch reference on ``texts``."""
    encoders = {
        "onnx": create_encoder("minilm"),
        "onnx_int8": create_encoder("minilm", quantize=True),
        "torch_reference": create_encoder("minilm", backend="torch"),
    }
    for encoder in encoders.values():
        encoder.encode(texts[:8])  # warm-up
    vectors = {name: encoder.encode(texts) for name, encoder in encoders.items()}
    out: dict[str, object] = {name: {"identity": e.identity} for name, e in encoders.items()}
    for name, encoder in encoders.items():
        out[name]["rates"] = timed_runs(lambda e=encoder: len(e.encode(texts)), repeats)
    reference = vectors["torch_reference"]
    out["cosine_onnx_vs_torch_min"] = round(float(cosines(vectors["onnx"], reference).min()), 6)
    out["cosine_int8_vs_torch_min"] = round(float(cosines(vectors["onnx_int8"], reference).min()), 4)
    out["cosine_int8_vs_torch_mean"] = round(float(cosines(vectors["onnx_int8"], reference).mean()), 4)
    return out


def measure_text(limit: int, repeats: int) -> dict[str, object]:
    """``titles_per_s`` (Myntra product names) and ``product_texts_per_s`` (Flipkart title + description)."""
    titles = [t for t in load_catalog("myntra").texts(("title",)) if t.strip()][:limit]
    products = [t for t in load_catalog("flipkart").texts(("title", "description")) if t.strip()][: max(limit // 4, 32)]
    result: dict[str, object] = {"titles": len(titles), "product_texts": len(products)}
    for key, texts in (("titles", titles), ("product_texts", products)):
        rates = text_rates(texts, repeats)
        result[f"{key}_per_s"] = rates["onnx"]["rates"]["best"]
        result[f"naive_{key}_per_s"] = rates["torch_reference"]["rates"]["best"]
        result[f"int8_{key}_per_s"] = rates["onnx_int8"]["rates"]["best"]
        result[f"{key}_detail"] = rates
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=256, help="images to encode per run (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method (default 3)")
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"], help="encoder backend")
    parser.add_argument("--batch-size", type=int, default=None, help="encoder batch size (default: encoder's)")
    parser.add_argument("--workers", type=int, default=2, help="decode threads of embed_catalog (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--only", nargs="+", default=["image", "text"], choices=["image", "text"], help="what to measure")
    parser.add_argument("--text-limit", type=int, default=512, help="titles per run (product texts: a quarter)")
    args = parser.parse_args()
    target = args.out / "encode_throughput.json"
    result = json.loads(target.read_text()) if target.exists() else {}
    result.update(load_start=round(os.getloadavg()[0], 2), command=shlex.join(sys.orig_argv))
    if "text" in args.only:
        try:
            result["text"] = measure_text(args.text_limit, args.repeats)
        except CatalogError as exc:
            print(f"text skipped: a dataset is not available ({exc})")
        else:
            for key in ("titles_per_s", "naive_titles_per_s", "product_texts_per_s", "naive_product_texts_per_s"):
                result[key] = result["text"][key]
            print({k: v for k, v in result["text"].items() if not k.endswith("detail")})
    if "image" in args.only:
        result.update(measure_images(args))
    result.update(load_end=round(os.getloadavg()[0], 2), date=datetime.now(UTC).isoformat(timespec="seconds"))
    result["quiet_machine"] = result["load_start"] <= 1.5 and result["load_end"] <= 1.5
    args.out.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "encode_throughput.md").write_text(markdown(result))
    print(f"results in {args.out}")
    return 0


def measure_images(args: argparse.Namespace) -> dict[str, object]:
    """The image measurements (keys of the JSON's top level)."""

    try:
        catalog = load_catalog("flipkart")
    except CatalogError as exc:
        print(f"images skipped: the Flipkart dataset is not available ({exc})")
        return {}
    rows = [i for i, p in enumerate(catalog.frame["image"]) if isinstance(p, str) and (catalog.root / p).is_file()]
    catalog = catalog.subset(rows[: args.limit])
    n = len(catalog)

    start = time.perf_counter()
    encoder = create_encoder(ENCODER, backend=args.backend)
    setup_s = time.perf_counter() - start
    if args.batch_size:
        encoder.batch_size = args.batch_size
    print(f"{ENCODER} ({encoder.identity}, backend {encoder.backend}, batch {encoder.batch_size}): {n} images")

    def end_to_end() -> int:
        return embed_catalog(catalog, encoder, use_cache=False, workers=args.workers).encoded

    embed_catalog(catalog.head(encoder.batch_size), encoder, use_cache=False)  # warm-up
    e2e = timed_runs(end_to_end, args.repeats)
    print(f"end to end: {e2e} images/s")

    embeddings = embed_catalog(catalog, encoder, use_cache=False, workers=args.workers)
    images = [decode_image((catalog.root / p).read_bytes(), p, draft_size=encoder.resolution) for p in catalog.frame["image"]]
    pixels = encoder.pixels(images)
    batches = [pixels[i : i + encoder.batch_size] for i in range(0, n, encoder.batch_size)]
    forward = timed_runs(lambda: sum(len(encoder.encode(b)) for b in batches), args.repeats)
    print(f"forward only ({encoder.backend}): {forward} images/s")

    int8 = int8_rates(catalog, batches, args, embeddings.vectors)

    reference = EfficientNetLiteEncoder("lite0", backend="torch")
    reference_vectors = np.concatenate([reference.encode(b) for b in batches])
    forward_torch = timed_runs(lambda: sum(len(reference.encode(b)) for b in batches), args.repeats)
    print(f"forward only (torch, channels_last): {forward_torch} images/s")

    naive_model = reference.model.to(memory_format=torch.contiguous_format)
    naive_vectors: list[np.ndarray] = []

    def naive() -> int:
        naive_vectors[:] = [naive_features(catalog, naive_model, encoder.resolution)]
        return n

    naive_rates = timed_runs(naive, args.repeats)
    print(f"naive loop: {naive_rates} images/s")

    vs_torch = cosines(embeddings.vectors, reference_vectors)
    vs_naive = cosines(embeddings.vectors, naive_vectors[0])
    result = {
        "encoder": encoder.identity,
        "backend": encoder.backend,
        "batch_size": encoder.batch_size,
        "workers": args.workers,
        "limit": args.limit,
        "images": n,
        "repeats": args.repeats,
        "images_per_s": e2e["best"],
        "naive_images_per_s": naive_rates["best"],
        "speedup": round(e2e["best"] / naive_rates["best"], 2),
        "end_to_end": e2e,
        "naive": naive_rates,
        "forward_only": forward,
        "forward_only_torch": forward_torch,
        "encoder_setup_s": round(setup_s, 2),
        **int8,
        "cosine_vs_torch_min": round(float(vs_torch.min()), 7),
        "cosine_vs_naive_min": round(float(vs_naive.min()), 5),
        "cosine_vs_naive_mean": round(float(vs_naive.mean()), 5),
        "machine": machine(),
    }
    print(f"cosine vs torch reference: min {result['cosine_vs_torch_min']}")
    return result


def int8_rates(catalog: Catalog, batches: list[np.ndarray], args: argparse.Namespace, fp32: np.ndarray) -> dict[str, object]:
    """End-to-end and network-only images/s of the int8 encoder, and its cosine to the float embeddings."""
    encoder = create_encoder(f"{ENCODER}-int8")
    if args.batch_size:
        encoder.batch_size = args.batch_size
    embed_catalog(catalog.head(encoder.batch_size), encoder, use_cache=False)  # warm-up (and quantisation on first use)
    e2e = timed_runs(lambda: embed_catalog(catalog, encoder, use_cache=False, workers=args.workers).encoded, args.repeats)
    forward = timed_runs(lambda: sum(len(encoder.encode(b)) for b in batches), args.repeats)
    print(f"int8 end to end: {e2e}; network only: {forward} images/s")
    vectors = embed_catalog(catalog, encoder, use_cache=False, workers=args.workers).vectors
    cos = cosines(vectors, fp32)
    return {
        "int8_encoder": encoder.identity,
        "int8_images_per_s": e2e["best"],
        "int8_end_to_end": e2e,
        "int8_forward_only": forward,
        "cosine_int8_vs_fp32_min": round(float(cos.min()), 4),
        "cosine_int8_vs_fp32_mean": round(float(cos.mean()), 4),
    }


def markdown(r: dict) -> str:
    lines = [
        "# Encoding throughput",
        "",
        f"Load average {r.get('load_start')} at start, {r.get('load_end')} at end "
        f"({'quiet machine' if r.get('quiet_machine') else 'NOT a quiet machine: load > 1.5, rates are low'}).",
        f"Command: `{r.get('command')}` ({r.get('date')})",
        "",
    ]
    if "end_to_end" in r:
        lines += image_markdown(r)
    if "text" in r:
        lines += text_markdown(r["text"])
    return "\n".join(lines) + "\n"


def text_markdown(t: dict) -> list[str]:
    lines = [
        "## Text (MiniLM)",
        "",
        "| texts | ONNX Runtime texts/s | int8 texts/s | sentence-transformers (torch) texts/s |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("titles", f"{t['titles']} Myntra titles"),
        ("product_texts", f"{t['product_texts']} Flipkart title + description"),
    ):
        lines.append(f"| {label} | {t[f'{key}_per_s']} | {t[f'int8_{key}_per_s']} | {t[f'naive_{key}_per_s']} |")
    for key in ("titles", "product_texts"):
        d = t[f"{key}_detail"]
        lines.append(
            f"\n{key}: min cosine ONNX vs torch {d['cosine_onnx_vs_torch_min']}; int8 vs torch min "
            f"{d['cosine_int8_vs_torch_min']}, mean {d['cosine_int8_vs_torch_mean']}."
        )
    return [*lines, ""]


def image_markdown(r: dict) -> list[str]:
    m = r["machine"]
    rows = [
        ("naive loop (PIL + torch eager, batch 1, no decode threads)", r["naive"]),
        (f"`embed_catalog` end to end ({r['backend']}, batch {r['batch_size']}, {r['workers']} decode threads)", r["end_to_end"]),
        (f"network only, {r['backend']} (ready uint8 batches)", r["forward_only"]),
        ("network only, torch eager channels_last", r["forward_only_torch"]),
    ]
    if "int8_end_to_end" in r:
        rows += [
            (f"`embed_catalog` end to end, int8 (`{r['int8_encoder']}`)", r["int8_end_to_end"]),
            ("network only, int8 (ready uint8 batches)", r["int8_forward_only"]),
        ]
    return [
        f"## Images: {r['encoder']}",
        "",
        f"{r['images']} Flipkart images, {r['repeats']} runs each. CPU ms/image is the least CPU time (all "
        "threads) per image over the runs.",
        "",
        "| method | images/s best | median | CPU ms/image |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {s['best']} | {s['median']} | {s['cpu_ms_per_image']} |" for name, s in rows],
        "",
        f"End to end vs naive: **{r['speedup']}x**. Min cosine similarity of the end-to-end embeddings to the "
        f"PyTorch reference on the same pixels: {r['cosine_vs_torch_min']} (vs the naive loop, which decodes "
        f"at full size and resizes differently: min {r['cosine_vs_naive_min']}, mean {r['cosine_vs_naive_mean']}).",
        *(
            [f"int8 vs float embeddings: min cosine {r['cosine_int8_vs_fp32_min']}, mean {r['cosine_int8_vs_fp32_mean']}."]
            if "int8_end_to_end" in r
            else []
        ),
        "",
        f"Machine: {m['cpu']}, {m['cores_available']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"onnxruntime {m['onnxruntime']}, Python {m['python']}, Pillow {m['pillow']}; load average "
        f"{m['load_average_1m']} when the image run ended.",
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
