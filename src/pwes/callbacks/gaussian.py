"""Gaussian soft pseudo labels, after GIM (Deng, Hayashi and Nagahara, "Gaussian-based
instance-adaptive intensity modeling for point-supervised facial expression spotting", ICLR 2025).
**Beyond the PWES paper**: a third pseudo-label source beside MPLG and PPLM, written here from the
GIM paper's idea (no code taken from it), and an example of a new pseudo-labelling idea as one
callback file plus one config file (``conf/callbacks/pseudo/gaussian.yaml``).

Per point label (snippet p, class c), from the clean forward:

1. Refined attention r = attention x foreground similarity to the video's points (MPLG step 1).
2. Instance extent: from p, walk left and right while r stays >= ``edge_ratio`` x r[p] (at most
   ``max_half_width`` snippets each way); L and R snippets are covered on each side.
3. A Gaussian centred on the point with sigma = ((L + R + 1) / 2) / sqrt(2 ln 2), so the soft
   target is 0.5 at the estimated edges: target_c(t) = exp(-(t - p)^2 / (2 sigma^2)), the larger
   one where points of a class overlap, and the background target 1 - max_c target_c(t).
4. Snippets with a foreground target >= ``min_target`` are in the loss with these soft targets.
5. Pseudo background (hard, background 1): the ``background_multiplier x floor(top_ratio x T)``
   snippets of lowest attention, as MPLG step 6, minus snippets already in the loss.

GIM also moves the centre to a pseudo-apex near the point; here the centre stays on the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pwes.callbacks.base import PseudoLabelCallback
from pwes.data.batch import NUM_CLASSES, Batch
from pwes.model.mplg import foreground_similarity, lowest_attention_background, pool_sizes
from pwes.model.network import NetworkOutput
from pwes.model.targets import SnippetTargets
from pwes.settings import parse_settings, require

HALF_MAX = math.sqrt(2.0 * math.log(2.0))  # a Gaussian is at half its peak this many sigmas out


@dataclass(frozen=True)
class GaussianConfig:
    """Gaussian pseudo-label settings (``callbacks.gaussian``)."""

    edge_ratio: float = 0.5  # the instance ends where the refined attention drops below this x its value at the point
    max_half_width: int = 8  # at most this many snippets each side of the point
    min_target: float = 0.05  # soft foreground targets below this are left out of the loss
    top_ratio: float = 0.3  # background pool = background_multiplier x floor(top_ratio x T), as MPLG
    background_multiplier: float = 2.0

    def __post_init__(self) -> None:
        require(0.0 < float(self.edge_ratio) <= 1.0, "edge_ratio", f"must be in (0, 1], got {self.edge_ratio}")
        require(int(self.max_half_width) >= 0, "max_half_width", f"must be >= 0, got {self.max_half_width}")
        require(0.0 < float(self.min_target) < 1.0, "min_target", f"must be in (0, 1), got {self.min_target}")
        require(0.0 < float(self.top_ratio) <= 1.0, "top_ratio", f"must be in (0, 1], got {self.top_ratio}")
        require(float(self.background_multiplier) >= 0.0, "background_multiplier", f"must be >= 0, got {self.background_multiplier}")


def instance_extent(refined: Tensor, point: int, length: int, cfg: GaussianConfig) -> tuple[int, int]:
    """Snippets (left, right) around ``point`` whose refined attention stays above the edge."""
    level = float(refined[point]) * cfg.edge_ratio
    left = 0
    while left < cfg.max_half_width and point - left - 1 >= 0 and float(refined[point - left - 1]) >= level:
        left += 1
    right = 0
    while right < cfg.max_half_width and point + right + 1 < length and float(refined[point + right + 1]) >= level:
        right += 1
    return left, right


@torch.no_grad()
def gaussian_targets(attention: Tensor, features: Tensor, points: Tensor, mask: Tensor, cfg: GaussianConfig) -> SnippetTargets:
    """Soft pseudo-label targets (module docstring) for a padded batch from a clean forward."""
    attention, features, mask = attention.detach().float(), features.detach().float(), mask.bool()
    refined = attention * foreground_similarity(features, points, mask)
    B, T = mask.shape
    foreground = torch.zeros(B, T, NUM_CLASSES, device=attention.device)
    steps = torch.arange(T, device=attention.device, dtype=torch.float32)
    lengths = mask.sum(dim=1)
    for b, t, c in ((points > 0) & mask[..., None]).nonzero().tolist():
        left, right = instance_extent(refined[b], t, int(lengths[b]), cfg)
        sigma = max((left + right + 1) / 2.0, 0.5) / HALF_MAX
        bump = torch.exp(-((steps - t) ** 2) / (2.0 * sigma**2))
        foreground[b, :, c] = torch.maximum(foreground[b, :, c], bump)
    foreground = foreground * mask[..., None]
    soft = foreground.amax(dim=-1) >= cfg.min_target
    foreground = torch.where(soft[..., None], foreground, torch.zeros_like(foreground))
    _, bg_pool = pool_sizes(lengths, cfg.top_ratio, cfg.background_multiplier)
    background = lowest_attention_background(attention, mask, bg_pool, exclude=soft)
    bg_target = torch.where(soft, 1.0 - foreground.amax(dim=-1), background.float())
    targets = torch.cat([foreground, bg_target[..., None]], dim=-1) * mask[..., None]
    weight = (soft | background).float() * mask.float()
    return SnippetTargets(targets, weight)


class GaussianCallback(PseudoLabelCallback):
    """Gaussian soft pseudo labels after ``start_step``; keywords are :class:`GaussianConfig`."""

    name = "gaussian"
    config_key = "callbacks.gaussian"

    def __init__(self, start_step: int = 0, **settings: Any) -> None:
        super().__init__(start_step)
        self.config = parse_settings(GaussianConfig, settings, "callbacks.gaussian")

    def pseudo_targets(self, output: NetworkOutput, batch: Batch) -> SnippetTargets:
        return gaussian_targets(output.attention, output.features, batch.points, batch.mask, self.config)
