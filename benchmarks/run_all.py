"""`make bench`: every benchmark in turn, printing figures (not pass/fail).

    python benchmarks/run_all.py [--skip memory extract] [--device cuda]

1. training iterations per second (bench_train.py) and the wall time of one LOSO fold of the
   embedded default (`python -m pwes.train fold=<first subject>`, Trainer included);
2. feature extraction frames per second, flow and I3D separately (bench_extract.py);
3. peak memory training on the CAS(ME)^3-sized synthetic set (bench_memory.py; generates ~2.4 GB
   into .cache/synthetic on first use);
4. the motion-energy baseline on each synthetic preset (motion_energy.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = ("train", "fold", "extract", "memory", "motion")


def run(title: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
    print(f"\n== {title}\n$ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        print(f"(exit {result.returncode})", flush=True)


def fold_wall_time(device: str) -> None:
    """Wall time of one fold of the default run, from process start to metrics.json."""
    print("\n== one LOSO fold of the embedded default (synthetic_small), end to end", flush=True)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PWES_HOME": home}
        cache = Path(".cache").resolve()
        if cache.exists():  # reuse the generated benchmark instead of generating it again
            os.symlink(cache, Path(home) / ".cache")
        cmd = [sys.executable, "-m", "pwes.train", "fold=s01", "logger=none", "trainer.enable_progress_bar=false", "run_name=bench"]
        if device == "cuda":
            cmd.append("trainer.accelerator=gpu")
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            return
        metrics = json.loads((Path(home) / "outputs/runs/synthetic_small/bench/fold-s01/metrics.json").read_text())
        print(f"  wall time, process start to results: {wall:.1f} s (training and prediction: {metrics['train_seconds']:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    py = sys.executable
    if "train" not in args.skip:
        run("training iterations per second (bench_train.py)", [py, str(HERE / "bench_train.py"), "--device", args.device])
    if "fold" not in args.skip:
        fold_wall_time(args.device)
    if "extract" not in args.skip:
        run("feature extraction, frames per second (bench_extract.py)", [py, str(HERE / "bench_extract.py"), "--device", args.device])
    if "memory" not in args.skip:
        run("peak memory on the CAS(ME)^3-sized set (bench_memory.py)", [py, str(HERE / "bench_memory.py")])
    if "motion" not in args.skip:
        run("motion-energy baseline on the synthetic presets (motion_energy.py)", [py, str(HERE / "motion_energy.py")])


if __name__ == "__main__":
    main()
