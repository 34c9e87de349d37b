"""Re-score a finished run without retraining: new proposal or evaluation settings, same models.

    python -m pwes.rescore RUN_DIR [proposals.KEY=VALUE ...] [evaluation.KEY=VALUE ...] [--out DIR]

For every finished fold of ``RUN_DIR`` (``fold-*/metrics.json`` beside ``checkpoints/last.ckpt``)
the fold's model is loaded from its checkpoint and predicts the fold's training, validation and test
videos (the fold's split is rebuilt from the run's ``config.yaml`` and checked against the subjects
the checkpoint records); proposals, the calibrated threshold and every figure are then computed by
the same functions training uses (:func:`pwes.scoring.calibrate_fold`,
:func:`~pwes.scoring.evaluate_fold`, :func:`~pwes.scoring.pool_folds`). With no overrides the
result equals the run's own ``metrics.json`` and ``proposals.csv``.

Only ``proposals.*`` and ``evaluation.*`` may change, and not ``evaluation.validation_subjects``
(it decides which subjects the models trained on). Results go to a new folder, ``--out`` or
``RUN_DIR-rescored-<hash of the overrides>`` beside the run: ``config.yaml`` (the resolved config
with the overrides), ``rescore.json`` (source run, overrides, folds), ``fold-*/proposals.csv``,
``fold-*/metrics.json`` and the pooled ``metrics.json`` / ``proposals.csv``, each written to a
temporary file and renamed. ``RUN_DIR`` is never written. Training facts that no setting here
changes (``train_seconds``, ``torch_threads``, ``compute_platform``, the ``diag_*`` figures) are carried over from the run's fold metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from pwes import io, run_config, run_folder
from pwes.config import ConfigError, to_container

log = logging.getLogger("pwes")
REWRITABLE = ("proposals.", "evaluation.")
FIXED = {"evaluation.validation_subjects": "it decides which subjects each fold's model trained on; retrain with pwes.train instead"}
CARRIED_PREFIXES = ("diag_",)  # training-time figures no proposal or evaluation setting changes
CARRIED_KEYS = ("train_seconds", "torch_threads", "compute_platform")


class RescoreError(ConfigError):
    """A run folder, an override or the output folder cannot be used; the message names it."""


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """``key=value`` overrides (Hydra's syntax) of ``proposals.*`` / ``evaluation.*``; any other
    key, a sweep, an addition (``+``) or a deletion (``~``) is a one-line RescoreError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed: list[tuple[str, Any]] = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as err:
            raise RescoreError(f"override {text!r}: not key=value ({' '.join(str(err).split())[:200]})") from None
        key = override.key_or_group
        if override.package is not None or override.type != OverrideType.CHANGE:
            raise RescoreError(f"override {text!r}: only plain key=value overrides of existing proposals.*/evaluation.* settings")
        if override.is_sweep_override():
            raise RescoreError(f"override {text!r}: one value per setting (a sweep would need one rescore per value)")
        if not key.startswith(REWRITABLE):
            raise RescoreError(f"override {text!r}: pwes.rescore changes only proposals.* and evaluation.* settings ({key} needs retraining: use pwes.train)")
        if key in FIXED:
            raise RescoreError(f"override {text!r}: {key} cannot be re-scored: {FIXED[key]}")
        parsed.append((key, override.value()))
    return parsed


def known_settings() -> set[str]:
    """``proposals.*`` / ``evaluation.*`` keys the code knows (a run written before a setting
    existed may still take it)."""
    from pwes.evaluation.megc import MatchConfig
    from pwes.inference.proposals import ProposalConfig

    return {f"proposals.{f.name}" for f in dataclasses.fields(ProposalConfig)} | {f"evaluation.{f.name}" for f in dataclasses.fields(MatchConfig)}


def apply_overrides(config: dict[str, Any], overrides: Sequence[tuple[str, Any]], source: Path) -> DictConfig:
    """The run's config with ``overrides`` applied; an unknown setting is a RescoreError."""
    cfg = OmegaConf.create(config)
    for key, value in overrides:
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and key not in known_settings():
            raise RescoreError(f"override {key}=...: {source} has no setting {key} (and pwes knows none of that name)")
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def default_out(run_dir: Path, overrides: Sequence[str]) -> Path:
    """``RUN_DIR-rescored-<8 hex digits of the overrides' hash>`` beside the run folder."""
    digest = hashlib.sha256("\n".join(sorted(overrides)).encode("utf-8")).hexdigest()[:8]
    return run_dir.parent / f"{run_dir.name}-rescored-{digest}"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RescoreError(f"{run_dir}: not a pwes run folder (no config.yaml)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RescoreError(f"{path}: not a readable run config ({type(err).__name__})") from None
    if not isinstance(config, dict):
        raise RescoreError(f"{path}: not a run config (a mapping of settings)")
    return config


def finished_folds(run_dir: Path, subjects: Sequence[str]) -> list[str]:
    """The run's finished folds (metrics.json and checkpoint), in the order training ran them."""
    done = [s for s in subjects if (run_dir / f"fold-{s}" / "metrics.json").is_file()]
    for subject in done:
        if not (run_dir / f"fold-{subject}" / "checkpoints" / "last.ckpt").is_file():
            raise RescoreError(f"{run_dir / f'fold-{subject}'}: finished but has no checkpoints/last.ckpt to re-score from")
    if not done:
        raise RescoreError(f"{run_dir}: no finished fold (fold-*/metrics.json with checkpoints/last.ckpt) to re-score")
    return done


def check_out(out: Path, run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse an output folder inside the run, or one holding other results."""
    out_r, run_r = out.resolve(), run_dir.resolve()
    if out_r == run_r or run_r in out_r.parents:
        raise RescoreError(f"--out {out}: inside the run folder {run_dir}, which pwes.rescore never writes; choose a folder outside it")
    if not out.exists():
        return
    if not out.is_dir():
        raise RescoreError(f"--out {out}: exists and is not a folder")
    previous = out / "config.yaml"
    if previous.is_file() and (out / "rescore.json").is_file():
        old = yaml.safe_load(previous.read_text(encoding="utf-8")) or {}
        changed = run_config.config_differences(old, config)
        if changed:
            raise RescoreError(f"--out {out}: holds a re-scoring with other settings ({run_folder.listed(changed)}); choose another --out or delete it")
        return
    if any(out.iterdir()):
        raise RescoreError(f"--out {out}: exists and holds files that pwes.rescore did not write; choose another --out")


def check_data(run_dir: Path, subjects: Sequence[str], feature_set: Any) -> None:
    """The data must be what the folds were trained and tested on (their fingerprint.json)."""
    now = run_folder.data_fingerprint(feature_set, run_folder.previous_fingerprint(run_dir))
    for subject in subjects:
        record = run_dir / f"fold-{subject}" / run_folder.FINGERPRINT
        if not record.is_file():
            continue  # folds from before fingerprints: the split check below still applies
        changed = run_folder.fingerprint_differences(run_folder.read_json(record), now)
        if changed:
            raise RescoreError(f"{run_dir}: the data changed since fold-{subject} was trained (changed: {run_folder.listed(changed)}); its checkpoint cannot be re-scored on it")


def rescore_fold(cfg: DictConfig, feature_set: Any, run_dir: Path, subject: str, out: Path, trainer: Any) -> dict[str, Any]:
    """One fold: load its model, rebuild its split, calibrate, evaluate, write its results."""
    from pwes.fold import FoldSplitError, load_fold
    from pwes.scoring import calibrate_fold, evaluate_fold, match_config, predict_proposals, proposal_config, write_proposals

    fold = run_dir / f"fold-{subject}"
    try:
        trained = load_fold(cfg, feature_set, fold, subject)  # the split training built, checked against the checkpoint's record
    except FoldSplitError as err:
        raise RescoreError(f"{err}; it cannot be re-scored with this split") from None
    model, datamodule = trained.model, trained.datamodule
    calibration, validation = calibrate_fold(cfg, feature_set, trainer, model, datamodule)
    proposals = predict_proposals(trainer, model, datamodule.test_set, datamodule.batch_size, feature_set, proposal_config(cfg))
    metrics = evaluate_fold(proposals, feature_set, datamodule.test_set.videos, calibration, match_config(cfg))
    metrics.update(validation)
    original = run_folder.read_json(fold / "metrics.json")
    original = original if isinstance(original, dict) else {}
    metrics.update({k: original[k] for k in CARRIED_KEYS if k in original})
    metrics["num_videos"] = len(datamodule.test_set)
    metrics.update({k: v for k, v in original.items() if k.startswith(CARRIED_PREFIXES)})
    write_proposals(out / f"fold-{subject}" / "proposals.csv", proposals, feature_set)
    io.write_json(out / f"fold-{subject}" / "metrics.json", metrics)
    return metrics


def rescore(run_dir: Path, overrides: Sequence[str], out: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Re-score every finished fold of ``run_dir`` with ``overrides`` into ``out``; returns the
    output folder and the pooled figures."""
    from pwes.data.datamodule import fold_subjects
    from pwes.protocol import resolve_feature_set
    from pwes.scoring import check_evaluation_settings, pool_folds, write_proposals

    config = read_run_config(run_dir)
    cfg = apply_overrides(config, parse_overrides(overrides), run_dir / "config.yaml")
    match = check_evaluation_settings(cfg)  # one-line errors naming the setting, before any work
    if str(cfg.get("fold")) == "none":
        raise RescoreError(f"{run_dir}: a fold=none run has no test fold to re-score")
    out = out if out is not None else default_out(run_dir, overrides)
    resolved = to_container(cfg)
    check_out(out, run_dir, resolved)
    feature_set = resolve_feature_set(cfg)
    subjects = finished_folds(run_dir, fold_subjects(feature_set, cfg.fold))
    check_data(run_dir, subjects, feature_set)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[], enable_progress_bar=False, default_root_dir=str(out))
    io.write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    io.write_json(out / "rescore.json", {"source": str(run_dir.resolve()), "overrides": list(overrides), "folds": list(subjects)})
    for index, subject in enumerate(subjects, start=1):
        metrics = rescore_fold(cfg, feature_set, run_dir, subject, out, trainer)
        log.info("[%d/%d] fold %s re-scored: calibrated_f1=%.3f f1=%.3f", index, len(subjects), subject, metrics["calibrated_f1"], metrics["f1"])
    pooled, proposals = pool_folds([out / f"fold-{s}" for s in subjects], feature_set, match)
    write_proposals(out / "proposals.csv", proposals, feature_set)
    io.write_json(out / "metrics.json", pooled)
    return out, pooled


def main(argv: Sequence[str] | None = None) -> int:
    from pwes.protocol import metrics_json_line, summary_line
    from pwes.train import quiet_libraries

    parser = argparse.ArgumentParser(prog="python -m pwes.rescore", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run folder (config.yaml beside fold-*/)")
    parser.add_argument("overrides", nargs="*", help="proposals.KEY=VALUE / evaluation.KEY=VALUE (Hydra syntax)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN_DIR-rescored-<hash of the overrides>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    quiet_libraries()
    try:
        out, pooled = rescore(args.run_dir, args.overrides, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or args.run_dir}: {err.strerror or type(err).__name__}", file=sys.stderr)
        return 2
    log.info("re-scored into %s: %s", out, summary_line(pooled))
    print(metrics_json_line(pooled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
