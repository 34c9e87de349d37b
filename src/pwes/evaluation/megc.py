"""The MEGC spotting protocol (paper section 4.2): matching, counting and the paper's figures
(the proposal and ground-truth files: :mod:`pwes.evaluation.proposal_files`).

Rule (defaults of :class:`MatchConfig`): within each video, proposals in descending score order
are matched one-to-one to a not yet matched ground truth of the same type whose inclusive frame
IoU (lengths ``offset - onset + 1``) is at least 0.5, taking the largest IoU. Matched ground
truths are TP, unmatched proposals FP, unmatched ground truths FN. Counts are summed over every
video of every fold before recall, precision and F1 are computed once.

Per-type counts: a TP counts under the type of the ground truth it matched, an FP under the
proposal's type, an FN under the ground truth's type (identical to "same type on both sides"
under the default rule; it keeps ``tp = me_tp + mae_tp`` under the variants).

The figures (docs/evaluation.md): ``f1_me_0.5`` / ``f1_me_1.0`` re-type every proposal by duration
with 0.5 s / 1.0 s as the ME cut and report the ME F1 (ground-truth types stay as annotated);
``f1_me_p`` is the ME F1 (0.5 s cut) inside the score-threshold proposal set with the best overall
F1 (every distinct score ``s`` defines the set of proposals scoring at least ``s``, pooled over all
evaluated videos; ties go to the lower threshold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pwes.data.layout import EXPRESSION_TYPES, Interval
from pwes.evaluation.figures import best_set_index, f1_array, prf, threshold_sets
from pwes.inference.proposals import Proposal, duration_labels

ME_CUTS = (0.5, 1.0)  # seconds: the ME cut of F1(0.5) and F1(1.0)
F1_P_CUT = 0.5  # seconds: the ME cut used inside the best proposal set for F1(p)
CALIBRATION_RULES = ("auto", "points", "intervals")  # how the deployable threshold is chosen on training videos
CALIBRATION_SOURCES = ("train", "validation")  # which videos the threshold is chosen on
_IOU_EPS = 1e-9  # IoU 0.5 computed as 5/10 must count at threshold 0.5


class EvaluationError(ValueError):
    """Bad proposals, ground truth or settings; the message names the file and line or the setting."""


@dataclass(frozen=True)
class MatchConfig:
    """The matching rule; the keys of ``conf/evaluation/default.yaml``. Defaults are the MEGC rule.

    ``class_agnostic``: match a proposal to a ground truth of either type. ``one_to_many``: a
    proposal takes every not yet matched ground truth it overlaps enough (each counts as a TP);
    ground truths are still matched at most once. ``iou_plus_one=False``: lengths ``offset -
    onset`` (exclusive ends), as some public code computes them.

    ``calibration`` is not part of matching: it says how each fold's deployable score threshold
    is chosen on its training videos (:mod:`pwes.evaluation.calibration`): ``points`` (point and
    video labels only), ``intervals`` (the annotated intervals; legitimate only for fully
    supervised models) or ``auto`` (default: ``intervals`` under ``model.supervision=full``,
    ``points`` otherwise).

    The validation protocol (docs/evaluation.md, "Validation and selection"), not matching
    either: ``validation_subjects`` training subjects of each fold are held out of training
    (0 = none; a whole number >= 1 is a count, a number in (0, 1) a share of the fold's training
    subjects), ``calibration_source`` says whether the threshold is chosen on the training videos
    (``train``) or on those held-out subjects (``validation``), and ``point_hit_extent`` lets a
    proposal hit a point only when its length is plausible for the point's type (ME: at most the
    ME cut; MaE: above it and at most ``point_hit_max_seconds``).
    """

    iou_threshold: float = 0.5
    class_agnostic: bool = False
    one_to_many: bool = False
    iou_plus_one: bool = True
    calibration: str = "auto"
    calibration_source: str = "train"
    validation_subjects: float = 0.0
    point_hit_extent: bool = False
    point_hit_max_seconds: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise EvaluationError(f"evaluation.iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        if self.calibration not in CALIBRATION_RULES:
            raise EvaluationError(f"evaluation.calibration must be one of {', '.join(CALIBRATION_RULES)}, got {self.calibration!r}")
        for name in ("class_agnostic", "one_to_many", "iou_plus_one", "point_hit_extent"):
            if not isinstance(getattr(self, name), bool):
                raise EvaluationError(f"evaluation.{name} must be true or false, got {getattr(self, name)!r}")
        if self.calibration_source not in CALIBRATION_SOURCES:
            raise EvaluationError(f"evaluation.calibration_source must be one of {', '.join(CALIBRATION_SOURCES)}, got {self.calibration_source!r}")
        share = self.validation_subjects
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) or share < 0 or (share >= 1 and not float(share).is_integer()):
            raise EvaluationError(
                f"evaluation.validation_subjects must be 0 (off), a whole number of subjects (>= 1) or a share in (0, 1), got {share!r}"
            )
        if self.calibration_source == "validation" and share == 0:
            raise EvaluationError("evaluation.calibration_source=validation needs held-out validation subjects: set evaluation.validation_subjects (e.g. 0.2 or 2)")
        hit_max = self.point_hit_max_seconds
        if isinstance(hit_max, bool) or not isinstance(hit_max, (int, float)) or not math.isfinite(hit_max) or hit_max <= 0:
            raise EvaluationError(f"evaluation.point_hit_max_seconds must be a positive number of seconds, got {hit_max!r}")


@dataclass
class Counts:
    """TP, FP and FN of one expression type (or of all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def recall(self) -> float:
        return prf(self.tp, self.fp, self.fn)[0]

    @property
    def precision(self) -> float:
        return prf(self.tp, self.fp, self.fn)[1]

    @property
    def f1(self) -> float:
        return prf(self.tp, self.fp, self.fn)[2]


# --------------------------------------------------------------------------------------------
# matching


def _type_index(kind: str, what: str) -> int:
    if kind not in EXPRESSION_TYPES:
        raise EvaluationError(f"{what}: unknown type {kind!r}, expected one of {', '.join(EXPRESSION_TYPES)}")
    return EXPRESSION_TYPES.index(kind)


def _check_proposal(p: Proposal) -> None:
    if p.onset > p.offset:
        raise EvaluationError(f"proposal {p.onset}-{p.offset} of video {p.video!r}: onset {p.onset} > offset {p.offset}")
    if not math.isfinite(p.score):
        raise EvaluationError(f"proposal {p.onset}-{p.offset} of video {p.video!r}: score {p.score!r} is not a finite number")
    _type_index(p.type, f"proposal {p.onset}-{p.offset} of video {p.video!r}")


def _greedy_match(
    p_onset: np.ndarray,
    p_offset: np.ndarray,
    p_type: np.ndarray,
    p_score: np.ndarray,
    g_onset: np.ndarray,
    g_offset: np.ndarray,
    g_type: np.ndarray,
    config: MatchConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of one video's proposals to its ground truths.

    Returns ``tp_credit`` [P, 2] (ground truths of each type each proposal matched),
    ``matched`` [G] bool and ``owner`` [G] (the proposal that matched each, -1 if none). Proposals are visited by descending score, ties by onset, offset and
    input order; a proposal takes the not yet matched ground truth of largest IoU (ties: the
    first in input order).
    """
    num_p, num_g = len(p_onset), len(g_onset)
    tp_credit = np.zeros((num_p, len(EXPRESSION_TYPES)), dtype=np.int64)
    matched = np.zeros(num_g, dtype=bool)
    owner = np.full(num_g, -1, dtype=np.int64)
    if num_p == 0 or num_g == 0:
        return tp_credit, matched, owner
    extra = 1 if config.iou_plus_one else 0
    inter = np.clip(np.minimum(p_offset[:, None], g_offset[None]) - np.maximum(p_onset[:, None], g_onset[None]) + extra, 0, None)
    union = (p_offset - p_onset + extra)[:, None] + (g_offset - g_onset + extra)[None] - inter
    identical = (p_onset[:, None] == g_onset[None]) & (p_offset[:, None] == g_offset[None])
    iou = np.where(union > 0, inter / np.maximum(union, 1), identical.astype(np.float64))
    valid = iou >= config.iou_threshold - _IOU_EPS
    if not config.class_agnostic:
        valid &= p_type[:, None] == g_type[None]
    order = np.lexsort((np.arange(num_p), p_offset, p_onset, -p_score))
    for i in order[valid.any(axis=1)[order]]:
        candidates = valid[i] & ~matched
        if not candidates.any():
            continue
        if config.one_to_many:
            hits = np.flatnonzero(candidates)
        else:
            hits = np.array([int(np.argmax(np.where(candidates, iou[i], -1.0)))])
        matched[hits] = True
        owner[hits] = i
        tp_credit[i] += np.bincount(g_type[hits], minlength=len(EXPRESSION_TYPES))
    return tp_credit, matched, owner


@dataclass
class _VideoArrays:
    """One video's proposals and ground truths as arrays (types as class indices)."""

    p_onset: np.ndarray
    p_offset: np.ndarray
    p_score: np.ndarray
    p_type: np.ndarray
    g_onset: np.ndarray
    g_offset: np.ndarray
    g_type: np.ndarray

    @classmethod
    def build(cls, proposals: Sequence[Proposal], ground_truth: Sequence[Interval]) -> _VideoArrays:
        return cls(
            np.array([p.onset for p in proposals], dtype=np.int64),
            np.array([p.offset for p in proposals], dtype=np.int64),
            np.array([p.score for p in proposals], dtype=np.float64),
            np.array([EXPRESSION_TYPES.index(p.type) for p in proposals], dtype=np.int64),
            np.array([g.onset for g in ground_truth], dtype=np.int64),
            np.array([g.offset for g in ground_truth], dtype=np.int64),
            np.array([g.label for g in ground_truth], dtype=np.int64),
        )


def _fp_credit(tp_credit: np.ndarray, p_type: np.ndarray) -> np.ndarray:
    """[P, 2]: 1 at the proposal's type where it matched nothing."""
    fp = np.zeros_like(tp_credit)
    unmatched = np.flatnonzero(tp_credit.sum(axis=1) == 0)
    fp[unmatched, p_type[unmatched]] = 1
    return fp


def _video_counts(arrays: _VideoArrays, p_type: np.ndarray, config: MatchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tp_credit [P, 2], fp_credit [P, 2], tp [2], fn [2]) of one video with proposal types ``p_type``."""
    tp_credit, matched, _ = _greedy_match(arrays.p_onset, arrays.p_offset, p_type, arrays.p_score, arrays.g_onset, arrays.g_offset, arrays.g_type, config)
    num_types = len(EXPRESSION_TYPES)
    tp = np.bincount(arrays.g_type[matched], minlength=num_types)
    fn = np.bincount(arrays.g_type[~matched], minlength=num_types)
    return tp_credit, _fp_credit(tp_credit, p_type), tp, fn


def match_video(proposals: Sequence[Proposal], ground_truth: Sequence[Interval], config: MatchConfig | None = None) -> dict[str, Counts]:
    """Counts of one video under ``config`` (default: the MEGC rule), keyed ``'ME'`` and ``'MaE'``."""
    config = config or MatchConfig()
    names = {p.video for p in proposals} | {g.video for g in ground_truth}
    if len(names) > 1:
        raise EvaluationError(f"match_video takes one video, got proposals/ground truth of {', '.join(sorted(map(repr, names)))}")
    for p in proposals:
        _check_proposal(p)
    arrays = _VideoArrays.build(proposals, ground_truth)
    _, fp_credit, tp, fn = _video_counts(arrays, arrays.p_type, config)
    fp = fp_credit.sum(axis=0)
    return {kind: Counts(int(tp[c]), int(fp[c]), int(fn[c])) for c, kind in enumerate(EXPRESSION_TYPES)}


def matched_ground_truth(proposals: Sequence[Proposal], ground_truth: Sequence[Interval], config: MatchConfig | None = None) -> list[list[Interval]]:
    """For each proposal of one video (in the given order), the ground truths it matched under
    ``config`` (the matching :func:`score` counts; empty for a false positive). Matching visits
    proposals by score, so a score threshold never changes the matches of the proposals it keeps."""
    config = config or MatchConfig()
    for p in proposals:
        _check_proposal(p)
    arrays = _VideoArrays.build(proposals, ground_truth)
    _, _, owner = _greedy_match(arrays.p_onset, arrays.p_offset, arrays.p_type, arrays.p_score, arrays.g_onset, arrays.g_offset, arrays.g_type, config)
    out: list[list[Interval]] = [[] for _ in proposals]
    for g, i in enumerate(owner.tolist()):
        if i >= 0:
            out[i].append(ground_truth[g])
    return out


def _group_by_video(proposals: Iterable[Proposal], ground_truth: Mapping[str, Sequence[Interval]]) -> dict[str, list[Proposal]]:
    """Proposals per evaluated video (every key of ``ground_truth``); unknown videos are an error."""
    grouped: dict[str, list[Proposal]] = {name: [] for name in ground_truth}
    for p in proposals:
        if p.video not in grouped:
            raise EvaluationError(f"proposal {p.onset}-{p.offset} names video {p.video!r}, which is not among the {len(grouped)} evaluated videos")
        _check_proposal(p)
        grouped[p.video].append(p)
    return grouped


def _metrics_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float | int]:
    """recall, precision, f1, tp, fp, fn overall and per type (``me_*``, ``mae_*``)."""
    metrics: dict[str, float | int] = {}
    for prefix, (t, f, n) in [("", (tp.sum(), fp.sum(), fn.sum()))] + [
        (f"{kind.lower()}_", (tp[c], fp[c], fn[c])) for c, kind in enumerate(EXPRESSION_TYPES)
    ]:
        recall, precision, f1 = prf(int(t), int(f), int(n))
        metrics.update({f"{prefix}recall": recall, f"{prefix}precision": precision, f"{prefix}f1": f1})
        metrics.update({f"{prefix}tp": int(t), f"{prefix}fp": int(f), f"{prefix}fn": int(n)})
    return metrics


# --------------------------------------------------------------------------------------------
# the full set of figures


@dataclass
class _Pass:
    """One matching of every proposal (pooled over videos, in a fixed order)."""

    scores: np.ndarray  # [N]
    tp_credit: np.ndarray  # [N, 2]
    fp_credit: np.ndarray  # [N, 2]
    tp: np.ndarray  # [2] matched ground truths per type
    fn: np.ndarray  # [2]


def _match_all(videos: Sequence[_VideoArrays], types: Sequence[np.ndarray], config: MatchConfig) -> _Pass:
    num_types = len(EXPRESSION_TYPES)
    scores, tp_credits, fp_credits = [np.zeros(0)], [np.zeros((0, num_types), np.int64)], [np.zeros((0, num_types), np.int64)]
    tp, fn = np.zeros(num_types, np.int64), np.zeros(num_types, np.int64)
    for arrays, p_type in zip(videos, types):
        tp_credit, fp_credit, video_tp, video_fn = _video_counts(arrays, p_type, config)
        scores.append(arrays.p_score)
        tp_credits.append(tp_credit)
        fp_credits.append(fp_credit)
        tp += video_tp
        fn += video_fn
    return _Pass(np.concatenate(scores), np.concatenate(tp_credits), np.concatenate(fp_credits), tp, fn)


def score(
    proposals: Sequence[Proposal],
    ground_truth: Mapping[str, Sequence[Interval]],
    fps: Mapping[str, float],
    config: MatchConfig | None = None,
) -> dict[str, float | int]:
    """Every figure of the paper for the videos in ``ground_truth``, as one flat dict.

    ``ground_truth`` maps every evaluated video to its intervals (an empty list for a video
    without any), so that videos without proposals still add their FN; pooling folds is
    concatenating their proposals and merging their ``ground_truth`` maps. ``fps`` gives the frame
    rate of every video that has proposals (for the duration cuts).

    Keys: ``recall, precision, f1, tp, fp, fn`` overall, the same with ``me_`` and ``mae_``
    prefixes (proposals typed as given), ``f1_me_0.5`` and ``f1_me_1.0`` (ME F1 with proposals
    re-typed by duration at 0.5 s / 1.0 s; ground-truth types as annotated), ``f1_me_p`` (ME F1,
    0.5 s cut, in the score-threshold set with the best overall F1), and the extras ``f1_p`` (that
    best overall F1), ``recall_p`` and ``precision_p`` (its recall and precision), ``threshold_p``
    (its lowest score; NaN without proposals), ``num_proposals_p``,
    ``num_videos``, ``num_proposals``, ``num_ground_truth``.
    """
    config = config or MatchConfig()
    grouped = _group_by_video(proposals, ground_truth)
    for video, video_proposals in grouped.items():
        if video_proposals and not (video in fps and float(fps[video]) > 0):
            raise EvaluationError(f"no positive frame rate given for video {video!r}, which has proposals")
    names = list(grouped)
    videos = [_VideoArrays.build(grouped[name], ground_truth[name]) for name in names]
    given = _match_all(videos, [v.p_type for v in videos], config)
    metrics = _metrics_from_counts(given.tp, given.fp_credit.sum(axis=0), given.fn)

    me = EXPRESSION_TYPES.index("ME")
    num_me_gt = int(given.tp[me] + given.fn[me])
    recut: dict[float, _Pass] = {}
    for cut in sorted(set(ME_CUTS) | {F1_P_CUT}):
        types = [duration_labels(v.p_onset, v.p_offset, float(fps[name]) if len(v.p_onset) else 1.0, cut) for name, v in zip(names, videos)]
        same = all(np.array_equal(t, v.p_type) for t, v in zip(types, videos))
        recut[cut] = given if same else _match_all(videos, types, config)
        if cut in ME_CUTS:
            metrics[f"f1_me_{cut}"] = prf(int(recut[cut].tp[me]), int(recut[cut].fp_credit[:, me].sum()), int(recut[cut].fn[me]))[2]

    num_gt = int(given.tp.sum() + given.fn.sum())
    sets = threshold_sets(given.scores, given.tp_credit, given.fp_credit)
    best = best_set_index(sets, num_gt)
    if best is None:
        metrics.update({"f1_me_p": 0.0, "f1_p": 0.0, "recall_p": 0.0, "precision_p": 0.0, "threshold_p": float("nan"), "num_proposals_p": 0})
    else:
        me_sets = threshold_sets(recut[F1_P_CUT].scores, recut[F1_P_CUT].tp_credit, recut[F1_P_CUT].fp_credit)
        me_tp, me_fp = int(me_sets.tp[best, me]), int(me_sets.fp[best, me])
        best_tp = int(sets.tp[best].sum())
        metrics["f1_me_p"] = prf(me_tp, me_fp, num_me_gt - me_tp)[2]
        metrics["f1_p"] = float(f1_array(best_tp, int(sets.fp[best].sum()), num_gt - best_tp))
        metrics["recall_p"], metrics["precision_p"] = prf(best_tp, int(sets.fp[best].sum()), num_gt - best_tp)[:2]
        metrics["threshold_p"] = float(sets.thresholds[best])
        metrics["num_proposals_p"] = int(sets.size[best])
    metrics.update({"num_videos": len(names), "num_proposals": int(len(given.scores)), "num_ground_truth": num_gt})
    return metrics
