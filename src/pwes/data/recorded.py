"""What a feature file records about its snippets, and the checks that use it.

Every feature file pwes writes (``pwes.extract``, ``pwes.prepare``) holds, beside ``rgb`` and
``flow``, the scalars ``snippet_length`` and ``stride`` (frames) it was cut with and the video's
``fps`` (:data:`RECORDED_KEYS`). Features read against a model (``pwes.spot``) or a dataset config
(``load_feature_set``) are refused when the record differs (:func:`check_recorded`), and, where
the frame count is known, when the snippet count does not fit the frames and stride
(:func:`snippet_count_problem`), so files without the record are caught too. Without the record
snippet ``t`` is only a row: read with another stride it lands at the wrong frames, silently.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pwes.data import csvfile
from pwes.data.layout import SNIPPET_SLACK, LayoutError, expected_snippets

SNIPPET_KEYS = ("snippet_length", "stride")
RECORDED_KEYS = (*SNIPPET_KEYS, "fps")  # optional when reading: older files lack them
SETTINGS_FIX = "set dataset.snippet_length and dataset.stride to the files' values, or extract the features again"


def fitting_stride(num_frames: int, snippet_length: int, num_snippets: int) -> int | None:
    """The stride at which ``num_frames`` frames give ``num_snippets`` snippets of
    ``snippet_length`` (the smallest that fits exactly, else within the slack), for hints."""
    if num_snippets < 2 or num_frames < snippet_length:
        return None
    strides = range(1, num_frames + 1)
    exact = next((s for s in strides if expected_snippets(num_frames, snippet_length, s) == num_snippets), None)
    if exact is not None:
        return exact
    return next((s for s in strides if abs(expected_snippets(num_frames, snippet_length, s) - num_snippets) <= SNIPPET_SLACK), None)


def snippet_count_problem(num_snippets: int, num_frames: int, snippet_length: int, stride: int) -> str | None:
    """Why ``num_snippets`` rows cannot be snippets of ``snippet_length`` every ``stride`` frames
    of a ``num_frames``-frame video (beyond the +-:data:`SNIPPET_SLACK`), or None when they fit.
    The message names the stride that would fit, when one does."""
    expected = expected_snippets(num_frames, snippet_length, stride)
    if expected > 0 and abs(num_snippets - expected) <= SNIPPET_SLACK:
        return None
    if expected == 0:
        return f"{num_frames} frames are fewer than one snippet of {snippet_length}"
    fits = fitting_stride(num_frames, snippet_length, num_snippets)
    hint = f"; the count fits stride {fits}" if fits is not None and fits != stride else ""
    return (
        f"{num_snippets} snippets, but {num_frames} frames with snippet length {snippet_length} and stride {stride} "
        f"give {expected} (+-{SNIPPET_SLACK} allowed){hint}"
    )


def read_recorded(path: str | Path) -> dict[str, float]:
    """The :data:`RECORDED_KEYS` scalars a feature file holds (those present): snippet_length and
    stride as ints, fps as a float. A stored value that is not one positive number is refused."""
    path = Path(path)
    found: dict[str, float] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in RECORDED_KEYS:
                if key in data.files:
                    found[key] = data[key]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise LayoutError(f"{path}: cannot read features ({err})") from None
    out: dict[str, float] = {}
    for key, value in found.items():
        value = np.asarray(value)
        number = float(value.reshape(())) if value.size == 1 and np.issubdtype(value.dtype, np.number) else math.nan
        whole = key in SNIPPET_KEYS
        if not math.isfinite(number) or number <= 0 or (whole and number != int(number)):
            kind = "positive whole number" if whole else "positive number"
            raise LayoutError(f"{path}: the recorded {key} {value.tolist()!r} is not one {kind}")
        out[key] = int(number) if whole else number
    return out


def recorded_arrays(snippet_length: int, stride: int, fps: float | None = None) -> dict[str, np.ndarray]:
    """The scalars to save beside ``rgb`` and ``flow`` in a feature file (:data:`RECORDED_KEYS`)."""
    arrays = {"snippet_length": np.asarray(int(snippet_length), np.int64), "stride": np.asarray(int(stride), np.int64)}
    if fps is not None:
        arrays["fps"] = np.asarray(float(fps), np.float64)
    return arrays


def check_recorded(path: str | Path, recorded: Mapping[str, float], snippet_length: int, stride: int, against: str, fix: str = "") -> None:
    """Refuse a feature file whose recorded snippet settings differ from the reader's, naming the
    file and both values. ``against`` says whose settings ("the model was trained on"), ``fix``
    what to do (appended after a semicolon)."""
    want = {"snippet_length": snippet_length, "stride": stride}
    have = {k: int(recorded[k]) for k in SNIPPET_KEYS if k in recorded}
    if all(have[k] == want[k] for k in have):
        return
    file_says = ", ".join(f"{k} {v}" for k, v in have.items())
    raise LayoutError(
        f"{path}: the features were cut with {file_says}, but {against} snippet_length {snippet_length}, stride {stride} "
        f"(their snippets would be placed at the wrong frames){'; ' + fix if fix else ''}"
    )


def recorded_set_settings(root: str | Path) -> tuple[dict[str, int], Path] | None:
    """The snippet settings a feature set records, and the file that says so: the scalars of the
    first listed video's feature file, else (sets prepared before files recorded them) the
    ``snippet_length``/``stride`` of the ``import.json`` that ``pwes.prepare`` writes. None when
    neither records them (or the set cannot be read: :func:`load_feature_set` then says why)."""
    root = Path(root).expanduser()
    try:
        rows = csvfile.read_rows(root / "videos.csv", ("video",), allow_extra=True, error=LayoutError)
    except (LayoutError, OSError):
        return None
    if not rows or not rows[0][1]["video"]:
        return None
    first = root / "features" / f"{rows[0][1]['video']}.npz"
    if first.is_file():
        try:
            recorded = {k: int(v) for k, v in read_recorded(first).items() if k in SNIPPET_KEYS}
        except LayoutError:
            return None
        if recorded:
            return recorded, first
    record = root / "import.json"  # pwes.datasets.REPORT_FILE
    try:
        settings = json.loads(record.read_text(encoding="utf-8")).get("settings", {})
    except (OSError, ValueError, AttributeError):
        return None
    recorded = {k: settings[k] for k in SNIPPET_KEYS if isinstance(settings.get(k), int) and not isinstance(settings.get(k), bool) and settings[k] > 0}
    return (recorded, record) if recorded else None


def settings_for_set(root: str | Path, configured: Mapping[str, int], given: Mapping[str, str]) -> tuple[dict[str, int], str | None]:
    """The snippet settings to read the feature set at ``root`` with, and a note when they come
    from the set's record (:func:`recorded_set_settings`) instead of ``configured``.

    ``configured``: ``snippet_length`` and ``stride`` from the dataset config; ``given``: those of
    them set explicitly (key -> the override as typed, ``dataset.stride=8``). A recorded value
    replaces a configured default; one that conflicts with an explicit setting is refused,
    naming the override and the file."""
    settings = {k: int(configured[k]) for k in SNIPPET_KEYS}
    found = recorded_set_settings(root)
    if found is None:
        return settings, None
    recorded, source = found
    changed = []
    for key, value in recorded.items():
        if value == settings[key]:
            continue
        if key in given:
            raise LayoutError(
                f"{given[key]} conflicts with {source}, which records {key} {value} (the features were cut so); "
                f"drop {given[key]} to read the set with the settings it records, or cut the features again with {key} {settings[key]}"
            )
        changed.append(f"dataset.{key}={value} (the config's default is {settings[key]})")
        settings[key] = value
    return settings, (f"snippet settings from {source}: {', '.join(changed)}" if changed else None)
