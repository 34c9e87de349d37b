"""Point labels: one frame per ground-truth interval, the only supervision PWES trains with
(and, for the full-supervision reference only, the snippets of the whole intervals).

``random`` draws the frame uniformly inside [onset, offset] (the paper's "arbitrary single frame");
``apex`` takes the annotated apex (Table VIII) and falls back to the interval's middle frame when
the apex is unknown. The draw for a video depends only on (seed, video id), never on the order in
which videos are visited, so every fold and every run sees the same points.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pwes.data.layout import Interval

POINT_MODES = ("random", "apex")


@dataclass(frozen=True)
class PointLabel:
    """One labelled frame and the class of the interval it was drawn from."""

    frame: int
    label: int  # 0 = ME, 1 = MaE
    apex_fallback: bool = False  # True when ``apex`` mode had no apex and used the middle frame


def sample_points(video: str, intervals: Sequence[Interval], mode: str = "random", seed: int = 0) -> list[PointLabel]:
    """One point label per interval of ``video``, reproducible from ``seed`` and the video id."""
    if mode not in POINT_MODES:
        raise ValueError(f"points.mode must be one of {', '.join(POINT_MODES)}, got {mode!r}")
    rng = np.random.default_rng([seed, zlib.crc32(video.encode("utf-8"))])
    points = []
    for interval in intervals:
        if mode == "random":
            frame = int(rng.integers(interval.onset, interval.offset + 1))
            points.append(PointLabel(frame, interval.label))
        elif interval.apex is not None:
            points.append(PointLabel(interval.apex, interval.label))
        else:
            points.append(PointLabel((interval.onset + interval.offset) // 2, interval.label, apex_fallback=True))
    return points


def frame_to_snippet(frame: int, snippet_length: int, stride: int, num_snippets: int) -> int:
    """The snippet whose centre is nearest to ``frame`` (snippet t covers [t*stride, t*stride+length))."""
    centre_offset = (snippet_length - 1) / 2
    t = int(np.floor((frame - centre_offset) / stride + 0.5))
    return min(max(t, 0), num_snippets - 1)


def snippet_points(points: Sequence[PointLabel], num_snippets: int, snippet_length: int, stride: int, num_classes: int = 2) -> np.ndarray:
    """[T, C] float32 array with 1 at each point's snippet in its class column.

    Two points of different classes in one snippet set both columns: the snippet is positive for
    both (multi-label; see ``pwes.model.targets``). Two of the same class collapse into one 1.
    """
    out = np.zeros((num_snippets, num_classes), dtype=np.float32)
    for point in points:
        out[frame_to_snippet(point.frame, snippet_length, stride, num_snippets), point.label] = 1.0
    return out


def snippet_intervals(intervals: Sequence[Interval], num_snippets: int, snippet_length: int, stride: int, num_classes: int = 2) -> np.ndarray:
    """[T, C] float32: 1 where a snippet's centre frame lies in an interval of that class, plus
    the snippet nearest the interval's middle (so a interval shorter than a snippet still counts).

    For ``model.supervision=full`` only: the whole annotated intervals as snippet labels.
    """
    out = np.zeros((num_snippets, num_classes), dtype=np.float32)
    centres = np.arange(num_snippets) * stride + (snippet_length - 1) / 2
    for interval in intervals:
        inside = (centres >= interval.onset) & (centres <= interval.offset)
        out[inside, interval.label] = 1.0
        middle = frame_to_snippet((interval.onset + interval.offset) // 2, snippet_length, stride, num_snippets)
        out[middle, interval.label] = 1.0
    return out


def video_label(intervals: Sequence[Interval], num_classes: int = 2) -> np.ndarray:
    """[C] float32 multi-hot: which expression classes occur in the video."""
    out = np.zeros(num_classes, dtype=np.float32)
    for interval in intervals:
        out[interval.label] = 1.0
    return out
