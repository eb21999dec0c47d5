"""Run folders: every training run writes one, and predict.py rebuilds the model from it alone.

Layout of ``runs/<model>/<run-id>/``::

    config.json                 resolved configuration (model, options, data, seed, versions)
    checkpoints/step-NNNNNNNNN/ the training state, one verified unit per checkpoint (core.checkpoints):
        model.weights.h5        weights and optimizer state (the GAN: generator.weights.h5,
                                discriminator.weights.h5, and combined.optimizer.npz for the optimizer
                                of a model saved without it)
        state.json              progress: epochs and steps done, the data order to continue with
        manifest.json           sizes and checksums of the files above
    summary.txt                 the model summary
    samples/                    sample grids written during training
    .lock                       held by the train.py writing the run (one writer per run folder)

Run folders written before checkpoints existed hold the weights files and ``state.json`` directly
in the run folder; they load as before (:func:`current_checkpoint` reads both layouts).

TensorBoard logs of the run go to ``logs/<model>/<run-id>/``. Nothing here ever unpickles or
deserializes code: configs are JSON, weights are HDF5 arrays, optimizer state is ``.npz``
read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from core import checkpoints

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
        config = json.loads(path.read_bytes())
    except ValueError as err:   # JSONDecodeError, UnicodeDecodeError
        raise RunError(f"{path}: not valid JSON ({' '.join(str(err).split())[:120]}); the run folder is "
                       "damaged") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str) or \
            not isinstance(config.get("model_options"), dict):
        raise RunError(f"{path}: not a run configuration (no model and model_options); the run folder is damaged")
    return config


_HELD: list = []   # the run folder locks this process holds


def lock(run_dir: Path) -> None:
    """Make this process the only writer of ``run_dir`` until it exits; RunError if another holds it.

    The lock is the operating system's (``flock`` through the filelock package), so a crashed or
    killed process holds none: its run folder is free at once, nothing to clean up.
    """
    import filelock

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    held = filelock.FileLock(run_dir / ".lock", timeout=0)
    try:
        held.acquire()
    except filelock.Timeout:
        raise RunError(f"{run_dir} is being trained by another process{_owner(run_dir)}; wait for it to end "
                       "(or stop it), or use another --run-dir") from None
    _HELD.append(held)   # kept referenced: released when the process ends
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
             "command": " ".join(sys.argv)}
    save_json(run_dir / ".lock.owner", owner)



def _owner(run_dir: Path) -> str:
    try:
        owner = json.loads((run_dir / ".lock.owner").read_text())
        return f" (pid {owner['pid']} on {owner['host']}, since {owner['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def current_checkpoint(run_dir: Path, announce: bool = True) -> checkpoints.Checkpoint | None:
    """The run's newest complete checkpoint (or its weights files, for a run folder of the older
    layout); None if training never saved one. Newer checkpoints that are incomplete or damaged are
    skipped, with a warning on stderr naming the file (``announce``).

    RunError (one line naming the file and the fix) when checkpoints exist but none is complete.
    """
    run_dir = Path(run_dir)
    try:
        found, skipped = checkpoints.find(run_dir)
    except checkpoints.CheckpointError as err:
        raise RunError(str(err)) from None
    if found is None and skipped:
        raise RunError(f"{skipped[0]}; no earlier complete checkpoint in {run_dir / checkpoints.FOLDER}: "
                       "start a new run (or delete that folder to train this run again from the start)")
    if announce:
        for note in skipped:
            print(f"warning: {note}; using the previous checkpoint, {found.describe()}", file=sys.stderr)
    return found


def load_state(run_dir: Path) -> dict:
    """Progress of the run's current checkpoint: ``epoch`` (done), ``step`` (global), ...; zeros if none."""
    found = current_checkpoint(run_dir, announce=False)
    return dict(found.state) if found is not None else {"epoch": 0, "step": 0}


def weights_file(where: checkpoints.Checkpoint | Path, part: str = "model") -> Path:
    """``<part>.weights.h5`` in a checkpoint, or directly in a folder (the older run folder layout)."""
    folder = where.path if isinstance(where, checkpoints.Checkpoint) else Path(where)
    return folder / f"{part}.weights.h5"


def load_weights(model, run_dir: Path, part: str = "model",
                 checkpoint: checkpoints.Checkpoint | None = None, optimizer_state: bool = True) -> None:
    """Load ``<part>.weights.h5`` of the run's current checkpoint (or of ``checkpoint``); for a compiled
    model this restores the optimizer state too. The one way every tool loads a run's weights.

    The optimizer is built on the model's *trainable* variables, so a frozen model (the GAN's
    discriminator) must be made trainable before loading, as the GAN loop does. ``optimizer_state``
    False (colorizing: no optimizer needed): the network's weights alone, whatever the optimizer saved
    (a run that trained some layers only, train.py --train-new-only, saved fewer optimizer variables
    than the model compiled for all of them has, which Keras would warn about).
    """
    checkpoint = checkpoint or current_checkpoint(run_dir)
    if checkpoint is None:
        raise RunError(f"{run_dir}: no weights in this run folder (was training stopped before the first "
                       "checkpoint?); train again or pick another --run-dir")
    path = weights_file(checkpoint, part)
    if not path.exists():
        raise RunError(f"{path}: missing; the run folder is damaged or mixed up (pick another --run-dir)")
    optimizer = getattr(model, "optimizer", None)
    if optimizer_state and optimizer is not None and not optimizer.built:
        # Keras writes a compiled model's optimizer variables into the same file; building the
        # optimizer first lets them load (resume continues Adam's moments instead of resetting them).
        optimizer.build(model.trainable_variables)
    try:
        with warnings.catch_warnings():
            if not optimizer_state:
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(path)
    except (ValueError, OSError, KeyError, TypeError) as err:   # another architecture's file, or a damaged one
        message = " ".join(str(err).split())[:300]
        raise RunError(f"{path}: these weights do not fit the model in config.json ({message}); "
                       "the run folder is damaged or mixed up") from None


def save_optimizer(optimizer, path: Path) -> None:
    """The optimizer's variables as ``.npz`` (the GAN's combined model, saved without its network)."""
    store: dict = {}
    optimizer.save_own_variables(store)
    with open(path, "wb") as f:   # a file object: np.savez would append .npz to a bare name
        np.savez(f, **{str(k): np.asarray(v) for k, v in store.items()})


def load_optimizer(optimizer, variables, path: Path) -> bool:
    """Restore optimizer state saved by :func:`save_optimizer`; False if there is none."""
    if not path.exists():
        return False
    optimizer.build(variables)
    try:
        with np.load(path, allow_pickle=False) as data:
            optimizer.load_own_variables({k: data[k] for k in data.files})
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:   # a damaged or foreign file
        raise RunError(f"{path}: cannot restore the optimizer state ({' '.join(str(err).split())[:200]}); "
                       "the run folder is damaged or mixed up") from None
    return True
