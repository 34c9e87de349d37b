"""A Ctrl-C is noted by the handler and raised at the next check, never inside arbitrary code."""

from __future__ import annotations

import os
import signal

import pytest

from pwes import interrupt
from pwes.interrupt import InterruptFlag


def test_the_first_ctrl_c_is_noted_and_raised_at_the_next_check() -> None:
    # what was there before: Python's default handler, or SIG_IGN in a process started in the
    # background by a non-interactive shell (which ignores SIGINT for it)
    before = signal.getsignal(signal.SIGINT)
    flag = InterruptFlag.install()
    try:
        interrupt.check()  # nothing noted yet: no-op
        os.kill(os.getpid(), signal.SIGINT)  # handled in the main thread before the next bytecode
        assert flag.seen
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C raises at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGINT) is before
    interrupt.check()  # restored: no flag is active any more


class Noisy:
    def __del__(self) -> None:  # where Python swallows an exception raised by a signal handler
        os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_inside_a_finaliser_is_not_lost() -> None:
    flag = InterruptFlag.install()
    try:
        Noisy()  # collected at once: the signal arrives inside __del__
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        flag.restore()
