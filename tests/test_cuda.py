"""The CUDA path against the CPU path: training with ``trainer=gpu`` (32-bit and bf16 mixed
precision), I3D features on the GPU, and ``pwes.spot --device cuda``.

Skipped where torch sees no CUDA device (CI, the CPU machines). On a GPU machine:
``python -m pytest tests/test_cuda.py`` (``PYTHONPATH=src`` where pwes is not installed).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pwes.synthetic import ensure_synthetic

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

QUICK = ["dataset=synthetic_tiny", "fold=s01", "trainer.max_steps=12", "dataset.pretrain_steps=6", "trainer.enable_progress_bar=false", "logger=csv"]


def run_module(home: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PWES_HOME": str(home), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=home, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def gpu_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CUDA fold in full and in bf16 mixed precision, and the same fold on the CPU."""
    home = tmp_path_factory.mktemp("home")
    folds = {}
    for name, extra in {"gpu": ["trainer=gpu"], "bf16": ["trainer=gpu", "trainer.precision=bf16-mixed"], "cpu": ["trainer.accelerator=cpu"]}.items():
        proc = run_module(home, "pwes.train", *QUICK, *extra, f"run_name={name}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        device = "cpu" if name == "cpu" else "cuda:0"
        assert f"for 12 steps on {device}," in proc.stdout + proc.stderr  # the fold's log line names its device
        folds[name] = home / "outputs" / "runs" / "synthetic_tiny" / name / "fold-s01"
    folds["home"] = home
    return folds


@pytest.mark.parametrize("name", ["gpu", "bf16"])
def test_a_gpu_fold_writes_finite_results_and_a_checkpoint_the_cpu_loads(gpu_runs: dict[str, Path], name: str) -> None:
    fold = gpu_runs[name]
    metrics = json.loads((fold / "metrics.json").read_text())
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    checkpoint = torch.load(fold / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    weights = [v for v in checkpoint["state_dict"].values() if v.is_floating_point()]
    assert weights and all(torch.isfinite(w).all() for w in weights)
    assert all(w.dtype == torch.float32 for w in weights)  # mixed precision keeps float32 weights


def test_gpu_and_cpu_training_start_from_the_same_model(gpu_runs: dict[str, Path]) -> None:
    """Same seed, same initial network: after 12 steps the weights differ only by float noise."""
    gpu = torch.load(gpu_runs["gpu"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    cpu = torch.load(gpu_runs["cpu"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert gpu.keys() == cpu.keys()
    worst = max(float((gpu[k] - cpu[k]).abs().max()) for k in gpu if gpu[k].is_floating_point())
    assert worst < 5e-2, f"GPU and CPU weights differ by up to {worst} after 12 steps"


def test_spot_on_cuda_gives_the_cpu_intervals(gpu_runs: dict[str, Path]) -> None:
    home = gpu_runs["home"]
    root = ensure_synthetic(home / ".cache" / "synthetic", "tiny", 0)
    checkpoint = gpu_runs["gpu"] / "checkpoints" / "last.ckpt"
    results = {}
    for device in ("cuda", "cpu"):
        out = home / f"spot_{device}"
        proc = run_module(home, "pwes.spot", str(root), "--ckpt", str(checkpoint), "--out", str(out), "--device", device, "--no-plot", "--threshold=-1e9")
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[device] = {p.name: list(csv.DictReader(p.open())) for p in sorted(out.glob("*.csv"))}
    assert results["cuda"].keys() == results["cpu"].keys() and results["cuda"]
    for name, rows in results["cuda"].items():
        cpu_rows = results["cpu"][name]
        # TF32 and kernel order may swap near-tied candidates; the kept intervals must agree
        same = {(r["onset"], r["offset"], r["type"]) for r in rows} & {(r["onset"], r["offset"], r["type"]) for r in cpu_rows}
        assert len(same) >= 0.9 * max(len(rows), len(cpu_rows)), name


def test_i3d_features_on_cuda_match_the_cpu() -> None:
    from test_extract import random_state_dict

    from pwes.extract.i3d import STREAM_CHANNELS, InceptionI3d

    for seed, (stream, channels) in enumerate(STREAM_CHANNELS.items()):
        model = InceptionI3d(channels)
        model.load_state_dict(random_state_dict(stream, seed))
        model.eval()
        clip = torch.rand(2, channels, 8, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        with torch.inference_mode():
            cpu = model.extract_features(clip)
            gpu = model.to("cuda").extract_features(clip.to("cuda")).cpu()
        scale = float(cpu.abs().max()) or 1.0
        assert cpu.shape == gpu.shape
        np.testing.assert_allclose(gpu.numpy() / scale, cpu.numpy() / scale, atol=1e-2)
