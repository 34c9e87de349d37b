"""The snippet-level ROC AUC shared by the training diagnostics (``pwes.callbacks.diagnostics``)
and the benchmarks (``benchmarks/motion_energy.py``): how well a score separates snippets inside
annotated intervals from the rest. Logged or printed only; nothing chooses by it."""

from __future__ import annotations

import numpy as np
from torch import Tensor


def snippet_auc(scores: Tensor | np.ndarray, positive: Tensor | np.ndarray) -> float | None:
    """ROC AUC of ``scores`` [N] for ``positive`` [N] bool (Mann-Whitney U with average ranks for
    ties); None without a positive or a negative."""
    if isinstance(scores, Tensor):
        scores = scores.detach().cpu().numpy()
    if isinstance(positive, Tensor):
        positive = positive.detach().cpu().numpy()
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based rank of each distinct value
    ranks = average_rank[inverse]
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
