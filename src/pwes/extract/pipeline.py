"""From input videos to a feature-set folder: decode, TV-L1 flow, snippets through both I3D streams, write.

Per video, with ``N`` decoded frames: flow ``i`` joins frames ``i`` and ``i + 1`` (``N - 1`` flows),
and the last frame is dropped from the RGB stream so both streams cover frames ``0 .. N - 2`` (as in
the paper). Snippet ``t`` holds frames / flows ``[t * stride, t * stride + snippet)``; only whole
snippets are used, so ``T = expected_snippets(N - 1, snippet, stride)``, which equals
``expected_snippets(N, snippet, stride)`` or one less (inside the layout's +-1 slack). A video needs
at least ``snippet + 1`` frames. ``videos.csv`` records the real ``N``.

Decoded frames (``frames.uint8``, RGB ``[N, S, S, 3]``) and scaled flow (``flow.float16``,
``[N - 1, S, S, 2]``) are raw memory-mapped files in a per-video work folder, with ``meta.json``
saying what produced them. With a cache folder they persist and are reused when the source file and
the settings are unchanged, so a second run skips decoding and TV-L1; otherwise a temporary folder is
used and removed after the video.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from pwes import io
from pwes.data.layout import expected_snippets
from pwes.extract.flow import FLOW_BOUND, FlowComputer, flow_file_size, frames_file_size, open_flow, open_frames
from pwes.extract.face import DEFAULT_MARGIN, DEFAULT_SAMPLES, FACE_MODES, load_detector
from pwes.extract.i3d import FEATURE_DIM, InceptionI3d, load_i3d
from pwes.extract.progress import Progress
from pwes.extract.region import choose_region
from pwes.extract.video import FrameTransform, VideoError, VideoSource
from pwes.extract.writer import FeatureSetWriter, VideoFeatures  # noqa: F401 - FeatureSetWriter is part of this module's interface

CACHE_VERSION = 1
SUBJECT_RULES = ("parent", "prefix")


class ExtractionError(ValueError):
    """A video cannot be turned into features (too short, no frame rate, ...); the message names it."""


@dataclass(frozen=True)
class ExtractionSettings:
    """Everything that decides the numbers (plus batch size, device and flow workers, which only decide speed)."""

    snippet: int
    stride: int | None = None  # None: non-overlapping snippets, stride = snippet
    transform: FrameTransform = field(default_factory=FrameTransform)
    batch_size: int = 8
    device: str = "cpu"
    workers: int = 0
    flow_bound: float = FLOW_BOUND
    face: str = "none"  # "auto": one detected face box per video (pwes.extract.face); a transform crop box wins
    face_margin: float = DEFAULT_MARGIN
    face_samples: int = DEFAULT_SAMPLES

    def __post_init__(self) -> None:
        if self.snippet < 1:
            raise ValueError(f"snippet length must be >= 1, got {self.snippet}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.face not in FACE_MODES:
            raise ValueError(f"face must be one of {', '.join(FACE_MODES)}, got {self.face!r}")
        if not 0 <= self.face_margin <= 2:
            raise ValueError(f"face margin must be between 0 and 2 (a share of the face's size per side), got {self.face_margin}")
        if self.face_samples < 1:
            raise ValueError(f"face samples must be >= 1, got {self.face_samples}")

    @property
    def step(self) -> int:
        """The stride actually used."""
        return self.stride or self.snippet


@dataclass(frozen=True)
class VideoJob:
    """One input to extract: where it is, what it is called, its subject and an optional fps override."""

    source: VideoSource
    subject: str
    fps: float | None = None


@dataclass(frozen=True)
class VideoResult:
    """What happened to one input: status ``ok``, ``skipped`` or ``failed`` (with a one-line message)."""

    name: str
    path: Path
    status: str
    message: str = ""
    num_frames: int = 0
    num_snippets: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    crop: str = ""  # e.g. "face-auto box 39,25,79,79"


def snippet_starts(num_frames: int, snippet: int, stride: int) -> list[int]:
    """First frame of every whole snippet of a video with ``num_frames`` decoded frames (last one dropped)."""
    return [t * stride for t in range(expected_snippets(num_frames - 1, snippet, stride))]


def plan_jobs(
    paths: Sequence[str | os.PathLike],
    subject: str | None = None,
    subject_from: str = "parent",
    fps: float | None = None,
) -> tuple[list[VideoJob], list[VideoResult]]:
    """Turn input paths into jobs; inputs that cannot be jobs come back as failed results.

    The video name is the file stem or folder name; the subject is ``subject`` when given, else the
    parent folder's name (``subject_from='parent'``) or the part of the name before the first ``_``
    (``'prefix'``). ``fps`` overrides the container's frame rate and is required for frame folders.
    """
    if subject_from not in SUBJECT_RULES:
        raise ValueError(f"subject rule must be one of {', '.join(SUBJECT_RULES)}, got {subject_from!r}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    jobs: list[VideoJob] = []
    failed: list[VideoResult] = []
    seen: dict[str, Path] = {}
    for raw in paths:
        try:
            source = VideoSource.from_path(raw)
            if source.name in seen:
                raise ExtractionError(f"{source.path}: video name {source.name!r} is already used by {seen[source.name]}")
            if source.is_frame_folder and fps is None:
                raise ExtractionError(f"{source.path}: a frame folder has no frame rate; pass --fps")
            if subject:
                who = subject
            elif subject_from == "parent":
                who = source.path.resolve().parent.name
            else:
                who = source.name.split("_", 1)[0]
            if not who:
                raise ExtractionError(f"{source.path}: cannot derive a subject ({subject_from} rule); pass --subject")
        except ValueError as err:
            failed.append(VideoResult(Path(raw).name, Path(raw), "failed", str(err)))
            continue
        seen[source.name] = source.path
        jobs.append(VideoJob(source, who, fps))
    return jobs, failed


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextmanager
def _work_folder(cache_dir: Path | None, name: str) -> Iterator[Path]:
    if cache_dir is not None:
        folder = cache_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix=f"pwes-extract-{name}-") as tmp:
            yield Path(tmp)


class Extractor:
    """Holds the two I3D streams and the flow workers; :meth:`extract` turns one job into features."""

    def __init__(
        self,
        rgb_weights: str | os.PathLike,
        flow_weights: str | os.PathLike,
        settings: ExtractionSettings,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.device = _resolve_device(settings.device)
        # channels-last: the [B, L, S, S, C] snippets are already laid out so, and conv3d runs 10-15% faster (CPU)
        self.models: dict[str, InceptionI3d] = {
            stream: load_i3d(path, stream, self.device).to(memory_format=torch.channels_last_3d)
            for stream, path in (("rgb", rgb_weights), ("flow", flow_weights))
        }
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.progress = progress
        # a crop box wins over --face, so the detector is only loaded (and dlib only needed) without one
        self.detect = load_detector() if settings.face == "auto" and settings.transform.crop_box is None else None
        self.flow = FlowComputer(settings.workers, settings.flow_bound)

    def close(self) -> None:
        """Stop the flow workers."""
        self.flow.close()

    def __enter__(self) -> "Extractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bar(self, desc: str, total: int | None, unit: str) -> Progress:
        return Progress(desc, total, unit, self.progress)

    def extract(self, job: VideoJob) -> VideoFeatures:
        """Decode (or reuse the cache), compute flow, run both I3D streams over the whole snippets."""
        source, s = job.source, self.settings
        region = choose_region(source, s.transform, self.detect, s.face_margin, s.face_samples)
        with _work_folder(self.cache_dir, source.name) as folder:
            meta_path = folder / "meta.json"
            num_frames, fps, warnings = self._frames(job, region.transform(s.transform), folder, meta_path)
            warnings = [*region.warnings, *warnings]
            if num_frames - 1 < s.snippet:
                raise ExtractionError(
                    f"{source.path}: {num_frames} frame(s), shorter than one snippet ({s.snippet} frames plus one for the optical flow)"
                )
            self._flows(job, folder, meta_path, num_frames)
            size = s.transform.crop_size
            frames = open_frames(folder / "frames.uint8", num_frames, size)
            flows = open_flow(folder / "flow.float16", num_frames - 1, size)
            starts = snippet_starts(num_frames, s.snippet, s.step)
            with self._bar(f"{source.name} i3d", 2 * len(starts), "snippet") as bar:
                rgb = self._features("rgb", frames, starts, bar.update)
                flow = self._features("flow", flows, starts, bar.update)
            del frames, flows  # release the memory maps before a temporary folder is removed
        return VideoFeatures(rgb, flow, num_frames, fps, tuple(warnings), region)

    def _frames(self, job: VideoJob, transform: FrameTransform, folder: Path, meta_path: Path) -> tuple[int, float, list[str]]:
        """Decode and ``transform`` every frame into ``frames.uint8`` unless the cache already holds them."""
        source = job.source
        key = {
            "version": CACHE_VERSION,
            "source": str(source.path.resolve()),
            "stamp": source.stamp(),
            "resize": transform.resize,
            "crop_size": transform.crop_size,
            "crop_box": list(transform.crop_box) if transform.crop_box else None,
        }
        meta = _read_meta(meta_path)
        frames_path = folder / "frames.uint8"
        warnings: list[str] = []
        cached = meta.get("frames") == key and frames_path.is_file()
        if cached and os.path.getsize(frames_path) == frames_file_size(meta["num_frames"], transform.crop_size):
            num_frames, source_fps = meta["num_frames"], meta.get("fps")
        else:
            cached, (expected, source_fps) = False, source.probe()
        fps = job.fps if job.fps is not None else source_fps
        if fps is None:
            raise ExtractionError(f"{source.path}: the file states no frame rate; pass --fps")
        if not cached:
            num_frames = 0
            with self._bar(f"{source.name} decode", expected or None, "frame") as bar, io.atomic_open(frames_path, "wb") as handle:
                for frame in source.frames():
                    try:
                        handle.write(transform(frame).tobytes())
                    except VideoError as err:
                        raise VideoError(f"{source.path}: {err}") from None
                    num_frames += 1
                    bar.update()
            if not source.is_frame_folder and expected and expected != num_frames:
                warnings.append(f"the container reports {expected} frames but {num_frames} were decoded; using {num_frames}")
            io.write_json(meta_path, {"frames": key, "num_frames": num_frames, "fps": source_fps})
        return num_frames, float(fps), warnings

    def _flows(self, job: VideoJob, folder: Path, meta_path: Path, num_frames: int) -> None:
        """Compute TV-L1 flow into ``flow.float16`` unless the cache already holds it for these frames."""
        meta = _read_meta(meta_path)
        key = {"frames": meta.get("frames"), "bound": self.settings.flow_bound, "method": "opencv DualTVL1 defaults"}
        flow_path, size = folder / "flow.float16", self.settings.transform.crop_size
        if meta.get("flow") == key and flow_path.is_file() and os.path.getsize(flow_path) == flow_file_size(num_frames, size):
            return
        partial = folder / "flow.float16.partial"
        try:
            with self._bar(f"{job.source.name} flow", num_frames - 1, "pair") as bar:
                self.flow.compute(folder / "frames.uint8", partial, num_frames, size, bar.update)
            os.replace(partial, flow_path)
        finally:
            partial.unlink(missing_ok=True)
        io.write_json(meta_path, {**meta, "flow": key})

    @torch.inference_mode()
    def _features(self, stream: str, array: np.ndarray, starts: Sequence[int], on_batch: Callable[[int], None]) -> np.ndarray:
        """I3D features ``[len(starts), 1024]`` of the snippets of a frame or flow array, in batches."""
        model, length, batch_size = self.models[stream], self.settings.snippet, self.settings.batch_size
        out = np.empty((len(starts), FEATURE_DIM), dtype=np.float32)
        for first in range(0, len(starts), batch_size):
            chunk = starts[first : first + batch_size]
            batch = torch.from_numpy(np.stack([array[s : s + length] for s in chunk])).to(self.device)
            x = batch.permute(0, 4, 1, 2, 3).float()  # [B, L, S, S, C] -> [B, C, L, S, S], channels-last strides
            if stream == "rgb":
                x = x / 127.5 - 1.0
            try:
                out[first : first + len(chunk)] = model.extract_features(x).cpu().numpy()
            except torch.OutOfMemoryError:
                raise ExtractionError(f"{stream} I3D ran out of {self.device.type} memory at --batch-size {batch_size}; use less") from None
            on_batch(len(chunk))
        return out


def _resolve_device(device: str) -> torch.device:
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; use cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use cpu or cuda")
    return resolved


def extract_videos(
    inputs: Sequence[str | os.PathLike],
    out_root: str | os.PathLike,
    rgb_weights: str | os.PathLike,
    flow_weights: str | os.PathLike,
    settings: ExtractionSettings,
    *,
    subject: str | None = None,
    subject_from: str = "parent",
    fps: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    skip_existing: bool = False,
    progress: bool = True,
    on_result: Callable[[VideoResult], None] | None = None,
) -> list[VideoResult]:
    """Extract every input into the feature set at ``out_root``; one :class:`VideoResult` per input.

    Problems with a single video (unreadable, too short, ...) fail that video only. Problems with the
    whole run (weights, device, a foreign ``videos.csv``) raise a ``ValueError`` before any work.
    """
    jobs, results = plan_jobs(inputs, subject, subject_from, fps)
    writer = FeatureSetWriter(out_root, settings.snippet, settings.step)
    with Extractor(rgb_weights, flow_weights, settings, cache_dir, progress) as extractor:
        for result in results:  # inputs that could not become jobs, reported once the run is sure to start
            if on_result:
                on_result(result)
        terminal = sys.stderr.isatty()  # elsewhere each stage writes plain progress lines (pwes.extract.progress)
        for job in tqdm(jobs, desc="videos", unit="video", position=0, disable=not (progress and terminal), dynamic_ncols=True):
            name, started = job.source.name, time.perf_counter()
            if skip_existing and writer.has(name):
                result = VideoResult(name, job.source.path, "skipped", "features already present")
            else:
                try:
                    features = extractor.extract(job)
                    writer.write(name, job.subject, features)
                    seconds = time.perf_counter() - started
                    region = features.region
                    crop = f"{region.method} box {','.join(map(str, region.box))}" if region is not None else ""
                    result = VideoResult(
                        name, job.source.path, "ok", "", features.num_frames, len(features.rgb), seconds, features.warnings, crop
                    )
                except (ValueError, OSError, cv2.error) as err:  # VideoError, ExtractionError, file system, OpenCV
                    message = " ".join(str(err).split())  # one line, whatever OpenCV put in it
                    if not isinstance(err, ValueError):
                        message = f"{type(err).__name__}: {message}"
                    if str(job.source.path) not in message:  # every failure line names its input
                        message = f"{job.source.path}: {message}"
                    result = VideoResult(name, job.source.path, "failed", message, seconds=time.perf_counter() - started)
            results.append(result)
            if on_result:
                on_result(result)
    return results
