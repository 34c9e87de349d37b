"""Progress of one stage of one video (decode, flow, I3D): done, rate and time left.

On a terminal this is a tqdm bar (it shows the same three). When stderr is not a terminal (a log
file, a batch job) a bar would be one endless line of carriage returns, so a plain line is written
instead every ``every`` seconds and once at the end:
``clip flow: 1200/2939 pairs, 3.02 pairs/s, 9:36 left``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

LINE_EVERY = 30.0  # seconds between plain progress lines


def format_seconds(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``update(n)`` as work is done; use as a context manager. Disabled: does nothing."""

    def __init__(
        self,
        desc: str,
        total: int | None,
        unit: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        every: float = LINE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desc, self.total, self.unit, self.every, self.clock = desc, total, unit, every, clock
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = self.last = clock()
        terminal = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, position=1, file=self.stream, dynamic_ncols=True) if terminal else None
        self.lines = enabled and not terminal

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The plain progress line for what is done so far."""
        elapsed = self.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        text = f"{self.desc}: {count} {self.unit}s, {rate:.2f} {self.unit}s/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", {format_seconds((self.total - self.done) / rate)} left"
        return text

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and self.clock() - self.last >= self.every:
            self.last = self.clock()
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar, or write the last line (with the elapsed time)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines:
            self.lines = False
            print(f"{self.line()}, {format_seconds(self.clock() - self.started)} in all", file=self.stream, flush=True)
