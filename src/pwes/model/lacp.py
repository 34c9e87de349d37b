"""LACP (Lee and Byun, "Learning Action Completeness from Points for Weakly-supervised Temporal
Action Localization", ICCV 2021) as a comparator on the PWES network (``callbacks/pseudo=lacp``,
``ablation=lacp``), written from the paper and the authors' code
(github.com/Pilhyeon/Learning-Action-Completeness-from-Points: ``utils.select_seed``,
``utils.get_oic_score``, ``search.py``, ``train.py``).

* **Seeds** (:func:`select_seeds`, per video, class-agnostic): in each stretch without points
  (before the first, between two, after the last) the snippets whose background score reaches
  ``background_threshold`` are background seeds, spread as the code does (before the first point:
  everything up to the last such snippet; after the last: everything from the first; between two
  points: everything from the first to the last), or the single highest-background snippet (and
  the stretch up to / from it at the video's edges) when none reaches it. From each point,
  neighbours with background score <= ``action_threshold`` become pseudo action points of its
  class until a background seed or a higher score stops them.
* **Optimal sequence search** (:func:`optimal_sequence`, per video and class present): the
  snippets are split into alternating background/action segments, one action segment per run of
  the class's action seeds and one background segment per stretch between them (and at the edges
  when that stretch holds a forced background snippet: a background seed or another class's
  seed). Each action segment must contain its run, each background segment its forced snippets.
  Among all such sequences the search returns the one with the largest mean completeness score:
  outer-inner contrast (:func:`oic_scores`) of the class score on action segments and of 1 - score
  on background segments. The code runs a pruned beam search (budget 25); here it is exact dynamic
  programming over the segment boundaries (the score is a sum over segments whose number the seeds
  fix, each depending on its own start and end only).
* **Score-contrastive loss** (:func:`score_contrastive_loss`): on the training forward's scores,
  ``(mean over action segments of 1 - OIC + mean over background segments of 1 - OIC(1 - s))^2``,
  per video, then averaged over the batch's videos (the code's ``loss_score``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pwes.settings import require

LACP_SCORES = ("suppressed", "tcam")


@dataclass(frozen=True)
class LACPConfig:
    """LACP settings (``callbacks.lacp``); values and reasons in conf/callbacks/pseudo/lacp.yaml."""

    action_threshold: float = 0.1  # pseudo action point: background score <= this (code: act_thresh)
    background_threshold: float = 0.95  # background seed: background score >= this (code: bkg_thresh)
    inflation: float = 0.25  # outer region of the OIC score, a share of the segment length (code: delta)
    scores: str = "suppressed"  # class scores searched and trained: TCAM x attention | plain TCAM
    score_weight: float = 1.0  # weight of the score-contrastive loss (code: lambdas[3] = 1)

    def __post_init__(self) -> None:
        require(0.0 <= float(self.action_threshold) <= 1.0, "action_threshold", f"must be in [0, 1], got {self.action_threshold}")
        require(0.0 <= float(self.background_threshold) <= 1.0, "background_threshold", f"must be in [0, 1], got {self.background_threshold}")
        require(float(self.inflation) >= 0.0, "inflation", f"must be >= 0, got {self.inflation}")
        require(self.scores in LACP_SCORES, "scores", f"must be one of {', '.join(LACP_SCORES)}, got {self.scores!r}")
        require(float(self.score_weight) >= 0.0, "score_weight", f"must be >= 0, got {self.score_weight}")


# --------------------------------------------------------------------------------------- seeds
def select_seeds(background: np.ndarray, points: np.ndarray, action_threshold: float, background_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One video's seeds: ``background`` [T] background scores, ``points`` [T, C] bool ->
    (action seeds [T, C] bool: the points and pseudo action points, background seeds [T] bool)."""
    n = background.shape[0]
    action = points.astype(bool).copy()
    seed = np.zeros(n, dtype=bool)
    anchors = np.flatnonzero(points.any(axis=1))
    if anchors.size == 0:
        return action, seed

    def spread(lo: int, hi: int, side: str) -> None:  # stretch [lo, hi) without points
        if hi <= lo:
            return
        high = np.flatnonzero(background[lo:hi] >= background_threshold) + lo
        if side == "left":  # before the first point: from the video's start
            seed[lo : (high[-1] + 1 if high.size else lo + int(np.argmax(background[lo:hi])) + 1)] = True
        elif side == "right":
            seed[(high[0] if high.size else lo + int(np.argmax(background[lo:hi]))) : hi] = True
        elif high.size >= 2:
            seed[high[0] : high[-1] + 1] = True
        else:
            seed[lo + int(np.argmax(background[lo:hi]))] = True

    def grow(start: int, stop: int, step: int, source: int) -> None:
        for j in range(start, stop, step):
            if background[j] <= action_threshold and not seed[j]:
                action[j] |= points[source].astype(bool)
            else:
                break

    first, last = int(anchors[0]), int(anchors[-1])
    spread(0, first, "left")
    grow(first - 1, -1, -1, first)
    spread(last + 1, n, "right")
    grow(last + 1, n, 1, last)
    for left, right in zip(anchors[:-1].tolist(), anchors[1:].tolist()):
        if right - left <= 1:
            continue
        spread(left + 1, right, "between")
        grow(left + 1, right, 1, left)
        grow(right - 1, left, -1, right)
    return action, seed


# ----------------------------------------------------------------------------------- OIC score
def oic_scores(prefix: np.ndarray, starts: np.ndarray, ends: np.ndarray, inflation: float) -> np.ndarray:
    """Outer-inner contrast of segments [start, end] (inclusive; broadcast arrays) of a curve given
    by its ``prefix`` sums (length T + 1): mean inside minus mean over the ``inflation`` x length
    snippets either side (clipped to the video; 0 when there are none)."""
    n = prefix.shape[0] - 1
    length = ends - starts + 1
    inner = (prefix[ends + 1] - prefix[starts]) / length
    o_start = np.maximum(0, np.floor(starts - inflation * length).astype(np.int64))
    o_end = np.minimum(n - 1, np.floor(ends + inflation * length).astype(np.int64))
    outer_sum = (prefix[starts] - prefix[o_start]) + (prefix[o_end + 1] - prefix[ends + 1])
    outer_len = (starts - o_start) + (o_end - ends)
    outer = np.where(outer_len > 0, outer_sum / np.maximum(outer_len, 1), 0.0)
    return inner - outer


def oic_score(curve: Tensor, start: int, end: int, inflation: float) -> Tensor:
    """Differentiable OIC score of one segment [start, end] of ``curve`` [T] (as :func:`oic_scores`)."""
    n, length = curve.shape[0], end - start + 1
    inner = curve[start : end + 1].mean()
    o_start, o_end = max(0, int(np.floor(start - inflation * length))), min(n - 1, int(np.floor(end + inflation * length)))
    outer = torch.cat([curve[o_start:start], curve[end + 1 : o_end + 1]])
    return inner - (outer.mean() if outer.numel() else curve.new_zeros(()))


# ------------------------------------------------------------------------- optimal sequence search
def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end] (inclusive) of True in a 1-d bool array."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[0::2], edges[1::2])]


def optimal_sequence(curve: np.ndarray, action_seed: np.ndarray, forced_background: np.ndarray, inflation: float) -> tuple[np.ndarray, float]:
    """The action/background labelling [T] bool of one class that maximises the mean completeness
    score (module docstring), and that score. ``curve`` [T] the class score in [0, 1],
    ``action_seed`` [T] bool (at least one), ``forced_background`` [T] bool."""
    n = curve.shape[0]
    cores = _runs(action_seed)
    if not cores:
        raise ValueError("optimal_sequence: no action seed")
    forced = forced_background.astype(bool) & ~action_seed.astype(bool)
    labels: list[bool] = []  # segment labels, True = action
    ranges: list[tuple[int, int]] = [(0, 0)]  # allowed values of each segment's start p_k

    def forced_in(lo: int, hi: int) -> np.ndarray:
        return np.flatnonzero(forced[lo : hi + 1]) + lo if hi >= lo else np.zeros(0, dtype=np.int64)

    for j, (a, z) in enumerate(cores):
        gap_lo = 0 if j == 0 else cores[j - 1][1] + 1
        inside = forced_in(gap_lo, a - 1)
        if j > 0 and inside.size == 0:  # two runs always have background between them
            inside = np.array([gap_lo + int(np.argmax(1.0 - curve[gap_lo:a]))])
        if inside.size:
            if j == 0:
                labels.append(False)
            else:  # the act -> bg boundary after the previous run
                ranges.append((cores[j - 1][1] + 1, int(inside[0])))
                labels.append(False)
            ranges.append((int(inside[-1]) + 1, a))
        # (j == 0 without forced background before it: the first action segment starts at 0)
        labels.append(True)
    tail = forced_in(cores[-1][1] + 1, n - 1)
    if tail.size:
        ranges.append((cores[-1][1] + 1, int(tail[0])))
        labels.append(False)
    ranges.append((n, n))

    prefix_act = np.concatenate([[0.0], np.cumsum(curve, dtype=np.float64)])
    prefix_bg = np.concatenate([[0.0], np.cumsum(1.0 - curve, dtype=np.float64)])
    starts = np.arange(ranges[0][0], ranges[0][1] + 1)
    value = np.zeros(starts.shape[0])
    choices: list[np.ndarray] = []
    for k, is_action in enumerate(labels):
        nxt = np.arange(ranges[k + 1][0], ranges[k + 1][1] + 1)
        s, e = starts[:, None], nxt[None, :] - 1
        valid = e >= s
        scores = oic_scores(prefix_act if is_action else prefix_bg, s, np.maximum(e, s), inflation)
        total = np.where(valid, value[:, None] + scores, -np.inf)
        best = np.argmax(total, axis=0)
        choices.append(best)
        value, starts = total[best, np.arange(nxt.shape[0])], nxt
    # trace back the segment starts
    bounds = [n]
    index = 0
    for k in range(len(labels) - 1, -1, -1):
        index = int(choices[k][index])
        lo = ranges[k][0]
        bounds.append(lo + index)
    bounds = bounds[::-1]
    sequence = np.zeros(n, dtype=bool)
    for k, is_action in enumerate(labels):
        if is_action:
            sequence[bounds[k] : bounds[k + 1]] = True
    return sequence, float(value[0]) / len(labels)


@torch.no_grad()
def dense_sequences(scores: Tensor, background: Tensor, points: Tensor, mask: Tensor, config: LACPConfig) -> tuple[Tensor, Tensor, Tensor]:
    """For a padded batch: (action seeds [B, T, C] bool, background seeds [B, T] bool, optimal
    sequences [B, T, C] bool, all False for classes without points and on padding). ``scores``
    [B, T, C] class scores in [0, 1], ``background`` [B, T] the background score."""
    scores_np = scores.detach().float().cpu().numpy()
    background_np = background.detach().float().cpu().numpy()
    points_np = (points > 0).cpu().numpy()
    lengths = mask.bool().sum(dim=1).tolist()
    action = np.zeros(points_np.shape, dtype=bool)
    seeds = np.zeros(points_np.shape[:2], dtype=bool)
    sequences = np.zeros(points_np.shape, dtype=bool)
    for b, n in enumerate(lengths):
        act, bkg = select_seeds(background_np[b, :n], points_np[b, :n], config.action_threshold, config.background_threshold)
        action[b, :n], seeds[b, :n] = act, bkg
        for c in range(points_np.shape[-1]):
            if not act[:, c].any():
                continue
            others = act.any(axis=1) & ~act[:, c]
            sequences[b, :n, c], _ = optimal_sequence(scores_np[b, :n, c], act[:, c], bkg | others, config.inflation)
    device = scores.device
    return torch.from_numpy(action).to(device), torch.from_numpy(seeds).to(device), torch.from_numpy(sequences).to(device)


def score_contrastive_loss(scores: Tensor, sequences: Tensor, present: Tensor, mask: Tensor, inflation: float) -> Tensor:
    """LACP's score-contrastive loss (module docstring) of ``scores`` [B, T, C] (with gradients)
    against the ``sequences`` [B, T, C] bool of the classes ``present`` [B, C]."""
    lengths = mask.bool().sum(dim=1).tolist()
    act_total, bkg_total = scores.sum() * 0.0, scores.sum() * 0.0
    seq_np = sequences.cpu().numpy()
    for b, n in enumerate(lengths):
        act_terms: list[Tensor] = []
        bkg_terms: list[Tensor] = []
        for c in torch.nonzero(present[b]).flatten().tolist():
            labels = seq_np[b, :n, c]
            if not labels.any():
                continue
            curve = scores[b, :n, c]
            act_terms += [1.0 - oic_score(curve, s, e, inflation) for s, e in _runs(labels)]
            bkg_terms += [1.0 - oic_score(1.0 - curve, s, e, inflation) for s, e in _runs(~labels)]
        if act_terms:
            act_total = act_total + torch.stack(act_terms).mean()
        if bkg_terms:
            bkg_total = bkg_total + torch.stack(bkg_terms).mean()
    videos = max(1, len(lengths))
    return (act_total / videos + bkg_total / videos) ** 2
