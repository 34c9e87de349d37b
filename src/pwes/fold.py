"""One fold of the protocol in named stages, each taking and returning typed records, so that
training (:func:`pwes.protocol.train_fold`), re-scoring (:mod:`pwes.rescore`), the leakage test and
the benchmarks run the same wiring:

* :func:`setup_fold` -> :class:`FoldSetup`: the split, model, callbacks, logger and trainer;
* :func:`fit_fold`: training;
* :func:`pwes.scoring.calibrate_fold`: the deployable threshold, without the test subject;
* :func:`checkpoint_info` and :func:`save_checkpoint`: the checkpoint, its ``pwes`` record
  (:class:`~pwes.checkpoint_info.CheckpointInfo`) complete when it is written;
* :func:`score_fold` -> :class:`FoldScores`: the test subject predicted and scored;
* :func:`write_fold` -> :class:`FoldResult`: proposals.csv, pictures, metrics.json (last);
* :func:`load_fold` -> :class:`TrainedFold`: a finished fold's model back with its split,
  checked against the subjects its checkpoint records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from pwes import dashboard, interrupt, io, tracking
from pwes.callbacks import diagnostics
from pwes.checkpoint_info import CheckpointInfo
from pwes.config import to_container
from pwes.data.datamodule import PWESDataModule
from pwes.data.layout import FeatureSet
from pwes.evaluation.calibration import Calibration
from pwes.inference.proposals import Proposal
from pwes.machine import compute_platform
from pwes.scoring import evaluate_fold, match_config, predict_videos, proposal_config, proposals_from_outputs, write_proposals


class FoldSplitError(ValueError):
    """A checkpoint's recorded subjects differ from the split the config rebuilds."""


@dataclass(frozen=True)
class FoldSetup:
    """Everything a fold is trained and scored with, built once by :func:`setup_fold`."""

    cfg: DictConfig
    feature_set: FeatureSet
    subject: str | None  # the test subject; None trains on every subject (fold=none)
    fold_dir: Path
    datamodule: PWESDataModule
    model: L.LightningModule
    callbacks: list[Callback]  # the configured callbacks (build_callbacks), then StopOnInterrupt
    trainer: L.Trainer
    logger: Logger | None
    train_subjects: list[str]

    @property
    def validation_subjects(self) -> list[str]:
        return list(self.datamodule.validation_subjects)


@dataclass(frozen=True)
class FoldScores:
    """The test subject's predictions, proposals and figures (before anything is written)."""

    predictions: list[Any]
    proposals: list[Proposal]
    metrics: dict[str, Any]


@dataclass
class FoldResult:
    """What one finished fold leaves behind."""

    subject: str
    metrics: dict[str, Any]
    proposals: list[Proposal]


@dataclass(frozen=True)
class TrainedFold:
    """A finished fold read back: its model, the checkpoint's record and the rebuilt split."""

    model: L.LightningModule
    info: CheckpointInfo
    datamodule: PWESDataModule
    train_subjects: list[str]


def build_model(cfg: DictConfig, feature_set: FeatureSet) -> L.LightningModule:
    """The configured LightningModule for this feature set's widths. Pseudo labels and DFCL are
    callbacks (``build_callbacks``); their dataset settings arrive by interpolation in conf/."""
    rgb_dim, flow_dim = feature_set.feature_dims
    return hydra.utils.instantiate(cfg.model, rgb_dim=rgb_dim, flow_dim=flow_dim, _recursive_=False)


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """The configured ``callbacks.*`` (MPLG or another pseudo-label source, DFCL), fresh per fold."""
    return [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and c.get("_target_")]


def build_datamodule(cfg: DictConfig, feature_set: FeatureSet, test_subjects: Sequence[str]) -> PWESDataModule:
    """The fold's split (test, validation and training subjects) and loaders."""
    data = cfg.data
    return PWESDataModule(
        feature_set,
        test_subjects,
        batch_size=int(data.batch_size),
        supervision=str(cfg.model.get("supervision", "point")),
        point_mode=str(data.points.mode),
        point_seed=int(data.points.seed),
        seed=int(cfg.seed),
        num_workers=int(data.num_workers),
        cache=str(data.cache),
        cache_limit_mb=float(data.cache_limit_mb),
        validation_subjects=match_config(cfg).validation_subjects,
    )


def train_subjects_of(datamodule: PWESDataModule, feature_set: FeatureSet) -> list[str]:
    """The subjects of the datamodule's training videos, sorted."""
    return sorted({feature_set.videos[v].subject for v in datamodule.train_set.videos})


def setup_fold(cfg: DictConfig, feature_set: FeatureSet, subject: str | None, fold_dir: Path, group: str) -> FoldSetup:
    """Seed, split off ``subject`` (none for None), build the model, the callbacks (with the
    training videos' intervals for logged diagnostics only, never the model's), the fold's logger
    (``cfg.run_dir`` holds W&B's runs) and the trainer writing into ``fold_dir``."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg, feature_set, [subject] if subject is not None else [])
    model = build_model(cfg, feature_set)
    train_subjects = train_subjects_of(datamodule, feature_set)
    name = f"{group}/fold-{subject}" if subject is not None else f"{group}/all-subjects"
    logger = tracking.make_logger(cfg.get("logger"), Path(cfg.run_dir), fold_dir, name, group)
    tracking.log_config(logger, to_container(cfg))
    callbacks = build_callbacks(cfg)
    diagnostics.attach_ground_truth(callbacks, feature_set, datamodule.train_set.videos)
    callbacks.append(interrupt.StopOnInterrupt())
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=logger if logger is not None else False, callbacks=callbacks, default_root_dir=str(fold_dir))
    return FoldSetup(cfg, feature_set, subject, fold_dir, datamodule, model, callbacks, trainer, logger, train_subjects)


def describe(setup: FoldSetup, position: str) -> str:
    """The line the protocol logs before training a fold."""
    dm, subject = setup.datamodule, setup.subject
    validating = f", validating on {len(dm.val_set)} videos of {len(dm.validation_subjects)} subjects" if dm.validation_subjects else ""
    return (
        f"{position} {f'fold {subject}' if subject is not None else 'all subjects'}: training on {len(dm.train_set)} videos of "
        f"{len(setup.train_subjects)} subjects for {setup.trainer.max_steps} steps on {on_device(setup.trainer.strategy.root_device)}, "
        f"testing on {len(dm.test_set)} videos{validating}"
    )


def thread_count() -> int:
    """The CPU threads torch computes with (OMP_NUM_THREADS, or every core): recorded with each
    fold as ``torch_threads``, because it changes the order of float sums and so the numbers."""
    return int(torch.get_num_threads())


def on_device(device: torch.device) -> str:
    """``cuda:0``, or ``cpu (2 threads)``: on a CPU the thread count changes the numbers."""
    if device.type != "cpu":
        return str(device)
    threads = thread_count()
    return f"{device} ({threads} thread{'s' if threads != 1 else ''})"


def fit_fold(setup: FoldSetup) -> None:
    """Train the fold's model on its training subjects."""
    setup.trainer.fit(setup.model, datamodule=setup.datamodule)


def checkpoint_info(setup: FoldSetup, calibration: Calibration, validation: dict[str, Any]) -> CheckpointInfo:
    """The checkpoint's record: what `pwes.spot` needs to use it on new data, the operating point
    calibrated without the test subject, and the split (`pwes.rescore` checks it)."""
    cfg = setup.cfg
    return CheckpointInfo(
        dataset=str(cfg.dataset.name),
        feature_dims=tuple(setup.feature_set.feature_dims),
        snippet_length=setup.feature_set.snippet_length,
        stride=setup.feature_set.stride,
        fps=float(cfg.dataset.fps),
        proposals=to_container(cfg.proposals),
        evaluation=to_container(cfg.evaluation),
        train_subjects=tuple(setup.train_subjects),
        validation_subjects=tuple(setup.validation_subjects),
        seed=int(cfg.seed),
        score_threshold=calibration.threshold,
        score_threshold_rule=calibration.rule,
        train_f1_at_threshold=round(calibration.train_f1, 4),
        score_threshold_source=match_config(cfg).calibration_source if validation else None,
    )


class CheckpointMetadata(Callback):
    """Writes a finished :class:`CheckpointInfo` under the checkpoint's ``pwes`` key; attached by
    :func:`save_checkpoint` for the one save it was made for."""

    def __init__(self, info: CheckpointInfo) -> None:
        self.info = info

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["pwes"] = self.info.to_dict()


def save_checkpoint(trainer: L.Trainer, path: Path, info: CheckpointInfo) -> None:
    """Save the trainer's checkpoint with ``info`` as its ``pwes`` record, atomically
    (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = CheckpointMetadata(info)
    trainer.callbacks.append(writer)
    try:
        trainer.save_checkpoint(tmp)
    finally:
        trainer.callbacks.remove(writer)
    os.replace(tmp, path)


def score_fold(setup: FoldSetup, calibration: Calibration, validation: dict[str, Any], started: float) -> FoldScores:
    """Predict the test subject's videos and score them at the fold's threshold; the figures
    carry the validation figures, the time since ``started`` (``time.perf_counter``) and, after
    the numbers logged as ``test/*``, the callbacks' ``diag_*`` figures."""
    dm, trainer = setup.datamodule, setup.trainer
    predictions = predict_videos(trainer, setup.model, dm.test_set, dm.batch_size)
    proposals = proposals_from_outputs([predictions], setup.feature_set, proposal_config(setup.cfg))
    metrics = evaluate_fold(proposals, setup.feature_set, dm.test_set.videos, calibration, match_config(setup.cfg))
    metrics.update(validation)
    metrics = {
        **metrics,
        "train_seconds": round(time.perf_counter() - started, 2),
        "torch_threads": thread_count(),
        "compute_platform": compute_platform(trainer.strategy.root_device),
        "num_videos": len(dm.test_set),
    }
    if setup.logger is not None:
        setup.logger.log_metrics({f"test/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, step=trainer.global_step)
    metrics.update(diagnostics.final_values(setup.callbacks))  # diag_*: pseudo-label/attention figures
    return FoldScores(predictions, proposals, metrics)


def write_fold(setup: FoldSetup, scores: FoldScores, calibration: Calibration) -> FoldResult:
    """The fold's results into its folder: W&B pictures of a few test videos (when configured),
    proposals.csv, then metrics.json, which marks the fold finished."""
    if setup.subject is None:
        raise ValueError("write_fold: a fold=none setup has no test subject to write")
    pictures = dashboard.videos_per_fold(setup.cfg.get("logger")) if setup.logger is not None else 0
    if pictures:
        source = dashboard.threshold_source(match_config(setup.cfg).calibration_source, calibration.rule)
        paths = dashboard.fold_pictures(setup.fold_dir, scores.predictions, scores.proposals, setup.feature_set, calibration.threshold, source, pictures)
        dashboard.log_pictures(setup.logger, paths, f"fold {setup.subject}", setup.trainer.global_step)
    write_proposals(setup.fold_dir / "proposals.csv", scores.proposals, setup.feature_set)
    io.write_json(setup.fold_dir / "metrics.json", scores.metrics)  # last: marks the fold finished
    return FoldResult(setup.subject, scores.metrics, scores.proposals)


def load_fold(cfg: DictConfig, feature_set: FeatureSet, fold_dir: Path, subject: str, device: str = "cpu") -> TrainedFold:
    """A finished fold's model (``fold_dir/checkpoints/last.ckpt``) and the split the config
    rebuilds for ``subject`` (the one :func:`setup_fold` built); FoldSplitError when the subjects
    the checkpoint records differ (checkpoints from before they were recorded are not checked)."""
    from pwes.spot import load_model

    model, info = load_model(fold_dir / "checkpoints" / "last.ckpt", device)
    datamodule = build_datamodule(cfg, feature_set, [subject])
    train_subjects = train_subjects_of(datamodule, feature_set)
    recorded = (info.train_subjects, info.validation_subjects)
    if recorded[0] is not None and (list(recorded[0]), list(recorded[1])) != (train_subjects, list(datamodule.validation_subjects)):
        raise FoldSplitError(
            f"{fold_dir}: the checkpoint was trained on subjects {list(recorded[0])} (validation {list(recorded[1])}), but the run's config now gives "
            f"{train_subjects} (validation {datamodule.validation_subjects})"
        )
    return TrainedFold(model, info, datamodule, train_subjects)
