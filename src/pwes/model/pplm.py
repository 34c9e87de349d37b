"""PPLM: the CRRC-Net-style pseudo labels of Table I (``callbacks/pseudo=pplm``), the alternative
MPLG is compared against.

CRRC-Net (Fu, Gao and Xu, TIP 2022) has no released code; the PWES paper reproduces it from the
text, and so does this module, from what the two papers say about it: class probabilities
modulated by the attention, and a reliability correction applied to the snippets whose modulated
score exceeds the video's average. Concretely, per video and present class c:

* score = TCAM_c x attention;
* candidates: real snippets with score >= the video's mean score of class c;
* reliability = cosine similarity of the snippet's fused feature to the mean feature of the
  class-c point labels, min-max normalised over the video's real snippets;
* pseudo foreground of class c where score x reliability > ``threshold`` (one-hot, larger wins);
* pseudo background as in MPLG step 6 (lowest attention, ``background_multiplier x
  floor(top_ratio * T)`` snippets), so the comparison with MPLG isolates the foreground rule.

Classes absent from the video's points get no pseudo labels. The class weights returned are the
presence indicators (PPLM does not re-weight the TCAM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pwes.data.batch import NUM_CLASSES
from pwes.model.mplg import (
    PseudoLabels,
    classes_present,
    lowest_attention_background,
    one_hot_foreground,
    point_mask,
    pool_sizes,
)
from pwes.model.network import masked_mean
from pwes.settings import require


@dataclass(frozen=True)
class PPLMConfig:
    """PPLM settings (``callbacks.pplm``)."""

    threshold: float = 0.5  # on attention-modulated, reliability-corrected class scores
    top_ratio: float = 0.3  # sizes the background pool as in MPLG
    background_multiplier: float = 2.0

    def __post_init__(self) -> None:
        require(0.0 <= float(self.threshold) < 1.0, "threshold", f"must be in [0, 1), got {self.threshold}")
        require(0.0 < float(self.top_ratio) <= 1.0, "top_ratio", f"must be in (0, 1], got {self.top_ratio}")
        require(
            float(self.background_multiplier) >= 0.0,
            "background_multiplier",
            f"must be >= 0, got {self.background_multiplier}",
        )


def class_reliability(features: Tensor, points: Tensor, mask: Tensor) -> Tensor:
    """[B, T, C]: cosine similarity to each class's mean point feature, min-max scaled to [0, 1]
    over the real snippets of the video (0 for classes without points)."""
    point_w = (points > 0).float() * mask[..., None].float()
    counts = point_w.sum(dim=1)
    means = torch.einsum("btc,bte->bce", point_w, features) / counts.clamp(min=1.0)[..., None]
    sim = torch.einsum("bte,bce->btc", F.normalize(features, dim=-1), F.normalize(means, dim=-1))
    real = mask[..., None]
    low = sim.masked_fill(~real, float("inf")).amin(dim=1, keepdim=True)
    high = sim.masked_fill(~real, float("-inf")).amax(dim=1, keepdim=True)
    spread = high - low
    scaled = torch.where(spread > 1e-12, (sim - low) / spread.clamp(min=1e-12), torch.ones_like(sim))
    present = (counts > 0)[:, None, :]
    return torch.where(present & real, scaled.clamp(0.0, 1.0), torch.zeros_like(scaled))


@torch.no_grad()
def generate_pplm(
    features: Tensor,
    attention: Tensor,
    tcam: Tensor,
    points: Tensor,
    mask: Tensor,
    config: PPLMConfig | None = None,
) -> PseudoLabels:
    """Pseudo labels by PPLM for a padded batch (same inputs and output as ``generate_mplg``)."""
    cfg = config or PPLMConfig()
    features, attention, tcam = features.detach().float(), attention.detach().float(), tcam.detach().float()
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    present = classes_present(points, mask)
    labelled = point_mask(points, mask)

    scores = tcam[..., :NUM_CLASSES] * attention[..., None]
    candidates = (scores >= masked_mean(scores, mask)[:, None, :]) & present[:, None, :] & mask[..., None]
    corrected = scores * class_reliability(features, points, mask)
    candidates &= corrected > cfg.threshold
    foreground = one_hot_foreground(corrected, candidates)

    _, bg_pool = pool_sizes(lengths, cfg.top_ratio, cfg.background_multiplier)
    background = lowest_attention_background(attention, mask, bg_pool, exclude=foreground.any(dim=-1) | labelled)
    weights = present[:, None, :].float().expand_as(scores) * mask[..., None].float()
    return PseudoLabels(
        foreground=foreground,
        background=background,
        class_weights=weights,
        refined_attention=attention * mask.float(),
        coarse_mask=mask.clone(),
    )
