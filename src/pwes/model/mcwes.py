"""MC-WES's two consistency losses (Yu et al., "Weakly-supervised Micro- and Macro-expression
Spotting Based on Multi-level Consistency", arXiv 2305.02734), the terms the project's video-level
baseline (``ablation=baseline``) lacks: the PWES paper's "Baseline" is MC-WES without its
"attention-guided feature consistency loss and attention-guided duration consistency loss"
(PWES paper 4.4.1). ``ablation=mcwes`` adds them as callbacks (``pwes.callbacks.mcwes``).

The MC-WES paper is not in this project; its abstract says the segment-level feature consistency
"emphasizes that features under the same labels maintain similarity" and the label-level duration
consistency "exploits the difference in the duration of facial muscles". The equations below are
**our readings**, chosen to be the standard form of each idea:

* :func:`feature_consistency_loss` (W-TALC's co-activity similarity, attention-guided): per video
  and labelled class c, a foreground feature (fused features F averaged with weights attention x
  TCAM_c) and a background feature (weights 1 - attention). For every pair of videos sharing c,
  with cosine distance d: ``relu(d(f_i, f_j) - d(f_i, b_j) + m) + relu(d(f_i, f_j) - d(b_i, f_j) + m)``,
  halved and averaged over the pairs: same-label foregrounds closer than either's background.
* :func:`duration_consistency_loss`: per video and labelled class, the soft mean duration of the
  attention-suppressed activation a_t = attention_t x TCAM_c,t, ``sum_t a_t / sum_t relu(a_t -
  a_{t-1})`` snippets (total activity over the number of rises: a block of height h and length L
  gives L), converted to seconds, is pushed into the class's duration range (paper section 1,
  after Ekman: an ME lasts under 0.5 s, a MaE 0.5 to 4 s): ``relu(log(d / max)) + relu(log(min /
  d))`` (the lower term only when min > 0): how many times too long or too short, so the term does
  not grow with the video's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pwes.data.batch import NUM_CLASSES
from pwes.settings import require


@dataclass(frozen=True)
class FeatureConsistencyConfig:
    """``callbacks.feature_consistency``; values and reasons in conf/callbacks/mcwes/."""

    margin: float = 0.5  # W-TALC's delta
    weight: float = 1.0

    def __post_init__(self) -> None:
        require(float(self.margin) >= 0.0, "margin", f"must be >= 0, got {self.margin}")
        require(float(self.weight) >= 0.0, "weight", f"must be >= 0, got {self.weight}")


@dataclass(frozen=True)
class DurationConsistencyConfig:
    """``callbacks.duration_consistency``; values and reasons in conf/callbacks/mcwes/."""

    me_seconds: tuple[float, ...] = (0.0, 0.5)  # ME duration range (paper section 1)
    mae_seconds: tuple[float, ...] = (0.5, 4.0)  # MaE duration range (paper section 1)
    fps: float = 30.0  # the dataset's frame rate (dataset.fps)
    stride: int = 8  # frames between consecutive snippets (dataset.stride)
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("me_seconds", "mae_seconds"):
            value = tuple(float(v) for v in getattr(self, name))
            require(len(value) == 2 and 0.0 <= value[0] < value[1], name, f"needs [min, max] seconds with 0 <= min < max, got {list(value)}")
            object.__setattr__(self, name, value)
        require(float(self.fps) > 0.0, "fps", f"must be a positive frame rate, got {self.fps}")
        require(int(self.stride) >= 1, "stride", f"must be a positive number of frames, got {self.stride}")
        require(float(self.weight) >= 0.0, "weight", f"must be >= 0, got {self.weight}")

    def ranges(self) -> tuple[tuple[float, float], ...]:
        """(min, max) seconds per foreground class (ME, MaE)."""
        return (self.me_seconds, self.mae_seconds)  # type: ignore[return-value]


def weighted_mean(features: Tensor, weights: Tensor) -> Tensor:
    """[B, E]: features [B, T, E] averaged over time with weights [B, T] >= 0."""
    return torch.einsum("bt,bte->be", weights, features) / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)


def feature_consistency_loss(features: Tensor, attention: Tensor, tcam: Tensor, video_labels: Tensor, mask: Tensor, margin: float) -> Tensor:
    """The attention-guided feature consistency loss (module docstring); 0 (attached) when no two
    videos of the batch share a class."""
    real = mask.to(features.dtype)
    background = weighted_mean(features, (1.0 - attention) * real)
    terms: list[Tensor] = []
    for c in range(NUM_CLASSES):
        videos = torch.nonzero(video_labels[:, c] > 0).flatten()
        if videos.numel() < 2:
            continue
        fg = weighted_mean(features[videos], (attention * tcam[..., c] * real)[videos])
        bg = background[videos]
        distance = lambda x, y: 1.0 - F.cosine_similarity(x[:, None, :], y[None, :, :], dim=-1, eps=1e-8)  # noqa: E731
        d_ff, d_fb, d_bf = distance(fg, fg), distance(fg, bg), distance(bg, fg)
        pair = torch.triu(torch.ones_like(d_ff, dtype=torch.bool), diagonal=1)
        hinge = F.relu(d_ff - d_fb + margin) + F.relu(d_ff - d_bf + margin)
        terms.append(0.5 * hinge[pair])
    if not terms:
        return features.sum() * 0.0
    return torch.cat(terms).mean()


def soft_durations(activation: Tensor, mask: Tensor) -> Tensor:
    """[B, C]: the soft mean duration in snippets of activation [B, T, C] >= 0 (module docstring)."""
    a = activation * mask[..., None].to(activation.dtype)
    previous = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], dim=1)
    rises = F.relu(a - previous).sum(dim=1)
    return a.sum(dim=1) / rises.clamp(min=1e-6)


def duration_consistency_loss(tcam_suppressed: Tensor, video_labels: Tensor, mask: Tensor, config: DurationConsistencyConfig) -> Tensor:
    """The attention-guided duration consistency loss (module docstring); 0 (attached) for a batch
    without labelled classes."""
    seconds = soft_durations(tcam_suppressed[..., :NUM_CLASSES], mask.bool()) * (config.stride / config.fps)
    present = video_labels[:, :NUM_CLASSES] > 0
    if not bool(present.any()):
        return tcam_suppressed.sum() * 0.0
    penalties = []
    for c, (low, high) in enumerate(config.ranges()):
        log_d = torch.log(seconds[:, c].clamp(min=1e-6))
        penalty = F.relu(log_d - math.log(high))
        if low > 0:
            penalty = penalty + F.relu(math.log(low) - log_d)
        penalties.append(penalty)
    return torch.stack(penalties, dim=1)[present].mean()
