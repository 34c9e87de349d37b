"""What a fold computed on, recorded with its figures (``compute_platform`` in ``metrics.json``):
the same seed gives the same numbers only on the same kind of processor. The math libraries pick
their kernels by processor (oneDNN and MKL by instruction set; cuDNN by GPU), and another kernel
sums floats in another order, so a run repeated on another machine differs in the last digits of
its weights and, through the thresholds, in its figures (README, "Same seed, same numbers")."""

from __future__ import annotations

from pathlib import Path

import torch

from pwes.precision import CPUINFO, native_bf16_flags


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The processor's model name from ``cpuinfo`` (``AMD EPYC``), or ``unknown CPU`` where it
    cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "unknown CPU"
    for line in text.splitlines():
        if line.startswith("model name"):
            return " ".join(line.split(":", 1)[-1].split()) or "unknown CPU"
    return "unknown CPU"


def compute_platform(device: torch.device, cpuinfo: Path = CPUINFO) -> str:
    """One line naming what decides the kernels: on a CPU the model, torch's instruction-set level
    and the native-bf16 flags (``AMD EPYC, AVX512, avx512_bf16, torch 2.13.0+cpu``); on a GPU its
    name and CUDA version."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, torch {torch.__version__}"
    if device.type != "cpu":
        return f"{device.type}, torch {torch.__version__}"
    parts = [cpu_model(cpuinfo), torch.backends.cpu.get_cpu_capability(), *native_bf16_flags(cpuinfo)]
    return ", ".join([*parts, f"torch {torch.__version__}"])
