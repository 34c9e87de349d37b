"""The synthetic-set cache: one folder per preset, seed and spec digest, generated on first use."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pwes.synthetic.generator import generate
from pwes.synthetic.spec import SyntheticCacheError, SyntheticSpec, SyntheticSpecError, check_seed, resolve_spec


def summarize(root: Path) -> dict[str, float]:
    """Counts and size of a generated folder: videos, subjects, ME, MaE, snippets, MB."""
    root = Path(root)
    try:
        meta = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SyntheticSpecError(f"{root}: not a synthetic feature set ({err})") from None
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {key: meta[key] for key in ("videos", "subjects", "ME", "MaE", "snippets")} | {"MB": size / 2**20}


def format_summary(summary: dict[str, float]) -> str:
    return (f"{summary['videos']} videos, {summary['subjects']} subjects, {summary['ME']} ME, {summary['MaE']} MaE, "
            f"{summary['snippets']} snippets, {summary['MB']:.{1 if summary['MB'] >= 1 else 2}f} MB")


def generate_into_place(target: Path, spec: SyntheticSpec, seed: int) -> bool:
    """Generate into a temporary sibling of ``target`` and rename it into place.

    Returns False when another process put ``target`` in place first (its copy is kept, ours
    discarded); an interrupted generation removes its temporary folder and leaves no ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        generate(tmp, spec, seed)
        try:
            os.rename(tmp, target)  # atomic; replaces an empty folder, fails on a non-empty one
        except OSError:
            if is_complete(target):
                return False
            raise SyntheticCacheError(f"{target}: exists and is not a complete synthetic set; remove it and retry") from None
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished set (``synthetic.json`` is written last, inside the temporary folder)."""
    return (folder / "synthetic.json").is_file()


def cache_name(preset: str, seed: int, spec: SyntheticSpec) -> str:
    """Folder name of a cached set: preset, seed and the hash of the full (overridden) spec."""
    return f"{preset}-seed{seed}-{spec.digest()}"


def ensure_synthetic(cache_dir: Path, preset: str, seed: int = 0, **overrides: object) -> Path:
    """The folder of ``preset`` (with ``overrides``) under ``cache_dir``, generated on first use.

    Generation goes to a temporary sibling renamed into place, so an interrupted run leaves no
    half folder and a concurrent second process cannot corrupt the first one's result. Prints one
    line to stderr when it generates, nothing when the folder is cached.
    """
    spec = resolve_spec(preset, **overrides)
    seed = check_seed(seed)
    target = Path(cache_dir).expanduser() / cache_name(preset, seed, spec)
    if is_complete(target):
        return target
    start = time.perf_counter()
    if generate_into_place(target, spec, seed):
        print(f"pwes: generated synthetic preset {preset!r} (seed {seed}): {format_summary(summarize(target))} "
              f"in {time.perf_counter() - start:.1f} s -> {target}", file=sys.stderr)
    return target
