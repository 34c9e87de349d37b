"""Folds and batches: held-out subjects, padding masks, labels, fold errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pwes.data.batch import collate, lengths_to_mask
from pwes.data.datamodule import FoldError, PWESDataModule, fold_subjects
from pwes.data.layout import load_feature_set


@pytest.fixture
def fs(feature_root: Path):
    return load_feature_set(feature_root, 8, 8)


def test_fold_subjects(fs) -> None:
    assert fold_subjects(fs, "all") == ["s1", "s2", "s3"]
    assert fold_subjects(fs, "s2") == ["s2"]
    assert fold_subjects(fs, "none") == []
    with pytest.raises(FoldError, match=r"fold='s7' is not a subject .*s1, s2, s3"):
        fold_subjects(fs, "s7")


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask(torch.tensor([3, 1]))
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def test_train_and_test_split(fs) -> None:
    dm = PWESDataModule(fs, ["s1"], batch_size=2, seed=0)
    assert dm.train_set.videos == ["b1", "c1"]
    assert dm.test_set.videos == ["a1", "a2"]


def test_batches_are_padded_and_masked(fs) -> None:
    dm = PWESDataModule(fs, ["s2"], batch_size=3, seed=0)
    batch = collate([dm.test_set[0]] + [dm.train_set[i] for i in range(2)])
    assert batch.rgb.shape == (3, 10, 4) and batch.flow.shape == (3, 10, 4)
    assert batch.lengths.tolist() == [9, 10, 8]
    assert batch.mask.sum().item() == 27
    assert torch.all(batch.rgb[0, 9] == 0) and torch.all(batch.rgb[2, 8:] == 0)
    assert batch.points.shape == (3, 10, 2)
    # a1 holds one ME and one MaE: one point each; a2 none
    assert batch.points[1].sum().item() == 2 and batch.video_labels[1].tolist() == [1.0, 1.0]
    assert batch.points[2].sum().item() == 0 and batch.video_labels[2].tolist() == [0.0, 0.0]


def test_video_supervision_has_no_points(fs) -> None:
    dm = PWESDataModule(fs, ["s3"], supervision="video")
    item = dm.train_set[0]
    assert item.points.sum() == 0 and item.video_label.tolist() == [1.0, 1.0]


def test_interval_labels_only_under_full_supervision(fs) -> None:
    for supervision in ("point", "video"):
        dm = PWESDataModule(fs, ["s3"], batch_size=2, supervision=supervision)
        assert dm.train_set[0].intervals is None
        assert collate([dm.train_set[0], dm.train_set[1]]).intervals is None
    full = PWESDataModule(fs, ["s3"], batch_size=2, supervision="full")
    assert full.train_set.videos == ["a1", "a2", "b1"]
    a1 = full.train_set[0]  # ME [8, 15] -> snippet 1; MaE [40, 70] -> centres 43.5..67.5: snippets 5-8
    assert a1.intervals[:, 0].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert a1.intervals[:, 1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    batch = collate([full.train_set[0], full.train_set[2]])
    assert batch.intervals.shape == (2, 10, 2) and batch.intervals[1, 9].sum() == 0  # padding
    assert full.test_set[0].intervals is None  # testing never carries them


def test_training_stream_is_seeded(fs) -> None:
    def names(seed: int) -> list[list[str]]:
        loader = PWESDataModule(fs, ["s3"], batch_size=2, seed=seed).train_dataloader()
        it = iter(loader)
        return [next(it).videos for _ in range(4)]

    assert names(1) == names(1)
    assert names(1) != names(2)


def test_bad_settings(fs) -> None:
    with pytest.raises(ValueError, match="data.cache"):
        PWESDataModule(fs, ["s1"], cache="disk")
    with pytest.raises(ValueError, match="model.supervision"):
        PWESDataModule(fs, ["s1"], supervision="frame")
