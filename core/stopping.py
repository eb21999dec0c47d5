"""Stopping cleanly on SIGTERM, SIGINT (Ctrl-C) and SIGHUP.

Cluster schedulers, ``timeout``, ``docker stop`` and preempted cloud machines send SIGTERM; a closed
terminal sends SIGHUP. Inside :class:`GracefulStop` the first of these only sets a flag: the work goes on
to the next safe point (a training step's end, an image written), where :meth:`GracefulStop.check`
raises :class:`Stopped` so the caller saves what it has and exits. The first signal also restores the
default action of all three, so a second one ends the process at once, even inside native code; that
is safe because everything the caller keeps is written atomically (core.checkpoints, temporary names).
"""
from __future__ import annotations

import os
import signal
import threading

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(Exception):
    """A stop signal arrived; raised at a safe point. ``exit_code`` follows the shell's 128 + signal."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal_name(signum)}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulStop:
    """``with GracefulStop("saving a checkpoint after the current step") as stop: ... stop.check() ...``"""

    def __init__(self, what: str):
        self.what = what          # what happens after the first signal, for the message
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():   # Python handles signals there only
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        for s in SIGNALS:   # the next one: the default action, immediate
            signal.signal(s, signal.SIG_DFL)
        # os.write, not print: a handler can run in the middle of another write to the same stream
        os.write(2, f"\n{signal_name(signum)}: {self.what}; send it again to stop at once\n".encode())

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """At a safe point: raise Stopped if a signal came."""
        if self.signum is not None:
            raise Stopped(self.signum)
