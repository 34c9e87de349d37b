"""Atomic file writes: results are written to a temporary file beside the target and renamed,
so an interrupted run never leaves a half-written file behind. Plus the reader of the JSON
records those writes leave (:func:`read_json_object`), with one-line errors."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results get the user's usual mode
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_object(path: Path, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The JSON object in ``path``; ``error`` naming the file when it cannot be read or is not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise error(f"{path}: unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not a JSON object")
    return data


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> None:
    """Write rows (dicts keyed by column, or sequences in column order) as CSV atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            if isinstance(row, Mapping):
                writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
            else:
                writer.writerow(["" if v is None else v for v in row])


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save arrays to an uncompressed ``.npz`` atomically (uncompressed so it can be memory-mapped)."""
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
