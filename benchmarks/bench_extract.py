"""Extraction speed: TV-L1 flow and I3D, measured separately, in frames per second.

    python benchmarks/bench_extract.py [--size 224] [--frames 25] [--device cpu|cuda] [--workers 1,2]

Flow runs on a panning noise texture in 1 and 2 worker processes (``--workers``, one OpenCV thread
each) and in this process with OpenCV's own threads, all in one run, each line with the CPU seconds
the TV-L1 calls used (summed over processes) and so the cores it actually got (CPU s per wall s).
Beside it, a control: the same number of pure-Python CPU-bound processes, so a machine that gives two
processes less than two cores (other jobs, other sessions' scheduler groups) shows in the control
too instead of passing for a flow problem. I3D runs with random weights (speed does not depend on
the values) on batches of snippets under ``torch.inference_mode``. The default run takes 1-2 min on
2 CPU cores; on a shared machine set OMP_NUM_THREADS=1 (torch threads that wait on each other crawl
under contention). The last lines turn the rates into the time one CAS(ME)^2 video (about 2940
frames) would take.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from pwes.extract.flow import FlowComputer, FlowStats, open_frames
from pwes.extract.i3d import STREAM_CHANNELS, InceptionI3d

CASME2_FRAMES = 2940


def flow_stats(frames_path: Path, num_frames: int, size: int, workers: int) -> FlowStats:
    """Pairs, wall and CPU seconds for ``workers`` (0: in this process); the pool start-up is not timed."""
    with tempfile.TemporaryDirectory() as tmp, FlowComputer(workers) as computer:
        computer.compute(frames_path, Path(tmp) / "warm-up", 2 * max(workers, 1) + 1, size)  # starts every worker
        return computer.compute(frames_path, Path(tmp) / "flow", num_frames, size)


def _spin(iterations: int) -> float:
    """A pure-Python CPU-bound loop; returns its CPU seconds."""
    started, x = time.process_time(), 0
    for i in range(iterations):
        x += i
    return time.process_time() - started


def control_rate(processes: int, iterations: int = 20_000_000) -> tuple[float, float]:
    """(loop iterations per wall second, CPU s per wall s) of ``processes`` CPU-bound processes at once."""
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_spin, [1000] * processes))  # start them all
        started = time.perf_counter()
        cpu = sum(pool.map(_spin, [iterations] * processes))
        wall = time.perf_counter() - started
    return processes * iterations / wall, cpu / wall


def i3d_rate(stream: str, size: int, snippet: int, batch_size: int, repeats: int, device: torch.device) -> float:
    """Input frames per second through one I3D stream, after one untimed warm-up batch."""
    torch.manual_seed(0)
    model = InceptionI3d(STREAM_CHANNELS[stream]).eval().to(device, memory_format=torch.channels_last_3d)  # as the pipeline
    snippets = torch.rand(batch_size, snippet, size, size, STREAM_CHANNELS[stream], device=device) * 2 - 1
    batch = snippets.permute(0, 4, 1, 2, 3)  # [B, L, S, S, C] -> [B, C, L, S, S] as the pipeline feeds it
    with torch.inference_mode():
        model.extract_features(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            model.extract_features(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return repeats * batch_size * snippet / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="square frame side (default 224)")
    parser.add_argument("--frames", type=int, default=17, help="frames for the flow measurement (default 17)")
    parser.add_argument("--snippet", type=int, default=8, help="frames per snippet (default 8)")
    parser.add_argument("--batch-size", type=int, default=4, help="snippets per I3D batch (default 4)")
    parser.add_argument("--repeats", type=int, default=1, help="timed I3D batches per stream (default 1)")
    parser.add_argument("--workers", default="1,2", help="flow process counts to compare in one run, comma-separated (default 1,2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (I3D only; flow is CPU-only)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} torch thread(s)"
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}; OpenCV {cv2.__version__}, torch {torch.__version__}")
    print(f"I3D on {args.device} ({where}); flow on the CPU")

    rng = np.random.default_rng(0)
    width = args.size + 2 * args.frames
    texture = cv2.GaussianBlur((rng.random((args.size, width, 3)) * 255).astype(np.uint8), (0, 0), 2)
    with tempfile.TemporaryDirectory() as tmp:
        frames_path = Path(tmp) / "frames.uint8"
        frames = open_frames(frames_path, args.frames, args.size, mode="w+")
        for i in range(args.frames):
            frames[i] = texture[:, 2 * (args.frames - i) : 2 * (args.frames - i) + args.size]
        frames.flush()
        rates, controls, stats_by = {}, {}, {}
        for count in dict.fromkeys([*workers, 0]):
            label = "in this process (OpenCV threads)" if count == 0 else f"{count} worker process(es)"
            stats = flow_stats(frames_path, args.frames, args.size, count)
            rates[count], stats_by[count] = stats.rate, stats
            print(
                f"flow  TV-L1 {args.size}x{args.size}, {label}: {stats.rate:.2f} frame pairs/s "
                f"({stats.cpu / stats.pairs:.2f} CPU s per pair, {stats.cpu / stats.wall:.2f} cores used); load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if count > 0:
                controls[count] = control_rate(count)
                print(f"      control: {count} pure-Python CPU-bound process(es): {controls[count][0] / 1e6:.1f} M loops/s, {controls[count][1]:.2f} cores used", flush=True)
    if len(workers) > 1 and workers[0] > 0:
        low, high = workers[0], workers[-1]
        a, b = stats_by[low], stats_by[high]
        flow_x, control_x = rates[high] / rates[low], controls[high][0] / controls[low][0]
        print(
            f"flow {low} -> {high} workers: {flow_x:.2f}x the pairs/s (ideal {high / low:.1f}x); CPU s per pair {a.cpu / a.pairs:.2f} -> "
            f"{b.cpu / b.pairs:.2f}, cores used {a.cpu / a.wall:.2f} -> {b.cpu / b.wall:.2f}; the CPU-bound control: {control_x:.2f}x"
        )
        if b.cpu / b.wall < 0.8 * high:
            print(f"      the {high} workers got {b.cpu / b.wall:.2f} cores, not {high}: the machine is busy (load {os.getloadavg()[0]:.1f}), so this run cannot show the scaling")
        elif flow_x < 0.8 * high / low:
            print("      the workers had the cores but did not turn them into pairs: a limit in the flow code (CPU s per pair grew)")
    best_flow = max(rates.values())

    i3d = {}
    for stream in STREAM_CHANNELS:
        i3d[stream] = i3d_rate(stream, args.size, args.snippet, args.batch_size, args.repeats, device)
        print(
            f"i3d   {stream:4s} stream, batches of {args.batch_size} x {args.snippet}-frame {args.size}x{args.size} snippets: "
            f"{i3d[stream]:.1f} frames/s ({i3d[stream] / args.snippet:.2f} snippets/s)"
        )
    both = 1 / (1 / i3d["rgb"] + 1 / i3d["flow"])
    print(
        f"one CAS(ME)^2 video ({CASME2_FRAMES} frames): flow {CASME2_FRAMES / best_flow / 60:.1f} min, "
        f"I3D (both streams) {CASME2_FRAMES / both / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
