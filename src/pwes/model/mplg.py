"""Multi-refined pseudo label generation, MPLG (paper section 3.3, Algorithm 1), and its
Table II ablation variants.

The seven steps, per video, vectorised over the batch (padded snippets never take part):

1. Foreground similarity: the cosine similarity of every snippet's fused feature to each
   point-labelled snippet's feature; its maximum over the points is min-max normalised to [0, 1]
   over the video's real snippets (so the labelled snippets get exactly 1) and multiplies the
   attention: the *refined attention*. A video without points keeps its attention.
2. Coarse mask: the ``floor(top_ratio * T)`` snippets with the highest refined attention.
3. Class similarity: the cosine similarity of every snippet to the mean feature of each class's
   point-labelled snippets, through a softmax over the classes present in the video's points (at
   temperature ``class_temperature``), re-weights the foreground TCAM columns. A class absent from
   the points gets weight 0 (so the only present class of a one-class video gets 1.0, as the paper
   says). ``class_weights``: ``softmax`` is the paper's plain softmax (default, temperature 1);
   ``max_normalised`` divides the weights by their per-snippet maximum so the leading class keeps
   weight 1 (the earlier reading, used with temperature 0.1: without it a two-class softmax caps
   the refined score near 0.5, below theta). Refined scores = coarse mask x class weights x TCAM.
4. Refined scores below the video's mean TCAM score of that class (original TCAM) are dropped.
5. A snippet whose refined score exceeds ``threshold`` (theta) becomes a pseudo foreground label of
   that class (the larger one where both classes pass: labels are one-hot).
6. Pseudo background by the *original* attention (``background``): ``lowest_0.6T`` (default,
   the paper's 4.4.3 reading) takes the ``background_multiplier x floor(top_ratio * T)``
   snippets with the lowest attention (twice the foreground pool: the lowest 0.6 of T), then
   drops those with a point or pseudo foreground label; ``twice_foreground`` (3.3 (6) read as
   "twice the positive samples") takes ``max(background_min, floor(background_multiplier x
   n_fg))`` snippets, n_fg the video's pseudo foreground snippets of step 5, ranked by lowest
   attention among the snippets with neither label (so exactly that many, or all of them when
   fewer remain). A video without pseudo foreground gets ``background_min`` (1).
7. Foreground and background labels are returned together with the class weights (the
   re-modulated TCAM of step 3 feeds the snippet-level loss).

How the step-3 weights and the coarse mask enter the snippet loss (:func:`loss_class_weights`,
the ``class_weights`` of the callback's targets, multiplying the foreground TCAM columns of every
labelled snippet except the point-labelled ones): ``weights_in_loss=true`` (default, as the code
always did) multiplies by the class weights, so a class absent from the video's points has
probability 0 there (no negatives for it) and a positive target is capped at its weight;
``false`` uses the weights only to *select* labels (steps 3-5) and trains the plain TCAM.
``coarse_mask_in_loss=true`` also multiplies by the coarse mask M (eq. 3), as eq. 6 writes the
modulated TCAM (W x M x TCAM): pseudo background outside M then gives its foreground columns
probability 0 (no foreground negatives; only the background column learns there), pseudo
foreground always lies inside M. Default false (the code's reading so far).

The inputs are the outputs of a clean forward (eval mode, no gradient): the MPLG callback
(``pwes.callbacks.mplg``) runs one per batch, so dropout never perturbs the ranking.

Table II variants (flags of :class:`MPLGConfig`; conf/model/mplg/*.yaml):

=========  ===============  ======================  ================
variant    attention_mask   foreground_similarity   class_similarity
=========  ===============  ======================  ================
c          no               no                      no
ca         yes              no                      no
caf1       yes              yes                     no
caf2       yes              no                      yes
full       yes              yes                     yes
=========  ===============  ======================  ================

``c`` thresholds the class probabilities alone (inside the video's classes); ``ca`` restricts that
to the top attention; ``caf1`` ranks by the refined attention of step 1; ``caf2`` re-weights the
class scores by the class similarity of step 3; ``full`` does both. Steps 4 and 6 are common to
every variant (the paper varies how foreground labels are found, not the background rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pwes.data.batch import NUM_CLASSES
from pwes.model.network import masked_mean
from pwes.settings import require

MPLG_VARIANTS: dict[str, dict[str, bool]] = {
    "c": {"attention_mask": False, "foreground_similarity": False, "class_similarity": False},
    "ca": {"attention_mask": True, "foreground_similarity": False, "class_similarity": False},
    "caf1": {"attention_mask": True, "foreground_similarity": True, "class_similarity": False},
    "caf2": {"attention_mask": True, "foreground_similarity": False, "class_similarity": True},
    "full": {"attention_mask": True, "foreground_similarity": True, "class_similarity": True},
}
"""The flags of each Table II variant (``callbacks.mplg.variant`` picks one)."""

CLASS_WEIGHT_MODES = ("softmax", "max_normalised")
BACKGROUND_RULES = ("lowest_0.6T", "twice_foreground")


@dataclass(frozen=True)
class MPLGConfig:
    """MPLG settings (``callbacks.mplg``)."""

    name: str = "full"  # which Table II variant these flags spell (for logs only)
    attention_mask: bool = True  # step 2: restrict candidates to the top attention snippets
    foreground_similarity: bool = True  # step 1: rank by attention x point similarity
    class_similarity: bool = True  # step 3: re-weight TCAMs by class-level similarity
    drop_below_mean: bool = True  # step 4
    top_ratio: float = 0.3  # step 2: coarse foreground pool, a fraction of T (paper: <= 0.3)
    threshold: float = 0.8  # step 5: theta
    background_multiplier: float = 2.0  # step 6: background pool = multiplier x foreground pool
    class_temperature: float = 1.0  # step 3: softmax temperature over cosine similarities
    class_weights: str = "softmax"  # step 3: softmax (paper) | max_normalised (divided by the max)
    weights_in_loss: bool = True  # step 3's weights scale the loss's foreground TCAM (or only select)
    coarse_mask_in_loss: bool = False  # eq. 6: the coarse mask M also scales it
    background: str = "lowest_0.6T"  # step 6: lowest_0.6T | twice_foreground
    background_min: int = 1  # twice_foreground: background snippets per video at least

    def __post_init__(self) -> None:
        require(0.0 < float(self.top_ratio) <= 1.0, "top_ratio", f"must be in (0, 1], got {self.top_ratio}")
        require(0.0 <= float(self.threshold) < 1.0, "threshold", f"must be in [0, 1), got {self.threshold}")
        require(
            float(self.background_multiplier) >= 0.0,
            "background_multiplier",
            f"must be >= 0, got {self.background_multiplier}",
        )
        require(
            float(self.top_ratio) * (1.0 + float(self.background_multiplier)) <= 1.0 + 1e-9,
            "top_ratio",
            f"{self.top_ratio} with background_multiplier {self.background_multiplier} would make the "
            "foreground and background pools overlap (need top_ratio * (1 + multiplier) <= 1)",
        )
        require(float(self.class_temperature) > 0.0, "class_temperature", f"must be > 0, got {self.class_temperature}")
        require(
            self.class_weights in CLASS_WEIGHT_MODES,
            "class_weights",
            f"must be one of {', '.join(CLASS_WEIGHT_MODES)}, got {self.class_weights!r}",
        )
        require(self.background in BACKGROUND_RULES, "background", f"must be one of {', '.join(BACKGROUND_RULES)}, got {self.background!r}")
        require(int(self.background_min) >= 0, "background_min", f"must be >= 0, got {self.background_min}")
        require(
            self.attention_mask or not self.foreground_similarity,
            "foreground_similarity",
            "refines the attention mask, so it needs attention_mask: true",
        )


@dataclass
class PseudoLabels:
    """Pseudo labels for a padded batch (all False on padded snippets)."""

    foreground: Tensor  # [B, T, C] bool, one-hot per snippet or all False
    background: Tensor  # [B, T] bool
    class_weights: Tensor  # [B, T, C] float: weights of the foreground TCAM columns (step 3)
    refined_attention: Tensor  # [B, T] attention after step 1
    coarse_mask: Tensor  # [B, T] bool, step 2


def masked_ranks(values: Tensor, mask: Tensor, descending: bool) -> Tensor:
    """Rank of every snippet among the real snippets of its video (0 = first), [B, T] long.

    Ties keep temporal order (stable sort); padded snippets rank after every real one.
    """
    fill = float("-inf") if descending else float("inf")
    order = torch.argsort(values.masked_fill(~mask, fill), dim=1, descending=descending, stable=True)
    positions = torch.arange(values.shape[1], device=values.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def pool_sizes(lengths: Tensor, top_ratio: float, background_multiplier: float) -> tuple[Tensor, Tensor]:
    """Foreground pool ``max(1, floor(ratio * T))`` and background pool (multiplier x that,
    at most the rest of the video) per video, both [B] long."""
    fg = torch.floor(lengths.double() * top_ratio + 1e-9).long().clamp(min=1)
    fg = torch.minimum(fg, lengths)
    bg = torch.floor(fg.double() * background_multiplier + 1e-9).long()
    bg = torch.minimum(bg, lengths - fg)
    return fg, bg


def point_mask(points: Tensor, mask: Tensor) -> Tensor:
    """[B, T] bool: snippets carrying a point label of any class."""
    return (points > 0).any(dim=-1) & mask


def classes_present(points: Tensor, mask: Tensor) -> Tensor:
    """[B, C] bool: classes with at least one point label in the video."""
    return ((points > 0) & mask[..., None]).any(dim=1)


def foreground_similarity(features: Tensor, points: Tensor, mask: Tensor) -> Tensor:
    """Step 1's modulation factor in [0, 1], [B, T].

    Maximum cosine similarity of each snippet to the video's point-labelled snippets, min-max
    normalised over the real snippets; the labelled snippets are 1. Videos without points (or
    with a constant similarity) get 1 everywhere, so their attention is left as it is.
    """
    labelled = point_mask(points, mask)
    max_points = int(labelled.sum(dim=1).max()) if labelled.numel() else 0
    if max_points == 0:
        return mask.to(features.dtype)
    normed = F.normalize(features, dim=-1)
    # gather each video's labelled snippets to the front: [B, P, E] plus their validity
    order = torch.argsort(labelled.to(torch.int8), dim=1, descending=True, stable=True)[:, :max_points]
    point_valid = torch.gather(labelled, 1, order)
    point_feats = torch.gather(normed, 1, order[..., None].expand(-1, -1, normed.shape[-1]))
    sim = torch.einsum("bte,bpe->btp", normed, point_feats)
    sim = sim.masked_fill(~point_valid[:, None, :], float("-inf")).amax(dim=-1)  # [B, T]
    has_points = point_valid.any(dim=1)
    sim = torch.where(has_points[:, None] & mask, sim, torch.zeros_like(sim))
    low = sim.masked_fill(~mask, float("inf")).amin(dim=1, keepdim=True)
    high = sim.masked_fill(~mask, float("-inf")).amax(dim=1, keepdim=True)
    spread = high - low
    scaled = (sim - low) / spread.clamp(min=1e-12)
    scaled = torch.where((spread > 1e-12) & has_points[:, None], scaled, torch.ones_like(scaled))
    scaled = torch.where(labelled, torch.ones_like(scaled), scaled.clamp(0.0, 1.0))
    return scaled * mask.to(features.dtype)


def class_weights(
    features: Tensor, points: Tensor, mask: Tensor, temperature: float, mode: str = "softmax"
) -> Tensor:
    """Step 3's weights of the foreground classes, [B, T, C].

    Softmax over the present classes of (cosine similarity to the class's mean point feature) /
    temperature; absent classes get 0. ``mode="max_normalised"`` then divides by the per-snippet
    maximum.
    """
    point_w = (points > 0).to(features.dtype) * mask[..., None].to(features.dtype)  # [B, T, C]
    counts = point_w.sum(dim=1)  # [B, C]
    present = counts > 0
    means = torch.einsum("btc,bte->bce", point_w, features) / counts.clamp(min=1.0)[..., None]
    sim = torch.einsum("bte,bce->btc", F.normalize(features, dim=-1), F.normalize(means, dim=-1))
    logits = (sim / temperature).masked_fill(~present[:, None, :], float("-inf"))
    any_present = present.any(dim=1)[:, None, None]
    weights = torch.softmax(torch.where(any_present, logits, torch.zeros_like(logits)), dim=-1)
    weights = torch.where(any_present & present[:, None, :], weights, torch.zeros_like(weights))
    if mode == "max_normalised":
        weights = weights / weights.amax(dim=-1, keepdim=True).clamp(min=1e-12)
    return weights * mask[..., None].to(features.dtype)


def one_hot_foreground(scores: Tensor, candidates: Tensor) -> Tensor:
    """Keep, per snippet, only the candidate class with the largest score: [B, T, C] bool."""
    best = scores.masked_fill(~candidates, float("-inf")).argmax(dim=-1)
    return F.one_hot(best, candidates.shape[-1]).bool() & candidates.any(dim=-1, keepdim=True)


def lowest_attention_background(
    attention: Tensor, mask: Tensor, count: Tensor, exclude: Tensor
) -> Tensor:
    """Step 6: the ``count`` [B] snippets of lowest attention, minus ``exclude`` [B, T]."""
    ranks = masked_ranks(attention, mask, descending=False)
    return (ranks < count[:, None]) & mask & ~exclude


def twice_foreground_background(
    attention: Tensor, mask: Tensor, foreground: Tensor, exclude: Tensor, multiplier: float, minimum: int
) -> Tensor:
    """Step 6, ``twice_foreground``: per video ``max(minimum, floor(multiplier x n_fg))`` snippets
    of lowest attention among those not in ``exclude`` [B, T] (n_fg: snippets of ``foreground``
    [B, T, C] with any class), or all of them when fewer remain."""
    n_fg = foreground.any(dim=-1).sum(dim=1)
    count = torch.floor(n_fg.double() * multiplier + 1e-9).long().clamp(min=int(minimum))
    eligible = mask & ~exclude
    ranks = masked_ranks(attention, eligible, descending=False)
    return (ranks < count[:, None]) & eligible


def background_labels(
    rule: str, attention: Tensor, mask: Tensor, foreground: Tensor, labelled: Tensor, pool: Tensor, multiplier: float, minimum: int
) -> Tensor:
    """Step 6 by ``rule`` (module docstring): ``pool`` [B] is the ``lowest_0.6T`` count; the
    pseudo ``foreground`` [B, T, C] and point-``labelled`` [B, T] snippets are never background."""
    exclude = foreground.any(dim=-1) | labelled
    if rule == "lowest_0.6T":
        return lowest_attention_background(attention, mask, pool, exclude)
    if rule == "twice_foreground":
        return twice_foreground_background(attention, mask, foreground, exclude, multiplier, minimum)
    raise ValueError(f"background rule {rule!r} is not one of {', '.join(BACKGROUND_RULES)}")


def loss_class_weights(labels: "PseudoLabels", config: MPLGConfig) -> Tensor | None:
    """What multiplies the foreground TCAM columns in the snippet loss (module docstring): the
    class weights when the variant uses them and ``weights_in_loss``, times the coarse mask with
    ``coarse_mask_in_loss``; None when neither applies (the plain TCAM)."""
    weights = labels.class_weights if (config.class_similarity and config.weights_in_loss) else None
    if config.coarse_mask_in_loss:
        coarse = labels.coarse_mask[..., None].to(labels.class_weights.dtype)
        weights = coarse.expand_as(labels.class_weights) if weights is None else weights * coarse
    return weights


@torch.no_grad()
def generate_mplg(
    features: Tensor,
    attention: Tensor,
    tcam: Tensor,
    points: Tensor,
    mask: Tensor,
    config: MPLGConfig | None = None,
) -> PseudoLabels:
    """Pseudo labels by MPLG (steps 1-7 above) for a padded batch.

    ``features`` [B, T, E] fused F, ``attention`` [B, T], ``tcam`` [B, T, C+1] sigmoid TCAM,
    ``points`` [B, T, C] (1 at point labels), ``mask`` [B, T] bool. Inputs are detached.
    """
    cfg = config or MPLGConfig()
    features, attention, tcam = features.detach().float(), attention.detach().float(), tcam.detach().float()
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    fg_tcam = tcam[..., :NUM_CLASSES]
    present = classes_present(points, mask)
    labelled = point_mask(points, mask)
    fg_pool, bg_pool = pool_sizes(lengths, cfg.top_ratio, cfg.background_multiplier)

    if cfg.foreground_similarity:  # step 1
        refined = attention * foreground_similarity(features, points, mask)
    else:
        refined = attention * mask.float()
    if cfg.attention_mask:  # step 2
        coarse = (masked_ranks(refined, mask, descending=True) < fg_pool[:, None]) & mask
    else:
        coarse = mask.clone()
    if cfg.class_similarity:  # step 3
        weights = class_weights(features, points, mask, cfg.class_temperature, cfg.class_weights)
    else:
        weights = present[:, None, :].float().expand_as(fg_tcam) * mask[..., None].float()
    scores = fg_tcam * weights * coarse[..., None].float()

    candidates = coarse[..., None] & present[:, None, :] & mask[..., None]
    if cfg.drop_below_mean:  # step 4
        candidates &= scores >= masked_mean(fg_tcam, mask)[:, None, :]
    candidates &= scores > cfg.threshold  # step 5
    foreground = one_hot_foreground(scores, candidates)

    background = background_labels(  # step 6
        cfg.background, attention, mask, foreground, labelled, bg_pool, cfg.background_multiplier, cfg.background_min
    )
    return PseudoLabels(
        foreground=foreground,
        background=background,
        class_weights=weights,
        refined_attention=refined,
        coarse_mask=coarse,
    )
