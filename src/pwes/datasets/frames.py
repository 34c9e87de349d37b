"""Frame numbers, once: where spreadsheet frame numbers become layout frame numbers.

Spreadsheets count the first frame of a video as ``first_frame`` (1 for the official
workbooks); the layout counts from 0. :func:`normalize` subtracts ``first_frame`` after rounding
fractional numbers outward (onset down, offset up, apex to the nearest frame), so an interval
never loses a frame its annotation touches; numbers within :data:`FRAME_TOLERANCE` of a whole
frame (``7284.999999999999``) are that frame. An onset of 0 in a 1-based sheet is an expression
already under way when the video starts: it begins at the first frame (``--zero-onset``). Any
other frame number below ``first_frame`` (0 or -1 in a 1-based sheet) or an empty cell means
"not annotated".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pwes.datasets.common import DatasetImportError, Expression, RawExpression
from pwes.datasets.report import ImportReport

ME_MAX_SECONDS = 0.5  # the datasets' own cut between micro- and macro-expressions


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


ZERO_ONSET_RULES = ("first-frame", "drop")
FRAME_TOLERANCE = 1e-6  # a frame number this close to a whole number is that number (float noise)


def parse_zero_onset(rule: str) -> str:
    """Validate a ``--zero-onset`` rule: ``first-frame`` or ``drop``."""
    text = str(rule).strip().lower()
    if text in ZERO_ONSET_RULES:
        return text
    raise DatasetImportError(f"--zero-onset {rule!r}: expected one of {', '.join(ZERO_ONSET_RULES)}")


@dataclass(frozen=True)
class FrameRules:
    """How source frame numbers become layout frames: the source's first frame number, the rule
    for a missing offset, the rule for an onset of 0 in a 1-based sheet, and the frame rate used
    to type expressions by duration."""

    first_frame: int = 1
    unknown_offset: str = "mirror"
    fps: float = 30.0
    zero_onset: str = "first-frame"


def classify_by_duration(onset: int, offset: int, fps: float) -> str:
    """``ME`` when the inclusive interval lasts at most 0.5 s, else ``MaE``."""
    return "ME" if (offset - onset + 1) / fps <= ME_MAX_SECONDS else "MaE"


def snap(value: float | None) -> float | None:
    """``value`` with float noise removed: within :data:`FRAME_TOLERANCE` of a whole number, that number."""
    if value is None:
        return None
    nearest = round(value)
    return float(nearest) if abs(value - nearest) <= FRAME_TOLERANCE else value


def normalize(raw: RawExpression, rules: FrameRules, report: ImportReport) -> Expression | None:
    """Turn one raw row into layout frames; repairs (of kept rows) and drops go to ``report``."""

    def known(value: float | None) -> bool:
        return value is not None and value >= rules.first_frame

    def drop(reason: str, detail: str | None = None) -> None:
        report.drop(reason, raw.source, detail)

    first = rules.first_frame
    onset_value, apex_value, offset_value = snap(raw.onset), snap(raw.apex), snap(raw.offset)
    repairs: list[tuple[str, str | None]] = []
    if first == 1 and onset_value == 0:  # under way when the video starts
        if rules.zero_onset == "drop":
            drop("onset 0: expression under way when the video starts (--zero-onset drop)")
            return None
        onset_value = float(first)
        repairs.append(("onset 0 (under way when the video starts): onset set to the first frame (--zero-onset first-frame)",
                        _frames_detail(raw)))
    if not known(onset_value):
        drop("onset not annotated")
        return None
    if any(known(v) and v != int(v) for v in (onset_value, apex_value, offset_value)):
        repairs.append(("fractional frame numbers rounded (onset down, offset up, apex to nearest)", None))
    if apex_value is not None and not known(apex_value):
        repairs.append(("apex not annotated (0 or -1 in the sheet): written empty", f"apex {apex_value:g}"))
    onset = math.floor(onset_value) - first
    apex = math.floor(apex_value + 0.5) - first if known(apex_value) else None
    if known(offset_value):
        offset = math.ceil(offset_value) - first
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
        repairs.append((f"offset not annotated: {describe_unknown_offset(rule)} (--unknown-offset {rule})", None))
    if apex is not None and not onset <= apex <= offset:
        repairs.append(("apex outside its interval: apex cleared", None))
        apex = None
    kind = raw.type
    if kind is None:
        kind = classify_by_duration(onset, offset, rules.fps)
        repairs.append((f"no type given: typed by duration (ME when <= {ME_MAX_SECONDS:g} s)", None))
    for reason, detail in repairs:
        report.repair(reason, raw.source, detail)
    return Expression(raw.source, raw.key, onset, offset, kind, apex)


def _frames_detail(raw: RawExpression) -> str:
    values = (raw.onset, raw.apex, raw.offset)
    return ", ".join(f"{name} {'empty' if v is None else format(v, 'g')}" for name, v in zip(("onset", "apex", "offset"), values))
