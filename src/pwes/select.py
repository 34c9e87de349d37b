"""Nested selection: choose a setting per outer fold from validation figures only, report test.

    python -m pwes.select MULTIRUN_DIR [MULTIRUN_DIR ...] [--by val_f1] [--out DIR]

For a sweep whose jobs ran with the validation split (``evaluation.validation_subjects`` > 0),
every outer (test) fold picks the setting whose ``--by`` figure (a ``val_*`` key of the fold's
``metrics.json``) is highest **on that fold's validation subjects**. Ties go to the setting that
comes first in the sweep's job order (Hydra numbers jobs in the order the values are listed, so
listing the default first makes a tie keep the default). The chosen (fold, setting) pairs are then
pooled exactly as a run pools its folds (:func:`pwes.scoring.pool_folds`: counts summed, all
three operating points), so the test figure is reported, never used to choose.

A setting is a job's overrides other than ``seed``, ``fold`` and the settings that cannot change
results (``sweep_name``, ``logger``, ...; :func:`pwes.run_config.result_neutral`): jobs of a fold
sweep that differ only in ``fold`` form one setting. Several multirun folders are one sweep, their
jobs in the order the folders are given (one-at-a-time changes of different settings cannot be
one Hydra grid: run each as its own multirun, the default first). Jobs that differ in ``seed`` are
selected separately, one result per seed (``<out>/seed=<s>/``). Refused, one line each: a job without validation figures,
jobs whose folds held out different validation subjects, jobs with another test matching rule
(``evaluation.iou_threshold``, ``class_agnostic``, ``one_to_many``, ``iou_plus_one``) or another
dataset, a ``--by`` that is not a validation figure, one fold of one setting found in two jobs. Folds that not every setting finished are
left out (and named). Output (default ``MULTIRUN_DIR/selected-<by>/``): ``metrics.json`` (with
``selected``: fold -> setting), ``proposals.csv`` and ``selection.json`` (per setting: how often
chosen and its pooled validation figures).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from pwes import io
from pwes.config import ConfigError
from pwes.results.collect import ReportError, read_overrides
from pwes.run_config import result_neutral

MATCH_KEYS = ("iou_threshold", "class_agnostic", "one_to_many", "iou_plus_one")  # the test rule: equal in every job
NOT_A_SETTING = ("seed", "fold")


class SelectionError(ConfigError):
    """The sweep cannot be selected over; the message names the job, fold or option."""


@dataclass
class Setting:
    """One setting of the sweep: its label, first job position, config and finished folds."""

    label: str
    order: int
    config: dict[str, Any]
    folds: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders (``.hydra/overrides.yaml`` beside ``config.yaml``) in job order:
    by the job number Hydra puts first in the folder name (``3`` or ``3_key=value,...``)."""
    if not sweep_dir.is_dir():
        raise SelectionError(f"{sweep_dir}: folder not found")
    jobs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml") if (p.parent.parent / "config.yaml").is_file()]
    if not jobs:
        raise SelectionError(f"{sweep_dir}: no finished Hydra jobs (subfolders with .hydra/overrides.yaml and config.yaml)")
    def number(job: Path) -> tuple[int, int, str]:
        head = job.name.split("_", 1)[0]
        return (0, int(head), job.name) if head.isdigit() else (1, 0, job.name)

    return sorted(jobs, key=number)


def collect_settings(sweep_dirs: Path | Sequence[Path]) -> dict[str, dict[str, Setting]]:
    """Settings by seed (``""`` when the sweep has no seed override), each with its folds; the
    jobs of several folders in the order given."""
    dirs = [sweep_dirs] if isinstance(sweep_dirs, Path) else list(sweep_dirs)
    jobs = [job for d in dirs for job in job_dirs(d)]
    overrides: dict[Path, dict[str, str]] = {}
    for job in jobs:
        try:
            overrides[job] = read_overrides(job / ".hydra" / "overrides.yaml")
        except ReportError as err:
            raise SelectionError(str(err)) from None
    varying = [
        k for k in dict.fromkeys(k for o in overrides.values() for k in o)
        if k not in NOT_A_SETTING and not result_neutral(k) and len({o.get(k) for o in overrides.values()}) > 1
    ]
    by_seed: dict[str, dict[str, Setting]] = {}
    for order, job in enumerate(jobs):
        # a job that overrides none of the swept keys runs their defaults
        label = ",".join(f"{k}={overrides[job][k]}" for k in varying if k in overrides[job]) or ("(the defaults)" if varying else "(the sweep's only setting)")
        seed = overrides[job].get("seed", "")
        try:
            config = yaml.safe_load((job / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SelectionError(f"{job / 'config.yaml'}: unreadable ({type(err).__name__})") from None
        setting = by_seed.setdefault(seed, {}).setdefault(label, Setting(label, order, config))
        for metrics_path in sorted(job.glob("fold-*/metrics.json")):
            subject = metrics_path.parent.name.removeprefix("fold-")
            metrics = io.read_json_object(metrics_path, SelectionError)
            if subject in setting.folds:
                raise SelectionError(
                    f"fold {subject} of setting {label!r}{f' (seed {seed})' if seed else ''} is in two jobs, {setting.folds[subject].parent} and {job}, "
                    "which differ only in settings that do not change results: give one of them"
                )
            if "val_tp" not in metrics:
                raise SelectionError(f"{metrics_path}: no validation figures (val_*): run the sweep with evaluation.validation_subjects > 0")
            setting.folds[subject], setting.metrics[subject] = metrics_path.parent, metrics
    return by_seed


def check_comparable(settings: Sequence[Setting]) -> None:
    """Same dataset and test matching rule in every setting, else the pooled test figures differ in kind."""
    first = settings[0]
    for setting in settings[1:]:
        for key in ("dataset.name", *(f"evaluation.{k}" for k in MATCH_KEYS)):
            a, b = (OmegaConf.select(OmegaConf.create(s.config), key) for s in (first, setting))
            if a != b:
                raise SelectionError(f"settings {first.label!r} and {setting.label!r} differ in {key} ({a} vs {b}): their test figures cannot be pooled together")


def choose(settings: Sequence[Setting], by: str) -> tuple[dict[str, Setting], list[str]]:
    """Per fold the setting with the highest ``by`` on that fold's validation subjects (ties: the
    first in job order), over the folds every setting finished; and the folds left out."""
    common = set.intersection(*(set(s.folds) for s in settings))
    every = set.union(*(set(s.folds) for s in settings))
    chosen: dict[str, Setting] = {}
    for subject in sorted(common):
        splits = {tuple(s.metrics[subject].get("val_subjects") or ()) for s in settings}
        if len(splits) > 1:
            raise SelectionError(f"fold {subject}: the settings held out different validation subjects ({' vs '.join(map(str, sorted(splits)))}): their validation figures are not comparable")
        ordered = sorted(settings, key=lambda s: s.order)
        values: list[float] = []
        for s in ordered:
            value = s.metrics[subject].get(by)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SelectionError(f"{s.folds[subject] / 'metrics.json'}: no number {by}")
            values.append(float(value))
        chosen[subject] = ordered[values.index(max(values))]  # index(): the first of equals
    return chosen, sorted(every - common)


def selectable_figures() -> list[str]:
    """The ``--by`` choices: the validation ratios of every fold's metrics.json."""
    from pwes.scoring import VALIDATION_KEYS

    return [f"{prefix}{k}" for prefix in ("val_", "val_all_") for k in VALIDATION_KEYS if k.endswith(("recall", "precision", "f1"))]


def select(sweep_dirs: Path | Sequence[Path], by: str = "val_f1", out: Path | None = None) -> dict[str, dict[str, Any]]:
    """Run the nested selection over one multirun folder or several taken as one sweep (``out``
    required then); returns the pooled figures per seed (key ``""`` without seeds)."""
    from pwes.protocol import resolve_feature_set
    from pwes.scoring import match_config, pool_folds, pooled_validation, write_proposals

    if by not in selectable_figures():
        raise SelectionError(f"--by {by}: must be a validation figure ({', '.join(selectable_figures())}); test-fold figures are never used to choose")
    dirs = [sweep_dirs] if isinstance(sweep_dirs, Path) else list(sweep_dirs)
    if not dirs:
        raise SelectionError("no multirun folder given")
    if out is None:
        if len(dirs) > 1:
            raise SelectionError(f"{len(dirs)} multirun folders: give --out, the folder for the selection's results")
        out = dirs[0] / f"selected-{by}"
    sweep = str(dirs[0]) if len(dirs) == 1 else [str(d) for d in dirs]
    results: dict[str, dict[str, Any]] = {}
    for seed, by_label in collect_settings(dirs).items():
        settings = sorted(by_label.values(), key=lambda s: s.order)
        check_comparable(settings)
        chosen, left_out = choose(settings, by)
        if not chosen:
            raise SelectionError(f"{', '.join(map(str, dirs))}: no fold finished by every setting{f' (seed {seed})' if seed else ''}")
        cfg = OmegaConf.create(settings[0].config)
        feature_set = resolve_feature_set(cfg)
        order = [s for s in feature_set.subjects if s in chosen]
        metrics, proposals = pool_folds([chosen[s].folds[s] for s in order], feature_set, match_config(cfg))
        metrics.update(selected={s: chosen[s].label for s in order}, selection_by=by, folds_left_out=left_out)
        counts = Counter(chosen[s].label for s in order)
        summary = {
            s.label: {"chosen": counts.get(s.label, 0), **{k: v for k, v in pooled_validation([s.metrics[f] for f in order]).items()}}
            for s in settings
        }
        where = out / f"seed={seed}" if seed else out
        write_proposals(where / "proposals.csv", proposals, feature_set)
        io.write_json(where / "selection.json", {"by": by, "sweep": sweep, "selected": metrics["selected"], "settings": summary, "folds_left_out": left_out})
        io.write_json(where / "metrics.json", metrics)
        results[seed] = {"metrics": metrics, "settings": summary, "where": str(where), "chosen": {s: (chosen[s].label, float(chosen[s].metrics[s][by])) for s in order}}
    return results


def report_lines(results: Mapping[str, Mapping[str, Any]], by: str) -> list[str]:
    lines: list[str] = []
    for seed, result in results.items():
        metrics = result["metrics"]
        head = f"seed {seed}: " if seed else ""
        lines.append(f"{head}per fold, the setting with the best {by} on its validation subjects:")
        lines += [f"  {fold}: {label} ({by} {value:.3f})" for fold, (label, value) in result["chosen"].items()]
        if metrics["folds_left_out"]:
            lines.append(f"  left out (not finished by every setting): {', '.join(metrics['folds_left_out'])}")
        lines.append(f"| setting | times chosen | pooled {by} | pooled val_all_f1 |")
        lines.append("|---|---|---|---|")
        lines += [f"| {label} | {row['chosen']} | {row.get(by, float('nan')):.3f} | {row['val_all_f1']:.3f} |" for label, row in result["settings"].items()]
        lines.append(
            f"{head}test figures of the selection ({metrics['num_folds']} folds; reported, not used to choose): "
            f"calibrated F1 {metrics.get('calibrated_f1', float('nan')):.3f} (REC {metrics.get('calibrated_recall', float('nan')):.3f}, "
            f"PRE {metrics.get('calibrated_precision', float('nan')):.3f}), all F1 {metrics['f1']:.3f}, best-on-test† F1 {metrics['f1_p']:.3f} -> {result['where']}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pwes.select", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+", metavar="MULTIRUN_DIR", help="a multirun folder whose jobs ran with evaluation.validation_subjects > 0; several are one sweep, jobs in the order given (--out needed)")
    parser.add_argument("--by", default="val_f1", help="the validation figure to maximise per fold (default val_f1)")
    parser.add_argument("--out", type=Path, help="output folder (default MULTIRUN_DIR/selected-<by> for one folder)")
    args = parser.parse_args(argv)
    try:
        results = select(args.sweep_dirs, args.by, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or args.sweep_dirs[0]}: {err.strerror or type(err).__name__}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(results, args.by)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
