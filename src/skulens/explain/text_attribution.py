"""Word attributions of a product text: which words moved the predicted class, and by how much.

Two methods, both in units of the target's log-odds, ``log p_c - log sum_{k != c} p_k`` (nats; unlike the
log-probability it does not flatten out when the model is very sure):

- **occlusion** (any text encoder and head, MiniLM included): each word is removed from the text in turn,
  the text blocks are re-encoded, and the drop of the fused log-odds is the word's score (the image, if
  any, is held fixed). This is the combined view: what each word does to the model's answer.
- **TF-IDF coefficient x value** (a TF-IDF block with a linear head): exact and instant. A term's score is
  its tf-idf value times its coefficient for the target centred on the expected coefficient under the
  block's prediction, ``x_j * (W_cj - sum_k p_k W_kj)`` (the gradient x input of ``log p_c``), times the
  block's fusion weight; an n-gram's score is shared among its words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from skulens.heads.linear import LinearProbe

WORD = re.compile(r"\w+")
#: Words occluded one by one at most (a MiniLM text is cut at 256 tokens anyway); later words score 0.
MAX_OCCLUDED_WORDS = 160
#: Characters of a product text explained at most: each occluded copy is re-encoded, so the cost of an
#: explanation grows with the text's length; longer texts are explained (and predicted) on their start.
MAX_EXPLAINED_CHARS = 5_000


@dataclass
class Word:
    """A word of the text (``text[start:end]``) and its score (change of the target's fused log-odds, nats)."""

    text: str
    start: int
    end: int
    score: float


@dataclass
class TextAttribution:
    """Word scores of one product text for ``target``: ``words`` combined (occlusion on the whole model),
    ``blocks[name]`` per text encoder (aligned with ``words``), ``methods[name]`` how each was computed."""

    text: str
    target: str
    words: list[Word]
    blocks: dict[str, list[float]] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ranked(self, block: str | None = None) -> list[tuple[str, float]]:
        """(word, score) from the most supporting to the most opposing, combined or of one ``block``."""
        scores = [w.score for w in self.words] if block is None else self.blocks[block]
        order = np.argsort(-np.asarray(scores), kind="stable")
        return [(self.words[i].text, float(scores[i])) for i in order]


def words_of(text: str) -> list[Word]:
    """The words of ``text`` (runs of letters/digits) with their character spans, scores 0."""
    return [Word(m.group(), m.start(), m.end(), 0.0) for m in WORD.finditer(text)]


def occluded_texts(text: str, words: list[Word], limit: int = MAX_OCCLUDED_WORDS) -> list[str]:
    """``text`` with each of its first ``limit`` words removed in turn."""
    return [text[: w.start] + text[w.end :] for w in words[:limit]]


def occlusion_scores(values: np.ndarray, n_words: int) -> np.ndarray:
    """Per word: the value for the full text minus the value with that word removed (0 beyond the
    occlusion limit); ``values`` are for ``[text, *occluded_texts(text, words)]``."""
    values = np.asarray(values, dtype=float)
    scores = np.zeros(n_words)
    scores[: len(values) - 1] = values[0] - values[1:]
    return scores


def tfidf_term_scores(vectorizer, head: LinearProbe, classes: np.ndarray, text: str, target: str) -> dict[str, float]:
    """Term -> ``x_j * (W_cj - sum_{k != c} q_k W_kj)`` for the terms of ``text`` (gradient x input of the
    block's log-odds of ``target``; ``q``: the other classes' probabilities, renormalised)."""
    x = sp.csr_matrix(vectorizer.transform([text]), dtype=np.float64)
    if target not in set(head.classes_):
        return {}
    coef = np.asarray(head.coef_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: scores are [0, s]
        coef = np.vstack([np.zeros_like(coef), coef])
    proba = head.predict_proba(x.astype(np.float32))[0]
    c = int(np.searchsorted(head.classes_, target))
    rest = np.delete(proba.astype(np.float64), c)
    rest = rest / rest.sum() if rest.sum() > 0 else np.full(len(rest), 1.0 / len(rest))
    centred = coef[c] - rest @ np.delete(coef, c, axis=0)
    terms = {i: t for t, i in vectorizer.vocabulary_.items() if i in set(x.indices)}
    return {terms[j]: float(v * centred[j]) for j, v in zip(x.indices, x.data)}


def spread_terms(vectorizer, text: str, words: list[Word], term_scores: dict[str, float]) -> np.ndarray:
    """Word scores from term scores: each occurrence of an n-gram gets an equal share of its term's score,
    split equally among its words (tokens found with the vectorizer's own token pattern)."""
    tokens = [(m.start(), m.group().lower()) for m in re.finditer(vectorizer.token_pattern, text)]
    low, high = vectorizer.ngram_range
    occurrences: dict[str, list[list[int]]] = {}
    for n in range(low, high + 1):
        for i in range(len(tokens) - n + 1):
            term = " ".join(t for _, t in tokens[i : i + n])
            if term in term_scores:
                occurrences.setdefault(term, []).append([start for start, _ in tokens[i : i + n]])
    by_start = {w.start: k for k, w in enumerate(words)}
    scores = np.zeros(len(words))
    for term, spans in occurrences.items():
        share = term_scores[term] / (len(spans) * len(spans[0]))
        for span in spans:
            for start in span:
                if start in by_start:
                    scores[by_start[start]] += share
    return scores
