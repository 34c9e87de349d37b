"""The embedded synthetic benchmark: feature sets shaped like I3D features of long face videos.

Real I3D snippet features of a face video are dominated by the static face; expressions are faint
changes on top of it, a micro-expression is invisible in RGB, and blinks and head movements move
the features at least as much as expressions do (the paper notes, ``shared/paper/NOTES.md``). This module
writes feature sets with those properties, deterministically from a seed, in the layout of
:mod:`pwes.data.layout`, so that the whole framework runs end to end without licensed data.

Every snippet feature is ``relu(z)`` of a pre-activation ``z[t, d]`` built from

* a static face per video (shared face + subject part + session part, a Gaussian copula mapped
  through a zero-inflated shifted log-normal calibrated to the target mean, norm and zero share);
* background facial activity: AR(1) series on a bank of "action unit" directions and on
  subject-specific directions, shared by the two streams (the same movement drives both);
* isotropic AR(1) noise per stream and a slow appearance drift (mostly RGB);
* expressions: an onset-apex-offset profile, averaged over each snippet's frames, along an
  instance direction close to the class prototype in action-unit space (ME and MaE prototypes
  differ), weaker in RGB than in flow (ME almost absent from RGB);
* distractors that are not annotated: blinks (short, strong in flow), head movements (long,
  large, random directions) and other facial movements (random action-unit mixes, as strong as
  a MaE): they move the features at least as much as the expressions do.

Amplitudes are per-dimension RMS values, so a direction of amplitude ``a`` has norm
``a * sqrt(D)``: every statistic and every signal-to-noise ratio scales the same way with the
width ``D``, and the benchmark is about as hard at width 128 as at 1024. Interval layout (video
lengths, expressions, distractor timing) is drawn from random streams that do not depend on the
width, so the same seed gives the same annotations at every ``feature_dim``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import operator
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import NormalDist

import numpy as np

from pwes import io
from pwes.data.layout import ANNOTATION_COLUMNS, VIDEO_COLUMNS, expected_snippets

GENERATOR_VERSION = 1  # bump when the same spec and seed would give different files
REFERENCE_DIM = 1024  # width at which ``snippet_norm`` is stated
ME_MAX_SECONDS = 0.5  # the protocol's type cut: ME when (offset - onset + 1) / fps <= 0.5 s
_RISE_RANGE = (0.2, 0.45)  # onset phase (rise to the peak), as a fraction of the interval
_HOLD_RANGE = (0.0, 0.4)  # apex phase (held peak) as a fraction; the apex frame is its middle
_DRIFT_COMPONENTS = 3
_BLINK_DIRECTION_JITTER = 0.1  # variance share of a blink direction that is event-specific
_PLACEMENT_TRIES = 200


class SyntheticSpecError(ValueError):
    """A synthetic-benchmark setting (or the seed) is invalid; the message names it."""


class SyntheticCacheError(ValueError):
    """A folder in the way of a generated set is not one; the message names it."""


@dataclass(frozen=True)
class SyntheticSpec:
    """Every knob of the synthetic benchmark; the defaults are the embedded ``small`` preset.

    Amplitudes (``*_std``, ``*_strength``) are per-dimension RMS values of the pre-activation
    (norm = amplitude * sqrt(feature_dim)); the expression and distractor strengths are at apex.
    """

    # dataset shape
    fps: float = 30.0
    snippet_length: int = 8
    stride: int = 8
    num_subjects: int = 6
    num_videos: int = 24  # spread over subjects as evenly as possible
    frames_per_video: int = 900
    frames_jitter: float = 0.15  # each video's length is frames_per_video * U(1 - j, 1 + j)
    feature_dim: int = 64
    # expressions: expected counts, durations (seconds) and strengths
    mae_per_video: float = 2.0
    me_per_video: float = 1.5
    mae_min_s: float = 0.6
    mae_max_s: float = 4.0
    me_min_s: float = 0.2
    me_max_s: float = 0.5
    mae_rgb_strength: float = 0.03
    mae_flow_strength: float = 0.045
    me_rgb_strength: float = 0.004
    me_flow_strength: float = 0.03
    strength_jitter: float = 0.4  # log-normal sigma of an instance's amplitude
    expression_jitter: float = 0.4  # variance share of an instance direction off the class prototype
    # distractors (background, never annotated)
    blinks_per_minute: float = 15.0
    blink_min_s: float = 0.1
    blink_max_s: float = 0.4
    blink_rgb_strength: float = 0.03
    blink_flow_strength: float = 0.08
    head_moves_per_minute: float = 8.0
    head_min_s: float = 0.5
    head_max_s: float = 3.0
    mae_head_move_prob: float = 0.0  # chance that a MaE comes with a head movement overlapping it
    head_rgb_strength: float = 0.08
    head_flow_strength: float = 0.09
    movements_per_minute: float = 6.0  # unannotated facial movements: random action-unit mixes
    movement_min_s: float = 0.3
    movement_max_s: float = 3.0
    movement_rgb_strength: float = 0.05
    movement_flow_strength: float = 0.065
    # the static face (marginal statistics of the features)
    feature_mean: float = 0.23
    snippet_norm: float = 10.3  # L2 norm of a snippet at width 1024; scales as sqrt(D / 1024)
    zero_fraction: float = 0.04
    subject_face_share: float = 0.15  # variance share of the face that is subject-specific
    video_face_share: float = 0.03  # variance share that is specific to the video (session)
    # background variation
    num_action_units: int = 16
    activity_rank: int = 16
    au_activity_std: float = 0.01
    activity_std: float = 0.022
    noise_std: float = 0.012
    activity_autocorr: float = 0.85  # AR(1) coefficient per snippet
    noise_autocorr: float = 0.6
    rgb_drift_std: float = 0.015
    flow_drift_std: float = 0.005
    drift_seconds: float = 20.0
    flow_motion_mix: float = 0.7  # flow profile = (1 - mix) * appearance profile + mix * |motion|

    def __post_init__(self) -> None:
        for f in fields(self):  # 30 and 30.0 are the same setting (and the same cache hash)
            value = getattr(self, f.name)
            if _FIELD_TYPES.get(f.name) is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SyntheticSpecError` naming the first invalid setting."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_TYPES[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise SyntheticSpecError(f"synthetic setting {f.name}={value!r}: expected {kind.__name__}")
            if not math.isfinite(value) or value < 0:
                raise SyntheticSpecError(f"synthetic setting {f.name}={value!r}: must be a finite number >= 0")
        positive = ("fps", "snippet_length", "stride", "num_subjects", "num_videos", "frames_per_video", "feature_dim",
                    "mae_min_s", "me_min_s", "blink_min_s", "head_min_s", "movement_min_s", "snippet_norm", "feature_mean",
                    "num_action_units", "activity_rank", "drift_seconds")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SyntheticSpecError(f"synthetic setting {name}={getattr(self, name)!r}: must be > 0")
        fractions = ("frames_jitter", "zero_fraction", "activity_autocorr", "noise_autocorr", "expression_jitter")
        for name in fractions:
            if not getattr(self, name) < 1:
                raise SyntheticSpecError(f"synthetic setting {name}={getattr(self, name)!r}: must be in [0, 1)")
        if not 0 < self.zero_fraction:
            raise SyntheticSpecError(f"synthetic setting zero_fraction={self.zero_fraction!r}: must be in (0, 1)")
        for name in ("flow_motion_mix", "mae_head_move_prob"):
            if not getattr(self, name) <= 1:
                raise SyntheticSpecError(f"synthetic setting {name}={getattr(self, name)!r}: must be in [0, 1]")
        if self.subject_face_share + self.video_face_share >= 1:
            raise SyntheticSpecError(
                f"synthetic settings subject_face_share + video_face_share = {self.subject_face_share + self.video_face_share:g}: must be < 1"
            )
        if self.num_videos < self.num_subjects:
            raise SyntheticSpecError(f"synthetic setting num_videos={self.num_videos}: must be >= num_subjects={self.num_subjects}")
        shortest = math.floor(self.frames_per_video * (1 - self.frames_jitter))
        if shortest < 2 * self.snippet_length:
            raise SyntheticSpecError(
                f"synthetic setting frames_per_video={self.frames_per_video}: the shortest video ({shortest} frames) "
                f"must hold at least two snippets of snippet_length={self.snippet_length}"
            )
        if self.me_max_s > ME_MAX_SECONDS:
            raise SyntheticSpecError(f"synthetic setting me_max_s={self.me_max_s!r}: an ME lasts at most {ME_MAX_SECONDS} s")
        if self.mae_min_s <= ME_MAX_SECONDS:
            raise SyntheticSpecError(f"synthetic setting mae_min_s={self.mae_min_s!r}: a MaE lasts more than {ME_MAX_SECONDS} s")
        for low, high in (("me_min_s", "me_max_s"), ("mae_min_s", "mae_max_s"), ("blink_min_s", "blink_max_s"),
                          ("head_min_s", "head_max_s"), ("movement_min_s", "movement_max_s")):
            if getattr(self, low) > getattr(self, high):
                raise SyntheticSpecError(f"synthetic setting {low}={getattr(self, low)!r}: must be <= {high}={getattr(self, high)!r}")

    @property
    def target_snippet_norm(self) -> float:
        """Expected L2 norm of one snippet's features at this spec's width."""
        return self.snippet_norm * math.sqrt(self.feature_dim / REFERENCE_DIM)

    def replace(self, **overrides: object) -> "SyntheticSpec":
        """A copy with ``overrides`` applied; values may be strings (from a command line)."""
        unknown = sorted(set(overrides) - set(_FIELD_TYPES))
        if unknown:
            raise SyntheticSpecError(
                f"unknown synthetic setting(s) {', '.join(unknown)}; valid settings: {', '.join(_FIELD_TYPES)}"
            )
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in overrides.items()})

    def digest(self) -> str:
        """Short hash of every setting and the generator version (names cache folders)."""
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:8]


_FIELD_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(SyntheticSpec)}


def _coerce(name: str, value: object) -> int | float:
    """``value`` as the type of setting ``name`` (int or float), or a one-line error."""
    kind = _FIELD_TYPES[name]
    if isinstance(value, bool):
        raise SyntheticSpecError(f"synthetic setting {name}={value!r}: expected {kind.__name__}")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise SyntheticSpecError(f"synthetic setting {name}={value!r}: expected {kind.__name__}") from None
    if not isinstance(number, (int, float)):
        raise SyntheticSpecError(f"synthetic setting {name}={value!r}: expected {kind.__name__}")
    if kind is int:
        if not math.isfinite(number) or number != int(number):
            raise SyntheticSpecError(f"synthetic setting {name}={value!r}: expected a whole number")
        return int(number)
    return float(number)


PRESETS: dict[str, SyntheticSpec] = {
    # The embedded default: every LOSO fold trains in minutes on two CPU cores (width 64 is a
    # documented stand-in for I3D's 1024).
    "small": SyntheticSpec(),
    # For tests: tiny and fast, a few expressions per video.
    "tiny": SyntheticSpec(num_subjects=3, num_videos=6, frames_per_video=240, frames_jitter=0.1, feature_dim=16,
                          mae_per_video=1.5, me_per_video=1.0, mae_max_s=2.0),
    # CAS(ME)^2: 22 subjects, 98 videos of ~2940 frames at 30 fps, 300 MaE and 57 ME.
    "casme2": SyntheticSpec(num_subjects=22, num_videos=98, frames_per_video=2940, frames_jitter=0.4,
                            feature_dim=1024, mae_per_video=300 / 98, me_per_video=57 / 98),
    # SAMM-LV (MEGC sheet): 30 subjects, 147 videos of ~7000 frames at 200 fps, 340 MaE and 159 ME.
    "samm": SyntheticSpec(fps=200.0, snippet_length=32, stride=32, num_subjects=30, num_videos=147,
                          frames_per_video=7000, frames_jitter=0.4, feature_dim=1024,
                          mae_per_video=340 / 147, me_per_video=159 / 147),
    # CAS(ME)^3 part A: 956 videos of ~2600 frames at 30 fps, 2071 MaE and 207 ME (memory tests).
    "casme3": SyntheticSpec(num_subjects=100, num_videos=956, frames_per_video=2600, frames_jitter=0.3,
                            feature_dim=1024, mae_per_video=2071 / 956, me_per_video=207 / 956),
}


def resolve_spec(preset: str, **overrides: object) -> SyntheticSpec:
    """The spec of ``preset`` with ``overrides``; unknown names raise a clear :class:`SyntheticSpecError`."""
    if preset not in PRESETS:
        raise SyntheticSpecError(f"unknown synthetic preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset].replace(**overrides) if overrides else PRESETS[preset]


# ----------------------------------------------------------------------------------------------
# the static face: a zero-inflated shifted log-normal calibrated to mean, norm and zero share


@dataclass(frozen=True)
class _FaceMap:
    """Maps a standard normal ``g`` to a pre-activation: ``exp(mu + s g) - c`` above ``z0``, linear below."""

    mu: float
    sigma: float
    z0: float

    def __call__(self, g: np.ndarray) -> np.ndarray:
        c = math.exp(self.mu + self.sigma * self.z0)
        above = np.exp(self.mu + self.sigma * np.maximum(g, self.z0)) - c
        below = self.sigma * c * (g - self.z0)  # continuous value and slope at z0: dims near 0 flicker
        return np.where(g > self.z0, above, below)


def _face_map_noiseless(mean: float, second_moment: float, zero_fraction: float) -> _FaceMap:
    """The face map whose positive part has the given mean, second moment and zero share."""
    normal = NormalDist()
    z0 = normal.inv_cdf(zero_fraction)

    def moments(sigma: float) -> tuple[float, float]:  # with mu = 0
        q = lambda x: 1.0 - normal.cdf(x)  # noqa: E731
        m1 = math.exp(sigma**2 / 2) * q(z0 - sigma) - math.exp(sigma * z0) * q(z0)
        m2 = (math.exp(2 * sigma**2) * q(z0 - 2 * sigma) - 2 * math.exp(sigma * z0 + sigma**2 / 2) * q(z0 - sigma)
              + math.exp(2 * sigma * z0) * q(z0))
        return m1, m2

    def ratio(sigma: float) -> float:
        m1, m2 = moments(sigma)
        return m1**2 / m2

    target = mean**2 / second_moment
    low, high = 1e-3, 4.0
    if not ratio(high) < target < ratio(low):
        raise SyntheticSpecError(
            f"synthetic settings feature_mean={mean:g}, snippet_norm and zero_fraction={zero_fraction:g} are "
            "inconsistent: no non-negative distribution has that mean and norm"
        )
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if ratio(mid) > target else (low, mid)
    sigma = (low + high) / 2
    return _FaceMap(mu=math.log(mean / moments(sigma)[0]), sigma=sigma, z0=z0)


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): numpy has none."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _relu_statistics(face_map: _FaceMap, noise: float) -> tuple[float, float, float]:
    """Mean, second moment and zero share of ``relu(face_map(g) + n)``, g ~ N(0, 1), n ~ N(0, noise^2)."""
    g = np.linspace(-8.0, 8.0, 4001)
    weights = np.exp(-0.5 * g * g)
    weights /= weights.sum()
    b = face_map(g)
    u = b / noise
    cdf = 0.5 * (1.0 + _erf(u / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    m1 = b * cdf + noise * pdf
    m2 = (b * b + noise * noise) * cdf + b * noise * pdf
    return float(weights @ m1), float(weights @ m2), float(weights @ (1.0 - cdf))


def _face_map(mean: float, second_moment: float, zero_fraction: float, noise: float) -> _FaceMap:
    """The face map such that ``relu(face + background noise)`` has the target statistics.

    The noiseless solution is corrected by fixed-point iteration: noise around a ReLU raises the
    mean and, where the face density rises away from zero, the share of exact zeros.
    """
    targets = np.array([mean, second_moment, zero_fraction])
    inputs = targets.copy()
    face_map = _face_map_noiseless(*inputs)
    if noise <= 0:
        return face_map
    for _ in range(30):
        achieved = np.array(_relu_statistics(face_map, noise))
        if np.all(np.abs(achieved - targets) <= 1e-4 * np.abs(targets)):
            break
        inputs = inputs + (targets - achieved)
        inputs[2] = min(max(inputs[2], 1e-4), 0.5)
        face_map = _face_map_noiseless(*inputs)
    return face_map


# ----------------------------------------------------------------------------------------------
# random processes


def _ar1(rng: np.random.Generator, length: int, width: int, rho: float) -> np.ndarray:
    """Stationary unit-variance AR(1) series along axis 0, float32 [length, width]."""
    series = rng.standard_normal((length, width), dtype=np.float32)
    series[1:] *= np.float32(math.sqrt(1 - rho**2))
    rho32 = np.float32(rho)
    for t in range(1, length):
        series[t] += rho32 * series[t - 1]
    return series


def _smooth_series(rng: np.random.Generator, length: int, width: int, scale: float) -> np.ndarray:
    """Unit-variance smooth noise: white noise convolved with a Gaussian of ``scale`` snippets."""
    half = int(math.ceil(3 * scale))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / max(scale, 1e-6)) ** 2)
    white = rng.standard_normal((length + 2 * half, width))
    smooth = np.stack([np.convolve(white[:, k], kernel, mode="valid") for k in range(width)], axis=1)
    return (smooth / np.sqrt(np.sum(kernel**2))).astype(np.float32)


def _low_rank(series: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``series @ directions`` for a small inner dimension, without BLAS threads.

    A multi-threaded BLAS spends far longer starting threads than computing a rank-8 product
    (16 ms against 0.5 ms on two busy cores), so this uses einsum's own loop.
    """
    return np.einsum("tk,kd->td", series.astype(np.float32, copy=False), directions.astype(np.float32, copy=False))


def _stratified_normal(rng: np.random.Generator, width: int) -> np.ndarray:
    """``width`` standard-normal values, one per equal-probability stratum, in random order.

    The empirical distribution over dimensions then matches N(0, 1) closely even at width 16, so
    narrow stand-in widths keep the target mean, norm and zero share.
    """
    normal = NormalDist()
    u = (rng.permutation(width) + rng.uniform(size=width)) / width
    return np.array([normal.inv_cdf(min(max(p, 1e-12), 1 - 1e-12)) for p in u], dtype=np.float32)


def _unit_rms(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to per-dimension RMS 1 (norm sqrt(D))."""
    rms = np.sqrt(np.mean(vectors**2, axis=-1, keepdims=True))
    return (vectors / np.maximum(rms, 1e-12)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# the dataset-wide and per-video random draws


@dataclass(frozen=True)
class _Bank:
    """Dataset-wide directions of one stream: action units, class prototypes, blinks, shared face."""

    action_units: np.ndarray  # [K, D], unit RMS
    prototypes: np.ndarray  # [2, D] for (ME, MaE), unit RMS, inside the action-unit span
    blink: np.ndarray  # [D], unit RMS
    face: np.ndarray  # [D] standard normal: the shared face in copula space


@dataclass(frozen=True)
class _Event:
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


def _bank(spec: SyntheticSpec, seed: int, stream: int) -> _Bank:
    rng = np.random.default_rng([seed, 3, stream])
    d = spec.feature_dim
    units = _unit_rms(rng.standard_normal((spec.num_action_units, d)))
    prototypes = _unit_rms(_low_rank(_class_weights(spec, seed), units))
    blink = _unit_rms(rng.standard_normal(d))
    face = _stratified_normal(rng, d)
    return _Bank(units, prototypes, blink, face)


def _video_layout(spec: SyntheticSpec, seed: int) -> tuple[list[tuple[str, str, int]], np.ndarray]:
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


def _place_events(rng: np.random.Generator, spec: SyntheticSpec, num_frames: int, counts: Sequence[int]) -> list[_Event]:
    """Expressions (not overlapping, one snippet apart) and distractors (anywhere) in one video."""
    covered = (expected_snippets(num_frames, spec.snippet_length, spec.stride) - 1) * spec.stride + spec.snippet_length
    gap = spec.snippet_length
    taken: list[tuple[int, int]] = []
    events: list[_Event] = []
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


def _make_event(rng: np.random.Generator, kind: str, onset: int, offset: int) -> _Event:
    """An event with an onset phase, a held apex phase (possibly one frame) and an offset phase."""
    span = offset - onset
    peak_start = onset + int(round(rng.uniform(*_RISE_RANGE) * span))
    peak_end = min(offset, peak_start + int(round(rng.uniform(*_HOLD_RANGE) * span)))
    return _Event(kind, onset, (peak_start + peak_end) // 2, offset, peak_start, peak_end)


# ----------------------------------------------------------------------------------------------
# event profiles and features


def _frame_profiles(event: _Event, motion_mix: float) -> tuple[np.ndarray, np.ndarray]:
    """Appearance and flow profiles over the event's frames.

    Appearance rises (sin^2) to 1 over the onset phase, holds through the apex phase and decays
    (cos^2) over the offset phase; flow sees motion, the change of appearance, mixed with it.
    """
    n = event.offset - event.onset + 1
    a, b = event.peak_start - event.onset, event.peak_end - event.onset
    i = np.arange(n, dtype=float)
    rise = np.sin(0.5 * np.pi * (i + 1) / (a + 1)) ** 2
    fall = np.cos(0.5 * np.pi * (i - b) / (n - b)) ** 2
    appearance = np.where(i <= a, rise, np.where(i <= b, 1.0, fall))
    motion = np.abs(np.diff(appearance, prepend=0.0))
    motion /= max(motion.max(), 1e-12)
    return appearance, (1 - motion_mix) * appearance + motion_mix * motion


def _snippet_average(profile: np.ndarray, onset: int, num_snippets: int, length: int, stride: int) -> np.ndarray:
    """Mean of a frame profile over each snippet's frames (zero outside the event) [T]."""
    cumulative = np.concatenate([[0.0], np.cumsum(profile)])
    starts = np.arange(num_snippets) * stride - onset
    lo = np.clip(starts, 0, len(profile))
    hi = np.clip(starts + length, 0, len(profile))
    return (cumulative[hi] - cumulative[lo]) / length


def _strengths(spec: SyntheticSpec, kind: str) -> tuple[float, float]:
    return {
        "ME": (spec.me_rgb_strength, spec.me_flow_strength),
        "MaE": (spec.mae_rgb_strength, spec.mae_flow_strength),
        "blink": (spec.blink_rgb_strength, spec.blink_flow_strength),
        "head": (spec.head_rgb_strength, spec.head_flow_strength),
        "movement": (spec.movement_rgb_strength, spec.movement_flow_strength),
    }[kind]


def _event_directions(rng: np.random.Generator, spec: SyntheticSpec, bank: _Bank, event: _Event) -> np.ndarray:
    """Unit-RMS direction of one event in one stream [D]."""
    d = spec.feature_dim
    if event.kind in ("ME", "MaE", "movement"):
        own = _unit_rms(np.einsum("k,kd->d", rng.standard_normal(spec.num_action_units), bank.action_units))
        if event.kind == "movement":
            return own
        j = spec.expression_jitter
        prototype = bank.prototypes[0 if event.kind == "ME" else 1]
        return _unit_rms(math.sqrt(1 - j) * prototype + math.sqrt(j) * own)
    if event.kind == "blink":
        j = _BLINK_DIRECTION_JITTER
        return _unit_rms(math.sqrt(1 - j) * bank.blink + math.sqrt(j) * _unit_rms(rng.standard_normal(d)))
    return _unit_rms(rng.standard_normal(d))


def _video_features(
    spec: SyntheticSpec,
    seed: int,
    video_index: int,
    num_frames: int,
    events: Sequence[_Event],
    banks: tuple[_Bank, _Bank],
    subject_faces: tuple[np.ndarray, np.ndarray],
    subject_activity: tuple[np.ndarray, np.ndarray],
    face_map: _FaceMap,
) -> tuple[np.ndarray, np.ndarray]:
    """The (rgb, flow) float32 [T, D] features of one video."""
    rng = np.random.default_rng([seed, 2, video_index])
    d, t = spec.feature_dim, expected_snippets(num_frames, spec.snippet_length, spec.stride)
    snippet_seconds = spec.stride / spec.fps
    # latent facial activity, shared by both streams: action units and subject-specific factors
    au_series = _ar1(rng, t, spec.num_action_units, spec.activity_autocorr) / np.float32(math.sqrt(spec.num_action_units))
    factor_series = _ar1(rng, t, spec.activity_rank, spec.activity_autocorr) / np.float32(math.sqrt(spec.activity_rank))
    noise = _ar1(rng, t, 2 * d, spec.noise_autocorr)
    drift_series = _smooth_series(rng, t, _DRIFT_COMPONENTS, spec.drift_seconds / snippet_seconds) / np.float32(math.sqrt(_DRIFT_COMPONENTS))
    profiles = [_frame_profiles(e, spec.flow_motion_mix) for e in events]
    s_v = math.sqrt(spec.video_face_share)
    s_s = math.sqrt(spec.subject_face_share)
    s_0 = math.sqrt(1 - spec.video_face_share - spec.subject_face_share)
    outputs = []
    for stream, (bank, drift_std) in enumerate(zip(banks, (spec.rgb_drift_std, spec.flow_drift_std))):
        face_g = s_0 * bank.face + s_s * subject_faces[stream] + s_v * rng.standard_normal(d).astype(np.float32)
        z = noise[:, stream * d:(stream + 1) * d]
        z *= np.float32(spec.noise_std)
        z += np.asarray(face_map(face_g), dtype=np.float32)[None, :]
        z += _low_rank(spec.au_activity_std * au_series, bank.action_units)
        z += _low_rank(spec.activity_std * factor_series, subject_activity[stream])
        z += _low_rank(drift_std * drift_series, _unit_rms(rng.standard_normal((_DRIFT_COMPONENTS, d))))
        if events:
            shapes = np.stack([_snippet_average(p[stream], e.onset, t, spec.snippet_length, spec.stride)
                               for e, p in zip(events, profiles)], axis=1).astype(np.float32)  # [T, E]
            directions = np.stack([_event_directions(rng, spec, bank, e) for e in events])  # [E, D]
            amplitudes = np.array([_strengths(spec, e.kind)[stream] for e in events], dtype=np.float32)
            amplitudes *= np.exp(spec.strength_jitter * rng.standard_normal(len(events)) - spec.strength_jitter**2 / 2).astype(np.float32)
            z += _low_rank(shapes, amplitudes[:, None] * directions)
        np.maximum(z, 0, out=z)
        outputs.append(np.ascontiguousarray(z, dtype=np.float32))
    return outputs[0], outputs[1]


def _background_variance(spec: SyntheticSpec) -> float:
    """Per-dimension variance the background adds to the face (the face is calibrated with it)."""
    return spec.au_activity_std**2 + spec.activity_std**2 + spec.noise_std**2 + spec.rgb_drift_std**2


# ----------------------------------------------------------------------------------------------
# writing


def _check_seed(seed: object) -> int:
    """``seed`` as a non-negative int (numpy integers too), or a one-line error."""
    try:
        value = operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        value = -1
    if isinstance(seed, bool) or value < 0:
        raise SyntheticSpecError(f"synthetic seed {seed!r}: expected a whole number >= 0")
    return value


def generate(root: Path, spec: SyntheticSpec, seed: int) -> Path:
    """Write the feature-set layout for ``spec`` and ``seed`` into ``root``, one video at a time.

    Files: ``videos.csv``, ``annotations.csv``, ``features/<video>.npz`` (rgb, flow float32
    [T, D]) and ``synthetic.json`` (the spec, seed and counts, for provenance).
    """
    root = Path(root)
    seed = _check_seed(seed)
    face_map = _face_map(spec.feature_mean, spec.snippet_norm**2 / REFERENCE_DIM, spec.zero_fraction,
                         math.sqrt(_background_variance(spec)))
    banks = (_bank(spec, seed, 0), _bank(spec, seed, 1))
    videos, counts = _video_layout(spec, seed)
    subject_index = {subject: i for i, subject in enumerate(dict.fromkeys(s for _, s, _ in videos))}
    subject_draws: dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {}
    video_rows, annotation_rows = [], []
    num_snippets = 0
    for index, (name, subject, num_frames) in enumerate(videos):
        if subject not in subject_draws:
            srng = np.random.default_rng([seed, 4, subject_index[subject]])
            d = spec.feature_dim
            faces = tuple(_stratified_normal(srng, d) for _ in range(2))
            activity = tuple(_unit_rms(srng.standard_normal((spec.activity_rank, d))) for _ in range(2))
            subject_draws = {subject: (faces, activity)}  # one subject at a time: videos are grouped
        faces, activity = subject_draws[subject]
        events = _place_events(np.random.default_rng([seed, 1, index]), spec, num_frames, counts[index])
        rgb, flow = _video_features(spec, seed, index, num_frames, events, banks, faces, activity, face_map)
        io.save_npz(root / "features" / f"{name}.npz", rgb=rgb, flow=flow)  # uncompressed, byte-stable
        num_snippets += rgb.shape[0]
        video_rows.append({"video": name, "subject": subject, "num_frames": num_frames, "fps": f"{spec.fps:g}"})
        expressions = sorted((e for e in events if e.kind in ("ME", "MaE")), key=lambda e: e.onset)
        annotation_rows.extend(
            {"video": name, "subject": subject, "onset": e.onset, "apex": e.apex, "offset": e.offset, "type": e.kind}
            for e in expressions
        )
    io.write_csv(root / "annotations.csv", ANNOTATION_COLUMNS, annotation_rows)
    io.write_csv(root / "videos.csv", VIDEO_COLUMNS, video_rows)
    io.write_json(root / "synthetic.json", {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "spec": asdict(spec),
        "videos": len(video_rows),
        "subjects": len(subject_index),
        "ME": sum(r["type"] == "ME" for r in annotation_rows),
        "MaE": sum(r["type"] == "MaE" for r in annotation_rows),
        "snippets": num_snippets,
    })
    return root


def summarize(root: Path) -> dict[str, float]:
    """Counts and size of a generated folder: videos, subjects, ME, MaE, snippets, MB."""
    root = Path(root)
    try:
        meta = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SyntheticSpecError(f"{root}: not a synthetic feature set ({err})") from None
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {key: meta[key] for key in ("videos", "subjects", "ME", "MaE", "snippets")} | {"MB": size / 2**20}


def _format_summary(summary: dict[str, float]) -> str:
    return (f"{summary['videos']} videos, {summary['subjects']} subjects, {summary['ME']} ME, {summary['MaE']} MaE, "
            f"{summary['snippets']} snippets, {summary['MB']:.{1 if summary['MB'] >= 1 else 2}f} MB")


def _generate_into_place(target: Path, spec: SyntheticSpec, seed: int) -> bool:
    """Generate into a temporary sibling of ``target`` and rename it into place.

    Returns False when another process put ``target`` in place first (its copy is kept, ours
    discarded); an interrupted generation removes its temporary folder and leaves no ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        generate(tmp, spec, seed)
        try:
            os.rename(tmp, target)  # atomic; replaces an empty folder, fails on a non-empty one
        except OSError:
            if _is_complete(target):
                return False
            raise SyntheticCacheError(f"{target}: exists and is not a complete synthetic set; remove it and retry") from None
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished set (``synthetic.json`` is written last, inside the temporary folder)."""
    return (folder / "synthetic.json").is_file()


def cache_name(preset: str, seed: int, spec: SyntheticSpec) -> str:
    """Folder name of a cached set: preset, seed and the hash of the full (overridden) spec."""
    return f"{preset}-seed{seed}-{spec.digest()}"


def ensure_synthetic(cache_dir: Path, preset: str, seed: int = 0, **overrides: object) -> Path:
    """The folder of ``preset`` (with ``overrides``) under ``cache_dir``, generated on first use.

    Generation goes to a temporary sibling renamed into place, so an interrupted run leaves no
    half folder and a concurrent second process cannot corrupt the first one's result. Prints one
    line to stderr when it generates, nothing when the folder is cached.
    """
    spec = resolve_spec(preset, **overrides)
    seed = _check_seed(seed)
    target = Path(cache_dir).expanduser() / cache_name(preset, seed, spec)
    if _is_complete(target):
        return target
    start = time.perf_counter()
    if _generate_into_place(target, spec, seed):
        print(f"pwes: generated synthetic preset {preset!r} (seed {seed}): {_format_summary(summarize(target))} "
              f"in {time.perf_counter() - start:.1f} s -> {target}", file=sys.stderr)
    return target


def _parse_set(items: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SyntheticSpecError(f"--set {item!r}: expected key=value")
        overrides[key.strip()] = value.strip()
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pwes.data.synthetic PRESET --out DIR [--seed N] [--set key=value ...]``."""
    parser = argparse.ArgumentParser(prog="python -m pwes.data.synthetic", description="Write a synthetic feature set.")
    parser.add_argument("preset", help=f"one of {', '.join(PRESETS)}")
    parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the preset, e.g. feature_dim=128 (repeatable)")
    args = parser.parse_args(argv)
    try:
        spec = resolve_spec(args.preset, **_parse_set(args.overrides))
        if args.seed < 0:
            raise SyntheticSpecError(f"--seed {args.seed}: expected a whole number >= 0")
        out = args.out.expanduser()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SyntheticCacheError(f"--out {out}: exists and is not an empty folder")
        start = time.perf_counter()
        if not _generate_into_place(out, spec, args.seed):
            raise SyntheticCacheError(f"--out {out}: another process wrote it first")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.preset} (seed {args.seed}) -> {out}: {_format_summary(summarize(out))} "
          f"[{time.perf_counter() - start:.1f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
