"""Per-video progress lines of pwes.extract when stderr is not a terminal (a log file, a batch job)."""

from __future__ import annotations

import io

from pwes.extract.progress import Progress, format_seconds


class Clock:
    """A clock that reads the times it is given, in order (the last one repeats)."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_plain_lines_give_done_rate_and_time_left_then_the_total() -> None:
    stream = io.StringIO()  # not a terminal
    # reads: start (0 s), update 1 (10 s: line due), its line's time, update 2 (12 s: not due), close (40 s) x2
    with Progress("clip flow", 40, "pair", stream=stream, every=5.0, clock=Clock(0.0, 10.0, 10.0, 10.0, 12.0, 40.0)) as bar:
        bar.update(20)  # 20 pairs in 10 s: 2 pairs/s, 20 left -> 10 s
        bar.update(20)
    lines = stream.getvalue().splitlines()
    assert lines == ["clip flow: 20/40 pairs, 2.00 pairs/s, 0:10 left", "clip flow: 40/40 pairs, 1.00 pairs/s, 0:40 in all"]


def test_disabled_progress_writes_nothing_and_seconds_format() -> None:
    stream = io.StringIO()
    with Progress("clip decode", 10, "frame", enabled=False, stream=stream, every=0.0) as bar:
        bar.update(10)
    assert stream.getvalue() == ""
    assert (format_seconds(59.6), format_seconds(61), format_seconds(3725)) == ("1:00", "1:01", "1:02:05")
