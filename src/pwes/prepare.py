"""``python -m pwes.prepare {casme2,samm,casme3} --annotations FILE --features DIR --out ROOT``:
turn a real dataset's annotation file(s) and existing feature files into the feature-set layout,
and print what was imported, repaired, dropped and left unmatched. ``docs/datasets.md`` explains
every rule; this module only parses, calls :func:`pwes.datasets.import_dataset` and prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pwes.datasets import ANNOTATION_FORMATS, DATASETS, ZERO_ONSET_RULES, DatasetImportError, import_dataset
from pwes.data.layout import LayoutError


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m pwes.prepare``."""
    defaults = "; ".join(
        f"{s.name}: snippet {s.snippet_length}, stride {s.stride}, fps {s.fps:g}" for s in DATASETS.values()
    )
    parser = argparse.ArgumentParser(
        prog="python -m pwes.prepare",
        description="Import a dataset's annotations and existing feature files into the pwes feature-set layout.",
        epilog=f"Defaults per dataset: {defaults}. See docs/datasets.md.",
    )
    parser.add_argument("dataset", choices=list(DATASETS), help="which dataset the files belong to")
    parser.add_argument(
        "--annotations", action="append", required=True, metavar="FILE",
        help="annotation workbook or CSV (repeatable); for casme3 prefix ME= or MaE= to type every row of a file without a type column",
    )
    parser.add_argument("--features", required=True, metavar="DIR",
                        help="folder of per-video feature files (searched recursively); a folder holding rgb_feature/ and flow_feature/ "
                             "(the LGSNet release) pairs the two streams by file name")
    parser.add_argument("--flow-features", metavar="DIR",
                        help="the flow stream's folder when the streams live in two folders not named rgb_feature/flow_feature "
                             "(--features is then the rgb one)")
    parser.add_argument("--out", required=True, metavar="ROOT", help="feature-set folder to write")
    parser.add_argument("--annotation-format", choices=ANNOTATION_FORMATS, default="official",
                        help="the dataset's own workbook (official) or the LGSNet release's CSV (lgsnet)")
    parser.add_argument("--frames", metavar="DIR", help="folder of frame-image folders, one per video: video lengths counted from it")
    parser.add_argument("--snippet", type=int, metavar="N", help="frames per feature snippet (default: stored in the files, else per dataset)")
    parser.add_argument("--stride", type=int, metavar="N", help="frames between snippet starts (default: stored, else the snippet length)")
    parser.add_argument("--fps", type=float, help="frame rate written to videos.csv (default per dataset)")
    parser.add_argument("--first-frame", type=int, choices=(0, 1), default=1,
                        help="the number the annotations give a video's first frame (default 1)")
    parser.add_argument("--unknown-offset", default="mirror", metavar="RULE",
                        help="rows whose offset is not annotated (0): mirror (offset = 2*apex - onset, default), apex, apex+N, or drop")
    parser.add_argument("--zero-onset", choices=ZERO_ONSET_RULES, default="first-frame",
                        help="rows with onset 0 in a 1-based sheet (expressions under way when the video starts): "
                             "start them at the first frame (default) or drop them (the old rule)")
    parser.add_argument("--sheet", help="the annotation sheet's name when it differs from the dataset's usual one")
    parser.add_argument("--overwrite", action="store_true", help="replace a feature set already in ROOT")
    parser.add_argument("--strict", action="store_true",
                        help="refuse annotated videos that have no feature file (default: leave them out and list them)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import; print the summary (stdout) or ``error: ...`` (stderr, exit code 2)."""
    args = build_parser().parse_args(argv)
    try:
        report = import_dataset(
            args.dataset,
            args.annotations,
            args.features,
            args.out,
            annotation_format=args.annotation_format,
            frames_dir=args.frames,
            flow_features_dir=args.flow_features,
            snippet_length=args.snippet,
            stride=args.stride,
            fps=args.fps,
            first_frame=args.first_frame,
            unknown_offset=args.unknown_offset,
            zero_onset=args.zero_onset,
            sheet=args.sheet,
            overwrite=args.overwrite,
            strict=args.strict,
        )
    except (DatasetImportError, LayoutError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
