"""``python -m pwes.synthetic``: write one synthetic feature set to a folder."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pwes.synthetic.cache import format_summary, generate_into_place, summarize
from pwes.synthetic.spec import PRESETS, SyntheticCacheError, SyntheticSpecError, resolve_spec


def _parse_set(items: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SyntheticSpecError(f"--set {item!r}: expected key=value")
        overrides[key.strip()] = value.strip()
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pwes.synthetic PRESET --out DIR [--seed N] [--set key=value ...]``."""
    parser = argparse.ArgumentParser(prog="python -m pwes.synthetic", description="Write a synthetic feature set.")
    parser.add_argument("preset", help=f"one of {', '.join(PRESETS)}")
    parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the preset, e.g. feature_dim=128 (repeatable)")
    args = parser.parse_args(argv)
    try:
        spec = resolve_spec(args.preset, **_parse_set(args.overrides))
        if args.seed < 0:
            raise SyntheticSpecError(f"--seed {args.seed}: expected a whole number >= 0")
        out = args.out.expanduser()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SyntheticCacheError(f"--out {out}: exists and is not an empty folder")
        start = time.perf_counter()
        if not generate_into_place(out, spec, args.seed):
            raise SyntheticCacheError(f"--out {out}: another process wrote it first")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.preset} (seed {args.seed}) -> {out}: {format_summary(summarize(out))} "
          f"[{time.perf_counter() - start:.1f} s]")
    return 0
