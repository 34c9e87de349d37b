"""``python -m pwes.extract``: videos or frame folders to a PWES feature set (TV-L1 flow + two-stream I3D).

Exit status 0 when every input was extracted (or skipped), 2 for a bad setting or when any input
failed; each failure is one ``error:`` line on stderr and the other inputs are still extracted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tqdm import tqdm

from pwes.extract.face import DEFAULT_MARGIN, DEFAULT_SAMPLES, FACE_MODES
from pwes.extract.flow import FlowWorkerError
from pwes.extract.pipeline import SUBJECT_RULES, ExtractionSettings, VideoResult, extract_videos
from pwes.extract.video import FrameTransform, parse_crop_box


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m pwes.extract",
        description="Extract TV-L1 optical flow and two-stream I3D snippet features from videos or frame folders "
        "into a PWES feature set (see docs/extraction.md).",
    )
    add = parser.add_argument
    add("inputs", nargs="+", metavar="INPUT", help="video files (anything OpenCV decodes) or folders of frame images (natural name order)")
    add("--out", required=True, metavar="ROOT", help="feature-set folder: features/<video>.npz, videos.csv (merged), annotations.csv")
    add("--rgb-weights", required=True, metavar="FILE", help="rgb_imagenet.pt from the public pytorch-i3d release")
    add("--flow-weights", required=True, metavar="FILE", help="flow_imagenet.pt from the public pytorch-i3d release")
    add("--snippet", required=True, type=int, metavar="N", help="frames per snippet (8 for CAS(ME)^2 / CAS(ME)^3, 32 for SAMM-LV)")
    add("--stride", type=int, metavar="N", help="frames between snippet starts (default: the snippet length, no overlap)")
    add("--device", default="cpu", help="where I3D runs: cpu or cuda (optical flow always runs on the CPU)")
    add("--batch-size", type=int, default=8, metavar="N", help="snippets per I3D forward pass (default 8)")
    add("--workers", type=int, default=_default_workers(), metavar="N",
        help="processes for TV-L1 flow; 0 = this process with OpenCV's threads (default: all CPUs)")  # fmt: skip
    add("--resize", type=int, default=256, metavar="PX", help="shorter side after resizing (default 256)")
    add("--crop-size", type=int, default=224, metavar="PX", help="side of the centre crop fed to I3D (default 224)")
    add("--crop-box", type=parse_crop_box, metavar="X,Y,W,H", help="fixed region (e.g. the face) cut from every source frame before resizing; wins over --face")
    add("--face", choices=FACE_MODES, default="none",
        help="auto: detect the face on sampled frames and cut one fixed square box per video (needs pip install 'pwes[face]'); none: the whole frame (default)")  # fmt: skip
    add("--face-margin", type=float, default=DEFAULT_MARGIN, metavar="F",
        help=f"--face auto: padding on each side as a share of the detected face's size (default {DEFAULT_MARGIN})")  # fmt: skip
    add("--face-samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
        help=f"--face auto: frames, spread evenly over the video, that the detector looks at (default {DEFAULT_SAMPLES})")  # fmt: skip
    add("--fps", type=float, help="frame rate for videos.csv; required for frame folders, overrides the container's rate")
    add("--subject", help="subject id for every input (default: derived, see --subject-from)")
    add("--subject-from", choices=SUBJECT_RULES, default="parent",
        help="parent: the parent folder's name (default); prefix: the video name before the first '_'")  # fmt: skip
    add("--frames-from", metavar="DIR", help="cache folder for decoded frames and flow, one subfolder per video, reused on later runs")
    add("--skip-existing", action="store_true", help="skip videos that already have features and a videos.csv row in ROOT")
    add("--quiet", action="store_true", help="no progress bars")
    return parser


def _report(result: VideoResult) -> None:
    for warning in result.warnings:
        tqdm.write(f"warning: {result.name}: {warning}", file=sys.stderr)
    if result.status == "failed":
        tqdm.write(f"error: {result.message}", file=sys.stderr)
    elif result.status == "skipped":
        tqdm.write(f"skipped {result.name}: {result.message}")
    else:
        where = f", {result.crop}" if result.crop else ""
        tqdm.write(f"ok {result.name}: {result.num_frames} frames, {result.num_snippets} snippets{where}, {result.seconds:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, extract, print; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.crop_box is not None and args.face != "none":
        print(f"warning: --crop-box {','.join(map(str, args.crop_box))} is used for every video; --face {args.face} is not", file=sys.stderr)
    try:
        settings = ExtractionSettings(
            snippet=args.snippet,
            stride=args.stride,
            transform=FrameTransform(args.resize, args.crop_size, args.crop_box),
            batch_size=args.batch_size,
            device=args.device,
            workers=args.workers,
            face=args.face,
            face_margin=args.face_margin,
            face_samples=args.face_samples,
        )
        results = extract_videos(
            args.inputs,
            args.out,
            args.rgb_weights,
            args.flow_weights,
            settings,
            subject=args.subject,
            subject_from=args.subject_from,
            fps=args.fps,
            cache_dir=args.frames_from,
            skip_existing=args.skip_existing,
            progress=not args.quiet,
            on_result=_report,
        )
    except (ValueError, OSError, FlowWorkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [r.name for r in results if r.status == "failed"]
    done = sum(r.status == "ok" for r in results)
    print(f"extracted {done} of {len(results)} input(s) into {args.out}")
    if failed:
        print(f"error: {len(failed)} of {len(results)} input(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
