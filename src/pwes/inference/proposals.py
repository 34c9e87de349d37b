"""From snippet scores to typed frame-interval proposals (paper section 3.6).

The steps, for one video of ``T`` snippets:

1. **Multi-top candidates** (MC-WES): for every ``k`` in the consecutive series
   ``k_min .. K`` with ``K = max(k_min, ceil(k_max_ratio * T))`` (at most ``T``), take the ``k``
   snippets ranked highest by a curve (the attention, and/or each class column of the TCAM),
   sort them by time and join runs of consecutive snippets into candidates. Candidates are
   collected over the whole ``k`` series and de-duplicated. Growing ``k`` by one adds one
   snippet, which creates, extends or merges exactly one run, so the whole series is computed
   incrementally in ``O(T log T)``.
2. **Outer-inner contrast** (AutoLoc) per class ``c``: mean of ``tcam[:, c]`` inside the run minus
   the mean over a margin of ``ceil(margin * length)`` snippets (at least one) on each side,
   clipped to the video (an empty outside counts as 0), plus ``video_score_weight *
   video_scores[c]``. The candidate keeps the best class score (``class_score="max"``) or the
   score of the class its duration gives it (``class_score="duration"``: ME for a run of at
   most ``me_max_seconds``, else MaE).
3. **Frames**: snippet ``t`` covers frames ``[t*stride, t*stride + snippet_length)``, so a run
   ``[s, e]`` becomes the inclusive interval ``[s*stride, e*stride + snippet_length - 1]``,
   clipped to ``[0, num_frames - 1]``. With ``max_seconds`` set, candidates lasting longer
   (``(offset - onset + 1) / fps > max_seconds``) are dropped here, before NMS, so a long run
   never suppresses the shorter ones inside it.
4. **NMS** over all candidates at once (types come from durations, so class-wise NMS would keep
   the same interval twice): greedy by descending score, dropping any candidate whose inclusive
   frame IoU with a kept one exceeds ``nms_threshold``.
5. **Type** by duration: ME when ``(offset - onset + 1) / fps <= me_max_seconds``, else MaE.
   Optionally drop proposals scoring below ``min_score`` and keep the best ``max_proposals``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from pwes.data.layout import EXPRESSION_TYPES

RANKING_SOURCES = ("attention", "class")
PROPOSAL_MAPS = ("suppressed", "plain")
CLASS_SCORE_RULES = ("max", "duration")
_DURATION_EPS = 1e-9  # so that 15 frames at 30 fps count as exactly 0.5 s


class ProposalConfigError(ValueError):
    """A proposal setting is out of range; the message names the setting."""


class ProposalInputError(ValueError):
    """The arrays handed to :func:`generate_proposals` are malformed; the message names the video."""


@dataclass(frozen=True)
class Proposal:
    """One predicted expression: inclusive frame interval, confidence and duration type.

    ``label`` is the class (0 = ME, 1 = MaE) whose outer-inner score became ``score``, and ``k``
    the smallest top-k of the multi-top series that produced the interval; both are ``None`` for
    proposals read from a file.
    """

    video: str
    onset: int
    offset: int
    score: float
    type: str
    label: int | None = None
    k: int | None = None

    @property
    def num_frames(self) -> int:
        """Length in frames, ends included."""
        return self.offset - self.onset + 1


@dataclass(frozen=True)
class ProposalConfig:
    """Settings of the proposal step; the keys of ``conf/proposals/default.yaml``.

    Defaults follow the paper where it says something (NMS 0.01 from section 4.3, the 0.5 s ME cut
    from sections 3.1/4.2) and AutoLoc's contrast as public code sets it (margin 0.25, video-score
    weight 0.2; the paper, 3.6, names AutoLoc without values);
    the ``k`` series, ``rank_by`` and ``class_score`` are this project's choices (docs/evaluation.md).
    """

    k_min: int = 1  # smallest top-k of the multi-top series
    k_max_ratio: float = 0.3  # largest top-k = ceil(k_max_ratio * T), as the 0.3 T pseudo foreground
    rank_by: tuple[str, ...] = ("attention",)  # "attention" and/or "class" (each TCAM class column)
    margin: float = 0.25  # outer margin on each side, as a fraction of the proposal length
    video_score_weight: float = 0.2  # weight of the video-level class score in the confidence
    class_score: str = "max"  # "max": best class; "duration": the class of the duration type
    nms_threshold: float = 0.01  # drop a proposal whose IoU with a better one exceeds this
    me_max_seconds: float = 0.5  # ME when the duration is at most this many seconds
    min_score: float | None = None  # drop proposals scoring below this after NMS (None: keep all)
    max_proposals: int | None = None  # keep at most this many per video after NMS (None: all)
    maps: str = "suppressed"  # "suppressed": TCAM x attention + branch-2 scores (paper 3.2); "plain": TCAM + branch 1
    max_seconds: float | None = None  # drop candidates longer than this before NMS (None: keep all)

    def __post_init__(self) -> None:
        rank_by = (self.rank_by,) if isinstance(self.rank_by, str) else tuple(self.rank_by)
        object.__setattr__(self, "rank_by", rank_by)
        if not isinstance(self.k_min, int) or self.k_min < 1:
            raise ProposalConfigError(f"proposals.k_min must be a positive integer, got {self.k_min!r}")
        if not 0.0 < self.k_max_ratio <= 1.0:
            raise ProposalConfigError(f"proposals.k_max_ratio must be in (0, 1], got {self.k_max_ratio!r}")
        if not rank_by or any(source not in RANKING_SOURCES for source in rank_by):
            raise ProposalConfigError(f"proposals.rank_by must be a non-empty list of {', '.join(RANKING_SOURCES)}, got {list(rank_by)}")
        if self.margin < 0:
            raise ProposalConfigError(f"proposals.margin must be >= 0, got {self.margin!r}")
        if self.class_score not in CLASS_SCORE_RULES:
            raise ProposalConfigError(f"proposals.class_score must be one of {', '.join(CLASS_SCORE_RULES)}, got {self.class_score!r}")
        if not 0.0 <= self.nms_threshold <= 1.0:
            raise ProposalConfigError(f"proposals.nms_threshold must be in [0, 1], got {self.nms_threshold!r}")
        if not self.me_max_seconds > 0:
            raise ProposalConfigError(f"proposals.me_max_seconds must be positive, got {self.me_max_seconds!r}")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise ProposalConfigError(f"proposals.min_score must be a finite number or null, got {self.min_score!r}")
        if self.max_proposals is not None and (not isinstance(self.max_proposals, int) or self.max_proposals < 1):
            raise ProposalConfigError(f"proposals.max_proposals must be a positive integer or null, got {self.max_proposals!r}")
        if self.max_seconds is not None and not (isinstance(self.max_seconds, (int, float)) and math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ProposalConfigError(f"proposals.max_seconds must be a positive number of seconds or null, got {self.max_seconds!r}")
        if self.maps not in PROPOSAL_MAPS:
            raise ProposalConfigError(f"proposals.maps must be one of {', '.join(PROPOSAL_MAPS)}, got {self.maps!r}")

    def largest_k(self, length: int) -> int:
        """The last ``k`` of the multi-top series for a video of ``length`` snippets:
        ``max(k_min, ceil(k_max_ratio * length))``, at most ``length``."""
        return min(length, max(self.k_min, math.ceil(self.k_max_ratio * length - 1e-9)))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The setting names, in declaration order."""
        return tuple(f.name for f in fields(cls))


def expression_type(onset: int, offset: int, fps: float, me_max_seconds: float = 0.5) -> str:
    """``'ME'`` when the inclusive interval lasts at most ``me_max_seconds``, else ``'MaE'``."""
    return EXPRESSION_TYPES[int(duration_labels(np.array([onset]), np.array([offset]), fps, me_max_seconds)[0])]


def duration_labels(onsets: np.ndarray, offsets: np.ndarray, fps: float, me_max_seconds: float = 0.5) -> np.ndarray:
    """Class indices by duration for many inclusive intervals: 0 (ME) when ``(offset - onset + 1)
    / fps <= me_max_seconds``, else 1 (MaE)."""
    is_me = (np.asarray(offsets) - np.asarray(onsets) + 1) <= me_max_seconds * fps + _DURATION_EPS
    return np.where(is_me, EXPRESSION_TYPES.index("ME"), EXPRESSION_TYPES.index("MaE")).astype(np.int64)


def multi_top_runs(curve: np.ndarray, k_min: int, k_max: int) -> dict[tuple[int, int], int]:
    """Runs ``(start, end)`` (inclusive snippets) of the top-k snippets for every ``k`` in
    ``k_min..k_max``, each mapped to the smallest ``k`` that produced it.

    Ties in ``curve`` are broken by time (earlier snippet first), so the result is deterministic.
    """
    length = len(curve)
    k_max = min(k_max, length)
    k_min = min(k_min, k_max)  # a video shorter than k_min yields the runs of all its snippets
    order = np.argsort(-np.asarray(curve, dtype=np.float64), kind="stable")
    selected = np.zeros(length, dtype=bool)
    left = np.arange(length)  # left[e] = start of the run ending at e (valid at run ends)
    right = np.arange(length)  # right[s] = end of the run starting at s (valid at run starts)
    runs: dict[tuple[int, int], int] = {}
    for k, t in enumerate(order[:k_max].tolist(), start=1):
        start = left[t - 1] if t > 0 and selected[t - 1] else t
        end = right[t + 1] if t + 1 < length and selected[t + 1] else t
        selected[t] = True
        right[start], left[end] = end, start
        if k == k_min:  # every run present at the first k of the series
            edges = np.diff(np.concatenate(([0], selected.astype(np.int8), [0])))
            for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1):
                runs.setdefault((int(s), int(e)), k)
        elif k > k_min:  # only the run that snippet t created, extended or merged is new
            runs.setdefault((int(start), int(end)), k)
    return runs


def outer_inner_scores(curve: np.ndarray, starts: np.ndarray, ends: np.ndarray, margin: float) -> np.ndarray:
    """AutoLoc outer-inner contrast of inclusive snippet runs on a 1-D ``curve``.

    inside mean minus the mean of ``max(1, ceil(margin * length))`` snippets on each side
    (clipped to the curve; 0 when nothing is left outside). ``margin = 0`` scores the inside only.
    """
    cumulative = np.concatenate(([0.0], np.cumsum(np.asarray(curve, dtype=np.float64))))
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    lengths = ends - starts + 1
    inner = (cumulative[ends + 1] - cumulative[starts]) / lengths
    if margin == 0:
        return inner
    pad = np.maximum(1, np.ceil(margin * lengths - 1e-9).astype(np.int64))
    outer_start = np.maximum(0, starts - pad)
    outer_end = np.minimum(len(curve) - 1, ends + pad)
    outer_sum = (cumulative[starts] - cumulative[outer_start]) + (cumulative[outer_end + 1] - cumulative[ends + 1])
    outer_count = (starts - outer_start) + (outer_end - ends)
    outer = np.divide(outer_sum, outer_count, out=np.zeros_like(outer_sum), where=outer_count > 0)
    return inner - outer


def interval_iou(onsets: np.ndarray, offsets: np.ndarray, onset: int, offset: int, plus_one: bool = True) -> np.ndarray:
    """IoU of many frame intervals with one; inclusive ends (+1) unless ``plus_one`` is False."""
    extra = 1 if plus_one else 0
    inter = np.clip(np.minimum(offsets, offset) - np.maximum(onsets, onset) + extra, 0, None)
    union = (offsets - onsets + extra) + (offset - onset + extra) - inter
    same = (onsets == onset) & (offsets == offset)
    return np.where(union > 0, inter / np.maximum(union, 1), same.astype(np.float64))


def non_maximum_suppression(onsets: np.ndarray, offsets: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS (descending score; ties by onset, then offset), in that order."""
    order = np.lexsort((offsets, onsets, -np.asarray(scores, dtype=np.float64)))
    keep: list[int] = []
    alive = np.ones(len(order), dtype=bool)
    on, off = np.asarray(onsets)[order], np.asarray(offsets)[order]
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(int(order[i]))
        rest = slice(i + 1, None)
        alive[rest] &= interval_iou(on[rest], off[rest], int(on[i]), int(off[i])) <= threshold
    return np.asarray(keep, dtype=np.int64)


def _check_inputs(video: str, attention: np.ndarray, tcam: np.ndarray, video_scores: np.ndarray, num_frames: int, fps: float, snippet_length: int, stride: int) -> None:
    where = f"video {video!r}"
    if attention.ndim != 1 or attention.shape[0] == 0:
        raise ProposalInputError(f"{where}: attention must have shape [T] with T >= 1, got {attention.shape}")
    if tcam.shape != (attention.shape[0], len(EXPRESSION_TYPES) + 1):
        raise ProposalInputError(f"{where}: tcam must have shape [T, 3] = [{attention.shape[0]}, 3], got {tcam.shape}")
    if video_scores.shape != (len(EXPRESSION_TYPES) + 1,):
        raise ProposalInputError(f"{where}: video_scores must have shape [3], got {video_scores.shape}")
    for name, array in (("attention", attention), ("tcam", tcam), ("video_scores", video_scores)):
        if not np.isfinite(array).all():
            raise ProposalInputError(f"{where}: {name} contains NaN or Inf")
    if num_frames <= 0 or not fps > 0 or snippet_length <= 0 or stride <= 0:
        raise ProposalInputError(
            f"{where}: num_frames, fps, snippet_length and stride must be positive, got {num_frames}, {fps}, {snippet_length}, {stride}"
        )


def generate_proposals(
    video: str,
    attention: np.ndarray,
    tcam: np.ndarray,
    video_scores: np.ndarray,
    num_frames: int,
    fps: float,
    snippet_length: int,
    stride: int,
    config: ProposalConfig,
) -> list[Proposal]:
    """Typed proposals of one video, best first (see the module docstring for the steps).

    ``attention``: [T] in [0, 1] over the real (unpadded) snippets; ``tcam``: [T, 3] with columns
    ME, MaE, background; ``video_scores``: [3] video-level class scores in the same order.
    """
    attention = np.asarray(attention, dtype=np.float64)
    tcam = np.asarray(tcam, dtype=np.float64)
    video_scores = np.asarray(video_scores, dtype=np.float64)
    _check_inputs(video, attention, tcam, video_scores, num_frames, fps, snippet_length, stride)
    length = attention.shape[0]
    k_max = config.largest_k(length)

    curves = []
    if "attention" in config.rank_by:
        curves.append(attention)
    if "class" in config.rank_by:
        curves.extend(tcam[:, c] for c in range(len(EXPRESSION_TYPES)))
    runs: dict[tuple[int, int], int] = {}
    for curve in curves:
        for run, k in multi_top_runs(curve, config.k_min, k_max).items():
            runs[run] = min(k, runs.get(run, k))
    if not runs:
        return []
    ordered = sorted(runs)
    starts = np.array([s for s, _ in ordered], dtype=np.int64)
    ends = np.array([e for _, e in ordered], dtype=np.int64)
    first_k = np.array([runs[r] for r in ordered], dtype=np.int64)

    onsets = starts * stride
    offsets = np.minimum(ends * stride + snippet_length - 1, num_frames - 1)
    inside = onsets <= num_frames - 1  # snippets past the last frame (extractor slack) are dropped
    if config.max_seconds is not None:  # the length cap, before NMS
        inside &= (offsets - onsets + 1) <= config.max_seconds * fps + _DURATION_EPS
    starts, ends, first_k, onsets, offsets = (a[inside] for a in (starts, ends, first_k, onsets, offsets))
    if len(starts) == 0:
        return []

    class_scores = np.stack(
        [outer_inner_scores(tcam[:, c], starts, ends, config.margin) + config.video_score_weight * video_scores[c] for c in range(len(EXPRESSION_TYPES))],
        axis=1,
    )
    type_labels = duration_labels(onsets, offsets, fps, config.me_max_seconds)
    types = [EXPRESSION_TYPES[t] for t in type_labels]
    labels = np.argmax(class_scores, axis=1) if config.class_score == "max" else type_labels
    scores = class_scores[np.arange(len(labels)), labels]

    keep = non_maximum_suppression(onsets, offsets, scores, config.nms_threshold)
    if config.min_score is not None:
        keep = keep[scores[keep] >= config.min_score]
    if config.max_proposals is not None:
        keep = keep[: config.max_proposals]
    return [Proposal(video, int(onsets[i]), int(offsets[i]), float(scores[i]), types[i], int(labels[i]), int(first_k[i])) for i in keep]

