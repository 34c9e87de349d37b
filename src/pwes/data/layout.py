"""The on-disk feature-set layout: read, validate and write it.

::

    ROOT/videos.csv        video,subject,num_frames,fps
    ROOT/annotations.csv   video,subject,onset,apex,offset,type
    ROOT/features/<video>.npz   rgb: float32 [T, D], flow: float32 [T, D]

Frames are 0-based, intervals inclusive, ``type`` is ``ME`` or ``MaE``; ``apex`` may be empty or
-1 when unknown. Row ``t`` of the features covers frames ``[t*stride, t*stride + length)``.
Every problem is raised as a :class:`LayoutError` whose one-line message names the file and line.
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pwes import io

VIDEO_COLUMNS = ("video", "subject", "num_frames", "fps")
ANNOTATION_COLUMNS = ("video", "subject", "onset", "apex", "offset", "type")
EXPRESSION_TYPES = ("ME", "MaE")  # class index 0 = ME, 1 = MaE; the TCAM adds background at 2
SNIPPET_SLACK = 1  # real extractors drop or pad the last partial snippet: allow +-1 row


class LayoutError(ValueError):
    """A feature set on disk is malformed; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class Interval:
    """One ground-truth expression: inclusive frame interval, optional apex, type ME or MaE."""

    video: str
    subject: str
    onset: int
    offset: int
    type: str
    apex: int | None = None

    @property
    def label(self) -> int:
        """Class index: 0 for ME, 1 for MaE."""
        return EXPRESSION_TYPES.index(self.type)


@dataclass(frozen=True)
class VideoInfo:
    """One long video: its subject, length in frames, frame rate and feature file."""

    name: str
    subject: str
    num_frames: int
    fps: float
    feature_path: Path


@dataclass
class FeatureSet:
    """A validated feature set: videos in file order and their ground-truth intervals."""

    root: Path
    videos: dict[str, VideoInfo]
    intervals: dict[str, list[Interval]]
    snippet_length: int
    stride: int
    feature_dims: tuple[int, int] = (0, 0)  # (rgb width, flow width), read from the files
    num_snippets: dict[str, int] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """Subjects in order of first appearance in videos.csv."""
        return list(dict.fromkeys(v.subject for v in self.videos.values()))

    def videos_of(self, subjects: Iterable[str]) -> list[str]:
        """Names of the videos whose subject is in ``subjects``, in file order."""
        wanted = set(subjects)
        return [name for name, v in self.videos.items() if v.subject in wanted]

    def snippet_frames(self, t: int) -> tuple[int, int]:
        """Inclusive frame range covered by snippet ``t``."""
        start = t * self.stride
        return start, start + self.snippet_length - 1


def expected_snippets(num_frames: int, snippet_length: int, stride: int) -> int:
    """Number of whole snippets of ``snippet_length`` frames every ``stride`` frames."""
    if num_frames < snippet_length:
        return 0
    return (num_frames - snippet_length) // stride + 1


def _read_csv(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV with exactly ``columns`` (any order), each with its 1-based line number."""
    if not path.is_file():
        raise LayoutError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise LayoutError(f"{path}: empty file, expected header {','.join(columns)}")
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            extra = [h for h in header if h not in columns]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing column(s) {','.join(missing)}")
                if extra:
                    parts.append(f"unexpected column(s) {','.join(extra)}")
                raise LayoutError(f"{path}: {'; '.join(parts)}; expected {','.join(columns)}")
            rows = []
            for line, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise LayoutError(f"{path}:{line}: {len(values)} fields, expected {len(header)}")
                rows.append((line, {h: v.strip() for h, v in zip(header, values)}))
            return rows
    except UnicodeDecodeError as err:
        raise LayoutError(f"{path}: not a UTF-8 text file ({err.reason})") from None


def _int(value: str, what: str, where: str, allow_empty: bool = False) -> int | None:
    if allow_empty and value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise LayoutError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or number != int(number):
        raise LayoutError(f"{where}: {what} {value!r} is not a whole frame number")
    return int(number)


def _read_videos(path: Path) -> dict[str, tuple[int, str, int, float]]:
    """videos.csv rows by video id: (line, subject, num_frames, fps)."""
    videos: dict[str, tuple[int, str, int, float]] = {}
    for line, row in _read_csv(path, VIDEO_COLUMNS):
        where = f"{path}:{line}"
        name, subject = row["video"], row["subject"]
        if not name:
            raise LayoutError(f"{where}: empty video id")
        if not subject:
            raise LayoutError(f"{where}: video {name!r} has an empty subject")
        if name in videos:
            raise LayoutError(f"{where}: duplicate video id {name!r} (first on line {videos[name][0]})")
        num_frames = _int(row["num_frames"], "num_frames", where)
        if num_frames <= 0:
            raise LayoutError(f"{where}: num_frames must be positive, got {num_frames}")
        try:
            fps = float(row["fps"])
        except ValueError:
            raise LayoutError(f"{where}: fps {row['fps']!r} is not a number") from None
        if not math.isfinite(fps) or fps <= 0:
            raise LayoutError(f"{where}: fps must be a positive number, got {row['fps']!r}")
        videos[name] = (line, subject, num_frames, fps)
    if not videos:
        raise LayoutError(f"{path}: no videos listed")
    return videos


def _read_intervals(path: Path, videos: Mapping[str, tuple[int, str, int, float]], videos_name: str = "videos.csv") -> dict[str, list[Interval]]:
    """annotations.csv rows grouped by video (every video present, possibly with no intervals)."""
    intervals: dict[str, list[Interval]] = {name: [] for name in videos}
    for line, row in _read_csv(path, ANNOTATION_COLUMNS):
        where = f"{path}:{line}"
        name = row["video"]
        if name not in videos:
            raise LayoutError(f"{where}: video {name!r} is not listed in {videos_name}")
        _, subject, num_frames, _ = videos[name]
        if row["subject"] != subject:
            raise LayoutError(f"{where}: subject {row['subject']!r} differs from {subject!r} in {videos_name} for video {name!r}")
        kind = row["type"]
        if kind not in EXPRESSION_TYPES:
            raise LayoutError(f"{where}: unknown type {kind!r}, expected one of {', '.join(EXPRESSION_TYPES)}")
        onset = _int(row["onset"], "onset", where)
        offset = _int(row["offset"], "offset", where)
        apex = _int(row["apex"], "apex", where, allow_empty=True)
        if apex is not None and apex < 0:
            apex = None
        if onset > offset:
            raise LayoutError(f"{where}: onset {onset} > offset {offset}")
        if onset < 0 or offset >= num_frames:
            raise LayoutError(f"{where}: interval [{onset}, {offset}] outside video {name!r} of {num_frames} frames (0..{num_frames - 1})")
        if apex is not None and not onset <= apex <= offset:
            raise LayoutError(f"{where}: apex {apex} outside its interval [{onset}, {offset}]")
        intervals[name].append(Interval(name, subject, onset, offset, kind, apex))
    return intervals


def read_tables(videos_csv: str | Path, annotations_csv: str | Path) -> tuple[dict[str, VideoInfo], dict[str, list[Interval]]]:
    """Videos and their intervals from a ``videos.csv`` and an ``annotations.csv`` (any names),
    validated, without touching feature files (``feature_path`` points where the layout puts them)."""
    videos_csv, annotations_csv = Path(videos_csv), Path(annotations_csv)
    raw = _read_videos(videos_csv)
    intervals = _read_intervals(annotations_csv, raw, videos_csv.name)
    features = videos_csv.parent / "features"
    videos = {name: VideoInfo(name, subject, frames, fps, features / f"{name}.npz") for name, (_, subject, frames, fps) in raw.items()}
    return videos, intervals


def _npz_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the arrays in an ``.npz`` read from their headers only."""
    shapes = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                else:  # format 3.0 has no public header reader: read the array itself
                    array = np.load(path, allow_pickle=False)[member[:-4]]
                    shape, dtype = array.shape, array.dtype
                shapes[member[:-4]] = (shape, dtype)
    return shapes


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``rgb`` and ``flow`` arrays of one feature file, as float32 [T, D]."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["rgb"], dtype=np.float32), np.asarray(data["flow"], dtype=np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise LayoutError(f"{path}: cannot read features ({err})") from None


def _check_features(path: Path, name: str, num_frames: int, snippet_length: int, stride: int, check_values: bool) -> tuple[int, int, int]:
    """Validate one feature file; returns (T, rgb width, flow width)."""
    if not path.is_file():
        raise LayoutError(f"{path}: feature file for video {name!r} not found")
    try:
        shapes = _npz_shapes(path)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise LayoutError(f"{path}: not a readable .npz file ({err})") from None
    for key in ("rgb", "flow"):
        if key not in shapes:
            raise LayoutError(f"{path}: missing array {key!r} (found {', '.join(sorted(shapes)) or 'none'})")
        shape, dtype = shapes[key]
        if len(shape) != 2:
            raise LayoutError(f"{path}: {key} has shape {shape}, expected [T, D]")
        if not np.issubdtype(dtype, np.floating):
            raise LayoutError(f"{path}: {key} has dtype {dtype}, expected float32")
    (t_rgb, d_rgb), (t_flow, d_flow) = shapes["rgb"][0], shapes["flow"][0]
    if t_rgb != t_flow:
        raise LayoutError(f"{path}: rgb has {t_rgb} snippets but flow has {t_flow}")
    expected = expected_snippets(num_frames, snippet_length, stride)
    if t_rgb == 0 or abs(t_rgb - expected) > SNIPPET_SLACK:
        raise LayoutError(
            f"{path}: {t_rgb} snippets, but {num_frames} frames with snippet length {snippet_length} and stride "
            f"{stride} give {expected} (+-{SNIPPET_SLACK} allowed); check num_frames in videos.csv and the dataset's snippet settings"
        )
    if check_values:
        rgb, flow = load_features(path)
        for key, array in (("rgb", rgb), ("flow", flow)):
            bad = ~np.isfinite(array)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise LayoutError(f"{path}: {key} contains NaN or Inf (first at snippet {row})")
    return t_rgb, d_rgb, d_flow


def load_feature_set(root: str | Path, snippet_length: int, stride: int | None = None, check_values: bool = True) -> FeatureSet:
    """Read and validate a feature set; raises :class:`LayoutError` with a one-line message."""
    root = Path(root).expanduser()
    stride = stride or snippet_length
    if snippet_length <= 0 or stride <= 0:
        raise LayoutError(f"snippet_length and stride must be positive, got {snippet_length} and {stride}")
    if not root.is_dir():
        raise LayoutError(f"{root}: feature-set folder not found")
    videos, intervals = read_tables(root / "videos.csv", root / "annotations.csv")
    num_snippets: dict[str, int] = {}
    dims: tuple[int, int] | None = None
    for name, info in videos.items():
        path = info.feature_path
        t, d_rgb, d_flow = _check_features(path, name, info.num_frames, snippet_length, stride, check_values)
        if dims is None:
            dims = (d_rgb, d_flow)
        elif dims != (d_rgb, d_flow):
            raise LayoutError(f"{path}: feature widths rgb={d_rgb}, flow={d_flow} differ from the first video's {dims}")
        num_snippets[name] = t
    return FeatureSet(root, videos, intervals, snippet_length, stride, dims or (0, 0), num_snippets)


def write_feature_set(
    root: str | Path,
    videos: Sequence[Mapping[str, object]],
    annotations: Sequence[Mapping[str, object]],
    features: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """Write ``videos.csv``, ``annotations.csv`` and optionally ``features/<video>.npz`` atomically.

    ``videos`` rows carry the keys of :data:`VIDEO_COLUMNS`, ``annotations`` those of
    :data:`ANNOTATION_COLUMNS` (``apex`` may be None); ``features`` maps video to (rgb, flow).
    """
    root = Path(root)
    for name, (rgb, flow) in (features or {}).items():
        io.save_npz(root / "features" / f"{name}.npz", rgb=np.asarray(rgb, np.float32), flow=np.asarray(flow, np.float32))
    io.write_csv(root / "annotations.csv", ANNOTATION_COLUMNS, annotations)
    io.write_csv(root / "videos.csv", VIDEO_COLUMNS, videos)
    return root
