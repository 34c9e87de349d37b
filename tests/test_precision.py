"""trainer=cpu_bf16 (pwes.precision): refused with one line where the processor has no native bf16;
where it has: training and the callbacks' clean forward in bf16, losses, pseudo labels, prediction
and saved weights in fp32, and two runs with one seed bit-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from hydra.errors import InstantiationException

from conftest import compose_train
from pwes.callbacks import MPLGCallback
from pwes.config import ConfigError
from pwes.precision import native_bf16_flags
from tiny_model import QUIET, batches, loader, make_module, synthetic_videos

NATIVE = bool(native_bf16_flags())
needs_bf16 = pytest.mark.skipif(not NATIVE, reason="this processor has no native bf16")
pytestmark = pytest.mark.filterwarnings(QUIET)


def fake_cpuinfo(path: Path, flags: str) -> Path:
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu sse2 {flags}\n")
    return path


def test_native_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    assert native_bf16_flags(fake_cpuinfo(tmp_path / "a", "avx512f avx512_bf16 amx_bf16")) == ["avx512_bf16", "amx_bf16"]
    assert native_bf16_flags(fake_cpuinfo(tmp_path / "b", "avx512f avx2")) == []
    assert native_bf16_flags(tmp_path / "missing") == []


def test_no_native_bf16_is_refused_in_one_line(tmp_path: Path) -> None:
    cpuinfo = fake_cpuinfo(tmp_path / "cpuinfo", "avx512f avx2")
    cfg = compose_train(["trainer=cpu_bf16", f"trainer.cpuinfo={cpuinfo}"])
    with pytest.raises(InstantiationException) as caught:
        hydra.utils.instantiate(cfg.trainer, logger=False)
    assert isinstance(caught.value.__cause__, ConfigError)
    assert str(caught.value.__cause__) == (
        f"trainer=cpu_bf16: this processor has no native bf16 (avx512_bf16 / amx_bf16 not in {cpuinfo}), "
        "where bf16 is emulated and slower than fp32; use the default trainer"
    )


def test_cli_refuses_without_native_bf16_with_exit_2(tmp_path: Path) -> None:
    cpuinfo = fake_cpuinfo(tmp_path / "cpuinfo", "avx2")
    env = {**os.environ, "PWES_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "logger=none", "trainer=cpu_bf16", f"trainer.cpuinfo={cpuinfo}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: trainer=cpu_bf16: this processor has no native bf16 (avx512_bf16 / amx_bf16 not in {cpuinfo}), where bf16 is emulated and slower than fp32; use the default trainer"]
    assert "Traceback" not in proc.stderr


class DtypeSpy(MPLGCallback):
    """MPLG after step 2, recording the dtype of the fusion conv's output per forward and of the
    clean outputs the pseudo labels are made from."""

    def __init__(self) -> None:
        super().__init__(start_step=2)
        self.conv: list[tuple[bool, torch.dtype]] = []
        self.clean: list[torch.dtype] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        pl_module.network.fusion.conv.register_forward_hook(lambda m, i, o: self.conv.append((m.training, o.dtype)))

    def pseudo_targets(self, output, batch):
        self.clean.append(output.tcam.dtype)
        return super().pseudo_targets(output, batch)


@needs_bf16
def test_bf16_trains_in_bf16_and_predicts_and_saves_in_fp32(tmp_path: Path) -> None:
    cfg = compose_train(["trainer=cpu_bf16", "trainer.max_steps=4"])
    spy = DtypeSpy()
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[spy], enable_progress_bar=False, default_root_dir=str(tmp_path))
    assert trainer.precision == "bf16-mixed"
    module = make_module()
    data = batches(synthetic_videos(8, 0)[0])
    trainer.fit(module, loader(data))
    assert (True, torch.bfloat16) in spy.conv and (False, torch.bfloat16) in spy.conv  # training and clean forwards
    assert spy.clean and set(spy.clean) == {torch.float32}  # pseudo labels see fp32
    spy.conv.clear()
    predictions = trainer.predict(module, loader(data))
    assert {dtype for _, dtype in spy.conv} == {torch.float32}
    assert predictions[0][0].tcam.dtype.name == "float32"
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    state = torch.load(tmp_path / "m.ckpt", weights_only=False)["state_dict"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}


@pytest.mark.slow  # 61 s: two whole bf16 trainings
@needs_bf16
def test_two_bf16_runs_with_one_seed_are_bit_identical(tmp_path: Path) -> None:
    def run(name: str) -> tuple[dict, bytes, dict]:
        env = {**os.environ, "PWES_HOME": str(tmp_path)}
        cmd = [sys.executable, "-m", "pwes.train", "dataset=synthetic_tiny", "fold=s01", "trainer.max_steps=12", "dataset.pretrain_steps=6",
               "trainer.enable_progress_bar=false", "logger=none", "trainer=cpu_bf16", f"run_name={name}"]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        fold = tmp_path / "outputs" / "runs" / "synthetic_tiny" / name / "fold-s01"
        state = torch.load(fold / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        metrics = {k: v for k, v in json.loads((fold / "metrics.json").read_text()).items() if k != "train_seconds"}
        return metrics, (fold / "proposals.csv").read_bytes(), state

    first, second = run("a"), run("b")
    assert first[0] == second[0] and first[1] == second[1]
    assert first[2].keys() == second[2].keys() and all(torch.equal(first[2][k], second[2][k]) for k in first[2])
    assert len(first[1].splitlines()) > 1  # there are proposals to compare
