"""Fault injection for the tests: pause a process at a named point so a test can kill it exactly there.

``COLORIZE_TEST_PAUSE=POINT[@N]`` makes the N-th arrival (default the first) at ``pause(POINT)`` print
``test-pause: POINT N`` on stdout and sleep ``COLORIZE_TEST_PAUSE_SECONDS`` (default 300) before going
on. A test waits for that line, then sends SIGKILL or SIGTERM: the kill lands inside a checkpoint write
(or wherever the point is) every time, instead of when a timer happens to fire. Unset, ``pause`` costs
one dictionary look-up. The points are listed where they are called (``grep -rn 'faults.pause'``).
"""
from __future__ import annotations

import os
import sys
import time

_arrivals: dict[str, int] = {}


def pause(point: str) -> None:
    spec = os.environ.get("COLORIZE_TEST_PAUSE")
    if not spec:
        return
    name, _, nth = spec.partition("@")
    if name != point:
        return
    _arrivals[point] = _arrivals.get(point, 0) + 1
    if _arrivals[point] != int(nth or 1):
        return
    sys.stdout.write(f"test-pause: {point} {_arrivals[point]}\n")
    sys.stdout.flush()
    deadline = time.monotonic() + float(os.environ.get("COLORIZE_TEST_PAUSE_SECONDS", "300"))
    while time.monotonic() < deadline:   # short sleeps: a signal handler runs between them
        time.sleep(0.05)
