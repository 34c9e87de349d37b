"""Distribution-guided feature contrastive learning, DFCL (paper sections 3.4 and 3.5).

* The fused features F of a video are split by its snippet labels (pseudo labels plus point
  labels) into three sets: ME, MaE, background.
* Distribution-guided feature sampling (DFS): each set, in temporal order, is cut into a fixed
  number of equal-size regions (``RegionCounts``: 10/2/3 background/ME/MaE on CAS(ME)^2, 8/2/3 on
  SAMM-LV) and each region is averaged into one region-level vector. A set with fewer snippets
  than regions repeats snippets (region j takes snippet ``floor(j * n / N)``), so every video that
  has a class contributes the same number of vectors; a class without snippets contributes none.
* Main region-level space (``main_region``, on by default): the paper treats "all feature set for
  the c-th class as a main region-level space" to preserve each video's global representation;
  read here as one more vector per class, the mean of the whole set, beside the N sampled ones.
* The foreground region vectors are anchors of an InfoNCE loss against the memory bank: positives
  are stored vectors of the same class, negatives those of the other foreground class and of the
  background; vectors are L2-normalised, temperature tau (1.0)::

      L(v) = -1/|P| sum_{p in P} log( exp(v.p/tau) / (exp(v.p/tau) + sum_{n in N} exp(v.n/tau)) )

  averaged over the anchors that have at least one positive. The batch's vectors are enqueued
  after the loss is computed (an anchor never meets itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pwes.config import ConfigError
from pwes.data.batch import NUM_CLASSES
from pwes.model.network import NUM_OUTPUTS
from pwes.settings import require


@dataclass(frozen=True)
class DFCLConfig:
    """DFCL settings (``callbacks.dfcl``)."""

    temperature: float = 1.0  # tau (Table VI)
    bank_videos: int = 128  # queue length per class = bank_videos x that class's vectors per video
    main_region: bool = True  # one whole-set vector per class besides the sampled regions
    weight: float = 0.1  # weight of the contrastive term in the joint loss (eq. 18)

    def __post_init__(self) -> None:
        require(float(self.temperature) > 0.0, "temperature", f"must be > 0, got {self.temperature}")
        require(int(self.bank_videos) >= 1, "bank_videos", f"must be >= 1, got {self.bank_videos}")
        require(float(self.weight) >= 0.0, "weight", f"must be >= 0, got {self.weight}")


@dataclass(frozen=True)
class RegionCounts:
    """Region-level vectors per video and class (``dataset.regions``)."""

    me: int = 2
    mae: int = 3
    background: int = 10

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "dataset.regions") -> "RegionCounts":
        """From ``{background: 10, me: 2, mae: 3}``; unknown keys or non-positive counts fail."""
        if values is None:
            return cls()
        if isinstance(values, cls):
            return values
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: expected a mapping like {{background: 10, me: 2, mae: 3}}, got {values!r}")
        unknown = sorted(str(k) for k in values if k not in ("me", "mae", "background"))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: background, me, mae)")
        counts = {}
        for key in ("me", "mae", "background"):
            value = values.get(key, getattr(cls(), key))
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{key}: must be a positive whole number, got {value!r}")
            counts[key] = int(value)
        return cls(**counts)

    def as_tuple(self) -> tuple[int, int, int]:
        """Counts in class-index order (ME, MaE, background)."""
        return (self.me, self.mae, self.background)

    def per_video(self, main_region: bool) -> tuple[int, int, int]:
        """Vectors per video and class (ME, MaE, background), the main region included."""
        return tuple(n + int(main_region) for n in self.as_tuple())  # type: ignore[return-value]

    def as_dict(self) -> dict[str, int]:
        """Plain dict in the ``dataset.regions`` layout."""
        return {"background": self.background, "me": self.me, "mae": self.mae}


@dataclass
class RegionVectors:
    """Region-level vectors of a batch in a fixed slot layout: ME slots, then MaE, then background."""

    vectors: Tensor  # [B, R, E] (R = total regions per video)
    classes: Tensor  # [R] long, class index of each slot
    valid: Tensor  # [B, R] bool: the video has snippets of that slot's class

    def flatten(self) -> tuple[Tensor, Tensor]:
        """The valid vectors [N, E] and their classes [N], video by video."""
        classes = self.classes[None].expand_as(self.valid)
        return self.vectors[self.valid], classes[self.valid]


def sample_region_vectors(
    features: Tensor, labels: Tensor, counts: RegionCounts, main_region: bool = False
) -> RegionVectors:
    """DFS: region-level vectors from ``features`` [B, T, E] and ``labels`` [B, T, 3] bool (False
    on padded snippets), ``counts`` regions per class, plus with ``main_region`` one whole-set
    vector per class after that class's regions. See the module docstring."""
    if labels.shape[:2] != features.shape[:2] or labels.shape[-1] != NUM_OUTPUTS:
        raise ValueError(
            f"region sampling: labels {tuple(labels.shape)} do not match features {tuple(features.shape)} "
            f"with {NUM_OUTPUTS} classes"
        )
    vectors, classes, valid = [], [], []
    for c, regions in enumerate(counts.as_tuple()):
        selected = labels[..., c].bool()  # [B, T]
        n = selected.sum(dim=1)  # [B]
        rank = torch.cumsum(selected.long(), dim=1) - 1  # position of each selected snippet in its set
        j = torch.arange(regions, device=features.device)
        start = torch.div(j[None] * n[:, None], regions, rounding_mode="floor")  # [B, N]
        end = torch.maximum(torch.div((j[None] + 1) * n[:, None], regions, rounding_mode="floor"), start + 1)
        member = (
            selected[:, None, :]
            & (rank[:, None, :] >= start[..., None])
            & (rank[:, None, :] < end[..., None])
        )  # [B, N, T]
        if main_region:
            member = torch.cat([member, selected[:, None, :]], dim=1)  # [B, N+1, T]
            regions += 1
        weights = member.to(features.dtype)
        size = weights.sum(dim=-1, keepdim=True).clamp(min=1.0)
        vectors.append(torch.bmm(weights, features) / size)
        classes.append(torch.full((regions,), c, dtype=torch.long, device=features.device))
        valid.append((n > 0)[:, None].expand(-1, regions))
    return RegionVectors(torch.cat(vectors, dim=1), torch.cat(classes), torch.cat(valid, dim=1))


def info_nce(
    anchors: Tensor,
    anchor_classes: Tensor,
    keys: Tensor,
    key_classes: Tensor,
    temperature: float = 1.0,
) -> Tensor:
    """The feature contrastive loss (paper eq. 17) of ``anchors`` [N, E] against ``keys`` [M, E].

    Positives of an anchor: keys of its class. Negatives: keys of every other class (the other
    foreground class and the background). Vectors are L2-normalised here. Anchors without any
    positive are skipped; with none left the loss is a zero that keeps the graph.
    """
    zero = anchors.sum() * 0.0
    if anchors.shape[0] == 0 or keys.shape[0] == 0:
        return zero
    a = F.normalize(anchors, dim=-1)
    k = F.normalize(keys.to(anchors.dtype), dim=-1)
    logits = a @ k.T / temperature  # [N, M]
    positive = anchor_classes[:, None] == key_classes[None, :]
    negative_lse = torch.logsumexp(logits.masked_fill(positive, float("-inf")), dim=1, keepdim=True)
    per_pair = torch.logaddexp(logits, negative_lse.expand_as(logits)) - logits  # -log softmax vs negatives
    per_pair = torch.where(positive, per_pair, torch.zeros_like(per_pair))
    n_pos = positive.sum(dim=1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return zero
    per_anchor = per_pair.sum(dim=1)[has_pos] / n_pos[has_pos].to(per_pair.dtype)
    return per_anchor.mean()


def contrastive_anchors(regions: RegionVectors) -> tuple[Tensor, Tensor]:
    """The foreground (ME and MaE) region vectors [N, E] of a batch and their classes [N]."""
    vectors, classes = regions.flatten()
    keep = classes < NUM_CLASSES
    return vectors[keep], classes[keep]

