"""The files of the MEGC protocol: a layout's ``videos.csv`` and ``annotations.csv`` as ground truth,
and proposal CSVs (``video,onset,offset,score[,type]``, frames 0-based and inclusive) read with
one-line errors naming the file and line, and written atomically."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from pwes import io
from pwes.data import csvfile, layout
from pwes.data.layout import EXPRESSION_TYPES, Interval, VideoInfo
from pwes.evaluation.megc import EvaluationError
from pwes.inference.proposals import Proposal, expression_type

PROPOSAL_COLUMNS = ("video", "onset", "offset", "score", "type")


def read_ground_truth(videos_csv: str | Path, annotations_csv: str | Path) -> tuple[dict[str, VideoInfo], dict[str, list[Interval]]]:
    """Videos and intervals from the layout's ``videos.csv`` and ``annotations.csv`` (any names),
    without needing feature files. Every video of ``videos_csv`` is evaluated, with or without
    intervals. Raises :class:`~pwes.data.layout.LayoutError` naming the file and line."""
    return layout.read_tables(videos_csv, annotations_csv)


def read_proposals_csv(
    path: str | Path,
    known_videos: Mapping[str, VideoInfo] | Collection[str],
    me_max_seconds: float = 0.5,
) -> list[Proposal]:
    """Proposals from a CSV with columns ``video,onset,offset,score`` and optionally ``type``
    (other columns, e.g. ``subject,fold``, are ignored); frames 0-based and inclusive.

    ``known_videos``: the evaluated videos; when given as :class:`VideoInfo` records, offsets are
    checked against the video length and rows without a type are typed by duration
    (``me_max_seconds``). Raises :class:`EvaluationError` naming the file and line.
    """
    path = Path(path)
    infos = known_videos if isinstance(known_videos, Mapping) else None
    rows = csvfile.read_rows(path, PROPOSAL_COLUMNS[:4], optional=PROPOSAL_COLUMNS[4:], allow_extra=True, error=EvaluationError)
    proposals = [_parse_proposal(row, f"{path}:{line}", known_videos, infos, me_max_seconds) for line, row in rows]
    return proposals


def _parse_proposal(
    row: Mapping[str, str],
    where: str,
    known_videos: Collection[str],
    infos: Mapping[str, VideoInfo] | None,
    me_max_seconds: float,
) -> Proposal:
    video = row["video"]
    if video not in known_videos:
        raise EvaluationError(f"{where}: unknown video {video!r} (not among the {len(known_videos)} evaluated videos)")
    onset = csvfile.whole_frame(row["onset"], "onset", where, EvaluationError)
    offset = csvfile.whole_frame(row["offset"], "offset", where, EvaluationError)
    if onset < 0:
        raise EvaluationError(f"{where}: onset {onset} is negative (frames are 0-based)")
    if onset > offset:
        raise EvaluationError(f"{where}: onset {onset} > offset {offset}")
    if infos is not None and offset >= infos[video].num_frames:
        raise EvaluationError(f"{where}: offset {offset} beyond video {video!r} of {infos[video].num_frames} frames (0..{infos[video].num_frames - 1})")
    value = csvfile.number(row["score"], "score", where, EvaluationError)
    if not math.isfinite(value):
        raise EvaluationError(f"{where}: score {row['score']!r} is not a finite number")
    kind = row.get("type", "")
    if kind == "":
        if infos is None:
            raise EvaluationError(f"{where}: no type given and no frame rate known to type it by duration")
        kind = expression_type(onset, offset, infos[video].fps, me_max_seconds)
    elif kind not in EXPRESSION_TYPES:
        raise EvaluationError(f"{where}: unknown type {kind!r}, expected one of {', '.join(EXPRESSION_TYPES)}")
    return Proposal(video, onset, offset, value, kind)


def write_proposals_csv(
    path: str | Path,
    proposals: Iterable[Proposal],
    extra_columns: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write proposals atomically as ``video,<extra columns>,onset,offset,score,type``.

    ``extra_columns`` maps each video to its extra values, e.g. ``{"v1": {"subject": "s15",
    "fold": "s15"}}`` gives ``video,subject,fold,onset,offset,score,type`` (columns in order of
    first appearance). Without it the columns are ``video,onset,offset,score,type``. Scores are
    written exactly (``repr``).
    """
    path = Path(path)
    extra_columns = extra_columns or {}
    names = list(dict.fromkeys(column for values in extra_columns.values() for column in values))
    rows = []
    for p in proposals:
        values = extra_columns.get(p.video, {}) if names else {}
        missing = [name for name in names if name not in values]
        if missing:
            raise EvaluationError(f"{path}: no value of extra column(s) {','.join(missing)} for video {p.video!r}")
        rows.append([p.video, *(str(values[name]) for name in names), p.onset, p.offset, repr(float(p.score)), p.type])
    io.write_csv(path, ["video", *names, *PROPOSAL_COLUMNS[1:]], rows)
    return path
