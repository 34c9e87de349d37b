"""Leave-one-subject-out folds and the LightningDataModule that batches them.

A fold is named by its held-out subject. Training iterates a seeded stream of batches of
``batch_size`` videos drawn from the training subjects (the paper counts iterations, not epochs);
prediction walks the held-out subject's videos in file order.

With ``validation_subjects`` (``evaluation.validation_subjects``) some of the fold's training
subjects are held out of training as validation subjects (:func:`validation_split`): chosen from
the sorted training subjects and the seed only, so the test subject never takes part in the choice
beyond being absent. Their videos carry the same point labels as they would in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import zlib

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from pwes.data.batch import NUM_CLASSES, VideoItem, collate
from pwes.data.layout import FeatureSet, load_features
from pwes.data.points import sample_points, snippet_intervals, snippet_points, video_label
from pwes.supervision import SUPERVISIONS

CACHE_MODES = ("auto", "memory", "none")


class FoldError(ValueError):
    """The ``fold`` setting names no subject of the feature set."""


def fold_subjects(feature_set: FeatureSet, fold: str) -> list[str]:
    """Held-out subjects to run for ``fold``: every subject for ``all``, none for ``none``."""
    subjects = feature_set.subjects
    fold = str(fold)
    if fold == "all":
        return subjects
    if fold == "none":
        return []
    if fold not in subjects:
        shown = ", ".join(subjects[:12]) + (" ..." if len(subjects) > 12 else "")
        raise FoldError(f"fold={fold!r} is not a subject of {feature_set.root} (subjects: {shown}; or all, none)")
    return [fold]


def validation_count(share: float, num_train_subjects: int) -> int:
    """How many of ``num_train_subjects`` training subjects ``evaluation.validation_subjects=share``
    holds out: 0 for 0; a whole number >= 1 as given; a share in (0, 1) rounded half up, at least 1.
    At least one subject must be left to train on."""
    if share == 0:
        return 0
    count = int(share) if share >= 1 else max(1, int(math.floor(share * num_train_subjects + 0.5)))
    if count >= num_train_subjects:
        raise FoldError(
            f"evaluation.validation_subjects={share:g} holds out {count} of the fold's {num_train_subjects} training subject(s): at least one must be left to train on"
        )
    return count


def validation_split(train_subjects: Sequence[str], share: float, seed: int) -> list[str]:
    """The validation subjects of a fold: ``validation_count`` of the sorted ``train_subjects``,
    drawn by a generator seeded with ``seed`` and the subjects' names (so the same subjects and
    seed always give the same choice, whatever order folds run in); returned sorted."""
    subjects = sorted(train_subjects)
    count = validation_count(share, len(subjects))
    if count == 0:
        return []
    rng = np.random.default_rng([int(seed), zlib.crc32(",".join(subjects).encode("utf-8"))])
    return sorted(subjects[i] for i in rng.permutation(len(subjects))[:count])


class VideoDataset(Dataset):
    """The videos of some subjects with their labels; features are read from disk on demand
    unless ``in_memory`` holds them (decided by the caller from the set's size)."""

    def __init__(
        self,
        feature_set: FeatureSet,
        videos: Sequence[str],
        supervision: str = "point",
        point_mode: str = "random",
        point_seed: int = 0,
        in_memory: bool = False,
    ) -> None:
        if supervision not in SUPERVISIONS:
            raise ValueError(f"model.supervision must be one of {', '.join(SUPERVISIONS)}, got {supervision!r}")
        self.feature_set = feature_set
        self.videos = list(videos)
        self.supervision = supervision
        self.labels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # Interval labels exist only under full supervision: weak training never sees onset/offset.
        self.intervals: dict[str, np.ndarray] = {}
        self.apex_fallbacks = 0
        for name in self.videos:
            intervals = feature_set.intervals[name]
            t = feature_set.num_snippets[name]
            points = sample_points(name, intervals, point_mode, point_seed)
            self.apex_fallbacks += sum(p.apex_fallback for p in points)
            grid = snippet_points(points, t, feature_set.snippet_length, feature_set.stride, NUM_CLASSES)
            if supervision == "video":
                grid[:] = 0.0
            self.labels[name] = (video_label(intervals, NUM_CLASSES), grid)
            if supervision == "full":
                self.intervals[name] = snippet_intervals(intervals, t, feature_set.snippet_length, feature_set.stride, NUM_CLASSES)
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = {} if in_memory else None

    def __len__(self) -> int:
        return len(self.videos)

    def _features(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None and name in self._cache:
            return self._cache[name]
        rgb, flow = load_features(self.feature_set.videos[name].feature_path)
        pair = torch.from_numpy(rgb), torch.from_numpy(flow)
        if self._cache is not None:
            self._cache[name] = pair
        return pair

    def __getitem__(self, index: int) -> VideoItem:
        name = self.videos[index]
        info = self.feature_set.videos[name]
        rgb, flow = self._features(name)
        label, points = self.labels[name]
        spans = self.intervals.get(name)
        return VideoItem(
            name, info.subject, rgb, flow, torch.from_numpy(label), torch.from_numpy(points), info.num_frames, info.fps,
            intervals=None if spans is None else torch.from_numpy(spans),
        )


class PWESDataModule(L.LightningDataModule):
    """Train on every subject but the held-out ones (test and validation); predict on the test
    subjects (``test_set``); ``val_set`` holds the validation subjects' videos (empty when off)."""

    def __init__(
        self,
        feature_set: FeatureSet,
        test_subjects: Sequence[str] = (),
        batch_size: int = 8,
        supervision: str = "point",
        point_mode: str = "random",
        point_seed: int = 0,
        seed: int = 0,
        num_workers: int = 0,
        cache: str = "auto",
        cache_limit_mb: float = 1024.0,
        validation_subjects: float = 0,
    ) -> None:
        super().__init__()
        if cache not in CACHE_MODES:
            raise ValueError(f"data.cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
        if batch_size <= 0:
            raise ValueError(f"data.batch_size must be positive, got {batch_size}")
        self.feature_set = feature_set
        self.test_subjects = list(test_subjects)
        held_out = set(self.test_subjects)
        remaining = sorted({v.subject for v in feature_set.videos.values() if v.subject not in held_out})
        self.validation_subjects = validation_split(remaining, validation_subjects, seed)
        held_out |= set(self.validation_subjects)
        train_videos = [n for n, v in feature_set.videos.items() if v.subject not in held_out]
        test_videos = feature_set.videos_of(self.test_subjects)
        if not train_videos:
            raise FoldError("no training videos left after holding out " + ", ".join(self.test_subjects))
        for subject in self.test_subjects:
            if not feature_set.videos_of([subject]):
                raise FoldError(f"subject {subject!r} has no videos in {feature_set.root}")
        in_memory = cache == "memory" or (cache == "auto" and dataset_megabytes(feature_set) <= cache_limit_mb)
        common = dict(point_mode=point_mode, point_seed=point_seed, in_memory=in_memory)
        self.train_set = VideoDataset(feature_set, train_videos, supervision, **common)
        self.test_set = VideoDataset(feature_set, test_videos, "point", **common)
        # The validation subjects' videos with the labels training would have given them (same
        # supervision and point draw), for calibration and the val_* figures only.
        self.val_set = VideoDataset(feature_set, feature_set.videos_of(self.validation_subjects), supervision, **common)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        # An endless seeded stream: Trainer.max_steps decides how many batches are drawn.
        generator = torch.Generator().manual_seed(self.seed)
        sampler = RandomSampler(self.train_set, replacement=False, num_samples=len(self.train_set) * 10_000, generator=generator)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, collate_fn=collate, num_workers=self.num_workers, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size, shuffle=False, collate_fn=collate, num_workers=self.num_workers)


def dataset_megabytes(feature_set: FeatureSet) -> float:
    """Size of the feature arrays in MB (float32), from the validated shapes."""
    width = sum(feature_set.feature_dims)
    return sum(feature_set.num_snippets.values()) * width * 4 / 2**20
