"""Which part of each source frame a video's features come from, and the record of it.

Per video one region: the ``--crop-box`` when given (it wins over ``--face``), else the face box
of :mod:`pwes.extract.face` with ``--face auto``, else the whole frame. It is recorded in
``ROOT/crop_boxes.csv`` (one row per video, merged like ``videos.csv``) and drawn on the first frame
in ``ROOT/crops/<video>.png`` (green: the box; yellow: the centre crop I3D sees), so a user can
check the box without decoding anything; ``pwes.spot`` copies the row into its ``.json``.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pwes import io
from pwes.data.layout import LayoutError
from pwes.extract.face import DEFAULT_MARGIN, DEFAULT_SAMPLES, Detector, FaceError, draw_box, find_face, sample_indices
from pwes.extract.video import FrameTransform, VideoError, VideoSource

CROP_FILE = "crop_boxes.csv"
PICTURE_DIR = "crops"
CROP_COLUMNS = ("video", "x", "y", "width", "height", "frame_width", "frame_height", "method", "faces_found", "frames_sampled")
METHODS = ("crop-box", "face-auto", "full-frame")


@dataclass(frozen=True)
class CropRegion:
    """The region one video's frames are cut from (source pixels) and how it was chosen."""

    method: str  # one of METHODS
    box: tuple[int, int, int, int]  # x, y, width, height
    frame_size: tuple[int, int]  # source width, height
    found: int | None = None  # face-auto: sampled frames with a face
    sampled: int | None = None  # face-auto: frames the detector looked at
    warnings: tuple[str, ...] = ()
    picture: np.ndarray | None = field(default=None, repr=False, compare=False)  # BGR first frame with the box drawn

    def transform(self, base: FrameTransform) -> FrameTransform:
        """``base`` cutting this region first (the whole frame needs no cut)."""
        return dataclasses.replace(base, crop_box=None if self.method == "full-frame" else self.box)

    def row(self, video: str) -> dict[str, str]:
        """The ``crop_boxes.csv`` row."""
        x, y, w, h = self.box
        blank = lambda v: "" if v is None else str(v)  # noqa: E731
        return {
            "video": video, "x": str(x), "y": str(y), "width": str(w), "height": str(h),
            "frame_width": str(self.frame_size[0]), "frame_height": str(self.frame_size[1]),
            "method": self.method, "faces_found": blank(self.found), "frames_sampled": blank(self.sampled),
        }  # fmt: skip


def choose_region(
    source: VideoSource,
    base: FrameTransform,
    detect: Detector | None,
    margin: float = DEFAULT_MARGIN,
    samples: int = DEFAULT_SAMPLES,
) -> CropRegion:
    """The region for ``source``: ``base.crop_box`` if set, else the face box when ``detect`` is
    given, else the whole frame; with the first frame drawn. Raises :class:`FaceError` /
    :class:`VideoError` naming the source."""
    if base.crop_box is None and detect is not None:
        expected, _ = source.probe()
        indices = sample_indices(expected, samples) if expected > 0 else list(range(samples))
        frames = [frame for _, frame in source.sample_frames(indices)]
        if not frames:
            raise VideoError(f"{source.path}: no frame could be decoded (unsupported codec or damaged file)")
        face = find_face(str(source.path), frames, detect, margin)
        first = frames[0]
        method, box, found, sampled, warnings = "face-auto", face.box, face.found, face.sampled, face.warnings
    else:
        first = next((frame for _, frame in source.sample_frames([0])), None)
        if first is None:
            raise VideoError(f"{source.path}: no frame could be decoded (unsupported codec or damaged file)")
        height, width = first.shape[:2]
        method = "full-frame" if base.crop_box is None else "crop-box"
        box, found, sampled, warnings = base.crop_box or (0, 0, width, height), None, None, ()
    height, width = first.shape[:2]
    x, y, w, h = box
    if x + w > width or y + h > height:
        raise VideoError(f"{source.path}: crop box {x},{y},{w},{h} extends beyond the {width}x{height} frame")
    region = CropRegion(method, tuple(box), (width, height), found, sampled, warnings)  # type: ignore[arg-type]
    seen = region.transform(base).seen_region(width, height)
    label = f"{method} {x},{y},{w},{h}" + (f" (face in {found}/{sampled} frames)" if found is not None else "")
    return dataclasses.replace(region, picture=draw_box(first, None if method == "full-frame" else box, seen, label))


def read_crop_rows(path: Path) -> dict[str, dict[str, str]]:
    """The rows of a ``crop_boxes.csv`` by video ({} when absent); a foreign header is refused."""
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            if header != list(CROP_COLUMNS):
                raise LayoutError(f"{path}: header {','.join(header) or '(none)'} is not {','.join(CROP_COLUMNS)}; refusing to merge into it")
            return {row["video"]: {k: (v or "").strip() for k, v in row.items() if k} for row in reader if row.get("video")}
    except UnicodeDecodeError as err:
        raise LayoutError(f"{path}: not a UTF-8 text file ({err.reason})") from None


def write_region(root: Path, video: str, region: CropRegion, rows: dict[str, dict[str, str]]) -> None:
    """Add (or replace) ``video``'s row in ``root/crop_boxes.csv`` and write its picture, atomically."""
    rows[video] = region.row(video)
    io.write_csv(root / CROP_FILE, CROP_COLUMNS, list(rows.values()))
    if region.picture is not None:
        ok, png = cv2.imencode(".png", region.picture)
        if ok:
            with io.atomic_open(root / PICTURE_DIR / f"{video}.png", "wb") as handle:
                handle.write(png.tobytes())


__all__ = ["CROP_COLUMNS", "CROP_FILE", "CropRegion", "FaceError", "PICTURE_DIR", "choose_region", "read_crop_rows", "write_region"]
