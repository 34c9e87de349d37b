"""Score anyone's proposals with the MEGC protocol and print the figures as one JSON line.

::

    python -m pwes.evaluate --gt annotations.csv --videos videos.csv --pred proposals.csv

``videos.csv`` and ``annotations.csv`` are in the feature-set layout (pwes.data.layout); every
video listed in ``videos.csv`` is evaluated. The proposals CSV has columns
``video,onset,offset,score`` and optionally ``type`` (ME/MaE; typed by duration when absent);
other columns are ignored. Frames are 0-based and inclusive. Bad input prints ``error: <message>``
naming the file and line and exits with status 2.

``--pred-format lgsnet`` reads the LGSNet repository's ``test_detection/*.txt`` instead (a file,
or the folder: every ``.txt`` in it): tab-separated ``video onset offset score [type]`` without a
header, fractional frames rounded to the nearest frame (:mod:`pwes.evaluation.lgsnet`).
``--subjects s15,s16`` scores only those subjects' videos (one fold's test videos); proposals
of other videos are left out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from pwes.evaluation.lgsnet import prediction_files, read_lgsnet_predictions
from pwes.evaluation.megc import MatchConfig, score
from pwes.evaluation.proposal_files import read_ground_truth, read_proposals_csv


def build_parser() -> argparse.ArgumentParser:
    """The command-line options; the matching flags mirror :class:`MatchConfig`."""
    parser = argparse.ArgumentParser(prog="python -m pwes.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="annotations.csv: video,subject,onset,apex,offset,type")
    parser.add_argument("--videos", required=True, help="videos.csv: video,subject,num_frames,fps")
    parser.add_argument("--pred", required=True, help="proposals CSV: video,onset,offset,score[,type]; with --pred-format lgsnet a .txt file or a test_detection/ folder")
    parser.add_argument("--pred-format", choices=("csv", "lgsnet"), default="csv",
                        help="csv (pwes's proposals.csv, default) or lgsnet: tab-separated 'video onset offset score [type]' lines "
                             "without a header, fractional frames rounded to the nearest frame, intervals clipped to the video")
    parser.add_argument("--subjects", default=None, metavar="S1,S2",
                        help="score only the videos of these subjects (comma-separated, as in videos.csv), e.g. one fold's")
    parser.add_argument("--iou-threshold", type=float, default=MatchConfig.iou_threshold, help="minimum IoU of a match (default %(default)s)")
    parser.add_argument("--class-agnostic", action="store_true", help="match proposals to ground truths of either type")
    parser.add_argument("--one-to-many", action="store_true", help="let one proposal match several ground truths")
    parser.add_argument("--no-iou-plus-one", action="store_true", help="interval length offset-onset instead of offset-onset+1")
    parser.add_argument("--me-max-seconds", type=float, default=0.5, help="ME cut for proposals without a type column (default %(default)s)")
    return parser


def _json_safe(value: float | int) -> float | int | None:
    """NaN and infinities become null, so the line stays valid JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def only_subjects(subjects: str, videos: dict, intervals: dict, proposals: list, videos_csv: str) -> tuple[dict, dict, list]:
    """The videos, intervals and proposals of the listed subjects (``s15,s16``); an unknown subject
    is an error naming the known ones."""
    wanted = [s.strip() for s in subjects.split(",") if s.strip()]
    known = list(dict.fromkeys(v.subject for v in videos.values()))
    unknown = [s for s in wanted if s not in known]
    if not wanted or unknown:
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise ValueError(f"--subjects {subjects!r}: {'no subject given' if not wanted else 'unknown subject ' + repr(unknown[0])} (subjects in {videos_csv}: {shown})")
    kept = {name: info for name, info in videos.items() if info.subject in wanted}
    return kept, {name: intervals[name] for name in kept}, [p for p in proposals if p.video in kept]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scorer; returns the exit status (0, or 2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        config = MatchConfig(args.iou_threshold, args.class_agnostic, args.one_to_many, not args.no_iou_plus_one)
        if not (math.isfinite(args.me_max_seconds) and args.me_max_seconds > 0):
            raise ValueError(f"--me-max-seconds must be positive, got {args.me_max_seconds}")
        videos, intervals = read_ground_truth(args.videos, args.gt)
        if args.pred_format == "lgsnet":
            proposals, clipped = read_lgsnet_predictions(prediction_files(args.pred), videos, args.me_max_seconds)
            if clipped:
                print(f"note: {clipped} LGSNet interval(s) reached past their video and were clipped to it", file=sys.stderr)
        else:
            proposals = read_proposals_csv(args.pred, videos, args.me_max_seconds)
        if args.subjects is not None:
            videos, intervals, proposals = only_subjects(args.subjects, videos, intervals, proposals, args.videos)
        metrics = score(proposals, intervals, {name: info.fps for name, info in videos.items()}, config)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({key: _json_safe(value) for key, value in metrics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
