"""The annotation CSV of the LGSNet release, an alternative to the official workbooks:

``subject,video,type,type_idx,startFrame,endFrame,frame_num,length``

``video`` is the video's folder (often a full path, ``/data/rawpic/s15/15_0101disgustingteeth``;
its last parts are parsed by the dataset's video-name parser), ``type`` is
``macro-expression``/``micro-expression`` (or ``type_idx`` 1 = MaE, 2 = ME), ``startFrame`` and
``endFrame`` are the onset and offset as the workbook counts them (from 1), ``frame_num`` is the
video's length in frames (used when neither a frames folder nor the feature files give one). The
CSV has no apex. ``subject`` and ``length`` are not needed: the subject comes from the video name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pwes.datasets.common import DatasetImportError, RawExpression, RowProblem, VideoName, cell_int, cell_number, cell_text, parse_type
from pwes.datasets.report import ImportReport
from pwes.datasets.tables import find_header, read_csv_table, read_expression_rows

COLUMNS = ("subject", "video", "type", "type_idx", "startFrame", "endFrame", "frame_num", "length")
SYNONYMS = {
    "video": ("video",),
    "type": ("type",),
    "type_idx": ("type_idx",),
    "onset": ("startFrame",),
    "offset": ("endFrame",),
    "frame_num": ("frame_num",),
}
REQUIRED = ("video", "onset", "offset")
TYPE_INDEX = {1: "MaE", 2: "ME"}
WORKBOOK_HINT = ("; --annotation-format lgsnet reads the LGSNet release's annotation CSV: for the dataset's official "
                 "workbook leave out --annotation-format (official is the default)")


def read_annotations(
    path: str | Path, report: ImportReport, parse_video_name: Callable[[str], VideoName | None]
) -> list[RawExpression]:
    """The expressions of an LGSNet-style CSV, keyed by the dataset's video names."""
    path = Path(path).expanduser()
    table = read_csv_table(path, workbook_hint=WORKBOOK_HINT)
    header = find_header([table], SYNONYMS, REQUIRED, path)
    if "type" not in header.columns and "type_idx" not in header.columns:
        raise DatasetImportError(f"{table.name}: needs a 'type' or 'type_idx' column (expected {','.join(COLUMNS)})")

    def parse_row(row: tuple, where: str) -> RawExpression:
        video = cell_text(header.get(row, "video"))
        parsed = parse_video_name(video)
        if parsed is None:
            raise RowProblem("video name not understood", repr(video))
        kind = parse_type(header.get(row, "type"))
        if kind is None:
            kind = TYPE_INDEX.get(cell_int(header.get(row, "type_idx")))
        if kind is None:
            raise RowProblem("unknown expression type", repr(cell_text(header.get(row, "type")) or cell_text(header.get(row, "type_idx"))))
        onset, offset = cell_number(header.get(row, "onset"), "startFrame"), cell_number(header.get(row, "offset"), "endFrame")
        frames = cell_int(header.get(row, "frame_num"))
        return RawExpression(where, parsed.key, onset, None, offset, kind, frames_hint=frames)

    rows = ((f"{table.name} line {index + 1}", row) for index, row in header.data_rows())
    return read_expression_rows(rows, report, parse_row)
