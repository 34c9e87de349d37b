"""The datasets an import knows: defaults, readers and video-name rules of each, and the
annotation inputs (``file.xlsx``, ``ME=file.xlsx``) a user passes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pwes.config import dataset_defaults
from pwes.datasets import casme2, casme3, samm
from pwes.datasets.common import RawExpression, VideoName

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


def _spec(name: str, title: str, module: ModuleType, name_pattern: str, typed_inputs: bool = False) -> DatasetSpec:
    """The import defaults of ``name``: fps, snippet length and stride from conf/dataset/<name>.yaml
    (the training config's values, one source: pwes.config.dataset_defaults), its readers from ``module``."""
    settings = dataset_defaults(name)
    return DatasetSpec(name, title, float(settings["fps"]), int(settings["snippet_length"]), int(settings["stride"]),
                       module.parse_video_name, module.read_annotations, name_pattern, typed_inputs)


DATASETS: dict[str, DatasetSpec] = {
    "casme2": _spec("casme2", "CAS(ME)^2", casme2, "s15/15_0401girlcrashing (folder number, '_', four-digit code, description)"),
    "samm": _spec("samm", "SAMM-LV", samm, "006_1 (subject number, '_', recording number)"),
    "casme3": _spec("casme3", "CAS(ME)^3 part A", casme3, "spNO.1/a or spNO.1_a (subject, then sequence)", typed_inputs=True),
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
