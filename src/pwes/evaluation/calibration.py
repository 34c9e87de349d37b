"""The deployable operating point: a proposal-score threshold chosen on a fold's *training*
videos, then applied to its test videos ("calibrated" figures) and stored for ``pwes.spot``.

Two rules (``evaluation.calibration``; the default ``auto`` picks ``intervals`` for a fully
supervised model and ``points`` for every other, :func:`calibration_rule`):

- ``points``: only what point supervision gives. Each training video contributes its
  point labels (one labelled snippet per expression, of its class) and its video label. A
  point's frame is the centre of its snippet, ``t * stride + (snippet_length - 1) / 2``, clipped
  to the video. Proposals of a video are visited by descending score (ties: onset, offset, input
  order); a proposal **hits** when its inclusive interval contains a not yet hit point of its
  type (of any type under ``class_agnostic``; every such point under ``one_to_many``). Hits are
  TP, proposals hitting nothing FP, points never hit FN; the threshold is the lowest score of the
  score-threshold set (pooled over the training videos) with the best point-hit F1, ties to the
  lower threshold. When no training video has a point (video-level supervision), each class of
  a video's label is one target that any proposal of that type in the video hits.
  No onset or offset reaches this rule: two ground truths that differ only there give the same
  points (apex points) and so the same threshold.
- ``intervals``: the threshold of the best MEGC F1 against the training videos' annotated
  intervals (the best-on-test rule applied to training videos). It uses onset/offset, so it is
  legitimate only for fully supervised models, and the default only for them.

A proposal is kept when ``score >= threshold``; ``-inf`` keeps every proposal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pwes.data.layout import EXPRESSION_TYPES, Interval
from pwes.evaluation.figures import best_set_index, f1_array, threshold_sets
from pwes.evaluation.megc import CALIBRATION_RULES, EvaluationError, MatchConfig, score
from pwes.inference.proposals import Proposal

# The keys of score() that the calibrated operating point reports, each prefixed "calibrated_".
CALIBRATED_KEYS = tuple(
    f"{prefix}{name}" for prefix in ("", "me_", "mae_") for name in ("recall", "precision", "f1", "tp", "fp", "fn")
) + ("f1_me_0.5", "f1_me_1.0", "num_proposals")


@dataclass(frozen=True)
class PointTarget:
    """One thing a training video's proposals should hit: a point label (``frame`` set) or, for
    videos known only by their video label, a class present somewhere (``frame`` None)."""

    frame: float | None
    label: int  # 0 = ME, 1 = MaE


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold, the rule that chose it and the training F1 it reached."""

    threshold: float  # -inf keeps every proposal
    rule: str
    train_f1: float
    num_targets: int

    def as_json(self) -> float | None:
        """The threshold as JSON stores it (``null`` = keep every proposal)."""
        return None if math.isinf(self.threshold) else float(self.threshold)


def point_frame(snippet: int, snippet_length: int, stride: int, num_frames: int) -> float:
    """The frame a point label at ``snippet`` stands for: the snippet's centre, clipped to the video."""
    return float(min(max(snippet * stride + (snippet_length - 1) / 2, 0.0), max(num_frames - 1, 0)))


def point_targets(items: Iterable, snippet_length: int, stride: int) -> dict[str, list[PointTarget]]:
    """Targets of training videos from what point supervision gives: each item's ``points``
    [T, C] (1 at a point's snippet, in its class column) and ``video_label`` [C].

    ``items`` are :class:`~pwes.data.batch.VideoItem` (e.g. the datamodule's training set). A
    video with points gives one target per point. When no item has any point (video-level
    supervision), every class of a video's label is one frame-less target.
    """
    points: dict[str, list[PointTarget]] = {}
    labels: dict[str, list[int]] = {}
    for item in items:
        grid = np.asarray(item.points, dtype=np.float32)
        snippets, classes = np.nonzero(grid[:, : len(EXPRESSION_TYPES)] > 0)
        order = np.lexsort((classes, snippets))
        points[item.name] = [PointTarget(point_frame(int(snippets[i]), snippet_length, stride, int(item.num_frames)), int(classes[i])) for i in order]
        labels[item.name] = [c for c in range(len(EXPRESSION_TYPES)) if float(item.video_label[c]) > 0]
    if any(points.values()):
        return points
    return {name: [PointTarget(None, c) for c in present] for name, present in labels.items()}


def _hit_credits(proposals: Sequence[Proposal], targets: Sequence[PointTarget], match: MatchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores [P], tp_credit [P, 2], fp_credit [P, 2]) of one video's point-hit matching."""
    num_types = len(EXPRESSION_TYPES)
    scores = np.array([p.score for p in proposals], dtype=np.float64)
    tp_credit = np.zeros((len(proposals), num_types), dtype=np.int64)
    fp_credit = np.zeros((len(proposals), num_types), dtype=np.int64)
    hit = np.zeros(len(targets), dtype=bool)
    order = sorted(range(len(proposals)), key=lambda i: (-proposals[i].score, proposals[i].onset, proposals[i].offset, i))
    for i in order:
        p = proposals[i]
        kind = EXPRESSION_TYPES.index(p.type)
        centre = (p.onset + p.offset) / 2
        candidates = [
            j for j, t in enumerate(targets)
            if not hit[j] and (match.class_agnostic or t.label == kind) and (t.frame is None or p.onset <= t.frame <= p.offset)
        ]
        if not candidates:
            fp_credit[i, kind] = 1
            continue
        if not match.one_to_many:  # the point nearest the proposal's centre (ties: the first)
            candidates = [min(candidates, key=lambda j: abs(targets[j].frame - centre) if targets[j].frame is not None else 0.0)]
        for j in candidates:
            hit[j] = True
            tp_credit[i, targets[j].label] += 1
    return scores, tp_credit, fp_credit


def calibration_rule(setting: str, supervision: str) -> str:
    """The rule ``evaluation.calibration`` names for a model trained under ``supervision``
    (``model.supervision``): ``auto`` is ``intervals`` only for ``full``, whose training already
    used every onset and offset; ``points`` and ``intervals`` are taken as given."""
    if setting not in CALIBRATION_RULES:
        raise EvaluationError(f"evaluation.calibration must be one of {', '.join(CALIBRATION_RULES)}, got {setting!r}")
    if setting != "auto":
        return setting
    return "intervals" if supervision == "full" else "points"


def calibrate_on_points(proposals: Sequence[Proposal], targets: Mapping[str, Sequence[PointTarget]], match: MatchConfig | None = None) -> Calibration:
    """The threshold with the best point-hit F1 over the training videos in ``targets`` (see the
    module docstring); proposals of videos outside ``targets`` are an error."""
    match = match or MatchConfig()
    by_video: dict[str, list[Proposal]] = {name: [] for name in targets}
    for p in proposals:
        if p.video not in by_video:
            raise EvaluationError(f"calibration: proposal {p.onset}-{p.offset} names video {p.video!r}, which has no training labels")
        by_video[p.video].append(p)
    num_targets = sum(len(t) for t in targets.values())
    parts = [_hit_credits(by_video[name], targets[name], match) for name in targets]
    if not parts or sum(len(s) for s, _, _ in parts) == 0:
        return Calibration(float("-inf"), "points", 0.0, num_targets)
    scores, tp_credit, fp_credit = (np.concatenate(arrays) for arrays in zip(*parts))
    sets = threshold_sets(scores, tp_credit, fp_credit)
    best = best_set_index(sets, num_targets)
    assert best is not None
    tp = int(sets.tp[best].sum())
    f1 = float(f1_array(tp, int(sets.fp[best].sum()), num_targets - tp))
    # the lowest set (every proposal) is "keep all": store -inf so that spot keeps lower scores too
    threshold = float("-inf") if best == len(sets.thresholds) - 1 else float(sets.thresholds[best])
    return Calibration(threshold, "points", f1, num_targets)


def calibrate_on_intervals(
    proposals: Sequence[Proposal], ground_truth: Mapping[str, Sequence[Interval]], fps: Mapping[str, float], match: MatchConfig | None = None
) -> Calibration:
    """The threshold with the best MEGC F1 against the training videos' annotated intervals.
    Uses onset/offset: only for fully supervised models (``evaluation.calibration=intervals``)."""
    metrics = score(proposals, ground_truth, fps, match)
    threshold = float(metrics["threshold_p"])
    if math.isnan(threshold) or int(metrics["num_proposals_p"]) == int(metrics["num_proposals"]):
        threshold = float("-inf")
    return Calibration(threshold, "intervals", float(metrics["f1_p"]), int(metrics["num_ground_truth"]))


def apply_threshold(proposals: Iterable[Proposal], threshold: float | None) -> list[Proposal]:
    """The proposals scoring at least ``threshold`` (``None`` or ``-inf``: all of them)."""
    if threshold is None or math.isinf(threshold) and threshold < 0:
        return list(proposals)
    return [p for p in proposals if p.score >= threshold]


def calibrated_metrics(
    proposals: Sequence[Proposal],
    ground_truth: Mapping[str, Sequence[Interval]],
    fps: Mapping[str, float],
    threshold: float | None,
    match: MatchConfig | None = None,
) -> dict[str, float | int]:
    """The ``calibrated_*`` figures: ``score()`` of the proposals kept by ``threshold``."""
    metrics = score(apply_threshold(proposals, threshold), ground_truth, fps, match)
    return {f"calibrated_{key}": metrics[key] for key in CALIBRATED_KEYS}


def pooled_calibrated_metrics(
    folds: Sequence[tuple[Sequence[Proposal], float | None]],
    ground_truth: Mapping[str, Sequence[Interval]],
    fps: Mapping[str, float],
    match: MatchConfig | None = None,
) -> dict[str, float | int]:
    """Each fold's proposals filtered by its own threshold, pooled, scored once."""
    kept = [p for proposals, threshold in folds for p in apply_threshold(proposals, threshold)]
    return calibrated_metrics(kept, ground_truth, fps, None, match)


__all__ = [
    "CALIBRATED_KEYS",
    "CALIBRATION_RULES",
    "Calibration",
    "PointTarget",
    "apply_threshold",
    "calibrate_on_intervals",
    "calibrate_on_points",
    "calibrated_metrics",
    "calibration_rule",
    "point_frame",
    "point_targets",
    "pooled_calibrated_metrics",
]
