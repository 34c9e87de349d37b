"""The on-disk feature-set layout: read, validate and write it.

::

    ROOT/videos.csv        video,subject,num_frames,fps
    ROOT/annotations.csv   video,subject,onset,apex,offset,type
    ROOT/features/<video>.npz   rgb: float32 [T, D], flow: float32 [T, D]
                                (+ scalars snippet_length, stride, fps: what the features were cut with)

Frames are 0-based, intervals inclusive, ``type`` is ``ME`` or ``MaE``; ``apex`` may be empty or
-1 when unknown. Row ``t`` of the features covers frames ``[t*stride, t*stride + length)``.
Video and subject ids must be safe ids (:func:`pwes.data.ids.id_problem`): they name folders, files and CSV
cells. Each expression is listed once. Feature values are finite and within
``+-MAX_FEATURE_MAGNITUDE``. Every problem is raised as a :class:`LayoutError` whose one-line
message names the file and line; a set without any annotation row loads with a warning.

Every feature file pwes writes (``pwes.extract``, ``pwes.prepare``) records the snippet settings
it was cut with (:mod:`pwes.data.recorded`); :func:`load_feature_set` refuses files whose record
differs from its settings, and any whose snippet count does not fit the frames and stride.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pwes import io
from pwes.data import csvfile
from pwes.data.ids import id_problem
from pwes.data.npy_header import npz_headers

VIDEO_COLUMNS = ("video", "subject", "num_frames", "fps")
ANNOTATION_COLUMNS = ("video", "subject", "onset", "apex", "offset", "type")
EXPRESSION_TYPES = ("ME", "MaE")  # class index 0 = ME, 1 = MaE; the TCAM adds background at 2
SNIPPET_SLACK = 1  # real extractors drop or pad the last partial snippet: allow +-1 row
# Real snippet features (I3D after ReLU) stay within tens. Values beyond 1e6 are a broken
# extractor or a unit mistake, and their squares summed over a long video (1e4 snippets x 2048
# dims) approach float32's range (3.4e38) in the model's norms and losses: refuse them.
MAX_FEATURE_MAGNITUDE = 1e6

log = logging.getLogger(__name__)


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
    return csvfile.read_rows(path, columns, error=LayoutError)


def check_id(value: str, what: str, where: str) -> None:
    """Raise :class:`LayoutError` at ``where`` when ``value`` is not a safe ``what`` id."""
    problem = id_problem(value)
    if problem is not None:
        raise LayoutError(
            f"{where}: {what} id {value!r} {problem}; ids may hold only letters, digits, '.', '_' and '-' and start "
            "with a letter or digit (they name folders, files and CSV cells)"
        )


def _int(value: str, what: str, where: str, allow_empty: bool = False) -> int | None:
    if allow_empty and value == "":
        return None
    return csvfile.whole_frame(value, what, where, LayoutError)


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
        check_id(name, "video", where)
        check_id(subject, "subject", where)
        if name in videos:
            raise LayoutError(f"{where}: duplicate video id {name!r} (first on line {videos[name][0]})")
        num_frames = _int(row["num_frames"], "num_frames", where)
        if num_frames <= 0:
            raise LayoutError(f"{where}: num_frames must be positive, got {num_frames}")
        fps = csvfile.number(row["fps"], "fps", where, LayoutError)
        if not math.isfinite(fps) or fps <= 0:
            raise LayoutError(f"{where}: fps must be a positive number, got {row['fps']!r}")
        videos[name] = (line, subject, num_frames, fps)
    if not videos:
        raise LayoutError(f"{path}: no videos listed")
    return videos


def _read_intervals(
    path: Path, videos: Mapping[str, tuple[int, str, int, float]], videos_name: str = "videos.csv", warn_empty: bool = True
) -> dict[str, list[Interval]]:
    """annotations.csv rows grouped by video (every video present, possibly with no intervals);
    ``warn_empty``: log that a file without rows leaves nothing to train on or score."""
    intervals: dict[str, list[Interval]] = {name: [] for name in videos}
    seen: dict[tuple[str, int, int, str], int] = {}  # (video, onset, offset, type) -> first line
    rows = _read_csv(path, ANNOTATION_COLUMNS)
    if not rows and warn_empty:
        log.warning(
            "%s: no annotation rows: there is no ground truth, so training has no labels and evaluation "
            "has nothing to score (every proposal counts as a false positive)", path,
        )
    for line, row in rows:
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
        first = seen.setdefault((name, onset, offset, kind), line)
        if first != line:
            raise LayoutError(
                f"{where}: duplicates line {first} ({kind} [{onset}, {offset}] of video {name!r}); list each "
                "expression once (a repeated row is a second ground truth that no proposal can match)"
            )
        intervals[name].append(Interval(name, subject, onset, offset, kind, apex))
    return intervals


def read_tables(
    videos_csv: str | Path, annotations_csv: str | Path, warn_empty: bool = True
) -> tuple[dict[str, VideoInfo], dict[str, list[Interval]]]:
    """Videos and their intervals from a ``videos.csv`` and an ``annotations.csv`` (any names),
    validated, without touching feature files (``feature_path`` points where the layout puts them).
    ``warn_empty``: warn about an annotations.csv without rows (training and evaluation need
    them; spotting, which only draws them, passes False)."""
    videos_csv, annotations_csv = Path(videos_csv), Path(annotations_csv)
    raw = _read_videos(videos_csv)
    intervals = _read_intervals(annotations_csv, raw, videos_csv.name, warn_empty)
    features = videos_csv.parent / "features"
    videos = {name: VideoInfo(name, subject, frames, fps, features / f"{name}.npz") for name, (_, subject, frames, fps) in raw.items()}
    return videos, intervals


def load_features(path: str | Path, check: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``rgb`` and ``flow`` arrays of one feature file, as float32 [T, D].

    ``check``: also run :func:`check_feature_arrays` (shapes, NaN/Inf, magnitude), for files that
    did not come through :func:`load_feature_set`.
    """
    path = Path(path)
    rgb, flow = _read_arrays(path)
    if check:
        check_feature_arrays(path, rgb, flow)
    try:
        return np.asarray(rgb, dtype=np.float32), np.asarray(flow, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise LayoutError(f"{path}: features are not numbers ({err})") from None


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``rgb`` and ``flow`` arrays of a feature file as stored (any dtype)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["rgb"], data["flow"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise LayoutError(f"{path}: cannot read features ({err})") from None


def check_feature_shapes(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, int, int]:
    """(T, rgb width, flow width) of two [T, D] streams, or a :class:`LayoutError` naming the file."""
    for key in ("rgb", "flow"):
        shape = tuple(shapes[key])
        if len(shape) != 2:
            raise LayoutError(f"{path}: {key} has shape {shape}, expected [T, D]")
        if shape[1] == 0:
            raise LayoutError(f"{path}: {key} has shape {shape}: feature width 0 (every snippet needs at least one value)")
        if shape[0] == 0:
            raise LayoutError(f"{path}: {key} has shape {shape}: no snippets (zero-length features)")
    (t_rgb, d_rgb), (t_flow, d_flow) = shapes["rgb"], shapes["flow"]
    if t_rgb != t_flow:
        raise LayoutError(f"{path}: rgb has {t_rgb} snippets but flow has {t_flow}")
    return int(t_rgb), int(d_rgb), int(d_flow)


def check_feature_values(path: Path, key: str, array: np.ndarray) -> None:
    """Refuse NaN, Inf and values beyond :data:`MAX_FEATURE_MAGNITUDE`, naming file, stream and snippet."""
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise LayoutError(f"{path}: {key} contains NaN or Inf (first at snippet {row})")
    if array.dtype.kind == "f" and float(np.finfo(array.dtype).max) <= MAX_FEATURE_MAGNITUDE:
        return  # float16: every finite value is within the bound
    huge = np.abs(array) > MAX_FEATURE_MAGNITUDE
    if huge.any():
        row, column = (int(i) for i in np.argwhere(huge)[0])
        raise LayoutError(
            f"{path}: {key} has values up to {float(np.abs(array).max()):.3g} (first at snippet {row}, dimension "
            f"{column}); features beyond +-{MAX_FEATURE_MAGNITUDE:g} overflow float32 arithmetic in training "
            "(squares and sums reach 3.4e38): check the extractor's output or rescale the features"
        )


def check_feature_arrays(path: str | Path, rgb: np.ndarray, flow: np.ndarray) -> int:
    """Validate one video's (rgb, flow) arrays: floating [T, D] with T, D > 0, equal T, finite
    values within +-:data:`MAX_FEATURE_MAGNITUDE`. Returns T; raises :class:`LayoutError`."""
    path = Path(path)
    for key, array in (("rgb", rgb), ("flow", flow)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise LayoutError(f"{path}: {key} has dtype {array.dtype}, expected float32")
    t, _, _ = check_feature_shapes(path, {"rgb": rgb.shape, "flow": flow.shape})
    for key, array in (("rgb", rgb), ("flow", flow)):
        check_feature_values(path, key, array)
    return t


def _check_features(path: Path, name: str, num_frames: int, snippet_length: int, stride: int, check_values: bool) -> tuple[int, int, int]:
    """Validate one feature file; returns (T, rgb width, flow width)."""
    if not path.is_file():
        raise LayoutError(f"{path}: feature file for video {name!r} not found")
    try:
        shapes = npz_headers(path)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise LayoutError(f"{path}: not a readable .npz file ({err})") from None
    for key in ("rgb", "flow"):
        if key not in shapes:
            raise LayoutError(f"{path}: missing array {key!r} (found {', '.join(sorted(shapes)) or 'none'})")
        shape, dtype = shapes[key]
        if not np.issubdtype(dtype, np.floating):
            raise LayoutError(f"{path}: {key} has dtype {dtype}, expected float32")
    t_rgb, d_rgb, d_flow = check_feature_shapes(path, {key: shapes[key][0] for key in ("rgb", "flow")})
    from pwes.data.recorded import RECORDED_KEYS, SETTINGS_FIX, check_recorded, read_recorded, snippet_count_problem

    if set(RECORDED_KEYS) & set(shapes):
        check_recorded(path, read_recorded(path), snippet_length, stride, "the dataset settings are", SETTINGS_FIX)
    if expected_snippets(num_frames, snippet_length, stride) == 0:
        raise LayoutError(
            f"{path}: video {name!r} has {num_frames} frames, fewer than one snippet of {snippet_length}; "
            "check num_frames in videos.csv and the dataset's snippet settings"
        )
    problem = snippet_count_problem(t_rgb, num_frames, snippet_length, stride)
    if problem is not None:
        raise LayoutError(f"{path}: {problem}; check num_frames in videos.csv and the dataset's snippet settings (dataset.snippet_length, dataset.stride)")
    if check_values:  # on the stored values: a float64 1e300 is too large, not "Inf"
        rgb, flow = _read_arrays(path)
        for key, array in (("rgb", rgb), ("flow", flow)):
            check_feature_values(path, key, array)
    return t_rgb, d_rgb, d_flow


def load_feature_set(
    root: str | Path, snippet_length: int, stride: int | None = None, check_values: bool = True, require_annotations: bool = False
) -> FeatureSet:
    """Read and validate a feature set; raises :class:`LayoutError` with a one-line message.

    ``require_annotations``: refuse a set whose ``annotations.csv`` has no row at all (training
    needs labels); otherwise such a set loads with a logged warning (e.g. freshly extracted features).
    """
    root = Path(root).expanduser()
    stride = stride or snippet_length
    if snippet_length <= 0 or stride <= 0:
        raise LayoutError(f"snippet_length and stride must be positive, got {snippet_length} and {stride}")
    if not root.is_dir():
        raise LayoutError(f"{root}: feature-set folder not found")
    videos, intervals = read_tables(root / "videos.csv", root / "annotations.csv")
    if require_annotations and not any(intervals.values()):
        raise LayoutError(f"{root / 'annotations.csv'}: no annotation rows; training needs at least one annotated expression")
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
    snippet_length: int | None = None,
    stride: int | None = None,
) -> Path:
    """Write ``videos.csv``, ``annotations.csv`` and optionally ``features/<video>.npz`` atomically.

    ``videos`` rows carry the keys of :data:`VIDEO_COLUMNS`, ``annotations`` those of
    :data:`ANNOTATION_COLUMNS` (``apex`` may be None); ``features`` maps video to (rgb, flow).
    With ``snippet_length`` (and ``stride``, default the length) every feature file records them
    and its video's fps (:mod:`pwes.data.recorded`).
    """
    from pwes.data.recorded import recorded_arrays

    root = Path(root)
    fps = {str(row["video"]): row.get("fps") for row in videos}
    for name, (rgb, flow) in (features or {}).items():
        extra = {}
        if snippet_length is not None:
            rate = fps.get(name)
            extra = recorded_arrays(snippet_length, stride or snippet_length, float(rate) if rate not in (None, "") else None)  # type: ignore[arg-type]
        io.save_npz(root / "features" / f"{name}.npz", rgb=np.asarray(rgb, np.float32), flow=np.asarray(flow, np.float32), **extra)
    io.write_csv(root / "annotations.csv", ANNOTATION_COLUMNS, annotations)
    io.write_csv(root / "videos.csv", VIDEO_COLUMNS, videos)
    return root
