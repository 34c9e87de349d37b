"""Config helpers shared by the command-line entry points: OmegaConf resolvers and the path of
the project's config folders. Importing this module registers the resolvers (idempotent)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

def shipped_folder(name: str) -> Path:
    """A folder of the project's top level (``conf``, ``experiments``): inside the package when
    pwes is installed from a wheel (setup.py copies them to ``pwes/<name>``), else at the top of the
    checkout (an editable install, or ``PYTHONPATH=src``)."""
    here = Path(__file__).resolve().parent
    packaged = here / name
    return packaged if packaged.is_dir() else here.parents[1] / name


CONFIG_DIR = shipped_folder("conf")
"""The Hydra config folder (conf/ at the repository root, or its copy in the installed package)."""
EXPERIMENTS_DIR = shipped_folder("experiments")
"""The experiment files, one per table: the ``experiment`` config group (served by
hydra_plugins.pwes_plugins, so no conf/experiment link is needed)."""


def dataset_defaults(name: str) -> dict:
    """A dataset's settings as conf/dataset/<name>.yaml gives them, its ``defaults`` chain merged
    (casme3 over casme2), interpolations left as text: the one source of each dataset's fps,
    snippet length and stride, read by training (Hydra) and by the importers
    (pwes.datasets.registry) alike."""
    import yaml

    node = yaml.safe_load((CONFIG_DIR / "dataset" / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    own = {k: v for k, v in node.items() if k != "defaults"}
    merged: dict = {}
    chain = node.get("defaults") or ["_self_"]
    for entry in chain if "_self_" in chain else [*chain, "_self_"]:
        merged = _merged(merged, own if entry == "_self_" else dataset_defaults(str(entry)))
    return merged


def _merged(base: dict, top: dict) -> dict:
    """``top`` over ``base``, nested mappings merged key by key (as Hydra merges configs)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


MAX_NAME = 200
"""Longest run or multirun folder name; longer ones are cut and end in a hash of the whole."""


def run_name_from_overrides(override_dirname: str = "") -> str:
    """Run-folder name for a command line: its overrides as ``k=v,k=v`` (``default`` when none),
    with path separators and odd characters replaced so it is one safe folder name. A name
    longer than 200 characters is cut to 191 and ends in ``-`` and 8 hex digits of the SHA-256 of
    the whole override string, so two commands that differ after the cut get two folders."""
    name = re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", override_dirname).strip("_")
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(override_dirname.encode("utf-8")).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9]}-{digest}"
    return name or "default"


def folder_name(overrides: object = "") -> str:
    """Run-folder name for a command's overrides (``hydra.overrides.task``, a list): those of
    settings that can change results (pwes.run_config.folder_name_overrides: ``dataset.root``,
    ``paths.*``, ``logger``, ... are left out), named by :func:`run_name_from_overrides`. A string
    is taken as an override string already filtered (the ``hydra.job.override_dirname`` older
    configs passed)."""
    from pwes.run_config import folder_name_overrides

    if isinstance(overrides, str):
        return run_name_from_overrides(overrides)
    return run_name_from_overrides(folder_name_overrides(overrides or []))  # type: ignore[arg-type]


def sweep_name(name: object = None, overrides: object = "") -> str:
    """Multirun-folder name: ``sweep_name`` when set (experiments set ``table4_<dataset>``), else
    the command's overrides as for a run folder (:func:`folder_name`), so the same grid command
    finds (and resumes) the same multirun folder. (pwes.sweeper passes the name on to each job.)"""
    if name not in (None, ""):
        return str(name)
    return folder_name(overrides or "")


def register_resolvers() -> None:
    """Register the ``pwes.*`` resolvers used by conf/ (safe to call more than once)."""
    if not OmegaConf.has_resolver("pwes.run_name"):
        OmegaConf.register_new_resolver("pwes.run_name", folder_name)
    if not OmegaConf.has_resolver("pwes.sweep_name"):
        OmegaConf.register_new_resolver("pwes.sweep_name", sweep_name)


class ConfigError(ValueError):
    """A setting is missing or has an invalid value; the message names the setting."""


def to_container(cfg: DictConfig) -> dict:
    """A plain, fully resolved dict of a config (for hparams, comparisons and YAML dumps)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def plain(value: object) -> object:
    """``value`` as plain Python containers: a DictConfig/ListConfig resolved (:func:`to_container`),
    a settings dataclass instance as a dict (tuples as lists, as YAML and hparams keep them);
    anything else unchanged. For settings that arrive from Hydra or as dataclasses."""
    if OmegaConf.is_config(value):
        return to_container(value)  # type: ignore[arg-type]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()}
    return value


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
    check_moved_settings(cfg)
    validate_dataset_settings(cfg)
    check_accelerator(cfg)
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
        for key in ("start_step", "expand_step"):  # expand_step: SF-Net's action-frame mining
            if isinstance(callback, DictConfig) and callback.get(key) is not None:
                start = _whole_number(cfg, f"callbacks.{name}.{key}", 0)
                if start >= max_steps:
                    raise ConfigError(f"callbacks.{name}.{key}={start} must be below trainer.max_steps={max_steps}: the {name} callback would never switch on")
    resume = cfg.get("resume", True)
    if not isinstance(resume, bool):
        raise ConfigError(f"resume={resume!r} must be true or false")


# Settings that moved when MPLG, PPLM and DFCL became callbacks (conf/callbacks/): old key or
# group -> where it lives now. An old key on the command line or in an older conf/ is refused
# with this instead of Hydra's "not in struct" or PWESModule's TypeError.
MOVED = {
    "model/mplg": "callbacks.mplg.variant",
    "model/dfcl": "callbacks/contrastive=dfcl or callbacks/contrastive=none",
    "model.mplg": "callbacks.mplg",
    "model.dfcl.enabled": "callbacks/contrastive=none (or ~callbacks.dfcl) to switch DFCL off",
    "model.dfcl": "callbacks.dfcl",
    "model.pplm": "callbacks.pplm",
    "model.pseudo": "callbacks/pseudo",
    "model.loss.contrastive": "callbacks.dfcl.weight",
}
MOVED_WHY = "MPLG, PPLM and DFCL are callbacks now: conf/callbacks/"


def moved_setting(override: str) -> str | None:
    """For a ``key=value`` override of a setting that moved, one line saying where it went."""
    key, _, value = override.lstrip("+~").partition("=")
    for old, new in MOVED.items():
        if key == old or key.startswith(old + "."):
            if " " in new:  # no one-to-one key: the sentence says what to use
                return f"{key} moved: use {new} ({MOVED_WHY})"
            target = new + key[len(old):]
            return f"{key} moved: use {target}{'=' + value if value else ''} ({MOVED_WHY})"
    return None


def check_moved_settings(cfg: DictConfig) -> None:
    """Refuse a composed config that still holds a moved setting (an older conf/, or ``+key=``)."""
    for old in MOVED:
        if "/" not in old and OmegaConf.select(cfg, old, throw_on_missing=False) is not None:
            raise ConfigError(moved_setting(old) or old)


def settings_without_effect(cfg: DictConfig, overrides: Iterable[str]) -> list[tuple[str, str]]:
    """``(override, why)`` for each ``callbacks.<name>.<setting>`` override that cannot change the
    run, judged by the composed config: ``callbacks.<name>`` is not a configured callback (no
    ``_target_``: e.g. added with ``+``), or it is a milestone callback (pseudo labels, DFCL),
    which acts only on a module that takes pseudo labels (``model.supervision=point``;
    PWESModule.takes_pseudo_labels), or a loss-term callback (its ``supervisions``: point and
    video) under full supervision."""
    from hydra.utils import get_class

    supervision = str(OmegaConf.select(cfg, "model.supervision", default="point"))
    callbacks = OmegaConf.select(cfg, "callbacks", default=None) or {}
    present = [n for n, c in callbacks.items() if isinstance(c, DictConfig) and c.get("_target_")]
    found: list[tuple[str, str]] = []
    for override in overrides:
        text = str(override)
        if text.startswith("~"):
            continue
        parts = text.lstrip("+").split("=", 1)[0].split(".")
        if parts[0] != "callbacks" or len(parts) < 3:
            continue
        name = parts[1]
        if name not in present:
            found.append((text, f"there is no {name} callback in this setup (callbacks: {', '.join(present) or 'none'})"))
            continue
        if supervision == "point":
            continue
        try:
            from pwes.callbacks.base import MilestoneCallback

            cls = get_class(str(callbacks[name]._target_))
            milestone = issubclass(cls, MilestoneCallback)
        except Exception:  # noqa: BLE001 - an unimportable target is reported when it is built
            continue
        acts_under = tuple(getattr(cls, "supervisions", ("point",)))
        if milestone and supervision not in acts_under:
            under = " and ".join(acts_under)
            found.append((text, f"the {name} callback does nothing under model.supervision={supervision} (it acts under {under} supervision only)"))
    return found


def check_accelerator(cfg: DictConfig) -> None:
    """``trainer.accelerator=gpu|cuda`` on a machine where torch sees no CUDA device: one line
    naming the fix, before anything is written (Lightning would say "No supported gpu backend")."""
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto")).lower()
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} (trainer=gpu): no CUDA device found (torch.cuda.is_available() is False); on this machine use trainer=default (accelerator auto: the CPU)")
