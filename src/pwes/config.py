"""Config helpers shared by the command-line entry points: OmegaConf resolvers and the path of
the project's config folders. Importing this module registers the resolvers (idempotent)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
"""conf/ at the repository root (the package is installed in editable mode from the checkout)."""


def run_name_from_overrides(override_dirname: str = "") -> str:
    """Run-folder name for a command line: its overrides as ``k=v,k=v`` (``default`` when none),
    with path separators and odd characters replaced so it is one safe folder name."""
    name = re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", override_dirname).strip("_")
    return name[:200] or "default"


def register_resolvers() -> None:
    """Register the ``pwes.*`` resolvers used by conf/ (safe to call more than once)."""
    if not OmegaConf.has_resolver("pwes.run_name"):
        OmegaConf.register_new_resolver("pwes.run_name", lambda overrides="": run_name_from_overrides(str(overrides)))


class ConfigError(ValueError):
    """A setting is missing or has an invalid value; the message names the setting."""


def to_container(cfg: DictConfig) -> dict:
    """A plain, fully resolved dict of a config (for hparams, comparisons and YAML dumps)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


register_resolvers()


def _whole_number(cfg: DictConfig, key: str, minimum: int, maximum: int | None = None, hint: str = "") -> int:
    """``cfg.<key>`` as an int in [minimum, maximum]; a ConfigError naming the setting otherwise."""
    value = OmegaConf.select(cfg, key, throw_on_missing=False)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{key}={value!r} must be a whole number{hint}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{key}={value} must be {bounds}{hint}")
    return value


def validate_dataset_settings(cfg: DictConfig) -> None:
    """The snippet geometry and frame rate the feature set is read with."""
    for key in ("dataset.snippet_length", "dataset.stride"):
        if OmegaConf.select(cfg, key, throw_on_missing=False) is not None:
            _whole_number(cfg, key, 1)
    fps = OmegaConf.select(cfg, "dataset.fps", throw_on_missing=False)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0):
        raise ConfigError(f"dataset.fps={fps!r} must be a positive number of frames per second")


def validate_run_settings(cfg: DictConfig) -> None:
    """Check the settings every run depends on before anything is trained or written: the seed,
    the iteration counts and the resume switch. Each problem is one line naming the setting."""
    validate_dataset_settings(cfg)
    _whole_number(cfg, "seed", 0, 2**32 - 1)  # the range Lightning's seed_everything accepts
    max_steps = _whole_number(cfg, "trainer.max_steps", 1, hint=" (optimiser steps per fold; -1 would train forever, 0 would save an untrained model)")
    if OmegaConf.select(cfg, "dataset.pretrain_steps", throw_on_missing=False) is not None:
        pretrain = _whole_number(cfg, "dataset.pretrain_steps", 0)
        if pretrain >= max_steps:
            raise ConfigError(
                f"dataset.pretrain_steps={pretrain} must be below trainer.max_steps={max_steps}: MPLG and DFCL switch on after the pretraining "
                f"steps and would never run; lower dataset.pretrain_steps (e.g. dataset.pretrain_steps={max(max_steps // 2, 0)}) or raise trainer.max_steps"
            )
    for name, callback in (OmegaConf.select(cfg, "callbacks", throw_on_missing=False) or {}).items():
        if isinstance(callback, DictConfig) and callback.get("start_step") is not None:
            start = _whole_number(cfg, f"callbacks.{name}.start_step", 0)
            if start >= max_steps:
                raise ConfigError(f"callbacks.{name}.start_step={start} must be below trainer.max_steps={max_steps}: the {name} callback would never switch on")
    resume = cfg.get("resume", True)
    if not isinstance(resume, bool):
        raise ConfigError(f"resume={resume!r} must be true or false")
