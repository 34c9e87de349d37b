"""The README's spotting example: the checkpoint path it shows is the folder its training command
writes (named by the same code that names run folders), and that command's shape, run on a
tiny CAS(ME)^2-configured set, writes the checkpoint there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import conftest

from pwes.config import CONFIG_DIR, folder_name

README = (CONFIG_DIR.parent / "README.md").read_text(encoding="utf-8")


def documented_pair() -> tuple[list[str], str]:
    """The overrides of the README's `fold=none` training line before `pwes.spot`, and the
    checkpoint path its `pwes.spot --ckpt` shows."""
    block = README[README.index("## Spotting in new recordings"):]
    train = re.search(r"python -m pwes\.train (.+?)\s+#", block)
    ckpt = re.search(r"python -m pwes\.spot --ckpt (\S+)", block)
    assert train and ckpt
    return shlex.split(train.group(1)), ckpt.group(1)


def checkpoint_path(overrides: list[str]) -> str:
    """Where `python -m pwes.train <overrides>` (fold=none) writes its model, relative to the
    working folder: the run folder Hydra names from the overrides (conf/hydra/default.yaml)."""
    cfg = conftest.compose_train(overrides, with_hydra=True)
    name = folder_name(cfg.hydra.overrides.task)
    return f"outputs/runs/{cfg.dataset.name}/{name}/model/checkpoints/last.ckpt"


def test_the_readme_spot_path_is_where_its_training_command_writes() -> None:
    overrides, documented = documented_pair()
    assert "fold=none" in overrides
    assert documented == checkpoint_path(overrides)


def test_the_documented_command_shape_writes_that_checkpoint(tmp_path: Path) -> None:
    root = conftest.make_feature_set(tmp_path / "casme2_set")
    overrides, _ = documented_pair()
    overrides = [o if not o.startswith("dataset.root=") else f"dataset.root={root}" for o in overrides]
    quick = ["trainer.max_steps=2", "dataset.pretrain_steps=1", "logger=none", "model.network.stream_dim=8", "model.network.fused_dim=8", "model.network.attention_dim=8"]
    env = {**os.environ, "PWES_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pwes.train", *overrides, *quick], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = tmp_path / checkpoint_path([*overrides, *quick])
    assert expected.is_file() and expected.stat().st_size > 0, proc.stdout[-2000:]
    assert f"model trained on every subject: {expected}" in proc.stdout + proc.stderr
