"""Checkpoints: crash-safe, verified units of a run's training state.

Inside a run folder::

    checkpoints/
        step-000000120/          one complete checkpoint (the newest --keep of them are kept)
            model.weights.h5     weights of every part and the optimizer state (the GAN: generator.weights.h5,
                                 discriminator.weights.h5, combined.optimizer.npz)
            state.json           progress: epochs done, global step, the data order to continue with
            manifest.json        size and SHA-256 of every other file; written last
        .tmp-step-000000130/     a checkpoint being written: never read, removed by the next writer

Writing (:func:`write`): the files go into a temporary folder and are flushed to disk, the manifest last;
one ``rename`` then makes the folder a checkpoint. A crash or ``kill -9`` at any moment leaves the earlier
checkpoints untouched and the new one either complete or invisible. Older checkpoints are removed only
after the new one is in place.

Reading (:func:`find`): the newest checkpoint whose files match its manifest (sizes and checksums); newer
ones that do not are skipped, each with a note saying why. Run folders written before checkpoints existed
(weights files directly in the run folder, next to ``state.json``) are read as one "legacy" checkpoint.

Nothing here knows Keras: callers pass functions that write each file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import faults

FOLDER = "checkpoints"
MANIFEST = "manifest.json"
STATE = "state.json"
FORMAT = 1
_NAME = re.compile(r"^step-(\d{9,})$")
# Checkpoint folders this process wrote or verified: pruning need not hash them again. Only the single
# writer of a run folder (the one holding its lock) changes them.
_verified: set[Path] = set()
# Weights files of run folders written before checkpoints existed, directly in the run folder.
LEGACY_FILES = ("model.weights.h5", "generator.weights.h5", "discriminator.weights.h5", "combined.optimizer.npz")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass
class Checkpoint:
    """A complete checkpoint: its folder (the run folder itself for a legacy run), step and state."""
    path: Path
    step: int
    state: dict
    legacy: bool = False
    files: dict = field(default_factory=dict)   # name -> {"size", "sha256"} (empty for a legacy run)

    def file(self, name: str) -> Path:
        return self.path / name

    def describe(self) -> str:
        return f"{self.path} (step {self.step})"


def folder_name(step: int) -> str:
    return f"step-{step:09d}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- writing -------------------------------------------------------------------------------------

def write(run_dir: Path, step: int, state: dict, writers: dict[str, Callable[[Path], None]],
          keep: int = 2) -> Checkpoint:
    """Write one checkpoint of ``step``: ``writers`` maps each file name to a function writing it.

    Returns the new checkpoint. Keeps the newest ``keep`` (at least 1) complete checkpoints.
    The caller must be the only writer of the run folder (core.runs.lock).
    """
    root = Path(run_dir) / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    final = root / folder_name(step)
    if final.exists():
        try:
            return _read(final)   # already saved at this step (e.g. a signal right after a step checkpoint)
        except CheckpointError:
            _discard(final)       # a damaged one of the same step (after falling back past it): replace it
    tmp = root / f".tmp-{folder_name(step)}"
    tmp.mkdir()
    manifest = {"format": FORMAT, "step": step, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": {}}
    for i, (name, write_file) in enumerate({**writers, STATE: lambda p: _write_json(p, state)}.items()):
        path = tmp / name
        write_file(path)
        manifest["files"][name] = {"size": path.stat().st_size, "sha256": _flush_and_hash(path)}
        if i == 0:
            faults.pause("checkpoint-write")   # tests: a kill here leaves a half-written temporary folder
    _write_json(tmp / MANIFEST, manifest)
    _fsync(tmp / MANIFEST)
    _fsync_dir(tmp)
    faults.pause("checkpoint-rename")          # tests: complete but not yet visible
    os.replace(tmp, final)                     # the one atomic step that makes it current
    _fsync_dir(root)
    _verified.add(final)
    faults.pause("checkpoint-prune")           # tests: visible, the older ones not yet removed
    _prune(root, keep, step)
    return Checkpoint(final, step, state, files=manifest["files"])


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _flush_and_hash(path: Path) -> str:
    """SHA-256 of the file as it will be read back, after forcing it to disk."""
    digest = sha256(path)
    _fsync(path)
    return digest


def _fsync(path: Path, flags: int = os.O_RDWR) -> None:
    fd = os.open(path, flags)   # read-write: Windows flushes only handles opened for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (POSIX; Windows cannot open folders)."""
    try:
        _fsync(path, os.O_RDONLY)
    except OSError:
        pass


def _remove_leftovers(root: Path) -> None:
    """Temporary folders of writers that died (only one writer runs at a time: they are dead)."""
    for path in root.iterdir():
        if path.name.startswith((".tmp-", ".trash-")):
            shutil.rmtree(path, ignore_errors=True)


def _discard(path: Path) -> None:
    """Remove a checkpoint folder: renamed away first, so no reader ever sees it half deleted."""
    _verified.discard(path)
    trash = path.with_name(f".trash-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _prune(root: Path, keep: int, newest: int) -> None:
    """After writing step ``newest``: keep the newest ``keep`` complete checkpoints up to it, remove
    everything older, and anything newer (damaged ones a resume fell back past: training has moved on)."""
    steps = _steps(root)
    complete = [s for s in steps if s <= newest and _is_complete(root / folder_name(s))]
    kept = complete[-max(1, keep):]
    for s in steps:
        if s < kept[0] or s > newest:
            _discard(root / folder_name(s))


def _steps(root: Path) -> list[int]:
    """Steps of the checkpoint folders under root, ascending."""
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir())


def _is_complete(path: Path) -> bool:
    if path in _verified:
        return True
    try:
        _read(path)
        return True
    except CheckpointError:
        return False


# ---- reading -------------------------------------------------------------------------------------

def find(run_dir: Path) -> tuple[Checkpoint | None, list[str]]:
    """(the newest complete checkpoint or None, one note per newer one that was skipped and why).

    A run folder without checkpoints/ but with weights files directly inside (written before this
    module existed) gives a legacy checkpoint, read without verification (it has no manifest).
    """
    run_dir = Path(run_dir)
    root = run_dir / FOLDER
    notes: list[str] = []
    for step in reversed(_steps(root)):
        try:
            return _read(root / folder_name(step)), notes
        except CheckpointError as err:
            notes.append(str(err))
    if any((run_dir / name).exists() for name in LEGACY_FILES):
        state = _legacy_state(run_dir)
        return Checkpoint(run_dir, int(state.get("step", 0)), state, legacy=True), notes
    return None, notes


def _read(path: Path) -> Checkpoint:
    """The checkpoint in ``path``, verified against its manifest; CheckpointError naming what is wrong."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MANIFEST})")
    manifest = _load_json(manifest_path)
    files = manifest.get("files")
    if manifest.get("format") != FORMAT or not isinstance(files, dict) or STATE not in files:
        raise CheckpointError(f"{manifest_path}: not a checkpoint manifest of format {FORMAT}")
    for name, expected in files.items():
        file = path / name
        if not isinstance(expected, dict) or Path(name).name != name:
            raise CheckpointError(f"{manifest_path}: bad entry for '{name}'")
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        size = file.stat().st_size
        if size != expected.get("size"):
            raise CheckpointError(f"{file}: {size} bytes, the manifest says {expected.get('size')} "
                                  "(truncated or changed)")
        if sha256(file) != expected.get("sha256"):
            raise CheckpointError(f"{file}: checksum differs from the manifest (the file is damaged)")
    state = _load_json(path / STATE)
    step = state.get("step")
    if not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path / STATE}: no valid 'step'")
    _verified.add(path)
    return Checkpoint(path, step, state, files=files)


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:   # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path}: unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return data


def _legacy_state(run_dir: Path) -> dict:
    path = run_dir / STATE
    if not path.exists():
        return {"epoch": 0, "step": 0}
    try:
        state = _load_json(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; the run folder is damaged") from None
    return state
