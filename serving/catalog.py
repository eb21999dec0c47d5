"""The runs the demo page offers (the latest run of each model, runs given by path, the shipped
pretrained runs) and what each takes besides photos: a class (fusion_label), a decoding temperature.

Whether a model takes a temperature is asked of the model registry (``default_temperature``), so the
page has no per-model code: a model whose ModelSpec has a ``temperature`` (its default) gets the
control, and the value chosen is set on its Colorizer (``set_temperature``) before it colorizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import runs
from dataset import relative
from models import MODEL_NAMES, get_spec

PRETRAINED_DIR = runs.ROOT / "pretrained"   # runs shipped with the repository, when it has any


@dataclass(frozen=True)
class RunChoice:
    model: str
    run_dir: Path
    origin: str                     # "latest run", "pretrained" or "--run-dir"

    @property
    def temperature(self) -> float | None:
        """The default decoding temperature when the model takes one, else None."""
        return default_temperature(self.model)

    @property
    def key(self) -> str:
        """The form value: the run folder, which the page only sends back (never a path it made up)."""
        return str(self.run_dir)

    @property
    def title(self) -> str:
        return f"{self.model}: {self.origin} ({relative(self.run_dir)})"

    @property
    def needs_label(self) -> bool:
        return get_spec(self.model).prior == "label"


def default_temperature(model: str) -> float | None:
    """A model's default temperature (its ModelSpec's ``temperature``), None for a model without one."""
    value = getattr(get_spec(model), "temperature", None)
    return None if value is None else float(value)


def set_temperature(colorizer, temperature: float | None) -> None:
    """Decode with ``temperature`` from now on (None: leave the colorizer as it is)."""
    if temperature is not None:
        colorizer.temperature = float(temperature)


def _model_of(run_dir: Path) -> str:
    return runs.load_config(run_dir)["model"]


def find_runs(runs_dir: Path = runs.RUNS_DIR, extra: list[Path] = (), pretrained_dir: Path = PRETRAINED_DIR) -> list[RunChoice]:
    """Runs given with --run-dir first, then the latest run of each model, then the pretrained ones."""
    choices = [RunChoice(_model_of(Path(p)), Path(p), "--run-dir") for p in extra]
    for model in MODEL_NAMES:
        try:
            choices.append(RunChoice(model, runs.latest_run(model, Path(runs_dir)), "latest run"))
        except runs.RunError:
            pass   # no run of this model: not offered
    if pretrained_dir.is_dir():
        for config in sorted(pretrained_dir.glob("*/config.json")):
            choices.append(RunChoice(_model_of(config.parent), config.parent, "pretrained"))
    seen: set[Path] = set()
    unique = []
    for c in choices:   # a run given twice (or the latest one also given by path) is offered once
        if c.run_dir.resolve() not in seen:
            seen.add(c.run_dir.resolve())
            unique.append(c)
    return unique
