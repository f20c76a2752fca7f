"""Ctrl-C held over a step that must not be cut in half, then delivered.

A study takes a trial slot, has Optuna create the trial and records its row; a KeyboardInterrupt landing between
those steps would leave a slot or an Optuna trial that nothing records (a lost trial). While the guard is held,
SIGINT is only noted; `release` raises the KeyboardInterrupt once the step is whole, where the runner knows what
to queue again. Only the main thread receives signals, so elsewhere the guard does nothing.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class InterruptGuard:
    def __init__(self) -> None:
        self._depth = 0
        self._pending = False
        self._previous = None

    def _note(self, signum, frame) -> None:
        self._pending = True

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if self._depth == 0:
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._note)
        self._depth += 1

    def release(self, deliver: bool = True) -> None:
        """End the held step; a SIGINT that came meanwhile is delivered now (dropped when `deliver` is False)."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth:
            return
        previous, self._previous = self._previous, None
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        pending, self._pending = self._pending, False
        if pending and deliver:
            if previous is signal.default_int_handler or previous is None:
                raise KeyboardInterrupt
            if callable(previous):
                previous(signal.SIGINT, None)

    @property
    def held(self) -> bool:
        return self._depth > 0

    @contextmanager
    def holding(self, deliver: bool = True):
        self.hold()
        try:
            yield
        finally:
            self.release(deliver)
