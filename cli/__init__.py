"""What the entry scripts share; importing ``cli`` first sets TensorFlow's environment up.

Importing ``cli`` loads no framework: a script parses and checks its arguments and finds its files
first, and imports Keras (and with it TensorFlow, seconds) only when it needs a model.

- this module: TensorFlow's settings that must precede its import (oneDNN kernels on, C++ log
  level), and in a script the native log filter installed; :func:`import_backend` imports TensorFlow
  with its start-up chatter filtered, for programs other than the scripts.
- ``native_log``: in a script, stderr passes through a filter that drops the few known, harmless
  lines TensorFlow's native code logs (start-up notices, two graph-rewrite notes), nothing else.
- ``options``: the arguments every script takes (``-m``, ``--data``/``--split``/``--limit``) and
  loading the data they name (with the bundled sample as the offline default).
- ``errors``: which exceptions are user mistakes, printed as one line with exit code 2.

May import: every package below it (``core``, ``loaders``, ``priors``, ``models``, ``inference``,
``training``, ``evaluation``); nothing imports ``cli`` but the scripts. Nothing heavy at import
(tests/test_startup.py).
"""
from __future__ import annotations

import os

# TensorFlow's C++ log: errors only (level 3 would also hide real C++ errors; the known harmless ones
# are filtered by native_log instead).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN kernels: on by default only on CPUs with AVX-512 VNNI/BF16 or AMX. Measured on
# the U-Net (BENCHMARKS.md): about 3x faster with oneDNN limited to AVX2 than TensorFlow's own kernels, so
# turn them on everywhere (a user's own TF_ENABLE_ONEDNN_OPTS=0 still wins). Before TensorFlow loads.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import sys
from pathlib import Path

from cli import native_log


def _runs_a_script() -> bool:
    """Whether this process runs one of the entry scripts (not pytest or a program importing cli)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is not None and Path(path).resolve().parent == Path(__file__).resolve().parents[1]


def import_backend() -> None:
    """Import TensorFlow (when it is the Keras backend) with its start-up chatter filtered out.

    So that a user's error is one line on stderr, as the scripts promise. The filter works on file
    descriptor 2, where the native code writes; Python exceptions are untouched. A script need not
    call it: the filter of native_log already does this for the whole process. Called again, or
    after TensorFlow loaded, it does nothing.
    """
    import importlib.util
    import tempfile
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or "tensorflow" in sys.modules \
            or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not native_log.is_known(line):
                    sys.stderr.write(line)


# Installed at import, before anything can load TensorFlow: its native code logs from its first moment.
if _runs_a_script():
    native_log.install()   # known harmless native log lines out of stderr, for the life of the process
