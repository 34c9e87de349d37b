"""What every dataset importer shares: the records an annotation reader yields, the one place
where spreadsheet frame numbers become layout frame numbers, the import report, and tolerant
reading of tables (workbook sheets or CSV files, header rows found by their column names).

Frame numbers, once: spreadsheets count the first frame of a video as ``first_frame`` (1 for the
official workbooks); the layout counts from 0. :func:`normalize` subtracts ``first_frame`` after
rounding fractional numbers outward (onset down, offset up, apex to the nearest frame), so an
interval never loses a frame its annotation touches. A frame number below ``first_frame`` (0 or -1
in a 1-based sheet) or an empty cell means "not annotated".
"""

from __future__ import annotations

import csv
import math
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pwes.data.layout import EXPRESSION_TYPES

ME_MAX_SECONDS = 0.5  # the datasets' own cut between micro- and macro-expressions
HEADER_SCAN_ROWS = 40  # how far down a sheet a header row is looked for
EXAMPLES_PER_REASON = 3


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


# --------------------------------------------------------------------------------------------
# Frame-number rules
# --------------------------------------------------------------------------------------------

UNKNOWN_OFFSET_RULES = ("mirror", "apex", "drop", "apex+N")


def parse_unknown_offset(rule: str) -> str:
    """Validate an ``--unknown-offset`` rule: ``mirror``, ``apex``, ``drop`` or ``apex+N``."""
    text = str(rule).strip().lower()
    if text in ("mirror", "apex", "drop") or re.fullmatch(r"apex\+\d+", text):
        return text
    raise DatasetImportError(f"--unknown-offset {rule!r}: expected one of mirror, apex, drop or apex+N (e.g. apex+20)")


def describe_unknown_offset(rule: str) -> str:
    """Human words for what a rule does to a row whose offset is not annotated."""
    if rule == "mirror":
        return "offset set to apex + (apex - onset)"
    if rule == "apex":
        return "offset set to the apex"
    if rule.startswith("apex+"):
        return f"offset set to apex + {rule[5:]}"
    return "row dropped"


@dataclass(frozen=True)
class FrameRules:
    """How source frame numbers become layout frames: the source's first frame number, the rule
    for a missing offset, and the frame rate used to type expressions by duration."""

    first_frame: int = 1
    unknown_offset: str = "mirror"
    fps: float = 30.0


def classify_by_duration(onset: int, offset: int, fps: float) -> str:
    """``ME`` when the inclusive interval lasts at most 0.5 s, else ``MaE``."""
    return "ME" if (offset - onset + 1) / fps <= ME_MAX_SECONDS else "MaE"


def normalize(raw: RawExpression, rules: FrameRules, report: ImportReport) -> Expression | None:
    """Turn one raw row into layout frames; repairs (of kept rows) and drops go to ``report``."""

    def known(value: float | None) -> bool:
        return value is not None and value >= rules.first_frame

    def drop(reason: str, detail: str | None = None) -> None:
        report.drop(reason, raw.source, detail)

    if not known(raw.onset):
        drop("onset not annotated")
        return None
    repairs: list[str] = []
    if any(known(v) and v != int(v) for v in (raw.onset, raw.apex, raw.offset)):
        repairs.append("fractional frame numbers rounded (onset down, offset up, apex to nearest)")
    first = rules.first_frame
    onset = math.floor(raw.onset) - first
    apex = math.floor(raw.apex + 0.5) - first if known(raw.apex) else None
    if known(raw.offset):
        offset = math.ceil(raw.offset) - first
        if offset < onset:
            drop("offset before onset", f"onset {raw.onset:g}, offset {raw.offset:g}")
            return None
    else:
        rule = rules.unknown_offset
        if rule == "drop":
            drop("offset not annotated (--unknown-offset drop)")
            return None
        if apex is None:
            drop("offset and apex both not annotated")
            return None
        if rule == "mirror":
            offset = apex + (apex - onset)
        elif rule == "apex":
            offset = apex
        else:
            offset = apex + int(rule[5:])
        if offset < onset:
            drop("offset not annotated and apex before onset")
            return None
        repairs.append(f"offset not annotated: {describe_unknown_offset(rule)} (--unknown-offset {rule})")
    if apex is not None and not onset <= apex <= offset:
        repairs.append("apex outside its interval: apex cleared")
        apex = None
    kind = raw.type
    if kind is None:
        kind = classify_by_duration(onset, offset, rules.fps)
        repairs.append(f"no type given: typed by duration (ME when <= {ME_MAX_SECONDS:g} s)")
    for reason in repairs:
        report.repair(reason, raw.source)
    return Expression(raw.source, raw.key, onset, offset, kind, apex)


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
# The import report
# --------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """Everything an import did that a user should know: counts, repairs, drops, mismatches."""

    dataset: str
    rows_read: int = 0
    repaired: Counter = field(default_factory=Counter)  # reason -> rows
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first sources
    video_repairs: Counter = field(default_factory=Counter)  # reason -> videos
    notes: list[str] = field(default_factory=list)
    missing_features: dict[str, int] = field(default_factory=dict)  # annotated video key -> rows
    unannotated_videos: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    length_sources: Counter = field(default_factory=Counter)  # where num_frames came from -> videos
    videos: int = 0
    subjects: int = 0
    type_counts: dict[str, int] = field(default_factory=lambda: {t: 0 for t in EXPRESSION_TYPES})
    settings: dict[str, Any] = field(default_factory=dict)

    def _example(self, reason: str, source: str, detail: str | None) -> None:
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(f"{source} ({detail})" if detail else source)

    def repair(self, reason: str, source: str, detail: str | None = None) -> None:
        """Count one row changed for ``reason``."""
        self.repaired[reason] += 1
        self._example(reason, source, detail)

    def drop(self, reason: str, source: str, detail: str | None = None) -> None:
        """Count one row left out for ``reason``."""
        self.dropped[reason] += 1
        self._example(reason, source, detail)

    @property
    def expressions(self) -> int:
        """Expressions written."""
        return sum(self.type_counts.values())

    def summary(self) -> str:
        """The multi-line summary printed by ``python -m pwes.prepare``."""
        s = self.settings
        lines = [
            f"prepared {self.dataset} in {s.get('out', '?')} "
            f"(snippet length {s.get('snippet_length')}, stride {s.get('stride')}, fps {s.get('fps')})",
            f"  videos: {self.videos} from {self.subjects} subjects; {len(self.unannotated_videos)} without annotations",
            f"  expressions: {self.expressions} (ME {self.type_counts['ME']}, MaE {self.type_counts['MaE']}) "
            f"from {self.rows_read} annotation rows",
            "  video lengths: " + (", ".join(f"{n} from {src}" for src, n in sorted(self.length_sources.items())) or "none"),
        ]
        for title, counts in (("repairs (a row may have several)", self.repaired), ("dropped rows", self.dropped)):
            lines.append(f"  {title}: {sum(counts.values())}")
            for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    {n} x {reason}; e.g. {'; '.join(self.examples.get(reason, []))}")
        for reason, n in sorted(self.video_repairs.items()):
            lines.append(f"  repaired videos: {n} x {reason}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.missing_features:
            rows = sum(self.missing_features.values())
            lines.append(
                f"  annotated videos with no features: {len(self.missing_features)} "
                f"({rows} row{'s' if rows != 1 else ''} left out)"
            )
            lines.append("    " + ", ".join(f"{k} ({n} row{'s' if n != 1 else ''})" for k, n in self.missing_features.items()))
        if self.unannotated_videos:
            lines.append(f"  videos with features but no annotations (kept, expression-free): {len(self.unannotated_videos)}")
            lines.append("    " + ", ".join(self.unannotated_videos))
        if self.ignored_files:
            lines.append(f"  feature files whose names are not {self.dataset} videos (ignored): {len(self.ignored_files)}")
            lines.append("    " + ", ".join(self.ignored_files))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, written beside the layout as ``import.json``."""
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "videos": self.videos,
            "subjects": self.subjects,
            "expressions": dict(self.type_counts),
            "rows_read": self.rows_read,
            "repaired": dict(self.repaired),
            "dropped": dict(self.dropped),
            "examples": self.examples,
            "video_repairs": dict(self.video_repairs),
            "notes": self.notes,
            "annotated_videos_without_features": self.missing_features,
            "videos_without_annotations": self.unannotated_videos,
            "ignored_feature_files": self.ignored_files,
            "video_lengths_from": dict(self.length_sources),
        }


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


# --------------------------------------------------------------------------------------------
# Tables: workbook sheets and CSV files
# --------------------------------------------------------------------------------------------


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


def read_csv_table(path: Path) -> Table:
    """All rows of a CSV file as text cells."""
    if not path.is_file():
        raise DatasetImportError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return Table(path, None, _pad(csv.reader(handle)))
    except UnicodeDecodeError as err:
        raise DatasetImportError(f"{path}: not a UTF-8 text file ({err.reason})") from None
    except csv.Error as err:
        raise DatasetImportError(f"{path}: not a readable CSV file ({err})") from None


def read_workbook(path: Path) -> dict[str, Table]:
    """Every sheet of an ``.xlsx`` workbook, by sheet name, in workbook order."""
    import openpyxl  # imported here: only workbook inputs need it
    from openpyxl.utils.exceptions import InvalidFileException

    if not path.is_file():
        raise DatasetImportError(f"{path}: file not found")
    if path.suffix.lower() == ".xls":
        raise DatasetImportError(f"{path}: old .xls workbooks cannot be read; save it as .xlsx")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
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
    if path.suffix.lower() in (".csv", ".txt"):
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
