"""Text fine-tuning: MiniLM's top layer trained on synthetic reviews (loss falls, resume equals an uninterrupted
run, the frozen-state path reproduces MiniLM), the ordinal star loss, the ``finetuned-text:`` encoder (folder,
identity, embeddings unlike the base, ONNX parity) and the bad-input errors."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from skulens.catalog import build_catalog
from skulens.encoders import EncoderError, create_encoder
from skulens.tasks.finetune_text import (
    OrdinalStarLoss,
    TextRecipe,
    TextTop,
    finetune_text,
    frozen_states,
    load_base,
    star_examples,
    tokenize,
)
from skulens.training.finetune import FinetuneError, TrainConfig

WORDS = {
    "1": ["awful", "terrible", "ripped", "refund"],
    "3": ["okay", "average", "fine", "so-so"],
    "5": ["wonderful", "perfect", "gorgeous", "love"],
}
FILLER = ["dress", "top", "fabric", "colour", "size", "fit", "blouse", "skirt", "material", "style"]
CONFIG = TrainConfig(epochs=8, batch_size=8, lr=3e-4, warmup_epochs=0.5, patience=10, seed=1)
RECIPE = TextRecipe(target="stars", max_length=32, val_size=0.2)


def _reviews(per_class: int = 20, seed: int = 0) -> tuple[list[str], list[str]]:
    """Short texts whose star (1, 3 or 5) is given away by one sentiment word among filler words."""
    rng = np.random.default_rng(seed)
    texts, stars = [], []
    for star, words in WORDS.items():
        for i in range(per_class):
            filler = rng.choice(FILLER, size=4, replace=False)
            texts.append(f"the {filler[0]} and {filler[1]} are {rng.choice(words)}, {filler[2]} {filler[3]} {i}")
            stars.append(star)
    return texts, stars


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    texts, stars = _reviews()
    out = tmp_path_factory.mktemp("ft") / "enc"
    outcome = finetune_text(texts, stars, np.arange(len(texts)), out, RECIPE, CONFIG, log=lambda m: None)
    return outcome


def test_frozen_states_and_untrained_top_reproduce_minilm():
    from skulens.encoders.text import SentenceTransformerEncoder, minilm_path

    texts = ["a lovely summer dress", "the zip broke after one wash, sending it back"]
    model = load_base(minilm_path())
    states = frozen_states(model, 4, tokenize(minilm_path(), texts, 64))
    assert states.shape == (2, max(len(i) for i in tokenize(minilm_path(), texts, 64)), 385)
    with torch.no_grad():
        ours = torch.nn.functional.normalize(TextTop(model, 4, 2, 0.1).eval().features(states.float()), dim=1).numpy()
    reference = SentenceTransformerEncoder(minilm_path(), "minilm").encode(texts)
    assert np.all((ours * reference).sum(1) > 0.9999)


def test_ordinal_loss_charges_distance_from_the_true_star():
    loss = OrdinalStarLoss([1.0, 2.0, 3.0, 4.0, 5.0], label_smoothing=0.0, weight=1.0)
    target = torch.tensor([4])  # 5 stars
    near = torch.tensor([[0.0, 0.0, 0.0, 5.0, 0.0]])  # confident 4 stars
    far = torch.tensor([[5.0, 0.0, 0.0, 0.0, 0.0]])  # confident 1 star: same cross-entropy, larger rating error
    assert loss(far, target) > loss(near, target) + 2.5
    assert float(OrdinalStarLoss([1.0, 2.0], weight=0.0)(near[:, :2], torch.tensor([0]))) == pytest.approx(
        float(torch.nn.CrossEntropyLoss(label_smoothing=0.1)(near[:, :2], torch.tensor([0])))
    )


def test_fine_tuning_learns_the_stars_and_writes_an_encoder_folder(trained):
    losses = [h["train_loss"] for h in trained.result.history]
    assert trained.result.finished and len(losses) == 8
    assert losses[-1] < losses[0] * 0.8
    assert trained.classes == ["1", "3", "5"]
    assert set(trained.validation) == {"accuracy", "macro_f1", "expected_rating_mae"}
    assert trained.validation["accuracy"] >= 0.75 and trained.validation["expected_rating_mae"] < 1.0
    names = {p.name for p in trained.folder.iterdir()}
    assert {"encoder.json", "model.safetensors", "head.safetensors", "tokenizer.json", "modules.json", "curves.png"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names) and "checkpoint" not in names


def test_resume_after_an_interrupt_ends_in_the_same_state(tmp_path, trained):
    texts, stars = _reviews()
    out = tmp_path / "enc"
    first = finetune_text(texts, stars, np.arange(len(texts)), out, RECIPE, CONFIG, log=lambda m: None, stop_after=1)
    assert not first.result.finished and (out / "checkpoint" / "checkpoint.pt").exists()
    second = finetune_text(texts, stars, np.arange(len(texts)), out, RECIPE, CONFIG, log=lambda m: None)
    assert second.result.resumed_from == 1 and second.result.finished
    assert second.result.history == trained.result.history
    resumed, uninterrupted = load_file(str(out / "model.safetensors")), load_file(str(trained.folder / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_encoder_loads_differs_from_minilm_and_its_identity_follows_the_weights(tmp_path, trained):
    texts = ["perfect fit, love the colour", "awful fabric, it ripped"]
    encoder = create_encoder(f"finetuned-text:{trained.folder}", backend="torch")
    base = create_encoder("minilm", backend="torch")
    ours, theirs = encoder.encode(texts), base.encode(texts)
    assert ours.shape == (2, 384) and encoder.modality == "text" and encoder.classes == ["1", "3", "5"]
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.all((ours * theirs).sum(1) < 0.999)
    copy = tmp_path / "copy"
    shutil.copytree(trained.folder, copy)
    assert create_encoder(f"finetuned-text:{copy}", backend="torch").version == encoder.version
    tensors = load_file(str(copy / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("layer.5.output.dense.weight"))
    tensors[name] = tensors[name] + 0.05 * torch.randn(tensors[name].shape, generator=torch.Generator().manual_seed(0))
    save_file(tensors, str(copy / "model.safetensors"))
    changed = create_encoder(f"finetuned-text:{copy}", backend="torch")
    assert changed.version != encoder.version
    assert not np.allclose(changed.encode(texts), ours)


def test_onnx_export_matches_pytorch(tmp_path, trained, monkeypatch):
    monkeypatch.setenv("SKULENS_ONNX_CACHE", str(tmp_path / "onnx"))
    texts = ["perfect fit, love the colour", "awful fabric, it ripped and I sent it back the next day"]
    onnx = create_encoder(f"finetuned-text:{trained.folder}", backend="onnx")
    torch_backend = create_encoder(f"finetuned-text:{trained.folder}", backend="torch")
    assert "onnx" in onnx.version
    assert np.all((onnx.encode(texts) * torch_backend.encode(texts)).sum(1) > 0.9999)


def test_a_folder_without_encoder_json_is_refused(tmp_path):
    with pytest.raises(EncoderError, match="finetune text"):
        create_encoder(f"finetuned-text:{tmp_path}")


def test_too_few_texts_per_class_names_the_class(tmp_path):
    texts, stars = _reviews(per_class=6)
    texts, stars = texts[:15], stars[:15]  # star 5 keeps 3 texts
    with pytest.raises(FinetuneError, match=r"at least 5 texts per class.*'5' \(3\)"):
        finetune_text(texts, stars, np.arange(15), tmp_path / "enc", RECIPE, CONFIG, log=lambda m: None)


def test_stars_without_a_rating_column_say_what_to_map(tmp_path):
    texts, _ = _reviews(per_class=2)
    catalog = build_catalog(pd.DataFrame({"id": range(len(texts)), "review_text": texts}), name="noratings")
    with pytest.raises(FinetuneError, match=r"no 'rating' column.*--columns rating="):
        star_examples(catalog, ("title", "review_text"))


def test_cli_finetune_text_explains_a_missing_label_column(tmp_path):
    from typer.testing import CliRunner

    from skulens.cli import app

    texts, _ = _reviews(per_class=3)
    pd.DataFrame({"id": range(len(texts)), "title": texts}).to_csv(tmp_path / "titles.csv", index=False)
    result = CliRunner().invoke(
        app,
        ["finetune", "text", str(tmp_path / "titles.csv"), "--target", "label", "--label", "brand", "--out", str(tmp_path / "e")]
        + ["--no-track"],
        env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    assert result.exit_code != 0 and "brand" in re.sub(r"\s+", " ", result.output)


def test_review_model_trains_on_the_fine_tuned_encoder(tmp_path, trained, monkeypatch):
    from skulens.tasks.reviews import ReviewPredictor

    monkeypatch.setenv("SKULENS_ONNX_CACHE", str(tmp_path / "onnx"))

    texts, stars = _reviews(per_class=20, seed=5)
    frame = pd.DataFrame({"id": range(len(texts)), "review_text": texts, "rating": [int(s) for s in stars]})
    name = f"finetuned-text:{trained.folder}"
    model = ReviewPredictor(encoders=[name], cache_dir=tmp_path / "cache").fit(build_catalog(frame, name="synthetic"))
    predicted = model.predict(frame.head(6))
    assert len(predicted) == 6 and set(predicted["stars"]) <= {1, 3, 5}
    assert (predicted["stars"].to_numpy() == frame["rating"].head(6).to_numpy()).mean() >= 0.5


def test_cli_finetune_text_with_two_seeds_reports_the_spread(tmp_path):
    import json

    from typer.testing import CliRunner

    from skulens.cli import app
    from skulens.training.finetune import seed_summary

    texts, stars = _reviews(per_class=10)
    pd.DataFrame({"id": range(len(texts)), "review_text": texts, "rating": [int(s) for s in stars]}).to_csv(
        tmp_path / "reviews.csv", index=False
    )
    out = tmp_path / "enc"
    args = ["finetune", "text", str(tmp_path / "reviews.csv"), "--target", "stars", "--out", str(out), "--seeds", "2"]
    args += ["--epochs", "2", "--batch-size", "8", "--lr", "3e-4", "--max-length", "32", "--no-track"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "seeds.json").read_text())
    assert set(summary["per_seed"]) == {"0", "1"} and (out / "seed0" / "encoder.json").exists() and (out / "seed1").is_dir()
    mae = summary["across_seeds"]["val_expected_rating_mae"]
    values = [summary["per_seed"][s]["val_expected_rating_mae"] for s in ("0", "1")]
    assert mae["n"] == 2 and mae["mean"] == pytest.approx(np.mean(values)) and mae["ci95"][0] <= mae["mean"] <= mae["ci95"][1]
    assert "across 2 seeds" in result.output
    assert seed_summary({3: {"a": 1.0}, 4: {"a": 3.0}})["across_seeds"]["a"]["std"] == pytest.approx(np.sqrt(2.0))


def test_product_titles_fine_tune_on_a_label_column(tmp_path):
    from skulens.tasks.finetune_text import label_examples

    rng = np.random.default_rng(2)
    kinds = {"watch": ["analog watch", "wrist watch", "chronograph"], "shoe": ["running shoe", "sneaker", "sandal"]}
    titles = [f"{rng.choice(FILLER)} {rng.choice(words)} model {i}" for kind, words in kinds.items() for i in range(15)]
    frame = pd.DataFrame({"id": range(30), "title": titles, "kind": [k for k in kinds for _ in range(15)]})
    texts, labels, groups = label_examples(build_catalog(frame, name="titles"), "kind", ("title", "description"))
    assert len(texts) == 30 and set(labels) == {"watch", "shoe"} and len(groups) == 30
    recipe = TextRecipe(target="label", max_length=16, val_size=0.2)
    outcome = finetune_text(texts, labels, groups, tmp_path / "enc", recipe, CONFIG, log=lambda m: None)
    assert outcome.result.finished and set(outcome.validation) == {"accuracy", "macro_f1"}
    assert outcome.classes == ["shoe", "watch"] and outcome.validation["accuracy"] >= 0.8
