"""Clustering quality of each encoder's embedding space on Flipkart (a script, not a test).

    python benchmarks/clustering_flipkart.py      # writes benchmarks/results/clustering_flipkart.json and .md

Every encoder embeds the 1,050 Flipkart products (through the embedding cache); vectors are
L2-normalised and reduced to 50 principal directions; KMeans (k = number of true classes) and HDBSCAN
(sklearn, min_cluster_size = 10) cluster them; ARI and NMI compare the clusters with the true level-0
categories, silhouette (cosine) measures how separated the clusters are. TF-IDF is fitted on all
catalog texts (unsupervised: no labels are used).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.evaluation.clustering import score_clustering  # noqa: E402
from skulens.evaluation.embedding_space import catalog_vectors, reduce_vectors  # noqa: E402

ENCODERS = ("tfidf", "minilm", "classical-image", "efficientnet-lite0", "efficientnet-lite2")


def to_markdown(report: dict) -> str:
    lines = [
        f"# Clustering quality — {report['dataset']}, level {report['label']} ({report['classes']} classes)",
        "",
        f"Command: `{report['command']}`",
        "",
        "KMeans with k = number of classes; HDBSCAN (scikit-learn) with min_cluster_size "
        f"{report['min_cluster_size']}; {report['dims']} principal directions of the L2-normalised embeddings. "
        "ARI/NMI against the true categories; silhouette (cosine) of the found clusters; "
        "'true silhouette' = silhouette of the true categories.",
        "",
        "| encoder | modality | rows | KMeans ARI | KMeans NMI | KMeans silhouette | HDBSCAN ARI | HDBSCAN NMI | HDBSCAN clusters | HDBSCAN noise | true silhouette |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for name, scores in report["encoders"].items():
        km, hd = scores["kmeans"], scores["hdbscan"]
        lines.append(
            f"| {name} | {scores['modality']} | {scores['rows']} | {fmt(km['ari'])} | {fmt(km['nmi'])} | {fmt(km['silhouette'])} | "
            f"{fmt(hd['ari'])} | {fmt(hd['nmi'])} | {hd['clusters']} | {hd['noise_share']:.0%} | {fmt(scores['silhouette_true'])} |"
        )
    lines += ["", f"Total time {report['seconds']:.0f} s (embeddings from the cache where present)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="flipkart")
    parser.add_argument("--label", default="0", help="category level the clusters are scored against")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--dims", type=int, default=50)
    parser.add_argument("--min-cluster-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    catalog = load_catalog(args.dataset)
    labels = catalog.labels(int(args.label) if args.label.isdigit() else args.label)
    catalog = catalog.subset(labels.notna())
    labels = labels[labels.notna()].to_numpy()
    report: dict = {
        "dataset": args.dataset,
        "label": args.label,
        "classes": int(len(set(labels.tolist()))),
        "dims": args.dims,
        "min_cluster_size": args.min_cluster_size,
        "seed": args.seed,
        "encoders": {},
    }
    for name in [e for e in args.encoders.split(",") if e]:
        t0 = time.perf_counter()
        space = catalog_vectors(catalog, name, progress=True)
        points = reduce_vectors(space.vectors, args.dims, args.seed)
        scores = score_clustering(points, labels[space.rows], seed=args.seed, min_cluster_size=args.min_cluster_size)
        report["encoders"][name] = {"modality": space.modality, **scores, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: ARI {scores['ari']:.3f} NMI {scores['nmi']:.3f} silhouette {scores['silhouette']:.3f}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["command"] = "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "clustering_flipkart.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "clustering_flipkart.md").write_text(to_markdown(report))
    print(f"wrote {args.out / 'clustering_flipkart.json'} and .md")


if __name__ == "__main__":
    main()
