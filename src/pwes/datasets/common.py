"""What every dataset importer shares: the errors, the records an annotation reader yields, and
reading of single cells (numbers, types, names).

The frame-number rules live in :mod:`.frames`, the import report in :mod:`.report`, tables
(workbook sheets, CSV files, header rows) in :mod:`.tables`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


class DatasetImportError(ValueError):
    """An import input (workbook, sheet, CSV, feature file, folder, setting) is unusable.

    The one-line message names the file, sheet, row or setting at fault.
    """


class RowProblem(Exception):
    """One spreadsheet row cannot be used; readers catch it and report the row as dropped.

    ``reason`` is what the report counts rows by; ``detail`` names the offending value.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VideoName:
    """A video as the dataset names it: the matching ``key`` shared by spreadsheet rows, feature
    files and frame folders, the ``video`` id written to the layout, and its ``subject``."""

    key: str
    video: str
    subject: str


@dataclass(frozen=True)
class RawExpression:
    """One expression as an annotation reader found it: frame numbers as the source counts them
    (possibly fractional, ``None`` where the cell is empty), type ``ME``/``MaE`` or ``None`` when
    the source gives none (then the duration decides)."""

    source: str
    key: str
    onset: float | None
    apex: float | None
    offset: float | None
    type: str | None
    frames_hint: int | None = None  # the video's length where the source states it


@dataclass(frozen=True)
class Expression:
    """One expression in layout frames (0-based, inclusive), not yet matched to a video."""

    source: str
    key: str
    onset: int
    offset: int
    type: str
    apex: int | None



def parse_type(value: Any) -> str | None:
    """``ME`` or ``MaE`` from the many spellings of the datasets (``micro-expression``,
    ``Micro - 1/2``, ``macro``, ``MaE``, ...); ``None`` when it is neither."""
    letters = re.sub(r"[^a-z]", "", cell_text(value).lower())
    if letters == "me" or letters.startswith("micro"):
        return "ME"
    if letters == "mae" or letters.startswith("macro"):
        return "MaE"
    return None



# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as stripped text; whole floats lose their ``.0`` (Excel stores 15 as 15.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value).strip()


def cell_number(value: Any, what: str) -> float | None:
    """A numeric cell as float, ``None`` when empty; raises :class:`RowProblem` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowProblem(f"{what} is not a number", repr(value))
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise RowProblem(f"{what} is not a number", repr(value)) from None
    if math.isnan(number):
        return None
    if not math.isfinite(number):
        raise RowProblem(f"{what} is not a number", repr(value))
    return number


def cell_number_or_none(value: Any) -> float | None:
    """A cell's number, ``None`` when it is empty or text."""
    try:
        return cell_number(value, "cell")
    except RowProblem:
        return None


def cell_int(value: Any) -> int | None:
    """A cell holding a whole number (``15``, ``15.0``, ``'0401'``), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value == int(value) else None
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def header_token(value: Any) -> str:
    """A header cell reduced to lower-case letters and digits: ``Onset Frame`` -> ``onsetframe``."""
    return re.sub(r"[^a-z0-9]", "", cell_text(value).lower())


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``s2`` before ``s10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def path_parts(name: str) -> list[str]:
    """Components of a path written with ``/`` or ``\\`` (CSV files carry Windows paths too)."""
    return [part for part in re.split(r"[\\/]+", name.strip()) if part]

