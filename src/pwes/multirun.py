"""Before a multirun's jobs start (a Hydra callback, ``hydra.callbacks.prepare_sweep``):

* the multirun folder's name is passed to every job (``sweep_name``): without an explicit one
  it is named from the command's overrides (pwes.config.sweep_name), so running the same grid
  command again finds its folder and every job resumes its finished folds;
* every job is composed and checked: a job that cannot be composed, or a swept setting that
  does nothing in some job (a callback's setting where that callback is absent or inactive,
  pwes.config.settings_without_effect: those jobs would train identical models), refuses the
  whole sweep in one line (exit 2) before anything runs, and leaves no folder behind.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from pwes.config import settings_without_effect

# Overrides whose values never change which callbacks a job has or whether they act, so jobs
# differing only in them are checked once (a fold x setting grid is checked per setting).
NEUTRAL_KEYS = ("fold", "seed")


def quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value (folder names hold ``,`` and ``=``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class PrepareSweep(Callback):
    """Hydra callback: name the multirun folder for every job, then check the jobs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if OmegaConf.select(config, "sweep_name") in (None, ""):
            # Each job composes its own config: hand it the name the command's overrides gave.
            with read_write(config), read_write(config.hydra), open_dict(config):
                config.sweep_name = sweep_dir.name
                config.hydra.overrides.task.append(f"sweep_name={quoted(sweep_dir.name)}")
        check_jobs(config, sweep_dir)


def job_overrides(config: DictConfig) -> tuple[list[list[str]], set[str]]:
    """Every job's overrides as the basic sweeper makes them, and the swept keys."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader()).parse_overrides(lines)
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    return BasicSweeper.split_arguments(parsed, None)[0], swept


def check_jobs(config: DictConfig, sweep_dir: Path) -> None:
    """Compose the jobs that set a callback's setting (once per setting, whatever the fold or
    seed) and refuse the sweep when one cannot be composed or a swept setting does nothing."""
    from hydra.core.global_hydra import GlobalHydra

    jobs, swept = job_overrides(config)
    if not any(override_key(o).startswith("callbacks.") for job in jobs for o in job):
        return  # only callbacks' settings can be idle, and only they are checked here
    loader = GlobalHydra.instance().config_loader()
    seen: set[tuple[str, ...]] = set()
    idle: list[str] = []
    for job in jobs:
        key = tuple(o for o in job if override_key(o) not in NEUTRAL_KEYS)
        if key in seen:
            continue
        seen.add(key)
        label = " ".join(o for o in job if override_key(o) in swept) or " ".join(key)
        try:
            cfg = loader.load_sweep_config(master_config=config, sweep_overrides=list(job))
        except (HydraException, OmegaConfBaseException) as err:
            refuse(sweep_dir, f"job {label}: cannot be composed: {composition_hint(err, job)}")
        for override, reason in settings_without_effect(cfg, job):
            if override_key(override) in swept:
                idle.append(f"{override_key(override)} is swept, but in the job {label} {reason}")
    if idle:
        refuse(sweep_dir, f"{idle[0]}; its values would train identical models: sweep it only where the callback acts, or drop it" + (f" ({len(idle) - 1} more such job(s))" if len(idle) > 1 else ""))


def composition_hint(err: BaseException, overrides: Sequence[str]) -> str:
    """Hydra's composition error in one line; for a callback's setting where the job has no such
    callback, say that (Hydra suggests ``+key=``, which adds a setting nothing reads)."""
    text = " ".join(str(err).split())
    for override in overrides:
        parts = override.split("=", 1)[0].split(".")
        if parts[0] == "callbacks" and len(parts) >= 3 and f"Could not override '{override.split('=', 1)[0]}'" in text:
            return f"{override}: there is no {parts[1]} callback in this job's setup (conf/callbacks/)"
    return text


def refuse(sweep_dir: Path, message: str) -> None:
    """Print the sweep's one refusal line, remove the (empty) folders the checks created, exit 2."""
    from pwes.run_folder import remove_created_folders

    remove_created_folders(sweep_dir)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
