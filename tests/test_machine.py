"""pwes.machine: the compute platform a fold records, from a hand-written cpuinfo."""

from __future__ import annotations

from pathlib import Path

import torch

from pwes.machine import compute_platform, cpu_model

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD  EPYC 9R14
flags\t\t: fpu avx2 avx512f avx512_bf16 sse
"""


def test_cpu_model_and_platform_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    assert cpu_model(info) == "AMD EPYC 9R14"  # runs of spaces collapsed
    line = compute_platform(torch.device("cpu"), info)
    assert line == f"AMD EPYC 9R14, {torch.backends.cpu.get_cpu_capability()}, avx512_bf16, torch {torch.__version__}"


def test_unreadable_cpuinfo_still_names_the_platform(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "missing") == "unknown CPU"
    assert compute_platform(torch.device("cpu"), tmp_path / "missing") == f"unknown CPU, {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}"
    (tmp_path / "no-model").write_text("processor\t: 0\n")
    assert cpu_model(tmp_path / "no-model") == "unknown CPU"
