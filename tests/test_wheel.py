"""The package works outside its checkout: a wheel built from the repository, installed into a
fresh virtual environment, finds its configs (conf/ and experiments/ ship inside the package),
runs the default training and composes an experiment. Slow (a wheel build and a short run)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "conf", "experiments")


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PWES_HOME", "VIRTUAL_ENV")}
    env.update(WANDB_MODE="offline", OMP_NUM_THREADS="1")
    return env


def copy_sources(target: Path) -> Path:
    """The tracked sources a build needs, copied (so the checkout gets no build/ or egg-info)."""
    target.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"), symlinks=True)
        else:
            shutil.copy(path, target / name)
    return target


def fresh_venv(venv: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A venv without pwes that sees this venv's dependencies (torch, hydra, ...) through a .pth
    file: a .pth's lines are not scanned for more .pth files, so the editable pwes stays invisible.
    Returns (its python, its site-packages)."""
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv.parent, env)
    python = venv / "bin" / "python"
    fresh_site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv.parent, env).stdout.strip())
    ours = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if Path(p).is_dir()]
    (fresh_site / "project_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return python, fresh_site


def install(python: Path, *args: str, env: dict[str, str], cwd: Path) -> None:
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", *args], cwd, env)


def locations(python: Path, cwd: Path, env: dict[str, str]) -> list[Path]:
    """Where the venv's pwes, its conf/ and its experiments/ are."""
    out = run([str(python), "-c", "import pwes, pwes.config as c; print(pwes.__file__); print(c.CONFIG_DIR); print(c.EXPERIMENTS_DIR)"], cwd, env).stdout.split()
    return [Path(p).resolve() for p in out]


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_trains_the_default_and_composes_an_experiment(tmp_path: Path) -> None:
    env = clean_env()
    source = copy_sources(tmp_path / "source")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ".", "-w", str(tmp_path / "dist")], source, env)
    wheel = next((tmp_path / "dist").glob("pwes-*.whl"))
    python, fresh_site = fresh_venv(tmp_path / "venv", env)
    install(python, str(wheel), env=env, cwd=tmp_path)

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    where = locations(python, cwd, env)
    assert all(p.is_relative_to(fresh_site.resolve()) for p in where), where  # the wheel's pwes, its own configs
    assert (where[1] / "train.yaml").is_file() and (where[2] / "table1.yaml").is_file()

    run([str(python), "-m", "pwes.train", "trainer.max_steps=4", "dataset.pretrain_steps=2", "logger=csv", "trainer.enable_progress_bar=false"], cwd, env)
    metrics = list((cwd / "outputs" / "runs" / "synthetic_small").glob("*/metrics.json"))
    assert len(metrics) == 1 and {"f1", "recall", "precision", "calibrated_f1"} <= set(json.loads(metrics[0].read_text()))

    # the experiment group (experiments/, no conf/experiment link) and the compose API (pwes.folds)
    hydra_cfg = run([str(python), "-m", "pwes.train", "experiment=table1", "--cfg", "hydra"], cwd, env).stdout
    assert "ablation: baseline,pplm,mplg,mplg_dfcl" in hydra_cfg
    job = run([str(python), "-m", "pwes.train", "experiment=table1", "--cfg", "job"], cwd, env).stdout
    assert "sweep_name: table1_${dataset.name}" in job
    folds = run([str(python), "-m", "pwes.folds", "dataset=synthetic_tiny"], cwd, env).stdout.strip()
    assert folds == "s01,s02,s03"


@pytest.mark.slow
def test_an_editable_install_reads_the_checkouts_configs(tmp_path: Path) -> None:
    env = clean_env()
    source = copy_sources(tmp_path / "checkout")
    python, fresh_site = fresh_venv(tmp_path / "venv", env)
    install(python, "-e", str(source), env=env, cwd=tmp_path)
    where = locations(python, tmp_path, env)
    assert where == [source / "src" / "pwes" / "__init__.py", source / "conf", source / "experiments"]
    assert not (source / "src" / "pwes" / "conf").exists()  # nothing copied into the package
    job = run([str(python), "-m", "pwes.train", "experiment=table4", "dataset=casme2", "dataset.root=/data/x", "--cfg", "job"], tmp_path, env).stdout
    assert "sweep_name: table4_${dataset.name}" in job
