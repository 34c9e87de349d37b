"""The operating point a deployed model uses: a proposal-score threshold chosen on the training
videos (never on the held-out ones), stored in the checkpoint for ``pwes.spot``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pwes.data.layout import Interval
from pwes.evaluation.megc import MatchConfig, score
from pwes.inference.proposals import Proposal


def choose_score_threshold(
    proposals: Sequence[Proposal],
    ground_truth: Mapping[str, list[Interval]],
    fps: Mapping[str, float],
    match: MatchConfig | None = None,
    candidates: int = 20,
) -> tuple[float, float]:
    """The score threshold (among quantiles of the scores, and 'keep all') maximising the
    overall F1 on these videos; returns (threshold, F1 there). Ties keep the lower threshold."""
    if not proposals:
        return float("-inf"), 0.0
    scores = np.array([p.score for p in proposals], dtype=np.float64)
    grid = np.unique(np.quantile(scores, np.linspace(0.0, 0.95, candidates)))
    best_threshold, best_f1 = float("-inf"), -1.0
    for threshold in [float("-inf"), *grid.tolist()]:
        kept = [p for p in proposals if p.score >= threshold]
        f1 = float(score(kept, ground_truth, fps, match)["f1"])
        if f1 > best_f1 + 1e-12:
            best_threshold, best_f1 = threshold, f1
    return best_threshold, best_f1
