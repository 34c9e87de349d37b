"""`python -m pwes.spot`: a briefly trained model finds intervals in a synthetic video's features."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pwes.io import save_npz


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A model trained on every subject of the tiny preset (fold=none) and its feature set."""
    home = tmp_path_factory.mktemp("spot")
    env = {**os.environ, "PWES_HOME": str(home)}
    proc = run([sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "fold=none", "logger=none", "trainer.max_steps=15", "dataset.pretrain_steps=5", "trainer.enable_progress_bar=false", "run_name=all"], home, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = home / "outputs/runs/synthetic_tiny/all/model/checkpoints/last.ckpt"
    data = next((home / ".cache" / "synthetic").glob("tiny-*"))
    return ckpt, data, env


def test_spot_writes_intervals_and_plot(trained, tmp_path: Path) -> None:
    ckpt, data, env = trained
    video = sorted((data / "features").glob("*.npz"))[0]
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(video), "--out", str(tmp_path / "out"), "--threshold", "-100"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    name = video.stem
    rows = list(csv.DictReader(open(tmp_path / "out" / f"{name}.csv")))
    info = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert rows and len(rows) == len(info["intervals"])
    videos = {r["video"]: r for r in csv.DictReader(open(data / "videos.csv"))}
    num_frames, fps = int(videos[name]["num_frames"]), float(videos[name]["fps"])
    assert info["num_frames"] == num_frames and info["fps"] == fps and not info["num_frames_estimated"]
    for row in rows:
        onset, offset = int(row["onset"]), int(row["offset"])
        assert 0 <= onset <= offset < num_frames
        assert row["type"] == ("ME" if (offset - onset + 1) / fps <= 0.5 else "MaE")
        assert float(row["onset_s"]) == pytest.approx(onset / fps, abs=1e-3)
    png = (tmp_path / "out" / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert f"{name}: {len(rows)} interval(s)" in proc.stdout


def test_default_threshold_comes_from_training(trained, tmp_path: Path) -> None:
    ckpt, data, env = trained
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(data), "--out", str(tmp_path / "out"), "--no-plot"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 6  # every video of the feature-set folder
    thresholds = {json.loads(f.read_text())["score_threshold"] for f in files}
    assert len(thresholds) == 1


def test_wrong_width_and_fps_are_refused(trained, tmp_path: Path) -> None:
    ckpt, _, env = trained
    wide = tmp_path / "wide.npz"
    save_npz(wide, rgb=np.zeros((20, 32), np.float32), flow=np.zeros((20, 32), np.float32))
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(wide), "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "feature widths rgb=32, flow=32 but the checkpoint was trained on rgb=16, flow=16" in proc.stderr
    ok = tmp_path / "ok.npz"
    save_npz(ok, rgb=np.ones((20, 16), np.float32), flow=np.ones((20, 16), np.float32))
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(ok), "--fps", "200", "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "200 fps but the model was trained at 30 fps" in proc.stderr
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(ok), "--fps", "200", "--fps-mismatch", "warn", "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 0 and "warning:" in proc.stderr and (tmp_path / "o" / "ok.csv").exists()


def test_unreadable_inputs(trained, tmp_path: Path) -> None:
    ckpt, _, env = trained
    bad = tmp_path / "bad.npz"
    bad.write_text("not an archive")
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(bad), "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "bad.npz" in proc.stderr and "Traceback" not in proc.stderr
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(tmp_path / "none.ckpt"), str(bad), "--out", str(tmp_path / "o")], tmp_path, env)
    assert proc.returncode == 2 and "none.ckpt: checkpoint not found" in proc.stderr


@pytest.mark.slow
def test_spot_in_a_video_runs_extraction_first(tmp_path: Path) -> None:
    """A model trained on 1024-d features spots directly in an .avi, extraction (random I3D) first."""
    import cv2
    import torch

    from pwes.extract.i3d import InceptionI3d

    env = {**os.environ, "PWES_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = run([sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "+dataset.synthetic.overrides.feature_dim=1024", "fold=none", "logger=none", "trainer.max_steps=4", "dataset.pretrain_steps=2", "trainer.enable_progress_bar=false", "run_name=wide"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = tmp_path / "outputs/runs/synthetic_tiny/wide/model/checkpoints/last.ckpt"
    for stream, channels in (("rgb", 3), ("flow", 2)):
        torch.manual_seed(channels)
        torch.save(InceptionI3d(in_channels=channels).state_dict(), tmp_path / f"{stream}.pt")
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (80, 80))
    texture = (rng.random((80, 200, 3)) * 255).astype(np.uint8)
    for i in range(34):
        writer.write(np.ascontiguousarray(texture[:, 2 * i : 2 * i + 80]))
    writer.release()
    proc = run([sys.executable, "-m", "pwes.spot", "--ckpt", str(ckpt), str(tmp_path / "clip.avi"), "--rgb-weights", str(tmp_path / "rgb.pt"), "--flow-weights", str(tmp_path / "flow.pt"),
                "--resize", "64", "--crop-size", "64", "--threshold", "-100", "--out", str(tmp_path / "spots")], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "spots" / "clip.json").read_text())
    assert info["num_frames"] == 34 and info["fps"] == 30.0
    assert all(0 <= i["onset"] <= i["offset"] < 34 for i in info["intervals"])
    assert (tmp_path / "spots" / "clip.png").exists()
