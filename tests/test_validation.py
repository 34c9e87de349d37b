"""The validation protocol: held-out training subjects (deterministic split, same point draw),
their point-hit figures, calibration on them, extent-aware point hits, and that the test subject
reaches none of it."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train, make_feature_set
from omegaconf import open_dict
from tiny_model import QUIET

from pwes.config import ConfigError
from pwes.data.datamodule import FoldError, PWESDataModule, validation_count, validation_split
from pwes.data.layout import load_feature_set
from pwes.evaluation.calibration import PointHitExtent, PointTarget, calibrate_on_points, point_hit_extent, point_hit_figures
from pwes.evaluation.megc import EvaluationError, MatchConfig
from pwes.inference.proposals import Proposal
from pwes.protocol import train_fold
from pwes.scoring import check_evaluation_settings, pooled_validation

SUBJECTS = [f"s{i:02d}" for i in range(1, 11)]


def test_validation_split_is_deterministic_sorted_and_sized_by_the_setting() -> None:
    assert validation_split(SUBJECTS, 0, 0) == []
    two = validation_split(SUBJECTS, 2, 0)
    assert len(two) == 2 and two == sorted(two) and set(two) <= set(SUBJECTS)
    assert validation_split(list(reversed(SUBJECTS)), 2, 0) == two  # from the sorted subjects: input order is irrelevant
    assert validation_split(SUBJECTS, 2, 0) == two  # same seed, same subjects
    assert any(validation_split(SUBJECTS, 2, seed) != two for seed in range(1, 6))  # the seed matters
    assert len(validation_split(SUBJECTS, 0.25, 0)) == 3  # 2.5 rounds half up
    assert (validation_count(0.01, 10), validation_count(0.2, 21), validation_count(3.0, 4)) == (1, 4, 3)
    with pytest.raises(FoldError, match=r"evaluation.validation_subjects=4 holds out 4 of the fold's 4 training subject\(s\)"):
        validation_count(4, 4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"calibration_source": "validation"}, "evaluation.calibration_source=validation needs held-out validation subjects"),
        ({"calibration_source": "test"}, "evaluation.calibration_source must be one of train, validation, got 'test'"),
        ({"validation_subjects": 1.5}, "evaluation.validation_subjects must be 0 .off., a whole number of subjects"),
        ({"validation_subjects": -1}, "evaluation.validation_subjects must be 0"),
        ({"point_hit_extent": "yes"}, "evaluation.point_hit_extent must be true or false"),
        ({"point_hit_max_seconds": 0}, "evaluation.point_hit_max_seconds must be a positive number"),
    ],
)
def test_bad_validation_settings_are_one_line(settings: dict, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        MatchConfig(**settings)


def test_settings_are_checked_together_before_a_run() -> None:
    cfg = compose_train(["evaluation.point_hit_extent=true", "evaluation.point_hit_max_seconds=0.4"])
    with pytest.raises(EvaluationError, match=r"evaluation.point_hit_max_seconds=0.4 must be above the ME cut proposals.me_max_seconds=0.5"):
        check_evaluation_settings(cfg)
    with pytest.raises(ConfigError, match=r"^evaluation.iou_threshold: expected a number, got 'x'$"):
        check_evaluation_settings(compose_train(["evaluation.iou_threshold=x"]))
    assert check_evaluation_settings(compose_train(["evaluation.validation_subjects=0.2"])).validation_subjects == 0.2


def test_validation_subjects_leave_training_and_keep_their_point_draw(tmp_path: Path) -> None:
    videos = {f"v{i}": (f"s{i % 4 + 1}", 80) for i in range(8)}
    rows = [dict(video=v, subject=s, onset=10, apex="", offset=40, type="MaE") for v, (s, _) in videos.items()]
    fs = load_feature_set(make_feature_set(tmp_path / "set", videos, rows), 8, 8)
    plain = PWESDataModule(fs, ["s1"], seed=3)
    split = PWESDataModule(fs, ["s1"], seed=3, validation_subjects=1)
    (held,) = split.validation_subjects
    assert held == validation_split(["s2", "s3", "s4"], 1, 3)[0]
    assert sorted(split.val_set.videos) == sorted(fs.videos_of([held]))
    assert not set(split.val_set.videos) & set(split.train_set.videos)
    assert not {fs.videos[v].subject for v in split.val_set.videos + split.train_set.videos} & {"s1"}  # never the test subject
    assert split.test_set.videos == plain.test_set.videos
    assert plain.val_set.videos == [] and sorted(plain.train_set.videos) == sorted(split.train_set.videos + split.val_set.videos)
    for name in split.val_set.videos:  # the same point labels the video would train with
        assert np.array_equal(split.val_set.labels[name][1], plain.train_set.labels[name][1])


# ----------------------------------------------------------------------------- extent-aware hits


def test_extent_keeps_implausibly_long_or_short_proposals_from_hitting() -> None:
    extent = PointHitExtent({"v": 30.0}, me_max_seconds=0.5, mae_max_seconds=4.0)
    me, mae = 0, 1
    assert extent.plausible(Proposal("v", 0, 14, 0.5, "ME"), me)  # 15 frames = 0.5 s: an ME
    assert not extent.plausible(Proposal("v", 0, 15, 0.5, "MaE"), me)  # 16 frames: too long for an ME
    assert not extent.plausible(Proposal("v", 0, 14, 0.5, "ME"), mae)  # too short for a MaE
    assert extent.plausible(Proposal("v", 0, 119, 0.5, "MaE"), mae)  # 120 frames = 4.0 s: still a MaE
    assert not extent.plausible(Proposal("v", 0, 120, 0.5, "MaE"), mae)  # 121 frames: past the cap
    targets = {"v": [PointTarget(100.0, mae)]}
    proposals = [Proposal("v", 0, 299, 0.9, "MaE"), Proposal("v", 80, 139, 0.4, "MaE")]  # 10 s, then 2 s, both contain the point
    # without extent the 10 s proposal hits at 0.9 (F1 1 at >= 0.9); with it only the 2 s one hits: keep both (F1 2/3)
    assert calibrate_on_points(proposals, targets).threshold == 0.9
    chosen = calibrate_on_points(proposals, targets, MatchConfig(), extent)
    assert chosen.threshold == float("-inf") and chosen.train_f1 == pytest.approx(2 / 3)
    # class_agnostic lets an ME-typed proposal take a MaE point; extent still refuses a 0.3 s one
    short = [Proposal("v", 95, 103, 0.8, "ME")]
    assert point_hit_figures(short, targets, None, MatchConfig(class_agnostic=True))["tp"] == 1
    assert point_hit_figures(short, targets, None, MatchConfig(class_agnostic=True), extent)["tp"] == 0
    assert point_hit_extent(MatchConfig(), {"v": 30.0}, 0.5) is None
    assert point_hit_extent(MatchConfig(point_hit_extent=True, point_hit_max_seconds=3.0), {"v": 30.0}, 0.5) == PointHitExtent({"v": 30.0}, 0.5, 3.0)


def test_point_hit_figures_by_hand() -> None:
    targets = {"v": [PointTarget(20.0, 0), PointTarget(123.5, 1)], "w": [PointTarget(50.0, 1)]}
    proposals = [
        Proposal("v", 16, 23, 0.9, "ME"),  # hits v's ME point
        Proposal("v", 100, 140, 0.3, "MaE"),  # hits v's MaE point, below 0.5
        Proposal("w", 0, 30, 0.7, "MaE"),  # misses: FP (MaE)
    ]
    at = point_hit_figures(proposals, targets, 0.5)
    assert (at["tp"], at["fp"], at["fn"]) == (1, 1, 2) and (at["me_tp"], at["mae_fp"], at["mae_fn"]) == (1, 1, 2)
    assert at["f1"] == pytest.approx(2 / (2 + 1 + 2))
    every = point_hit_figures(proposals, targets, None)
    assert (every["tp"], every["fp"], every["fn"]) == (2, 1, 1)
    pooled = pooled_validation([{f"val_{k}": v for k, v in at.items()} | {f"val_all_{k}": v for k, v in every.items()} | {"val_num_videos": 2, "val_num_targets": 3, "val_num_proposals": 3}] * 2)
    assert (pooled["val_tp"], pooled["val_fp"], pooled["val_fn"], pooled["val_all_tp"], pooled["val_num_targets"]) == (2, 2, 4, 4, 6)
    assert pooled["val_f1"] == pytest.approx(at["f1"]) and pooled["val_all_f1"] == pytest.approx(every["f1"])


# ------------------------------------------------------------ the test subject reaches none of it

VIDEOS = {"a1": ("s1", 160), "a2": ("s1", 120), "b1": ("s2", 144), "b2": ("s2", 96), "c1": ("s3", 136), "c2": ("s3", 128), "d1": ("s4", 152)}
ROWS = [("a1", "s1", 20, 24, 28, "ME"), ("a1", "s1", 60, 80, 110, "MaE"), ("a2", "s1", 30, 40, 70, "MaE"),
        ("b1", "s2", 8, 12, 16, "ME"), ("b1", "s2", 90, 100, 120, "MaE"), ("b2", "s2", 40, 50, 80, "MaE"),
        ("c1", "s3", 40, 50, 64, "MaE"), ("c2", "s3", 10, 14, 18, "ME"), ("d1", "s4", 30, 60, 90, "MaE")]


def fold_result(root: Path, tmp: Path, source: str) -> tuple[dict, dict]:
    cfg = compose_train([
        "dataset=casme2", f"dataset.root={root}", "data.batch_size=2", "trainer.max_steps=6", "dataset.pretrain_steps=2",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", "callbacks.dfcl.bank_videos=4",
        "+dataset.network.stream_dim=16", "+dataset.network.fused_dim=16", "+dataset.network.attention_dim=8",
        "evaluation.validation_subjects=1", f"evaluation.calibration_source={source}",
    ])
    with open_dict(cfg):
        cfg.run_dir, cfg.run_name, cfg.sweep_name = str(tmp), "x", "x"  # not composed under Hydra's runtime
    fs = load_feature_set(root, 8, 8)
    result = train_fold(cfg, fs, "s1", tmp / "fold-s1", "g", "[1/1]")
    weights = torch.load(tmp / "fold-s1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    return result.metrics, weights


@pytest.mark.filterwarnings(QUIET)
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("source", ["train", "validation"])
def test_the_test_subject_changes_no_validation_figure_threshold_or_weight(tmp_path: Path, source: str) -> None:
    rows = [dict(video=v, subject=s, onset=a, apex=b, offset=c, type=t) for v, s, a, b, c, t in ROWS]
    base = make_feature_set(tmp_path / "base", VIDEOS, rows, dim=6)
    other = tmp_path / "other"
    shutil.copytree(base, other)
    # the test subject s1: other intervals (hence other points) and one expression fewer
    with open(other / "annotations.csv", newline="") as handle:
        kept = [r for r in csv.DictReader(handle) if not (r["subject"] == "s1" and r["type"] == "ME")]
    for r in kept:
        if r["subject"] == "s1":
            r["onset"], r["apex"], r["offset"] = str(int(r["onset"]) + 4), "", str(int(r["offset"]) + 4)
    with open(other / "annotations.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    (m1, w1), (m2, w2) = fold_result(base, tmp_path / "run1", source), fold_result(other, tmp_path / "run2", source)
    assert m1["val_subjects"] == m2["val_subjects"] and len(m1["val_subjects"]) == 1 and "s1" not in m1["val_subjects"]
    assert m1["calibration_source"] == source
    assert m1["num_ground_truth"] == 3 and m2["num_ground_truth"] == 2  # the test fold did change ...
    val = {k: v for k, v in m1.items() if k.startswith("val_")}
    assert val and val == {k: v for k, v in m2.items() if k.startswith("val_")}  # ... no validation figure did
    assert m1["calibrated_threshold"] == m2["calibrated_threshold"] and m1["calibration_train_f1"] == m2["calibration_train_f1"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
