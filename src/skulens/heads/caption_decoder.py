"""Caption decoders over image regions: a small transformer decoder and an LSTM with additive attention.

Both take ``(batch, regions, channels)`` image features (EfficientNet-Lite's last map), project them to
``d_model`` and add one global (mean) token and, optionally, one token made from a conditioning vector
(e.g. predicted attribute probabilities). ``logits(memory, tokens)`` scores the next word at every
position of ``tokens`` (causal), which serves teacher-forced training and step-by-step search alike.
"""

from __future__ import annotations

import torch
from torch import nn

from skulens.heads.caption_vocab import PAD

ARCHITECTURES = ("transformer", "lstm")


class RegionMemory(nn.Module):
    """Image regions (+ a mean token, + a conditioning token) as ``(batch, tokens, d_model)``."""

    def __init__(self, channels: int, regions: int, d_model: int, cond_dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, d_model), nn.GELU(), nn.LayerNorm(d_model))
        self.position = nn.Parameter(torch.zeros(1, regions + 1, d_model))
        self.cond = nn.Linear(cond_dim, d_model) if cond_dim else None

    def forward(self, maps: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        regions = self.project(maps.float())
        memory = torch.cat([regions.mean(dim=1, keepdim=True), regions], dim=1) + self.position
        if self.cond is not None:
            if cond is None:
                raise ValueError("this decoder was trained with a conditioning vector; pass cond")
            memory = torch.cat([self.cond(cond.float()).unsqueeze(1), memory], dim=1)
        return memory


class TransformerCaptioner(nn.Module):
    """Pre-norm transformer decoder (self-attention over words, cross-attention over regions), tied output."""

    def __init__(
        self,
        vocab_size: int,
        channels: int,
        regions: int,
        d_model: int = 256,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        max_len: int = 24,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        self.memory = RegionMemory(channels, regions, d_model, cond_dim)
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.position = nn.Embedding(max_len + 2, d_model)
        layer = nn.TransformerDecoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(d_model)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.dropout = nn.Dropout(dropout)
        # Tied input/output embedding: unit-scale logits at initialisation, inputs scaled back up by sqrt(d).
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        nn.init.normal_(self.position.weight, std=0.02)
        self.scale = d_model**0.5

    def logits(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        steps = tokens.shape[1]
        x = self.dropout(self.embed(tokens) * self.scale + self.position(torch.arange(steps, device=tokens.device)))
        causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=tokens.device), diagonal=1)
        h = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=tokens == PAD)
        return self.norm(h) @ self.embed.weight.T + self.bias


class LSTMCaptioner(nn.Module):
    """Show-attend-tell style: an LSTM cell fed the previous word and an attention-weighted region context."""

    def __init__(
        self,
        vocab_size: int,
        channels: int,
        regions: int,
        d_model: int = 256,
        layers: int = 1,
        heads: int = 1,
        dropout: float = 0.1,
        max_len: int = 24,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        del layers, heads, max_len  # one cell; signature shared with the transformer
        self.memory = RegionMemory(channels, regions, d_model, cond_dim)
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.init_h = nn.Linear(d_model, 2 * d_model)
        self.cell = nn.LSTMCell(2 * d_model, d_model)
        self.attend_query = nn.Linear(d_model, d_model)
        self.attend_score = nn.Linear(d_model, 1)
        self.out = nn.Linear(2 * d_model, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def logits(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        h, c = self.init_h(memory.mean(dim=1)).tanh().chunk(2, dim=-1)
        emb = self.dropout(self.embed(tokens))
        outputs = []
        for t in range(tokens.shape[1]):
            scores = self.attend_score(torch.tanh(memory + self.attend_query(h).unsqueeze(1))).squeeze(-1)
            context = (scores.softmax(dim=-1).unsqueeze(-1) * memory).sum(dim=1)
            h, c = self.cell(torch.cat([emb[:, t], context], dim=-1), (h, c))
            outputs.append(self.out(self.dropout(torch.cat([h, context], dim=-1))))
        return torch.stack(outputs, dim=1)


def build_decoder(architecture: str, **kwargs) -> nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown caption decoder '{architecture}'; choose from {list(ARCHITECTURES)}")
    return (TransformerCaptioner if architecture == "transformer" else LSTMCaptioner)(**kwargs)
