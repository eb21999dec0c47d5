"""Run folders: every training run writes one, and predict.py rebuilds the model from it alone.

Layout of ``runs/<model>/<run-id>/``::

    config.json                 resolved configuration (model, options, data, seed, versions)
    model.weights.h5            weights (the GAN: generator.weights.h5, discriminator.weights.h5)
    *.optimizer.npz             optimizer state of a model saved without it (the GAN's combined model)
    state.json                  progress: epochs and steps done
    summary.txt                 the model summary
    samples/                    sample grids written during training

TensorBoard logs of the run go to ``logs/<model>/<run-id>/``. Nothing here ever unpickles or
deserializes code: configs are JSON, weights are HDF5 arrays, optimizer state is ``.npz``
read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]   # the repository
RUNS_DIR = ROOT / "runs"
LOGS_DIR = ROOT / "logs"


class RunError(Exception):
    """A missing or unusable run folder; the message says what to do."""


def new_run_dir(model: str, run_dir: str | Path | None = None) -> Path:
    if run_dir is not None:
        path = Path(run_dir)
        if (path / "config.json").exists():
            raise RunError(f"{path} already holds a run; continue it with --resume, or choose a new --run-dir")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = RUNS_DIR / model / stamp
        n = 1
        while path.exists():   # two runs in the same second
            n += 1
            path = RUNS_DIR / model / f"{stamp}-{n}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def latest_run(model: str, runs_dir: Path = RUNS_DIR) -> Path:
    """The most recent run folder of a model (by the time its config was written)."""
    candidates = [p.parent for p in (runs_dir / model).glob("*/config.json")]
    if not candidates:
        raise RunError(f"no run of '{model}' under {runs_dir / model}; train one with "
                       f"`python train.py -m {model}` or pass --run-dir")
    return max(candidates, key=lambda p: ((p / "config.json").stat().st_mtime, p.name))


def versions() -> dict:
    """Versions of Python, Keras, NumPy and the framework that ran, for config.json."""
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


def log_dir(config: dict) -> Path:
    return Path(config["log_dir"])


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)   # never leave a half-written config behind on Ctrl-C


def load_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise RunError(f"{run_dir}: no config.json, so this is not a run folder; pass the folder "
                       "that train.py printed, or leave --run-dir out to use the latest run")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err}); the run folder is damaged") from None


def load_state(run_dir: Path) -> dict:
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"epoch": 0, "step": 0}


def weights_file(run_dir: Path, part: str = "model") -> Path:
    return Path(run_dir) / f"{part}.weights.h5"


def load_weights(model, run_dir: Path, part: str = "model") -> None:
    """Load ``<part>.weights.h5``; for a compiled model this restores the optimizer state too.

    The optimizer is built on the model's *trainable* variables, so a frozen model (the GAN's
    discriminator) must be made trainable before loading, as gan_training does.
    """
    path = weights_file(run_dir, part)
    if not path.exists():
        raise RunError(f"{path}: no weights in this run folder (was training stopped before the first "
                       "save?); train again or pick another --run-dir")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # Keras writes a compiled model's optimizer variables into the same file; building the
        # optimizer first lets them load (resume continues Adam's moments instead of resetting them).
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except (ValueError, OSError) as err:   # another architecture's file, or a damaged one
        raise RunError(f"{path}: these weights do not fit the model in config.json ({err}); "
                       "the run folder is damaged or mixed up") from None


def save_optimizer(optimizer, path: Path) -> None:
    store: dict = {}
    optimizer.save_own_variables(store)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{str(k): np.asarray(v) for k, v in store.items()})
    tmp.replace(path)


def load_optimizer(optimizer, variables, path: Path) -> bool:
    """Restore optimizer state saved by :func:`save_optimizer`; False if there is none."""
    if not path.exists():
        return False
    optimizer.build(variables)
    with np.load(path, allow_pickle=False) as data:
        optimizer.load_own_variables({k: data[k] for k in data.files})
    return True
