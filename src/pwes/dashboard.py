"""The W&B dashboard of a run (``logger=wandb`` only; CSV and no-logger runs never reach here):

* per fold, pictures of a few test videos (:func:`fold_pictures`): attention and the ME/MaE
  TCAMs over time, the annotated intervals and the proposals at or above the fold's calibrated
  threshold (pwes.spot_plot), written to ``fold-<subject>/maps/<video>.png`` and logged to the
  fold's run as ``maps/<video>``;
* per job, one **protocol run** (:func:`log_protocol`, ``job_type=protocol``, in the group of
  its folds), opened only after the folds are pooled and finished with exit code 0 only when
  everything is logged (a killed or failed job leaves no protocol run marked finished). Its id
  comes from the run folder, so a rerun of the same command replaces it: the offline copy an
  earlier run left is removed first, an online run is resumed (``resume="allow"``). It holds
  the flat config (the command's settings as top-level columns, ``seed``), every pooled figure
  of ``metrics.json`` under the same key in its summary plus ``protocol/*`` (how many folds),
  the tables ``folds`` (one row per fold) and ``proposals`` (one row per proposal, with the
  annotated interval it matched), and the folds' pictures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from pwes.config import ConfigError, to_container
from pwes.tracking import DASHBOARD_KEYS, is_wandb, wandb_environment  # noqa: F401 - DASHBOARD_KEYS re-exported
from pwes.data.layout import FeatureSet
from pwes.evaluation.calibration import apply_threshold
from pwes.evaluation.megc import MatchConfig, matched_ground_truth, score
from pwes.evaluation.proposal_files import read_proposals_csv
from pwes.inference.proposals import Proposal
from pwes.spot_plot import Threshold, VideoFacts, plot

log = logging.getLogger("pwes")

MAPS = "maps"  # the fold folder's picture folder and the logged keys' prefix
# Overrides that name no setting of the model or data (the run folder's name leaves them out too).
NOT_SETTINGS = ("resume", "print_metrics", "logger", "trainer.enable_progress_bar", "hydra.", "sweep_name", "run_name")
# The per-fold table: (column, figure); counts at the three operating points.
FOLD_COLUMNS = (
    ("num_videos", "num_videos"), ("num_ground_truth", "num_ground_truth"), ("num_proposals", "num_proposals"),
    ("all_tp", "tp"), ("all_fp", "fp"), ("all_fn", "fn"), ("all_f1", "f1"),
    ("calibrated_threshold", "calibrated_threshold"),
    ("calibrated_tp", "calibrated_tp"), ("calibrated_fp", "calibrated_fp"), ("calibrated_fn", "calibrated_fn"), ("calibrated_f1", "calibrated_f1"),
    ("best_on_test_threshold", "threshold_p"),
)
PROPOSAL_COLUMNS = ("fold", "video", "onset", "offset", "onset_s", "offset_s", "score", "type", "above_threshold", "outcome", "matched_gt")


def videos_per_fold(logger_cfg: DictConfig | None) -> int:
    """How many test videos per fold get a picture: ``logger.videos_per_fold`` of a W&B logger
    (0 for any other logger, so CSV and no-logger runs draw nothing)."""
    if not is_wandb(logger_cfg):
        return 0
    count = logger_cfg.get("videos_per_fold", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"logger.videos_per_fold: must be a whole number >= 0 (test videos drawn per fold), got {count!r}")
    return count


# ------------------------------------------------------------------------------------ pictures
def picture_videos(videos: Sequence[str], feature_set: FeatureSet, count: int) -> list[str]:
    """The ``count`` test videos to draw: those with annotated intervals first, in file order."""
    order = {v: i for i, v in enumerate(videos)}
    return sorted(videos, key=lambda v: (not feature_set.intervals.get(v), order[v]))[:count]


def fold_pictures(fold_dir: Path, predictions: Iterable[Any], proposals: Sequence[Proposal], feature_set: FeatureSet, threshold: float, source: str, count: int) -> list[Path]:
    """Draw the chosen test videos (:func:`picture_videos`) into ``fold_dir/maps/<video>.png``:
    the maps of their prediction, their intervals, and the proposals at or above ``threshold``
    (``source`` says where it came from). Returns the files written."""
    by_name = {p.video: p for p in predictions}
    paths = []
    for name in picture_videos(list(by_name), feature_set, count):
        info = feature_set.videos[name]
        found = [p for p in proposals if p.video == name]
        kept = apply_threshold(found, threshold)
        cut = Threshold(threshold, source, len(found) - len(kept))
        path = fold_dir / MAPS / f"{name}.png"
        plot(path, VideoFacts(name, info.num_frames, info.fps, list(feature_set.intervals.get(name, []))), by_name[name], kept, feature_set.stride, feature_set.snippet_length, cut)
        paths.append(path)
    return paths


def threshold_source(calibration_source: str, rule: str) -> str:
    """The title's words for where a fold's threshold came from."""
    labels = "intervals" if rule == "intervals" else "point labels"
    videos = "validation subjects" if calibration_source == "validation" else "training videos"
    return f"calibrated on the {videos}' {labels}"


def log_pictures(logger: Any, paths: Sequence[Path], caption: str, step: int) -> None:
    """Log each picture to the fold's W&B run as ``maps/<video>``."""
    import wandb

    if paths:
        logger.experiment.log({f"{MAPS}/{p.stem}": wandb.Image(str(p), caption=f"{p.stem} ({caption})") for p in paths} | {"trainer/global_step": step})


# -------------------------------------------------------------------------------- protocol run
def protocol_run_id(run_dir: Path) -> str:
    """The protocol run's W&B id, from the run folder's absolute path: the same command (the
    same folder) gets the same id, another folder another."""
    return "protocol-" + hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:20]


def job_overrides() -> list[str]:
    """The job's command-line overrides that name a setting (none outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except ValueError:
        return []
    return [o.lstrip("+~") for o in task if "=" in o and not o.lstrip("+~").startswith(NOT_SETTINGS)]


def flat_config(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The config as one level of dotted keys (``callbacks.mplg.threshold``), so each setting is
    a column; config-group choices given on the command line (``ablation=mplg``) become
    columns too, and ``overrides`` lists the command's settings (what a sweep varies)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(config, "")
    for override in overrides:
        key, value = override.split("=", 1)
        flat.setdefault(key, yaml.safe_load(value) if value else value)
    flat["overrides"] = ",".join(overrides)
    return flat


def summary_values(metrics: Mapping[str, Any], subjects: Sequence[str], all_subjects: Sequence[str], fold: str) -> dict[str, Any]:
    """Every pooled figure of ``metrics.json`` under its own key (NaN as None), and
    ``protocol/*``: which folds were asked, how many pooled, whether that is every subject."""
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    out.update({
        "protocol/fold": fold,
        "protocol/folds_pooled": len(subjects),
        "protocol/subjects": len(all_subjects),
        "protocol/status": "complete" if set(subjects) == set(all_subjects) else f"partial ({len(subjects)} of {len(all_subjects)} folds)",
    })
    return out


def fold_rows(fold_dirs: Sequence[Path], feature_set: FeatureSet, match: MatchConfig) -> tuple[list[str], list[list[Any]]]:
    """The ``folds`` table: per fold its figures (:data:`FOLD_COLUMNS`), the best-on-test
    threshold's counts re-scored from the fold's proposals."""
    columns = ["subject", *(c for c, _ in FOLD_COLUMNS), "best_on_test_tp", "best_on_test_fp", "best_on_test_fn", "best_on_test_f1"]
    rows = []
    for fold_dir in fold_dirs:
        metrics = json.loads((fold_dir / "metrics.json").read_text())
        videos = feature_set.videos_of([fold_dir.name.removeprefix("fold-")])
        gt, fps = {v: list(feature_set.intervals[v]) for v in videos}, {v: feature_set.videos[v].fps for v in videos}
        threshold = metrics.get("threshold_p")
        best = score(apply_threshold(read_proposals_csv(fold_dir / "proposals.csv", feature_set.videos), threshold if isinstance(threshold, float) and not math.isnan(threshold) else None), gt, fps, match)
        rows.append([fold_dir.name.removeprefix("fold-"), *(metrics.get(key) for _, key in FOLD_COLUMNS), best["tp"], best["fp"], best["fn"], best["f1"]])
    return columns, rows


def proposal_rows(fold_dirs: Sequence[Path], feature_set: FeatureSet, match: MatchConfig) -> list[list[Any]]:
    """The ``proposals`` table (:data:`PROPOSAL_COLUMNS`): every proposal of every fold, whether
    it is at or above its fold's calibrated threshold, TP/FP and the interval it matched."""
    rows = []
    for fold_dir in fold_dirs:
        subject = fold_dir.name.removeprefix("fold-")
        threshold = json.loads((fold_dir / "metrics.json").read_text()).get("calibrated_threshold")
        proposals = read_proposals_csv(fold_dir / "proposals.csv", feature_set.videos)
        for video in feature_set.videos_of([subject]):
            mine = [p for p in proposals if p.video == video]
            fps = feature_set.videos[video].fps
            for p, matched in zip(mine, matched_ground_truth(mine, list(feature_set.intervals[video]), match)):
                gt = "; ".join(f"{g.type} {g.onset}-{g.offset}" for g in matched)
                above = threshold is None or p.score >= threshold
                rows.append([subject, video, p.onset, p.offset, round(p.onset / fps, 3), round((p.offset + 1) / fps, 3), p.score, p.type, above, "TP" if matched else "FP", gt])
    return rows


def drop_offline_copies(wandb_dir: Path, run_id: str) -> None:
    """Remove the offline folders an earlier run left for ``run_id``: the new run replaces them,
    so the folder holds one protocol run per job (never a stale duplicate to sync)."""
    for old in wandb_dir.glob(f"offline-run-*-{run_id}"):
        shutil.rmtree(old, ignore_errors=True)


def log_protocol(cfg: DictConfig, run_dir: Path, group: str, subjects: Sequence[str], metrics: Mapping[str, Any], feature_set: FeatureSet, match: MatchConfig) -> None:
    """Open, fill and finish the job's protocol run (module docstring)."""
    import wandb

    settings = to_container(cfg.logger)
    run_id = protocol_run_id(run_dir)
    offline = bool(settings.get("offline", True))
    wandb_environment(run_dir)
    if offline:
        drop_offline_copies(run_dir / "wandb", run_id)
    config = flat_config({k: v for k, v in to_container(cfg).items() if k != "run_dir"}, job_overrides())
    run = wandb.init(
        project=settings.get("project"), entity=settings.get("entity"), tags=list(settings.get("tags") or []), dir=str(run_dir),
        id=run_id, resume="allow", name=f"{group}/protocol", group=group, job_type="protocol", mode="offline" if offline else "online", config=config,
    )
    try:
        fold_dirs = [run_dir / f"fold-{s}" for s in subjects]
        columns, rows = fold_rows(fold_dirs, feature_set, match)
        run.log({"folds": wandb.Table(columns=columns, data=rows), "proposals": wandb.Table(columns=list(PROPOSAL_COLUMNS), data=proposal_rows(fold_dirs, feature_set, match))})
        pictures = {f"{MAPS}/{p.stem}": wandb.Image(str(p), caption=f"{p.stem} (fold {d.name.removeprefix('fold-')})") for d in fold_dirs for p in sorted((d / MAPS).glob("*.png"))}
        if pictures:
            run.log(pictures)
        run.summary.update(summary_values(metrics, subjects, feature_set.subjects, str(cfg.fold)))
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=0)
    log.info("W&B protocol run %s (%s) in %s", run.name, run_id, run_dir / "wandb")


# -------------------------------------------------------------------------------- report run
def sweep_wandb_settings(sweep_dir: Path) -> dict[str, Any] | None:
    """The W&B logger settings of the sweep's jobs (the first job's config.yaml), None when its
    jobs did not log to W&B."""
    for config_path in sorted(sweep_dir.glob("*/config.yaml")):
        logger = (yaml.safe_load(config_path.read_text()) or {}).get("logger") or {}
        return logger if str(logger.get("_target_") or "").endswith("WandbLogger") else None
    return None


def log_report(sweep_dir: Path, settings: Mapping[str, Any]) -> str:
    """One ``job_type=report`` run for the sweep (id from its folder; a rerun replaces it):
    report.png as ``report/plot`` and report.csv as the table ``report/table``. Returns a line
    naming it."""
    import csv

    import wandb

    run_id = "report-" + hashlib.sha256(str(sweep_dir.resolve()).encode()).hexdigest()[:20]
    offline = bool(settings.get("offline", True))
    wandb_environment(sweep_dir)
    if offline:
        drop_offline_copies(sweep_dir / "wandb", run_id)
    with (sweep_dir / "report.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    run = wandb.init(
        project=settings.get("project"), entity=settings.get("entity"), tags=list(settings.get("tags") or []), dir=str(sweep_dir),
        id=run_id, resume="allow", name=f"{sweep_dir.name}/report", group=sweep_dir.name, job_type="report", mode="offline" if offline else "online",
        config={"sweep_name": sweep_dir.name},
    )
    try:
        logged: dict[str, Any] = {"report/table": wandb.Table(columns=header, data=rows)}
        if (sweep_dir / "report.png").exists():
            logged["report/plot"] = wandb.Image(str(sweep_dir / "report.png"), caption=sweep_dir.name)
        run.log(logged)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=0)
    return f"W&B report run {sweep_dir.name}/report ({run_id}) in {sweep_dir / 'wandb'}" + (f"; upload: wandb sync {sweep_dir / 'wandb'}/offline-run-*" if offline else "")
