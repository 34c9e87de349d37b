"""`make bench`: every benchmark in turn, printing figures (not pass/fail).

    python benchmarks/run_all.py [--skip memory extract] [--device cuda] [--full-run]

1. ms per training iteration at the synthetic_small and synthetic_casme2@128 sizes, before and
   after the pretraining switch, fp32 and bf16, nn.Dropout and FastDropout, as speed-ups over
   today's fp32 step with nn.Dropout (bench_train.py); the wall time of one LOSO fold of the
   embedded default (`python -m pwes.train fold=<first subject>`, Trainer included); with
   ``--full-run`` also the seconds of a whole default run (`make train`, all 6 folds; about 1-2
   minutes on 2 idle cores), in fp32 and, on a CPU with native bf16, with trainer=cpu_bf16;
2. feature extraction frames per second, flow and I3D separately; flow at 1 and 2 workers in one run,
   with the cores each got and a CPU-bound control (bench_extract.py);
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
sys.path.insert(0, str(HERE.parent / "src"))
from pwes.precision import native_bf16_flags  # noqa: E402
SECTIONS = ("train", "fold", "extract", "memory", "motion")


def run(title: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
    print(f"\n== {title}\n$ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        print(f"(exit {result.returncode})", flush=True)


def default_run_wall_time(device: str, fold: str, extra: tuple[str, ...] = ()) -> None:
    """Wall time of the default run (``fold=all``) or one fold of it, process start to metrics.json."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PWES_HOME": home}
        cache = Path(".cache").resolve()
        if cache.exists():  # reuse the generated benchmark instead of generating it again
            os.symlink(cache, Path(home) / ".cache")
        cmd = [sys.executable, "-m", "pwes.train", f"fold={fold}", "logger=none", "trainer.enable_progress_bar=false", "run_name=bench", *extra]
        if device == "cuda":
            cmd.append("trainer.accelerator=gpu")
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            return
        run = Path(home) / "outputs/runs/synthetic_small/bench"
        if fold == "all":
            print(f"  wall time, process start to pooled results: {wall:.1f} s", flush=True)
            return
        metrics = json.loads((run / f"fold-{fold}" / "metrics.json").read_text())
        print(f"  wall time, process start to results: {wall:.1f} s (training and prediction: {metrics['train_seconds']:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full-run", action="store_true", help="also time a whole default run (all folds), fp32 and bf16")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of bench_train.py (default: all cores); on a crowded machine 1 is steadier")
    args = parser.parse_args()
    py = sys.executable
    if "train" not in args.skip:
        run("ms per training iteration, fp32/bf16 and nn.Dropout/FastDropout (bench_train.py)", [py, str(HERE / "bench_train.py"), "--device", args.device, *(["--threads", str(args.threads)] if args.threads else [])])
    if "fold" not in args.skip:
        print("\n== one LOSO fold of the embedded default (synthetic_small), end to end", flush=True)
        default_run_wall_time(args.device, "s01")
    if args.full_run:
        print("\n== the whole default run (make train: synthetic_small, all folds), end to end", flush=True)
        default_run_wall_time(args.device, "all")
        if args.device == "cpu" and native_bf16_flags():
            default_run_wall_time(args.device, "all", ("trainer=cpu_bf16",))
    if "extract" not in args.skip:
        run("feature extraction, frames per second (bench_extract.py)", [py, str(HERE / "bench_extract.py"), "--device", args.device])
    if "memory" not in args.skip:
        run("peak memory on the CAS(ME)^3-sized set (bench_memory.py)", [py, str(HERE / "bench_memory.py")])
    if "motion" not in args.skip:
        run("motion-energy baseline on the synthetic presets (motion_energy.py)", [py, str(HERE / "motion_energy.py")])


if __name__ == "__main__":
    main()
