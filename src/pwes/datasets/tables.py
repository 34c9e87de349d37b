"""Tolerant reading of tables: workbook sheets or CSV files, header rows found by their column
names, and the loop over expression rows that every annotation reader shares."""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pwes.data import csvfile
from pwes.datasets.common import (
    DatasetImportError,
    RawExpression,
    RowProblem,
    cell_number_or_none,
    cell_text,
    header_token,
)
from pwes.datasets.report import ImportReport

HEADER_SCAN_ROWS = 40  # how far down a sheet a header row is looked for
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # old binary .xls workbooks


@dataclass(frozen=True)
class Table:
    """The raw cell values of one sheet (or CSV file), rows padded to equal width."""

    path: Path
    sheet: str | None
    rows: list[tuple[Any, ...]]

    @property
    def name(self) -> str:
        """``file.xlsx[sheet]`` or ``file.csv``, for messages."""
        return f"{self.path.name}[{self.sheet}]" if self.sheet is not None else self.path.name

    def where(self, index: int) -> str:
        """The 1-based spreadsheet row of ``rows[index]``, for messages."""
        return f"{self.name} row {index + 1}"

    @property
    def width(self) -> int:
        """Number of columns of the widest row."""
        return max((len(r) for r in self.rows), default=0)


def _is_blank(row: Sequence[Any]) -> bool:
    return all(cell_text(v) == "" for v in row)


def _pad(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows without trailing blank rows and columns, each padded to the widest (leading blank
    rows stay, so row numbers in messages match the spreadsheet's)."""
    rows = [tuple(r) for r in rows]
    while rows and _is_blank(rows[-1]):
        rows.pop()
    width = 0
    for r in rows:
        for i in range(len(r) - 1, -1, -1):
            if cell_text(r[i]) != "":
                width = max(width, i + 1)
                break
    return [tuple(r[:width]) + (None,) * (width - len(r[:width])) for r in rows]


def is_workbook(path: Path) -> bool:
    """Whether ``path`` is a zip archive, as every ``.xlsx`` workbook is (whatever its name)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(csvfile.ZIP_MAGIC)) == csvfile.ZIP_MAGIC
    except OSError:
        return False


def read_csv_table(path: Path, workbook_hint: str = "") -> Table:
    """All rows of a CSV file as text cells; ``workbook_hint`` ends the error for a workbook."""
    if not path.is_file():
        raise DatasetImportError(f"{path}: file not found")
    if is_workbook(path):
        raise DatasetImportError(f"{path}: is an .xlsx workbook, not a CSV text file{workbook_hint}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return Table(path, None, _pad(csv.reader(handle)))
    except UnicodeDecodeError as err:
        raise DatasetImportError(csvfile.not_text_reason(path, err.reason)) from None
    except csv.Error as err:
        raise DatasetImportError(f"{path}: not a readable CSV file ({err})") from None


def read_workbook(path: Path) -> dict[str, Table]:
    """Every sheet of an ``.xlsx`` workbook, by sheet name, in workbook order."""
    import openpyxl  # imported here: only workbook inputs need it
    from openpyxl.utils.exceptions import InvalidFileException

    if not path.is_file():
        raise DatasetImportError(f"{path}: file not found")
    with open(path, "rb") as handle:  # a handle, so a workbook saved under another name still opens
        if path.suffix.lower() == ".xls" or handle.read(len(OLE_MAGIC)) == OLE_MAGIC:
            raise DatasetImportError(f"{path}: old .xls workbooks cannot be read; save it as .xlsx")
        handle.seek(0)
        if handle.read(len(csvfile.ZIP_MAGIC)) != csvfile.ZIP_MAGIC:
            raise DatasetImportError(f"{path}: not an .xlsx workbook (not a zip archive); a CSV export must be named .csv")
        handle.seek(0)
        try:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
            raise DatasetImportError(f"{path}: not a readable .xlsx workbook ({err})") from None
        try:
            return {ws.title: Table(path, ws.title, _pad(ws.iter_rows(values_only=True))) for ws in book.worksheets}
        finally:
            book.close()


def read_tables(path: str | Path) -> dict[str, Table]:
    """The tables of an annotation file: each sheet of a workbook, or the one table of a CSV
    (keyed by the empty string)."""
    path = Path(path).expanduser()
    if path.suffix.lower() in (".csv", ".txt") and not is_workbook(path):
        return {"": read_csv_table(path)}
    return read_workbook(path)


def _sheet_token(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def pick_sheet(tables: Mapping[str, Table], path: Path, candidates: Sequence[str], what: str) -> Table:
    """The first sheet named like one of ``candidates`` (case, spaces and underscores ignored)."""
    if "" in tables:  # a CSV file is its own single sheet
        return tables[""]
    by_token = {_sheet_token(name): table for name, table in tables.items()}
    for candidate in candidates:
        if _sheet_token(candidate) in by_token:
            return by_token[_sheet_token(candidate)]
    wanted = " or ".join(repr(c) for c in candidates)
    raise DatasetImportError(f"{path}: no {what} sheet {wanted} (sheets found: {', '.join(repr(n) for n in tables)})")


@dataclass(frozen=True)
class Header:
    """Where a header row sits in a table and the column of each logical field it holds."""

    table: Table
    row: int
    columns: dict[str, int]

    def data_rows(self) -> Iterable[tuple[int, tuple[Any, ...]]]:
        """(index, row) of the non-blank rows below the header."""
        for index in range(self.row + 1, len(self.table.rows)):
            row = self.table.rows[index]
            if not _is_blank(row):
                yield index, row

    def get(self, row: Sequence[Any], field_name: str) -> Any:
        """The cell of ``field_name`` in ``row``, ``None`` where the column is absent."""
        column = self.columns.get(field_name)
        return None if column is None else row[column]


def find_header(
    tables: Sequence[Table],
    synonyms: Mapping[str, Iterable[str]],
    required: Sequence[str],
    path: Path,
) -> Header:
    """The first row (in the first table that has one) naming every ``required`` field.

    ``synonyms`` maps each logical field to the header spellings it accepts, compared after
    :func:`header_token`. The error lists the columns found in the most header-like row.
    """
    accepted = {name: {header_token(s) for s in spellings} for name, spellings in synonyms.items()}
    best: tuple[tuple[int, int], Table, int] | None = None
    for table in tables:
        for index, row in enumerate(table.rows[:HEADER_SCAN_ROWS]):
            tokens = [header_token(v) for v in row]
            columns: dict[str, int] = {}
            for name, names in accepted.items():
                for column, token in enumerate(tokens):
                    if token in names and column not in columns.values():
                        columns[name] = column
                        break
            if all(name in columns for name in required):
                return Header(table, index, columns)
            labels = sum(1 for v in row if cell_text(v) and cell_number_or_none(v) is None)
            score = (len(columns), labels)
            if best is None or score > best[0]:
                best = (score, table, index)
    wanted = ", ".join(f"{name} ({'/'.join(sorted(synonyms[name]))})" for name in required)
    if best is None:
        raise DatasetImportError(f"{path}: empty; expected a header row with columns {wanted}")
    _, table, index = best
    found = [cell_text(v) for v in table.rows[index] if cell_text(v)]
    raise DatasetImportError(
        f"{table.name}: no header row with columns {wanted} in the first {HEADER_SCAN_ROWS} rows; "
        f"the most header-like row ({index + 1}) has: {', '.join(repr(f) for f in found) or 'nothing'}"
    )


def read_expression_rows(
    rows: Iterable[tuple[str, tuple[Any, ...]]],
    report: ImportReport,
    parse_row: Callable[[tuple[Any, ...], str], RawExpression | None],
    empty: str | None = None,
) -> list[RawExpression]:
    """The loop every annotation reader shares: parse each ``(where, row)``, count it as read,
    report a :class:`RowProblem` as a dropped row. ``parse_row`` returns None for a row that is
    not an expression (notes below a table: not counted). ``empty``: the error when no row is one.
    """
    expressions: list[RawExpression] = []
    counted = 0
    for where, row in rows:
        try:
            expression = parse_row(row, where)
        except RowProblem as problem:
            report.rows_read += 1
            counted += 1
            report.drop(problem.reason, where, problem.detail)
            continue
        if expression is None:
            continue
        report.rows_read += 1
        counted += 1
        expressions.append(expression)
    if not counted and empty is not None:
        raise DatasetImportError(empty)
    return expressions
