"""The embedded synthetic benchmark: feature sets shaped like I3D features of long face videos.

Real I3D snippet features of a face video are dominated by the static face; expressions are faint
changes on top of it, a micro-expression is invisible in RGB, and blinks and head movements move
the features at least as much as expressions do (measured on real CAS(ME)^2 I3D files: docs/synthetic.md, "Realism"). The generator
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
  differ), weaker in RGB than in flow (ME almost absent from RGB); with ``flow_speed_seconds``
  the flow of every event (distractors too) grows with its speed, so brief rapid MEs stand out;
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

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pwes import io
from pwes.data.layout import ANNOTATION_COLUMNS, VIDEO_COLUMNS, expected_snippets
from pwes.synthetic.draws import (Bank, Event, ar1, low_rank, make_bank, place_events, smooth_series,
                                       stratified_normal, unit_rms, video_layout)
from pwes.synthetic.face import FaceMap, calibrate_face_map
from pwes.synthetic.spec import GENERATOR_VERSION, REFERENCE_DIM, SyntheticSpec, check_seed

_DRIFT_COMPONENTS = 3
_BLINK_DIRECTION_JITTER = 0.1  # variance share of a blink direction that is event-specific

# event profiles and features


def _frame_profiles(event: Event, motion_mix: float, speed_frames: float = 0.0,
                    speed_cap: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Appearance and flow profiles over the event's frames.

    Appearance rises (sin^2) to 1 over the onset phase, holds through the apex phase and decays
    (cos^2) over the offset phase; flow sees motion, the change of appearance, mixed with it.
    With ``speed_frames = 0`` the motion is normalised to a peak of 1 (every event equally fast);
    with N > 0 it is the per-frame change scaled so that a rise over N frames peaks at about 1,
    a faster rise higher, at most ``speed_cap``.
    """
    n = event.offset - event.onset + 1
    a, b = event.peak_start - event.onset, event.peak_end - event.onset
    i = np.arange(n, dtype=float)
    rise = np.sin(0.5 * np.pi * (i + 1) / (a + 1)) ** 2
    fall = np.cos(0.5 * np.pi * (i - b) / (n - b)) ** 2
    appearance = np.where(i <= a, rise, np.where(i <= b, 1.0, fall))
    motion = np.abs(np.diff(appearance, prepend=0.0))
    if speed_frames > 0:  # the steepest step of a sin^2 rise over N frames is about pi / (2 N)
        motion = np.minimum(motion * (2.0 * speed_frames / np.pi), speed_cap)
    else:
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


def _event_directions(rng: np.random.Generator, spec: SyntheticSpec, bank: Bank, event: Event) -> np.ndarray:
    """Unit-RMS direction of one event in one stream [D]."""
    d = spec.feature_dim
    if event.kind in ("ME", "MaE", "movement"):
        own = unit_rms(np.einsum("k,kd->d", rng.standard_normal(spec.num_action_units), bank.action_units))
        if event.kind == "movement":
            return own
        j = spec.expression_jitter
        prototype = bank.prototypes[0 if event.kind == "ME" else 1]
        return unit_rms(math.sqrt(1 - j) * prototype + math.sqrt(j) * own)
    if event.kind == "blink":
        j = _BLINK_DIRECTION_JITTER
        return unit_rms(math.sqrt(1 - j) * bank.blink + math.sqrt(j) * unit_rms(rng.standard_normal(d)))
    return unit_rms(rng.standard_normal(d))


def video_features(
    spec: SyntheticSpec,
    seed: int,
    video_index: int,
    num_frames: int,
    events: Sequence[Event],
    banks: tuple[Bank, Bank],
    subject_faces: tuple[np.ndarray, np.ndarray],
    subject_activity: tuple[np.ndarray, np.ndarray],
    face_map: FaceMap,
) -> tuple[np.ndarray, np.ndarray]:
    """The (rgb, flow) float32 [T, D] features of one video."""
    rng = np.random.default_rng([seed, 2, video_index])
    d, t = spec.feature_dim, expected_snippets(num_frames, spec.snippet_length, spec.stride)
    snippet_seconds = spec.stride / spec.fps
    # latent facial activity, shared by both streams: action units and subject-specific factors
    au_series = ar1(rng, t, spec.num_action_units, spec.activity_autocorr) / np.float32(math.sqrt(spec.num_action_units))
    factor_series = ar1(rng, t, spec.activity_rank, spec.activity_autocorr) / np.float32(math.sqrt(spec.activity_rank))
    noise = ar1(rng, t, 2 * d, spec.noise_autocorr)
    drift_series = smooth_series(rng, t, _DRIFT_COMPONENTS, spec.drift_seconds / snippet_seconds) / np.float32(math.sqrt(_DRIFT_COMPONENTS))
    speed_frames = spec.flow_speed_seconds * spec.fps
    profiles = [_frame_profiles(e, spec.flow_motion_mix, speed_frames, spec.flow_speed_cap) for e in events]
    s_v = math.sqrt(spec.video_face_share)
    s_s = math.sqrt(spec.subject_face_share)
    s_0 = math.sqrt(1 - spec.video_face_share - spec.subject_face_share)
    outputs = []
    for stream, (bank, drift_std) in enumerate(zip(banks, (spec.rgb_drift_std, spec.flow_drift_std))):
        face_g = s_0 * bank.face + s_s * subject_faces[stream] + s_v * rng.standard_normal(d).astype(np.float32)
        z = noise[:, stream * d:(stream + 1) * d]
        z *= np.float32(spec.noise_std)
        z += np.asarray(face_map(face_g), dtype=np.float32)[None, :]
        z += low_rank(spec.au_activity_std * au_series, bank.action_units)
        z += low_rank(spec.activity_std * factor_series, subject_activity[stream])
        z += low_rank(drift_std * drift_series, unit_rms(rng.standard_normal((_DRIFT_COMPONENTS, d))))
        if events:
            shapes = np.stack([_snippet_average(p[stream], e.onset, t, spec.snippet_length, spec.stride)
                               for e, p in zip(events, profiles)], axis=1).astype(np.float32)  # [T, E]
            directions = np.stack([_event_directions(rng, spec, bank, e) for e in events])  # [E, D]
            amplitudes = np.array([_strengths(spec, e.kind)[stream] for e in events], dtype=np.float32)
            amplitudes *= np.exp(spec.strength_jitter * rng.standard_normal(len(events)) - spec.strength_jitter**2 / 2).astype(np.float32)
            z += low_rank(shapes, amplitudes[:, None] * directions)
        np.maximum(z, 0, out=z)
        outputs.append(np.ascontiguousarray(z, dtype=np.float32))
    return outputs[0], outputs[1]


def background_variance(spec: SyntheticSpec) -> float:
    """Per-dimension variance the background adds to the face (the face is calibrated with it)."""
    return spec.au_activity_std**2 + spec.activity_std**2 + spec.noise_std**2 + spec.rgb_drift_std**2


def generate(root: Path, spec: SyntheticSpec, seed: int) -> Path:
    """Write the feature-set layout for ``spec`` and ``seed`` into ``root``, one video at a time.

    Files: ``videos.csv``, ``annotations.csv``, ``features/<video>.npz`` (rgb, flow float32
    [T, D]) and ``synthetic.json`` (the spec, seed and counts, for provenance).
    """
    root = Path(root)
    seed = check_seed(seed)
    face_map = calibrate_face_map(spec.feature_mean, spec.snippet_norm**2 / REFERENCE_DIM, spec.zero_fraction,
                         math.sqrt(background_variance(spec)))
    banks = (make_bank(spec, seed, 0), make_bank(spec, seed, 1))
    videos, counts = video_layout(spec, seed)
    subject_index = {subject: i for i, subject in enumerate(dict.fromkeys(s for _, s, _ in videos))}
    subject_draws: dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {}
    video_rows, annotation_rows = [], []
    num_snippets = 0
    for index, (name, subject, num_frames) in enumerate(videos):
        if subject not in subject_draws:
            srng = np.random.default_rng([seed, 4, subject_index[subject]])
            d = spec.feature_dim
            faces = tuple(stratified_normal(srng, d) for _ in range(2))
            activity = tuple(unit_rms(srng.standard_normal((spec.activity_rank, d))) for _ in range(2))
            subject_draws = {subject: (faces, activity)}  # one subject at a time: videos are grouped
        faces, activity = subject_draws[subject]
        events = place_events(np.random.default_rng([seed, 1, index]), spec, num_frames, counts[index])
        rgb, flow = video_features(spec, seed, index, num_frames, events, banks, faces, activity, face_map)
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
