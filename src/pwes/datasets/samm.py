"""SAMM-LV: the long-video annotation workbook and the dataset's video folder names.

Sheet ``FACS_Movement_Only``: free-text rows, then the header row ``Subject, Filename,
Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes`` (found by its column
names anywhere in the first rows; ``Filename``, ``Onset``, ``Offset`` and ``Type`` are required,
``Apex`` is read when present). ``Filename`` names one expression, ``006_1_2`` = video ``006_1``,
expression 2. ``Type`` is ``Macro`` (MaE) or ``Micro - 1/2`` (ME). Frames count from 1; apex -1
means not annotated; fractional onsets and offsets are rounded outward (see ``common``).

Video folders are ``006_1`` (subject 006, recording 1): that is the key and the video id; the
subject is the three-digit prefix ``006``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pwes.datasets.common import RawExpression, RowProblem, VideoName, cell_number, cell_text, parse_type, path_parts
from pwes.datasets.report import ImportReport
from pwes.datasets.tables import find_header, pick_sheet, read_expression_rows, read_tables

SHEETS = ("FACS_Movement_Only",)
SYNONYMS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset", "Onset Frame"),
    "apex": ("Apex", "Apex Frame"),
    "offset": ("Offset", "Offset Frame"),
    "type": ("Type",),
}
REQUIRED = ("filename", "onset", "offset", "type")

_VIDEO = re.compile(r"^(\d+)_(\d+)$")
_EXPRESSION = re.compile(r"^(\d+)_(\d+)_(\d+)$")


def video_key(subject: str, recording: str) -> str:
    """``006_1`` from its two numbers (subject zero-padded to three digits)."""
    return f"{int(subject):03d}_{int(recording)}"


def parse_video_name(name: str) -> VideoName | None:
    """``006_1`` (or ``.../006_1``) -> key and id ``006_1``, subject ``006``."""
    parts = path_parts(name)
    match = _VIDEO.match(parts[-1]) if parts else None
    if match is None:
        return None
    return VideoName(key=video_key(match[1], match[2]), video=parts[-1], subject=f"{int(match[1]):03d}")


def expression_video(filename: str) -> str:
    """The key of the video an expression ``006_1_2`` belongs to (``006_1``)."""
    match = _EXPRESSION.match(filename) or _VIDEO.match(filename)
    if match is None:
        raise RowProblem("filename not like 006_1_2", repr(filename))
    return video_key(match[1], match[2])


def read_annotations(path: str | Path, report: ImportReport, sheet: str | None = None) -> list[RawExpression]:
    """The expressions of a SAMM-LV annotation workbook, keyed like the video folders.

    A filename naming two different rows (``037_4_1``: an ME and a MaE) keeps both, with a warning.
    """
    path = Path(path).expanduser()
    tables = read_tables(path)
    table = pick_sheet(tables, path, (sheet,) if sheet else SHEETS, "annotation")
    header = find_header([table], SYNONYMS, REQUIRED, path)
    first_row: dict[str, tuple[str, tuple]] = {}  # filename -> (where, cells) of its first row

    def parse_row(row: tuple, where: str) -> RawExpression | None:
        filename = cell_text(header.get(row, "filename"))
        if not filename:
            return None  # notes or totals below the table
        cells = tuple(cell_text(header.get(row, f)) for f in SYNONYMS)
        earlier = first_row.setdefault(filename, (where, cells))
        if earlier[0] != where and earlier[1] != cells:
            report.warnings.append(f"{filename} names two different rows ({earlier[0]} and {where}): both kept")
        key = expression_video(filename)
        kind = parse_type(header.get(row, "type"))
        if kind is None:
            raise RowProblem("unknown expression type", repr(cell_text(header.get(row, "type"))))
        frames = [cell_number(header.get(row, f), f) for f in ("onset", "apex", "offset")]
        return RawExpression(where, key, *frames, type=kind)

    rows = ((table.where(index), row) for index, row in header.data_rows())
    return read_expression_rows(rows, report, parse_row, empty=f"{table.name}: no expression rows below the header row {header.row + 1}")
