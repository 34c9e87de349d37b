"""A trained fold's scoring stages, shared by training (pwes.protocol.train_fold) and
re-scoring (pwes.rescore), so both give the same numbers from the same model:

* :func:`predict_proposals`: a dataset's videos through the model, into proposals;
* :func:`calibrate_fold`: the deployable threshold, chosen on the fold's training videos or its
  validation subjects (never its test subject), and the validation subjects' ``val_*`` figures;
* :func:`evaluate_fold`: the test videos' figures at the three operating points;
* :func:`pool_folds`: finished folds pooled (counts summed, then recall, precision, F1).

Plus the typed ``proposals.*`` / ``evaluation.*`` settings (:func:`proposal_config`,
:func:`match_config`, :func:`check_evaluation_settings`) with one-line errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from pwes.config import ConfigError, to_container
from pwes.data.batch import collate
from pwes.data.datamodule import PWESDataModule, VideoDataset
from pwes.data.layout import FeatureSet, Interval
from pwes.evaluation.calibration import (
    Calibration,
    PointTarget,
    apply_threshold,
    calibrate_on_intervals,
    calibrate_on_points,
    calibrated_metrics,
    calibration_rule,
    counts_figures,
    point_hit_extent,
    point_hit_figures,
    point_targets,
    pooled_calibrated_metrics,
)
from pwes.evaluation.megc import MatchConfig, score
from pwes.evaluation.proposal_files import read_proposals_csv, write_proposals_csv
from pwes.inference.maps import proposals_from_prediction
from pwes.inference.proposals import Proposal, ProposalConfig
from pwes.settings import parse_settings

# The figures of the validation subjects (each prefixed val_ and val_all_; pooled by summing counts).
VALIDATION_KEYS = tuple(f"{prefix}{name}" for prefix in ("", "me_", "mae_") for name in ("recall", "precision", "f1", "tp", "fp", "fn"))

log = logging.getLogger("pwes")


def match_config(cfg: DictConfig) -> MatchConfig:
    """``evaluation.*`` as the :class:`MatchConfig` it is (one-line errors naming the setting)."""
    return _settings(MatchConfig, cfg.evaluation, "evaluation")


def proposal_config(cfg: DictConfig) -> ProposalConfig:
    """``proposals.*`` as the :class:`ProposalConfig` it is (one-line errors naming the setting)."""
    return _settings(ProposalConfig, cfg.proposals, "proposals")


def check_evaluation_settings(cfg: DictConfig) -> MatchConfig:
    """``proposals.*`` and ``evaluation.*`` checked together before anything is trained or
    written (the extent rule needs the ME cut of the proposals)."""
    match = match_config(cfg)
    proposals = proposal_config(cfg)
    point_hit_extent(match, {}, proposals.me_max_seconds)
    return match


def _settings(cls: type, node: Any, where: str) -> Any:
    """``parse_settings`` (types checked against the defaults, unknown keys refused), with the
    dataclass's own "where.key must ..." message not prefixed twice."""
    try:
        return parse_settings(cls, to_container(node) if isinstance(node, DictConfig) else node, where)
    except ConfigError as err:
        raise ConfigError(str(err).replace(f"{where}: {where}.", f"{where}.", 1)) from None


def proposals_from_outputs(outputs: Sequence[Sequence[Any]] | None, feature_set: FeatureSet, proposal_cfg: ProposalConfig) -> list[Proposal]:
    """Proposals from the per-batch lists of VideoPrediction that ``trainer.predict`` returns."""
    proposals: list[Proposal] = []
    for batch_outputs in outputs or []:
        for pred in batch_outputs:
            info = feature_set.videos[pred.video]
            proposals.extend(proposals_from_prediction(pred, info.num_frames, info.fps, feature_set.snippet_length, feature_set.stride, proposal_cfg))
    return proposals


def ground_truth(feature_set: FeatureSet, videos: Sequence[str]) -> tuple[dict[str, list[Interval]], dict[str, float]]:
    """Intervals (empty lists included) and fps of ``videos``, as the scorer takes them."""
    return {v: list(feature_set.intervals[v]) for v in videos}, {v: feature_set.videos[v].fps for v in videos}


def write_proposals(path: Path, proposals: Sequence[Proposal], feature_set: FeatureSet) -> None:
    extras = {name: {"subject": v.subject, "fold": v.subject} for name, v in feature_set.videos.items()}
    write_proposals_csv(path, proposals, extras)


def predict_videos(trainer: L.Trainer, model: L.LightningModule, dataset: VideoDataset, batch_size: int) -> list[Any]:
    """The model's prediction (maps and video scores) of every video of ``dataset``, in file order,
    in batches of ``batch_size`` (the same batches whether called after training or by
    pwes.rescore, so the same numbers)."""
    if len(dataset) == 0:
        return []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    return [pred for batch in trainer.predict(model, dataloaders=loader) or [] for pred in batch]


def predict_proposals(trainer: L.Trainer, model: L.LightningModule, dataset: VideoDataset, batch_size: int, feature_set: FeatureSet, proposal_cfg: ProposalConfig) -> list[Proposal]:
    """Proposals of every video of ``dataset`` (:func:`predict_videos`)."""
    return proposals_from_outputs([predict_videos(trainer, model, dataset, batch_size)], feature_set, proposal_cfg)


def dataset_targets(dataset: VideoDataset, feature_set: FeatureSet) -> dict[str, list[PointTarget]]:
    """The point-hit targets of a dataset's videos from their point (or video) labels only."""
    items = (dataset[i] for i in range(len(dataset)))
    return point_targets(items, feature_set.snippet_length, feature_set.stride)


def video_fps(feature_set: FeatureSet, videos: Sequence[str]) -> dict[str, float]:
    return {v: feature_set.videos[v].fps for v in videos}


def calibrate(
    proposals: Sequence[Proposal], dataset: VideoDataset, feature_set: FeatureSet, match: MatchConfig, supervision: str, proposal_cfg: ProposalConfig
) -> Calibration:
    """The deployable threshold chosen on the videos of ``dataset`` (the fold's training videos,
    or its validation subjects'): from their point and video labels only, or from their onset/
    offset when the model was trained on them (``calibration_rule``)."""
    if calibration_rule(match.calibration, supervision) == "intervals":
        return calibrate_on_intervals(proposals, *ground_truth(feature_set, dataset.videos), match)
    extent = point_hit_extent(match, video_fps(feature_set, dataset.videos), proposal_cfg.me_max_seconds)
    return calibrate_on_points(proposals, dataset_targets(dataset, feature_set), match, extent)


def validation_figures(
    proposals: Sequence[Proposal],
    dataset: VideoDataset,
    feature_set: FeatureSet,
    calibration: Calibration,
    match: MatchConfig,
    supervision: str,
    proposal_cfg: ProposalConfig,
    subjects: Sequence[str],
) -> dict[str, Any]:
    """``val_*``: the validation subjects' videos scored with the calibration rule (point hits;
    MEGC against intervals only where ``calibration_rule`` says intervals), at the fold's
    threshold (``val_recall``, ``val_precision``, ``val_f1``, counts, per type) and over all
    proposals (``val_all_*``)."""
    if calibration_rule(match.calibration, supervision) == "intervals":
        gt, fps = ground_truth(feature_set, dataset.videos)
        at, every = (score(apply_threshold(proposals, t), gt, fps, match) for t in (calibration.threshold, None))
        num_targets = int(every["num_ground_truth"])
    else:
        extent = point_hit_extent(match, video_fps(feature_set, dataset.videos), proposal_cfg.me_max_seconds)
        targets = dataset_targets(dataset, feature_set)
        at, every = (point_hit_figures(proposals, targets, t, match, extent) for t in (calibration.threshold, None))
        num_targets = sum(len(t) for t in targets.values())
    out: dict[str, Any] = {f"val_{k}": at[k] for k in VALIDATION_KEYS}
    out.update({f"val_all_{k}": every[k] for k in VALIDATION_KEYS})
    out.update(val_num_videos=len(dataset), val_num_targets=num_targets, val_num_proposals=len(proposals), val_subjects=list(subjects))
    return out


def calibrate_fold(
    cfg: DictConfig, feature_set: FeatureSet, trainer: L.Trainer, model: L.LightningModule, datamodule: PWESDataModule
) -> tuple[Calibration, dict[str, Any]]:
    """A trained fold's threshold (on its training videos or, with ``evaluation.calibration_source
    =validation``, on its validation subjects) and its ``val_*`` figures (empty without a
    validation split). The test subject takes no part: nothing here reads ``datamodule.test_set``."""
    proposal_cfg = proposal_config(cfg)
    match = match_config(cfg)
    supervision = str(cfg.model.get("supervision", "point"))
    batch = datamodule.batch_size
    val_proposals = predict_proposals(trainer, model, datamodule.val_set, batch, feature_set, proposal_cfg) if len(datamodule.val_set) else []
    if match.calibration_source == "validation":
        calibration = calibrate(val_proposals, datamodule.val_set, feature_set, match, supervision, proposal_cfg)
    else:
        train_proposals = predict_proposals(trainer, model, datamodule.train_set, batch, feature_set, proposal_cfg)
        calibration = calibrate(train_proposals, datamodule.train_set, feature_set, match, supervision, proposal_cfg)
    if not len(datamodule.val_set):
        return calibration, {}
    figures = validation_figures(val_proposals, datamodule.val_set, feature_set, calibration, match, supervision, proposal_cfg, datamodule.validation_subjects)
    return calibration, {"calibration_source": match.calibration_source, **figures}


def evaluate_fold(proposals: Sequence[Proposal], feature_set: FeatureSet, videos: Sequence[str], calibration: Calibration, match: MatchConfig) -> dict[str, Any]:
    """A fold's test figures: every proposal (``score``), the calibrated threshold's, the threshold."""
    gt, fps = ground_truth(feature_set, videos)
    metrics = {**score(proposals, gt, fps, match), **calibrated_metrics(proposals, gt, fps, calibration.threshold, match)}
    metrics.update(calibrated_threshold=calibration.as_json(), calibration_train_f1=calibration.train_f1)
    return metrics


def pool_folds(fold_dirs: Sequence[Path], feature_set: FeatureSet, match: MatchConfig) -> tuple[dict[str, float], list[Proposal]]:
    """Pool finished folds: all their proposals against all their videos, scored once."""
    proposals: list[Proposal] = []
    subjects: list[str] = []
    calibrated: list[tuple[list[Proposal], float | None]] = []  # each fold's proposals and its own threshold
    thresholds: dict[str, float | None] = {}
    diag: dict[str, list[float]] = {}  # diag_* figures per fold, pooled as their mean
    validation: list[Mapping[str, Any]] = []  # folds with val_* figures
    threads: dict[str, int] = {}  # the CPU thread count each fold trained with (torch_threads)
    platforms: dict[str, str] = {}  # what each fold computed on (compute_platform)
    for fold_dir in fold_dirs:
        subject = fold_dir.name.removeprefix("fold-")
        subjects.append(subject)
        fold_proposals = read_proposals_csv(fold_dir / "proposals.csv", feature_set.videos)
        proposals.extend(fold_proposals)
        fold_metrics = json.loads((fold_dir / "metrics.json").read_text()) if (fold_dir / "metrics.json").exists() else {}
        if isinstance(fold_metrics, dict) and "calibrated_threshold" in fold_metrics:
            thresholds[subject] = fold_metrics["calibrated_threshold"]
            calibrated.append((fold_proposals, fold_metrics["calibrated_threshold"]))
        if isinstance(fold_metrics, dict) and "val_tp" in fold_metrics:
            validation.append(fold_metrics)
        if isinstance(fold_metrics, dict):
            if isinstance(fold_metrics.get("torch_threads"), int):
                threads[subject] = fold_metrics["torch_threads"]
            if isinstance(fold_metrics.get("compute_platform"), str):
                platforms[subject] = fold_metrics["compute_platform"]
            for key, value in fold_metrics.items():
                if key.startswith("diag_") and isinstance(value, (int, float)):
                    diag.setdefault(key, []).append(float(value))
    gt, fps = ground_truth(feature_set, feature_set.videos_of(subjects))
    metrics = score(proposals, gt, fps, match)
    if len(calibrated) == len(fold_dirs):  # folds written before calibration existed have no threshold
        metrics.update(pooled_calibrated_metrics(calibrated, gt, fps, match), calibrated_thresholds=thresholds)
    if validation and len(validation) == len(fold_dirs):
        metrics.update(pooled_validation(validation))
    metrics.update({key: round(sum(v) / len(v), 6) for key, v in diag.items()})
    if threads:
        metrics["torch_threads"] = pooled_record(threads, "CPU thread counts", "thread(s)")
    if platforms:
        metrics["compute_platform"] = pooled_record(platforms, "compute platforms", "")
    return {**metrics, "num_folds": len(fold_dirs), "num_videos": len(gt)}, proposals


def pooled_record(values: Mapping[str, Any], what: str, unit: str) -> Any:
    """What the folds trained with (subject -> ``torch_threads`` or ``compute_platform``): one
    value, or the sorted distinct values with a warning naming the folds of each. Both set the
    order of float sums, so the same seed gives the same numbers only where they are the same."""
    distinct = sorted(set(values.values()))
    if len(distinct) == 1:
        return distinct[0]
    label = (lambda v: f"{v} {unit}") if unit else (lambda v: str(v))
    by_value = "; ".join(f"{label(v)}: {', '.join(sorted(s for s, c in values.items() if c == v))}" for v in distinct)
    log.warning("the pooled folds were trained with different %s (%s); the same seed gives the same numbers only where they agree", what, by_value)
    return distinct


def pooled_validation(folds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``val_*`` over folds: each fold's counts (at its own threshold, and over all its
    proposals) summed, then recall/precision/F1 once, as the test figures are pooled."""
    out: dict[str, Any] = {}
    for prefix in ("val_", "val_all_"):
        counts = {
            name: np.array([sum(int(f[f"{prefix}{kind}{name}"]) for f in folds) for kind in ("me_", "mae_")], dtype=np.int64)
            for name in ("tp", "fp", "fn")
        }
        out.update({f"{prefix}{k}": v for k, v in counts_figures(counts["tp"], counts["fp"], counts["fn"]).items()})
    for key in ("val_num_videos", "val_num_targets", "val_num_proposals"):
        out[key] = sum(int(f[key]) for f in folds)
    return out
