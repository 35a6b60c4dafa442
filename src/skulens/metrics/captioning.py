"""Caption metrics: corpus BLEU (sacrebleu), CIDEr-D (pycocoevalcap's scorer), ROUGE-L (rouge-score), and
the word overlap, Jaccard and length ratio a product-title study reports.

All comparisons are case-insensitive (both sides lower-cased, whitespace collapsed): a title's casing is
a display choice. BLEU, ROUGE-L, word overlap and Jaccard are percentages (0-100); CIDEr-D is on its
usual 0-10 scale; length ratio is generated words / reference words over the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skulens.extras import require_extra
from skulens.metrics.intervals import bootstrap_ci


def _normalise(text: str) -> str:
    return " ".join(str(text).lower().split())


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} generated captions but {len(references)} references; give one reference per caption")
    if not references:
        raise ValueError("caption metrics need at least one (caption, reference) pair")
    return [_normalise(h) for h in hypotheses], [_normalise(r) for r in references]


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """sacrebleu's per-caption sufficient statistics (n, 10): hypothesis/reference lengths, n-gram matches
    and totals. Summing rows and :func:`bleu_from_statistics` gives corpus BLEU of any subset."""
    require_extra("caption", "sacrebleu", feature="caption metrics")
    from sacrebleu.metrics import BLEU

    hyps, refs = _check(hypotheses, references)
    return np.asarray(BLEU()._extract_corpus_statistics(hyps, [refs]), dtype=np.int64)


def bleu_from_statistics(stats: np.ndarray) -> float:
    require_extra("caption", "sacrebleu", feature="caption metrics")
    from sacrebleu.metrics import BLEU

    return float(BLEU()._compute_score_from_stats([int(v) for v in stats]).score)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (4-gram, 13a tokenisation, exponential smoothing), 0-100."""
    return bleu_from_statistics(bleu_statistics(hypotheses, references).sum(axis=0))


def cider_d(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, np.ndarray]:
    """CIDEr-D (corpus mean, per-caption scores) with one reference per caption; document frequencies come
    from the references, as in the COCO evaluation code."""
    require_extra("caption", "pycocoevalcap", feature="caption metrics")
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    hyps, refs = _check(hypotheses, references)
    scorer = CiderScorer(n=4, sigma=6.0)
    for hyp, ref in zip(hyps, refs):
        scorer += (hyp, [ref])
    score, scores = scorer.compute_score()
    return float(score), np.asarray(scores, dtype=float)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F-measure per caption (0-100)."""
    require_extra("caption", "rouge_score", feature="caption metrics")
    from rouge_score.rouge_scorer import RougeScorer

    hyps, refs = _check(hypotheses, references)
    scorer = RougeScorer(["rougeL"])
    return np.array([scorer.score(ref, hyp)["rougeL"].fmeasure * 100 for hyp, ref in zip(hyps, refs)])


def word_sets(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per caption: word overlap (share of the reference's distinct words that the caption contains), Jaccard
    of the two word sets (both 0-100), and the word counts (caption, reference) as an (n, 2) array."""
    hyps, refs = _check(hypotheses, references)
    overlap, jaccard, lengths = [], [], []
    for hyp, ref in zip(hyps, refs):
        h, r = set(hyp.split()), set(ref.split())
        overlap.append(100 * len(h & r) / len(r) if r else 0.0)
        jaccard.append(100 * len(h & r) / len(h | r) if h | r else 0.0)
        lengths.append((len(hyp.split()), len(ref.split())))
    return np.array(overlap), np.array(jaccard), np.array(lengths, dtype=float).reshape(-1, 2)


def caption_metrics(hypotheses: Sequence[str], references: Sequence[str], resamples: int = 0, seed: int = 0) -> dict:
    """``bleu, cider, rouge_l, word_overlap, jaccard, length_ratio, n`` of a set of captions; with
    ``resamples`` > 0 also ``intervals`` (95% percentile bootstrap over captions) of each."""
    stats = bleu_statistics(hypotheses, references)
    cider, cider_each = cider_d(hypotheses, references)
    rouge = rouge_l(hypotheses, references)
    overlap, jaccard, lengths = word_sets(hypotheses, references)
    result = {
        "bleu": bleu_from_statistics(stats.sum(axis=0)),
        "cider": cider,
        "rouge_l": float(rouge.mean()),
        "word_overlap": float(overlap.mean()),
        "jaccard": float(jaccard.mean()),
        "length_ratio": float(lengths[:, 0].sum() / max(lengths[:, 1].sum(), 1)),
        "n": len(stats),
    }
    if resamples > 0:
        per_row = {"cider": cider_each, "rouge_l": rouge, "word_overlap": overlap, "jaccard": jaccard}
        intervals = {
            "bleu": bootstrap_ci(lambda rows: bleu_from_statistics(stats[rows].sum(axis=0)), len(stats), resamples, seed)
        }
        for key, values in per_row.items():
            # CIDEr-D's document frequencies stay those of the full test set (a per-caption mean is resampled).
            intervals[key] = bootstrap_ci(lambda rows, v=values: float(v[rows].mean()), len(values), resamples, seed)
        result["intervals"] = {key: value["ci95"] for key, value in intervals.items()}
    return result
