"""Grouped, nested cross-validated comparison of categorization configurations (encoder x modality x head).

- Grouping: rows sharing a normalised title or identical image bytes form one group
  (:func:`skulens.catalog.splits.duplicate_groups`); outer folds are a seeded ``StratifiedGroupKFold``,
  so duplicates never straddle train and test.
- Nested selection: inside each outer training part, one seeded, stratified, grouped validation split;
  every configuration is fitted on the inner-train rows and scored (macro-F1) on the inner-validation
  rows. Per kind (image / text / fused; a baseline counts for its modality) the configuration with the
  best inner score is the one whose outer-test predictions make that fold's "selected" prediction.
  The outer test rows are never used to choose anything.
- Scores: every configuration's out-of-fold predictions are pooled over the folds of one seed and
  scored once; 95% intervals are a percentile bootstrap over these rows. With several seeds each seed
  gets its own pooled score and interval (seeds are never pooled as independent data); the first seed
  is the headline.

Embeddings of the pretrained encoders are computed once (cached) and shared by every fold; TF-IDF is
refitted on each (inner or outer) training part only, so no validation or test text leaks into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from skulens.catalog.schema import Catalog
from skulens.catalog.splits import duplicate_groups, grouped_folds, grouped_holdout, grouping_summary
from skulens.encoders.text import TfidfEncoder
from skulens.evaluation.html_report import Report
from skulens.evaluation.model_report import add_model_sections, confident_mistakes, gallery_items
from skulens.evaluation.plots import comparison_chart
from skulens.evaluation.report import write_json
from skulens.heads.base import align_proba
from skulens.metrics import classification_intervals, classification_metrics
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.features import FeatureExtractor, Features

KINDS = ("image", "text", "fused")
GROUPED_BY = ("normalised title", "image bytes")
IMAGE_PREFIXES = ("efficientnet", "classical", "hf-clip:", "finetuned")


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # image | text | fused | baseline-image | baseline-text
    encoders: tuple[str, ...]
    head: str = "linear"
    fusion: str = "late"

    @property
    def modalities(self) -> list[str]:
        image = any(e.startswith(IMAGE_PREFIXES) for e in self.encoders)
        text = any(not e.startswith(IMAGE_PREFIXES) for e in self.encoders)
        return [m for m, on in (("image", image), ("text", text)) if on]

    def competes_as(self, kind: str) -> bool:
        """Whether this configuration is a candidate when the best of ``kind`` is selected."""
        return self.kind in (kind, f"baseline-{kind}")


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

#: ``fit_predict(config, train_rows, predict_rows) -> proba`` (columns in the benchmark's class order).
FitPredict = Callable[[Config, np.ndarray, np.ndarray], np.ndarray]


class FoldFeatures(Protocol):
    """Feature blocks learnt inside each outer fold (a fine-tuned encoder): ``prepare`` sees the benchmark's
    rows once; ``for_fold`` returns the blocks ``names`` for every row, learnt from ``fold.inner_train`` only
    (so neither the inner-validation nor the test rows were seen); ``summary`` goes into metrics.json."""

    names: tuple[str, ...]

    def prepare(self, rows: Catalog, y: np.ndarray, groups: np.ndarray) -> None: ...

    def for_fold(self, fold: Fold) -> Features: ...

    def summary(self) -> dict: ...


@dataclass(frozen=True)
class Fold:
    seed: int
    index: int
    train: np.ndarray
    test: np.ndarray
    inner_train: np.ndarray
    inner_val: np.ndarray


def nested_folds(y: np.ndarray, groups: np.ndarray, folds: int, seed: int, inner_val_size: float = 0.2) -> Iterator[Fold]:
    """Outer grouped stratified folds, each with one grouped stratified inner split of its training rows."""
    for index, (train, test) in enumerate(grouped_folds(y, groups, folds, seed)):
        inner_train, inner_val = grouped_holdout(train, y, groups, inner_val_size, seed)
        yield Fold(seed, index, train, test, inner_train, inner_val)


def select_and_predict(
    configs: Sequence[Config], y: np.ndarray, classes: np.ndarray, fold: Fold, fit_predict: FitPredict
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """One outer fold: every configuration's outer-test probabilities, and per kind the configuration
    chosen on the inner split (``{"config", "inner_macro_f1"}``). Only ``fold.train`` rows are used to
    fit and to choose; ``fold.test`` rows are only predicted."""
    inner_scores: dict[str, float] = {}
    test_proba: dict[str, np.ndarray] = {}
    for config in configs:
        proba = fit_predict(config, fold.inner_train, fold.inner_val)
        inner_scores[config.name] = classification_metrics(y[fold.inner_val], classes[proba.argmax(axis=1)], classes)["macro_f1"]
        test_proba[config.name] = fit_predict(config, fold.train, fold.test)
    chosen = {}
    for kind in KINDS:
        candidates = [c.name for c in configs if c.competes_as(kind)]
        if candidates:
            best = max(candidates, key=lambda name: inner_scores[name])  # ties: the first listed
            chosen[kind] = {"config": best, "inner_macro_f1": inner_scores[best]}
    return test_proba, chosen


class FoldFitter:
    """``fit_predict`` for the configurations of one fold: per (train rows, predict rows) part, TF-IDF is
    fitted on the train rows once and every block head (a block, head kind and settings) is fitted once
    and shared by the configurations that use it (identical fits: same rows, labels, split and seed)."""

    def __init__(self, shared: Features, texts: list[str], y: np.ndarray, classes: np.ndarray, seed: int) -> None:
        self.shared, self.texts, self.y, self.classes, self.seed = shared, texts, y, classes, seed
        self._parts: dict[bytes, tuple[Features, Features, dict]] = {}

    def _part(self, config: Config, train: np.ndarray, rows: np.ndarray) -> tuple[Features, Features, dict]:
        """(train features, predict features, fitted heads) of the part; TF-IDF added when ``config`` needs it."""
        key = train.tobytes() + b"|" + rows.tobytes()
        if key not in self._parts:
            self._parts[key] = (self.shared.subset(train), self.shared.subset(rows), {})
        train_f, rows_f, heads = self._parts[key]
        if "tfidf" in config.encoders and "tfidf" not in train_f.blocks:
            tfidf = TfidfEncoder().fit([self.texts[i] for i in train])
            for part, idx in ((train_f, train), (rows_f, rows)):
                part.blocks["tfidf"] = tfidf.encode([self.texts[i] for i in idx])
                part.present["tfidf"] = np.array([bool(self.texts[i].strip()) for i in idx])
        return train_f, rows_f, heads

    def __call__(self, config: Config, train: np.ndarray, predict: np.ndarray) -> np.ndarray:
        """Fit ``config`` on the ``train`` rows; its probabilities for the ``predict`` rows, columns in ``classes`` order."""
        train_f, predict_f, heads = self._part(config, train, predict)
        keep = list(config.encoders)
        model = CategoryPredictor(keep, head=config.head, fusion=config.fusion, seed=self.seed)
        model.fit_features(
            Features({k: train_f.blocks[k] for k in keep}, {k: train_f.present[k] for k in keep}),
            self.y[train],
            fitted_heads=heads,
            label_shift=False,  # the benchmark scores posteriors as they are: no prior adaptation to fit
        )
        proba = model.proba_from_features(
            Features({k: predict_f.blocks[k] for k in keep}, {k: predict_f.present[k] for k in keep})
        )
        return align_proba(proba, np.asarray(model.classes_), self.classes)


def _summary_metrics(y: np.ndarray, proba: np.ndarray, classes: np.ndarray, resamples: int, seed: int) -> dict:
    pred = classes[proba.argmax(axis=1)]
    pooled = classification_metrics(y, pred, classes, proba)
    intervals = classification_intervals(y, pred, resamples=resamples, seed=seed)
    return {
        "macro_f1": pooled["macro_f1"],
        "macro_f1_ci95": intervals["macro_f1"]["ci95"],
        "accuracy": pooled["accuracy"],
        "accuracy_ci95": intervals["accuracy"]["ci95"],
        "micro_f1": pooled["micro_f1"],
        "weighted_f1": pooled["weighted_f1"],
        "ece": pooled["ece"],
        "per_class": pooled["per_class"],
        "confusion_matrix": pooled["confusion_matrix"],
    }


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
    inner_val_size: float = 0.2,
    resamples: int = 1000,
    fold_features: FoldFeatures | None = None,
) -> dict:
    """Grouped, nested CV of every config (per seed); writes metrics.json, report.md, report.html, PNGs and
    ``predictions.npz`` (the first seed's out-of-fold probabilities: ``selected_<kind>`` and ``config_<i>`` in
    ``configs`` order, with ``ids``, ``y``, ``classes`` and ``groups``)."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows, y = CategoryPredictor(label=label, min_class_count=min_class_count).training_rows(catalog)
    classes = np.unique(y)
    groups = duplicate_groups(rows)
    grouping = grouping_summary(groups, GROUPED_BY)
    learnt = set(fold_features.names) if fold_features is not None else set()
    dense_names = sorted({e for c in configs for e in c.encoders if e != "tfidf" and e not in learnt})
    log(
        f"{catalog.name} label {label!r}: {len(rows)} rows, {len(classes)} classes, {grouping['groups']} groups "
        f"({grouping['rows_in_shared_groups']} rows share one); embedding {dense_names}"
    )
    shared = FeatureExtractor(dense_names, text_fields, progress=True).transform(rows)
    embed_seconds = time.perf_counter() - started
    texts = rows.texts(text_fields)
    if fold_features is not None:
        fold_features.prepare(rows, y, groups)

    oof = {s: {c.name: np.zeros((len(y), len(classes))) for c in configs} for s in seeds}
    selected = {s: {k: np.zeros((len(y), len(classes))) for k in KINDS} for s in seeds}
    choices: dict[int, dict[str, list[dict]]] = {s: {k: [] for k in KINDS} for s in seeds}
    fold_f1: dict[str, list[float]] = {c.name: [] for c in configs}
    for seed in seeds:
        for fold in nested_folds(y, groups, folds, seed, inner_val_size):
            fold_shared = shared
            if fold_features is not None:
                own = fold_features.for_fold(fold)
                fold_shared = Features({**shared.blocks, **own.blocks}, {**shared.present, **own.present})
            fit_predict = FoldFitter(fold_shared, texts, y, classes, seed)
            test_proba, chosen = select_and_predict(configs, y, classes, fold, fit_predict)
            for name, proba in test_proba.items():
                oof[seed][name][fold.test] = proba
                fold_f1[name].append(classification_metrics(y[fold.test], classes[proba.argmax(axis=1)], classes)["macro_f1"])
            for kind, choice in chosen.items():
                selected[seed][kind][fold.test] = test_proba[choice["config"]]
                choices[seed][kind].append({"fold": fold.index, **choice})
            log(f"  seed {seed} fold {fold.index + 1}/{folds} done ({time.perf_counter() - started:.0f}s)")

    head_seed = seeds[0]
    results = []
    for config in configs:
        entry = {
            "name": config.name,
            "kind": config.kind,
            "modalities": config.modalities,
            "encoders": list(config.encoders),
            "head": config.head,
            "fusion": config.fusion if len(config.encoders) > 1 else None,
            **_summary_metrics(y, oof[head_seed][config.name], classes, resamples, head_seed),
            "fold_macro_f1": fold_f1[config.name],
        }
        if len(seeds) > 1:
            entry["per_seed"] = [_seed_entry(y, oof[s][config.name], classes, resamples, s) for s in seeds]
        results.append(entry)
    selection = {}
    for kind in KINDS:
        if not choices[head_seed][kind]:
            continue
        entry = {
            "kind": kind,
            "chosen_per_fold": choices[head_seed][kind],
            **_summary_metrics(y, selected[head_seed][kind], classes, resamples, head_seed),
        }
        if len(seeds) > 1:
            entry["per_seed"] = [
                {**_seed_entry(y, selected[s][kind], classes, resamples, s), "chosen_per_fold": choices[s][kind]} for s in seeds
            ]
        selection[kind] = entry
    summary = {
        "dataset": catalog.name,
        "label": label,
        "folds": folds,
        "seeds": list(seeds),
        "rows": int(len(y)),
        "classes": [str(c) for c in classes],
        "command": command,
        "grouping": grouping,
        "selection": "nested",
        "selection_rule": (
            f"per outer fold: one grouped, stratified inner split of the training rows ({inner_val_size:.0%} validation, "
            "seeded); every configuration fitted on inner-train and scored on inner-validation; per kind the highest "
            "inner macro-F1 wins and its outer-test predictions are used"
        ),
        "intervals": {
            "method": "percentile bootstrap over test rows of the pooled out-of-fold predictions",
            "resamples": resamples,
            "seed": head_seed,
            "seeds_note": "one pooled score and interval per CV seed; the headline is the first seed's",
        },
        "embed_seconds": round(embed_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "selected": selection,
    }
    if fold_features is not None:
        summary["fold_features"] = fold_features.summary()
    _write_reports(summary, out, rows, y, {k: selected[head_seed][k] for k in selection}, classes)
    write_json(summary, out / "metrics.json")
    np.savez_compressed(
        out / "predictions.npz",
        ids=np.array(rows.ids, dtype=str),
        y=y.astype(str),
        classes=classes.astype(str),
        groups=groups,
        **{f"selected_{k}": selected[head_seed][k].astype(np.float32) for k in selection},
        **{f"config_{i}": oof[head_seed][c.name].astype(np.float32) for i, c in enumerate(configs)},
    )
    return summary


def _seed_entry(y: np.ndarray, proba: np.ndarray, classes: np.ndarray, resamples: int, seed: int) -> dict:
    metrics = _summary_metrics(y, proba, classes, resamples, seed)
    return {"seed": seed, **{k: metrics[k] for k in ("macro_f1", "macro_f1_ci95", "accuracy", "accuracy_ci95", "ece")}}


def _ci(interval: Sequence[float]) -> str:
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _choice_text(choices: list[dict]) -> str:
    names = [c["config"] for c in choices]
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(f"{n} ({k}/{len(names)} folds)" for n, k in counts.items())


def _write_reports(
    summary: dict, out: Path, rows: Catalog, y: np.ndarray, selected: dict[str, np.ndarray], classes: np.ndarray
) -> None:
    grouping, selection = summary["grouping"], summary["selected"]
    report = Report(f"Categorization benchmark: {summary['dataset']}, label {summary['label']}")
    report.paragraph(
        f"{summary['rows']} products, {len(summary['classes'])} classes, grouped stratified {summary['folds']}-fold CV, "
        f"seeds {summary['seeds']}. Rows sharing a normalised title or identical image bytes form one group "
        f"({grouping['groups']} groups; {grouping['rows_in_shared_groups']} rows share a group); a group never "
        f"straddles train and test. Embedding took {summary['embed_seconds']}s; everything {summary['total_seconds']}s."
    )
    report.paragraph(f"Command: `{summary['command']}`")
    report.paragraph(
        "Scores are of the out-of-fold predictions pooled over the folds (each row predicted once, by a model that "
        f"did not see it); 95% intervals are a percentile bootstrap over these rows ({summary['intervals']['resamples']} "
        "resamples)."
        + (
            " With several seeds, the tables show the first seed; metrics.json has each seed's."
            if len(summary["seeds"]) > 1
            else ""
        )
    )
    learnt = summary.get("fold_features")
    if learnt:
        report.heading("Fine-tuning inside the folds")
        report.paragraph(
            f"{learnt['encoder']}: {learnt['base']} with blocks {learnt['frozen_blocks']}+ and the head fine-tuned "
            f"{learnt['protocol']}. Frozen-block outputs (computed once, {learnt['recipe']['views']} views per image): "
            f"{learnt['frozen_outputs_seconds']}s; fine-tuning {learnt['finetune_seconds_per_fold']}s per fold on "
            f"{learnt['threads']} thread(s) (load averages per fold in metrics.json)."
        )
        if (out / "finetune_curves.png").exists():
            report.figures([(out / "finetune_curves.png", "training curves of the first fold's fine-tuning")])
    report.heading("Selected model of each kind (nested selection)")
    report.paragraph(
        "Chosen inside each outer training fold on an inner validation split (never on the test fold): "
        + summary["selection_rule"]
        + ". The score is that of the chosen configurations' outer-test predictions."
    )
    report.table(
        [
            {
                "kind": kind,
                "macro_f1": entry["macro_f1"],
                "ci": _ci(entry["macro_f1_ci95"]),
                "accuracy": entry["accuracy"],
                "acc_ci": _ci(entry["accuracy_ci95"]),
                "ece": entry["ece"],
                "chosen": _choice_text(entry["chosen_per_fold"]),
            }
            for kind, entry in selection.items()
        ],
        [
            ("kind", "kind"),
            ("macro_f1", "macro-F1"),
            ("ci", "95% CI"),
            ("accuracy", "accuracy"),
            ("acc_ci", "95% CI"),
            ("ece", "ECE"),
            ("chosen", "configuration chosen per fold"),
        ],
    )
    report.heading("All configurations")
    report.paragraph("Every configuration's pooled out-of-fold score (a table for comparison, not a selection).")
    report.table(
        [
            {
                **r,
                "ci": _ci(r["macro_f1_ci95"]),
                "acc_ci": _ci(r["accuracy_ci95"]),
                "folds_f1": f"{np.mean(r['fold_macro_f1']):.3f} ± {np.std(r['fold_macro_f1'], ddof=1) if len(r['fold_macro_f1']) > 1 else 0:.3f}",
            }
            for r in summary["results"]
        ],
        [
            ("name", "configuration"),
            ("kind", "kind"),
            ("encoders", "encoders"),
            ("head", "head"),
            ("macro_f1", "macro-F1"),
            ("ci", "95% CI"),
            ("accuracy", "accuracy"),
            ("acc_ci", "95% CI"),
            ("ece", "ECE"),
            ("folds_f1", "per-fold macro-F1 (mean ± std)"),
        ],
    )
    chart_rows = list(summary["results"]) + [{**e, "name": f"selected {k}"} for k, e in selection.items()]
    chart = comparison_chart(
        [r["name"] for r in chart_rows],
        [r["macro_f1"] for r in chart_rows],
        [r["macro_f1_ci95"] for r in chart_rows],
        out / "comparison.png",
        "macro-F1 (pooled out-of-fold, 95% bootstrap CI)",
        f"{summary['dataset']}, label {summary['label']}",
    )
    report.figures([(chart, "configurations and selected models: macro-F1 with 95% bootstrap intervals")])
    class_names = [str(c) for c in classes]
    for kind, proba in selected.items():
        entry = selection[kind]
        pred = classes[proba.argmax(axis=1)]
        report.heading(f"Selected {kind} model", level=3)
        add_model_sections(
            report, out, kind, f"selected {kind}", y, pred, proba, class_names, entry["confusion_matrix"], entry["ece"]
        )
    gallery_kind = next((k for k in ("fused", "text", "image") if k in selected), None)
    if gallery_kind:
        proba = selected[gallery_kind]
        pred, confidence = classes[proba.argmax(axis=1)], proba.max(axis=1)
        report.heading(f"Most confident mistakes of the selected {gallery_kind} model")
        report.gallery(gallery_items(rows, confident_mistakes(y, pred, confidence), y, pred, confidence))
    report.write(out)
