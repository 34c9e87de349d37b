"""Extraction speed: TV-L1 flow and I3D, measured separately, in frames per second.

    python benchmarks/bench_extract.py [--size 224] [--frames 25] [--device cpu|cuda] [--workers N]

Flow runs on a panning noise texture (in this process with OpenCV's threads, then in ``--workers``
processes); I3D runs with random weights (speed does not depend on the values) on batches of
snippets under ``torch.inference_mode``. The default run takes 30-60 s on 2 idle CPU cores; on a
shared machine set OMP_NUM_THREADS=1 (torch threads that wait on each other crawl under contention). The
last lines turn the rates into the time one CAS(ME)^2 video (about 2940 frames) would take.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from pwes.extract.flow import FlowComputer, open_frames
from pwes.extract.i3d import STREAM_CHANNELS, InceptionI3d

CASME2_FRAMES = 2940


def flow_rate(frames_path: Path, num_frames: int, size: int, workers: int) -> float:
    """Frame pairs per second for ``workers`` (0: in this process); the pool start-up is not timed."""
    with tempfile.TemporaryDirectory() as tmp, FlowComputer(workers) as computer:
        computer.compute(frames_path, Path(tmp) / "warm-up", 2, size)  # starts the workers
        started = time.perf_counter()
        computer.compute(frames_path, Path(tmp) / "flow", num_frames, size)
        return (num_frames - 1) / (time.perf_counter() - started)


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
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="flow processes (default: all CPUs)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (I3D only; flow is CPU-only)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} torch thread(s)"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; OpenCV {cv2.__version__}, torch {torch.__version__}")
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
        rates = {}
        for workers in dict.fromkeys((0, args.workers)):
            label = "in this process (OpenCV threads)" if workers == 0 else f"{workers} worker process(es)"
            rates[workers] = flow_rate(frames_path, args.frames, args.size, workers)
            print(f"flow  TV-L1 {args.size}x{args.size}, {label}: {rates[workers]:.2f} frame pairs/s ({1 / rates[workers]:.2f} s per pair)")
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
