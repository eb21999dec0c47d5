"""The runs the demo page offers (the latest run of each model, runs given by path, the shipped
pretrained runs) and what each takes besides photos: a class (fusion_label), a decoding temperature.

Whether a run takes a temperature is asked of its Colorizer (``run_temperature``), so the page has
no per-model code: a run whose Colorizer has a default decoding temperature (a classification
head's) gets the control, and the value chosen is set on that Colorizer (``set_temperature``: its
``set_decoding`` when it has one, which checks the value) before it colorizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import runs
from inference import Colorizer, pretrained
from loaders.cifar import relative
from models import MODEL_NAMES, get_spec


@dataclass(frozen=True)
class RunChoice:
    model: str
    run_dir: Path
    origin: str                     # "latest run", "pretrained" or "--run-dir"
    temperature: float | None = None   # the run's default decoding temperature; None: it takes none
    faithful: bool = False             # it can also decode for fidelity (set_faithful): it records class rebalancing

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


def run_temperature(config: dict) -> float | None:
    """A run's default decoding temperature when its Colorizer takes one, else None.

    Asked of the Colorizer itself (built from the config alone, without the network): its
    ``temperature`` (the run's recorded default), kept only if its ``set_decoding`` accepts that
    value back, since a Colorizer may carry a default its model does not use.
    """
    probe = Colorizer(config, network=None)
    value = getattr(probe, "temperature", None)
    if value is None:
        return None
    if hasattr(probe, "set_decoding"):
        try:
            probe.set_decoding(temperature=value)
        except ValueError:   # the model has no use for a temperature
            return None
    return float(value)


def set_temperature(colorizer, temperature: float | None) -> None:
    """Decode with ``temperature`` from now on (None: leave the colorizer as it is)."""
    if temperature is None:
        return
    if hasattr(colorizer, "set_decoding"):
        colorizer.set_decoding(temperature=temperature)
    else:
        colorizer.temperature = float(temperature)


def set_faithful(colorizer, faithful: bool) -> None:
    """Decode for fidelity (T = 1, the class rebalancing undone: the expected color) or, when False,
    as the run decodes by default (its config.json's undo_rebalancing, absent: as trained); for runs
    whose RunChoice is ``faithful`` only."""
    colorizer.set_decoding(temperature=1.0 if faithful else None,
                           undo_rebalancing=1.0 if faithful else colorizer.default_undo_rebalancing)


def choice(run_dir: Path, origin: str) -> RunChoice:
    config = runs.load_config(run_dir)
    temperature = run_temperature(config)
    return RunChoice(config["model"], Path(run_dir), origin, temperature,
                     faithful=temperature is not None and bool(config.get("class_rebalancing")))


def find_runs(runs_dir: Path = runs.RUNS_DIR, extra: list[Path] = (),
              pretrained_dir: Path | None = None) -> list[RunChoice]:
    """Runs given with --run-dir first, then the latest run of each model, then the pretrained ones
    (those under ``pretrained_dir``, default inference.pretrained.PRETRAINED_DIR: the runs shipped with the
    repository, when it has any)."""
    pretrained_dir = pretrained.PRETRAINED_DIR if pretrained_dir is None else Path(pretrained_dir)
    choices = [choice(Path(p), "--run-dir") for p in extra]
    for model in MODEL_NAMES:
        try:
            latest = runs.latest_run(model, Path(runs_dir))
        except runs.RunError:
            continue   # no run of this model: not offered
        choices.append(choice(latest, "latest run"))
    if pretrained_dir.is_dir():
        choices += [choice(config.parent, "pretrained") for config in sorted(pretrained_dir.glob("*/config.json"))]
    seen: set[Path] = set()
    unique = []
    for c in choices:   # a run given twice (or the latest one also given by path) is offered once
        if c.run_dir.resolve() not in seen:
            seen.add(c.run_dir.resolve())
            unique.append(c)
    return unique
