"""What the entry scripts share; importing ``cli`` first sets TensorFlow's environment up.

- this module: TensorFlow's settings that must precede its import (oneDNN kernels on, C++ log
  level), and the import itself with its start-up chatter filtered, so a user error stays one line.
- ``options``: the arguments every script takes (``-m``, ``--data``/``--split``/``--limit``) and
  loading the data they name (with the bundled sample as the offline default).
- ``errors``: which exceptions are user mistakes, printed as one line with exit code 2.

May import: every package below it (``core``, ``dataset``, ``priors``, ``models``, ``inference``,
``training``, ``evaluation``); nothing imports ``cli`` but the scripts.
"""
from __future__ import annotations

import os

# TensorFlow's C++ log: errors only (level 3 would also hide grappler's harmless "remapper failed" lines,
# but real C++ errors too; those that matter also raise a Python exception).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN kernels: on by default only on CPUs with AVX-512 VNNI/BF16 or AMX. Measured on
# the U-Net (BENCHMARKS.md): about 3x faster with oneDNN limited to AVX2 than TensorFlow's own kernels, so
# turn them on everywhere (a user's own TF_ENABLE_ONEDNN_OPTS=0 still wins). Before TensorFlow loads.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import sys

# Lines TensorFlow's native code writes to stderr at import, before TF_CPP_MIN_LOG_LEVEL applies:
# start-up information, not problems. Anything else it writes there is passed on.
_TF_START_UP_CHATTER = ("All log messages before absl::InitializeLog", "oneDNN custom operations are on",
                        "cpu_feature_guard", "To enable the following instructions")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow (when it is the Keras backend) with its start-up chatter filtered out.

    So that a user's error is one line on stderr, as the scripts promise. The filter works on file
    descriptor 2, where the native code writes; Python exceptions are untouched.
    """
    import importlib.util
    import tempfile
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or importlib.util.find_spec("tensorflow") is None:
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
                if not any(marker in line for marker in _TF_START_UP_CHATTER):
                    sys.stderr.write(line)


_import_tensorflow_quietly()
