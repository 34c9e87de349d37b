"""Reading the input videos: video files through OpenCV, or folders of frame images in natural order.

Frames come out as RGB ``uint8`` ``[H, W, 3]``. :class:`FrameTransform` turns each into the square
network input: an optional fixed crop box (e.g. the face region), a resize of the shorter side, and a
centre crop. The box is fixed per run, never tracked per frame: a moving crop would add motion that
the optical flow then reports as expression.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# the importers count a frame folder's frames with the same rule, so both agree on num_frames
from pwes.datasets.common import natural_key
from pwes.datasets.features import IMAGE_SUFFIXES


def parse_crop_box(text: str) -> tuple[int, int, int, int]:
    """``X,Y,WIDTH,HEIGHT`` (whole source pixels) from the command line, for argparse's ``type=``."""
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,WIDTH,HEIGHT in whole pixels, got {text!r}") from None
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 numbers X,Y,WIDTH,HEIGHT, got {text!r}")
    return box  # type: ignore[return-value]


class VideoError(ValueError):
    """An input video or frame folder cannot be read; the message names the file."""


@dataclass(frozen=True)
class VideoSource:
    """One input: a video file or a folder of frame images; ``name`` is the file stem / folder name."""

    path: Path
    name: str
    is_frame_folder: bool

    @classmethod
    def from_path(cls, path: str | Path) -> "VideoSource":
        """Classify ``path``; raises :class:`VideoError` when it does not exist."""
        path = Path(path).expanduser()
        if path.is_dir():
            return cls(path, path.resolve().name, True)
        if path.is_file():
            return cls(path, path.stem, False)
        raise VideoError(f"{path}: no such video file or frame folder")

    def frame_files(self) -> list[Path]:
        """The image files of a frame folder in natural name order (hidden files, e.g. ``._x.jpg``, skipped)."""
        files = [p for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise VideoError(f"{self.path}: folder holds no frame images ({' '.join(IMAGE_SUFFIXES)})")
        return sorted(files, key=lambda p: natural_key(p.name))

    def stamp(self) -> list:
        """What identifies the source's content cheaply (sizes and modification times), for caching."""
        if self.is_frame_folder:
            stats = [p.stat() for p in self.frame_files()]
            return [len(stats), sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)]
        stat = self.path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def probe(self) -> tuple[int, float | None]:
        """(frame count as the container reports it, fps or None when unknown); no decoding."""
        if self.is_frame_folder:
            return len(self.frame_files()), None
        capture = self._open()
        try:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(capture.get(cv2.CAP_PROP_FPS))
        finally:
            capture.release()
        return max(count, 0), fps if math.isfinite(fps) and fps > 0 else None

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise VideoError(f"{self.path}: OpenCV cannot open this file as a video")
        return capture

    def frames(self) -> Iterator[np.ndarray]:
        """Decode every frame as RGB ``uint8 [H, W, 3]``; all frames must share one size."""
        shape: tuple[int, ...] | None = None
        for where, frame in self._raw_frames():
            frame = _to_rgb(frame)
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise VideoError(f"{where}: frame is {frame.shape[1]}x{frame.shape[0]}, the first frame is {shape[1]}x{shape[0]}")
            yield frame

    def sample_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB ``uint8 [H, W, 3]``) for the frames at ``indices`` (ascending) that exist.

        A video is read in order once, decoding only the wanted frames fully (``grab`` skips the
        others' colour conversion); frame folders read just those files. Indices past the last
        frame are left out, so a container that over-reports its frame count gives fewer samples.
        """
        wanted = sorted(set(int(i) for i in indices))
        if not wanted:
            return
        if self.is_frame_folder:
            files = self.frame_files()
            for index in wanted:
                if index < len(files):
                    yield index, _to_rgb(self._read_image(files[index]))
            return
        capture = self._open()
        try:
            position, pending = 0, iter(wanted)
            target = next(pending)
            while target is not None:
                if not capture.grab():
                    break
                if position == target:
                    ok, frame = capture.retrieve()
                    if ok and frame is not None:
                        yield position, _to_rgb(frame)
                    target = next(pending, None)
                position += 1
        finally:
            capture.release()

    @staticmethod
    def _read_image(file: Path) -> np.ndarray:
        image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if image is None or image.size == 0:
            raise VideoError(f"{file}: unreadable frame image")
        if image.dtype == np.uint16:  # 16-bit PNG/TIFF: keep the top 8 bits
            image = (image >> 8).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise VideoError(f"{file}: unsupported pixel type {image.dtype}, expected 8- or 16-bit images")
        return image

    def _raw_frames(self) -> Iterator[tuple[str, np.ndarray]]:
        if self.is_frame_folder:
            for file in self.frame_files():
                yield str(file), self._read_image(file)
            return
        capture = self._open()
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                yield f"{self.path} frame {index}", frame
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (unsupported codec or damaged file)")


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV's grey, BGR or BGRA ``uint8`` image as RGB."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class FrameTransform:
    """Fixed crop box (x, y, width, height in source pixels; optional), shorter side to ``resize``, centre crop."""

    resize: int = 256
    crop_size: int = 224
    crop_box: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.crop_size < 1 or self.resize < self.crop_size:
            raise ValueError(f"need 1 <= crop size <= resize, got crop size {self.crop_size} and resize {self.resize}")
        if self.crop_box is not None and (len(self.crop_box) != 4 or min(self.crop_box[2:]) < 1 or min(self.crop_box[:2]) < 0):
            raise ValueError(f"crop box must be X,Y,WIDTH,HEIGHT with X,Y >= 0 and a positive size, got {self.crop_box}")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``[H, W, 3]`` to ``[crop_size, crop_size, 3]`` (``INTER_AREA`` when shrinking)."""
        if self.crop_box is not None:
            x, y, w, h = self.crop_box
            if x + w > frame.shape[1] or y + h > frame.shape[0]:
                raise VideoError(f"crop box {x},{y},{w},{h} extends beyond the {frame.shape[1]}x{frame.shape[0]} frame")
            frame = frame[y : y + h, x : x + w]
        height, width = frame.shape[:2]
        scale = self.resize / min(height, width)
        new_w, new_h = max(self.crop_size, round(width * scale)), max(self.crop_size, round(height * scale))
        if (new_w, new_h) != (width, height):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
        top, left = (new_h - self.crop_size) // 2, (new_w - self.crop_size) // 2
        return np.ascontiguousarray(frame[top : top + self.crop_size, left : left + self.crop_size])

    def seen_region(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The part of a ``width`` x ``height`` source frame that the centre crop keeps (x, y, w, h,
        source pixels, rounded): what I3D sees, for drawing on the frame."""
        x0, y0, w, h = self.crop_box if self.crop_box is not None else (0, 0, width, height)
        scale = self.resize / min(h, w)
        new_w, new_h = max(self.crop_size, round(w * scale)), max(self.crop_size, round(h * scale))
        sx, sy = w / new_w, h / new_h
        left, top = (new_w - self.crop_size) // 2, (new_h - self.crop_size) // 2
        return round(x0 + left * sx), round(y0 + top * sy), round(self.crop_size * sx), round(self.crop_size * sy)
