"""The calibrated operating point: thresholds from point labels (never from onset/offset), the
interval rule behind its option, and per-fold thresholds applied before pooling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_feature_set
from pwes.data.batch import VideoItem
from pwes.data.datamodule import VideoDataset
from pwes.data.layout import Interval, load_feature_set
from pwes.evaluation.calibration import (
    PointTarget,
    apply_threshold,
    calibrate_on_intervals,
    calibrate_on_points,
    calibrated_metrics,
    calibration_rule,
    point_frame,
    point_targets,
    pooled_calibrated_metrics,
)
from pwes.evaluation.megc import EvaluationError, MatchConfig, score
from pwes.inference.proposals import Proposal


def item(name: str, points: list[tuple[int, int]], video_label: list[float], snippets: int = 40, num_frames: int = 320) -> VideoItem:
    grid = torch.zeros(snippets, 2)
    for snippet, label in points:
        grid[snippet, label] = 1.0
    empty = torch.zeros(snippets, 4)
    return VideoItem(name, "s", empty, empty, torch.tensor(video_label), grid, num_frames, 30.0)


def test_a_point_stands_for_its_snippet_centre_clipped_to_the_video() -> None:
    assert point_frame(15, 8, 8, 300) == 123.5  # snippet 15 covers frames 120..127
    assert point_frame(0, 8, 8, 300) == 3.5
    assert point_frame(39, 8, 8, 315) == 314.0  # the last snippet runs past the end: clipped
    targets = point_targets([item("v", [(15, 1), (2, 0)], [1.0, 1.0])], 8, 8)
    assert targets == {"v": [PointTarget(19.5, 0), PointTarget(123.5, 1)]}  # in time order


def test_point_hit_f1_picks_the_threshold_by_hand() -> None:
    targets = {"v": [PointTarget(123.5, 1)], "w": [PointTarget(20.0, 1), PointTarget(200.0, 1)]}
    proposals = [
        Proposal("v", 112, 127, 0.9, "MaE"),  # hits v's point
        Proposal("v", 96, 143, 0.5, "MaE"),  # contains it too, but it is already hit: FP
        Proposal("w", 0, 40, 0.8, "MaE"),  # hits w's first point
        Proposal("w", 180, 230, 0.3, "MaE"),  # hits w's second point
        Proposal("w", 60, 90, 0.7, "MaE"),  # hits nothing
    ]
    # sets (TP, FP, FN): >=0.9 (1,0,2) F1 0.5; >=0.8 (2,0,1) 0.8; >=0.7 (2,1,1) 0.667; >=0.5 (2,2,1) 0.571; all (3,2,0) 0.75
    chosen = calibrate_on_points(proposals, targets)
    assert chosen.threshold == 0.8 and chosen.train_f1 == pytest.approx(0.8) and chosen.rule == "points" and chosen.num_targets == 3
    # one more point found late: keeping every proposal (4,2,0) F1 0.8 beats >=0.8 (2,0,2) 0.667; stored as -inf
    targets["w"].append(PointTarget(300.0, 0))
    chosen = calibrate_on_points([*proposals, Proposal("w", 290, 304, 0.2, "ME")], targets)
    assert chosen.threshold == float("-inf") and chosen.train_f1 == pytest.approx(0.8)

def test_a_point_needs_a_proposal_of_its_type() -> None:
    targets = {"v": [PointTarget(123.5, 0)]}  # an ME point
    proposals = [Proposal("v", 100, 140, 0.9, "MaE"), Proposal("v", 120, 127, 0.4, "ME")]
    assert calibrate_on_points(proposals, targets).threshold == float("-inf")  # the ME one at 0.4 is needed
    assert calibrate_on_points(proposals, targets, MatchConfig(class_agnostic=True)).threshold == 0.9


def test_video_labels_stand_in_when_no_video_has_points() -> None:
    targets = point_targets([item("v", [], [0.0, 1.0]), item("w", [], [0.0, 0.0])], 8, 8)
    assert targets == {"v": [PointTarget(None, 1)], "w": []}
    proposals = [Proposal("v", 0, 40, 0.9, "MaE"), Proposal("w", 0, 40, 0.6, "MaE"), Proposal("v", 50, 90, 0.5, "MaE")]
    assert calibrate_on_points(proposals, targets).threshold == 0.9


def test_unknown_videos_and_no_proposals() -> None:
    with pytest.raises(EvaluationError, match="'x', which has no training labels"):
        calibrate_on_points([Proposal("x", 0, 9, 0.5, "ME")], {"v": []})
    assert calibrate_on_points([], {"v": [PointTarget(3.5, 0)]}).threshold == float("-inf")


def two_sets(tmp_path: Path) -> tuple[Path, Path]:
    """Two feature sets identical but for the onset/offset of their expressions (same apexes)."""
    videos = {"a1": ("s1", 300), "b1": ("s2", 300)}
    narrow = [dict(video="a1", subject="s1", onset=100, apex=120, offset=140, type="MaE"), dict(video="b1", subject="s2", onset=30, apex=35, offset=40, type="ME")]
    wide = [dict(video="a1", subject="s1", onset=60, apex=120, offset=200, type="MaE"), dict(video="b1", subject="s2", onset=33, apex=35, offset=44, type="ME")]
    return make_feature_set(tmp_path / "narrow", videos, narrow), make_feature_set(tmp_path / "wide", videos, wide)


def test_onset_and_offset_never_reach_the_point_threshold(tmp_path: Path) -> None:
    proposals = [Proposal("a1", 112, 127, 0.9, "MaE"), Proposal("a1", 96, 143, 0.5, "MaE"), Proposal("a1", 0, 40, 0.3, "MaE"), Proposal("b1", 32, 39, 0.6, "ME")]
    point_thresholds, interval_thresholds = [], []
    for root in two_sets(tmp_path):
        fs = load_feature_set(root, 8, 8)
        train_set = VideoDataset(fs, ["a1", "b1"], "point", point_mode="apex")
        targets = point_targets((train_set[i] for i in range(len(train_set))), 8, 8)
        point_thresholds.append(calibrate_on_points(proposals, targets).threshold)
        gt = {v: fs.intervals[v] for v in ("a1", "b1")}
        interval_thresholds.append(calibrate_on_intervals(proposals, gt, {"a1": 30.0, "b1": 30.0}).threshold)
    assert point_thresholds[0] == point_thresholds[1] == 0.6
    assert interval_thresholds[0] != interval_thresholds[1]  # the interval rule does see them


def test_interval_rule_is_the_best_training_f1() -> None:
    gt = {"v": [Interval("v", "s", 0, 29, "MaE")]}
    proposals = [Proposal("v", 0, 29, 0.9, "MaE"), Proposal("v", 100, 129, 0.4, "MaE"), Proposal("v", 200, 229, 0.3, "MaE")]
    chosen = calibrate_on_intervals(proposals, gt, {"v": 30.0})
    assert chosen.threshold == 0.9 and chosen.train_f1 == 1.0 and chosen.rule == "intervals"
    assert calibrate_on_intervals([], gt, {"v": 30.0}).threshold == float("-inf")


def test_auto_uses_intervals_only_for_a_fully_supervised_model() -> None:
    assert [calibration_rule("auto", s) for s in ("point", "video", "full")] == ["points", "points", "intervals"]
    assert calibration_rule("points", "full") == "points" and calibration_rule("intervals", "point") == "intervals"
    with pytest.raises(EvaluationError, match="evaluation.calibration must be one of auto, points, intervals, got 'apex'"):
        calibration_rule("apex", "point")


def test_calibrated_figures_filter_each_fold_by_its_own_threshold() -> None:
    gt = {"v": [Interval("v", "s", 0, 29, "MaE")], "w": [Interval("w", "t", 0, 29, "MaE")]}
    fps = {"v": 30.0, "w": 30.0}
    fold_v = [Proposal("v", 0, 29, 0.2, "MaE"), Proposal("v", 100, 129, 0.1, "MaE")]
    fold_w = [Proposal("w", 0, 29, 0.9, "MaE"), Proposal("w", 100, 129, 0.8, "MaE")]
    alone = calibrated_metrics(fold_w, {"w": gt["w"]}, {"w": 30.0}, 0.85)
    assert (alone["calibrated_tp"], alone["calibrated_fp"], alone["calibrated_fn"]) == (1, 0, 0)
    assert alone["calibrated_mae_f1"] == 1.0 and alone["calibrated_num_proposals"] == 1
    pooled = pooled_calibrated_metrics([(fold_v, 0.15), (fold_w, 0.85)], gt, fps)
    assert (pooled["calibrated_tp"], pooled["calibrated_fp"], pooled["calibrated_fn"]) == (2, 0, 0)
    # one threshold for both folds would have lost v's expression
    assert score(apply_threshold(fold_v + fold_w, 0.85), gt, fps)["tp"] == 1
    assert len(apply_threshold(fold_v, None)) == len(apply_threshold(fold_v, -math.inf)) == 2
    assert np.isclose(pooled["calibrated_f1"], 1.0)
