"""Experiment tracking per fold: one logger (one W&B run) per fold, finished when the fold ends
so multirun jobs never share a run. W&B writes its files inside the run's output folder. The
job's protocol run, the pictures and tables are pwes.dashboard's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

# Settings of conf/logger/wandb.yaml that pwes reads itself (pwes.dashboard), never handed to WandbLogger.
DASHBOARD_KEYS = ("videos_per_fold",)


def is_wandb(logger_cfg: DictConfig | None) -> bool:
    """True when the configured logger is Lightning's WandbLogger."""
    target = (logger_cfg or {}).get("_target_") or ""
    return target.endswith("WandbLogger")


def make_logger(logger_cfg: DictConfig | None, run_dir: Path, fold_dir: Path, name: str, group: str, job_type: str = "fold") -> Logger | None:
    """Instantiate the configured logger for one fold (``None`` for ``logger=none``): W&B keeps
    its runs in ``run_dir/wandb``, file loggers write into ``fold_dir/logs``."""
    if logger_cfg is None or not logger_cfg.get("_target_"):
        return None
    cfg = OmegaConf.to_container(logger_cfg, resolve=True)
    for key in DASHBOARD_KEYS:  # pwes's own settings, not the logger's
        cfg.pop(key, None)
    if is_wandb(logger_cfg):
        wandb_environment(run_dir)
        cfg.update(name=name, group=group, job_type=job_type, save_dir=str(run_dir))
    else:
        cfg.update(save_dir=str(fold_dir / "logs"), name="", version="")
    logger = hydra.utils.instantiate(cfg)
    drop_unset_anonymous(logger)
    return logger


def wandb_environment(run_dir: Path) -> None:
    """Quiet W&B, and keep its side folders (cache, config, staging) inside ``run_dir/wandb``
    with its runs, so nothing is written to the home folder."""
    os.environ.setdefault("WANDB_SILENT", "true")
    for key, sub in (("WANDB_CACHE_DIR", ".cache"), ("WANDB_CONFIG_DIR", ".config"), ("WANDB_DATA_DIR", ".data")):
        os.environ[key] = str(run_dir / "wandb" / sub)
    (run_dir / "wandb").mkdir(parents=True, exist_ok=True)


def drop_unset_anonymous(logger: Logger) -> None:
    """Lightning's WandbLogger always hands ``wandb.init`` an ``anonymous`` argument (None unless
    asked for), and W&B then warns on every run that "the anonymous setting has no effect". The
    argument is dropped when it is None, so W&B sees it unset (its default)."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous", "unset") is None:
        del init["anonymous"]


def log_config(logger: Logger | None, config: dict[str, Any]) -> None:
    """Record the resolved run config with the logger (W&B shows it as the run config)."""
    if logger is not None:
        logger.log_hyperparams(config)


def finish(logger: Logger | None, failed: bool = False) -> None:
    """Close the logger; for W&B, end the run so the next fold (or job) starts a new one, with
    exit code 1 when the fold failed or was interrupted (W&B then never shows it finished)."""
    if logger is None:
        return
    logger.finalize("failed" if failed else "success")
    if type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish(exit_code=1 if failed else 0)
