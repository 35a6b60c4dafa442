"""Caption decoders over image regions: a small transformer decoder and an LSTM with additive attention.

Both take ``(batch, regions, channels)`` image features (EfficientNet-Lite's last map), project them to
``d_model`` and add one global (mean) token and, optionally, one token made from a conditioning vector
(e.g. predicted attribute probabilities). ``logits(memory, tokens)`` scores the next word at every
position of ``tokens`` (causal): teacher-forced training. Search decodes incrementally instead:
``start(memory)`` returns a state (a dict of batch-first tensors: the cross-attention keys and values
computed once, the self-attention keys and values of the words so far, or the LSTM's cell), and
``step(state, words)`` scores the next word after one more word per row, so a title of n words costs n
one-position steps rather than n passes over the whole prefix. Both give the same scores as ``logits``.
The entries named in ``static_state`` depend on the image only and hold one row per image; ``step`` may
get several consecutive rows (the beams) per image and pairs them up by position.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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

    @property
    def static_state(self) -> frozenset[str]:
        """State entries that depend on the image only (search keeps them when it reorders hypotheses)."""
        return frozenset(f"cross_{kv}{i}" for i in range(len(self.decoder.layers)) for kv in "kv")

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, positions, d_model) -> (batch, heads, positions, d_model / heads)."""
        attention = self.decoder.layers[0].self_attn
        return x.unflatten(-1, (attention.num_heads, attention.head_dim)).transpose(1, 2)

    def start(self, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        """The search state before the first word: each layer's cross-attention keys and values of ``memory``
        (computed once per image) and empty self-attention caches."""
        d, batch = memory.shape[-1], memory.shape[0]
        state = {"pad": torch.zeros(batch, 0, dtype=torch.bool, device=memory.device)}
        for i, layer in enumerate(self.decoder.layers):
            weight, bias = layer.multihead_attn.in_proj_weight, layer.multihead_attn.in_proj_bias
            keys, values = F.linear(memory, weight[d:], bias[d:]).chunk(2, dim=-1)
            state[f"cross_k{i}"], state[f"cross_v{i}"] = self._heads(keys), self._heads(values)
            empty = memory.new_zeros(batch, layer.self_attn.num_heads, 0, layer.self_attn.head_dim)
            state[f"self_k{i}"], state[f"self_v{i}"] = empty, empty
        return state

    def step(self, state: dict[str, torch.Tensor], words: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Next-word scores (batch, vocab) after appending ``words`` (batch,), and the new state (eval mode:
        the same numbers as the last position of :meth:`logits` over the whole prefix)."""
        position = state["pad"].shape[1]
        pad = torch.cat([state["pad"], (words == PAD).unsqueeze(1)], dim=1)
        keep = ~pad[:, None, None, :]  # (batch, 1, 1, keys): padded words are not attended to
        x = self.embed(words).unsqueeze(1) * self.scale + self.position.weight[position]
        new = {"pad": pad}
        d = x.shape[-1]
        for i, layer in enumerate(self.decoder.layers):
            q, k, v = F.linear(layer.norm1(x), layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias).chunk(3, dim=-1)
            keys = new[f"self_k{i}"] = torch.cat([state[f"self_k{i}"], self._heads(k)], dim=2)
            values = new[f"self_v{i}"] = torch.cat([state[f"self_v{i}"], self._heads(v)], dim=2)
            attended = F.scaled_dot_product_attention(self._heads(q), keys, values, attn_mask=keep)
            x = x + layer.self_attn.out_proj(attended.transpose(1, 2).flatten(2))
            cross = layer.multihead_attn
            q = self._heads(F.linear(layer.norm2(x), cross.in_proj_weight[:d], cross.in_proj_bias[:d]))
            keys, values = state[f"cross_k{i}"], state[f"cross_v{i}"]
            rows, heads, _, head_dim = q.shape
            q = q.reshape(len(keys), -1, heads, head_dim).transpose(1, 2)  # an image's beams attend its regions together
            attended = F.scaled_dot_product_attention(q, keys, values)
            x = x + cross.out_proj(attended.transpose(1, 2).reshape(rows, 1, d))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
            new[f"cross_k{i}"], new[f"cross_v{i}"] = state[f"cross_k{i}"], state[f"cross_v{i}"]
        return (self.norm(x[:, 0]) @ self.embed.weight.T + self.bias), new


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

    #: State entries that depend on the image only (search keeps them when it reorders hypotheses).
    static_state = frozenset({"memory"})

    def start(self, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        """The search state before the first word: the regions and the cell's initial state."""
        h, c = self.init_h(memory.mean(dim=1)).tanh().chunk(2, dim=-1)
        return {"memory": memory, "h": h, "c": c}

    def step(self, state: dict[str, torch.Tensor], words: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Next-word scores (batch, vocab) after feeding ``words`` (batch,), and the new state."""
        memory, h = state["memory"], state["h"]
        images, regions, d = memory.shape
        query = self.attend_query(h).view(images, -1, 1, d)  # an image's beams (consecutive rows) share its regions
        scores = self.attend_score(torch.tanh(memory.unsqueeze(1) + query)).squeeze(-1)
        context = torch.einsum("ibr,ird->ibd", scores.softmax(dim=-1), memory).reshape(len(h), d)
        h, c = self.cell(torch.cat([self.dropout(self.embed(words)), context], dim=-1), (h, state["c"]))
        return self.out(self.dropout(torch.cat([h, context], dim=-1))), {"memory": memory, "h": h, "c": c}


def build_decoder(architecture: str, **kwargs) -> nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown caption decoder '{architecture}'; choose from {list(ARCHITECTURES)}")
    return (TransformerCaptioner if architecture == "transformer" else LSTMCaptioner)(**kwargs)
