"""LiT-style contrastive alignment: two projection heads from frozen image and text embeddings into one
L2-normalised space, trained with open_clip's symmetric ``ClipLoss`` and a learnable temperature.

The frozen encoders are never touched; only the projections (linear or a one-hidden-layer MLP) and the
temperature learn. Image inputs are standardised with their training mean/std (text inputs too when configured). Training is seeded
and deterministic on CPU; it stops early when recall on a validation set of pairs stops improving.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from skulens.heads.base import HeadError
from skulens.training.loop import TrainingLoop, TrainingSettings

MAX_LOGIT_SCALE = 100.0
#: A text input column is trained as sparse when fewer than this share of training rows use it (TF-IDF words).
SPARSE_COLUMN_SHARE = 0.05


@dataclass(frozen=True)
class AlignConfig(TrainingSettings):
    """Hyper-parameters of the projection heads and their training (:class:`TrainingSettings`; ``epochs`` is the
    most that run: early stopping watches validation recall)."""

    epochs: int = 30
    batch_size: int = 512
    weight_decay: float = 0.5
    dim: int = 256
    hidden: int = 0  # 0 = linear projection; > 0 = MLP with one hidden layer of this width
    dropout: float = 0.3
    init_temperature: float = 0.07
    standardize_text: bool = False  # sparse TF-IDF columns blow up when scaled to unit variance
    ridge_alpha: float = 0.0  # > 0: no contrastive training; a closed-form ridge map of photos into the text space
    # share of each training batch filled with whole product families (colour variants, same style) so the loss
    # must tell look-alikes apart; needs ``fit(families=...)``; 0 = uniformly random batches
    hard_negatives: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AlignConfig:
        """The config saved by :meth:`to_dict` (folders saved before the shared training settings say ``max_epochs``)."""
        known = set(cls.__dataclass_fields__)
        values = {("epochs" if k == "max_epochs" else k): v for k, v in values.items()}
        return cls(**{k: v for k, v in values.items() if k in known})


#: Most members of one family placed together in a family batch (a big family is split into chunks).
FAMILY_CHUNK = 16


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over a batch of matching pairs (row i of each side is a positive pair).

    ``same`` (optional, batch x batch booleans) marks pairs of rows that are not negatives of each other
    (identical titles): their off-diagonal logits are left out of both softmaxes.
    """

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, same: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = logit_scale * image @ text.T
        if same is not None:
            logits = logits.masked_fill(same & ~torch.eye(len(image), dtype=torch.bool), float("-inf"))
        labels = torch.arange(len(image), device=image.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _projection(inputs: int, config: AlignConfig) -> nn.Sequential:
    if config.hidden:
        return nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(inputs, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.dim)
        )
    return nn.Sequential(nn.Dropout(config.dropout), nn.Linear(inputs, config.dim))


def _safe_std(x: torch.Tensor) -> torch.Tensor:
    """Per-column standard deviation; constant columns get 1 so they stay constant instead of exploding."""
    std = x.std(0) if len(x) > 1 else torch.ones(x.shape[1])
    return torch.where(std < 1e-6, torch.ones_like(std), std)


class InputDropout:
    """Training-time dropout of frozen inputs with masks drawn by numpy's seeded PCG64 (about 2.5x cheaper on
    CPU than torch's Bernoulli draws, which cost more than the projection itself on wide inputs)."""

    def __init__(self, p: float, seed: int) -> None:
        self.p, self.rng = p, np.random.default_rng(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0:
            return x
        keep = torch.from_numpy(self.rng.random(tuple(x.shape), dtype=np.float32) >= self.p)
        return x * keep / (1.0 - self.p)


class SparseColumns:
    """Training text inputs split into their dense columns (a tensor) and their mostly-zero columns (CSR).

    A title's TF-IDF block has a few non-zero words out of thousands: the first layer of the text projection
    multiplies only those (a sparse batch times the matching weight columns) instead of thousands of zeros.
    Dropout is drawn on the stored values, so zeros stay zero as they would in the dense product.
    """

    def __init__(self, x: np.ndarray, sparse: np.ndarray) -> None:
        self.sparse_cols = torch.as_tensor(np.flatnonzero(sparse))
        self.dense_cols = torch.as_tensor(np.flatnonzero(~sparse))
        self.dense = torch.as_tensor(np.ascontiguousarray(x[:, ~sparse]))
        self.csr = sp.csr_matrix(x[:, sparse])

    @classmethod
    def of(cls, x: np.ndarray) -> SparseColumns | None:
        """The split of ``x`` (float32), or None when fewer than half of its columns are mostly zero."""
        sparse = (x != 0).mean(axis=0) < SPARSE_COLUMN_SHARE
        return cls(x, sparse) if sparse.mean() >= 0.5 else None

    def first_layer(self, rows: torch.Tensor, dropout, linear: nn.Linear) -> torch.Tensor:
        """``linear(dropout(x[rows]))`` computed from the dense part and the sparse part separately."""
        out = F.linear(dropout(self.dense[rows]), linear.weight[:, self.dense_cols], linear.bias)
        batch = self.csr[rows.numpy()].tocoo()
        values = dropout(torch.as_tensor(batch.data))
        indices = torch.as_tensor(np.vstack([batch.row, batch.col]).astype(np.int64))
        words = torch.sparse_coo_tensor(indices, values, batch.shape, check_invariants=False)  # scipy's rows are valid
        return out + torch.sparse.mm(words, linear.weight[:, self.sparse_cols].T)


def family_batches(families: np.ndarray, size: int, share: float, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of batches in which about ``share`` of each batch is whole product families.

    ``families`` holds a family code per row. Families with two or more members are cut into chunks of at
    most ``min(FAMILY_CHUNK, share * size)`` members (at least 2), so a small family always lands in one
    batch; chunks and members come in seeded random order. Each batch takes whole chunks up to
    ``share * size`` rows and fills up with the other rows in random order; when those run out, chunks fill
    the batches. Every row appears once per epoch, and the draw depends only on ``generator``.
    """
    families = np.asarray(families)
    order = torch.randperm(len(families), generator=generator).numpy()
    _, inverse, counts = np.unique(families, return_inverse=True, return_counts=True)
    take = min(size, max(2, round(share * size)))
    limit = min(FAMILY_CHUNK, take)
    chunks, single_rows = [], order[counts[inverse[order]] < 2]
    grouped = order[np.argsort(inverse[order], kind="stable")]  # one family after another, members in random order
    grouped = grouped[counts[inverse[grouped]] >= 2]
    for family in np.split(grouped, np.flatnonzero(np.diff(inverse[grouped])) + 1) if len(grouped) else []:
        chunks += np.array_split(family, -(-len(family) // limit))
    chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).numpy()]
    out, c, s = [], 0, 0
    while c < len(chunks) or s < len(single_rows):
        parts, used = [], 0
        while c < len(chunks) and used + len(chunks[c]) <= take:
            parts.append(chunks[c])
            used, c = used + len(chunks[c]), c + 1
        from_single = min(size - used, len(single_rows) - s)
        parts.append(single_rows[s : s + from_single])
        used, s = used + from_single, s + from_single
        while c < len(chunks) and used + len(chunks[c]) <= size:  # no other rows left: chunks fill the batch
            parts.append(chunks[c])
            used, c = used + len(chunks[c]), c + 1
        rows = np.concatenate(parts)
        if len(rows) >= 2:
            out.append(torch.as_tensor(rows))
    return out


def pair_recall_at_1(image: np.ndarray, text: np.ndarray) -> float:
    """Mean of text->image and image->text recall@1 for matching rows of two normalised matrices."""
    sims = image @ text.T
    diagonal = np.diag(sims)
    t2i = float(np.mean((sims > diagonal[None, :]).sum(axis=0) == 0))
    i2t = float(np.mean((sims > diagonal[:, None]).sum(axis=1) == 0))
    return (t2i + i2t) / 2


class AlignmentHeads(nn.Module):
    """Image and text projections plus the learnable logit scale (1 / temperature)."""

    def __init__(self, image_dim: int, text_dim: int, config: AlignConfig) -> None:
        super().__init__()
        self.config = config
        torch.manual_seed(config.seed)  # the initial weights are part of the seeded run
        self.image_proj = _projection(image_dim, config)
        self.text_proj = _projection(text_dim, config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature), dtype=torch.float32))
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_std", torch.ones(image_dim))
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_std", torch.ones(text_dim))
        self.history: list[dict] = []
        self.best_epoch = -1

    @property
    def scale(self) -> float:
        """The learned logit scale (cosine similarities are multiplied by it before a softmax)."""
        return float(self.logit_scale.detach().exp().clamp(max=MAX_LOGIT_SCALE))

    def _image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj((x - self.image_mean) / self.image_std), dim=-1)

    def _text(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj((x - self.text_mean) / self.text_std), dim=-1)

    def encode_image(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Normalised image embeddings (n, dim) from frozen image features (n, image_dim)."""
        return self._encode(self._image, features, batch_size)

    def encode_text(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Normalised text embeddings (n, dim) from frozen text features (n, text_dim)."""
        return self._encode(self._text, features, batch_size)

    def _encode(self, fn, features: np.ndarray, batch_size: int) -> np.ndarray:
        was_training = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                out.append(fn(torch.as_tensor(np.asarray(features[start : start + batch_size], dtype=np.float32))).numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.config.dim), dtype=np.float32)

    def fit(
        self,
        image: np.ndarray,
        text: np.ndarray,
        val_image: np.ndarray | None = None,
        val_text: np.ndarray | None = None,
        log=None,
        families: np.ndarray | None = None,
        titles: np.ndarray | None = None,
    ) -> AlignmentHeads:
        """Train on matching rows of ``image`` and ``text``; keep the epoch with the best validation recall@1.

        Without a validation set every epoch runs and the last one is kept. ``families`` (a family key per row)
        is used when ``config.hard_negatives`` > 0 (:func:`family_batches`); ``titles`` (a normalised title per
        row), when given, keeps rows with identical titles from acting as each other's negatives.
        """
        if len(image) != len(text):
            raise HeadError(f"image features have {len(image)} rows but text features have {len(text)}")
        if len(image) < 2:
            raise HeadError("contrastive training needs at least two pairs")
        cfg = self.config
        if cfg.hard_negatives > 0 and (families is None or len(families) != len(image)):
            raise HeadError("hard_negatives > 0 needs a family key for every training row (fit(..., families=...))")
        family_codes = np.unique(np.asarray(families), return_inverse=True)[1] if cfg.hard_negatives > 0 else None
        title_codes = torch.as_tensor(np.unique(np.asarray(titles), return_inverse=True)[1]) if titles is not None else None
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        x_img = torch.as_tensor(np.asarray(image, dtype=np.float32))
        x_txt = torch.as_tensor(np.asarray(text, dtype=np.float32))
        self.image_mean.copy_(x_img.mean(0))
        self.image_std.copy_(_safe_std(x_img))
        if cfg.standardize_text:
            self.text_mean.copy_(x_txt.mean(0))
            self.text_std.copy_(_safe_std(x_txt))
        loss_fn = ClipLoss()
        has_val = val_image is not None and val_text is not None and len(val_image) > 1
        split = None if cfg.standardize_text else SparseColumns.of(x_txt.numpy())
        scaled_img = (x_img - self.image_mean) / self.image_std  # standardised once, not per batch
        config = cfg.loop_config(monitor="val_recall1")

        def batches(size: int):
            if family_codes is not None:
                yield from family_batches(family_codes, size, cfg.hard_negatives, generator)
                return
            order = torch.randperm(len(x_img), generator=generator)
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                if len(rows) >= 2:  # a contrastive batch needs a negative
                    yield rows

        drop = InputDropout(cfg.dropout, cfg.seed)  # each projection is (dropout, linear, [GELU, linear])

        def loss_of(rows: torch.Tensor) -> torch.Tensor:
            scale = self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
            if split is None:
                text = self.text_proj[1:](drop((x_txt[rows] - self.text_mean) / self.text_std))
            else:  # the first linear layer from the split input
                text = self.text_proj[2:](split.first_layer(rows, drop, self.text_proj[1]))
            image = self.image_proj[1:](drop(scaled_img[rows]))
            same = None if title_codes is None else title_codes[rows][:, None] == title_codes[rows][None, :]
            return loss_fn(F.normalize(image, dim=-1), F.normalize(text, dim=-1), scale, same)

        def validate(epoch: int, train_loss: float) -> dict:
            record = {"epoch": epoch - 1, "loss": train_loss, "scale": self.scale}
            if has_val:
                record["val_recall1"] = pair_recall_at_1(self.encode_image(val_image), self.encode_text(val_text))
            return record

        loop = TrainingLoop(self, config, steps_per_epoch=-(-len(x_img) // cfg.batch_size))
        result = loop.run(batches, loss_of, validate, batch_size=cfg.batch_size, on_epoch=log)
        self.history, self.best_epoch = result.history, result.best_epoch - 1
        self.eval()
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer as a float32 array (for safetensors / npz)."""
        return {key: value.detach().cpu().numpy().astype(np.float32) for key, value in self.state_dict().items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], config: AlignConfig) -> AlignmentHeads:
        image_dim = int(arrays["image_mean"].shape[0])
        text_dim = int(arrays["text_mean"].shape[0])
        heads = cls(image_dim, text_dim, config)
        state = {key: torch.as_tensor(np.asarray(value, dtype=np.float32)) for key, value in arrays.items()}
        try:
            heads.load_state_dict(state)
        except RuntimeError as exc:
            raise HeadError(f"saved alignment weights do not match the saved configuration: {exc}") from None
        heads.eval()
        return heads
