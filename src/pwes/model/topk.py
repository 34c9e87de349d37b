"""The top-k of the video-level MIL pooling under ``model.network.topk=points``: k from what point
supervision knows, instead of a fixed share of the video (``topk_divisors``, the default).

Point supervision gives one point per expression, so a training video's number of points of each
class is known. With a typical duration per class (``topk_seconds``, turned into snippets by the
dataset's fps and stride), the positive bag of class c holds about ``n_points_c x typical_c``
snippets; that is k (:func:`points_topk_counts`). The background keeps ``T // divisor``.

At inference there are no points, but the video-level scores still enter the proposal score
(``proposals.video_score_weight``). There k comes from the expected number of points, ``rate_c x
T``, where ``rate_c`` is the points per snippet of class c over the *training* videos
(:func:`point_rate`), estimated when training starts and saved in the checkpoint by the module,
so ``pwes.spot`` uses the same k (:func:`rate_topk_counts`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from pwes.data.batch import NUM_CLASSES


def _round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)


def points_topk_counts(lengths: Tensor, point_counts: Tensor, typical_snippets: Tensor, background_divisor: int) -> Tensor:
    """k from the point labels (``model.network.topk=points``), [B, C+1] long.

    Foreground class c: ``max(1, round(n_points_c * typical_snippets_c))`` (round half up), where
    ``point_counts`` [B, C] is the video's number of point-labelled snippets of class c (what point
    supervision knows: one point per expression) and ``typical_snippets`` [C] a class's typical
    length in snippets; a class without points gets k = 1. Background keeps ``length // divisor``.
    Every k is at most the video's length.
    """
    fg = _round_half_up(point_counts.to(torch.float64) * typical_snippets.to(point_counts.device, torch.float64)[None]).long()
    bg = torch.div(lengths, int(background_divisor), rounding_mode="floor")[:, None]
    return torch.minimum(torch.cat([fg, bg], dim=1).clamp(min=1), lengths[:, None])


def rate_topk_counts(lengths: Tensor, rate: Tensor, typical_snippets: Tensor, background_divisor: int) -> Tensor:
    """k where no point labels exist (inference under ``topk=points``), [B, C+1] long: the expected
    point count ``rate_c * T`` (``rate`` [C]: points per snippet of the training videos) in place
    of the video's own, then as :func:`points_topk_counts`."""
    expected = lengths.to(torch.float64)[:, None] * rate.to(lengths.device, torch.float64)[None]
    fg = _round_half_up(expected * typical_snippets.to(lengths.device, torch.float64)[None]).long()
    bg = torch.div(lengths, int(background_divisor), rounding_mode="floor")[:, None]
    return torch.minimum(torch.cat([fg, bg], dim=1).clamp(min=1), lengths[:, None])


def point_rate(grids: Iterable[np.ndarray | Tensor]) -> tuple[float, ...]:
    """Points per snippet of each class over videos' point grids (each [T, C], > 0 at a point):
    the number of point-labelled snippets of class c over the number of snippets, all videos."""
    counts, snippets = np.zeros(NUM_CLASSES, dtype=np.float64), 0
    for grid in grids:
        array = grid.detach().cpu().numpy() if isinstance(grid, Tensor) else np.asarray(grid)
        counts += (array > 0).sum(axis=0)
        snippets += array.shape[0]
    if snippets == 0:
        raise ValueError("model.network.topk=points: no training snippets to estimate the point rate from")
    return tuple(float(c) / snippets for c in counts)


def point_counts(points: Tensor, mask: Tensor) -> Tensor:
    """[B, C] long: point-labelled snippets of each class per video (real snippets only)."""
    return ((points > 0) & mask.bool()[..., None]).sum(dim=1)
