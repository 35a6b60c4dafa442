"""Drift between a reference catalog and a current one, seen through a trained categorizer.

Tests, each with a p-value:
- embedding shift per encoder of the model: maximum mean discrepancy (RBF kernel, median-distance
  bandwidth) on the L2-normalised embeddings reduced to 50 principal directions, p-value from a
  permutation test;
- prediction distribution shift (chi-square on predicted-class counts) and, where both catalogs carry
  the model's label, label distribution shift (chi-square);
- confidence shift (two-sample Kolmogorov-Smirnov on the top-class probability).
The verdict is "drift" when any p-value is below ``alpha`` divided by the number of tests (Bonferroni).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import chi2_contingency, ks_2samp

from skulens.catalog.schema import Catalog, CatalogError
from skulens.evaluation.embedding_space import reduce_vectors


@dataclass
class DriftTest:
    name: str
    kind: str
    statistic: float
    p_value: float
    detail: dict = field(default_factory=dict)


@dataclass
class DriftReport:
    reference: str
    current: str
    n_reference: int
    n_current: int
    alpha: float
    tests: list[DriftTest]

    @property
    def threshold(self) -> float:
        return self.alpha / max(len(self.tests), 1)

    @property
    def drifted(self) -> list[str]:
        return [t.name for t in self.tests if t.p_value < self.threshold]

    @property
    def verdict(self) -> str:
        return "drift" if self.drifted else "no drift"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(verdict=self.verdict, threshold=self.threshold, drifted=self.drifted)
        return data


def _rbf_kernel(points: np.ndarray) -> np.ndarray:
    squared = np.sum(points**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * points @ points.T, 0)
    positive = distances[np.triu_indices_from(distances, k=1)]
    bandwidth = float(np.median(positive[positive > 0])) if np.any(positive > 0) else 1.0
    return np.exp(-distances / bandwidth)


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 500, seed: int = 0) -> DriftTest:
    """Squared MMD between two samples of vectors and its permutation p-value."""
    if len(x) < 2 or len(y) < 2:
        raise CatalogError(f"MMD needs at least 2 rows on each side, got {len(x)} and {len(y)}")
    kernel = _rbf_kernel(np.vstack([x, y]).astype(np.float64))
    n, m = len(x), len(y)
    rng = np.random.default_rng(seed)
    signs = np.empty((n + m, permutations + 1))
    base = np.r_[np.full(n, 1.0 / n), np.full(m, -1.0 / m)]
    signs[:, 0] = base
    for column in range(1, permutations + 1):
        signs[:, column] = rng.permutation(base)
    stats = np.einsum("ip,ip->p", signs, kernel @ signs)
    p_value = float((1 + np.sum(stats[1:] >= stats[0])) / (permutations + 1))
    return DriftTest("", "mmd", float(stats[0]), p_value, {"permutations": permutations})


def distribution_test(name: str, reference: np.ndarray, current: np.ndarray) -> DriftTest:
    """Chi-square test that two samples of class names come from one distribution."""
    classes = sorted(set(reference.tolist()) | set(current.tolist()))
    table = np.array([[np.sum(reference == c) for c in classes], [np.sum(current == c) for c in classes]])
    shares = {
        c: [round(float(a) / max(len(reference), 1), 4), round(float(b) / max(len(current), 1), 4)]
        for c, a, b in zip(classes, *table)
    }
    if len(classes) < 2:
        return DriftTest(name, "chi-square", 0.0, 1.0, {"shares": shares})
    statistic, p_value, _, _ = chi2_contingency(table)
    return DriftTest(name, "chi-square", float(statistic), float(p_value), {"shares": shares})


def confidence_test(reference: np.ndarray, current: np.ndarray) -> DriftTest:
    """Kolmogorov-Smirnov test on top-class probabilities."""
    result = ks_2samp(reference, current)
    detail = {"mean_reference": float(np.mean(reference)), "mean_current": float(np.mean(current))}
    return DriftTest("confidence", "ks", float(result.statistic), float(result.pvalue), detail)


def embedding_test(name: str, reference: Any, current: Any, permutations: int, seed: int, dims: int = 50) -> DriftTest:
    """MMD between two embedding matrices, reduced together (sparse or dense)."""
    stacked = sp.vstack([reference, current]).tocsr() if sp.issparse(reference) else np.vstack([reference, current])
    points = reduce_vectors(stacked, dims, seed)
    test = mmd_test(points[: reference.shape[0]], points[reference.shape[0] :], permutations, seed)
    test.name = f"embedding:{name}"
    return test


def sample_rows(catalog: Catalog, limit: int | None, seed: int) -> Catalog:
    """At most ``limit`` random rows of ``catalog`` (all when ``limit`` is None or larger)."""
    if limit is None or len(catalog) <= limit:
        return catalog
    rows = np.sort(np.random.default_rng(seed).choice(len(catalog), size=limit, replace=False))
    return catalog.subset(rows)


def detect_drift(
    reference: Catalog,
    current: Catalog,
    predictor: Any,
    alpha: float = 0.05,
    max_rows: int | None = 500,
    permutations: int = 500,
    seed: int = 0,
) -> DriftReport:
    """Run every drift test of ``predictor`` (a trained ``CategoryPredictor``) between two catalogs."""
    reference, current = sample_rows(reference, max_rows, seed), sample_rows(current, max_rows, seed + 1)
    if len(reference) < 2 or len(current) < 2:
        raise CatalogError(
            f"drift needs at least 2 rows in each catalog ({reference.name}: {len(reference)}, {current.name}: {len(current)})"
        )
    ref_features, cur_features = predictor.extractor.transform(reference), predictor.extractor.transform(current)
    tests = []
    for name in predictor.encoders:
        ref_rows, cur_rows = np.flatnonzero(ref_features.present[name]), np.flatnonzero(cur_features.present[name])
        if len(ref_rows) >= 2 and len(cur_rows) >= 2:
            tests.append(
                embedding_test(name, ref_features.blocks[name][ref_rows], cur_features.blocks[name][cur_rows], permutations, seed)
            )
    ref_proba, cur_proba = predictor.proba_from_features(ref_features), predictor.proba_from_features(cur_features)
    classes = np.asarray(predictor.classes_).astype(str)
    tests.append(distribution_test("predictions", classes[ref_proba.argmax(1)], classes[cur_proba.argmax(1)]))
    tests.append(confidence_test(ref_proba.max(1), cur_proba.max(1)))
    try:
        ref_labels, cur_labels = reference.labels(predictor.label).dropna(), current.labels(predictor.label).dropna()
    except CatalogError:
        ref_labels = cur_labels = None
    if ref_labels is not None and len(ref_labels) and len(cur_labels):
        tests.append(distribution_test("labels", ref_labels.astype(str).to_numpy(), cur_labels.astype(str).to_numpy()))
    return DriftReport(reference.name, current.name, len(reference), len(current), alpha, tests)


def _html(report: DriftReport) -> str:
    colour = "#b00020" if report.drifted else "#1b5e20"
    rows = []
    for test in report.tests:
        flagged = test.p_value < report.threshold
        rows.append(
            f"<tr class='{'flag' if flagged else ''}'><td>{html.escape(test.name)}</td><td>{test.kind}</td>"
            f"<td>{test.statistic:.4g}</td><td>{test.p_value:.4g}</td><td>{'yes' if flagged else 'no'}</td></tr>"
        )
    shares = []
    for test in report.tests:
        if "shares" in test.detail:
            body = "".join(
                f"<tr><td>{html.escape(str(c))}</td><td>{a:.1%}</td><td>{b:.1%}</td></tr>"
                for c, (a, b) in test.detail["shares"].items()
            )
            shares.append(
                f"<h2>{html.escape(test.name)}: shares</h2><table><tr><th>class</th><th>reference</th><th>current</th></tr>{body}</table>"
            )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>skulens drift report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.flag{{background:#fde0e0}}
.verdict{{font-size:1.6em;color:{colour}}}</style></head><body>
<h1>Drift report</h1>
<p>Reference <b>{html.escape(report.reference)}</b> ({report.n_reference} rows) vs current <b>{html.escape(report.current)}</b>
({report.n_current} rows).</p>
<p class="verdict" id="verdict">Verdict: {report.verdict}</p>
<p>A test flags drift when its p-value is below {report.alpha} / {len(report.tests)} tests = {report.threshold:.4g} (Bonferroni).</p>
<h2>Tests</h2>
<table id="tests"><tr><th>test</th><th>kind</th><th>statistic</th><th>p-value</th><th>drift</th></tr>{"".join(rows)}</table>
{"".join(shares)}
</body></html>
"""


def write_drift_report(report: DriftReport, out: str | Path) -> Path:
    """Write ``drift.json`` and ``drift.html`` into ``out``; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    path = out / "drift.html"
    path.write_text(_html(report))
    return path
