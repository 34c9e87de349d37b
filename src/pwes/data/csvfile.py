"""One reader for the project's CSV tables (``videos.csv``, ``annotations.csv``, proposal files):
the header check, blank-line skipping, field counts, line numbers and encoding errors, so the
feature-set layout, the scorer and the importers word every problem the same way.

Every problem raises the caller's error type (a ``ValueError`` subclass) with a one-line message
that starts with ``<path>`` or ``<path>:<line>``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"  # .xlsx workbooks are zip archives


def not_text_reason(path: Path, reason: str) -> str:
    """Why ``path`` could not be read as text: a workbook (zip) is named as such."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(ZIP_MAGIC))
    except OSError:
        magic = b""
    if magic == ZIP_MAGIC:
        return f"{path}: is a zip archive (an .xlsx workbook?), not a CSV text file; export the sheet as CSV or pass the workbook where one is expected"
    return f"{path}: not a UTF-8 text file ({reason})"


def read_rows(
    path: str | Path,
    required: Sequence[str],
    *,
    optional: Sequence[str] = (),
    allow_extra: bool = False,
    error: type[ValueError] = ValueError,
) -> list[tuple[int, dict[str, str]]]:
    """Non-blank rows of the CSV at ``path`` as ``(line, {column: stripped value})``.

    The header must name every ``required`` column once; ``optional`` columns may be present;
    other columns are refused unless ``allow_extra`` (then they are returned too). ``line`` is
    the 1-based line of the file where the row ends.
    """
    path = Path(path)
    expected = ",".join(required) + "".join(f"[,{c}]" for c in optional)
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
                if header is None:
                    raise error(f"{path}:1: empty file, expected a header with {expected}")
                header = [h.strip() for h in header]
                _check_header(path, header, required, optional, allow_extra, expected, error)
                rows = []
                for values in reader:
                    if not values or all(not v.strip() for v in values):
                        continue
                    if len(values) != len(header):
                        raise error(f"{path}:{reader.line_num}: {len(values)} fields, expected {len(header)} ({','.join(header)})")
                    rows.append((reader.line_num, {h: v.strip() for h, v in zip(header, values)}))
            except csv.Error as err:
                raise error(f"{path}:{reader.line_num}: not readable as CSV ({err})") from None
    except UnicodeDecodeError as err:
        raise error(not_text_reason(path, err.reason)) from None
    return rows


def _check_header(
    path: Path,
    header: list[str],
    required: Sequence[str],
    optional: Sequence[str],
    allow_extra: bool,
    expected: str,
    error: type[ValueError],
) -> None:
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise error(f"{path}:1: duplicate column(s) {_names(duplicated)}")
    missing = [c for c in required if c not in header]
    extra = [] if allow_extra else [h for h in header if h not in required and h not in optional]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {_names(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {_names(extra)}")
        raise error(f"{path}:1: {'; '.join(parts)}; expected {expected}")


def _names(columns: Sequence[str]) -> str:
    return ",".join(c or "''" for c in columns)


def number(value: str, what: str, where: str, error: type[ValueError] = ValueError) -> float:
    """A cell as a float, or ``error("<where>: <what> '<value>' is not a number")``."""
    try:
        return float(value)
    except ValueError:
        raise error(f"{where}: {what} {value!r} is not a number") from None


def whole_frame(value: str, what: str, where: str, error: type[ValueError] = ValueError) -> int:
    """A cell holding a whole frame number (``12``, ``12.0``, ``1e1``) as an int."""
    result = number(value, what, where, error)
    if not math.isfinite(result) or result != int(result):
        raise error(f"{where}: {what} {value!r} is not a whole frame number")
    return int(result)
