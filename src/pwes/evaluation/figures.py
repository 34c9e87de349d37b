"""The arithmetic behind the paper's figures: recall, precision and F1 from summed counts, the
score-threshold proposal sets that F1(p) chooses among.

Everything here works on plain count arrays; the matching that produces them lives in
:mod:`pwes.evaluation.megc`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(recall, precision, F1) from summed counts; a ratio with a zero denominator is 0."""
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0  # = 2PR / (P + R)
    return recall, precision, f1


def f1_array(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Element-wise F1 = 2 TP / (2 TP + FP + FN), 0 where TP is 0."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=tp > 0)


@dataclass(frozen=True)
class ThresholdSets:
    """Cumulative counts of the score-threshold proposal sets.

    Set ``i`` holds every proposal with ``score >= thresholds[i]`` (thresholds descending, one per
    distinct score); ``tp[i, c]`` counts matched ground truths of type ``c`` and ``fp[i, c]``
    unmatched proposals of type ``c`` in that set; ``size[i]`` is the number of proposals.
    """

    thresholds: np.ndarray  # [M] float, descending
    tp: np.ndarray  # [M, C] int
    fp: np.ndarray  # [M, C] int
    size: np.ndarray  # [M] int


def threshold_sets(scores: np.ndarray, tp_credit: np.ndarray, fp_credit: np.ndarray) -> ThresholdSets:
    """Score-threshold sets from per-proposal credits of a greedy (descending-score) matching.

    Greedy matching decides each proposal from the better-scored ones only, so the matching of
    the set ``score >= s`` is the matching of the whole list cut at ``s``: one matching pass
    gives every set by cumulative sums. ``tp_credit`` [N, C]: ground truths of each type that
    proposal matched; ``fp_credit`` [N, C]: 1 at the proposal's type when it matched nothing.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tp = np.cumsum(np.asarray(tp_credit, dtype=np.int64)[order], axis=0)
    fp = np.cumsum(np.asarray(fp_credit, dtype=np.int64)[order], axis=0)
    # the last proposal of each run of equal scores closes a set
    ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True)) if len(scores) else np.zeros(0, dtype=np.int64)
    return ThresholdSets(sorted_scores[ends], tp[ends], fp[ends], ends + 1)


def best_set_index(sets: ThresholdSets, num_ground_truth: int) -> int | None:
    """Index of the set with the best overall F1 (ties: the lowest threshold, i.e. the most
    proposals); ``None`` when there are no proposals."""
    if len(sets.thresholds) == 0:
        return None
    tp = sets.tp.sum(axis=1)
    f1 = f1_array(tp, sets.fp.sum(axis=1), num_ground_truth - tp)
    return int(np.flatnonzero(f1 == f1.max())[-1])

