"""Is the synthetic benchmark hard for motion energy yet learnable? Two measurements per preset.

1. A motion-energy threshold baseline, scored under the MEGC protocol: the distance of each
   snippet's features (rgb and flow concatenated) from a running median of its video; one proposal
   per run of consecutive snippets above a percentile of the video's distances, frames
   ``[t * stride, t * stride + length - 1]`` clipped to the video, score = mean distance inside,
   typed ME when it lasts at most 0.5 s. The percentile is swept over 10..99 and the best overall
   F1 reported (an optimistic figure: the sweep is tuned on the evaluated videos themselves).
2. Snippet-level AUCs, expression (ME or MaE) snippets against background snippets, on the videos
   of the second half of the subjects: of the motion energy itself, and of a closed-form ridge
   probe trained on the first half on the same input (features minus the running median).

A good benchmark has a low baseline F1 and probe AUCs clearly above the motion-energy AUCs.

    python benchmarks/motion_energy.py [--presets small casme2 samm] [--set feature_dim=128]
        [--cache .cache/synthetic] [--seed 0] [--window-s 8] [--json results.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pwes import io
from pwes.evaluation.auc import snippet_auc
from pwes.data.layout import FeatureSet, Interval, load_feature_set, load_features
from pwes.synthetic import SyntheticSpec, ensure_synthetic, resolve_spec
from pwes.evaluation.megc import score
from pwes.inference.proposals import Proposal, expression_type

DEFAULT_PRESETS = ("small", "casme2", "samm")
PERCENTILES = tuple(range(10, 100))  # wider than 50..99: on the small sets the best is sometimes below 50
RIDGE_ALPHA = 1.0  # ridge penalty per training snippet on standardised inputs
BACKGROUND, ME, MAE, IGNORED = 0, 1, 2, -1


class BenchmarkError(ValueError):
    """A benchmark option is invalid; the message names it."""


# ----------------------------------------------------------------------------------------------
# snippet-level signals


def running_median(features: np.ndarray, window: int, chunk: int = 32) -> np.ndarray:
    """Per-dimension median over a centred window of ``window`` snippets (odd; reflected at the ends)."""
    if window < 1 or window % 2 == 0:
        raise BenchmarkError(f"running-median window must be a positive odd number of snippets, got {window}")
    half = window // 2
    mode = "reflect" if len(features) > half else "edge"
    padded = np.pad(features, ((half, half), (0, 0)), mode=mode)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # [T, D, W], a view
    out = np.empty_like(features)
    for start in range(0, len(features), chunk):  # bounded memory: [chunk, D, W] at a time
        out[start:start + chunk] = np.partition(windows[start:start + chunk], half, axis=-1)[..., half]
    return out


def deviation(rgb: np.ndarray, flow: np.ndarray, window: int) -> np.ndarray:
    """Features (rgb and flow concatenated) minus their running median, float32 [T, 2D]."""
    features = np.concatenate([rgb, flow], axis=1)
    return features - running_median(features, window)


def snippet_labels(intervals: Sequence[Interval], num_snippets: int, length: int, stride: int) -> np.ndarray:
    """BACKGROUND, ME, MAE or IGNORED per snippet.

    A snippet belongs to an interval when at least half of it lies inside, or when it is the
    snippet that overlaps the interval most (so a 6-frame ME still owns one 8-frame snippet);
    snippets touched by an interval but not owned by it are IGNORED, never background.
    """
    labels = np.full(num_snippets, BACKGROUND, dtype=np.int64)
    starts = np.arange(num_snippets) * stride
    for interval in intervals:
        overlap = np.minimum(starts + length - 1, interval.offset) - np.maximum(starts, interval.onset) + 1
        overlap = np.maximum(overlap, 0)
        touched = overlap > 0
        owned = overlap * 2 >= length
        if overlap.max() > 0:
            owned[int(np.argmax(overlap))] = True
        labels[touched & (labels == BACKGROUND)] = IGNORED
        labels[owned] = ME if interval.type == "ME" else MAE
    return labels


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes.
    :func:`pwes.evaluation.auc.snippet_auc` (the diagnostics callback uses it too), NaN for None."""
    value = snippet_auc(scores, positive)
    return float("nan") if value is None else value


# ----------------------------------------------------------------------------------------------
# the motion-energy baseline


def runs_above(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Inclusive (start, end) snippet runs where ``values > threshold``."""
    above = np.concatenate([[False], values > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def energy_proposals(video: str, energy: np.ndarray, percentile: float, num_frames: int, fps: float, length: int, stride: int) -> list[Proposal]:
    """One proposal per run of snippets above the video's ``percentile`` of ``energy``."""
    threshold = float(np.percentile(energy, percentile))
    proposals = []
    for start, end in runs_above(energy, threshold):
        onset = start * stride
        offset = min(end * stride + length - 1, num_frames - 1)
        proposals.append(Proposal(video, onset, offset, float(energy[start:end + 1].mean()), expression_type(onset, offset, fps)))
    return proposals


# ----------------------------------------------------------------------------------------------
# the supervised probe


@dataclass
class _Moments:
    """Running sums for a ridge regression over streamed snippets."""

    n: int = 0
    sum_x: np.ndarray | None = None
    gram: np.ndarray | None = None
    sum_y: np.ndarray | None = None
    cross: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        if self.gram is None:
            self.sum_x, self.gram = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
            self.sum_y, self.cross = np.zeros(y.shape[1]), np.zeros((x.shape[1], y.shape[1]))
        self.n += len(x)
        self.sum_x += x64.sum(0)
        self.gram += x64.T @ x64
        self.sum_y += y64.sum(0)
        self.cross += x64.T @ y64

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, scale, weights) of a ridge fit on standardised inputs; score = ((x - mean) / scale) @ w."""
        mean = self.sum_x / self.n
        gram = self.gram - self.n * np.outer(mean, mean)
        scale = np.sqrt(np.maximum(np.diag(gram) / self.n, 1e-12))
        gram = gram / np.outer(scale, scale)
        cross = (self.cross - np.outer(mean, self.sum_y)) / scale[:, None]
        weights = np.linalg.solve(gram + alpha * self.n * np.eye(len(gram)), cross)
        return mean, scale, weights


# ----------------------------------------------------------------------------------------------
# one preset


def _videos(fs: FeatureSet, names: Sequence[str], window: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(video, features minus running median, labels) for each named video, read one at a time."""
    for name in names:
        rgb, flow = load_features(fs.videos[name].feature_path)
        labels = snippet_labels(fs.intervals[name], len(rgb), fs.snippet_length, fs.stride)
        yield name, deviation(rgb, flow, window), labels


def evaluate_preset(root: Path, spec: SyntheticSpec, window_s: float, percentiles: Sequence[int] = PERCENTILES) -> dict[str, object]:
    """Baseline F1 sweep and the four AUCs on the feature set at ``root``."""
    fs = load_feature_set(root, spec.snippet_length, spec.stride)
    window = max(3, int(round(window_s * spec.fps / spec.stride)) | 1)
    subjects = fs.subjects
    train_subjects = set(subjects[: len(subjects) // 2])
    train = [v for v in fs.videos if fs.videos[v].subject in train_subjects]
    test = [v for v in fs.videos if fs.videos[v].subject not in train_subjects]

    moments = _Moments()
    energies: dict[str, np.ndarray] = {}
    for name, centred, labels in _videos(fs, train, window):
        energies[name] = np.linalg.norm(centred, axis=1)
        moments.add(centred, np.stack([labels == ME, labels == MAE], axis=1))
    mean, scale, weights = moments.solve(RIDGE_ALPHA)

    test_energy, test_probe, test_labels = [], [], []
    for name, centred, labels in _videos(fs, test, window):
        energies[name] = np.linalg.norm(centred, axis=1)
        test_energy.append(energies[name])
        test_probe.append(((centred - mean) / scale) @ weights)
        test_labels.append(labels)
    energy, probe, labels = np.concatenate(test_energy), np.concatenate(test_probe), np.concatenate(test_labels)

    aucs = {}
    for column, (kind, code) in enumerate((("me", ME), ("mae", MAE))):
        keep = (labels == code) | (labels == BACKGROUND)
        aucs[f"auc_energy_{kind}"] = auc(energy[keep], labels[keep] == code)
        aucs[f"auc_probe_{kind}"] = auc(probe[keep, column], labels[keep] == code)

    fps = {name: info.fps for name, info in fs.videos.items()}
    sweep = []
    for percentile in percentiles:
        proposals = [p for name, info in fs.videos.items()
                     for p in energy_proposals(name, energies[name], percentile, info.num_frames, info.fps, fs.snippet_length, fs.stride)]
        metrics = score(proposals, fs.intervals, fps)
        sweep.append((float(metrics["f1"]), percentile, float(metrics["recall"]), float(metrics["precision"])))
    best = max(sweep, key=lambda item: (item[0], -item[1]))
    intervals = [i for v in fs.intervals.values() for i in v]
    return {
        "videos": len(fs.videos),
        "me": sum(i.type == "ME" for i in intervals),
        "mae": sum(i.type == "MaE" for i in intervals),
        "best_f1": best[0],
        "best_percentile": best[1],
        "best_recall": best[2],
        "best_precision": best[3],
        **aucs,
        "window_snippets": window,
        "sweep": [{"percentile": p, "f1": f, "recall": r, "precision": pr} for f, p, r, pr in sweep],
    }


def _table(rows: Sequence[dict[str, object]]) -> str:
    header = ("preset", "D", "videos", "ME", "MaE", "best F1", "pct", "rec", "prec", "ME AUC energy", "ME AUC probe",
              "MaE AUC energy", "MaE AUC probe", "s")
    lines = [" | ".join(header)]
    for r in rows:
        lines.append(" | ".join([
            str(r["preset"]), str(r["feature_dim"]), str(r["videos"]), str(r["me"]), str(r["mae"]),
            f"{r['best_f1']:.3f}", str(r["best_percentile"]), f"{r['best_recall']:.3f}", f"{r['best_precision']:.3f}",
            f"{r['auc_energy_me']:.3f}", f"{r['auc_probe_me']:.3f}", f"{r['auc_energy_mae']:.3f}", f"{r['auc_probe_mae']:.3f}",
            f"{r['seconds']:.0f}",
        ]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), help="presets to measure (default: small casme2 samm)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every preset, e.g. feature_dim=128 (repeatable)")
    parser.add_argument("--cache", type=Path, default=Path(".cache/synthetic"), help="cache folder of generated sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window-s", type=float, default=8.0, help="running-median window in seconds (default 8)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure (and the sweeps) here")
    args = parser.parse_args(argv)
    rows = []
    try:
        if not args.window_s > 0:
            raise BenchmarkError(f"--window-s must be positive, got {args.window_s}")
        overrides = {}
        for item in args.overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise BenchmarkError(f"--set {item!r}: expected key=value")
            overrides[key.strip()] = value.strip()
        specs = {preset: resolve_spec(preset, **overrides) for preset in args.presets}  # fail fast
        for preset, spec in specs.items():
            started = time.perf_counter()
            root = ensure_synthetic(args.cache, preset, args.seed, **overrides)
            figures = evaluate_preset(root, spec, args.window_s)
            rows.append({"preset": preset, "feature_dim": spec.feature_dim, **figures, "seconds": time.perf_counter() - started})
            print(f"{preset}: done in {rows[-1]['seconds']:.0f} s", file=sys.stderr)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(_table(rows))
    if args.json:
        io.write_json(args.json, {"seed": args.seed, "window_s": args.window_s, "overrides": overrides, "presets": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
