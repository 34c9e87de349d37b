"""The synthetic benchmark's settings: :class:`SyntheticSpec`, its validation and the presets.

A spec plus a seed fully determines a generated feature set (:mod:`.generator`); the spec's
digest names the cache folder (:mod:`.cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import operator
from dataclasses import asdict, dataclass, fields

GENERATOR_VERSION = 1  # bump when the same spec and seed would give different files
REFERENCE_DIM = 1024  # width at which ``snippet_norm`` is stated
ME_MAX_SECONDS = 0.5  # the protocol's type cut: ME when (offset - onset + 1) / fps <= 0.5 s


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
    # Flow sees speed. 0: each event's motion is normalised to a peak of 1, so every event moves
    # equally fast (the old generator; small and tiny keep it). s > 0: motion is the frame-to-frame
    # change of appearance scaled so that a sin^2 rise over s seconds peaks at 1; a faster rise peaks
    # higher (a 0.25 s rise at 2 with s = 0.5), capped at flow_speed_cap. In seconds, not frames, so
    # that one value means the same physical speed at 30 and 200 fps.
    flow_speed_seconds: float = 0.0
    flow_speed_cap: float = 3.0  # >= 1: a rise at the reference speed always reaches its full strength

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
        if not self.flow_speed_cap >= 1:
            raise SyntheticSpecError(f"synthetic setting flow_speed_cap={self.flow_speed_cap!r}: must be >= 1")
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
    # documented stand-in for I3D's 1024). It keeps flow_speed_seconds = 0 (every event moves
    # equally fast, so its MEs are not findable: ridge-probe ME AUC 0.65): with 0.5 s its motion-
    # energy baseline F1 rises to 0.163, above the benchmark's 0.15 limit, because small packs ~3x
    # as many expressions per minute as casme2. Measure ME spotting on casme2 instead.
    "small": SyntheticSpec(),
    # For tests: tiny and fast, a few expressions per video.
    "tiny": SyntheticSpec(num_subjects=3, num_videos=6, frames_per_video=240, frames_jitter=0.1, feature_dim=16,
                          mae_per_video=1.5, me_per_video=1.0, mae_max_s=2.0),
    # CAS(ME)^2: 22 subjects, 98 videos of ~2940 frames at 30 fps, 300 MaE and 57 ME.
    # The dataset-shaped presets let flow see speed (flow_speed_seconds = 0.5 s, about the median MaE
    # rise): a micro-expression is brief and rapid, and optical flow measures per-frame displacement,
    # so its flow peak is up to flow_speed_cap times a median MaE's at the same amplitude.
    "casme2": SyntheticSpec(num_subjects=22, num_videos=98, frames_per_video=2940, frames_jitter=0.4,
                            feature_dim=1024, mae_per_video=300 / 98, me_per_video=57 / 98, flow_speed_seconds=0.5),
    # SAMM-LV (MEGC sheet): 30 subjects, 147 videos of ~7000 frames at 200 fps, 340 MaE and 159 ME.
    "samm": SyntheticSpec(fps=200.0, snippet_length=32, stride=32, num_subjects=30, num_videos=147,
                          frames_per_video=7000, frames_jitter=0.4, feature_dim=1024,
                          mae_per_video=340 / 147, me_per_video=159 / 147, flow_speed_seconds=0.5),
    # CAS(ME)^3 part A: 956 videos of ~2600 frames at 30 fps, 2071 MaE and 207 ME (memory tests).
    "casme3": SyntheticSpec(num_subjects=100, num_videos=956, frames_per_video=2600, frames_jitter=0.3,
                            feature_dim=1024, mae_per_video=2071 / 956, me_per_video=207 / 956, flow_speed_seconds=0.5),
}


def resolve_spec(preset: str, **overrides: object) -> SyntheticSpec:
    """The spec of ``preset`` with ``overrides``; unknown names raise a clear :class:`SyntheticSpecError`."""
    if preset not in PRESETS:
        raise SyntheticSpecError(f"unknown synthetic preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset].replace(**overrides) if overrides else PRESETS[preset]

def check_seed(seed: object) -> int:
    """``seed`` as a non-negative int (numpy integers too), or a one-line error."""
    try:
        value = operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        value = -1
    if isinstance(seed, bool) or value < 0:
        raise SyntheticSpecError(f"synthetic seed {seed!r}: expected a whole number >= 0")
    return value
