"""The calibrated threshold through the whole protocol: training the same model on two feature
sets that differ only in onset/offset (apex points) stores the same threshold."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pwes.synthetic import ensure_synthetic


def shifted_copy(source: Path, target: Path) -> Path:
    """``source`` with every onset moved one frame earlier and every offset one frame later
    (where the video allows), apexes and types unchanged."""
    shutil.copytree(source, target)
    frames = {r["video"]: int(r["num_frames"]) for r in csv.DictReader((source / "videos.csv").open())}
    rows = list(csv.DictReader((source / "annotations.csv").open()))
    changed = 0
    for row in rows:
        onset, offset = int(row["onset"]), int(row["offset"])
        row["onset"] = str(max(0, onset - 1))
        row["offset"] = str(min(frames[row["video"]] - 1, offset + 1))
        changed += (row["onset"], row["offset"]) != (str(onset), str(offset))
    assert changed and all(r["apex"] not in ("", "-1") for r in rows)
    with (target / "annotations.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.slow
def test_onset_offset_do_not_reach_the_stored_threshold(tmp_path: Path) -> None:
    original = ensure_synthetic(tmp_path / "cache", "tiny", 0)
    roots = {"original": original, "shifted": shifted_copy(original, tmp_path / "shifted")}
    env = {**os.environ, "PWES_HOME": str(tmp_path), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    stored, test_f1 = {}, {}
    for name, root in roots.items():
        overrides = [
            "dataset=synthetic_tiny", "~dataset.synthetic", f"dataset.root={root}", "data.points.mode=apex", "fold=s01",
            "trainer.max_steps=8", "dataset.pretrain_steps=4", "trainer.enable_progress_bar=false", "logger=none", f"run_name={name}",
        ]
        proc = subprocess.run([sys.executable, "-m", "pwes.train", *overrides], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        fold = tmp_path / "outputs" / "runs" / "synthetic_tiny" / name / "fold-s01"
        metadata = torch.load(fold / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["pwes"]
        metrics = json.loads((fold / "metrics.json").read_text())
        assert metadata["score_threshold_rule"] == "points"
        assert metrics["calibrated_threshold"] == (None if metadata["score_threshold"] == float("-inf") else metadata["score_threshold"])
        stored[name] = (metadata["score_threshold"], metrics["calibration_train_f1"])
        test_f1[name] = metrics["f1"]
    assert stored["original"] == stored["shifted"]
