"""Every model trains and predicts under the JAX and PyTorch backends of Keras 3, without TensorFlow.

Each backend runs in a subprocess with ``KERAS_BACKEND=<backend>`` (Keras picks its backend once,
at import) and with ``tensorflow`` blocked (``sys.modules["tensorflow"] = None``), so an import of
TensorFlow anywhere fails there just as in an environment that never installed it, even though
CI's one virtual environment holds TensorFlow, JAX and PyTorch side by side.

Interpreter: this one, or ``BACKEND_PYTHON_JAX`` / ``BACKEND_PYTHON_TORCH`` naming another (such
as a venv made from requirements-jax.txt). A backend whose package is not installed there is
skipped with the reason, unless ``REQUIRE_BACKENDS`` (set by .ci/run) names it: then it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHARED
from core import runs, tblog
from models import MODEL_NAMES

BACKENDS = ("jax", "torch")
MODELS = MODEL_NAMES   # every registered model (the driver loops over the registry too)
REFERENCE = SHARED / "reference" / "efficientnet_lite0_reference.npz"

# Lines run before anything else in the subprocess: TensorFlow becomes unimportable.
_NO_TF = "import sys; sys.modules['tensorflow'] = None"

# One training step, a prediction and a weights round trip per model, and the colors of a TensorFlow-trained
# run; prints one JSON object.
DRIVER = r'''
import sys
sys.modules["tensorflow"] = None   # as if TensorFlow were not installed
import json, os, tempfile, traceback
from pathlib import Path

root, reference = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(root))
os.chdir(root)

import keras
import numpy as np

import priors
from core import runs
from inference import Colorizer, data_color_space
from loaders import cifar
from loaders.cifar import CifarGenerator
from models import MODEL_NAMES, build_model, get_spec

tmp = Path(tempfile.mkdtemp())
priors.CACHE_DIR = tmp          # converted weights and priors: fresh, out of the repository's cache/
out = {"backend": keras.backend.backend(), "models": {}}


def snapshot(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def changed(before, model):
    return any(not np.array_equal(a, b) for a, b in zip(before, snapshot(model)))


data = cifar.load_images(root / "data" / "sample" / "val").subset(8)

# The EfficientNet-Lite0 port: converted from the PyTorch checkpoint under this backend.
try:
    from priors import efficientnet_lite0 as eff
    net = eff.load_efficientnet_lite0(cache_dir=tmp / "weights" / "shipped")   # where priors looks
    if reference.is_file():
        ref = np.load(reference)
        names = ["chelsea", "coffee", "astronaut"]
        x = np.zeros((len(data), 224, 224, 3), np.float32)   # the prior's batch shape: eager JAX compiles
        x[:3] = np.stack([ref[f"{n}_input"] for n in names])  # each op per shape, fusion_resnet reuses them
        logits = keras.ops.convert_to_numpy(net(x, training=False))
        out["efficientnet_max_err"] = max(float(np.abs(logits[i] - ref[f"{n}_logits"]).max())
                                          for i, n in enumerate(names))
    del net
except Exception:
    out["efficientnet_error"] = traceback.format_exc()

# set_random_seed makes initial weights reproducible (a small layer: eager JAX compiles every new op).
def seeded_kernel():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    return keras.ops.convert_to_numpy(layer.kernel)


out["seed_reproducible"] = bool(np.array_equal(seeded_kernel(), seeded_kernel()))
for name in MODEL_NAMES:
    r = out["models"][name] = {}
    try:
        keras.utils.set_random_seed(1)
        spec = get_spec(name)
        options = {"image_size": 32}
        if spec.trainer == "gan":
            options["color_space"] = "rgb"
        config = {"model": name, "model_options": options}
        prior, targets = None, None
        if spec.prior == "encoder":   # the real encoder, at a tiny size (32 px: taps 8x8 .. 1x1)
            from core import ab_bins
            from inference.colorizer import encoder_features
            from models.effnet_unet import options as effnet_options
            options = config["model_options"] = effnet_options(32, encoder_size=32)
            prior = encoder_features(config, data.images, cache=False)
            weights = np.ones(len(ab_bins.gamut_bins()), np.float32)
            targets = lambda y: ab_bins.pack_targets(y * 255 - 128, weights)
        if spec.prior == "classifier":
            config["prior"] = {"backbone": "efficientnet_lite0", "weights": None, "allow_random_weights": False}
            prior = priors.compute_prior(data.images, cache_dir=tmp / "priors", verbose=False,
                                         **priors.prior_options(config))
            r["prior_rows_sum_to_1"] = bool(np.allclose(prior.sum(axis=1), 1.0, atol=1e-4))
        built = build_model(name, **options)
        batch = CifarGenerator(data, 8, data_color_space(config), shuffle=False, prior=prior,
                               target_transform=targets)[0]
        if spec.trainer == "gan":
            from training import gan_loop
            g0, d0 = snapshot(built.generator), snapshot(built.discriminator)
            losses = gan_loop.train_step(built, *batch)          # (real color, gray condition)
            r["loss"], r["d_loss"] = losses["g_loss"], losses["d_loss"]
            r["weights_changed"] = changed(g0, built.generator) and changed(d0, built.discriminator)
            network = built.generator
        else:
            w0 = snapshot(built)
            r["loss"] = float(built.train_on_batch(*batch, return_dict=True)["loss"])
            r["weights_changed"] = changed(w0, built)
            network = built
        colors = Colorizer(config, network).colorize(data.images, data.labels, prior)
        r.update(shape=list(colors.shape), dtype=str(colors.dtype), min=float(colors.min()),
                 max=float(colors.max()), finite=bool(np.isfinite(colors).all()))

        # .weights.h5 round trip (with the optimizer state), as predict.py and --resume do it. Weights
        # are compared, not predictions: a new model is a new JAX compilation (seconds each).
        run_dir = tmp / "runs" / name
        run_dir.mkdir(parents=True)
        again = build_model(name, **options)
        if spec.trainer == "gan":
            gan_loop.save_checkpoint(built, run_dir, {"epoch": 1, "step": 1})
            gan_loop.restore_checkpoint(again, run_dir)
            r["optimizer_steps"] = int(keras.ops.convert_to_numpy(again.combined.optimizer.iterations))
            pairs = [(built.generator, again.generator), (built.discriminator, again.discriminator)]
        else:
            from training import fit
            fit.save_checkpoint(built, run_dir, {"epoch": 1, "step": 1})
            runs.load_weights(again, run_dir)
            r["optimizer_steps"] = int(keras.ops.convert_to_numpy(again.optimizer.iterations))
            pairs = [(built, again)]
        r["reloaded_identical"] = all(np.array_equal(a, b) for m, n in pairs
                                      for a, b in zip(snapshot(m), snapshot(n)))
    except Exception:
        r["error"] = traceback.format_exc()

# A run trained with TensorFlow (the suite's unet run) colorizes the given images here too (argv 3-5).
try:
    np.save(sys.argv[5], Colorizer.from_run(sys.argv[3]).colorize(np.load(sys.argv[4])))
except Exception:
    out["tensorflow_run_error"] = traceback.format_exc()

out["tensorflow_imported"] = any(m == "tensorflow" or m.startswith("tensorflow.")
                                 for m, mod in sys.modules.items() if mod is not None)
print("RESULT " + json.dumps(out))
'''


def backend_python(backend: str) -> str:
    """The interpreter that runs ``backend``; skips (or fails, if required) when it lacks the package."""
    python = os.environ.get(f"BACKEND_PYTHON_{backend.upper()}") or sys.executable
    probe = subprocess.run([python, "-c",
                            f"import importlib.util as u, sys; sys.exit(u.find_spec({backend!r}) is None)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        why = (f"Keras backend '{backend}' not tested: package '{backend}' is not installed for {python} "
               f"(pip install -r requirements-{backend}.txt, or set BACKEND_PYTHON_{backend.upper()})")
        required = [b.strip() for b in os.environ.get("REQUIRE_BACKENDS", "").split(",") if b.strip()]
        if backend in required:
            pytest.fail(why + "; REQUIRE_BACKENDS asks for it")
        pytest.skip(why)
    return python


def run_backend(backend: str, python: str, args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([python, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{backend}: {' '.join(args[:3])} failed\n"
                                    + result.stdout[-3000:] + result.stderr[-3000:])
    return result


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    return request.param, backend_python(request.param)


@pytest.fixture(scope="module")
def driver(backend, tmp_path_factory, unet_run):
    """What DRIVER printed under ``backend``, with the images it colorized with ``unet_run`` and its colors."""
    name, python = backend
    folder = tmp_path_factory.mktemp(f"driver-{name}")
    script, images, colors = folder / "driver.py", folder / "images.npy", folder / "colors.npy"
    script.write_text(DRIVER)
    np.save(images, np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    result = run_backend(name, python, [str(script), str(ROOT), str(REFERENCE), str(unet_run), str(images),
                                        str(colors)])
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), "images": images, "colors": colors}


def test_backend_is_used_and_tensorflow_is_not(driver, backend):
    assert driver["backend"] == backend[0]
    assert driver["tensorflow_imported"] is False
    assert driver["seed_reproducible"] is True


def test_efficientnet_lite0_matches_the_pytorch_reference(driver):
    assert "efficientnet_error" not in driver, driver["efficientnet_error"]
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} (shared reference outputs) is not available")
    assert driver["efficientnet_max_err"] < 1e-3


@pytest.mark.parametrize("model", MODELS)
def test_one_training_step_and_a_prediction(driver, model):
    r = driver["models"][model]
    assert "error" not in r, r["error"]
    assert np.isfinite(r["loss"]) and r["weights_changed"], r
    assert r["shape"] == [8, 32, 32, 3] and r["dtype"] == "float32", r
    assert r["finite"] and r["min"] >= 0.0 and r["max"] <= 1.0, r
    assert r["optimizer_steps"] == 1 and r["reloaded_identical"], r
    if model == "gan":
        assert np.isfinite(r["d_loss"])
    if model == "fusion_resnet":
        assert r["prior_rows_sum_to_1"]


def test_logging_does_not_load_tensorflow(backend, tmp_path):
    """Where TensorFlow is installed too (CI), writing logs must not import it (core/tblog.py)."""
    name, python = backend
    code = ("import sys, keras, numpy as np; from core import tblog; w = tblog.SummaryWriter(sys.argv[1]); "
            "w.scalar('loss', 0.5, 1); w.image('img', np.zeros((4, 4, 3), np.uint8), 1); w.close(); "
            "print('TF_LOADED', 'tensorflow' in sys.modules)")
    result = run_backend(name, python, ["-c", code, str(tmp_path / "logs")])
    assert "TF_LOADED False" in result.stdout
    assert tblog.read_scalars(tmp_path / "logs") == {"train": {"loss": [(1, 0.5)]}}


def test_train_and_predict_scripts(backend, tmp_path):
    """train.py (with TensorBoard logs) and predict.py, as a user runs them, TensorFlow unimportable."""
    name, python = backend
    data, run_dir, log_dir, out = tmp_path / "data", tmp_path / "run", tmp_path / "logs", tmp_path / "out"
    data.mkdir()
    for png in sorted((ROOT / "data" / "sample" / "val").glob("*.png"))[:16]:   # 16 images: one batch
        shutil.copy(png, data)
    script = f"{_NO_TF}; import runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    # 2 steps of 8, a checkpoint after each: the one inside the epoch needs the weights that JAX's fit
    # keeps outside the model until the epoch ends (training.fit syncs them back before saving).
    run_backend(name, python, ["-c", script, "train.py", "-m", "unet", "--data", str(data), "--val-data", str(data),
                               "--epochs", "1", "--batch-size", "8", "--save-every", "1", "--seed", "1",
                               "--run-dir", str(run_dir), "--log-dir", str(log_dir)])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["versions"]["backend"] == name and "tensorflow" not in config["versions"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000000001", "step-000000002"]
    assert runs.current_checkpoint(run_dir).file("model.weights.h5").is_file()
    assert (run_dir / "samples" / "epoch-001.jpg").is_file()
    scalars = tblog.read_scalars(log_dir)
    assert [s for s, _ in scalars["train"]["epoch_loss"]] == [1]
    assert np.isfinite(scalars["train"]["epoch_loss"][0][1])
    assert np.isfinite(scalars["validation"]["epoch_loss"][0][1])

    run_backend(name, python, ["-c", script, "predict.py", "-m", "unet", "--run-dir", str(run_dir),
                               "--data", str(data), "--batch-size", "8", "--out", str(out)])
    grids = sorted(out.glob("batch-*.jpg"))
    assert len(grids) == 2
    assert np.asarray(Image.open(grids[0])).shape == (8 * 32, 3 * 32, 3)


def test_a_tensorflow_run_predicts_the_same_colors_on_another_backend(driver, unet_run):
    """Run folders are backend-neutral: a run trained with TensorFlow colorizes identically elsewhere
    (the other backend's colors come from DRIVER's process, which has TensorFlow blocked)."""
    from inference import Colorizer
    assert "tensorflow_run_error" not in driver, driver["tensorflow_run_error"]
    images = np.load(driver["images"])
    expected = Colorizer.from_run(unet_run).colorize(images)        # this process: TensorFlow
    got = np.load(driver["colors"])
    assert got.shape == expected.shape == (6, 32, 32, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4)
