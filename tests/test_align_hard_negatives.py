"""Hard negatives from the same family: family batches, the identical-title mask, and the default path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skulens.heads.align import FAMILY_CHUNK, AlignConfig, AlignmentHeads, ClipLoss, family_batches
from skulens.heads.base import HeadError


def _families(seed: int = 0) -> np.ndarray:
    """300 rows: 40 families of 2-6 members, a 40-member family, the rest singletons, shuffled."""
    rng = np.random.default_rng(seed)
    keys = [f"fam{f}" for f in range(40) for _ in range(rng.integers(2, 7))] + ["big"] * 40
    keys += [f"single{i}" for i in range(300 - len(keys))]
    return np.array(keys, dtype=object)[rng.permutation(300)]


def _batches(families: np.ndarray, seed: int, size: int = 32, share: float = 0.5) -> list[list[int]]:
    codes = np.unique(families, return_inverse=True)[1]
    return [b.tolist() for b in family_batches(codes, size, share, torch.Generator().manual_seed(seed))]


def test_family_batches_are_seeded_and_cover_every_row_once():
    families = _families()
    first, again, other = _batches(families, 0), _batches(families, 0), _batches(families, 1)
    assert first == again
    assert first != other
    assert sorted(r for b in first for r in b) == list(range(len(families)))
    assert max(len(b) for b in first) <= 32


def test_family_mates_land_in_one_batch():
    families = _families()
    batch_of = {row: i for i, b in enumerate(_batches(families, 0)) for row in b}
    for key in set(families) - {"big"}:
        rows = np.flatnonzero(families == key)
        if len(rows) >= 2:
            assert len({batch_of[r] for r in rows}) == 1, key
    # a family bigger than a chunk is spread over batches in chunks of at most FAMILY_CHUNK members
    big = [batch_of[r] for r in np.flatnonzero(families == "big")]
    assert max(np.bincount(big)) <= FAMILY_CHUNK
    # random batches of the same size rarely keep a family together
    order = torch.randperm(len(families), generator=torch.Generator().manual_seed(0)).numpy()
    random_batch = {row: i // 32 for i, row in enumerate(order)}
    together = [len({random_batch[r] for r in np.flatnonzero(families == f"fam{f}")}) == 1 for f in range(40)]
    assert sum(together) < 20


def test_each_batch_holds_about_share_family_rows():
    families = _families()
    keys, counts = np.unique(families, return_counts=True)
    in_family = np.isin(families, keys[counts >= 2])
    batches = _batches(families, 0, size=32, share=0.25)
    with_singles = [b for b in batches if (~in_family[b]).any()]
    for batch in with_singles[:-1]:  # while other rows remain: whole chunks up to a quarter of 32, then other rows
        assert len(batch) == 32
        assert 2 <= in_family[batch].sum() <= 8


def test_identical_titles_are_not_each_others_negatives():
    rng = np.random.default_rng(0)
    image = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(4, 8)), dtype=torch.float32), dim=-1)
    text = image.clone()
    text[1] = text[0]  # rows 0 and 1 have the same title
    scale = torch.tensor(10.0)
    same = torch.tensor([[a == b for b in (0, 0, 1, 2)] for a in (0, 0, 1, 2)])
    masked = ClipLoss()(image, text, scale, same)
    logits = scale * image @ text.T
    logits[0, 1] = logits[1, 0] = float("-inf")
    labels = torch.arange(4)
    expected = (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(masked, expected)
    assert masked < ClipLoss()(image, text, scale)  # the duplicate no longer counts against its twin


def _pairs(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 6))
    image = latent @ rng.normal(size=(6, 10)) + 0.1 * rng.normal(size=(n, 10))
    text = latent @ rng.normal(size=(6, 9)) + 0.1 * rng.normal(size=(n, 9))
    families = np.array([f"f{i // 3}" for i in range(n)], dtype=object)
    return image.astype(np.float32), text.astype(np.float32), families


def test_default_path_is_unchanged_bit_for_bit():
    image, text, families = _pairs()
    config = AlignConfig(epochs=3, batch_size=32, seed=0)
    plain = AlignmentHeads(10, 9, config).fit(image, text).to_arrays()
    with_keys = AlignmentHeads(10, 9, config).fit(image, text, families=families).to_arrays()
    assert plain.keys() == with_keys.keys()
    assert all(np.array_equal(plain[k], with_keys[k]) for k in plain)


def test_family_batching_trains_deterministically_and_differs_from_random():
    image, text, families = _pairs()
    titles = np.array([f"t{i // 2}" for i in range(len(image))], dtype=object)
    config = AlignConfig(epochs=3, batch_size=32, seed=0, hard_negatives=0.5)
    first = AlignmentHeads(10, 9, config).fit(image, text, families=families, titles=titles).to_arrays()
    again = AlignmentHeads(10, 9, config).fit(image, text, families=families, titles=titles).to_arrays()
    random = AlignmentHeads(10, 9, AlignConfig(epochs=3, batch_size=32, seed=0)).fit(image, text).to_arrays()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["image_proj.1.weight"], random["image_proj.1.weight"])


def test_hard_negatives_without_families_is_a_clear_error():
    image, text, _ = _pairs()
    with pytest.raises(HeadError, match="families"):
        AlignmentHeads(10, 9, AlignConfig(epochs=1, hard_negatives=0.5)).fit(image, text)
