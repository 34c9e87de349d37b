"""Run and multirun folder names come from the one list of result-neutral settings
(pwes.run_config): a command that differs only in where its data lives (``dataset.root``), its
paths or its logger finds the same folder, and a moved copy of the data resumes it, finished folds
kept; other data at another dataset.root is refused with the way to a separate folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser

import conftest
from pwes.config import run_name_from_overrides
from pwes.run_config import comparable_config, folder_name_overrides, result_neutral

# What conf/hydra/default.yaml excluded from folder names before pwes.run_config decided it
# (Hydra's exclude_keys, exact keys): folders of commands without a newly excluded key keep their names.
OLD_EXCLUDE_KEYS = ["resume", "print_metrics", "logger", "logger.offline", "trainer.enable_progress_bar", "trainer.accelerator", "hydra.launcher.n_jobs", "sweep_name", "run_name", "experiment"]


def names(overrides: list[str]) -> tuple[str, str, str]:
    """(run folder name, multirun folder, job subfolder) that the composed config gives."""
    from omegaconf import open_dict

    cfg = conftest.compose_train(overrides, with_hydra=True)
    with open_dict(cfg):
        cfg.hydra.job.num = 0  # as Hydra sets it for a multirun's first job
    HydraConfig.instance().set_config(cfg)
    return str(cfg.run_name), Path(str(cfg.hydra.sweep.dir)).name, str(cfg.hydra.sweep.subdir)


def old_name(overrides: list[str]) -> str:
    """The folder name Hydra's override_dirname with the old exclude_keys gave."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return run_name_from_overrides(",".join(sorted(o.input_line for o in parsed if o.key_or_group not in OLD_EXCLUDE_KEYS)))


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["fold=s01", "seed=3"],
        ["logger=csv", "resume=false", "callbacks.mplg.threshold=0.5", "trainer.enable_progress_bar=false"],
        ["experiment=table1", "dataset=casme2", "sweep_name=abc", "run_name=x"],
        ["callbacks/contrastive=none", "+model.network.extra=1", "logger.offline=true", "trainer.accelerator=cpu"],
    ],
)
def test_names_without_a_newly_excluded_setting_are_unchanged(overrides: list[str]) -> None:
    run, sweep, subdir = names(overrides)
    if "run_name=x" not in overrides:
        assert run == old_name(overrides)
    if "sweep_name=abc" not in overrides:
        assert sweep == old_name(overrides)
    assert subdir == f"0_{old_name(overrides)}"


def test_result_neutral_settings_do_not_name_the_folder() -> None:
    base = ["dataset=casme2", "fold=s01"]
    assert names(base)[0] == "dataset=casme2,fold=s01"
    for extra in (["dataset.root=/data/a"], ["dataset.root=/data/b", "paths.root_dir=/elsewhere"], ["~callbacks.diagnostics", "callbacks.grad_share.every_n_steps=5"], ["trainer.devices=1", "trainer.log_every_n_steps=7", "logger=none"]):
        assert names([*base, *extra])[:2] == ("dataset=casme2,fold=s01", "dataset=casme2,fold=s01"), extra
    assert names([*base, "callbacks.dfcl.temperature=0.5"])[0] == "callbacks.dfcl.temperature=0.5,dataset=casme2,fold=s01"


def test_the_folder_name_and_the_resume_check_share_one_list() -> None:
    # every setting the resume check ignores is left out of the name, and the other way round
    config = conftest.compose_train(["dataset=casme2", "dataset.root=/data/a"])
    from pwes.config import to_container

    flat = comparable_config(to_container(config))
    assert "dataset.root" not in flat and "dataset.fps" in flat and not any(k.startswith(("paths.", "logger.", "callbacks.diagnostics.")) for k in flat)
    for key in ("dataset.root", "paths.root_dir", "logger", "callbacks.grad_share.every_n_steps", "trainer.enable_progress_bar", "hydra/launcher"):
        assert result_neutral(key) and folder_name_overrides([f"{key}=1"]) == ""
    for key in ("dataset.fps", "trainer.max_steps", "callbacks.mplg.threshold", "seed", "dataset"):
        assert not result_neutral(key) and folder_name_overrides([f"{key}=1"]) == f"{key}=1"


QUICK = ["dataset=casme2", "trainer.max_steps=2", "dataset.pretrain_steps=1", "logger=none", "trainer.enable_progress_bar=false",
         "model.network.stream_dim=8", "model.network.fused_dim=8", "model.network.attention_dim=8"]


def train(home: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PWES_HOME": str(home), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "pwes.train", *QUICK, f"dataset.root={root}", *extra], cwd=home, env=env, capture_output=True, text=True, timeout=600)


def test_moved_data_resumes_its_run_folder_and_other_data_is_refused(tmp_path: Path) -> None:
    first = conftest.make_feature_set(tmp_path / "data_a")
    proc = train(tmp_path, first)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tmp_path / "outputs" / "runs" / "casme2"
    run_dir = runs / run_name_from_overrides(folder_name_overrides(QUICK))
    assert [p.name for p in runs.iterdir()] == [run_dir.name] and "dataset.root" not in run_dir.name
    folds = sorted(p.parent.name for p in run_dir.glob("fold-*/metrics.json"))
    assert folds == ["fold-s1", "fold-s2", "fold-s3"]
    kept = {p: p.stat().st_mtime_ns for p in run_dir.glob("fold-*/*") if p.is_file()} | {p: p.stat().st_mtime_ns for p in run_dir.glob("fold-*/checkpoints/*.ckpt")}
    pooled = json.loads((run_dir / "metrics.json").read_text())

    # the same data elsewhere (fresh file times, so the hashes are taken again), the old place gone
    moved = tmp_path / "data_b"
    shutil.copytree(first, moved, copy_function=shutil.copy)
    shutil.rmtree(first)
    proc = train(tmp_path, moved)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert all(f"fold {s}: finished earlier, kept" in out for s in ("s1", "s2", "s3")), out[-3000:]
    assert [p.name for p in runs.iterdir()] == [run_dir.name]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # nothing retrained or rewritten in the folds
    assert json.loads((run_dir / "metrics.json").read_text()) == pooled
    assert json.loads((run_dir / "fingerprint.json").read_text())["root"] == str(moved)

    # other data at another dataset.root: refused, saying how to get a separate folder
    other = conftest.make_feature_set(tmp_path / "data_c", seed=1)
    proc = train(tmp_path, other)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"it was trained on {first}, this command reads dataset.root={other}" in errors[0]  # the fold's own record
    assert "dataset.root does not name the run folder" in errors[0] and "run_name=NEW" in errors[0]
    assert "features of video 'a1'" in errors[0]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
