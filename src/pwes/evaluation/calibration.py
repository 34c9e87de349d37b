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

Where (``evaluation.calibration_source``): ``train`` chooses on the fold's own training videos;
``validation`` on the validation subjects held out of its training
(``evaluation.validation_subjects``; docs/evaluation.md, "Validation and selection").
:func:`point_hit_figures` scores those subjects' videos with the same rule (``val_*`` figures).

Extent (``evaluation.point_hit_extent``, :class:`PointHitExtent`): a point says nothing about an
expression's extent, so the rule above is lenient about long proposals. With the option on, a
proposal may hit a point only when its length is plausible for the point's type: an ME point
only a proposal of at most the ME cut (``proposals.me_max_seconds``, 0.5 s), a MaE point only
one above the cut and at most ``evaluation.point_hit_max_seconds`` (4 s, the paper's upper end of
a MaE, section 1). Still no onset or offset is used: only durations of the proposals themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pwes.data.layout import EXPRESSION_TYPES, Interval
from pwes.evaluation.figures import best_set_index, f1_array, prf, threshold_sets
from pwes.evaluation.megc import CALIBRATION_RULES, EvaluationError, MatchConfig, score
from pwes.inference.proposals import Proposal, expression_type

_DURATION_EPS = 1e-9  # seconds: 4 s exactly counts as at most 4 s

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


@dataclass(frozen=True)
class PointHitExtent:
    """Proposal lengths plausible for each point type (``evaluation.point_hit_extent``): ME at
    most ``me_max_seconds``, MaE above it and at most ``mae_max_seconds``; ``fps`` per video."""

    fps: Mapping[str, float]
    me_max_seconds: float = 0.5
    mae_max_seconds: float = 4.0

    def __post_init__(self) -> None:
        if not self.mae_max_seconds > self.me_max_seconds:
            raise EvaluationError(
                f"evaluation.point_hit_max_seconds={self.mae_max_seconds!r} must be above the ME cut proposals.me_max_seconds={self.me_max_seconds!r}: no proposal could hit a MaE point"
            )

    def plausible(self, proposal: Proposal, label: int) -> bool:
        """Whether ``proposal`` may hit a point of class ``label`` (0 = ME, 1 = MaE)."""
        if proposal.video not in self.fps:
            raise EvaluationError(f"point-hit extent: no frame rate for video {proposal.video!r}")
        fps = float(self.fps[proposal.video])
        kind = expression_type(proposal.onset, proposal.offset, fps, self.me_max_seconds)
        if label == EXPRESSION_TYPES.index("ME"):
            return kind == "ME"
        return kind == "MaE" and proposal.num_frames / fps <= self.mae_max_seconds + _DURATION_EPS


def point_hit_extent(match: MatchConfig, fps: Mapping[str, float], me_max_seconds: float) -> PointHitExtent | None:
    """The extent rule ``match`` asks for (None when ``evaluation.point_hit_extent`` is off)."""
    if not match.point_hit_extent:
        return None
    return PointHitExtent(dict(fps), float(me_max_seconds), float(match.point_hit_max_seconds))


def _hit_credits(
    proposals: Sequence[Proposal], targets: Sequence[PointTarget], match: MatchConfig, extent: PointHitExtent | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
            and (extent is None or extent.plausible(p, t.label))
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


def _point_hit_pass(
    proposals: Sequence[Proposal], targets: Mapping[str, Sequence[PointTarget]], match: MatchConfig, extent: PointHitExtent | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Point-hit credits of every proposal over the videos of ``targets`` (None without proposals)."""
    by_video: dict[str, list[Proposal]] = {name: [] for name in targets}
    for p in proposals:
        if p.video not in by_video:
            raise EvaluationError(f"calibration: proposal {p.onset}-{p.offset} names video {p.video!r}, which has no training labels")
        by_video[p.video].append(p)
    parts = [_hit_credits(by_video[name], targets[name], match, extent) for name in targets]
    if not parts or sum(len(s) for s, _, _ in parts) == 0:
        return None
    scores, tp_credit, fp_credit = (np.concatenate(arrays) for arrays in zip(*parts))
    return scores, tp_credit, fp_credit


def calibrate_on_points(
    proposals: Sequence[Proposal], targets: Mapping[str, Sequence[PointTarget]], match: MatchConfig | None = None, extent: PointHitExtent | None = None
) -> Calibration:
    """The threshold with the best point-hit F1 over the videos in ``targets`` (see the module
    docstring); proposals of videos outside ``targets`` are an error. ``extent``: only proposals
    of plausible length hit (``evaluation.point_hit_extent``)."""
    match = match or MatchConfig()
    num_targets = sum(len(t) for t in targets.values())
    credits = _point_hit_pass(proposals, targets, match, extent)
    if credits is None:
        return Calibration(float("-inf"), "points", 0.0, num_targets)
    sets = threshold_sets(*credits)
    best = best_set_index(sets, num_targets)
    assert best is not None
    tp = int(sets.tp[best].sum())
    f1 = float(f1_array(tp, int(sets.fp[best].sum()), num_targets - tp))
    # the lowest set (every proposal) is "keep all": store -inf so that spot keeps lower scores too
    threshold = float("-inf") if best == len(sets.thresholds) - 1 else float(sets.thresholds[best])
    return Calibration(threshold, "points", f1, num_targets)


def point_hit_figures(
    proposals: Sequence[Proposal],
    targets: Mapping[str, Sequence[PointTarget]],
    threshold: float | None,
    match: MatchConfig | None = None,
    extent: PointHitExtent | None = None,
) -> dict[str, float | int]:
    """Point-hit counts and recall/precision/F1 (overall and per type) of the proposals kept by
    ``threshold`` over the videos of ``targets``: the calibration rule as a figure (``val_*``).
    A point counts under its type (TP or FN), a proposal that hits nothing under its own (FP)."""
    match = match or MatchConfig()
    num_types = len(EXPRESSION_TYPES)
    total = np.zeros(num_types, dtype=np.int64)
    for video_targets in targets.values():
        for t in video_targets:
            total[t.label] += 1
    tp, fp = np.zeros(num_types, dtype=np.int64), np.zeros(num_types, dtype=np.int64)
    credits = _point_hit_pass(apply_threshold(proposals, threshold), targets, match, extent)
    if credits is not None:
        tp, fp = credits[1].sum(axis=0), credits[2].sum(axis=0)
    return counts_figures(tp, fp, total - tp)


def counts_figures(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float | int]:
    """``recall, precision, f1, tp, fp, fn`` overall and with ``me_`` / ``mae_`` prefixes from
    per-type counts [2] (summed counts: pooling folds is adding their counts)."""
    out: dict[str, float | int] = {}
    rows = [("", int(np.sum(tp)), int(np.sum(fp)), int(np.sum(fn)))]
    rows += [(f"{kind.lower()}_", int(tp[c]), int(fp[c]), int(fn[c])) for c, kind in enumerate(EXPRESSION_TYPES)]
    for prefix, t, f, n in rows:
        recall, precision, f1 = prf(t, f, n)
        out.update({f"{prefix}recall": recall, f"{prefix}precision": precision, f"{prefix}f1": f1, f"{prefix}tp": t, f"{prefix}fp": f, f"{prefix}fn": n})
    return out


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
    "PointHitExtent",
    "PointTarget",
    "apply_threshold",
    "calibrate_on_intervals",
    "calibrate_on_points",
    "calibrated_metrics",
    "calibration_rule",
    "counts_figures",
    "point_frame",
    "point_hit_extent",
    "point_hit_figures",
    "point_targets",
    "pooled_calibrated_metrics",
]
