"""Config helpers shared by the command-line entry points: OmegaConf resolvers and the path of
the project's config folders. Importing this module registers the resolvers (idempotent)."""

from __future__ import annotations

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
