"""Spot expressions in your own recordings with a trained model.

    python -m pwes.spot --ckpt outputs/runs/.../fold-s01/checkpoints/last.ckpt features/*.npz --out spots/
    python -m pwes.spot --ckpt model.ckpt video.mp4 --rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt --out spots/

INPUT is a feature file in the layout (``.npz`` with ``rgb`` and ``flow``), a feature-set folder
(its videos.csv gives frame counts and fps), or — when I3D weights are given — a video file or a
folder of frames, which is first run through ``pwes.extract``. For each input it writes
``<video>.csv`` and ``<video>.json`` (onset/offset in frames and seconds, type, score) and
``<video>.png`` (attention over time with the intervals drawn on it).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pwes import io
from pwes.data.batch import NUM_CLASSES, VideoItem, collate
from pwes.data.layout import LayoutError, load_features
from pwes.inference.maps import proposals_from_prediction
from pwes.inference.proposals import Proposal, ProposalConfig

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm"}
FPS_TOLERANCE = 0.05  # relative fps difference accepted without --fps-mismatch=warn


class SpotError(ValueError):
    """A checkpoint or input cannot be used; the message names the file."""


@dataclass
class SpotInput:
    """One video's features and the facts needed to turn snippets into frames and seconds."""

    name: str
    rgb: np.ndarray
    flow: np.ndarray
    num_frames: int
    fps: float
    source: Path
    frames_estimated: bool = False


def load_model(path: Path, device: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained module and the metadata the training loop stored beside its weights."""
    from pwes.model.module import PWESModule

    if not path.is_file():
        raise SpotError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise SpotError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    metadata = checkpoint.get("pwes") if isinstance(checkpoint, dict) else None
    if not metadata:
        raise SpotError(f"{path}: not a pwes training checkpoint (no 'pwes' metadata); use fold-*/checkpoints/last.ckpt or model/checkpoints/last.ckpt of a run")
    model = PWESModule.load_from_checkpoint(path, map_location=device)
    model.eval()
    return model, metadata


def _videos_csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return {row["video"]: row for row in csv.DictReader(handle) if row.get("video")}


def read_inputs(paths: list[Path], metadata: dict[str, Any], fps_override: float | None, videos_csv: Path | None) -> list[SpotInput]:
    """Feature inputs: .npz files and feature-set folders (videos.csv beside features/)."""
    snippet, stride = int(metadata["snippet_length"]), int(metadata["stride"])
    inputs: list[SpotInput] = []
    for path in paths:
        if path.is_dir() and (path / "features").is_dir():
            files = sorted((path / "features").glob("*.npz"))
            table = path / "videos.csv"
        elif path.suffix == ".npz":
            files = [path]
            table = path.parent.parent / "videos.csv"
        else:
            raise SpotError(f"{path}: not a feature file (.npz) or feature-set folder; pass --rgb-weights and --flow-weights to spot in videos")
        if not files:
            raise SpotError(f"{path}: no .npz feature files in {path / 'features'}")
        table = videos_csv or table
        rows = _videos_csv_rows(table) if table.is_file() else {}
        for file in files:
            if not file.is_file():
                raise SpotError(f"{file}: file not found")
            rgb, flow = load_features(file)
            name = file.stem
            if rgb.shape[0] != flow.shape[0] or rgb.ndim != 2:
                raise SpotError(f"{file}: rgb {rgb.shape} and flow {flow.shape} must be [T, D] with the same T")
            if not (np.isfinite(rgb).all() and np.isfinite(flow).all()):
                raise SpotError(f"{file}: features contain NaN or Inf")
            row = rows.get(name)
            estimated = row is None
            num_frames = int(row["num_frames"]) if row else (rgb.shape[0] - 1) * stride + snippet
            fps = fps_override or (float(row["fps"]) if row else float(metadata["fps"]))
            inputs.append(SpotInput(name, rgb, flow, num_frames, fps, file, estimated))
    return inputs


def check_compatible(item: SpotInput, metadata: dict[str, Any], fps_mismatch: str) -> str | None:
    """Refuse inputs the model cannot read; return a warning for an fps it was not trained at."""
    want = tuple(metadata["feature_dims"])
    have = (item.rgb.shape[1], item.flow.shape[1])
    if have != want:
        raise SpotError(f"{item.source}: feature widths rgb={have[0]}, flow={have[1]} but the checkpoint was trained on rgb={want[0]}, flow={want[1]}")
    trained = float(metadata["fps"])
    if not math.isclose(item.fps, trained, rel_tol=FPS_TOLERANCE):
        message = (
            f"{item.source}: {item.fps:g} fps but the model was trained at {trained:g} fps, so its "
            f"{metadata['snippet_length']}-frame snippets span a different time"
        )
        if fps_mismatch == "refuse":
            raise SpotError(message + "; resample the video to the training fps and extract again, or pass --fps-mismatch warn")
        return message + " (continuing: --fps-mismatch warn)"
    return None


@torch.inference_mode()
def predict(model: torch.nn.Module, item: SpotInput, device: str) -> Any:
    """Attention, TCAM and video scores of one video."""
    batch = collate([
        VideoItem(item.name, "", torch.from_numpy(item.rgb), torch.from_numpy(item.flow), torch.zeros(NUM_CLASSES), torch.zeros(item.rgb.shape[0], NUM_CLASSES), item.num_frames, item.fps)
    ]).to(device)
    return model.predict_step(batch, 0)[0]


def plot(path: Path, item: SpotInput, prediction: Any, proposals: list[Proposal], stride: int, snippet: int) -> None:
    """Attention (and class activations) over time with the spotted intervals shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = (np.arange(len(prediction.attention)) * stride + (snippet - 1) / 2) / item.fps
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(t, prediction.attention, color="black", lw=1.2, label="attention")
    ax.plot(t, prediction.tcam[:, 0], color="tab:red", lw=0.8, alpha=0.7, label="ME activation")
    ax.plot(t, prediction.tcam[:, 1], color="tab:blue", lw=0.8, alpha=0.7, label="MaE activation")
    for p in proposals:
        color = "tab:red" if p.type == "ME" else "tab:blue"
        ax.axvspan(p.onset / item.fps, (p.offset + 1) / item.fps, color=color, alpha=0.2)
        ax.text(p.onset / item.fps, 1.02, f"{p.type} {p.score:.2f}", fontsize=7, color=color, transform=ax.get_xaxis_transform())
    ax.set_xlim(0, item.num_frames / item.fps)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(f"{item.name}: {len(proposals)} interval(s)", fontsize=9, pad=14)
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    fig.tight_layout()
    with io.atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def write_outputs(out: Path, item: SpotInput, proposals: list[Proposal], threshold: float, checkpoint: Path) -> None:
    rows = [
        {"onset": p.onset, "offset": p.offset, "onset_s": round(p.onset / item.fps, 3), "offset_s": round((p.offset + 1) / item.fps, 3), "type": p.type, "score": round(p.score, 6)}
        for p in sorted(proposals, key=lambda p: p.onset)
    ]
    io.write_csv(out / f"{item.name}.csv", ["onset", "offset", "onset_s", "offset_s", "type", "score"], rows)
    io.write_json(out / f"{item.name}.json", {
        "video": item.name, "source": str(item.source), "checkpoint": str(checkpoint), "fps": item.fps, "num_frames": item.num_frames,
        "num_frames_estimated": item.frames_estimated, "score_threshold": None if math.isinf(threshold) else threshold, "intervals": rows,
    })


def extract_inputs(paths: list[Path], args: argparse.Namespace, metadata: dict[str, Any]) -> list[Path]:
    """Run feature extraction (pwes.extract) on video inputs with the model's snippet geometry;
    returns the feature-set folder it wrote. A video that fails is reported and skipped."""
    from pwes.extract.pipeline import ExtractionSettings, extract_videos
    from pwes.extract.video import FrameTransform

    if not (args.rgb_weights and args.flow_weights):
        raise SpotError(f"{paths[0]}: a video input needs --rgb-weights and --flow-weights (I3D checkpoints) to extract features first")
    root = args.out / "features-extracted"
    settings = ExtractionSettings(
        snippet=int(metadata["snippet_length"]), stride=int(metadata["stride"]), device=args.device,
        transform=FrameTransform(resize=args.resize, crop_size=args.crop_size),
    )
    results = extract_videos([str(p) for p in paths], root, args.rgb_weights, args.flow_weights, settings, fps=args.fps)
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        print(f"error: {result.path}: {result.message}", file=sys.stderr)
    if len(failed) == len(results):
        raise SpotError(f"feature extraction failed for every video ({len(failed)}); see the lines above")
    return [root]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pwes.spot", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help=".npz feature files, feature-set folders, or videos (with --rgb-weights/--flow-weights)")
    parser.add_argument("--ckpt", required=True, type=Path, help="a checkpoint written by training (fold-*/checkpoints/last.ckpt or model/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--threshold", type=float, default=None, help="keep intervals scoring at least this (default: the threshold calibrated on the training videos' point labels)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the inputs when no videos.csv gives it (default: the model's)")
    parser.add_argument("--videos-csv", type=Path, default=None, help="videos.csv with num_frames and fps of the inputs")
    parser.add_argument("--fps-mismatch", choices=["refuse", "warn"], default="refuse", help="inputs at another fps than training: refuse (default) or warn and continue")
    parser.add_argument("--rgb-weights", type=Path, default=None, help="I3D RGB checkpoint, to spot directly in videos")
    parser.add_argument("--flow-weights", type=Path, default=None, help="I3D flow checkpoint, to spot directly in videos")
    parser.add_argument("--resize", type=int, default=256, help="video inputs: shorter side before the centre crop (as pwes.extract)")
    parser.add_argument("--crop-size", type=int, default=224, help="video inputs: centre crop fed to I3D (as pwes.extract)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    try:
        model, metadata = load_model(args.ckpt, args.device)
        videos = [p for p in args.inputs if p.suffix.lower() in VIDEO_SUFFIXES or (p.is_dir() and not (p / "features").is_dir())]
        features = [p for p in args.inputs if p not in videos]
        if videos:
            features += extract_inputs(videos, args, metadata)
        items = read_inputs(features, metadata, args.fps, args.videos_csv)
        threshold = args.threshold if args.threshold is not None else float(metadata.get("score_threshold", float("-inf")))
        # checkpoints written before proposals.maps existed built their threshold on the plain maps
        config = ProposalConfig(**{"maps": "plain", **metadata["proposals"]})
        snippet, stride = int(metadata["snippet_length"]), int(metadata["stride"])
        for item in items:
            warning = check_compatible(item, metadata, args.fps_mismatch)
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            prediction = predict(model, item, args.device)
            proposals = [p for p in proposals_from_prediction(prediction, item.num_frames, item.fps, snippet, stride, config) if p.score >= threshold]
            write_outputs(args.out, item, proposals, threshold, args.ckpt)
            if not args.no_plot:
                plot(args.out / f"{item.name}.png", item, prediction, proposals, stride, snippet)
            counts = {t: sum(p.type == t for p in proposals) for t in ("ME", "MaE")}
            print(f"{item.name}: {len(proposals)} interval(s) ({counts['ME']} ME, {counts['MaE']} MaE) -> {args.out / item.name}.csv")
    except (SpotError, LayoutError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
