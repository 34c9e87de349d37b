"""Existing per-video feature files and frame folders: find them, read their shapes and frame
counts without loading the arrays, and load one video at a time as float32 ``[T, D]`` pairs.

Accepted layouts, one video per file name (searched recursively under the features folder):

* ``<video>-rgb.npz`` + ``<video>-flow.npz``, key ``feature`` of shape ``(1, N, D)`` or
  ``(N, D)`` (the LGSNet release; optional scalars ``frame_cnt``, ``video_name``);
* ``<video>-rgb.npy`` + ``<video>-flow.npy``, arrays ``(N, D)`` or ``(1, N, D)``;
* ``<video>.npz`` with keys ``rgb`` and ``flow`` (already combined; optional ``frame_cnt``).

``_rgb``/``_flow`` work as suffixes too. A tree that keeps the streams apart, ``rgb_feature/`` and
``flow_feature/`` (the LGSNet release; or any two folders, the flow one given as ``flow_dir``),
pairs ``rgb_feature/<video>.npz`` (or ``.npy``, stream suffix optional) with the file of the same
name in ``flow_feature/``. A feature set written by ``python -m pwes.extract``
(``videos.csv`` + ``features/<video>.npz``) is read as combined files, its ``videos.csv`` giving
the frame counts. Any of these may also hold the scalars
``snippet_length`` and ``stride``. A video's name is its path below the folder without stream
suffix and extension, ``/``-separated (``s15/15_0101disgustingteeth``); the dataset's name parser
turns it into the video id.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pwes.data import csvfile
from pwes.datasets.common import DatasetImportError, VideoName
from pwes.data.layout import SNIPPET_SLACK, LayoutError, check_feature_values
from pwes.data.npy_header import npy_header, npz_headers

STREAMS = ("rgb", "flow")
STREAM_SUFFIXES = {"rgb": ("-rgb", "_rgb"), "flow": ("-flow", "_flow")}
PAIR_KEYS = ("feature", "features")  # the array key of a per-stream .npz, besides the stream's name
FRAME_COUNT_KEYS = ("frame_cnt", "num_frames")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
RGB_FOLDER, FLOW_FOLDER = "rgb_feature", "flow_feature"  # the LGSNet release keeps the streams apart


@dataclass(frozen=True)
class FeatureSource:
    """The file(s) holding one video's features: a pair of per-stream files or one combined."""

    name: str
    rgb: Path
    flow: Path
    combined: bool

    def describe(self) -> str:
        """The file name(s), for messages."""
        return str(self.rgb) if self.combined else f"{self.rgb} / {self.flow.name}"


@dataclass(frozen=True)
class FeatureInfo:
    """What a source holds, read from array headers and small scalars only."""

    num_snippets: int  # rows used: the shorter stream's length
    rgb_width: int
    flow_width: int
    trimmed: bool  # rgb and flow differed by one snippet
    frame_count: int | None
    snippet_length: int | None
    stride: int | None


def _split_stream(stem: str) -> tuple[str, str | None]:
    for stream, suffixes in STREAM_SUFFIXES.items():
        for suffix in suffixes:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                return stem[: -len(suffix)], stream
    return stem, None


def stream_folders(root: Path, flow_dir: Path | None = None) -> tuple[Path, Path] | None:
    """The (rgb, flow) folders of a tree that keeps the streams apart, or None for one folder:
    ``flow_dir`` given (``root`` is then the rgb folder), ``root`` holding ``rgb_feature/`` and
    ``flow_feature/`` (the LGSNet release), or ``root`` being ``rgb_feature/`` beside its
    ``flow_feature/``."""
    if flow_dir is not None:
        flow_dir = Path(flow_dir).expanduser()
        if not flow_dir.is_dir():
            raise DatasetImportError(f"{flow_dir}: flow features folder not found (--flow-features)")
        return root, flow_dir
    for rgb, flow in ((root / RGB_FOLDER, root / FLOW_FOLDER), (root, root.parent / FLOW_FOLDER)):
        if rgb.is_dir() and flow.is_dir() and rgb.name == RGB_FOLDER:
            return rgb, flow
    return None


def _stream_files(root: Path) -> dict[str, Path]:
    """Feature files under one stream's folder by video name (path below it, stream suffix and
    extension removed)."""
    files: dict[str, Path] = {}
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(names):
            path = Path(folder) / file
            if file.startswith(".") or path.suffix.lower() not in (".npz", ".npy"):
                continue
            name = (path.parent / _split_stream(path.stem)[0]).relative_to(root).as_posix()
            if name in files:
                raise DatasetImportError(f"{path}: a second file for video {name!r} in {root} (first: {files[name]})")
            files[name] = path
    return files


def _discover_stream_folders(rgb_root: Path, flow_root: Path) -> dict[str, FeatureSource]:
    """Sources of a tree with one folder per stream, paired by video name."""
    rgb, flow = _stream_files(rgb_root), _stream_files(flow_root)
    for name, path in rgb.items():
        if name not in flow:
            raise DatasetImportError(f"{path}: no matching flow file for video {name!r} in {flow_root}")
    for name, path in flow.items():
        if name not in rgb:
            raise DatasetImportError(f"{path}: no matching rgb file for video {name!r} in {rgb_root}")
    return {name: FeatureSource(name, rgb[name], flow[name], combined=False) for name in sorted(rgb)}


def discover(root: Path, flow_dir: Path | None = None) -> tuple[dict[str, FeatureSource], list[str]]:
    """Feature sources under ``root`` by video name, and the files that form no source.
    A tree with separate stream folders (:func:`stream_folders`) is paired across them."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetImportError(f"{root}: features folder not found")
    split = stream_folders(root, flow_dir)
    if split is not None:
        return _discover_stream_folders(*split), []
    streams: dict[str, dict[str, Path]] = {}
    combined: dict[str, Path] = {}
    ignored: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            path = Path(folder) / file
            suffix = path.suffix.lower()
            if file.startswith(".") or suffix not in (".npz", ".npy"):
                continue
            stem, stream = _split_stream(path.stem)
            name = (path.parent / stem).relative_to(root).as_posix()
            if stream is None:
                if suffix == ".npz":
                    combined[name] = path
                else:
                    ignored.append(f"{path} (an .npy file needs a -rgb or -flow suffix)")
                continue
            previous = streams.setdefault(name, {}).get(stream)
            if previous is not None:
                raise DatasetImportError(f"{path}: a second {stream} file for video {name!r} (first: {previous})")
            streams[name][stream] = path
    sources: dict[str, FeatureSource] = {}
    for name, pair in streams.items():
        if name in combined:
            raise DatasetImportError(f"{combined[name]}: video {name!r} also has per-stream files ({pair[next(iter(pair))]})")
        missing = [s for s in STREAMS if s not in pair]
        if missing:
            present = next(iter(pair.values()))
            raise DatasetImportError(f"{present}: no matching {missing[0]} file for video {name!r}")
        sources[name] = FeatureSource(name, pair["rgb"], pair["flow"], combined=False)
    for name, path in combined.items():
        sources[name] = FeatureSource(name, path, path, combined=True)
    return dict(sorted(sources.items())), ignored


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an ``.npz``, from the headers only."""
    try:
        return npz_headers(path)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetImportError(f"{path}: not a readable .npz file ({err})") from None


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an ``.npy`` file, from its header only."""
    try:
        return npy_header(path)
    except (OSError, ValueError) as err:
        raise DatasetImportError(f"{path}: not a readable .npy file ({err})") from None


def _array_key(path: Path, keys: list[str], stream: str, combined: bool) -> str:
    """Which array of an ``.npz`` holds ``stream``."""
    candidates = (stream,) if combined else (*PAIR_KEYS, stream)
    for key in candidates:
        if key in keys:
            return key
    wanted = " or ".join(repr(k) for k in candidates)
    raise DatasetImportError(f"{path}: no array {wanted} (arrays found: {', '.join(sorted(keys)) or 'none'})")


def _matrix_shape(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, int]:
    """(N, D) of an array stored as (N, D) or (1, N, D)."""
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise DatasetImportError(f"{path}: array {key!r} has shape {tuple(shape)}, expected (1, N, D) or (N, D)")
    if not np.issubdtype(dtype, np.floating):
        raise DatasetImportError(f"{path}: array {key!r} has dtype {dtype}, expected floating point")
    if shape[1] == 0:
        raise DatasetImportError(f"{path}: array {key!r} has shape {tuple(shape)}: feature width 0")
    if shape[0] == 0:
        raise DatasetImportError(f"{path}: array {key!r} has shape {tuple(shape)}: no snippets (zero-length features)")
    return int(shape[0]), int(shape[1])


def _scalar(path: Path, keys: tuple[str, ...]) -> int | None:
    """A whole-number scalar stored under one of ``keys`` in an ``.npz``, if any."""
    if path.suffix.lower() != ".npz":
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            key = next((k for k in keys if k in data.files), None)
            if key is None:
                return None
            value = np.asarray(data[key])
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetImportError(f"{path}: cannot read {'/'.join(keys)} ({err})") from None
    number = float(value.reshape(())) if value.size == 1 and np.issubdtype(value.dtype, np.number) else math.nan
    if not math.isfinite(number) or number != int(number) or number <= 0:
        raise DatasetImportError(f"{path}: {key!r} must be one positive whole number, got {value.tolist()!r}")
    return int(number)


def _stream_shape(source: FeatureSource, stream: str) -> tuple[int, int]:
    path = source.rgb if stream == "rgb" else source.flow
    if path.suffix.lower() == ".npy":
        shape, dtype = _npy_header(path)
        return _matrix_shape(path, stream, shape, dtype)
    headers = _npz_headers(path)
    key = _array_key(path, list(headers), stream, source.combined)
    return _matrix_shape(path, key, *headers[key])


def inspect(source: FeatureSource) -> FeatureInfo:
    """Shapes, frame count and snippet settings of one source, without loading its arrays."""
    (t_rgb, d_rgb), (t_flow, d_flow) = _stream_shape(source, "rgb"), _stream_shape(source, "flow")
    if abs(t_rgb - t_flow) > SNIPPET_SLACK:
        raise DatasetImportError(f"{source.describe()}: rgb has {t_rgb} snippets but flow has {t_flow}")
    frame_count = _scalar(source.rgb, FRAME_COUNT_KEYS)
    if frame_count is None and not source.combined:
        frame_count = _scalar(source.flow, FRAME_COUNT_KEYS)
    return FeatureInfo(
        num_snippets=min(t_rgb, t_flow),
        rgb_width=d_rgb,
        flow_width=d_flow,
        trimmed=t_rgb != t_flow,
        frame_count=frame_count,
        snippet_length=_scalar(source.rgb, ("snippet_length",)),
        stride=_scalar(source.rgb, ("stride",)),
    )


def _load_stream(source: FeatureSource, stream: str) -> np.ndarray:
    path = source.rgb if stream == "rgb" else source.flow
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as data:
                array = data[_array_key(path, list(data.files), stream, source.combined)]
    except DatasetImportError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetImportError(f"{path}: cannot read {stream} features ({err})") from None
    return array.reshape(array.shape[-2:]) if array.ndim == 3 else array


def load(source: FeatureSource, num_snippets: int) -> tuple[np.ndarray, np.ndarray]:
    """The (rgb, flow) arrays of one source as float32 ``[num_snippets, D]``, checked finite and
    within the layout's magnitude bound (:func:`pwes.data.layout.check_feature_values`)."""
    arrays = []
    for stream in STREAMS:
        stored = _load_stream(source, stream)[:num_snippets]
        try:  # on the stored values, before float32 turns a huge float64 into Inf
            check_feature_values(source.rgb if stream == "rgb" else source.flow, stream, stored)
        except LayoutError as err:
            raise DatasetImportError(str(err)) from None
        arrays.append(np.ascontiguousarray(stored, dtype=np.float32))
    return arrays[0], arrays[1]


def count_frames(root: Path, parse_name: Callable[[str], VideoName | None]) -> dict[str, tuple[int, Path]]:
    """Image files per video folder under ``root``, by video key: ``{key: (count, folder)}``.

    Every folder holding images is a candidate; the dataset's ``parse_name`` decides which are
    videos (others, such as depth-map folders, are skipped).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetImportError(f"{root}: frames folder not found")
    counts: dict[str, tuple[int, Path]] = {}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        images = sum(1 for f in files if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            continue
        path = Path(folder)
        parsed = parse_name(path.relative_to(root).as_posix())
        if parsed is None:
            continue
        if parsed.key in counts:
            raise DatasetImportError(f"{path}: a second frames folder for video {parsed.video!r} (first: {counts[parsed.key][1]})")
        counts[parsed.key] = (images, path)
    return counts


def layout_frame_counts(features_dir: Path, parse_name: Callable[[str], VideoName | None]) -> dict[str, int]:
    """``num_frames`` by video key from the ``videos.csv`` of a feature set written by
    ``python -m pwes.extract``: in the features folder, or beside it when it is called ``features``.
    Empty when there is no such file."""
    features_dir = Path(features_dir).expanduser()
    candidates = [features_dir / "videos.csv"]
    if features_dir.name == "features":
        candidates.append(features_dir.parent / "videos.csv")
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return {}
    counts: dict[str, int] = {}
    for line, row in csvfile.read_rows(path, ("video", "num_frames"), allow_extra=True, error=DatasetImportError):
        parsed = parse_name(row["video"])
        if parsed is None:
            continue
        if not row["num_frames"].isdigit() or int(row["num_frames"]) <= 0:
            raise DatasetImportError(f"{path}:{line}: num_frames {row['num_frames']!r} is not a positive whole number")
        counts[parsed.key] = int(row["num_frames"])
    return counts
