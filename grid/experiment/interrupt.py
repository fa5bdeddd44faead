"""Ctrl-C and SIGTERM for the grid, instead of Tune's own handler (whose advice is Ray's API, not --resume).

The first signal asks Tune, through a Stopper, to stop every trial: the checkpoints already in storage stay,
and the grid goes on to write what finished. A second one raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from ray import tune

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupt:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._active = False  # inside `catching`

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + (self.signum or 0)

    @contextlib.contextmanager
    def catching(self) -> Iterator[Interrupt]:
        """Handles SIGINT and SIGTERM in the block (signal handlers exist only in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in SIGNALS}
        self._active = True
        self.install()
        try:
            yield self
        finally:
            self._active = False
            for s, handler in previous.items():
                signal.signal(s, handler)

    def install(self) -> None:
        """(Re)installs the handlers inside `catching`: ray.init puts a SIGTERM handler of its own in this
        process (it dumps a stack trace and dies), so the grid calls this again once Ray is up."""
        if self._active and threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: stopping the trainings (their checkpoints stay); again to stop at once",
            file=sys.stderr,
            flush=True,
        )


class StopOnInterrupt(tune.Stopper):
    """Ends the Tune run once the grid is interrupted (Tune then stops its trials)."""

    def __init__(self, interrupt: Interrupt) -> None:
        self.interrupt = interrupt

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.interrupt.requested
