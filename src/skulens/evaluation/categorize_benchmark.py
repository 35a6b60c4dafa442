"""Cross-validated comparison of categorization configurations (encoder x modality x head).

Embeddings of the pretrained encoders are computed once (cached) and shared by every fold; TF-IDF is
refitted inside each fold on that fold's training rows only, so no test text leaks into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from skulens.catalog.schema import Catalog
from skulens.encoders.text import TfidfEncoder
from skulens.evaluation.report import confusion_png, markdown_table, write_json
from skulens.metrics import classification_metrics, mean_std_ci
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.features import FeatureExtractor, Features


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # image | text | fused | baseline-image | baseline-text
    encoders: tuple[str, ...]
    head: str = "linear"
    fusion: str = "late"

    @property
    def modalities(self) -> list[str]:
        image = any(e.startswith(("efficientnet", "classical", "hf-clip:")) for e in self.encoders)
        text = any(not e.startswith(("efficientnet", "classical", "hf-clip:")) for e in self.encoders)
        return [m for m, on in (("image", image), ("text", text)) if on]


DEFAULT_CONFIGS = (
    Config("classical-image LR", "baseline-image", ("classical-image",)),
    Config("tfidf LR", "baseline-text", ("tfidf",)),
    Config("lite0 linear", "image", ("efficientnet-lite0",)),
    Config("lite2 linear", "image", ("efficientnet-lite2",)),
    Config("lite0+lite2 late", "image", ("efficientnet-lite0", "efficientnet-lite2")),
    Config("minilm linear", "text", ("minilm",)),
    Config("minilm mlp", "text", ("minilm",), head="mlp"),
    Config("minilm+tfidf late", "text", ("minilm", "tfidf")),
    Config("lite0+minilm early", "fused", ("efficientnet-lite0", "minilm"), fusion="early"),
    Config("lite0+tfidf late", "fused", ("efficientnet-lite0", "tfidf")),
    Config("lite0+minilm+tfidf late", "fused", ("efficientnet-lite0", "minilm", "tfidf")),
    Config("lite2+minilm+tfidf late", "fused", ("efficientnet-lite2", "minilm", "tfidf")),
    Config("lite0+lite2+minilm+tfidf late", "fused", ("efficientnet-lite0", "efficientnet-lite2", "minilm", "tfidf")),
)


def _fold_features(shared: Features, tfidf_texts: list[str], train: np.ndarray, test: np.ndarray, needs_tfidf: bool):
    train_f, test_f = shared.subset(train), shared.subset(test)
    if needs_tfidf:
        tfidf = TfidfEncoder().fit([tfidf_texts[i] for i in train])
        for part, rows in ((train_f, train), (test_f, test)):
            part.blocks["tfidf"] = tfidf.encode([tfidf_texts[i] for i in rows])
            part.present["tfidf"] = np.array([bool(tfidf_texts[i].strip()) for i in rows])
    return train_f, test_f


def run_categorize_benchmark(
    catalog: Catalog,
    label: int | str,
    out: Path,
    folds: int = 5,
    seeds: Sequence[int] = (0,),
    configs: Sequence[Config] = DEFAULT_CONFIGS,
    min_class_count: int = 5,
    text_fields: Sequence[str] = ("title", "description"),
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluate every config with stratified k-fold CV (per seed); write metrics.json, report.md, plots."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows, y = CategoryPredictor(label=label, min_class_count=min_class_count).training_rows(catalog)
    dense_names = sorted({e for c in configs for e in c.encoders if e != "tfidf"})
    log(f"{catalog.name} label {label!r}: {len(rows)} rows, {len(np.unique(y))} classes; embedding {dense_names}")
    shared = FeatureExtractor(dense_names, text_fields, progress=True).transform(rows)
    embed_seconds = time.perf_counter() - started
    texts = rows.texts(text_fields)
    per_config: dict[str, list[dict]] = {c.name: [] for c in configs}
    oof_pred: dict[str, np.ndarray] = {c.name: np.empty(len(y), dtype=object) for c in configs}
    for seed in seeds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for fold, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
            for config in configs:
                train_f, test_f = _fold_features(shared, texts, train, test, "tfidf" in config.encoders)
                keep = list(config.encoders)
                train_f = Features({k: train_f.blocks[k] for k in keep}, {k: train_f.present[k] for k in keep})
                test_f = Features({k: test_f.blocks[k] for k in keep}, {k: test_f.present[k] for k in keep})
                model = CategoryPredictor(list(config.encoders), head=config.head, fusion=config.fusion, seed=seed)
                proba = model.fit_features(train_f, y[train]).proba_from_features(test_f)
                pred = model.classes_[proba.argmax(axis=1)]
                metrics = classification_metrics(y[test], pred, model.classes_, proba)
                per_config[config.name].append(metrics)
                if seed == seeds[0]:
                    oof_pred[config.name][test] = pred
            log(f"  seed {seed} fold {fold + 1}/{folds} done ({time.perf_counter() - started:.0f}s)")

    classes = np.unique(y)
    results = []
    for config in configs:
        runs = per_config[config.name]
        f1 = mean_std_ci([r["macro_f1"] for r in runs])
        pooled = classification_metrics(y, oof_pred[config.name], classes)
        results.append(
            {
                "name": config.name,
                "kind": config.kind,
                "modalities": config.modalities,
                "encoders": list(config.encoders),
                "head": config.head,
                "fusion": config.fusion if len(config.encoders) > 1 else None,
                "macro_f1_mean": f1["mean"],
                "macro_f1_std": f1["std"],
                "macro_f1_ci95": f1["ci95"],
                "accuracy_mean": float(np.mean([r["accuracy"] for r in runs])),
                "micro_f1_mean": float(np.mean([r["micro_f1"] for r in runs])),
                "weighted_f1_mean": float(np.mean([r["weighted_f1"] for r in runs])),
                "ece_mean": float(np.mean([r["ece"] for r in runs])),
                "per_class": pooled["per_class"],
                "confusion_matrix": pooled["confusion_matrix"],
            }
        )
    for kind in ("image", "text", "fused"):
        candidates = [r for r in results if r["kind"] in (kind, f"baseline-{kind}")]
        if candidates:
            best = max(candidates, key=lambda r: r["macro_f1_mean"])
            results.append({**best, "name": kind, "best_of": best["name"]})
    summary = {
        "dataset": catalog.name,
        "label": label,
        "folds": folds,
        "seeds": list(seeds),
        "rows": int(len(y)),
        "classes": [str(c) for c in classes],
        "command": command,
        "embed_seconds": round(embed_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    write_json(summary, out / "metrics.json")
    _write_markdown(summary, out)
    return summary


def _write_markdown(summary: dict, out: Path) -> None:
    table_rows = [r for r in summary["results"] if "best_of" not in r]
    best = {r["name"]: r for r in summary["results"] if "best_of" in r}
    columns = [
        ("name", "configuration"),
        ("kind", "kind"),
        ("encoders", "encoders"),
        ("head", "head"),
        ("macro_f1", "macro-F1 (mean ± std)"),
        ("ci", "95% CI"),
        ("accuracy_mean", "accuracy"),
        ("ece_mean", "ECE"),
    ]
    display = [
        {
            **row,
            "macro_f1": f"{row['macro_f1_mean']:.3f} ± {row['macro_f1_std']:.3f}",
            "ci": f"[{row['macro_f1_ci95'][0]:.3f}, {row['macro_f1_ci95'][1]:.3f}]",
        }
        for row in table_rows
    ]
    lines = [
        f"# Categorization benchmark: {summary['dataset']}, label {summary['label']}",
        "",
        f"{summary['rows']} products, {len(summary['classes'])} classes, stratified {summary['folds']}-fold CV, "
        f"seeds {summary['seeds']}. Embedding took {summary['embed_seconds']}s; everything {summary['total_seconds']}s.",
        "",
        f"Command: `{summary['command']}`",
        "",
        markdown_table(display, columns),
        "",
        "Best of each kind: " + "; ".join(f"**{k}** = {v['best_of']} ({v['macro_f1_mean']:.3f})" for k, v in best.items()),
        "",
    ]
    for kind, row in best.items():
        png = confusion_png(
            row["confusion_matrix"], summary["classes"], out / f"confusion_{kind}.png", f"{kind}: {row['best_of']}"
        )
        lines.append(f"![{kind} confusion matrix]({png.name})")
    (out / "report.md").write_text("\n".join(lines) + "\n")
