"""CAS(ME)^2: the MEGC ground-truth workbook (``CASME_sq_gt.xlsx``, ``CAS(ME)^2code_final.xlsx``)
and the dataset's video folder names.

Sheets (names compared ignoring case, spaces and underscores):

* ``CASFEcode_final`` (or ``CASMEcode_final``), no header row, columns by position: subject
  number, expression name (``anger1_1`` = video ``anger1``, instance 1), onset, apex, offset,
  AUs, emotion, type (``macro-expression``/``micro-expression``), self-report. Frames count from 1;
  offset 0 means the offset was not annotated (the ``--unknown-offset`` rule decides).
* ``naming rule1``: one row per subject holding its folder name ``s<digits>`` and, optionally,
  the number the expression sheet uses for it (``15 | s15 | 1``, ``s15 | 1``, ``15 | s15``, any
  column order; a row whose only number is the folder's own digits maps that number). Which of
  the two numbering schemes the expression sheet follows is decided by which one covers more of
  its subject numbers, and noted in the report.
* ``naming rule2``: one row per video: its name and its number code, either order
  (``disgust1 | 101`` or ``0101 | disgust1``); rows without both (a header) are skipped.

Video folders are ``s15/15_0101disgustingteeth``: folder number 15, code ``0101`` (four digits),
then a description. The matching key is ``15_0101``; the video id written to the layout is the
folder name ``15_0101disgustingteeth``; the subject is the subject folder ``s15``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pwes.datasets.common import (
    DatasetImportError,
    RawExpression,
    RowProblem,
    VideoName,
    cell_int,
    cell_number,
    cell_text,
    parse_type,
    path_parts,
)
from pwes.datasets.report import ImportReport
from pwes.datasets.tables import Table, pick_sheet, read_expression_rows, read_tables

EXPRESSION_SHEETS = ("CASFEcode_final", "CASMEcode_final")
SUBJECT_SHEET = "naming rule1"
VIDEO_SHEET = "naming rule2"
COLUMNS = ("subject", "expression", "onset", "apex", "offset", "AUs", "emotion", "type")
SUBJECT, EXPRESSION, ONSET, APEX, OFFSET, TYPE = 0, 1, 2, 3, 4, 7

_FOLDER = re.compile(r"^s(\d+)$", re.IGNORECASE)
_VIDEO = re.compile(r"^(?:s\d+_)?(\d+)_(\d{4})(.*)$", re.IGNORECASE)


def parse_video_name(name: str) -> VideoName | None:
    """``s15/15_0401girlcrashing`` (or just the last part) -> key ``15_0401``, id and subject ``s15``."""
    parts = path_parts(name)
    match = _VIDEO.match(parts[-1]) if parts else None
    if match is None:
        return None
    number, code, description = int(match[1]), match[2], match[3]
    return VideoName(key=video_key(number, code), video=f"{match[1]}_{code}{description}", subject=f"s{number}")


def video_key(folder_number: int, code: str) -> str:
    """The key shared by a video folder and the spreadsheet rows of that video."""
    return f"{folder_number}_{code}"


def read_subject_rule(table: Table) -> tuple[dict[int, int], set[int]]:
    """``naming rule1`` as (sheet subject number -> folder number, set of folder numbers)."""
    by_number: dict[int, int] = {}
    folders: set[int] = set()
    for index, row in enumerate(table.rows):
        matches = [_FOLDER.match(cell_text(v)) for v in row]
        folder_numbers = {int(m[1]) for m in matches if m}
        if not folder_numbers:
            continue
        if len(folder_numbers) > 1:
            raise DatasetImportError(f"{table.where(index)}: more than one subject folder ({sorted(folder_numbers)})")
        folder = folder_numbers.pop()
        folders.add(folder)
        others = {n for v in row if (n := cell_int(v)) is not None and n != folder}
        if len(others) > 1:
            raise DatasetImportError(f"{table.where(index)}: cannot tell which of {sorted(others)} is the subject number of s{folder}")
        if others:
            number = others.pop()
            if by_number.get(number, folder) != folder:
                raise DatasetImportError(f"{table.where(index)}: subject {number} maps to s{folder} here but to s{by_number[number]} above")
            by_number[number] = folder
    if not folders:
        raise DatasetImportError(f"{table.name}: no subject folder names like 's15' found")
    return by_number, folders


def read_video_rule(table: Table) -> dict[str, str]:
    """``naming rule2`` as video name (lower case) -> four-digit code."""
    codes: dict[str, str] = {}
    for index, row in enumerate(table.rows):
        numbers = [n for v in row if (n := cell_int(v)) is not None]
        names = [cell_text(v).lower() for v in row if cell_int(v) is None and re.search(r"[a-z]", cell_text(v), re.I)]
        if len(numbers) != 1 or not names:
            continue
        name, code = names[0], f"{numbers[0]:04d}"
        if codes.get(name, code) != code:
            raise DatasetImportError(f"{table.where(index)}: video {name!r} has code {code} here but {codes[name]} above")
        codes[name] = code
    if not codes:
        raise DatasetImportError(f"{table.name}: no rows with a video name and its code (like 'anger1 | 401')")
    return codes


def _video_name(expression: str) -> str:
    """``anger1_1`` -> ``anger1`` (the instance suffix removed)."""
    match = re.match(r"^(.*?)_\d+$", expression)
    return (match[1] if match else expression).strip().lower()


def read_annotations(path: str | Path, report: ImportReport, sheet: str | None = None) -> list[RawExpression]:
    """The expressions of a CAS(ME)^2 ground-truth workbook, keyed like the video folders."""
    path = Path(path).expanduser()
    tables = read_tables(path)
    if "" in tables:
        raise DatasetImportError(f"{path}: the official CAS(ME)^2 annotations are an .xlsx workbook; use --annotation-format lgsnet for a CSV")
    expressions_table = pick_sheet(tables, path, (sheet,) if sheet else EXPRESSION_SHEETS, "expression")
    by_number, folders = read_subject_rule(pick_sheet(tables, path, (SUBJECT_SHEET,), "subject naming"))
    codes = read_video_rule(pick_sheet(tables, path, (VIDEO_SHEET,), "video naming"))
    if expressions_table.width < len(COLUMNS):
        raise DatasetImportError(
            f"{expressions_table.name}: {expressions_table.width} columns, expected at least {len(COLUMNS)} "
            f"({', '.join(COLUMNS)}; no header row); is this the expression sheet?"
        )
    rows = [(i, r) for i, r in enumerate(expressions_table.rows) if any(cell_text(v) for v in r)]
    subject_numbers = {n for _, r in rows if (n := cell_int(r[SUBJECT])) is not None}
    subject_map = _choose_subject_map(subject_numbers, by_number, folders, report)
    located = ((expressions_table.where(index), row) for index, row in rows)
    return read_expression_rows(located, report, lambda row, where: _read_row(row, where, subject_map, codes))


def _choose_subject_map(numbers: set[int], by_number: dict[int, int], folders: set[int], report: ImportReport) -> dict[int, int]:
    """Sheet subject number -> folder number, from whichever scheme covers more sheet numbers."""
    identity = {f: f for f in folders}
    explicit_cover = len(numbers & by_number.keys())
    if by_number and explicit_cover >= len(numbers & identity.keys()):
        report.notes.append(f"'{SUBJECT_SHEET}': expression-sheet subject numbers read as the sheet's subject numbers (e.g. 1 -> s15)")
        return by_number
    report.notes.append(f"'{SUBJECT_SHEET}': expression-sheet subject numbers read as folder numbers (15 -> s15)")
    return identity


def _read_row(row: Sequence, where: str, subject_map: dict[int, int], codes: dict[str, str]) -> RawExpression:
    number = cell_int(row[SUBJECT])
    if number is None:
        raise RowProblem("subject is not a number", repr(cell_text(row[SUBJECT])))
    if number not in subject_map:
        raise RowProblem(f"subject number not in sheet '{SUBJECT_SHEET}'", str(number))
    name = _video_name(cell_text(row[EXPRESSION]))
    if name not in codes:
        raise RowProblem(f"video name not in sheet '{VIDEO_SHEET}'", repr(cell_text(row[EXPRESSION])))
    kind = parse_type(row[TYPE])
    if kind is None:
        raise RowProblem("unknown expression type", repr(cell_text(row[TYPE])))
    frames = [cell_number(row[c], what) for c, what in ((ONSET, "onset"), (APEX, "apex"), (OFFSET, "offset"))]
    return RawExpression(where, video_key(subject_map[number], codes[name]), *frames, type=kind)
