"""Score anyone's proposals with the MEGC protocol and print the figures as one JSON line.

::

    python -m pwes.evaluate --gt annotations.csv --videos videos.csv --pred proposals.csv

``videos.csv`` and ``annotations.csv`` are in the feature-set layout (pwes.data.layout); every
video listed in ``videos.csv`` is evaluated. The proposals CSV has columns
``video,onset,offset,score`` and optionally ``type`` (ME/MaE; typed by duration when absent);
other columns are ignored. Frames are 0-based and inclusive. Bad input prints ``error: <message>``
naming the file and line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from pwes.evaluation.megc import MatchConfig, read_ground_truth, read_proposals_csv, score


def build_parser() -> argparse.ArgumentParser:
    """The command-line options; the matching flags mirror :class:`MatchConfig`."""
    parser = argparse.ArgumentParser(prog="python -m pwes.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="annotations.csv: video,subject,onset,apex,offset,type")
    parser.add_argument("--videos", required=True, help="videos.csv: video,subject,num_frames,fps")
    parser.add_argument("--pred", required=True, help="proposals CSV: video,onset,offset,score[,type]")
    parser.add_argument("--iou-threshold", type=float, default=MatchConfig.iou_threshold, help="minimum IoU of a match (default %(default)s)")
    parser.add_argument("--class-agnostic", action="store_true", help="match proposals to ground truths of either type")
    parser.add_argument("--one-to-many", action="store_true", help="let one proposal match several ground truths")
    parser.add_argument("--no-iou-plus-one", action="store_true", help="interval length offset-onset instead of offset-onset+1")
    parser.add_argument("--me-max-seconds", type=float, default=0.5, help="ME cut for proposals without a type column (default %(default)s)")
    return parser


def _json_safe(value: float | int) -> float | int | None:
    """NaN and infinities become null, so the line stays valid JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scorer; returns the exit status (0, or 2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        config = MatchConfig(args.iou_threshold, args.class_agnostic, args.one_to_many, not args.no_iou_plus_one)
        if not (math.isfinite(args.me_max_seconds) and args.me_max_seconds > 0):
            raise ValueError(f"--me-max-seconds must be positive, got {args.me_max_seconds}")
        videos, intervals = read_ground_truth(args.videos, args.gt)
        proposals = read_proposals_csv(args.pred, videos, args.me_max_seconds)
        metrics = score(proposals, intervals, {name: info.fps for name, info in videos.items()}, config)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({key: _json_safe(value) for key, value in metrics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
