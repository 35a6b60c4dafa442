"""Partial fine-tuning of MiniLM on labelled texts (``skulens finetune text``): review stars or product labels.

The token embeddings and the first ``freeze_layers`` transformer layers keep their pretrained weights; their
hidden states are computed **once** per text (truncated to ``max_length`` tokens), so every epoch runs only
the top layer(s), mean pooling and a new classifier, with the shared loop of
:mod:`skulens.training.finetune`. For star ratings the loss is ordinal-aware
(:class:`OrdinalStarLoss`). The result is a sentence-transformers folder usable as encoder
``finetuned-text:<folder>`` (see :mod:`skulens.encoders.finetuned_text`).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skulens.catalog.schema import Catalog
from skulens.catalog.splits import duplicate_groups, grouped_holdout, text_groups
from skulens.encoders.finetuned_text import save_finetuned_text
from skulens.encoders.quiet import quiet_loading
from skulens.encoders.text import minilm_path
from skulens.progress import progress_bar
from skulens.training.finetune import (
    FinetuneError,
    TrainConfig,
    TrainResult,
    check_class_counts,
    macro_f1,
    plot_curves,
    predict_logits,
    train,
)

TARGETS = ("stars", "label")
#: Default truncation: on the Women's clothing reviews (title + text) 11% of the texts exceed 128 MiniLM
#: tokens and 0.03% exceed 160 (median 80, longest 169); product titles are far shorter.
MAX_LENGTH = 160
#: The new classifier's learning rate relative to the fine-tuned layers'.
HEAD_LR_SCALE = 30.0


@dataclass(frozen=True)
class TextRecipe:
    """What is fine-tuned and how the texts are read."""

    target: str = "label"  # "stars" (1-5 ratings, ordinal loss) or "label" (any classes)
    freeze_layers: int | None = None  # None: all layers but the last
    max_length: int = MAX_LENGTH
    dropout: float = 0.1
    val_size: float = 0.15
    ordinal_weight: float = 1.0  # stars only: weight of the expected-rating error in the loss

    def frozen(self, layers: int) -> int:
        frozen = layers - 1 if self.freeze_layers is None else self.freeze_layers
        if not 0 <= frozen < layers:
            raise FinetuneError(f"--freeze-layers must be between 0 and {layers - 1} for MiniLM ({layers} layers); got {frozen}")
        return frozen


class OrdinalStarLoss(nn.Module):
    """Label-smoothed cross-entropy plus ``weight`` x the absolute error of the expected rating ``sum_k v_k p_k``.

    Cross-entropy alone treats a 1-star answer to a 5-star review like a 4-star one; the second term charges
    probability mass by its distance from the true star, and it is exactly the headline metric (the MAE of
    the expected rating). Class-balanced weights were not used: they trade accuracy and MAE for recall on
    rare stars, a choice the review model already makes on its own validation data (``class_weight`` and the
    prior-correction ``alpha``).
    """

    def __init__(self, values: Sequence[float], label_smoothing: float = 0.1, weight: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("values", torch.as_tensor(values, dtype=torch.float32))
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.weight = weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        expected = logits.softmax(dim=1) @ self.values
        return self.cross_entropy(logits, target) + self.weight * (expected - self.values[target]).abs().mean()


class TextTop(nn.Module):
    """The trainable top of a BERT-like model: layers ``frozen..``, mean pooling and a classifier.

    Input: cached frozen-layer states with the attention mask as the last channel, (n, tokens, hidden + 1).
    It shares its layers with ``model``, so training it updates ``model`` in place.
    """

    def __init__(self, model: nn.Module, frozen: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.config = model.config
        self.layers = nn.ModuleList(model.encoder.layer[frozen:])
        for param in self.layers.parameters():
            param.requires_grad_(True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(model.config.hidden_size, n_classes)

    def param_groups(self, lr: float) -> list[dict]:
        """AdamW groups: the pretrained layers at ``lr``, the new classifier at ``HEAD_LR_SCALE`` x ``lr`` (a
        randomly initialised head needs far larger steps than the layers it sits on)."""
        return [
            {"params": list(self.layers.parameters())},
            {"params": list(self.classifier.parameters()), "lr": lr * HEAD_LR_SCALE},
        ]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-pooled (not normalised) token states of the last layer."""
        from transformers.masking_utils import create_bidirectional_mask

        mask = x[..., -1]
        length = max(1, int(mask.sum(1).max()))  # texts are left-aligned: drop the batch's all-padding tail
        hidden, mask = x[:, :length, :-1], mask[:, :length]
        attention = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask.long())
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=attention)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def load_base(folder: str | Path) -> nn.Module:
    """The transformer of a sentence-transformers folder (transformers ``AutoModel``, local files only), frozen."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModel

    with quiet_loading():
        model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def tokenize(folder: str | Path, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of ``texts`` with the folder's fast tokenizer, truncated to ``max_length``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return [encoding.ids for encoding in tokenizer.encode_batch([t if t.strip() else " " for t in texts])]


@torch.no_grad()
def frozen_states(
    model: nn.Module, frozen: int, ids: list[list[int]], batch_size: int = 64, progress: bool = False
) -> torch.Tensor:
    """Hidden states after the embeddings and the first ``frozen`` layers, with the attention mask as the last
    channel: float16 (n, longest text, hidden + 1), computed in batches of similar lengths."""
    from transformers.masking_utils import create_bidirectional_mask

    length = max(len(row) for row in ids)
    out = torch.zeros((len(ids), length, model.config.hidden_size + 1), dtype=torch.float16)
    order = np.argsort([len(row) for row in ids], kind="stable")
    with progress_bar(len(ids), "frozen layers (once)", progress) as bar:
        for start in range(0, len(ids), batch_size):
            chosen = order[start : start + batch_size]
            longest = max(len(ids[i]) for i in chosen)
            input_ids = torch.zeros((len(chosen), longest), dtype=torch.long)
            mask = torch.zeros((len(chosen), longest), dtype=torch.long)
            for row, i in enumerate(chosen):
                input_ids[row, : len(ids[i])] = torch.as_tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            hidden = model.embeddings(input_ids=input_ids)
            attention = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
            for layer in model.encoder.layer[:frozen]:
                hidden = layer(hidden, attention_mask=attention)
            index = torch.as_tensor(chosen)
            out[index, :longest, :-1] = hidden.half()
            out[index, :longest, -1] = mask.half()
            bar.advance(len(chosen))
    return out


def star_examples(catalog: Catalog, fields: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, star labels '1'..'5' or None, duplicate-text groups) of a review catalog."""
    from skulens.tasks.reviews import labelled_stars

    if "rating" not in catalog.frame.columns:
        raise FinetuneError(
            f"'{catalog.name}' has no 'rating' column, which --target stars needs (1-5 stars per row); columns: "
            f"{', '.join(map(str, catalog.frame.columns))}. Map yours with --columns rating=<column>, or use --target label"
        )
    stars = labelled_stars(catalog)
    labels = np.array([None if np.isnan(s) else str(int(s)) for s in stars], dtype=object)
    return catalog.texts(fields), labels, text_groups(catalog, tuple(fields))


def label_examples(catalog: Catalog, label: int | str, fields: Sequence[str], min_class_count: int = 0):
    """(texts, labels, duplicate groups) of a labelled catalog's rows (titles and duplicate images grouped
    as everywhere else, :func:`~skulens.catalog.splits.duplicate_groups`, without reading images)."""
    from skulens.tasks.categorize import CategoryPredictor

    rows, labels = CategoryPredictor(label=label, min_class_count=min_class_count).training_rows(catalog)
    return rows.texts(fields), np.asarray(labels, dtype=object), duplicate_groups(rows, images=False)


def validation_metrics(y_true: np.ndarray, proba: np.ndarray, values: np.ndarray | None) -> dict[str, float]:
    """Accuracy, macro-F1 and (for numeric classes) the MAE of the expected value ``sum_k v_k p_k``."""
    pred = proba.argmax(1)
    metrics = {"accuracy": float((pred == y_true).mean()), "macro_f1": macro_f1(y_true, pred)}
    if values is not None:
        metrics["expected_rating_mae"] = float(np.abs(proba @ values - values[y_true]).mean())
    return metrics


@dataclass
class TextFinetuneOutcome:
    folder: Path
    result: TrainResult
    classes: list[str]
    n_train: int
    n_val: int
    seconds: float
    validation: dict[str, float]


def finetune_text(
    texts: Sequence[str],
    labels: Sequence[str | None],
    groups: Sequence,
    out: Path,
    recipe: TextRecipe = TextRecipe(),
    config: TrainConfig = TrainConfig(lr=2e-4, weight_decay=0.01),
    on_epoch: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    stop_after: int | None = None,
    base_folder: str | Path | None = None,
) -> TextFinetuneOutcome:
    """Fine-tune MiniLM on ``texts`` (``None`` labels and empty texts are skipped) and write the encoder folder ``out``.

    A grouped, stratified ``recipe.val_size`` of the texts (same ``groups`` kept together) is held out for early
    stopping and the reported validation metrics. Checkpoints go to ``out/checkpoint``; running again after
    an interrupt resumes there.
    """
    if recipe.target not in TARGETS:
        raise FinetuneError(f"--target must be one of {', '.join(TARGETS)}; got {recipe.target!r}")
    started = time.perf_counter()
    labels = np.asarray(labels, dtype=object)
    keep = np.array([lab is not None and bool(str(t).strip()) for t, lab in zip(texts, labels)], dtype=bool)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise FinetuneError("no labelled rows with text; nothing to fine-tune on")
    row_labels = labels[rows].astype(str)
    check_class_counts(row_labels, noun="texts")
    classes, y = np.unique(row_labels, return_inverse=True)
    values = None
    if recipe.target == "stars":
        values = classes.astype(float)
        if recipe.ordinal_weight < 0:
            raise FinetuneError("--ordinal-weight must be >= 0")
    train_rows, val_rows = grouped_holdout(np.arange(len(rows)), y, np.asarray(groups)[rows], recipe.val_size, config.seed)
    base_folder = Path(base_folder or minilm_path())
    model = load_base(base_folder)
    frozen = recipe.frozen(len(model.encoder.layer))
    ids = tokenize(base_folder, [texts[r] for r in rows], recipe.max_length)
    truncated = sum(len(i) >= recipe.max_length for i in ids)
    log(
        f"fine-tuning MiniLM layers {frozen}-{len(model.encoder.layer) - 1} + pooling + head on {len(train_rows)} texts "
        f"({len(classes)} classes; {len(val_rows)} for early stopping); {truncated} text(s) cut at {recipe.max_length} tokens"
    )
    states = frozen_states(model, frozen, ids, config.batch_size, progress)
    torch.manual_seed(config.seed)
    top = TextTop(model, frozen, len(classes), recipe.dropout)
    loss_fn = OrdinalStarLoss(values, config.label_smoothing, recipe.ordinal_weight) if values is not None else None
    result = train(
        top,
        states[train_rows].unsqueeze(0),
        y[train_rows],
        states[val_rows],
        y[val_rows],
        config,
        checkpoint_dir=out / "checkpoint",
        on_epoch=on_epoch,
        log=log,
        stop_after=stop_after,
        loss_fn=loss_fn,
    )
    seconds = time.perf_counter() - started
    validation: dict[str, float] = {}
    if result.finished:
        proba = predict_logits(top, states[val_rows], result.batch_size).softmax(1).numpy()
        validation = validation_metrics(y[val_rows], proba, values)
        spec = {
            "base_encoder": "minilm",
            "target": recipe.target,
            "frozen_layers": frozen,
            "classes": [str(c) for c in classes],
            "recipe": {**asdict(recipe), "freeze_layers": frozen},
            "training": config.as_dict(),
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_macro_f1,
            "validation": validation,
            "epochs_run": result.epochs_run,
            "batch_size_used": result.batch_size,
            "history": result.history,
            "n_train": int(len(train_rows)),
            "n_val": int(len(val_rows)),
            "truncated_texts": int(truncated),
            "seconds": round(seconds, 1),
            "threads": torch.get_num_threads(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
        }
        save_finetuned_text(out, base_folder, model, top.classifier, recipe.max_length, spec)
        plot_curves(result.history, out / "curves.png", f"fine-tuning MiniLM ({recipe.target})")
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    return TextFinetuneOutcome(out, result, [str(c) for c in classes], len(train_rows), len(val_rows), seconds, validation)
