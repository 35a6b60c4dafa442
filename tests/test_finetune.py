"""Fine-tuning: the shared training loop (loss falls, resume equals an uninterrupted run, batch back-off), the
too-few-images error, and the fine-tuned EfficientNet-Lite encoder (folder, identity, ONNX parity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from skulens.catalog import build_catalog
from skulens.encoders import EncoderError, create_encoder
from skulens.tasks.finetune_image import ImageRecipe, check_class_counts, finetune_image
from skulens.training.finetune import FinetuneError, TrainConfig, train
from skulens.training.loop import CHECKPOINT_NAME, with_batch_backoff

SHAPES = ("circle", "square")


def _drawn(shape: str, seed: int, size: int = 32) -> Image.Image:
    """A white image with a coloured circle or square at a random place."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    x, y = rng.integers(2, size // 2, size=2)
    box = [int(x), int(y), int(x) + size // 3, int(y) + size // 3]
    colour = tuple(int(c) for c in rng.integers(0, 200, size=3))
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    return image


def _tensors(n_per_class: int, views: int) -> tuple[torch.Tensor, np.ndarray]:
    images, labels = [], []
    for label, shape in enumerate(SHAPES):
        for i in range(n_per_class):
            images.append([np.asarray(_drawn(shape, 1000 * v + 10 * i + label)) for v in range(views)])
            labels.append(label)
    array = np.stack(images, axis=1).astype(np.float32) / 127.5 - 1  # (views, n, h, w, 3)
    return torch.from_numpy(array).permute(0, 1, 4, 2, 3).contiguous(), np.array(labels)


def _tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip


CONFIG = TrainConfig(epochs=6, batch_size=8, lr=1e-2, warmup_epochs=1, patience=10, seed=3)


def test_training_loss_falls_and_early_stopping_keeps_best():
    views, y = _tensors(12, views=2)
    val, y_val = _tensors(4, views=1)
    model = _tiny_net()
    result = train(model, views, y, val[0], y_val, CONFIG, log=lambda m: None)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 6 and result.finished
    assert losses[-1] < losses[0]
    assert result.best_val_macro_f1 == max(h["val_macro_f1"] for h in result.history)
    assert [h["lr"] for h in result.history][-1] < max(h["lr"] for h in result.history)  # cosine decay


def test_resume_after_interrupt_reaches_the_same_state(tmp_path):
    views, y = _tensors(8, views=2)
    val, y_val = _tensors(3, views=1)
    straight = _tiny_net()
    train(straight, views, y, val[0], y_val, CONFIG, checkpoint_dir=tmp_path / "a", log=lambda m: None)
    interrupted = _tiny_net()
    first = train(interrupted, views, y, val[0], y_val, CONFIG, checkpoint_dir=tmp_path / "b", log=lambda m: None, stop_after=2)
    assert not first.finished and first.epochs_run == 2 and (tmp_path / "b" / CHECKPOINT_NAME).exists()
    resumed = _tiny_net(seed=99)  # a fresh process: different initial weights, all restored from the checkpoint
    second = train(resumed, views, y, val[0], y_val, CONFIG, checkpoint_dir=tmp_path / "b", log=lambda m: None)
    assert second.resumed_from == 2 and second.finished
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    saved_a = torch.load(tmp_path / "a" / CHECKPOINT_NAME, weights_only=True)
    saved_b = torch.load(tmp_path / "b" / CHECKPOINT_NAME, weights_only=True)
    for slot, state in saved_a["optimizer"]["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, saved_b["optimizer"]["state"][slot][name]), (slot, name)
    assert saved_a["state"]["history"] == saved_b["state"]["history"]


def test_a_checkpoint_of_other_arguments_or_data_is_not_resumed(tmp_path):
    """A checkpoint resumes only the run that wrote it: another learning rate, class count or label set
    starts fresh and says so (issue 24: --lr 0.5 resumed at 0.001; a different class count crashed)."""
    from dataclasses import replace

    views, y = _tensors(8, views=2)
    val, y_val = _tensors(3, views=1)
    folder = tmp_path / "ckpt"

    def interrupted(config=CONFIG, labels=y, net=None):
        messages = []
        result = train(
            net or _tiny_net(), views, labels, val[0], y_val, config, checkpoint_dir=folder, log=messages.append, stop_after=1
        )
        return result, " ".join(messages)

    interrupted()
    changed_lr = replace(CONFIG, lr=0.5)
    result, said = interrupted(changed_lr)
    assert result.resumed_from is None and "other arguments or data" in said and "starting fresh" in said
    result, said = interrupted(changed_lr, labels=y[::-1].copy())  # the same arguments, other labels
    assert result.resumed_from is None and "starting fresh" in said
    result, said = interrupted(changed_lr, labels=y[::-1].copy())  # the same run again: resumed
    assert result.resumed_from == 1 and "resuming" in said
    wider = _tiny_net()
    wider[-1] = nn.Linear(8, 3)  # three classes: the saved head has two
    result, said = interrupted(changed_lr, labels=y[::-1].copy(), net=wider)
    assert result.resumed_from is None and "starting fresh" in said


def test_batch_size_backs_off_on_out_of_memory_only():
    tried, messages = [], []

    def run(size: int) -> int:
        tried.append(size)
        if size > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return size * 10

    assert with_batch_backoff(run, 32, messages.append) == (40, 4)
    assert tried == [32, 16, 8, 4] and "batch size 16" in messages[0]

    def broken(size: int) -> int:
        raise RuntimeError("shapes do not match")

    with pytest.raises(RuntimeError, match="shapes"):
        with_batch_backoff(broken, 8)


def test_too_few_images_per_class_says_how_many_are_needed():
    with pytest.raises(FinetuneError, match=r"at least 5 images per class.*'rare' \(2\)"):
        check_class_counts(np.array(["common"] * 9 + ["rare"] * 2))
    with pytest.raises(FinetuneError, match="at least 2 classes"):
        check_class_counts(np.array(["only"] * 9))


def _shop(root, per_class: int):
    rows = []
    for label, shape in enumerate(SHAPES):
        for i in range(per_class):
            name = f"{shape}-{i}.png"
            _drawn(shape, 10 * i + label, size=96).save(root / name)
            rows.append({"id": f"{shape}-{i}", "title": f"{shape} number {i}", "image": name, "category": shape})
    return build_catalog(pd.DataFrame(rows), root=root, name="drawn")


def test_finetune_image_writes_an_encoder_whose_identity_follows_its_weights(tmp_path):
    catalog = _shop(tmp_path, per_class=6)
    out = tmp_path / "enc"
    recipe = ImageRecipe(freeze_blocks=15, views=2, val_size=0.34)
    config = TrainConfig(epochs=2, batch_size=4, patience=5)
    outcome = finetune_image(catalog, catalog.labels(0).to_numpy(), out, recipe, config, log=lambda m: None)
    assert outcome.result.finished and outcome.classes == ["circle", "square"]
    files = {p.name for p in out.iterdir() if not p.name.startswith(".")}  # the output lock (.skulens.lock) aside
    assert files == {"encoder.json", "weights.safetensors", "curves.png"}  # checkpoint removed

    encoder = create_encoder(f"finetuned:{out}", backend="torch")
    images = [_drawn(shape, 7, size=96) for shape in SHAPES]
    vectors = encoder.encode(images)
    assert vectors.shape == (2, 1280) and np.isfinite(vectors).all()
    assert encoder.identity != create_encoder("efficientnet-lite0", backend="torch").identity
    assert encoder.spec["frozen_blocks"] == 15 and len(encoder.spec["history"]) == 2

    onnx = create_encoder(f"finetuned:{out}", backend="onnx")
    assert onnx.backend == "onnx"
    np.testing.assert_allclose(onnx.encode(images), vectors, atol=2e-3, rtol=1e-3)

    from skulens.encoders.finetuned import load_finetuned, save_finetuned

    model, classifier, spec = load_finetuned(out)
    with torch.no_grad():
        model._conv_head.weight.mul_(1.5)
    save_finetuned(out, model, None, {k: v for k, v in spec.items() if k not in ("format", "variant")})
    changed = create_encoder(f"finetuned:{out}", backend="torch")
    assert changed.identity != encoder.identity
    assert not np.allclose(changed.encode(images), vectors)


def test_finetune_image_refuses_too_few_images_and_a_folder_that_is_not_an_encoder(tmp_path):
    catalog = _shop(tmp_path, per_class=3)
    with pytest.raises(FinetuneError, match="at least 5 images per class"):
        finetune_image(catalog, catalog.labels(0).to_numpy(), tmp_path / "enc", log=lambda m: None)
    with pytest.raises(EncoderError, match="encoder.json is missing"):
        create_encoder(f"finetuned:{tmp_path}")


def test_frozen_trunk_on_onnx_runtime_matches_pytorch():
    from skulens.encoders.efficientnet_lite import VARIANTS, load_pretrained, to_input
    from skulens.tasks.finetune_image import trunk, trunk_runner

    model = load_pretrained("lite0")
    pixels = np.stack([np.asarray(_drawn(shape, 5, size=224)) for shape in SHAPES])
    with torch.no_grad():
        expected = trunk(model, 11, to_input(pixels, VARIANTS["lite0"].pretrained))
    got = trunk_runner(model, 11)(pixels)
    assert got.shape == expected.shape == (2, 112, 14, 14)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-3)


def test_cli_finetune_image_explains_too_few_images(tmp_path):
    import re

    from typer.testing import CliRunner

    from skulens.cli import app

    catalog = _shop(tmp_path, per_class=3)
    catalog.frame.assign(category=catalog.frame["category"].map(" >> ".join)).to_csv(tmp_path / "drawn.csv", index=False)
    result = CliRunner().invoke(
        app,
        ["finetune", "image", str(tmp_path / "drawn.csv"), "--label", "0", "--out", str(tmp_path / "enc"), "--no-track"],
        env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    text = re.sub(r"\s+", " ", result.output)
    assert result.exit_code != 0 and "at least 5 images per class" in text and "'circle' (3)" in text


def test_fold_features_fine_tune_on_inner_training_rows_only_and_reuse_the_cache(tmp_path):
    from skulens.catalog.splits import duplicate_groups
    from skulens.evaluation.categorize_benchmark import nested_folds
    from skulens.evaluation.finetune_benchmark import FinetunedFoldFeatures

    catalog = _shop(tmp_path, per_class=16)
    y = catalog.labels(0).to_numpy().astype(str)
    groups = duplicate_groups(catalog)
    cache = tmp_path / "trunk.npy"
    recipe, config = ImageRecipe(freeze_blocks=15, views=2), TrainConfig(epochs=1, batch_size=8)
    learnt = FinetunedFoldFeatures(recipe, config, log=lambda m: None, cache=cache)
    learnt.prepare(catalog, y, groups)
    assert cache.exists()
    fold = next(nested_folds(y, groups, folds=2, seed=0))
    features = learnt.for_fold(fold)
    assert features.blocks["finetuned-lite0"].shape == (32, 1280) and features.present["finetuned-lite0"].all()
    record = learnt.records[0]
    assert record["n_train"] + record["n_early_stopping"] == len(fold.inner_train)
    said: list[str] = []
    again = FinetunedFoldFeatures(recipe, config, log=said.append, cache=cache)
    again.prepare(catalog, y, groups)
    assert torch.equal(again.cached, learnt.cached) and any("read from" in m for m in said)
    assert learnt.summary()["folds"][0]["fold"] == 0


def test_fold_features_recompute_a_cache_built_for_other_images(tmp_path):
    """A trunk cache of the right shape but other photos (or another recipe) is not reused."""
    from PIL import ImageOps

    from skulens.catalog.splits import duplicate_groups
    from skulens.evaluation.finetune_benchmark import FinetunedFoldFeatures

    catalog = _shop(tmp_path, per_class=6)
    y = catalog.labels(0).to_numpy().astype(str)
    groups = duplicate_groups(catalog)
    cache = tmp_path / "trunk.npy"
    recipe, config = ImageRecipe(freeze_blocks=15, views=1), TrainConfig(epochs=1, batch_size=8)
    first = FinetunedFoldFeatures(recipe, config, log=lambda m: None, cache=cache)
    first.prepare(catalog, y, groups)
    for path in catalog.frame["image"]:  # the same files, other photos: same shape, other outputs
        photo = catalog.root / path
        ImageOps.invert(Image.open(photo).convert("RGB")).save(photo)
    said: list[str] = []
    second = FinetunedFoldFeatures(recipe, config, log=said.append, cache=cache)
    second.prepare(catalog, y, groups)
    assert any("built for other images" in m for m in said)
    assert second.cached.shape == first.cached.shape and not torch.equal(second.cached, first.cached)
    said.clear()
    third = FinetunedFoldFeatures(ImageRecipe(freeze_blocks=14, views=1), config, log=said.append, cache=cache)
    third.prepare(catalog, y, groups)
    assert any("recomputing" in m for m in said)


# ----- issue 24: fine-tuned weights files are regular, finite safetensors, never a pickle fallback ------


def test_fine_tuned_weights_must_be_a_finite_regular_safetensors_file(tmp_path):
    import os

    from safetensors.torch import save_file

    from skulens.encoders.base import EncoderError
    from skulens.encoders.finetuned import read_safetensors

    save_file({"w": torch.ones(3)}, str(tmp_path / "good.safetensors"))
    assert read_safetensors(tmp_path / "good.safetensors")["w"].sum() == 3
    save_file({"w": torch.tensor([1.0, float("nan")])}, str(tmp_path / "nan.safetensors"))
    with pytest.raises(EncoderError, match="NaN"):
        read_safetensors(tmp_path / "nan.safetensors")
    os.mkfifo(tmp_path / "fifo.safetensors")  # opening it would block forever
    with pytest.raises(EncoderError, match="not a regular file"):
        read_safetensors(tmp_path / "fifo.safetensors")
    with pytest.raises(EncoderError, match="missing"):
        read_safetensors(tmp_path / "absent.safetensors")


def test_text_encoder_folder_without_safetensors_never_falls_back_to_a_pickle(tmp_path):
    import json

    from skulens.encoders.base import EncoderError
    from skulens.encoders.finetuned_text import FORMAT, SPEC_NAME, finetuned_text_encoder

    (tmp_path / SPEC_NAME).write_text(json.dumps({"format": FORMAT}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"a pickle would be read here")
    with pytest.raises(EncoderError, match="model.safetensors is missing"):
        finetuned_text_encoder(tmp_path)


def test_a_save_that_fails_midway_leaves_the_old_weights_and_no_spec(tmp_path, monkeypatch):
    """Issue 24 (kill sweep of `finetune image`): weights were written in place beside the previous spec, so a
    run killed while saving left new, cut weights in a folder that still claimed to be an encoder."""
    import safetensors.torch

    from skulens.encoders.efficientnet_lite import EfficientNetLite
    from skulens.encoders.finetuned import SPEC_NAME, WEIGHTS_NAME, save_finetuned

    model = EfficientNetLite("lite0")
    save_finetuned(tmp_path, model, None, {"classes": ["a", "b"]})
    before = (tmp_path / WEIGHTS_NAME).read_bytes()

    def cut_short(tensors, path):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("the run ends here")

    monkeypatch.setattr(safetensors.torch, "save_file", cut_short)
    with pytest.raises(OSError, match="the run ends here"):
        save_finetuned(tmp_path, model, None, {"classes": ["a", "b"]})
    assert (tmp_path / WEIGHTS_NAME).read_bytes() == before
    assert not (tmp_path / SPEC_NAME).exists()  # the folder no longer claims to be a complete encoder
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    with pytest.raises(EncoderError):
        create_encoder(f"finetuned:{tmp_path}", backend="torch")


@pytest.mark.parametrize("kind", ["finetuned", "finetuned-text"])
def test_a_fifo_spec_is_refused_not_read(tmp_path, kind):
    """A FIFO (or device) named encoder.json would block the read forever (issue 24 item 11, the spec side)."""
    import os

    os.mkfifo(tmp_path / "encoder.json")
    with pytest.raises(EncoderError, match="not a regular file"):
        create_encoder(f"{kind}:{tmp_path}")
