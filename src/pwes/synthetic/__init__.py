"""The embedded synthetic benchmark: feature sets shaped like I3D features of long face videos.

``spec`` holds the settings and presets, ``face``/``draws``/``generator`` write a set from a seed,
``cache`` keeps generated sets by preset, seed and spec digest, ``cli`` is the command line, and
``false_positives`` sorts a finished run's false positives by the distractors they lie on.
"""

from pwes.synthetic.cache import cache_name, ensure_synthetic, summarize
from pwes.synthetic.cli import main
from pwes.synthetic.generator import generate
from pwes.synthetic.spec import (GENERATOR_VERSION, ME_MAX_SECONDS, PRESETS, REFERENCE_DIM, SyntheticCacheError,
                                      SyntheticSpec, SyntheticSpecError, resolve_spec)

__all__ = ["GENERATOR_VERSION", "ME_MAX_SECONDS", "PRESETS", "REFERENCE_DIM", "SyntheticCacheError", "SyntheticSpec",
           "SyntheticSpecError", "cache_name", "ensure_synthetic", "generate", "main", "resolve_spec", "summarize"]
