"""Predictions in the LGSNet repository's own output format (``test_detection/*.txt``), read into
:class:`~pwes.inference.proposals.Proposal` rows so that ``pwes.evaluate --pred-format lgsnet``
scores that repository's outputs with the same MEGC rule as pwes's own.

Format read (documented here, since the files have no header): one proposal per line, fields
separated by tabs (any run of whitespace is accepted), in the order

    video  onset  offset  score  [type]

Frames may be fractional; they are **rounded to the nearest frame** (halves up) and then taken as
0-based inclusive indices, like every frame in pwes. An interval reaching past the video (before
frame 0, after its last frame) is clipped to it and counted (the caller reports the count). The
optional ``type`` is ``ME``/``MaE`` or ``micro``/``macro`` (any case, ``-expression`` optional);
without it proposals are typed by duration, as the CSV reader does. Empty lines are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from pwes.data.layout import VideoInfo
from pwes.evaluation.megc import EvaluationError
from pwes.inference.proposals import Proposal, expression_type

TYPE_NAMES = {"me": "ME", "micro": "ME", "micro-expression": "ME", "mae": "MaE", "macro": "MaE", "macro-expression": "MaE"}


def prediction_files(path: str | Path) -> list[Path]:
    """The ``.txt`` files of a ``test_detection/`` folder (name order), or the one file given."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.txt") if p.is_file())
        if not files:
            raise EvaluationError(f"{path}: no .txt prediction files in this folder")
        return files
    if not path.is_file():
        raise EvaluationError(f"{path}: prediction file not found")
    return [path]


def nearest_frame(value: float) -> int:
    """A fractional frame rounded to the nearest whole one, halves up (2.5 -> 3, -0.5 -> 0)."""
    return int(math.floor(value + 0.5))


def read_lgsnet_predictions(
    paths: Sequence[str | Path], videos: Mapping[str, VideoInfo], me_max_seconds: float = 0.5
) -> tuple[list[Proposal], int]:
    """Proposals from LGSNet prediction files and how many intervals were clipped to their
    video. Raises :class:`EvaluationError` naming the file and line."""
    proposals: list[Proposal] = []
    clipped = 0
    for path in map(Path, paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise EvaluationError(f"{path}: not a UTF-8 text file ({err.reason})") from None
        for number, text in enumerate(lines, start=1):
            fields = text.split()
            if not fields:
                continue
            proposal, was_clipped = _parse(fields, f"{path}:{number}", videos, me_max_seconds)
            proposals.append(proposal)
            clipped += was_clipped
    return proposals, clipped


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EvaluationError(f"{where}: {what} {text!r} is not a number (columns: video, onset, offset, score[, type])") from None
    if not math.isfinite(value):
        raise EvaluationError(f"{where}: {what} {text!r} is not a finite number")
    return value


def _parse(fields: list[str], where: str, videos: Mapping[str, VideoInfo], me_max_seconds: float) -> tuple[Proposal, bool]:
    if len(fields) not in (4, 5):
        raise EvaluationError(f"{where}: {len(fields)} fields, expected 4 or 5 (video, onset, offset, score[, type]) separated by tabs")
    video = fields[0]
    if video not in videos:
        raise EvaluationError(f"{where}: unknown video {video!r} (not among the {len(videos)} videos of --videos)")
    onset = nearest_frame(_number(fields[1], "onset", where))
    offset = nearest_frame(_number(fields[2], "offset", where))
    score = _number(fields[3], "score", where)
    if onset > offset:
        raise EvaluationError(f"{where}: onset {fields[1]} > offset {fields[2]}")
    last = videos[video].num_frames - 1
    if offset < 0 or onset > last:
        raise EvaluationError(f"{where}: interval [{fields[1]}, {fields[2]}] lies outside video {video!r} of {last + 1} frames (0..{last})")
    was_clipped = onset < 0 or offset > last
    onset, offset = max(onset, 0), min(offset, last)
    if len(fields) == 5:
        kind = TYPE_NAMES.get(fields[4].lower())
        if kind is None:
            raise EvaluationError(f"{where}: unknown type {fields[4]!r}, expected ME, MaE, micro or macro")
    else:
        kind = expression_type(onset, offset, videos[video].fps, me_max_seconds)
    return Proposal(video, onset, offset, score, kind), was_clipped
