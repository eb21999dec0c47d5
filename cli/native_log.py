"""Known, harmless lines of TensorFlow's native log, filtered out of a script's stderr.

TensorFlow's C++ code writes straight to file descriptor 2, so the filter sits there: the script's
stderr becomes a pipe read by a small child process (forked before TensorFlow loads) that passes every
line on to the real stderr except the known ones (:data:`KNOWN`). Everything else, Python's warnings
and tracebacks included, goes through unchanged and in order. The child outlives a crashing or killed
script long enough to pass on what the script wrote last, so a fatal native error still shows.
"""
from __future__ import annotations

import atexit
import os
import re
import select
import signal
import sys
import time

# One pattern per line known to be noise; a line is dropped only if one of them matches it whole.
KNOWN = tuple(re.compile(p) for p in (
    # At import, before TF_CPP_MIN_LOG_LEVEL applies: start-up information, not problems.
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r".*\] oneDNN custom operations are on\. .*",
    r".*cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized .*",
    r"To enable the following instructions: .*, in other operations, rebuild TensorFlow with the "
    r"appropriate compiler flags\.",
    # Grappler's remapper (oneDNN build) fuses Conv2D + BiasAdd + LeakyRelu in a training graph although
    # LeakyReluGrad still reads the BiasAdd, then rejects its own rewrite: that graph runs as it would
    # without the remapper. Avoiding it (LeakyReLU as max(x, 0.2 x)) trained the U-Net no faster (docs/speed.md).
    r".*\] remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout '[^']*/LeakyRelu/LeakyReluGrad' "
    r"exist for missing node '[^']*/BiasAdd'\.",
    # oneDNN's graph pass meets an int32 Transpose (shape arithmetic in the gradient of UpSampling2D, in
    # graphs traced for a batch of unknown size) and leaves it to TensorFlow's own kernel, as it should.
    r".*\] oneDNN supports DT_INT32 only on platforms with AVX-512\. Falling back to the default "
    r"Eigen-based implementation if present\.",
))


def is_known(line: str) -> bool:
    return any(p.fullmatch(line.rstrip("\r\n")) for p in KNOWN)


def install() -> None:
    """Route this process's stderr (fd 2) through the filter; a no-op where fork is missing (Windows)."""
    if not hasattr(os, "fork") or os.environ.get("COLORIZE_RAW_STDERR"):
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the filter: no Python-level work of the script survives here
        os.close(write_end)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)   # outlive the script: pass on its last words, stop at EOF
        _forward(read_end, 2)
        os._exit(0)
    os.close(read_end)
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_finish, pid, original)


def _forward(source: int, target: int) -> None:
    """Copy lines from ``source`` to ``target`` until EOF, dropping known ones; a partial line waits
    up to 0.1 s for its end (a prompt or progress without newline still shows)."""
    pending = b""
    while True:
        if pending:
            ready, _, _ = select.select([source], [], [], 0.1)
            if not ready:
                _write(target, pending)
                pending = b""
                continue
        try:
            chunk = os.read(source, 1 << 16)
        except InterruptedError:
            continue
        if not chunk:
            _write(target, pending)
            return
        *lines, pending = (pending + chunk).split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not is_known(line.decode(errors="replace")))
        _write(target, out)


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except InterruptedError:
            continue
        except OSError:   # the reader of our stderr went away: nothing left to do
            return


def _finish(pid: int, original: int) -> None:
    """At exit: close the pipe (the filter sees EOF), wait briefly for it to pass on the rest."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(original, 2)
    os.close(original)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
