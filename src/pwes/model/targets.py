"""Snippet targets of the snippet-level classification loss (paper eq. 15-16).

A :class:`SnippetTargets` says, per snippet of a padded batch, what the three outputs (ME, MaE,
background) should be (``targets``, soft values in [0, 1] allowed) and whether the snippet is in
the loss at all (``weight``, 0 or 1 for hard labels). Pseudo-label callbacks hand one to the module
(:meth:`pwes.model.module.PWESModule.contribute`); the module combines it with the point labels:

* A point-labelled snippet always keeps its point target at full weight, and class weights (MPLG's
  step 3) never scale its probabilities: whatever a pseudo-label source says about that snippet
  is replaced.
* An ME point and an MaE point in the same snippet make it positive for **both** classes
  (multi-label, background 0). The TCAM is a per-class sigmoid and the loss a per-class BCE, so
  the snippet simply teaches both columns; neither class silently loses its point.
* Padded snippets are never in the loss.

Full supervision (``model.supervision=full``) builds the targets from the annotated intervals
instead (:func:`interval_targets`): every real snippet is in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pwes.data.batch import NUM_CLASSES


@dataclass
class SnippetTargets:
    """Targets of the snippet loss for a padded batch."""

    targets: Tensor  # [B, T, C+1] float in [0, 1]: ME, MaE, background (soft values allowed)
    weight: Tensor  # [B, T] float >= 0: how much each snippet counts (0 = not in the loss)
    class_weights: Tensor | None = None  # [B, T, C] multiplies the foreground TCAM columns, or None

    def hard_labels(self) -> Tensor:
        """[B, T, C+1] bool: the classes whose target is >= 0.5 on snippets in the loss (the
        feature sets of DFCL)."""
        return (self.targets >= 0.5) & (self.weight > 0)[..., None]

    def labelled(self) -> Tensor:
        """[B, T] bool: snippets in the loss."""
        return self.weight > 0


def point_targets(points: Tensor, mask: Tensor) -> SnippetTargets:
    """The point labels alone: positives of their class(es), background 0, weight 1 at points."""
    mask = mask.bool()
    foreground = ((points > 0) & mask[..., None]).to(points.dtype)
    background = torch.zeros_like(foreground[..., :1])
    weight = foreground.amax(dim=-1)
    return SnippetTargets(torch.cat([foreground, background], dim=-1), weight)


def hard_targets(foreground: Tensor, background: Tensor, class_weights: Tensor | None = None) -> SnippetTargets:
    """Targets from hard pseudo labels: ``foreground`` [B, T, C] bool, ``background`` [B, T] bool
    (foreground wins where both are set)."""
    background = background & ~foreground.any(dim=-1)
    targets = torch.cat([foreground, background[..., None]], dim=-1).float()
    return SnippetTargets(targets, targets.amax(dim=-1), class_weights)


def combine_targets(points: Tensor, pseudo: SnippetTargets | None, mask: Tensor) -> SnippetTargets:
    """Eq. 15: point labels over pseudo labels (see the module docstring for the rules)."""
    mask = mask.bool()
    from_points = point_targets(points, mask)
    if pseudo is None:
        return from_points
    has_point = from_points.weight > 0
    real = mask.to(pseudo.weight.dtype)
    targets = torch.where(has_point[..., None], from_points.targets.to(pseudo.targets.dtype), pseudo.targets)
    weight = torch.where(has_point, torch.ones_like(pseudo.weight), pseudo.weight) * real
    targets = targets * mask[..., None].to(targets.dtype)
    class_weights = pseudo.class_weights
    if class_weights is not None:  # a point snippet's probabilities are never scaled
        class_weights = torch.where(has_point[..., None], torch.ones_like(class_weights), class_weights)
    return SnippetTargets(targets, weight, class_weights)


def interval_targets(intervals: Tensor, mask: Tensor) -> SnippetTargets:
    """Full supervision: ``intervals`` [B, T, C] (1 where a snippet lies in an annotated interval of
    that class). Every real snippet is labelled; background where no interval covers it."""
    mask = mask.bool()
    foreground = ((intervals > 0) & mask[..., None]).float()
    background = (1.0 - foreground.amax(dim=-1)) * mask.float()
    targets = torch.cat([foreground, background[..., None]], dim=-1)
    return SnippetTargets(targets, mask.float())


def target_counts(targets: SnippetTargets, videos: int) -> dict[str, Tensor]:
    """Mean number of snippets per video labelled ME, MaE (foreground) and background (>= 0.5)."""
    hard = targets.hard_labels().float()
    names = ("pseudo_fg_me", "pseudo_fg_mae", "pseudo_bg")
    return {name: hard[..., c].sum() / videos for c, name in zip(range(NUM_CLASSES + 1), names)}
