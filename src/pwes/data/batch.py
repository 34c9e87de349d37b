"""A padded batch of variable-length videos. Padding is decided once, in :func:`collate`, and the
boolean ``mask`` (``arange(T)[None] < lengths[:, None]``) travels with every tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

NUM_CLASSES = 2  # ME, MaE; the TCAM adds background as index NUM_CLASSES


@dataclass
class VideoItem:
    """One video as the dataset yields it."""

    name: str
    subject: str
    rgb: Tensor  # [T, D_rgb] float32
    flow: Tensor  # [T, D_flow] float32
    video_label: Tensor  # [C] float: 1 where the video holds an expression of that class
    points: Tensor  # [T, C] float: 1 at the snippet of each point label, of its class
    num_frames: int = 0
    fps: float = 0.0
    # [T, C] float: 1 where the snippet lies in an annotated interval of that class. Only under
    # model.supervision=full; None otherwise, so weak training never holds onset/offset.
    intervals: Tensor | None = None


@dataclass
class Batch:
    """Padded batch: [B, T, ...] tensors plus the mask of real snippets."""

    rgb: Tensor  # [B, T, D_rgb]
    flow: Tensor  # [B, T, D_flow]
    mask: Tensor  # [B, T] bool, True on real snippets
    lengths: Tensor  # [B] long
    video_labels: Tensor  # [B, C]
    points: Tensor  # [B, T, C]
    videos: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    num_frames: list[int] = field(default_factory=list)
    fps: list[float] = field(default_factory=list)
    intervals: Tensor | None = None  # [B, T, C] interval labels (full supervision only)

    def to(self, device: torch.device | str) -> "Batch":
        """The batch with every tensor moved to ``device``."""
        return replace(
            self,
            rgb=self.rgb.to(device),
            flow=self.flow.to(device),
            mask=self.mask.to(device),
            lengths=self.lengths.to(device),
            video_labels=self.video_labels.to(device),
            points=self.points.to(device),
            intervals=None if self.intervals is None else self.intervals.to(device),
        )

    def __len__(self) -> int:
        return self.rgb.shape[0]


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """[B] lengths -> [B, T] bool mask, True on real snippets."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None] < lengths[:, None]


def collate(items: Sequence[VideoItem]) -> Batch:
    """Pad a list of videos to the longest one; padded rows are zero and masked out."""
    lengths = torch.tensor([item.rgb.shape[0] for item in items], dtype=torch.long)
    max_len = int(lengths.max())

    def pad(tensors: list[Tensor]) -> Tensor:
        out = tensors[0].new_zeros((len(tensors), max_len, *tensors[0].shape[1:]))
        for i, t in enumerate(tensors):
            out[i, : t.shape[0]] = t
        return out

    return Batch(
        rgb=pad([i.rgb for i in items]),
        flow=pad([i.flow for i in items]),
        mask=lengths_to_mask(lengths, max_len),
        lengths=lengths,
        video_labels=torch.stack([i.video_label for i in items]),
        points=pad([i.points for i in items]),
        videos=[i.name for i in items],
        subjects=[i.subject for i in items],
        num_frames=[i.num_frames for i in items],
        fps=[i.fps for i in items],
        intervals=pad([i.intervals for i in items]) if all(i.intervals is not None for i in items) else None,
    )
