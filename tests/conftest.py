import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tools' default runtime is "auto" (ONNX Runtime, its files made with Keras on first use: seconds per
# run and working size). The suite's throwaway runs would each pay that, so tests run Keras unless they
# ask for ONNX themselves (tests/test_lean.py); subprocesses inherit this.
os.environ["COLORIZE_RUNTIME"] = "keras"

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def sample_val():
    from loaders import cifar
    return cifar.load_images(SAMPLE / "val")


def run_script(*args, expect: int = 0, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would (python SCRIPT ARGS, from the repo root)."""
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def progress(run_dir) -> tuple[int, int]:
    """(epochs done, global step) of a run's current checkpoint."""
    from core import runs
    state = runs.load_state(Path(run_dir))
    return state["epoch"], state["step"]


def trained_run(tmp_path_factory, model: str, logs: bool = False) -> Path:
    """A one-step run of ``model`` in <session tmp>/runs/<model>/r1, trained once per test session.

    The runs live in one folder per session so that compare.py's --runs-dir finds all of them.
    """
    base = tmp_path_factory.getbasetemp()
    run_dir = base / "runs" / model / "r1"
    if not (run_dir / "checkpoints").exists():
        args = ["train.py", "-m", model, "--epochs", "1", "--steps", "1", "--limit", "16", "--seed", "1",
                "--run-dir", run_dir]
        args += ["--log-dir", base / "logs" / model / "r1"] if logs else ["--no-logs"]
        run_script(*args)
    return run_dir


@pytest.fixture(scope="session")
def unet_run(tmp_path_factory):
    return trained_run(tmp_path_factory, "unet")


def built_run(tmp_path_factory, model: str, color_space: str | None = None, **overrides) -> Path:
    """A run folder of ``model`` with untrained weights, written in-process once per session (seconds, not
    train.py's minutes).

    What train.py would leave after its first epoch: config.json (model and options, the prior of
    fusion_resnet), the weights (the GAN: its generator's), state.json. For tools whose tests need a
    real run folder but not a trained model (export parity, the demo page).
    """
    import importlib

    import keras

    from core import runs
    from models import build_model, get_spec

    spec = get_spec(model)
    name = model if color_space is None else f"{model}-{color_space}"
    name += "".join(f"-{k}{v}" for k, v in sorted(overrides.items()))
    run_dir = tmp_path_factory.getbasetemp() / "built-runs" / name
    if (run_dir / "config.json").exists():
        return run_dir
    options = {"image_size": 32, "precision": "float32"}
    module = importlib.import_module(f"models.{model}")
    if hasattr(module, "options"):   # a model that records its defaults in config.json (their values matter)
        options.update(module.options(32, **overrides))
    if spec.trainer == "gan":
        options["color_space"] = color_space or "rgb"
    config = {"model": model, "model_options": options, "seed": 1, "log_dir": None}
    if spec.prior == "classifier":
        config["prior"] = {"backbone": "efficientnet_lite0", "weights": None, "allow_random_weights": False}
    keras.utils.set_random_seed(1)
    built = build_model(model, **options)
    run_dir.mkdir(parents=True)
    if spec.trainer == "gan":
        built.generator.save_weights(runs.weights_file(run_dir, "generator"))
    else:
        built.optimizer.build(built.trainable_variables)   # saved with its (fresh) state, as training saves
        built.save_weights(runs.weights_file(run_dir, "model"))
    runs.save_json(run_dir / "state.json", {"epoch": 1, "step": 1})
    runs.save_json(run_dir / "config.json", config)   # last: a folder with a config is a complete run
    return run_dir
