"""Greedy and beam search over a caption decoder's ``logits(memory, tokens)``.

Hypotheses are ranked by log-probability divided by the GNMT length penalty ``((5 + n) / 6) ** alpha``
(alpha 0 = raw log-probability, larger favours longer titles). Padding, ``<bos>`` and ``<unk>`` are never
generated, ``<eos>`` never as the first word (no empty title), and with ``no_repeat`` a word already in
the title is not generated again (the repetition guard; product titles rarely repeat a word).

Every image of a batch is searched at once: each step is one decoder call over all (image, beam) rows.
Decoders with ``start(memory)`` / ``step(state, words)`` (:mod:`skulens.heads.caption_decoder`) are run
incrementally, one new position per step; others are run over the whole prefix with ``logits(memory,
tokens)`` (:class:`PrefixDecoder`), which gives the same scores more slowly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skulens.heads.caption_vocab import BOS, EOS, PAD, UNK


@dataclass(frozen=True)
class Candidate:
    tokens: tuple[int, ...]  # words only: no <bos>, no <eos>
    log_prob: float
    score: float  # log_prob / length penalty


def length_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


class PrefixDecoder:
    """``start`` / ``step`` for a model with ``logits(memory, tokens)`` only: every step rescores the whole prefix."""

    static_state = frozenset({"memory"})

    def __init__(self, model) -> None:
        self.model = model

    def start(self, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"memory": memory, "tokens": torch.zeros(len(memory), 0, dtype=torch.long, device=memory.device)}

    def step(self, state: dict[str, torch.Tensor], words: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = torch.cat([state["tokens"], words.unsqueeze(1)], dim=1)
        memory = state["memory"].repeat_interleave(len(tokens) // len(state["memory"]), dim=0)
        return self.model.logits(memory, tokens)[:, -1], {"memory": state["memory"], "tokens": tokens}


def incremental(model):
    """``model`` itself when it decodes incrementally, else a :class:`PrefixDecoder` around it."""
    return model if hasattr(model, "start") and hasattr(model, "step") else PrefixDecoder(model)


def _select(decoder, state: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The state of the hypotheses ``rows`` continue . What depends
    on the image only (``static_state``, e.g. cross-attention keys) keeps one row per image: hypotheses stay
    within their image's consecutive beam rows."""
    static = getattr(decoder, "static_state", frozenset())
    return {k: v if k in static else v.index_select(0, rows) for k, v in state.items()}


def _next_log_probs(logits: torch.Tensor, tokens: torch.Tensor, step: int, max_len: int, no_repeat: bool) -> torch.Tensor:
    logp = logits.float().log_softmax(dim=-1)
    logp[:, [PAD, BOS, UNK]] = -math.inf
    if step == 0:
        logp[:, EOS] = -math.inf
    if no_repeat:
        logp.scatter_(1, tokens, -math.inf)
    if step == max_len:
        logp[:, torch.arange(logp.shape[1]) != EOS] = -math.inf
    dead = torch.isinf(logp).all(dim=-1)
    logp[dead, EOS] = 0.0  # nothing left to say: end the title rather than emit an impossible word
    return logp


@torch.inference_mode()
def beam_search(
    model, memory: torch.Tensor, beam: int = 3, max_len: int = 20, alpha: float = 0.0, no_repeat: bool = True
) -> list[list[Candidate]]:
    """Up to ``beam`` finished candidates per image (best first) for each row of ``memory``; ``beam=1``
    is greedy search."""
    if beam < 1:
        raise ValueError(f"beam must be at least 1, not {beam}")
    batch = memory.shape[0]
    decoder = incremental(model)
    state = _select(decoder, decoder.start(memory), torch.arange(batch).repeat_interleave(beam))
    tokens = torch.full((batch * beam, 1), BOS, dtype=torch.long)
    scores = torch.full((batch, beam), -math.inf)
    scores[:, 0] = 0.0
    finished: list[list[Candidate]] = [[] for _ in range(batch)]
    for step in range(max_len + 1):
        logits, state = decoder.step(state, tokens[:, -1])
        logp = _next_log_probs(logits, tokens, step, max_len, no_repeat)
        vocab = logp.shape[1]
        total = (scores.view(-1, 1) + logp).view(batch, beam * vocab)
        top_scores, top_index = total.topk(min(2 * beam, beam * vocab), dim=1)
        next_rows, next_words, next_scores = [], [], []
        for b in range(batch):
            chosen = []
            for score, index in zip(top_scores[b].tolist(), top_index[b].tolist()):
                if score == -math.inf or len(chosen) == beam:
                    break
                row, word = b * beam + index // vocab, index % vocab
                if word == EOS:
                    words = tuple(tokens[row, 1:].tolist())
                    finished[b].append(Candidate(words, score, score / length_penalty(len(words), alpha)))
                else:
                    chosen.append((row, word, score))
            while len(chosen) < beam:  # fewer live hypotheses than beams: pad with dead copies
                chosen.append((b * beam, PAD, -math.inf))
            for row, word, score in chosen:
                next_rows.append(row)
                next_words.append(word)
                next_scores.append(score)
        if all(len(f) >= beam for f in finished) or step == max_len:
            break
        rows = torch.tensor(next_rows)
        tokens = torch.cat([tokens[rows], torch.tensor(next_words).unsqueeze(1)], dim=1)
        state = _select(decoder, state, rows)
        scores = torch.tensor(next_scores).view(batch, beam)
    return [sorted(f, key=lambda c: -c.score)[:beam] for f in finished]
