"""SF-Net (Ma et al., "SF-Net: Single-Frame Supervision for Temporal Action Localization", ECCV
2020) as a comparator on the PWES network (``callbacks/pseudo=sfnet``, ``ablation=sfnet``).

What SF-Net adds to a point-supervised classifier, written from the paper and the authors' code
(github.com/Flowerfan/SF-Net, ``train.py``: ``anchor_expand``, ``frame_loss``, ``act_loss``):

* **Action-frame mining** (:func:`mine_action_frames`): each labelled snippet is expanded to its
  neighbours, up to ``radius`` snippets each side. A neighbour is mined for the point's class(es)
  when its class score is at least ``ratio`` x the point's score and the foreground class with
  the highest score is the same on the neighbour and on the snippets either side of it. A
  neighbour that fails is skipped, not a stop (as the code); another labelled snippet or the
  video's edge stops the expansion.
* **Background mining** (:func:`mine_background`): per video ``floor(ratio x labelled)``
  unlabelled snippets (labelled = points and mined action frames), chosen as those with the
  highest background score; pooled over the batch (the code ranks "all the unannotated frames
  across multiple videos" together) or per video.
* **Actionness** (:func:`actionness_loss`): a class-agnostic score trained to 1 on the labelled
  snippets and to 0 on as many unlabelled snippets as background mining takes, those with the
  highest actionness (the code's ``act_loss``). The PWES network's class-agnostic attention is
  the actionness here (both are one sigmoid per snippet from the streams), and it already enters
  inference as in SF-Net (proposals from TCAM x attention), so no branch is added.

Scores are the network's sigmoid TCAM probabilities (SF-Net compares raw logits of a softmax
classifier; a ratio of logits is not defined when they are negative).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pwes.data.batch import NUM_CLASSES
from pwes.model.losses import EPS
from pwes.settings import require

BACKGROUND_POOLS = ("batch", "video")


@dataclass(frozen=True)
class SFNetConfig:
    """SF-Net settings (``callbacks.sfnet``); values and reasons in conf/callbacks/pseudo/sfnet.yaml."""

    expand_step: int = 0  # action-frame mining from this step on (before it: points + background)
    radius: int = 3  # neighbours examined each side of a labelled snippet (code: radious=3)
    ratio: float = 0.95  # a neighbour's score must reach ratio x the point's (code: pv=0.95)
    background_ratio: float = 7.0  # mined background per labelled snippet (code: --tm 7)
    background_pool: str = "batch"  # batch (the code) | video
    actionness_weight: float = 1.0  # weight of the actionness loss (code: beta=1)

    def __post_init__(self) -> None:
        require(int(self.expand_step) >= 0, "expand_step", f"must be a whole number >= 0, got {self.expand_step}")
        require(int(self.radius) >= 0, "radius", f"must be a whole number >= 0, got {self.radius}")
        require(0.0 <= float(self.ratio) <= 1.0, "ratio", f"must be in [0, 1], got {self.ratio}")
        require(float(self.background_ratio) >= 0.0, "background_ratio", f"must be >= 0, got {self.background_ratio}")
        require(self.background_pool in BACKGROUND_POOLS, "background_pool", f"must be one of {', '.join(BACKGROUND_POOLS)}, got {self.background_pool!r}")
        require(float(self.actionness_weight) >= 0.0, "actionness_weight", f"must be >= 0, got {self.actionness_weight}")


@torch.no_grad()
def mine_action_frames(scores: Tensor, points: Tensor, mask: Tensor, radius: int, ratio: float) -> Tensor:
    """[B, T, C] bool: snippets mined as action frames of the class(es) of a nearby point (point
    snippets themselves excluded). ``scores`` [B, T, C] foreground class scores, ``points``
    [B, T, C] (> 0 at point labels), ``mask`` [B, T]."""
    scores, mask = scores.detach().float().cpu(), mask.bool().cpu()
    labelled = ((points > 0) & mask[..., None]).cpu()
    mined = torch.zeros_like(labelled)
    top = scores.argmax(dim=-1)  # [B, T] the leading foreground class per snippet
    for b in range(scores.shape[0]):
        length = int(mask[b].sum())
        has_point = labelled[b].any(dim=-1)
        for idx in torch.nonzero(has_point[:length]).flatten().tolist():
            classes = labelled[b, idx]
            anchor = float(scores[b, idx][classes].mean())
            for direction in (-1, 1):
                for step in range(1, radius + 1):
                    cur = idx + direction * step
                    before, after = cur - direction, cur + direction
                    if min(before, cur, after) < 0 or max(before, cur, after) >= length or bool(has_point[cur]):
                        break
                    same = int(top[b, before]) == int(top[b, cur]) == int(top[b, after])
                    if same and float(scores[b, cur][classes].mean()) >= ratio * anchor:
                        mined[b, cur] |= classes
    return mined.to(points.device)


@torch.no_grad()
def mine_background(background: Tensor, labelled: Tensor, mask: Tensor, ratio: float, pool: str = "batch") -> Tensor:
    """[B, T] bool: per video ``min(floor(ratio x labelled), unlabelled)`` snippets of highest
    ``background`` score [B, T] among the unlabelled real ones (``labelled`` [B, T] bool); under
    ``pool="batch"`` the batch's total is taken from all videos' unlabelled snippets together."""
    mask = mask.bool()
    free = mask & ~labelled.bool()
    counts = torch.minimum(torch.floor(labelled.sum(dim=1).double() * ratio + 1e-9).long(), free.sum(dim=1))
    picked = torch.zeros_like(free)
    values = background.detach().float().masked_fill(~free, float("-inf"))
    if pool == "batch":
        total = int(counts.sum())
        if total > 0:
            order = torch.argsort(values.flatten(), descending=True, stable=True)[:total]
            picked.view(-1)[order] = True
        return picked & free
    if pool != "video":
        raise ValueError(f"background_pool {pool!r} is not one of {', '.join(BACKGROUND_POOLS)}")
    order = torch.argsort(values, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(values.shape[1], device=values.device).expand_as(order))
    return (ranks < counts[:, None]) & free


def actionness_loss(actionness: Tensor, positives: Tensor, mask: Tensor, ratio: float) -> Tensor:
    """SF-Net's actionness loss for one actionness curve [B, T] in (0, 1): ``-mean log a`` over the
    ``positives`` [B, T] (labelled snippets) plus ``-mean log(1 - a)`` over the negatives: per video
    ``min(floor(ratio x positives), unlabelled)`` unlabelled snippets, taken over the batch as those
    of highest actionness (chosen without gradient). Zero (attached) without positives."""
    mask = mask.bool()
    positives = positives.bool() & mask
    if not bool(positives.any()):
        return actionness.sum() * 0.0
    a = actionness.clamp(EPS, 1.0 - EPS)
    loss = -torch.log(a[positives]).mean()
    negatives = mine_background(actionness, positives, mask, ratio, pool="batch")
    if bool(negatives.any()):
        loss = loss - torch.log1p(-a[negatives]).mean()
    return loss


def foreground_scores(tcam: Tensor) -> Tensor:
    """[B, T, C]: the TCAM's foreground (ME, MaE) columns."""
    return tcam[..., :NUM_CLASSES]
