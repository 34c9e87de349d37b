"""TV-L1 optical flow between adjacent frames (OpenCV's Dual TV-L1 with its default parameters).

Flow ``i`` goes from frame ``i`` to frame ``i + 1`` as (x, y) pixel displacements: a pattern that
moves 2 px to the right gives about +2 in x. It is clipped to [-bound, bound] (bound 20, as for the
original I3D flow stream) and divided by the bound, giving [-1, 1]; it is stored as float16
(relative rounding below 0.05%, at most 0.01 px for the largest flows), half the disk of float32.

TV-L1 runs on the CPU only; it is the slow part of extraction. :class:`FlowComputer` spreads frame
pairs over worker processes (one OpenCV thread each) or, with ``workers=0``, runs in this process
with OpenCV's own threads.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import cv2
import numpy as np

FLOW_BOUND = 20.0
FLOW_DTYPE = np.float16
FRAME_DTYPE = np.uint8
MAX_PAIRS_PER_TASK = 8  # frame pairs handed to a worker at once: small enough for a smooth progress bar


class FlowWorkerError(RuntimeError):
    """A flow worker process died; the pool cannot go on, so the whole run stops."""


_tvl1: cv2.optflow.DualTVL1OpticalFlow | None = None


def tvl1_flow(previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """Raw TV-L1 flow ``[H, W, 2]`` float32 (x, y in pixels) from ``previous`` to ``following``.

    Frames are RGB ``uint8 [H, W, 3]`` or grey ``[H, W]``; OpenCV's default parameters are used
    (tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01), as in the paper.
    """
    global _tvl1
    if _tvl1 is None:
        _tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f for f in (previous, following)]
    return _tvl1.calc(grey[0], grey[1], None)


def scale_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Clip raw flow to [-bound, bound] and divide by ``bound``: values in [-1, 1], float32."""
    return np.clip(np.asarray(flow, dtype=np.float32), -bound, bound) / np.float32(bound)


def open_frames(path: str | os.PathLike, num_frames: int, size: int, mode: str = "r") -> np.memmap:
    """The raw ``uint8 [N, size, size, 3]`` RGB frame file as a memory map."""
    return np.memmap(path, dtype=FRAME_DTYPE, mode=mode, shape=(num_frames, size, size, 3))


def open_flow(path: str | os.PathLike, num_pairs: int, size: int, mode: str = "r") -> np.memmap:
    """The raw ``float16 [N - 1, size, size, 2]`` scaled-flow file as a memory map."""
    return np.memmap(path, dtype=FLOW_DTYPE, mode=mode, shape=(num_pairs, size, size, 2))


@dataclass(frozen=True)
class FlowStats:
    """What one :meth:`FlowComputer.compute` took: pairs, wall seconds, and the CPU seconds the
    TV-L1 calls used in all processes together (``cpu / wall`` is how many cores it actually got)."""

    pairs: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        """Frame pairs per wall-clock second."""
        return self.pairs / self.wall if self.wall > 0 else float("inf")


def _flow_range(frames_path: str, flow_path: str, num_frames: int, size: int, start: int, stop: int, bound: float) -> tuple[int, float]:
    """Compute flows ``start..stop-1`` into the flow file (opened by each worker itself); returns
    the count and the CPU seconds this process spent on them."""
    started = time.process_time()
    frames = open_frames(frames_path, num_frames, size)
    flow = open_flow(flow_path, num_frames - 1, size, mode="r+")
    for i in range(start, stop):
        flow[i] = scale_flow(tvl1_flow(frames[i], frames[i + 1]), bound)
    flow.flush()
    del flow
    return stop - start, time.process_time() - started


def _init_worker() -> None:
    cv2.setNumThreads(1)  # parallelism comes from the processes; avoid oversubscribing the cores


class FlowComputer:
    """Fills a flow file from a frame file, in ``workers`` processes (0: in this process).

    Use as a context manager, or call :meth:`close`; the pool is started once and reused for every video.
    """

    def __init__(self, workers: int = 0, bound: float = FLOW_BOUND) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if not bound > 0:
            raise ValueError(f"flow bound must be positive, got {bound}")
        self.workers, self.bound = workers, float(bound)
        # spawn, not fork: forking a process whose torch/OpenMP threads already run can deadlock
        self._pool = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
            if workers > 0
            else None
        )

    def __enter__(self) -> "FlowComputer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def compute(
        self,
        frames_path: str | os.PathLike,
        flow_path: str | os.PathLike,
        num_frames: int,
        size: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> FlowStats:
        """Write the scaled flow of all ``num_frames - 1`` adjacent pairs to ``flow_path``."""
        if num_frames < 2:
            raise ValueError(f"{frames_path}: optical flow needs at least 2 frames, got {num_frames}")
        frames_path, flow_path = str(frames_path), str(flow_path)
        open_flow(flow_path, num_frames - 1, size, mode="w+").flush()  # create the file at full size
        pairs = num_frames - 1
        per_task = max(1, min(MAX_PAIRS_PER_TASK, -(-pairs // (4 * max(self.workers, 1)))))  # >= 4 tasks per worker
        tasks = [
            (frames_path, flow_path, num_frames, size, start, min(start + per_task, pairs), self.bound)
            for start in range(0, pairs, per_task)
        ]
        started, cpu = time.perf_counter(), 0.0
        if self._pool is None:
            for task in tasks:
                done, seconds = _flow_range(*task)
                cpu += seconds
                if on_progress is not None:
                    on_progress(done)
            return FlowStats(pairs, time.perf_counter() - started, cpu)
        pending = {self._pool.submit(_flow_range, *task) for task in tasks}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    done, seconds = future.result()  # re-raises a worker's exception here
                    cpu += seconds
                    if on_progress is not None:
                        on_progress(done)
        except BrokenProcessPool:
            raise FlowWorkerError("a TV-L1 worker process died (out of memory?); rerun with fewer --workers") from None
        finally:
            for future in pending:
                future.cancel()
        return FlowStats(pairs, time.perf_counter() - started, cpu)


def flow_file_size(num_frames: int, size: int) -> int:
    """Bytes of a complete flow file for ``num_frames`` frames."""
    return max(num_frames - 1, 0) * size * size * 2 * np.dtype(FLOW_DTYPE).itemsize


def frames_file_size(num_frames: int, size: int) -> int:
    """Bytes of a complete frame file."""
    return num_frames * size * size * 3 * np.dtype(FRAME_DTYPE).itemsize

