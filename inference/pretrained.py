"""Which run a tool uses: the one asked for, else the latest local run, else the shipped one.

Shipped runs live in ``pretrained/<model>/`` at the top of the repository: ordinary run folders
(config.json, weights, state.json, summary.txt, samples/) committed to git, so that a fresh clone
colorizes without training. They are used only when the model has no run under ``runs/``, and the
tools say so.
"""
from __future__ import annotations

from pathlib import Path

from core import runs
from inference.colorizer import Colorizer
from models import SHIPPED_MODEL, get_spec

PRETRAINED_DIR = runs.ROOT / "pretrained"


def shipped_run(model: str, pretrained_dir: Path | None = None) -> Path | None:
    """``pretrained/<model>`` if the repository ships a run of ``model`` (checked), else None.

    A shipped folder that is there but damaged (no or invalid config.json, no weights, another
    model's config) is an error naming the fix, never silently skipped.
    """
    path = Path(PRETRAINED_DIR if pretrained_dir is None else pretrained_dir) / model
    fix = f"restore it with `git checkout -- {_rel(path)}`, or train your own with `python train.py -m {model}`"
    if not path.exists():
        if model == SHIPPED_MODEL:   # it ships with the code: missing means deleted
            raise runs.RunError(f"no run of {model} under runs/ and the shipped run {_rel(path)} is missing; {fix}")
        return None
    try:
        config = runs.load_config(path)
    except runs.RunError as err:
        raise runs.RunError(f"the shipped run {_rel(path)} is damaged ({err}); {fix}") from None
    if config.get("model") != model:
        raise runs.RunError(f"the shipped run {_rel(path)} holds a '{config.get('model')}' run; {fix}")
    try:
        checkpoint = runs.current_checkpoint(path, announce=False)   # verified against its manifest
    except runs.RunError as err:
        raise runs.RunError(f"the shipped run {_rel(path)} is damaged ({err}); {fix}") from None
    if checkpoint is None or not runs.weights_file(checkpoint).is_file():
        raise runs.RunError(f"the shipped run {_rel(path)} has no model.weights.h5; {fix}")
    return path


def find_run(model: str, run_dir: Path | None = None, runs_dir: Path | None = None,
             pretrained_dir: Path | None = None) -> tuple[Path, str | None]:
    """(run folder, note): ``run_dir`` if given, else the latest run of ``model`` under ``runs_dir``
    (default runs/), else the shipped run (the note then says so, for the tool to print); RunError if none."""
    if run_dir is not None:
        return Path(run_dir), None
    runs_dir = runs.RUNS_DIR if runs_dir is None else runs_dir
    try:
        return runs.latest_run(model, Path(runs_dir)), None
    except runs.RunError:
        shipped = shipped_run(model, pretrained_dir)
        if shipped is None:
            raise
    return shipped, (f"using the shipped run {_rel(shipped)} (no run of {model} under {_rel(Path(runs_dir))}; "
                     f"train your own with `python train.py -m {model}`)")


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(runs.ROOT))
    except ValueError:
        return str(path)


def load_run(model: str, run_dir: Path | None = None, runs_dir: Path | None = None,
             pretrained_dir: Path | None = None, runtime: str | None = None) -> Colorizer:
    """The Colorizer of :func:`find_run`'s run, checked to be a run of ``model``; ``.note`` as find_run's.

    ``runtime``: "auto", "onnx" or "keras" (inference.lean.choose; None: $COLORIZE_RUNTIME, else auto).

    A shipped run whose weights do not load is reported as damaged, with the fix.
    """
    spec = get_spec(model)
    path, note = find_run(spec.name, run_dir, runs_dir, pretrained_dir)
    try:
        colorizer = Colorizer.from_run(path, runtime=runtime)
    except runs.RunError as err:
        if note is None:
            raise
        raise runs.RunError(f"{err} -- restore the shipped run with `git checkout -- {_rel(path)}`") from None
    if colorizer.spec.name != spec.name:
        raise runs.RunError(f"{path} is a run of '{colorizer.spec.name}', not '{spec.name}'")
    colorizer.note = note
    return colorizer
