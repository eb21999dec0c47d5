"""Helpers shared by the entry scripts: data arguments, user-facing errors, versions."""
from __future__ import annotations

import os

# TensorFlow's C++ log: errors only (level 3 would also hide grappler's harmless "remapper failed" lines,
# but real C++ errors too; those that matter also raise a Python exception).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN kernels: on by default only on CPUs with AVX-512 VNNI/BF16 or AMX. Measured on
# the U-Net (BENCHMARKS.md): about 3x faster with oneDNN limited to AVX2 than TensorFlow's own kernels, so
# turn them on everywhere (a user's own TF_ENABLE_ONEDNN_OPTS=0 still wins). Before TensorFlow loads.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import argparse
import platform
import sys
from pathlib import Path

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

from dataset import DEFAULT_DATA_DIR, SAMPLE_DIR, DataError, ImageSet, load_images
from models import MODEL_NAMES, UnknownModelError
from runs import RunError


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a user mistake: printed as one line, no traceback."""
    from inference import MissingLabelError
    from priors import PriorError
    return DataError, RunError, UnknownModelError, MissingLabelError, PriorError


def run_main(main, argv=None) -> int:
    try:
        return main(argv) or 0
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def add_model_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    # No `choices=`: the registry's own error lists the valid names in one line.
    parser.add_argument("-m", "--model", required=required, metavar="NAME",
                        help=f"one of: {', '.join(MODEL_NAMES)}")


def add_data_args(parser: argparse.ArgumentParser, split_default: str = "train", image_size: bool = True) -> None:
    """--data, --split, --limit, and --image-size where the size is a choice (training, not a run's tools)."""
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of images (img-<index>-<class>.png) or a CIFAR-10 batch folder "
                             f"(default: {_rel(DEFAULT_DATA_DIR)} if present, else the bundled sample)")
    parser.add_argument("--split", default=split_default,
                        help="for batch folders: train, test, or batch numbers such as 1-4 (default: %(default)s)")
    if image_size:
        parser.add_argument("--image-size", type=int, default=32,
                            help="images are resized to this size (default: 32)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def default_data(kind: str) -> tuple[Path, str]:
    """(path, split) used when --data is not given: the downloaded CIFAR-10, else the bundled sample.

    kind is "train" or "val"; for the download, validation is the official test batch.
    """
    if DEFAULT_DATA_DIR.exists():
        return DEFAULT_DATA_DIR, "train" if kind == "train" else "test"
    return SAMPLE_DIR / ("train" if kind == "train" else "val"), "train"


def load_data(path: Path | None, split: str, image_size: int, limit: int | None, kind: str = "train",
              announce: bool = True) -> ImageSet:
    if path is None:
        path, split = default_data(kind)
        if announce and path.is_relative_to(SAMPLE_DIR):
            print(f"no --data given and {_rel(DEFAULT_DATA_DIR)} not found: using the bundled sample "
                  f"{_rel(path)} (`python dataset.py download` fetches full CIFAR-10)")
    data = load_images(path, split, image_size)
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be positive, got {limit}")
        data = data.subset(limit)
    return data


def data_record(data: ImageSet, path: Path | None, split: str) -> dict:
    """What a config stores about a data set (enough to reload it and to recognise it)."""
    return {"path": str(path) if path is not None else None, "split": split, "description": data.description,
            "n_images": len(data), "fingerprint": data.fingerprint()}


def versions() -> dict:
    import keras
    import numpy
    out = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__,
           "backend": keras.backend.backend()}
    # The frameworks this process has loaded (Keras imports its backend's): importing TensorFlow here
    # would load a second framework into a JAX or PyTorch run (seconds, and its own CUDA libraries)
    # and record a version that did not run.
    for name in ("tensorflow", "jax", "torch"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "__version__"):
            out[name] = module.__version__
    return out
