"""The PWES network (paper section 3.2): per stream an embedding with cross-modal saliency
compensation and a class-agnostic attention head, a fusion convolution giving the features F, a
classifier giving sigmoid TCAMs over (ME, MaE, background), and the two temporal top-k pooling
branches (plain, and suppressed by the attention).

Every temporal operation respects the padding mask: features are zeroed on padded snippets before
each convolution (so a real snippet next to padding sees exactly the zero padding it would see in an
unpadded video), means run over real snippets only and top-k pooling takes k from the real length.

The module also holds the small helpers the rest of ``pwes.model`` shares: masked temporal means
and masked top-k pooling (settings parsing is :mod:`pwes.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pwes.data.batch import NUM_CLASSES
from pwes.model.dropout import DROPOUT_IMPLS, make_dropout
from pwes.settings import require

BACKGROUND = NUM_CLASSES  # index of the background column in the C+1-class outputs
NUM_OUTPUTS = NUM_CLASSES + 1

def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Temporal mean over real snippets: [B, T, ...] and [B, T] bool -> [B, ...]."""
    weights = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - 2)))
    total = (values * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=1.0)
    return total / count


def topk_counts(lengths: Tensor, divisors: tuple[int, ...]) -> Tensor:
    """k of the top-k pooling per video and class: ``max(1, length // divisor)``, [B, len(divisors)]."""
    div = torch.tensor(divisors, device=lengths.device, dtype=torch.long)
    return torch.div(lengths[:, None], div[None], rounding_mode="floor").clamp(min=1)


TOPK_MODES = ("divisors", "points")


def masked_topk_mean(values: Tensor, mask: Tensor, k: Tensor) -> Tensor:
    """Mean of the k largest values over real snippets, per video and class.

    ``values`` [B, T, C], ``mask`` [B, T] bool, ``k`` [B, C] long (each at most the video's length)
    -> [B, C]. Padded snippets are never among the top k.
    """
    filled = values.masked_fill(~mask[..., None], float("-inf"))
    ordered, _ = filled.sort(dim=1, descending=True, stable=True)
    rank = torch.arange(values.shape[1], device=values.device)[None, :, None]
    take = rank < k[:, None, :]
    picked = torch.where(take, ordered, torch.zeros_like(ordered))
    return picked.sum(dim=1) / k.to(values.dtype)


INPUT_NORMS = ("none", "center", "standardize")


def normalize_per_video(x: Tensor, mask: Tensor, mode: str, eps: float = 1e-4) -> Tensor:
    """Per-video, per-channel normalisation over real snippets: ``center`` subtracts the temporal
    mean (the static face, which dominates I3D features), ``standardize`` also divides by the
    temporal std so the faint expression deviations reach unit scale. ``x`` [B, T, D]."""
    if mode == "none":
        return x
    mean = masked_mean(x, mask)[:, None, :]
    out = (x - mean) * mask[..., None].to(x.dtype)
    if mode == "standardize":
        std = masked_mean(out.pow(2), mask).clamp(min=eps * eps).sqrt()[:, None, :]
        out = out / std
    return out


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture settings (``model.network``); see conf/model/pwes.yaml for the chosen values."""

    stream_dim: int = 512  # width of each stream's embedding (the paper's streams keep 1024)
    fused_dim: int = 1024  # width of the fused features F (the paper's 2048)
    attention_dim: int = 256  # hidden width of each attention head
    kernel_size: int = 3  # temporal kernel of the embedding, compensation and attention convs
    fusion_kernel_size: int = 1  # temporal kernel of the fusion convolution
    dropout: float = 0.5
    dropout_impl: str = "fast"  # fast (uniform mask, pwes.model.dropout) | torch (nn.Dropout, the older random stream)
    negative_slope: float = 0.2  # LeakyReLU slope
    cross_modal: bool = True  # saliency compensation of each stream by the other one
    topk_divisors: tuple[int, ...] = (16, 8, 8)  # k = T // divisor for (ME, MaE, background)
    # points (ME/MaE k from the point counts) | divisors (k = T // divisor). A checkpoint saved
    # before the setting existed reads as divisors (PWESModule.on_load_checkpoint).
    topk: str = "points"
    topk_seconds: tuple[float, ...] = (0.3, 1.5)  # topk=points: typical ME, MaE duration in seconds
    topk_fps: float = 30.0  # topk=points: the dataset's frame rate (dataset.fps)
    topk_stride: int = 8  # topk=points: frames between consecutive snippets (dataset.stride)
    input_norm: str = "standardize"  # none | center | standardize: per-video normalisation of each stream

    def __post_init__(self) -> None:
        require(self.input_norm in INPUT_NORMS, "input_norm", f"must be one of {', '.join(INPUT_NORMS)}, got {self.input_norm!r}")
        for name in ("stream_dim", "fused_dim", "attention_dim"):
            require(int(getattr(self, name)) >= 1, name, f"must be a positive width, got {getattr(self, name)}")
        for name in ("kernel_size", "fusion_kernel_size"):
            value = int(getattr(self, name))
            require(value >= 1 and value % 2 == 1, name, f"must be an odd positive kernel size, got {value}")
        require(0.0 <= float(self.dropout) < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.dropout_impl in DROPOUT_IMPLS, "dropout_impl", f"must be one of {', '.join(DROPOUT_IMPLS)}, got {self.dropout_impl!r}")
        require(
            len(self.topk_divisors) == NUM_OUTPUTS and all(int(d) >= 1 for d in self.topk_divisors),
            "topk_divisors",
            f"needs {NUM_OUTPUTS} positive divisors (ME, MaE, background), got {list(self.topk_divisors)}",
        )
        object.__setattr__(self, "topk_divisors", tuple(int(d) for d in self.topk_divisors))
        require(self.topk in TOPK_MODES, "topk", f"must be one of {', '.join(TOPK_MODES)}, got {self.topk!r}")
        require(
            len(self.topk_seconds) == NUM_CLASSES and all(float(s) > 0 for s in self.topk_seconds),
            "topk_seconds",
            f"needs {NUM_CLASSES} positive durations in seconds (ME, MaE), got {list(self.topk_seconds)}",
        )
        object.__setattr__(self, "topk_seconds", tuple(float(s) for s in self.topk_seconds))
        require(float(self.topk_fps) > 0, "topk_fps", f"must be a positive frame rate, got {self.topk_fps}")
        require(int(self.topk_stride) >= 1, "topk_stride", f"must be a positive number of frames, got {self.topk_stride}")

    def typical_snippets(self) -> Tensor:
        """[C] float64: each class's typical length in snippets, ``seconds * fps / stride``."""
        return torch.tensor(self.topk_seconds, dtype=torch.float64) * float(self.topk_fps) / int(self.topk_stride)


@dataclass
class NetworkOutput:
    """What the network gives for a padded batch. Padded positions hold zeros."""

    attention_rgb: Tensor  # [B, T] class-agnostic attention of the RGB stream, in (0, 1)
    attention_flow: Tensor  # [B, T] same for the flow stream
    attention: Tensor  # [B, T] their mean: the foreground probability
    features: Tensor  # [B, T, E] fused features F
    tcam: Tensor  # [B, T, 3] sigmoid TCAM over (ME, MaE, background)
    tcam_suppressed: Tensor  # [B, T, 3] TCAM multiplied by the attention (branch 2)
    video_scores: Tensor  # [B, 3] branch 1: class-wise top-k mean of the TCAM
    video_scores_suppressed: Tensor  # [B, 3] branch 2: top-k mean of the suppressed TCAM
    mask: Tensor  # [B, T] bool, True on real snippets


class _MaskedConv(nn.Module):
    """Temporal convolution (channels-first) that zeroes padded snippets of its input first."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # x [B, D, T], mask [B, T]
        return self.conv(x * mask[:, None, :].to(x.dtype))


class SaliencyCompensation(nn.Module):
    """One stream's embedding, in the spirit of MC-WES's saliency compensation module.

    A temporal convolution embeds the stream; then a channel gate computed from the stream's
    global (masked mean) context times the other stream's local (convolved) context re-weights it,
    so each modality's salient channels are compensated by the other (as CO2-Net's consensus
    module, which MC-WES builds on). With ``cross_modal=False`` only the embedding is kept.
    """

    def __init__(self, in_dim: int, config: NetworkConfig) -> None:
        super().__init__()
        width, k = config.stream_dim, config.kernel_size
        self.embed = _MaskedConv(in_dim, width, k)
        self.cross_modal = config.cross_modal
        if self.cross_modal:
            self.global_context = nn.Linear(width, width)
            self.local_context = _MaskedConv(width, width, k)
        self.act = nn.LeakyReLU(config.negative_slope)
        self.dropout = make_dropout(config.dropout, config.dropout_impl)

    def embed_stream(self, x: Tensor, mask: Tensor) -> Tensor:
        """[B, D, T] snippet features -> [B, H, T] embedding (zero on padded snippets)."""
        return self.dropout(self.act(self.embed(x, mask))) * mask[:, None, :].to(x.dtype)

    def compensate(self, own: Tensor, other: Tensor, mask: Tensor) -> Tensor:
        """Gate this stream's embedding ``own`` with the other stream's embedding ``other``."""
        if not self.cross_modal:
            return own
        context = masked_mean(own.transpose(1, 2), mask)  # [B, H]
        global_gate = self.act(self.global_context(context))[:, :, None]  # [B, H, 1]
        local_gate = self.act(self.local_context(other, mask))  # [B, H, T]
        return torch.sigmoid(global_gate * local_gate) * own


class AttentionHead(nn.Module):
    """Class-agnostic attention of one stream: two temporal convolutions and a 1x1 to a sigmoid."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        width, hidden, k = config.stream_dim, config.attention_dim, config.kernel_size
        self.conv1 = _MaskedConv(width, hidden, k)
        self.conv2 = _MaskedConv(hidden, hidden, k)
        self.out = nn.Conv1d(hidden, 1, 1)
        self.act = nn.LeakyReLU(config.negative_slope)
        self.dropout = make_dropout(config.dropout, config.dropout_impl)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # [B, H, T] -> [B, T]
        h = self.dropout(self.act(self.conv1(x, mask)))
        h = self.act(self.conv2(h, mask))
        return torch.sigmoid(self.out(h)).squeeze(1) * mask.to(x.dtype)


class PWESNetwork(nn.Module):
    """Two-stream embedding, attention, fusion, TCAM and the two pooling branches (paper 3.2)."""

    def __init__(self, rgb_dim: int, flow_dim: int, config: NetworkConfig | None = None) -> None:
        super().__init__()
        require(int(rgb_dim) >= 1, "rgb_dim", f"must be a positive feature width, got {rgb_dim}")
        require(int(flow_dim) >= 1, "flow_dim", f"must be a positive feature width, got {flow_dim}")
        self.config = config or NetworkConfig()
        cfg = self.config
        self.rgb_dim, self.flow_dim = int(rgb_dim), int(flow_dim)
        self.rgb_stream = SaliencyCompensation(self.rgb_dim, cfg)
        self.flow_stream = SaliencyCompensation(self.flow_dim, cfg)
        self.rgb_attention = AttentionHead(cfg)
        self.flow_attention = AttentionHead(cfg)
        self.fusion = _MaskedConv(2 * cfg.stream_dim, cfg.fused_dim, cfg.fusion_kernel_size)
        self.fusion_act = nn.LeakyReLU(cfg.negative_slope)
        self.fusion_dropout = make_dropout(cfg.dropout, cfg.dropout_impl)
        self.classifier = nn.Conv1d(cfg.fused_dim, NUM_OUTPUTS, 1)

    @property
    def feature_dim(self) -> int:
        """Width E of the fused features F."""
        return self.config.fused_dim

    def _check_inputs(self, rgb: Tensor, flow: Tensor, mask: Tensor) -> None:
        if rgb.dim() != 3 or flow.dim() != 3 or mask.dim() != 2:
            raise ValueError(
                f"network input: expected rgb [B,T,D], flow [B,T,D], mask [B,T]; got "
                f"{tuple(rgb.shape)}, {tuple(flow.shape)}, {tuple(mask.shape)}"
            )
        if rgb.shape[:2] != mask.shape or flow.shape[:2] != mask.shape:
            raise ValueError(
                f"network input: rgb {tuple(rgb.shape)}, flow {tuple(flow.shape)} and mask "
                f"{tuple(mask.shape)} disagree on [B, T]"
            )
        if rgb.shape[2] != self.rgb_dim or flow.shape[2] != self.flow_dim:
            raise ValueError(
                f"network input: feature widths rgb={rgb.shape[2]}, flow={flow.shape[2]} but the model "
                f"was built for rgb={self.rgb_dim}, flow={self.flow_dim}"
            )

    def forward(self, rgb: Tensor, flow: Tensor, mask: Tensor, k: Tensor | None = None) -> NetworkOutput:
        """Run the network on a padded batch; see :class:`NetworkOutput`.

        ``k`` [B, C+1]: the top-k of the pooling per video and class (each clipped to 1 ..
        the video's length); None takes ``max(1, T // divisor)`` from ``topk_divisors``.
        """
        self._check_inputs(rgb, flow, mask)
        mask = mask.bool()
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            raise ValueError("network input: a video in the batch has no real snippets (mask all False)")
        if k is None:
            k = topk_counts(lengths, self.config.topk_divisors)
        else:
            if tuple(k.shape) != (mask.shape[0], NUM_OUTPUTS):
                raise ValueError(f"network input: k must have shape [B, {NUM_OUTPUTS}] = [{mask.shape[0]}, {NUM_OUTPUTS}], got {tuple(k.shape)}")
            k = torch.minimum(k.to(lengths.device).long().clamp(min=1), lengths[:, None])
        fmask = mask[:, None, :].to(rgb.dtype)
        rgb = normalize_per_video(rgb, mask, self.config.input_norm)
        flow = normalize_per_video(flow, mask, self.config.input_norm)

        rgb_emb = self.rgb_stream.embed_stream(rgb.transpose(1, 2), mask)
        flow_emb = self.flow_stream.embed_stream(flow.transpose(1, 2), mask)
        rgb_feat = self.rgb_stream.compensate(rgb_emb, flow_emb, mask)
        flow_feat = self.flow_stream.compensate(flow_emb, rgb_emb, mask)

        attention_rgb = self.rgb_attention(rgb_feat, mask)
        attention_flow = self.flow_attention(flow_feat, mask)
        attention = 0.5 * (attention_rgb + attention_flow)

        fused = self.fusion(torch.cat([rgb_feat, flow_feat], dim=1), mask)
        fused = self.fusion_dropout(self.fusion_act(fused)) * fmask  # [B, E, T]
        tcam = torch.sigmoid(self.classifier(fused)) * fmask  # [B, 3, T]

        features = fused.transpose(1, 2)
        tcam = tcam.transpose(1, 2)
        tcam_suppressed = tcam * attention[..., None]
        return NetworkOutput(
            attention_rgb=attention_rgb,
            attention_flow=attention_flow,
            attention=attention,
            features=features,
            tcam=tcam,
            tcam_suppressed=tcam_suppressed,
            video_scores=masked_topk_mean(tcam, mask, k),
            video_scores_suppressed=masked_topk_mean(tcam_suppressed, mask, k),
            mask=mask,
        )
