"""The PNG of one video, written by ``pwes.spot`` per input and by the W&B dashboard for a few
test videos per fold (pwes.dashboard): attention and class activations over time, the spotted
intervals shaded and labelled with type and score where a label fits, the annotated intervals
(when the input's feature set has them) as a band along the bottom in their type's colour, the
legend below the axes (never over the curves), and, in the title, the score threshold that kept
or hid the intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pwes import io
from pwes.data.layout import Interval
from pwes.inference.proposals import Proposal


class PlotVideo(Protocol):
    """What a plot needs of its video (``pwes.spot.SpotInput`` and :class:`VideoFacts` have it)."""

    name: str
    num_frames: int
    fps: float
    annotated: Sequence[Interval] | None


@dataclass(frozen=True)
class VideoFacts:
    """A video of a feature set as a plot needs it: name, length, frame rate, its intervals."""

    name: str
    num_frames: int
    fps: float
    annotated: Sequence[Interval] | None = None

COLORS = {"ME": "tab:red", "MaE": "tab:blue"}
SPOTTED_ALPHA, ANNOTATED_ALPHA = 0.2, 0.9  # the legend's swatches use the same as the shading


@dataclass(frozen=True)
class Threshold:
    """The score threshold applied, where it came from, and how many proposals it hid."""

    value: float
    source: str  # "set by --threshold" or "calibrated on the training videos' point labels"
    hidden: int = 0


def title_text(name: str, shown: int, labelled: int, threshold: Threshold | None) -> str:
    """The plot's title: how many intervals, which labels fit, and the threshold that kept them
    (when none is shown: that it hid them all, or that the model proposed none)."""
    cut = threshold is not None and np.isfinite(threshold.value)
    where = f"threshold {threshold.source}" if threshold is not None else ""
    if shown == 0:
        if cut and threshold.hidden:
            return f"{name}: no interval: all {threshold.hidden} proposal(s) score below {threshold.value:.3g} ({where})"
        return f"{name}: no interval: the model proposed none"
    text = f"{name}: {shown} interval(s)"
    if cut:
        hidden = f"; {threshold.hidden} below it hidden" if threshold.hidden else ""
        text += f" scoring >= {threshold.value:.3g} ({where}{hidden})"
    elif threshold is not None:
        text += " (no score threshold: every proposal kept)"
    if labelled < shown:
        text += f", the {labelled} best-scoring labels that fit shown"
    return text


def plot(path: Path, item: PlotVideo, prediction: Any, proposals: list[Proposal], stride: int, snippet: int, threshold: Threshold | None = None) -> None:
    """Write the PNG of one input (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    t = (np.arange(len(prediction.attention)) * stride + (snippet - 1) / 2) / item.fps
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(t, prediction.attention, color="black", lw=1.2, label="attention")
    ax.plot(t, prediction.tcam[:, 0], color=COLORS["ME"], lw=0.8, alpha=0.7, label="ME activation")
    ax.plot(t, prediction.tcam[:, 1], color=COLORS["MaE"], lw=0.8, alpha=0.7, label="MaE activation")
    for p in proposals:
        ax.axvspan(p.onset / item.fps, (p.offset + 1) / item.fps, ymin=0.1, color=COLORS.get(p.type, "gray"), alpha=SPOTTED_ALPHA, lw=0)
    handles = [Patch(color=c, alpha=SPOTTED_ALPHA, label=f"spotted {k}") for k, c in COLORS.items()]
    if item.annotated is not None:
        for gt in item.annotated:  # a band at the bottom, under the curves' range
            ax.axvspan(gt.onset / item.fps, (gt.offset + 1) / item.fps, ymin=0.0, ymax=0.07, color=COLORS.get(gt.type, "gray"), alpha=ANNOTATED_ALPHA, lw=0)
        counts = {k: sum(gt.type == k for gt in item.annotated) for k in COLORS}
        handles += [Patch(color=c, alpha=ANNOTATED_ALPHA, label=f"annotated {k} ({counts[k]}, bottom band)") for k, c in COLORS.items()]
    ax.set_xlim(0, item.num_frames / item.fps)
    ax.set_ylim(-0.12, 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    title = ax.set_title(title_text(item.name, len(proposals), len(proposals), threshold), fontsize=9, pad=14)
    ax.legend(handles=[*ax.get_lines(), *handles], loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncol=len(handles) + 3, frameon=False)
    fig.tight_layout()
    labelled = label_intervals(fig, ax, proposals, item.fps, COLORS)
    title.set_text(title_text(item.name, len(proposals), labelled, threshold))
    with io.atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def label_intervals(fig: Any, ax: Any, proposals: list[Proposal], fps: float, colors: dict[str, str]) -> int:
    """Write ``type score`` above the intervals, best scores first, skipping any label that
    would overlap one already placed (a busy video stays readable). Returns how many fit."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for p in sorted(proposals, key=lambda p: -p.score):
        text = ax.text(p.onset / fps, 1.02, f"{p.type} {p.score:.2f}", fontsize=7, color=colors.get(p.type, "gray"), transform=ax.get_xaxis_transform(), clip_on=False)
        box = text.get_window_extent(renderer=renderer).expanded(1.2, 1.0)  # keep a gap between labels
        inside = ax.get_window_extent(renderer=renderer)
        if box.x1 > inside.x1 + 2 or any(box.overlaps(other) for other in placed):
            text.remove()
            continue
        placed.append(box)
    return len(placed)
