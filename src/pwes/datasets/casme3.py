"""CAS(ME)^3 part A: its annotation workbooks (or CSV exports of them) and its video names.

The exact workbook layout is not fixed (the release ships an ME workbook, sheet ``label``, and a
MaE workbook, sheet ``Sheet1``, with differently spelled columns), so the reader is tolerant: in
every sheet (or the one named by ``sheet``) it looks for a header row, within the first rows,
that names these columns (case, spaces and punctuation ignored):

=========  ==========================================================  =========
field      accepted header names                                       required
=========  ==========================================================  =========
subject    Subject, Sub, Subject ID, Participant                       yes
video      Filename, File name, Seq, Sequence, Video, Video name, Clip  yes
onset      Onset, Onset frame, Start frame, startFrame                  yes
offset     Offset, Offset frame, End frame, endFrame                    yes
apex       Apex, Apex frame                                             no
type       Type, Expression type, Exp type                              no
=========  ==========================================================  =========

Without a type column each row's type comes from the file's type prefix (``ME=file.xlsx``), or
else from its duration (ME when at most 0.5 s). Frames count from ``first_frame`` (1 unless
told otherwise; check the numbering of your JPEG files).

Videos are ``spNO.1/a`` (subject folder, then sequence folder, frames possibly in ``color/``) or
flat ``spNO.1_a``: the key and the video id are ``spNO.1_a``, the subject ``spNO.1``. Subjects
given as plain numbers become ``spNO.<n>``; ``depth`` folders are not videos.
"""

from __future__ import annotations

import re
from pathlib import Path

from pwes.datasets.common import RawExpression, RowProblem, VideoName, cell_int, cell_number, cell_text, parse_type, path_parts
from pwes.datasets.report import ImportReport
from pwes.datasets.tables import find_header, pick_sheet, read_expression_rows, read_tables

SYNONYMS = {
    "subject": ("Subject", "Sub", "Subject ID", "Participant"),
    "video": ("Filename", "File name", "Seq", "Sequence", "Video", "Video name", "Clip"),
    "onset": ("Onset", "Onset frame", "Start frame", "startFrame"),
    "offset": ("Offset", "Offset frame", "End frame", "endFrame"),
    "apex": ("Apex", "Apex frame"),
    "type": ("Type", "Expression type", "Exp type"),
}
REQUIRED = ("subject", "video", "onset", "offset")
FRAME_FOLDERS = ("color",)  # a trailing folder that holds a video's frames
NOT_VIDEOS = ("depth",)

_SUBJECT = re.compile(r"^spno\.?(\d+)$", re.IGNORECASE)


def subject_name(value: object) -> str:
    """``spNO.1`` from ``spNO.1``, ``spno1`` or ``1``; other names are kept as written."""
    text = cell_text(value)
    number = cell_int(value)
    if number is not None:
        return f"spNO.{number}"
    match = _SUBJECT.match(text)
    return f"spNO.{int(match[1])}" if match else text


def video_key(subject: str, sequence: str) -> str:
    """``spNO.1_a``: the key and the video id."""
    return f"{subject}_{sequence}"


def parse_video_name(name: str) -> VideoName | None:
    """``spNO.1/a``, ``spNO.1/a/color`` or ``spNO.1_a`` -> key and id ``spNO.1_a``, subject ``spNO.1``."""
    parts = path_parts(name)
    if parts and parts[-1].lower() in NOT_VIDEOS:
        return None
    if parts and parts[-1].lower() in FRAME_FOLDERS:
        parts = parts[:-1]
    if not parts:
        return None
    last = parts[-1]
    if "_" in last:
        subject, sequence = last.rsplit("_", 1)
    elif len(parts) >= 2:
        subject, sequence = parts[-2], last
    else:
        return None
    if not subject or not sequence:
        return None
    subject = subject_name(subject)
    key = video_key(subject, sequence)
    return VideoName(key=key, video=key, subject=subject)


def read_annotations(
    path: str | Path, report: ImportReport, sheet: str | None = None, default_type: str | None = None
) -> list[RawExpression]:
    """The expressions of one CAS(ME)^3 annotation workbook or CSV, keyed ``spNO.1_a``."""
    path = Path(path).expanduser()
    tables = read_tables(path)
    candidates = [pick_sheet(tables, path, (sheet,), "annotation")] if sheet else list(tables.values())
    header = find_header(candidates, SYNONYMS, REQUIRED, path)
    has_type = "type" in header.columns
    if default_type is not None:
        report.notes.append(
            f"{header.table.name}: has a type column; the {default_type}= prefix is not used"
            if has_type
            else f"{header.table.name}: no type column; every row typed {default_type} (file prefix)"
        )

    def parse_row(row: tuple, where: str) -> RawExpression | None:
        subject, sequence = subject_name(header.get(row, "subject")), cell_text(header.get(row, "video"))
        if not subject and not sequence:
            return None  # notes below the table
        if not subject or not sequence:
            raise RowProblem("subject or video cell empty")
        kind = default_type
        if has_type:
            kind = parse_type(header.get(row, "type"))
            if kind is None:
                raise RowProblem("unknown expression type", repr(cell_text(header.get(row, "type"))))
        frames = [cell_number(header.get(row, f), f) for f in ("onset", "apex", "offset")]
        return RawExpression(where, video_key(subject, sequence), *frames, type=kind)

    rows = ((header.table.where(index), row) for index, row in header.data_rows())
    empty = f"{header.table.name}: no expression rows below the header row {header.row + 1}"
    return read_expression_rows(rows, report, parse_row, empty=empty)
