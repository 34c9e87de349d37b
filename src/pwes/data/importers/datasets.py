"""The datasets an import knows: defaults, readers and video-name rules of each, and the
annotation inputs (``file.xlsx``, ``ME=file.xlsx``) a user passes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pwes.data.importers import casme2, casme3, samm
from pwes.data.importers.common import RawExpression, VideoName

ANNOTATION_FORMATS = ("official", "lgsnet")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's defaults, its two readers (official annotations and video names) and an
    example of its video names (for the error when no feature file is one of its videos)."""

    name: str
    title: str
    fps: float
    snippet_length: int
    stride: int
    parse_video_name: Callable[[str], VideoName | None]
    read_official: Callable[..., list[RawExpression]]
    name_pattern: str
    typed_inputs: bool = False  # accepts ME=/MaE= prefixes on annotation files


DATASETS: dict[str, DatasetSpec] = {
    "casme2": DatasetSpec("casme2", "CAS(ME)^2", casme2.FPS, casme2.SNIPPET_LENGTH, casme2.STRIDE,
                          casme2.parse_video_name, casme2.read_annotations,
                          "s15/15_0401girlcrashing (folder number, '_', four-digit code, description)"),
    "samm": DatasetSpec("samm", "SAMM-LV", samm.FPS, samm.SNIPPET_LENGTH, samm.STRIDE,
                        samm.parse_video_name, samm.read_annotations, "006_1 (subject number, '_', recording number)"),
    "casme3": DatasetSpec("casme3", "CAS(ME)^3 part A", casme3.FPS, casme3.SNIPPET_LENGTH, casme3.STRIDE,
                          casme3.parse_video_name, casme3.read_annotations,
                          "spNO.1/a or spNO.1_a (subject, then sequence)", typed_inputs=True),
}


@dataclass(frozen=True)
class AnnotationInput:
    """One annotation file, optionally with the type of every row in it (``ME=file.xlsx``)."""

    path: Path
    type: str | None = None

    @classmethod
    def parse(cls, text: str | Path) -> AnnotationInput:
        """``file.xlsx``, ``ME=file.xlsx`` or ``MaE=file.xlsx``."""
        match = re.match(r"^(me|mae)=(.+)$", str(text), re.IGNORECASE)
        if match is None:
            return cls(Path(text).expanduser())
        return cls(Path(match[2]).expanduser(), "ME" if match[1].lower() == "me" else "MaE")
