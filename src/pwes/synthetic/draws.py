"""Random draws of the synthetic benchmark: noise processes, direction banks, videos and events.

Interval layout (video lengths, expressions, distractor timing) comes from random streams that do
not depend on the feature width, so the same seed gives the same annotations at every width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pwes.data.layout import expected_snippets
from pwes.synthetic.spec import ME_MAX_SECONDS, SyntheticSpec

_RISE_RANGE = (0.2, 0.45)  # onset phase (rise to the peak), as a fraction of the interval
_HOLD_RANGE = (0.0, 0.4)  # apex phase (held peak) as a fraction; the apex frame is its middle
_PLACEMENT_TRIES = 200


def ar1(rng: np.random.Generator, length: int, width: int, rho: float) -> np.ndarray:
    """Stationary unit-variance AR(1) series along axis 0, float32 [length, width]."""
    series = rng.standard_normal((length, width), dtype=np.float32)
    series[1:] *= np.float32(math.sqrt(1 - rho**2))
    rho32 = np.float32(rho)
    for t in range(1, length):
        series[t] += rho32 * series[t - 1]
    return series


def smooth_series(rng: np.random.Generator, length: int, width: int, scale: float) -> np.ndarray:
    """Unit-variance smooth noise: white noise convolved with a Gaussian of ``scale`` snippets."""
    half = int(math.ceil(3 * scale))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / max(scale, 1e-6)) ** 2)
    white = rng.standard_normal((length + 2 * half, width))
    smooth = np.stack([np.convolve(white[:, k], kernel, mode="valid") for k in range(width)], axis=1)
    return (smooth / np.sqrt(np.sum(kernel**2))).astype(np.float32)


def low_rank(series: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``series @ directions`` for a small inner dimension, without BLAS threads.

    A multi-threaded BLAS spends far longer starting threads than computing a rank-8 product
    (16 ms against 0.5 ms on two busy cores), so this uses einsum's own loop.
    """
    return np.einsum("tk,kd->td", series.astype(np.float32, copy=False), directions.astype(np.float32, copy=False))


def stratified_normal(rng: np.random.Generator, width: int) -> np.ndarray:
    """``width`` standard-normal values, one per equal-probability stratum, in random order.

    The empirical distribution over dimensions then matches N(0, 1) closely even at width 16, so
    narrow stand-in widths keep the target mean, norm and zero share.
    """
    normal = NormalDist()
    u = (rng.permutation(width) + rng.uniform(size=width)) / width
    return np.array([normal.inv_cdf(min(max(p, 1e-12), 1 - 1e-12)) for p in u], dtype=np.float32)


def unit_rms(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to per-dimension RMS 1 (norm sqrt(D))."""
    rms = np.sqrt(np.mean(vectors**2, axis=-1, keepdims=True))
    return (vectors / np.maximum(rms, 1e-12)).astype(np.float32)


# the dataset-wide and per-video random draws


@dataclass(frozen=True)
class Bank:
    """Dataset-wide directions of one stream: action units, class prototypes, blinks, shared face."""

    action_units: np.ndarray  # [K, D], unit RMS
    prototypes: np.ndarray  # [2, D] for (ME, MaE), unit RMS, inside the action-unit span
    blink: np.ndarray  # [D], unit RMS
    face: np.ndarray  # [D] standard normal: the shared face in copula space


@dataclass(frozen=True)
class Event:
    """One expression or distractor: its kind and inclusive frames (onset, apex, offset, peak phase)."""

    kind: str  # "ME", "MaE", "blink", "head" or "movement"
    onset: int
    apex: int
    offset: int
    peak_start: int  # first frame at full intensity
    peak_end: int  # last frame at full intensity


def _class_weights(spec: SyntheticSpec, seed: int) -> np.ndarray:
    """Non-negative action-unit weights of the ME and MaE prototypes [2, K] (width-independent)."""
    rng = np.random.default_rng([seed, 5])
    k = spec.num_action_units
    active = max(1, (k + 1) // 2)
    weights = np.zeros((2, k))
    for c in range(2):
        chosen = rng.choice(k, size=active, replace=False)
        weights[c, chosen] = rng.uniform(0.5, 1.5, size=active)
    return weights


def make_bank(spec: SyntheticSpec, seed: int, stream: int) -> Bank:
    rng = np.random.default_rng([seed, 3, stream])
    d = spec.feature_dim
    units = unit_rms(rng.standard_normal((spec.num_action_units, d)))
    prototypes = unit_rms(low_rank(_class_weights(spec, seed), units))
    blink = unit_rms(rng.standard_normal(d))
    face = stratified_normal(rng, d)
    return Bank(units, prototypes, blink, face)


def video_layout(spec: SyntheticSpec, seed: int) -> tuple[list[tuple[str, str, int]], np.ndarray]:
    """Videos as (name, subject, num_frames) and their (ME, MaE) expression counts [V, 2]."""
    rng = np.random.default_rng([seed, 0])
    base, extra = divmod(spec.num_videos, spec.num_subjects)
    videos = []
    for s in range(spec.num_subjects):
        for v in range(base + (s < extra)):
            frames = int(round(spec.frames_per_video * rng.uniform(1 - spec.frames_jitter, 1 + spec.frames_jitter)))
            videos.append((f"s{s + 1:02d}_v{v + 1:02d}", f"s{s + 1:02d}", max(frames, 2 * spec.snippet_length)))
    lengths = np.array([frames for _, _, frames in videos], dtype=float)
    counts = np.zeros((len(videos), 2), dtype=int)
    for c, rate in enumerate((spec.me_per_video, spec.mae_per_video)):
        total = int(round(rate * len(videos)))
        if total:
            counts[:, c] = rng.multinomial(total, lengths / lengths.sum())
    return videos, counts


def _duration_frames(rng: np.random.Generator, kind: str, spec: SyntheticSpec) -> int:
    """Event length in frames; ME and MaE lengths respect the protocol's type cut exactly."""
    fps = spec.fps
    me_cap = max(1, math.floor(ME_MAX_SECONDS * fps + 1e-9))
    if kind == "ME":
        return int(np.clip(round(rng.uniform(spec.me_min_s, spec.me_max_s) * fps), 1, me_cap))
    if kind == "MaE":  # log-uniform: short MaE are more common than long ones
        seconds = math.exp(rng.uniform(math.log(spec.mae_min_s), math.log(spec.mae_max_s)))
        return max(int(round(seconds * fps)), me_cap + 1)
    low, high = {"blink": (spec.blink_min_s, spec.blink_max_s), "head": (spec.head_min_s, spec.head_max_s),
                 "movement": (spec.movement_min_s, spec.movement_max_s)}[kind]
    return max(1, int(round(rng.uniform(low, high) * fps)))


def place_events(rng: np.random.Generator, spec: SyntheticSpec, num_frames: int, counts: Sequence[int]) -> list[Event]:
    """Expressions (not overlapping, one snippet apart) and distractors (anywhere) in one video."""
    covered = (expected_snippets(num_frames, spec.snippet_length, spec.stride) - 1) * spec.stride + spec.snippet_length
    gap = spec.snippet_length
    taken: list[tuple[int, int]] = []
    events: list[Event] = []
    kinds = ["MaE"] * counts[1] + ["ME"] * counts[0]  # place the long ones first
    for kind in kinds:
        length = _duration_frames(rng, kind, spec)
        if length > covered:
            continue
        for _ in range(_PLACEMENT_TRIES):
            onset = int(rng.integers(0, covered - length + 1))
            offset = onset + length - 1
            if all(offset + gap < a or onset - gap > b for a, b in taken):
                taken.append((onset, offset))
                events.append(_make_event(rng, kind, onset, offset))
                break
    for expression in [e for e in events if e.kind == "MaE"]:  # laughing moves the head, too
        if rng.uniform() < spec.mae_head_move_prob:
            length = min(_duration_frames(rng, "head", spec), covered)
            centre = rng.uniform(expression.onset, expression.offset + 1)
            onset = int(np.clip(round(centre - rng.uniform(0.2, 0.8) * length), 0, covered - length))
            events.append(_make_event(rng, "head", onset, onset + length - 1))
    minutes = num_frames / spec.fps / 60
    for kind, rate in (("blink", spec.blinks_per_minute), ("head", spec.head_moves_per_minute), ("movement", spec.movements_per_minute)):
        for _ in range(int(rng.poisson(rate * minutes))):
            length = min(_duration_frames(rng, kind, spec), covered)
            onset = int(rng.integers(0, covered - length + 1))
            events.append(_make_event(rng, kind, onset, onset + length - 1))
    return events


def _make_event(rng: np.random.Generator, kind: str, onset: int, offset: int) -> Event:
    """An event with an onset phase, a held apex phase (possibly one frame) and an offset phase."""
    span = offset - onset
    peak_start = onset + int(round(rng.uniform(*_RISE_RANGE) * span))
    peak_end = min(offset, peak_start + int(round(rng.uniform(*_HOLD_RANGE) * span)))
    return Event(kind, onset, (peak_start + peak_end) // 2, offset, peak_start, peak_end)
