"""Ctrl-C that ends a run where it is safe to end it.

Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread happens to be. When
that is a ``__del__`` (Lightning's profiler has one) or a weakref callback, Python prints "Exception
ignored in ..." and carries on: the run then finishes, or exits 0 half-done. Here the handler only
notes the request; the fold loop and a Lightning callback (:class:`StopOnInterrupt`) raise
KeyboardInterrupt at their next check, between steps and stages. A second Ctrl-C raises at once.
"""

from __future__ import annotations

import signal
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class InterruptFlag:
    """The SIGINT handler of ``python -m pwes.train``: ``seen`` tells an interruption from other
    exits (Lightning turns a KeyboardInterrupt inside ``fit`` into SystemExit(1))."""

    active: "InterruptFlag | None" = None

    def __init__(self) -> None:
        self.seen = False
        self.previous: Any = None

    @classmethod
    def install(cls) -> "InterruptFlag":
        flag = cls()
        try:
            flag.previous = signal.signal(signal.SIGINT, flag._handle)
        except ValueError:  # not the main thread (some launchers): keep Python's default
            return flag
        cls.active = flag
        return flag

    def _handle(self, signum: int, frame: object) -> None:
        if self.seen:  # asked twice: stop now, wherever that is
            raise KeyboardInterrupt
        self.seen = True

    def restore(self) -> None:
        if InterruptFlag.active is self:
            InterruptFlag.active = None
        if self.previous is not None:
            try:
                signal.signal(signal.SIGINT, self.previous)
            except ValueError:
                pass


def check() -> None:
    """Raise KeyboardInterrupt when a Ctrl-C has been noted (a no-op outside ``pwes.train``)."""
    flag = InterruptFlag.active
    if flag is not None and flag.seen:
        raise KeyboardInterrupt


class StopOnInterrupt(Callback):
    """Ends ``fit`` and ``predict`` after the batch in which a Ctrl-C arrived."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        check()

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        check()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        check()
