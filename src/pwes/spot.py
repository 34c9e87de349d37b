"""Spot expressions in your own recordings with a trained model.

    python -m pwes.spot --ckpt outputs/runs/.../fold-s01/checkpoints/last.ckpt features/*.npz --out spots/
    python -m pwes.spot --ckpt model.ckpt video.mp4 --rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt --out spots/

INPUT is a feature file in the layout (``.npz`` with ``rgb`` and ``flow``), a feature-set folder
(its videos.csv gives frame counts and fps), or — when I3D weights are given — a video file or a
folder of frames, which is first run through ``pwes.extract``. For each input it writes
``<name>.csv`` and ``<name>.json`` (onset/offset in frames and seconds, type, score) and
``<name>.png`` (:mod:`pwes.spot_plot`: attention over time with the intervals drawn on it; the
annotated intervals too when the input's feature-set folder has an annotations.csv).

Features cut with other snippet settings than the model's are refused: the settings a file
records (:mod:`pwes.data.recorded`), and, where a videos.csv gives the frame count, the snippet
count against the model's stride.

``<name>`` is the feature file's stem; inputs whose stems collide (``a/x.npz``, ``b/x.npz``) are
named after their folders too (``a__x``, ``b__x``). Outputs that an earlier run wrote for the
same input are replaced; outputs of another input are never replaced unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pwes import io
from pwes.checkpoint_info import CheckpointInfo, CheckpointInfoError
from pwes.data.batch import NUM_CLASSES, VideoItem, collate
from pwes.data import csvfile
from pwes.data.layout import Interval, LayoutError, load_features, read_tables
from pwes.data.recorded import check_recorded, read_recorded, snippet_count_problem
from pwes.extract.video import parse_crop_box
from pwes.extract.face import FACE_MODES
from pwes.inference.maps import proposals_from_prediction
from pwes.inference.proposals import Proposal
from pwes.spot_plot import Threshold, label_intervals, plot  # noqa: F401 - label_intervals re-exported

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
    output: str = ""  # output file stem, unique among the inputs (see output_names)
    annotated: list[Interval] | None = field(default=None, repr=False)  # from an annotations.csv beside the features
    crop: dict[str, str] | None = None  # the video's crop_boxes.csv row (pwes.extract): where its frames were cut from


def load_model(path: Path, device: str) -> tuple[torch.nn.Module, CheckpointInfo]:
    """The trained module and the record the training loop stored beside its weights."""
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
    try:
        info = CheckpointInfo.from_dict(metadata)
    except CheckpointInfoError as err:
        raise SpotError(f"{path}: the checkpoint's {err}; use a checkpoint written by pwes.train") from None
    if not isinstance(checkpoint.get("state_dict"), dict) or not checkpoint["state_dict"]:
        raise SpotError(f"{path}: the checkpoint has pwes metadata but no model weights ('state_dict'); use fold-*/checkpoints/last.ckpt or model/checkpoints/last.ckpt of a run")
    try:
        model = PWESModule.load_from_checkpoint(path, map_location=device)
    except Exception as err:  # noqa: BLE001 - weights that do not fit the network, missing hyperparameters
        reason = " ".join(str(err).split())[:240] or type(err).__name__
        raise SpotError(f"{path}: the checkpoint's weights cannot be loaded into the PWES network ({type(err).__name__}: {reason})") from None
    model.eval()
    return model, info


def read_video_table(path: Path) -> dict[str, tuple[int, float | None]]:
    """``num_frames`` and ``fps`` (optional column) by video from a videos.csv; one-line errors
    naming the file and line."""
    table: dict[str, tuple[int, float | None]] = {}
    for line, row in csvfile.read_rows(path, ("video", "num_frames"), optional=("fps",), allow_extra=True, error=SpotError):
        where = f"{path}:{line}"
        frames = csvfile.number(row["num_frames"], "num_frames", where, SpotError)
        if not math.isfinite(frames) or frames != int(frames) or frames <= 0:
            raise SpotError(f"{where}: num_frames {row['num_frames']!r} must be a positive whole number")
        fps = None
        if row.get("fps"):
            fps = csvfile.number(row["fps"], "fps", where, SpotError)
            if not math.isfinite(fps) or fps <= 0:
                raise SpotError(f"{where}: fps {row['fps']!r} must be a positive number")
        table[row["video"]] = (int(frames), fps)
    return table


def read_annotations(root: Path) -> dict[str, list[Interval]]:
    """Annotated intervals of a feature-set folder (for the plots only), or {} when it has none.
    A broken annotations.csv is reported and skipped: spotting does not need it."""
    if not (root / "annotations.csv").is_file() or not (root / "videos.csv").is_file():
        return {}
    try:
        return read_tables(root / "videos.csv", root / "annotations.csv", warn_empty=False)[1]
    except LayoutError as err:
        print(f"warning: {err}; annotated intervals are not drawn", file=sys.stderr)
        return {}


def read_crop_boxes(root: Path) -> dict[str, dict[str, str]]:
    """The crop region rows pwes.extract recorded in ``root/crop_boxes.csv`` ({} when absent); a
    broken file is reported and skipped: spotting does not need it."""
    from pwes.extract.region import CROP_FILE, read_crop_rows

    try:
        return read_crop_rows(root / CROP_FILE)
    except (LayoutError, OSError) as err:
        print(f"warning: {err}; the crop boxes are not copied into the results", file=sys.stderr)
        return {}


def read_inputs(paths: list[Path], info: CheckpointInfo, fps_override: float | None, videos_csv: Path | None) -> list[SpotInput]:
    """Feature inputs: .npz files and feature-set folders (videos.csv beside features/). A file
    given twice is read once; every problem is one line naming the file (and line)."""
    snippet, stride = int(info.snippet_length), int(info.stride)
    inputs: list[SpotInput] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir() and (path / "features").is_dir():
            files = sorted((path / "features").glob("*.npz"))
            root = path
        elif path.suffix == ".npz":
            files = [path]
            root = path.parent.parent
        else:
            raise SpotError(f"{path}: not a feature file (.npz) or feature-set folder; pass --rgb-weights and --flow-weights to spot in videos")
        if not files:
            raise SpotError(f"{path}: no .npz feature files in {path / 'features'}")
        table = videos_csv or root / "videos.csv"
        rows = read_video_table(table) if table.is_file() else {}
        annotations = read_annotations(root) if videos_csv is None else {}
        crops = read_crop_boxes(root)
        for file in files:
            if not file.is_file():
                raise SpotError(f"{file}: file not found")
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            rgb, flow = load_features(file, check=True)  # shapes, NaN/Inf and overflow-sized values, naming the file
            recorded = read_recorded(file)
            fix = f"extract them again with --snippet {snippet} --stride {stride}, or spot with a model trained on features like these"
            check_recorded(file, recorded, snippet, stride, "the model was trained on", fix)
            name = file.stem
            frames, fps = rows.get(name, (None, None))
            if frames is not None and (problem := snippet_count_problem(rgb.shape[0], frames, snippet, stride)) is not None:
                raise SpotError(f"{file}: {problem} (num_frames from {table}; snippet settings of the model); {fix}")
            estimated = frames is None
            num_frames = frames if frames is not None else (rgb.shape[0] - 1) * stride + snippet
            fps = fps_override or fps or recorded.get("fps") or float(info.fps)
            inputs.append(SpotInput(name, rgb, flow, num_frames, fps, file, estimated, annotated=annotations.get(name), crop=crops.get(name)))
    output_names(inputs)
    return inputs


def output_names(items: list[SpotInput]) -> None:
    """Give every input a unique output stem: its file stem, or, where stems collide, the stem
    prefixed with as many of its folders as tell them apart (``features`` folders skipped)."""
    by_stem: dict[str, list[SpotInput]] = defaultdict(list)
    for item in items:
        by_stem[item.name].append(item)
    for stem, group in by_stem.items():
        if len(group) == 1:
            group[0].output = stem
            continue
        folders = [[part for part in item.source.resolve().parent.parts[1:] if part != "features"] for item in group]
        for depth in range(1, max(len(f) for f in folders) + 1):
            names = ["__".join([*f[-depth:], stem]) for f in folders]
            if len(set(names)) == len(names):
                break
        for item, name in zip(group, names):
            item.output = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    counts = defaultdict(list)
    for item in items:
        counts[item.output].append(item)
    clash = next((group for group in counts.values() if len(group) > 1), None)
    if clash:
        raise SpotError(f"{clash[0].source} and {clash[1].source} would both be written as {clash[0].output}.*; rename one of them or spot them into different --out folders")


def check_existing_outputs(out: Path, items: list[SpotInput], overwrite: bool) -> None:
    """Refuse to replace another input's results (an earlier run's outputs for the same input
    are replaced: a rerun refreshes them)."""
    if overwrite:
        return
    for item in items:
        record = out / f"{item.output}.json"
        others = [out / f"{item.output}{suffix}" for suffix in (".csv", ".png") if (out / f"{item.output}{suffix}").exists()]
        if not record.exists() and not others:
            continue
        try:
            source = json.loads(record.read_text(encoding="utf-8")).get("source")
        except (OSError, ValueError, AttributeError):
            source = None
        if source is None or Path(source).resolve() != item.source.resolve():
            held = f"the results of {source}" if source else "a file pwes.spot did not write for this input"
            raise SpotError(f"{record if record.exists() else others[0]} holds {held}, not of {item.source}; pass another --out, or --overwrite to replace it")


def check_compatible(item: SpotInput, info: CheckpointInfo, fps_mismatch: str) -> str | None:
    """Refuse inputs the model cannot read; return a warning for an fps it was not trained at."""
    want = tuple(info.feature_dims)
    have = (item.rgb.shape[1], item.flow.shape[1])
    if have != want:
        raise SpotError(f"{item.source}: feature widths rgb={have[0]}, flow={have[1]} but the checkpoint was trained on rgb={want[0]}, flow={want[1]}")
    trained = float(info.fps)
    if not math.isclose(item.fps, trained, rel_tol=FPS_TOLERANCE):
        message = (
            f"{item.source}: {item.fps:g} fps but the model was trained at {trained:g} fps, so its "
            f"{info.snippet_length}-frame snippets span a different time"
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
    prediction = model.predict_step(batch, 0)[0]
    maps = {"attention": prediction.attention, "class activations": prediction.tcam}
    bad = [what for what, values in maps.items() if not np.isfinite(np.asarray(values, dtype=np.float64)).all()]
    if bad:
        peak = float(max(np.abs(item.rgb).max(), np.abs(item.flow).max()))
        raise SpotError(f"{item.source}: the model's {' and '.join(bad)} are NaN or Inf on these features (largest |value| {peak:.3g}); the features overflow the network's arithmetic: check the extractor's output")
    return prediction


def write_outputs(out: Path, item: SpotInput, proposals: list[Proposal], threshold: float, checkpoint: Path) -> None:
    rows = [
        {"onset": p.onset, "offset": p.offset, "onset_s": round(p.onset / item.fps, 3), "offset_s": round((p.offset + 1) / item.fps, 3), "type": p.type, "score": round(p.score, 6)}
        for p in sorted(proposals, key=lambda p: p.onset)
    ]
    bad = next((r for r in rows if not math.isfinite(r["score"])), None)
    if bad is not None:
        raise SpotError(f"{item.source}: interval [{bad['onset']}, {bad['offset']}] has score {bad['score']}: the model's output overflowed on these features; nothing written")
    stem = item.output or item.name
    io.write_csv(out / f"{stem}.csv", ["onset", "offset", "onset_s", "offset_s", "type", "score"], rows)
    io.write_json(out / f"{stem}.json", {
        "video": item.name, "source": str(item.source.resolve()), "checkpoint": str(checkpoint), "fps": item.fps, "num_frames": item.num_frames,
        "num_frames_estimated": item.frames_estimated, "score_threshold": None if math.isinf(threshold) else threshold,
        "crop": _crop_record(item.crop), "intervals": rows,
    })


def _crop_record(row: dict[str, str] | None) -> dict[str, Any] | None:
    """A crop_boxes.csv row with its numbers as numbers (None when the features came without one)."""
    if row is None:
        return None
    return {k: (int(v) if v.isdigit() else v or None) for k, v in row.items() if k != "video"}


def extract_inputs(paths: list[Path], args: argparse.Namespace, info: CheckpointInfo) -> list[Path]:
    """Run feature extraction (pwes.extract) on video inputs with the model's snippet geometry;
    returns the feature-set folder it wrote. A video that fails is reported and skipped."""
    from pwes.extract.pipeline import ExtractionSettings, extract_videos
    from pwes.extract.video import FrameTransform

    if not (args.rgb_weights and args.flow_weights):
        raise SpotError(f"{paths[0]}: a video input needs --rgb-weights and --flow-weights (I3D checkpoints) to extract features first")
    root = args.out / "features-extracted"
    settings = ExtractionSettings(
        snippet=int(info.snippet_length), stride=int(info.stride), device=args.device,
        transform=FrameTransform(resize=args.resize, crop_size=args.crop_size, crop_box=args.crop_box), face=args.face,
    )
    results = extract_videos([str(p) for p in paths], root, args.rgb_weights, args.flow_weights, settings, fps=args.fps)
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        print(f"error: {result.path}: {result.message}", file=sys.stderr)
    if len(failed) == len(results):
        raise SpotError(f"feature extraction failed for every video ({len(failed)}); see the lines above")
    return [root]


def check_options(args: argparse.Namespace) -> None:
    """Numeric options that argparse accepts but spotting cannot use."""
    for option, value in (("--threshold", args.threshold), ("--fps", args.fps)):
        if value is not None and not math.isfinite(value):
            raise SpotError(f"{option} {value}: not a finite number")
    if args.fps is not None and args.fps <= 0:
        raise SpotError(f"--fps {args.fps:g}: must be a positive frame rate")


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
    parser.add_argument("--crop-box", type=parse_crop_box, default=None, metavar="X,Y,W,H", help="video inputs: fixed region cut from every frame (as pwes.extract; wins over --face)")
    parser.add_argument("--face", choices=FACE_MODES, default="none", help="video inputs: auto = one detected face box per video (as pwes.extract --face auto; needs pip install 'pwes[face]')")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs in --out that another input wrote (by default only a rerun's own outputs are replaced)")
    args = parser.parse_args(argv)
    try:
        check_options(args)
        model, info = load_model(args.ckpt, args.device)
        videos = [p for p in args.inputs if p.suffix.lower() in VIDEO_SUFFIXES or (p.is_dir() and not (p / "features").is_dir())]
        features = [p for p in args.inputs if p not in videos]
        if videos:
            features += extract_inputs(videos, args, info)
        items = read_inputs(features, info, args.fps, args.videos_csv)
        check_existing_outputs(args.out, items, args.overwrite)
        threshold = args.threshold if args.threshold is not None else info.threshold()
        config = info.proposal_config()  # the plain maps for checkpoints from before proposals.maps
        snippet, stride = int(info.snippet_length), int(info.stride)
        for item in items:
            warning = check_compatible(item, info, args.fps_mismatch)
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            prediction = predict(model, item, args.device)
            found = proposals_from_prediction(prediction, item.num_frames, item.fps, snippet, stride, config)
            proposals = [p for p in found if p.score >= threshold]
            write_outputs(args.out, item, proposals, threshold, args.ckpt)
            if not args.no_plot:
                cut = Threshold(threshold, "set by --threshold" if args.threshold is not None else "calibrated on the training videos' point labels", len(found) - len(proposals))
                plot(args.out / f"{item.output}.png", item, prediction, proposals, stride, snippet, cut)
            counts = {t: sum(p.type == t for p in proposals) for t in ("ME", "MaE")}
            region = f" [{item.crop['method']} box {','.join(item.crop[k] for k in ('x', 'y', 'width', 'height'))}]" if item.crop else ""
            print(f"{item.name}{region}: {len(proposals)} interval(s) ({counts['ME']} ME, {counts['MaE']} MaE) -> {args.out / item.output}.csv")
    except (SpotError, LayoutError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
