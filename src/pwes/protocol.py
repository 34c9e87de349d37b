"""The leave-one-subject-out protocol: train and test each fold, keep finished folds, pool counts.

A run folder holds (the stages a fold goes through are in pwes.fold, its scoring in pwes.scoring)::

    config.yaml                    the resolved config of the run
    fold-<subject>/checkpoints/last.ckpt   the fold's final model (with the metadata spot needs)
    fold-<subject>/proposals.csv   video,subject,fold,onset,offset,score,type
    fold-<subject>/fingerprint.json  the data the fold saw (pwes.run_folder: checked on resume)
    fold-<subject>/metrics.json    the fold's figures; written last, it marks the fold finished
    proposals.csv, metrics.json    every finished fold pooled (counts summed, then REC/PRE/F1)
    model/last.ckpt                fold=none: one model trained on every subject

A rerun of the same command skips finished folds and retrains an unfinished one from scratch
(seeded), so the pooled result equals that of an uninterrupted run; it is refused, before anything
is written, when the settings or the data differ from the finished folds' (pwes.run_folder).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from pwes import dashboard, interrupt, io, run_folder, tracking
from pwes.config import ConfigError, to_container, validate_run_settings
from pwes.data.recorded import settings_for_set
from pwes.data.datamodule import fold_subjects, validation_count
from pwes.data.layout import FeatureSet, load_feature_set
from pwes.fold import FoldResult, checkpoint_info, describe, fit_fold, save_checkpoint, score_fold, setup_fold, write_fold
from pwes.scoring import calibrate_fold, check_evaluation_settings, match_config, pool_folds, write_proposals

log = logging.getLogger("pwes")


def resolve_feature_set(cfg: DictConfig) -> FeatureSet:
    """Load (and, for synthetic presets, first generate) the configured feature set."""
    ds = cfg.dataset
    if ds.get("synthetic"):
        from pwes.synthetic import ensure_synthetic

        syn = ds.synthetic
        overrides = OmegaConf.to_container(syn.overrides, resolve=True) if syn.get("overrides") is not None else {}
        root = ensure_synthetic(Path(cfg.paths.cache_dir) / "synthetic", syn.preset, int(syn.get("seed", 0)), **overrides)
    else:
        root = OmegaConf.select(cfg, "dataset.root", throw_on_missing=False)
        if root in (None, "", "???"):
            raise ConfigError(f"dataset.root is not set: point it at your {ds.name} feature-set folder (dataset.root=PATH; see README, 'Your own data')")
    settings, note = settings_for_set(root, {"snippet_length": ds.snippet_length, "stride": ds.stride}, _given_settings(("snippet_length", "stride")))
    if note:  # the set records other snippet settings than the config's defaults: use the record
        log.info("%s", note)
        with open_dict(cfg):
            cfg.dataset.snippet_length, cfg.dataset.stride = settings["snippet_length"], settings["stride"]
    feature_set = load_feature_set(root, settings["snippet_length"], settings["stride"])
    off = [v.name for v in feature_set.videos.values() if not math.isclose(v.fps, float(ds.fps), rel_tol=0.01)]
    if off:
        log.warning("%d video(s) have an fps other than dataset.fps=%s (e.g. %s); each video is evaluated at its own fps", len(off), ds.fps, off[0])
    return feature_set


def _given_settings(keys: Sequence[str]) -> dict[str, str]:
    """``dataset.<key>`` settings given on the command line (key -> the override as typed)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (tests composing a config): nothing was typed
        return {}
    given = {}
    for override in task:
        name = override.lstrip("+~").split("=", 1)[0]
        if name.startswith("dataset.") and name[len("dataset."):] in keys:
            given[name[len("dataset."):]] = override.lstrip("+~")
    return given


def prepare_run_folder(run_dir: Path, config: dict[str, Any], resume: bool, fingerprint: dict[str, Any] | None = None) -> None:
    """Refuse to mix results of another config or other data into an existing folder (see
    pwes.run_folder); then write config.yaml and the data fingerprint."""
    run_folder.check_run_folder(run_dir, config, fingerprint, resume)
    run_folder.write_run_record(run_dir, config, fingerprint)


def train_fold(cfg: DictConfig, feature_set: FeatureSet, subject: str | None, fold_dir: Path, group: str, position: str) -> FoldResult | None:
    """Train on every subject but ``subject`` (all subjects when None), save the checkpoint and,
    when a subject is held out, predict, score and write its results (the stages of pwes.fold)."""
    setup = setup_fold(cfg, feature_set, subject, fold_dir, group)
    log.info("%s", describe(setup, position))
    started = time.perf_counter()
    failed = True
    try:
        fit_fold(setup)
        interrupt.check()
        # The operating point for pwes.spot, chosen without the test subject (calibrate_fold).
        calibration, validation = calibrate_fold(cfg, feature_set, setup.trainer, setup.model, setup.datamodule)
        interrupt.check()
        save_checkpoint(setup.trainer, fold_dir / "checkpoints" / "last.ckpt", checkpoint_info(setup, calibration, validation))
        result = None if subject is None else write_fold(setup, score_fold(setup, calibration, validation, started), calibration)
        failed = False
        return result
    finally:
        tracking.finish(setup.logger, failed)


def run_protocol(cfg: DictConfig, run_dir: Path, on_accept: Callable[[], None] | None = None) -> dict[str, float] | None:
    """Run the configured folds in ``run_dir`` and return the pooled figures (None for fold=none).
    Nothing is written into ``run_dir`` before its checks pass; ``on_accept`` runs right after."""
    validate_run_settings(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on Ampere and later (not yet measured here: no GPU run so far)
    feature_set = resolve_feature_set(cfg)  # first: it may take the snippet settings the set records
    config = {k: v for k, v in to_container(cfg).items() if k != "run_dir"}
    subjects = fold_subjects(feature_set, cfg.fold) if str(cfg.fold) != "none" else []
    # a validation split that would leave a fold nothing to train on is refused before anything is written
    validation_count(check_evaluation_settings(cfg).validation_subjects, len(feature_set.subjects) - (1 if subjects else 0))
    dashboard.videos_per_fold(cfg.get("logger"))  # a bad logger.videos_per_fold is refused here, not after training
    fingerprint = run_folder.data_fingerprint(feature_set, run_folder.previous_fingerprint(run_dir))
    prepare_run_folder(run_dir, config, bool(cfg.resume), fingerprint)
    if on_accept is not None:
        on_accept()
    group = group_name(cfg)
    if str(cfg.fold) == "none":
        io.write_json(run_dir / "model" / run_folder.FINGERPRINT, fingerprint)
        train_fold(cfg, feature_set, None, run_dir / "model", group, "[1/1]")
        log.info("model trained on every subject: %s", run_dir / "model" / "checkpoints" / "last.ckpt")
        return None
    for index, subject in enumerate(subjects, start=1):
        fold_dir = run_dir / f"fold-{subject}"
        position = f"[{index}/{len(subjects)}]"
        interrupt.check()
        if (fold_dir / "metrics.json").exists():
            log.info("%s fold %s: finished earlier, kept", position, subject)
            continue
        io.write_json(fold_dir / run_folder.FINGERPRINT, fingerprint)  # before metrics.json: what the fold saw
        train_fold(cfg, feature_set, subject, fold_dir, group, position)
    metrics, proposals = pool_folds([run_dir / f"fold-{s}" for s in subjects], feature_set, match_config(cfg))
    write_proposals(run_dir / "proposals.csv", proposals, feature_set)
    io.write_json(run_dir / "metrics.json", metrics)
    log.info("pooled over %d fold(s): %s", len(subjects), summary_line(metrics))
    if tracking.is_wandb(cfg.get("logger")):  # the job's protocol run, once everything is pooled
        dashboard.log_protocol(cfg, run_dir, group, subjects, metrics, feature_set, match_config(cfg))
    return metrics


def group_name(cfg: DictConfig) -> str:
    """W&B group: the sweep and job in a multirun, the dataset and run name otherwise."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            return f"{Path(hc.sweep.dir).name}/{hc.sweep.subdir}"
    except ValueError:  # not running under Hydra (tests calling run_protocol directly)
        pass
    return f"{cfg.dataset.name}/{cfg.get('run_name') or 'default'}"


def summary_line(metrics: Mapping[str, float]) -> str:
    """The paper's columns in one line."""
    keys = ("f1_me_0.5", "f1_me_1.0", "f1_me_p", "recall", "precision", "f1", "calibrated_f1", "f1_p", "val_f1")
    return " ".join(f"{k}={metrics[k]:.3f}" for k in keys if k in metrics) + f" (tp={metrics.get('tp')} fp={metrics.get('fp')} fn={metrics.get('fn')})"


def metrics_json_line(metrics: Mapping[str, Any]) -> str:
    return json.dumps({k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in metrics.items()})
