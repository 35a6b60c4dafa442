"""A synthetic catalog for the scale benchmark, built from the real data (written outside the repository).

- ``text.csv``: ``--text-rows`` products (default 1,000,000). Each title joins the first half of one real
  title and the second half of another (Flipkart + Myntra), each description two real Flipkart description
  sentences, the category path is the first product's. So texts look real, repeat rarely, and no title is
  copied whole.
- ``images.parquet``: ``--image-rows`` products (default 50,000) whose ``image`` is a real Myntra or Flipkart
  photo (absolute path) reused under a new id, with the real title and category. The same photo bytes recur,
  so the benchmark runs these without the embedding cache (which is keyed by content).

Seeded; written in blocks, so memory stays small. Usage:
    python benchmarks/make_scale_catalog.py --out /tmp/skulens-scale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from skulens.catalog import data_root, load_catalog  # noqa: E402

BLOCK = 100_000


def _halves(titles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    firsts, seconds = [], []
    for title in titles:
        words = title.split()
        cut = max(1, len(words) // 2)
        firsts.append(" ".join(words[:cut]))
        seconds.append(" ".join(words[cut:]) or words[-1])
    return np.array(firsts, dtype=object), np.array(seconds, dtype=object)


def _sentences(descriptions: list[str]) -> np.ndarray:
    found = []
    for text in descriptions:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(str(text).split())):
            if 20 <= len(sentence) <= 300:
                found.append(sentence)
    return np.array(found, dtype=object)


def write_text(flipkart, myntra, rows: int, path: Path, seed: int) -> None:
    products = pd.concat(
        [
            pd.DataFrame({"title": flipkart.frame["title"], "category": flipkart.frame["category"]}),
            pd.DataFrame({"title": myntra.frame["title"], "category": myntra.frame["category"]}),
        ],
        ignore_index=True,
    ).dropna(subset=["title"])
    firsts, seconds = _halves(products["title"].astype(str).tolist())
    categories = np.array([" >> ".join(c) if isinstance(c, tuple) else "" for c in products["category"]], dtype=object)
    sentences = _sentences(flipkart.frame["description"].dropna().tolist())
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, BLOCK):
        n = min(BLOCK, rows - start)
        a, b = rng.integers(0, len(firsts), n), rng.integers(0, len(seconds), n)
        s1, s2 = rng.integers(0, len(sentences), n), rng.integers(0, len(sentences), n)
        block = pa.table(
            {
                "sku": [f"s{start + i:07d}" for i in range(n)],
                "title": firsts[a] + " " + seconds[b],
                "description": sentences[s1] + " " + sentences[s2],
                "category": categories[a],
            }
        )
        if writer is None:
            writer = pacsv.CSVWriter(path, block.schema)
        writer.write_table(block)
    writer.close()


def write_images(flipkart, myntra, rows: int, path: Path, seed: int) -> None:
    frames = []
    for catalog in (myntra, flipkart):
        frame = catalog.frame.dropna(subset=["image"])
        root = catalog.image_roots[0]
        frames.append(
            pd.DataFrame(
                {
                    "title": frame["title"].astype(str),
                    "image": [str(root / p) for p in frame["image"]],
                    "category": [" >> ".join(c) if isinstance(c, tuple) else "" for c in frame["category"]],
                }
            )
        )
    products = pd.concat(frames, ignore_index=True)
    products = products[[Path(p).is_file() for p in products["image"]]].reset_index(drop=True)
    pick = np.random.default_rng(seed).integers(0, len(products), rows)
    out = products.iloc[pick].reset_index(drop=True)
    out.insert(0, "sku", [f"i{i:07d}" for i in range(rows)])
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), path, row_group_size=10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/skulens-scale"))
    parser.add_argument("--text-rows", type=int, default=1_000_000)
    parser.add_argument("--image-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    flipkart, myntra = load_catalog("flipkart"), load_catalog("myntra")
    write_text(flipkart, myntra, args.text_rows, args.out / "text.csv", args.seed)
    write_images(flipkart, myntra, args.image_rows, args.out / "images.parquet", args.seed)
    info = {
        "command": "python " + " ".join(sys.argv),
        "data": str(data_root()),
        "text_rows": args.text_rows,
        "image_rows": args.image_rows,
        "text_bytes": (args.out / "text.csv").stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "catalog.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
