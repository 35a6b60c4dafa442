"""Captioning on a tiny self-drawn catalog: metrics against known values, search, vocabulary, a captioner
that must reproduce its training titles, save/load, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from skulens.catalog import build_catalog
from skulens.heads.caption_decoder import build_decoder
from skulens.heads.caption_search import PrefixDecoder, beam_search, length_penalty
from skulens.heads.caption_vocab import BOS, EOS, PAD, UNK, CaptionVocabError, WordVocab
from skulens.metrics.captioning import caption_metrics, cider_d, corpus_bleu, rouge_l, word_sets
from skulens.tasks.caption import CaptionError, CaptionModel
from skulens.tasks.model_folder import ModelFolderError

COLOURS = {"red": (220, 20, 20), "blue": (30, 40, 220), "green": (20, 170, 40)}
SHAPES = ("circle", "square", "triangle")
TINY = {
    "d_model": 64,
    "layers": 1,
    "heads": 2,
    "epochs": 30,
    "patience": 30,
    "batch_size": 6,
    "lr": 3e-3,
    "label_smoothing": 0.0,
    "min_count": 1,
}


def _draw(colour: str, shape: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(50, 70))
    x, y = (int(v) for v in rng.integers(4, 96 - size - 4, size=2))
    box = [x, y, x + size, y + size]
    if shape == "circle":
        draw.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        draw.rectangle(box, fill=COLOURS[colour])
    else:
        draw.polygon([(x, y + size), (x + size, y + size), (x + size // 2, y)], fill=COLOURS[colour])
    return image


def _shapes_catalog(folder: Path, copies: int = 2, extra_rows: list[dict] | None = None):
    rows = []
    for c, colour in enumerate(COLOURS):
        for s, shape in enumerate(SHAPES):
            for k in range(copies):
                name = f"{colour}_{shape}_{k}.png"
                _draw(colour, shape, seed=100 * c + 10 * s + k).save(folder / name)
                rows.append({"id": name[:-4], "title": f"bright {colour} {shape} sticker", "image": name, "colour": colour})
    frame = pd.DataFrame(rows + (extra_rows or []))
    return build_catalog(frame, root=folder, name="shapes")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    return folder, _shapes_catalog(folder)


@pytest.fixture(scope="module")
def trained(shapes):
    _, catalog = shapes
    torch.manual_seed(0)
    return CaptionModel(**TINY, progress=False, attributes=("colour",)).fit(catalog)


# ---------------------------------------------------------------- metrics


def test_metrics_known_values():
    refs = ["the cat sat on the mat", "a dog runs fast", "red shirt"]
    hyps = ["the cat sat on the mat", "a dog runs", "blue shirt"]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu(["completely different words here"], ["the cat sat on the mat"]) == pytest.approx(0.0)
    # CIDEr-D of a perfect caption is 10 per n-gram order present: "red shirt" has no 3- or 4-grams.
    score, each = cider_d(refs, refs)
    assert each.tolist() == pytest.approx([10.0, 10.0, 5.0])
    assert score == pytest.approx(25 / 3)
    # ROUGE-L: LCS("a b c d", "a c d e") = 3 -> P = R = F = 0.75.
    assert rouge_l(["a c d e"], ["a b c d"])[0] == pytest.approx(75.0)
    overlap, jaccard, lengths = word_sets(hyps, refs)
    assert overlap.tolist() == pytest.approx([100.0, 75.0, 50.0])
    assert jaccard.tolist() == pytest.approx([100.0, 75.0, 100 / 3])
    metrics = caption_metrics(hyps, refs, resamples=50)
    assert metrics["length_ratio"] == pytest.approx(11 / 12)
    assert metrics["intervals"]["bleu"][0] <= metrics["bleu"] <= metrics["intervals"]["bleu"][1]
    assert caption_metrics(["RED   Shirt"], ["red shirt"])["word_overlap"] == 100.0  # case- and space-insensitive
    with pytest.raises(ValueError, match="one reference per caption"):
        corpus_bleu(["a"], ["a", "b"])


def test_sacrebleu_reference_value():
    # sacrebleu's README example (first reference stream only gives 100 for the first sentence).
    assert corpus_bleu(["The dog bit the man."], ["The dog bit the man."]) == pytest.approx(100.0)


# ---------------------------------------------------------------- vocabulary and search


def test_vocab_keeps_catalog_spelling_and_unknowns():
    vocab = WordVocab.build(["ADIDAS Men Shoes", "ADIDAS Women Shoes", "adidas Kids Shoes", "Puma Cap"], min_count=2)
    ids = vocab.encode("Adidas Men Shoes", max_len=10)
    assert ids[0] == BOS and ids[-1] == EOS and UNK in ids  # "men" occurs once
    assert vocab.decode(ids[1:]) == "ADIDAS Shoes"
    assert vocab.unknown_share(["adidas puma"]) == 0.5
    assert WordVocab.from_config(json.loads(json.dumps(vocab.to_config()))).tokens == vocab.tokens
    with pytest.raises(CaptionVocabError, match="min_count"):
        WordVocab.build(["one two"], min_count=2)


class _Scripted(torch.nn.Module):
    """A decoder whose next-word scores are fixed: word 4 strongly, then word 4 again, then <eos>."""

    def logits(self, memory, tokens):
        out = torch.full((tokens.shape[0], tokens.shape[1], 7), -5.0)
        out[:, -1, 4] = 5.0
        out[:, -1, 5] = 2.0
        out[:, -1, EOS] = 0.0 if tokens.shape[1] < 3 else 8.0
        return out


def test_search_never_empty_and_guards_repetition():
    memory = torch.zeros(2, 3, 8)
    greedy = beam_search(_Scripted(), memory, beam=1, max_len=5)
    assert [c.tokens for c in (g[0] for g in greedy)] == [(4, 5), (4, 5)]  # no "4 4" with the guard
    repeated = beam_search(_Scripted(), memory, beam=1, max_len=5, no_repeat=False)
    assert repeated[0][0].tokens == (4, 4)
    beams = beam_search(_Scripted(), memory, beam=3, max_len=5)
    assert len(beams[0]) == 3 and all(c.tokens for c in beams[0])  # EOS never first: no empty titles
    assert beams[0][0].score >= beams[0][1].score >= beams[0][2].score
    assert length_penalty(1, 0.0) == 1.0 and length_penalty(7, 1.0) == 2.0
    with pytest.raises(ValueError, match="beam"):
        beam_search(_Scripted(), memory, beam=0)


@pytest.mark.parametrize("architecture", ["transformer", "lstm"])
def test_decoders_score_every_position(architecture):
    decoder = build_decoder(architecture, vocab_size=11, channels=16, regions=4, d_model=32, layers=1, heads=2)
    memory = decoder.memory(torch.rand(3, 4, 16))
    assert memory.shape == (3, 5, 32)
    assert decoder.logits(memory, torch.randint(1, 11, (3, 6))).shape == (3, 6, 11)
    with pytest.raises(ValueError, match="unknown caption decoder"):
        build_decoder("gru", vocab_size=11, channels=16, regions=4)


@pytest.mark.parametrize("architecture", ["transformer", "lstm"])
def test_incremental_steps_score_like_the_whole_prefix(architecture):
    torch.manual_seed(0)
    decoder = build_decoder(architecture, vocab_size=40, channels=16, regions=4, d_model=32, layers=2, heads=4).eval()
    memory = decoder.memory(torch.rand(5, 4, 16))
    tokens = torch.randint(4, 40, (5, 7))
    tokens[:, 0], tokens[0, 4:] = 1, PAD  # <bos> first; a dead hypothesis padded at the end
    state, steps = decoder.start(memory), []
    for t in range(tokens.shape[1]):
        scores, state = decoder.step(state, tokens[:, t])
        steps.append(scores)
    assert torch.allclose(torch.stack(steps, dim=1)[1:], decoder.logits(memory, tokens)[1:], atol=1e-5)
    assert torch.allclose(torch.stack(steps, dim=1)[0, :4], decoder.logits(memory, tokens)[0, :4], atol=1e-5)


@pytest.mark.parametrize("architecture", ["transformer", "lstm"])
@pytest.mark.parametrize("beam", [1, 3, 5])
def test_batched_incremental_search_equals_per_image_prefix_search(architecture, beam):
    """All images in one search, one incremental step per word, find what a search of each image alone over
    the whole prefix finds (same titles, same scores)."""
    torch.manual_seed(1)
    decoder = build_decoder(architecture, vocab_size=40, channels=16, regions=4, d_model=32, layers=2, heads=4).eval()
    memory = decoder.memory(torch.randn(6, 4, 16))
    batched = beam_search(decoder, memory, beam=beam, max_len=8)
    alone = [beam_search(PrefixDecoder(decoder), memory[i : i + 1], beam=beam, max_len=8)[0] for i in range(len(memory))]
    assert [[c.tokens for c in found] for found in batched] == [[c.tokens for c in found] for found in alone]
    for found, reference in zip(batched, alone):
        assert [c.score for c in found] == pytest.approx([c.score for c in reference], abs=1e-4)


# ---------------------------------------------------------------- the captioner


def test_captioner_reproduces_training_titles(trained, shapes):
    folder, catalog = shapes
    images = [Image.open(folder / p).convert("RGB") for p in catalog.frame["image"]]
    captions = trained.generate(images, beam=1)
    titles = catalog.frame["title"].tolist()
    correct = sum(c.title == t for c, t in zip(captions, titles))
    assert correct >= len(titles) - 1, [c.title for c in captions]
    beamed = trained.generate(images[:2], beam=3, nearest=2)
    assert beamed[0].title == titles[0] and len(beamed[0].alternatives) == 2
    assert beamed[0].nearest[0][0] == titles[0] and beamed[0].attributes == {"colour": "red"}
    report = trained.fit_report_
    assert report["rows"] == 18 and report["skipped"] == {"no_title": 0, "no_readable_image": 0}
    assert report["validation"].startswith("training rows")


def test_evaluate_reports_baselines_and_attributes(trained, shapes):
    _, catalog = shapes
    result = trained.evaluate(catalog, beam=1, resamples=20)
    assert result["n"] == 18 and result["decoder"]["bleu"] > 90
    assert result["retrieval"]["bleu"] == pytest.approx(100.0)  # nearest training image is the image itself
    assert result["attribute_accuracy"]["colour"] == 1.0
    assert {"bleu", "cider", "rouge_l", "word_overlap", "jaccard", "length_ratio"} <= set(result["template"])
    assert result["examples"][0] == {
        "id": "red_circle_0",
        "reference": "bright red circle sticker",
        "generated": result["examples"][0]["generated"],
    }


def test_save_load_round_trip(trained, shapes, tmp_path):
    folder, catalog = shapes
    trained.save(tmp_path / "m")
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in (tmp_path / "m").iterdir())
    loaded = CaptionModel.load(tmp_path / "m")
    images = [Image.open(folder / p).convert("RGB") for p in catalog.frame["image"][:6]]
    assert [c.title for c in loaded.generate(images, beam=3)] == [c.title for c in trained.generate(images, beam=3)]
    assert loaded.fit_report_["rows"] == 18


def test_model_from_another_encoder_is_refused(trained, tmp_path):
    trained.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["encoder"] = "efficientnet-lite2:imagenet-260px:feature_map"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="retrain the captioner"):
        CaptionModel.load(tmp_path / "m")
    config["task"] = "categorize"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="not a 'caption' model"):
        CaptionModel.load(tmp_path / "m")


def test_bad_input_is_explained(trained, tmp_path):
    with pytest.raises(CaptionError, match="not an image"):
        trained.generate(["not-an-image.png"])
    with pytest.raises(CaptionError, match="not trained"):
        CaptionModel(progress=False).generate([Image.new("RGB", (32, 32))])
    # Rows without a title or with an unreadable image are skipped and counted; too few left is an error.
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    extra = [
        {"id": "untitled", "title": None, "image": "red_circle_0.png", "colour": "red"},
        {"id": "broken", "title": "red square", "image": "broken.png", "colour": "red"},
    ]
    _draw("red", "circle", 0).save(tmp_path / "red_circle_0.png")
    catalog = build_catalog(
        pd.DataFrame([*extra, {"id": "one", "title": "bright red circle sticker", "image": "red_circle_0.png"}]), root=tmp_path
    )
    model = CaptionModel(**TINY, progress=False)
    with pytest.raises(
        CaptionError, match=r"1 rows with both a title and a readable image \(1 without title, 1 without a readable"
    ):
        model.fit(catalog)
    no_titles = build_catalog(pd.DataFrame([{"id": "a", "image": "red_circle_0.png"}]), root=tmp_path)
    with pytest.raises(Exception, match="no 'title' column"):
        model.fit(no_titles)


def test_skipped_rows_are_counted(tmp_path):
    extra = [
        {"id": "untitled", "title": None, "image": "red_circle_0.png", "colour": "red"},
        {"id": "broken", "title": "red square", "image": "broken.png", "colour": "red"},
    ]
    catalog = _shapes_catalog(tmp_path, copies=1, extra_rows=extra)
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    model = CaptionModel(**{**TINY, "epochs": 2}, progress=False).fit(catalog)
    assert model.fit_report_["skipped"] == {"no_title": 1, "no_readable_image": 1}
    assert model.fit_report_["rows"] == 9


# ---------------------------------------------------------------- command line


def test_cli_train_generate_evaluate(trained, shapes, tmp_path):
    from typer.testing import CliRunner

    from skulens.cli.main import app

    folder, catalog = shapes
    catalog.frame.to_csv(folder / "shapes.csv", index=False)  # beside the photos its paths name
    runner = CliRunner()
    trained.save(tmp_path / "m")
    photo = folder / catalog.frame["image"].iloc[0]
    (tmp_path / "notes.txt").write_text("not a photo")
    result = runner.invoke(app, ["caption", str(photo), str(tmp_path / "notes.txt"), "--model", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output.strip().splitlines()[-1])
    assert [r["title"] for r in rows] == ["bright red circle sticker"] and "skipped" in result.output
    evaluated = runner.invoke(app, ["caption", "evaluate", str(tmp_path / "m"), str(folder / "shapes.csv"), "--beam", "1"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "decoder" in evaluated.output and "retrieval" in evaluated.output
    missing = runner.invoke(app, ["caption", str(photo), "--model", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    trained_cli = runner.invoke(
        app,
        [
            "caption",
            "train",
            str(folder / "shapes.csv"),
            "--out",
            str(tmp_path / "cli-m"),
            "--epochs",
            "1",
            "--dim",
            "32",
            "--layers",
            "1",
        ],
    )
    assert trained_cli.exit_code == 0, trained_cli.output
    assert "trained on 18 photo-title pairs" in trained_cli.output and (tmp_path / "cli-m" / "weights.npz").is_file()
    assert (
        "caption IMAGE" in runner.invoke(app, ["caption", "--help"]).output
        or "IMAGE" in runner.invoke(app, ["caption", "generate", "--help"]).output
    )


# ---------------------------------------------------------------- region encoder, old folders, input path


def test_region_maps_go_through_the_embedding_cache(shapes, tmp_path):
    from skulens.embed import embed_catalog
    from skulens.encoders import create_encoder

    _, catalog = shapes
    encoder = create_encoder("efficientnet-lite0-regions")
    assert encoder.dim == 49 * 1280 and encoder.identity.startswith("efficientnet-lite0-regions@imagenet-224px-squash-w")
    model = CaptionModel(encoder="lite0", progress=False)  # the old config value maps to the registry name
    assert model.encoders == ["efficientnet-lite0-regions"]
    maps, ok = model.catalog_maps(catalog, cache_dir=tmp_path)
    again = embed_catalog(catalog, encoder, cache_dir=tmp_path)
    assert again.cached == len(catalog) and again.encoded == 0
    assert ok.all() and maps.dtype == np.float16 and maps.shape == (len(catalog), 49, 1280)
    np.testing.assert_array_equal(again.vectors.reshape(maps.shape).astype(np.float16), maps)
    images = [Image.open(shapes[0] / p).convert("RGB") for p in catalog.frame["image"][:2]]
    # encoded again in another batch: the kernels may round differently (threads, batch size) by a float16 step
    np.testing.assert_allclose(encoder.maps(images).astype(np.float32), maps[:2].astype(np.float32), rtol=4e-3, atol=2e-2)


def test_folders_saved_before_the_region_encoder_still_load(trained, shapes, tmp_path):
    folder, catalog = shapes
    trained.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["encoder"] = trained.spatial.legacy_identity  # what older skulens wrote
    config["encoder_variant"] = "lite0"
    del config["encoder_name"]
    config_path.write_text(json.dumps(config))
    loaded = CaptionModel.load(tmp_path / "m")
    assert loaded.encoders == ["efficientnet-lite0-regions"]
    images = [Image.open(folder / p).convert("RGB") for p in catalog.frame["image"][:3]]
    assert [c.title for c in loaded.generate(images)] == [c.title for c in trained.generate(images)]


def test_folders_saved_before_the_shared_training_settings_still_load(trained, shapes, tmp_path):
    """Older folders have no ``weight_decay`` under ``hyper`` (it was fixed at 0.01): they load with it."""
    folder, catalog = shapes
    trained.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["hyper"]["weight_decay"] == 0.01
    del config["hyper"]["weight_decay"]
    config_path.write_text(json.dumps(config))
    loaded = CaptionModel.load(tmp_path / "m")
    assert loaded.config == trained.config and loaded.config.weight_decay == 0.01
    images = [Image.open(folder / p).convert("RGB") for p in catalog.frame["image"][:3]]
    assert [c.title for c in loaded.generate(images)] == [c.title for c in trained.generate(images)]


def test_a_dataframe_is_read_through_the_one_input_path(trained, shapes):
    """fit/evaluate take a DataFrame: its image paths resolve against the declared root, never the working
    directory; without a root there is no image to read, which the error says."""
    folder, catalog = shapes
    frame = catalog.frame.assign(image=catalog.frame["image"])
    result = trained.evaluate(frame, root=folder, resamples=10)
    assert result["n"] == len(catalog)
    with pytest.raises(CaptionError, match="no row with both a title and a readable image"):
        trained.evaluate(frame, resamples=10)


def _tamper_caption(folder: Path, config_change=None, arrays_change=None) -> None:
    if config_change is not None:
        config = json.loads((folder / "config.json").read_text())
        config_change(config)
        (folder / "config.json").write_text(json.dumps(config))
    if arrays_change is not None:
        with np.load(folder / "weights.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        arrays_change(arrays)
        np.savez(folder / "weights.npz", **arrays)


TAMPERED_CAPTIONERS = {
    "short-titles": (None, lambda a: a.update({"nearest.titles": a["nearest.titles"][:-2]})),
    "wide-embeddings": (None, lambda a: a.update({"nearest.embeddings": np.hstack([a["nearest.embeddings"]] * 2)})),
    "missing-nearest": (None, lambda a: a.pop("nearest.embeddings")),
    "beam-string": (lambda c: c["hyper"].update(beam="3"), None),
    "beam-zero": (lambda c: c["hyper"].update(beam=0), None),
    "beam-huge": (lambda c: c["hyper"].update(beam=2000), None),
    "d-model-huge": (lambda c: c["hyper"].update(d_model=10**6), None),
    "shape-strings": (lambda c: c.update(shape=["7", "7"]), None),
}


@pytest.mark.parametrize("name", sorted(TAMPERED_CAPTIONERS))
def test_tampered_caption_folder_is_refused_at_load(trained, tmp_path, name):
    """Issue 24: a captioner folder that would load and then fail every request is refused when it loads."""
    trained.save(tmp_path / name)
    change = TAMPERED_CAPTIONERS[name]
    _tamper_caption(tmp_path / name, *change)
    with pytest.raises(ModelFolderError, match="damaged"):
        CaptionModel.load(tmp_path / name)


def test_beam_is_capped(trained):
    image = Image.new("RGB", (32, 32))
    for beam in (0, 17, 2000):
        with pytest.raises(CaptionError, match="beam must be"):
            trained.generate([image], beam=beam)


def test_cli_refuses_a_device_file_instead_of_reading_it(trained, tmp_path):
    from typer.testing import CliRunner

    from skulens.cli.main import app

    trained.save(tmp_path / "m")
    result = CliRunner().invoke(app, ["caption", "/dev/zero", "--model", str(tmp_path / "m")], env={"NO_COLOR": "1"})
    assert result.exit_code != 0 and "not a regular file" in " ".join(result.output.split())


@pytest.mark.parametrize("steps", [1, 2, 9, 10, 11, 19, 20, 30])
def test_learning_rate_schedule_runs_for_any_number_of_steps(steps):
    """Issue 24: `caption train --limit 300 --epochs 2` died with ZeroDivisionError in the one-cycle schedule."""
    from skulens.training.loop import LoopConfig, TrainingLoop

    config = LoopConfig(epochs=1, lr=1e-3, weight_decay=0.0, schedule="one_cycle", warmup=0.1)
    loop = TrainingLoop(torch.nn.Linear(1, 1), config, steps_per_epoch=steps)
    for _ in range(steps):
        loop.optimizer.step()
        if loop.scheduler is not None:
            loop.scheduler.step()
    assert 0 < loop.optimizer.param_groups[0]["lr"] <= 1e-3


def test_cli_names_a_missing_photo_and_the_fix(trained, tmp_path, monkeypatch):
    """Issue 23: `skulens caption missing.jpg` said only "no readable image among the arguments"."""
    from typer.testing import CliRunner

    from skulens.cli.main import app

    trained.save(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["caption", "missing.jpg", "--model", str(tmp_path / "m")], env={"NO_COLOR": "1"})
    text = " ".join(result.output.split())
    assert result.exit_code == 2
    error = text[text.index("error") :]
    assert "image 'missing.jpg' not found at" in error and "give the path of a JPEG, PNG or WebP photo" in error
    assert "Errno" not in text


def test_cli_train_shows_each_step(shapes, tmp_path):
    """Issue 23: `caption train` was silent for minutes between the photo embedding and the epochs."""
    from typer.testing import CliRunner

    from skulens.cli.main import app

    folder, catalog = shapes
    catalog.frame.to_csv(folder / "shapes.csv", index=False)
    args = ["caption", "train", str(folder / "shapes.csv"), "--out", str(tmp_path / "m"), "--epochs", "1", "--dim", "32"]
    result = CliRunner().invoke(app, [*args, "--layers", "1"], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    for done in ("checking 18 photos", "region maps of 18 photos", "vocabulary of", "attribute probes (colour)"):
        assert f"✓ {done}" in text, text
    assert "caption decoder epochs" in text
