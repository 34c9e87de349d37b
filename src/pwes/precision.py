"""bf16 mixed precision on CPU (``trainer=cpu_bf16``): the check that the processor computes bf16
natively, and the Trainer factory conf/trainer/cpu_bf16.yaml names.

Without native bf16 (AVX512-BF16 or AMX-BF16) torch emulates it and a step is slower than in fp32,
so the setting is refused there with one line instead of silently running slower. Training steps
and the callbacks' clean forward run under ``torch.autocast(bfloat16)`` (weights, Adam and the
losses stay fp32: ``PWESModule`` casts the network's outputs to fp32 before any loss, pseudo
label or memory bank sees them). Prediction runs in fp32 (:class:`TrainInBF16`), so the scores the
proposals rank and the calibrated threshold are not rounded to bf16's 8 bits; the saved weights
are fp32 either way, and ``pwes.spot`` loads them as any other checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.plugins.precision import MixedPrecision

from pwes.config import ConfigError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def native_bf16_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The native-bf16 instruction flags this processor reports (empty when none, or when
    ``cpuinfo`` cannot be read, e.g. not on Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return [flag for flag in BF16_FLAGS if flag in flags]


class TrainInBF16(MixedPrecision):
    """``bf16-mixed`` on the CPU for training; prediction in fp32 (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("bf16-mixed", "cpu")

    @contextlib.contextmanager
    def predict_step_context(self) -> Generator[None, None, None]:
        yield


def cpu_bf16_trainer(cpuinfo: Path = CPUINFO, **kwargs: Any) -> L.Trainer:
    """A ``lightning.Trainer`` training in bf16 on the CPU; a :class:`ConfigError` (one line)
    unless ``accelerator`` is ``cpu``, ``precision`` is ``bf16-mixed`` and the processor has
    native bf16."""
    accelerator, precision = kwargs.pop("accelerator", "cpu"), kwargs.pop("precision", "bf16-mixed")
    if accelerator != "cpu":
        raise ConfigError(f"trainer=cpu_bf16: trainer.accelerator must be cpu, got {accelerator!r} (for a GPU use trainer=gpu)")
    if precision != "bf16-mixed":
        raise ConfigError(f"trainer=cpu_bf16: trainer.precision must be bf16-mixed, got {precision!r} (for fp32 use trainer=default)")
    if not native_bf16_flags(Path(cpuinfo)):
        raise ConfigError(
            f"trainer=cpu_bf16: this processor has no native bf16 ({' / '.join(BF16_FLAGS)} not in {cpuinfo}), "
            "where bf16 is emulated and slower than fp32; use the default trainer"
        )
    return L.Trainer(accelerator="cpu", plugins=[TrainInBF16()], **kwargs)
