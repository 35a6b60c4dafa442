"""Review intelligence benchmark (a script, not a test).

    python benchmarks/reviews.py    # writes benchmarks/results/reviews/{metrics.json,report.md,report.html,*.png}

Women's clothing reviews with text, one seeded group-aware 80/20 split (duplicate texts never cross it);
VADER / TF-IDF + LR / MiniLM probes / TF-IDF + MiniLM fusion, the best chosen on a validation part of the
training rows; bootstrap intervals over the test reviews; plus the Flipkart product-rating regression.
MiniLM embeddings come from the embedding cache (computed once, ~5-10 min on 2 CPU cores).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # many BLAS threads on a small shared machine are slower, not faster

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from skulens.evaluation.review_benchmark import MODELS, run_review_benchmark, write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N reviews (quick runs)")
    parser.add_argument("--no-product-rating", action="store_true", help="skip the Flipkart product-rating regression")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reviews", help="report folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = run_review_benchmark(
        models=[m for m in args.models.split(",") if m],
        seed=args.seed,
        limit=args.limit,
        product_rating=not args.no_product_rating,
    )
    report["command"] = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    write_report(report, args.out / "metrics.json", args.out / "report.md")
    print((args.out / "report.md").read_text())
    print(f"wrote metrics.json, report.md and report.html into {args.out}")


if __name__ == "__main__":
    main()
