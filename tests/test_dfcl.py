"""DFCL: distribution-guided region sampling, the InfoNCE loss against hand-computed values, and
the per-class FIFO memory bank (its buffers are part of the state dict)."""

from __future__ import annotations

import math

import pytest
import torch

from pwes.config import ConfigError
from pwes.model.dfcl import RegionCounts, contrastive_anchors, info_nce, sample_region_vectors
from pwes.model.memory_bank import RegionMemoryBank


def one_hot_labels(T: int, me: list[int], mae: list[int], bg: list[int]) -> torch.Tensor:
    labels = torch.zeros(1, T, 3, dtype=torch.bool)
    for c, ts in enumerate((me, mae, bg)):
        labels[0, ts, c] = True
    return labels


def test_region_vectors_are_the_means_of_equal_temporal_regions() -> None:
    # feature of snippet t = [t, 10 t]: region means can be read off directly
    T = 10
    t = torch.arange(T, dtype=torch.float32)
    features = torch.stack([t, 10 * t], dim=-1)[None]
    labels = one_hot_labels(T, me=[1, 2, 3, 4], mae=[6], bg=[0, 5, 7, 8, 9])
    regions = sample_region_vectors(features, labels, RegionCounts(me=2, mae=3, background=2))
    assert regions.classes.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert bool(regions.valid.all())
    means = regions.vectors[0, :, 0].tolist()
    # ME {1,2},{3,4}; MaE's single snippet repeated 3 times; background {0,5},{7,8,9}
    assert means == pytest.approx([1.5, 3.5, 6.0, 6.0, 6.0, 2.5, 8.0])
    assert torch.allclose(regions.vectors[0, :, 1], 10 * regions.vectors[0, :, 0])


def test_main_region_adds_one_whole_set_vector_per_class() -> None:
    # same video as above: the main vector of each class is the mean of its whole set
    T = 10
    t = torch.arange(T, dtype=torch.float32)
    features = torch.stack([t, 10 * t], dim=-1)[None]
    labels = one_hot_labels(T, me=[1, 2, 3, 4], mae=[6], bg=[0, 5, 7, 8, 9])
    counts = RegionCounts(me=2, mae=3, background=2)
    regions = sample_region_vectors(features, labels, counts, main_region=True)
    assert regions.classes.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    # ME {1,2},{3,4}, main {1..4}; MaE 6 x3, main 6; background {0,5},{7,8,9}, main {0,5,7,8,9}
    assert regions.vectors[0, :, 0].tolist() == pytest.approx([1.5, 3.5, 2.5, 6.0, 6.0, 6.0, 6.0, 2.5, 8.0, 5.8])
    assert counts.per_video(True) == (3, 4, 3) and counts.per_video(False) == (2, 3, 2)
    without = sample_region_vectors(features, labels, counts)  # the function's default: sampled only
    assert without.vectors.shape[1] == 7
    # an absent class contributes no main vector either
    none_me = sample_region_vectors(features, one_hot_labels(T, me=[], mae=[6], bg=[0]), counts, main_region=True)
    assert none_me.valid[0].tolist() == [False] * 3 + [True] * 7


def test_uneven_sets_split_like_floor_boundaries() -> None:
    # 7 background snippets into 3 regions: ranks [0,2), [2,4), [4,7)
    T = 7
    features = torch.arange(T, dtype=torch.float32)[None, :, None]
    labels = one_hot_labels(T, me=[], mae=[], bg=list(range(T)))
    regions = sample_region_vectors(features, labels, RegionCounts(me=1, mae=1, background=3))
    assert regions.valid[0].tolist() == [False, False, True, True, True]
    assert regions.vectors[0, 2:, 0].tolist() == pytest.approx([0.5, 2.5, 5.0])
    vectors, classes = regions.flatten()
    assert classes.tolist() == [2, 2, 2] and vectors.shape == (3, 1)
    anchors, _ = contrastive_anchors(regions)
    assert anchors.shape[0] == 0  # background vectors are never anchors


def test_region_sampling_ignores_padded_garbage() -> None:
    T, extra = 10, 5
    features = torch.randn(1, T, 4)
    labels = one_hot_labels(T, me=[2, 3], mae=[5, 6, 7], bg=[0, 1, 8, 9])
    counts = RegionCounts(me=2, mae=3, background=2)
    alone = sample_region_vectors(features, labels, counts)
    padded_features = torch.cat([features, 1e4 * torch.randn(1, extra, 4)], dim=1)
    padded_labels = torch.cat([labels, torch.zeros(1, extra, 3, dtype=torch.bool)], dim=1)
    padded = sample_region_vectors(padded_features, padded_labels, counts)
    assert torch.allclose(alone.vectors, padded.vectors)
    assert torch.equal(alone.valid, padded.valid)


def test_info_nce_matches_the_hand_computed_value() -> None:
    # anchor [1, 0]; positives [1, 0] and [0, 1] (same class), negative [-1, 0] (background); tau 1
    # L = 1/2 [log(1 + e^-2) + log(1 + e^-1)]
    anchors = torch.tensor([[2.0, 0.0]])  # normalised inside
    keys = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    loss = info_nce(anchors, torch.tensor([1]), keys, torch.tensor([1, 1, 2]), temperature=1.0)
    expected = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)))
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.220095, abs=1e-6)


def test_info_nce_temperature_and_other_foreground_class_as_negative() -> None:
    # anchor ME [1, 0]; positive ME [0, 1]; negatives MaE [1, 0] and background [0, -1]; tau 0.5
    # s/tau: pos 0, negs 2 and 0  ->  L = -log(1 / (1 + e^2 + e^0)) = log(2 + e^2)
    loss = info_nce(
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([0]),
        torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]),
        torch.tensor([0, 1, 2]),
        temperature=0.5,
    )
    assert float(loss) == pytest.approx(math.log(2 + math.exp(2)), abs=1e-6)


def test_info_nce_averages_over_anchors_with_positives_only() -> None:
    keys = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    key_classes = torch.tensor([1, 2])
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    # anchor 0 is MaE (one positive), anchor 1 is ME (no ME key: skipped)
    loss = info_nce(anchors, torch.tensor([1, 0]), keys, key_classes)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)
    loss.backward()
    assert torch.isfinite(anchors.grad).all()
    assert float(anchors.grad[1].abs().sum()) == 0.0


def test_info_nce_without_positives_or_negatives_is_a_finite_zero() -> None:
    anchors = torch.tensor([[1.0, 0.0]], requires_grad=True)
    none = info_nce(anchors, torch.tensor([0]), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    only_pos = info_nce(anchors, torch.tensor([0]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    assert none.item() == 0.0 and only_pos.item() == pytest.approx(0.0, abs=1e-7)
    (none + only_pos).backward()
    assert torch.isfinite(anchors.grad).all()


def test_memory_bank_is_a_per_class_fifo() -> None:
    bank = RegionMemoryBank(capacities=[2, 3, 4], dim=2)
    bank.enqueue(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]), torch.tensor([0, 0, 0]))
    bank.enqueue(torch.tensor([[0.0, 5.0]]), torch.tensor([2]))
    assert bank.sizes() == [2, 0, 1]
    keys, classes = bank.keys()
    assert classes.tolist() == [0, 0, 2]
    # ME capacity 2: the oldest of three ([1, 0]) is gone; vectors are stored L2-normalised
    stored = {tuple(round(float(x), 6) for x in v) for v in keys[:2]}
    assert stored == {(0.0, 1.0), (1.0, 0.0)}
    assert torch.allclose(keys[2], torch.tensor([0.0, 1.0]))
    bank.enqueue(torch.tensor([[-1.0, 0.0]]), torch.tensor([0]))  # overwrites the oldest ME entry
    me = {tuple(round(float(x), 6) for x in v) for v in bank.keys()[0][:2]}
    assert me == {(1.0, 0.0), (-1.0, 0.0)}


def test_memory_bank_lives_in_the_state_dict() -> None:
    bank = RegionMemoryBank(capacities=[2, 2, 2], dim=3)
    bank.enqueue(torch.randn(4, 3), torch.tensor([0, 1, 2, 2]))
    state = bank.state_dict()
    assert set(state) == {"vectors", "filled", "pointer"}
    restored = RegionMemoryBank(capacities=[2, 2, 2], dim=3)
    restored.load_state_dict(state)
    assert torch.equal(restored.keys()[0], bank.keys()[0])
    assert restored.sizes() == [1, 1, 2]


def test_memory_bank_rejects_wrong_widths() -> None:
    bank = RegionMemoryBank(capacities=[2, 2, 2], dim=3)
    with pytest.raises(ValueError, match=r"expected vectors \[N, 3\]"):
        bank.enqueue(torch.randn(2, 4), torch.tensor([0, 1]))


def test_region_counts_come_from_the_dataset_mapping() -> None:
    counts = RegionCounts.from_mapping({"background": 8, "me": 2, "mae": 3})
    assert counts.as_tuple() == (2, 3, 8)
    with pytest.raises(ConfigError, match=r"dataset.regions.me: must be a positive whole number"):
        RegionCounts.from_mapping({"background": 8, "me": 0, "mae": 3})
    with pytest.raises(ConfigError, match="unknown key"):
        RegionCounts.from_mapping({"bg": 8})
