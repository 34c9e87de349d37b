"""Writing extracted videos into a feature-set folder, one video at a time, so the folder stays a
valid layout after each: ``features/<video>.npz`` (with the snippet settings it was cut with),
merged ``videos.csv``, an empty ``annotations.csv``, and the crop record (``crop_boxes.csv``,
``crops/<video>.png``, :mod:`pwes.extract.region`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pwes import io
from pwes.data.layout import ANNOTATION_COLUMNS, VIDEO_COLUMNS, LayoutError
from pwes.data.recorded import check_recorded, read_recorded, recorded_arrays
from pwes.extract.region import CROP_FILE, CropRegion, read_crop_rows, write_region


@dataclass(frozen=True)
class VideoFeatures:
    """One video's snippet features and what videos.csv needs to know about it."""

    rgb: np.ndarray  # float32 [T, 1024]
    flow: np.ndarray  # float32 [T, 1024]
    num_frames: int  # decoded frames, the last one included
    fps: float
    warnings: tuple[str, ...] = ()
    region: CropRegion | None = None  # where the frames were cut from


class FeatureSetWriter:
    """Adds videos to a feature-set folder: ``features/<video>.npz``, merged ``videos.csv``, ``annotations.csv``.

    Rows of other videos already in ``videos.csv`` are kept; a video extracted again replaces its row.
    """

    def __init__(self, root: str | os.PathLike, snippet: int, stride: int) -> None:
        self.root = Path(root).expanduser()
        self.snippet, self.stride = snippet, stride
        self.rows: dict[str, dict[str, str]] = self._read_rows(self.root / "videos.csv")
        self.crop_rows = read_crop_rows(self.root / CROP_FILE)
        self._check_existing_snippets()

    def _check_existing_snippets(self) -> None:
        """Refuse to add features to a folder whose files were cut with other snippet settings
        (one set, one geometry: training and spot read every file with the same stride)."""
        for name in self.rows:
            path = self.feature_path(name)
            if path.is_file():
                held = read_recorded(path)
                fix = f"extract into another --out, or pass --snippet {held.get('snippet_length', self.snippet)} --stride {held.get('stride', self.stride)}"
                check_recorded(path, held, self.snippet, self.stride, "this extraction uses", fix)
                return

    @staticmethod
    def _read_rows(path: Path) -> dict[str, dict[str, str]]:
        if not path.exists():
            return {}
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = [h.strip() for h in reader.fieldnames or []]
                if sorted(header) != sorted(VIDEO_COLUMNS):
                    found = ",".join(header) or "(none)"
                    raise LayoutError(f"{path}: header {found} is not {','.join(VIDEO_COLUMNS)}; refusing to merge into it")
                rows = {}
                for row in reader:
                    row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                    if row.get("video"):
                        rows[row["video"]] = row
                return rows
        except UnicodeDecodeError as err:
            raise LayoutError(f"{path}: not a UTF-8 text file ({err.reason})") from None

    def feature_path(self, name: str) -> Path:
        """Where the features of video ``name`` go."""
        return self.root / "features" / f"{name}.npz"

    def has(self, name: str) -> bool:
        """Whether ``name`` already has a row and a feature file."""
        return name in self.rows and self.feature_path(name).is_file()

    def write(self, name: str, subject: str, features: VideoFeatures) -> None:
        """Write one video's features (with the snippet settings and fps they were cut with, so a
        reader with other settings refuses them), then its row (both atomically), so the folder
        stays a valid layout."""
        record = recorded_arrays(self.snippet, self.stride, features.fps)
        io.save_npz(self.feature_path(name), rgb=features.rgb, flow=features.flow, **record)
        self.rows[name] = {"video": name, "subject": subject, "num_frames": str(features.num_frames), "fps": repr(features.fps)}
        io.write_csv(self.root / "videos.csv", VIDEO_COLUMNS, list(self.rows.values()))
        if features.region is not None:
            write_region(self.root, name, features.region, self.crop_rows)
        if not (self.root / "annotations.csv").exists():
            io.write_csv(self.root / "annotations.csv", ANNOTATION_COLUMNS, [])
