"""The loss terms of PWES (paper section 3.5, eq. 12-18) and their weights.

Snippet-wise terms are averaged over each video's real snippets, then over the videos, so padding
never counts and a video's contribution does not depend on how long the batch is padded. The
snippet-level classification loss is averaged over the labelled snippets of the batch (eq. 16).

* ``mil`` / ``mil_suppressed`` (eq. 12-14): binary cross-entropy between the branch's video-level
  scores (sigmoid TCAM, class-wise top-k mean) and the video labels. Branch 1 targets background
  1 (every long video has background), branch 2 (TCAM x attention) targets background 0.
* ``snippet`` (eq. 15-16): binary cross-entropy, summed over the three classes, on every snippet
  with a label (pseudo labels together with point labels, ``pwes.model.targets``), weighted by
  the snippet's weight; targets may be soft. The foreground probabilities are the TCAM
  re-weighted by the pseudo-label source's class weights (MPLG step 3), the background
  probability the plain TCAM's.
* DFCL's contrastive term (eq. 17) is contributed by its callback (``pwes.callbacks.dfcl``).
* ``guide``: |1 - attention - background probability|, for the mean and both stream attentions.
* ``sparsity``: mean attention (mean and both streams).
* ``mutual``: CO2-Net's mutual learning, 0.5 MSE(rgb, flow.detach()) + 0.5 MSE(flow, rgb.detach()).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pwes.data.batch import NUM_CLASSES
from pwes.model.network import masked_mean
from pwes.settings import require

LOSS_NAMES = ("mil", "mil_suppressed", "snippet", "guide", "sparsity", "mutual")
EPS = 1e-6


@dataclass(frozen=True)
class LossConfig:
    """Weights of the eq. 18 terms the module owns, and when the snippet loss applies (``model.loss``).

    The contrastive term's weight belongs to the DFCL callback that contributes it.
    """

    mil: float = 1.0
    mil_suppressed: float = 1.0
    snippet: float = 1.0
    guide: float = 0.8
    sparsity: float = 0.8
    mutual: float = 1.0
    # Without pseudo labels from a callback (before its start step, or with none configured), train
    # the snippet loss on the point labels alone (point supervision).
    points_before_switch: bool = True

    def __post_init__(self) -> None:
        for name in LOSS_NAMES:
            value = getattr(self, name)
            require(
                isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) >= 0.0,
                name,
                f"loss weight must be a number >= 0, got {value!r}",
            )

    def weight(self, name: str) -> float:
        """The weight of loss term ``name``."""
        return float(getattr(self, name))


def video_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over each video's real snippets, then over the videos: [B, T] -> scalar."""
    return masked_mean(values, mask).mean()


def binary_cross_entropy(probabilities: Tensor, targets: Tensor) -> Tensor:
    """Element-wise BCE of probabilities (clamped away from 0 and 1) against 0/1 targets."""
    p = probabilities.clamp(EPS, 1.0 - EPS)
    return -(targets * torch.log(p) + (1.0 - targets) * torch.log1p(-p))


def video_mil_loss(scores: Tensor, video_labels: Tensor, background_target: float) -> Tensor:
    """MIL loss of one branch: BCE of ``scores`` [B, C+1] against ``video_labels`` [B, C] plus a
    background column set to ``background_target``; mean over classes and videos."""
    background = torch.full_like(video_labels[:, :1], float(background_target))
    targets = torch.cat([video_labels.to(scores.dtype), background.to(scores.dtype)], dim=1)
    return binary_cross_entropy(scores, targets).mean()


def snippet_probabilities(tcam: Tensor, class_weights: Tensor | None) -> Tensor:
    """[B, T, C+1]: foreground TCAM columns times the (detached) class weights, background as is."""
    foreground = tcam[..., :NUM_CLASSES]
    if class_weights is not None:
        foreground = foreground * class_weights.detach().to(tcam.dtype)
    return torch.cat([foreground, tcam[..., NUM_CLASSES:]], dim=-1)


def snippet_loss(probabilities: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """Eq. 16: BCE summed over classes per snippet, averaged over the labelled snippets.

    ``targets`` [B, T, C+1]: bool one-hot labels or float (soft) targets in [0, 1]. ``weight``
    [B, T]: each snippet's weight (0 = not in the loss); by default the snippets with any label.
    The sum is divided by the total weight (the number of labelled snippets for 0/1 weights).
    Zero, still attached to the graph, when nothing is labelled.
    """
    if weight is None:
        weight = targets.bool().any(dim=-1)
    weight = weight.to(probabilities.dtype)
    total = weight.sum()
    if float(total) <= 0.0:
        return probabilities.sum() * 0.0
    per_snippet = binary_cross_entropy(probabilities, targets.to(probabilities.dtype)).sum(dim=-1)
    return (per_snippet * weight).sum() / total


def guide_loss(attentions: Sequence[Tensor], tcam: Tensor, mask: Tensor) -> Tensor:
    """Mean over ``attentions`` of |1 - attention - background probability| (real snippets)."""
    background = tcam[..., NUM_CLASSES]
    terms = [video_mean((1.0 - a - background).abs(), mask) for a in attentions]
    return torch.stack(terms).mean()


def sparsity_loss(attentions: Sequence[Tensor], mask: Tensor) -> Tensor:
    """Mean over ``attentions`` of the mean attention (real snippets): pushes attention to sparsity."""
    return torch.stack([video_mean(a.abs(), mask) for a in attentions]).mean()


def mutual_loss(attention_rgb: Tensor, attention_flow: Tensor, mask: Tensor) -> Tensor:
    """Mutual learning of the two modality attentions (each learns from the other, detached)."""
    to_flow = video_mean((attention_rgb - attention_flow.detach()) ** 2, mask)
    to_rgb = video_mean((attention_flow - attention_rgb.detach()) ** 2, mask)
    return 0.5 * (to_flow + to_rgb)
