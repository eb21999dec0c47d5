"""Run folders written before the layout change still load, predict and resume.

The configs in tests/fixtures/runs-before-layout/ were written by train.py at the last commit of
the flat layout; the weight files are written here as that code wrote them (see the README there).
"""
from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from conftest import ROOT, SAMPLE, progress, run_script

FIXTURES = ROOT / "tests" / "fixtures" / "runs-before-layout"


def legacy_run(tmp_path, model: str):
    """A copy of the fixture folder with its run_dir pointing at the copy, and its config."""
    run_dir = tmp_path / model
    shutil.copytree(FIXTURES / model, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["run_dir"] = str(run_dir)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return run_dir, config


@pytest.fixture
def autoencoder_run(tmp_path):
    """The 8 px autoencoder run: weights and Adam state as trainer.save_checkpoint wrote them."""
    from models import build_model

    run_dir, config = legacy_run(tmp_path, "autoencoder")
    keras.utils.set_random_seed(1)
    model = build_model("autoencoder", **config["model_options"])
    size = config["model_options"]["image_size"]
    model.train_on_batch(np.full((2, size, size, 1), 0.5, np.float32), np.full((2, size, size, 2), 0.5, np.float32))
    model.save_weights(run_dir / "model.weights.h5")
    return run_dir, model


def test_fixture_configs_are_the_old_codes():
    for model in ("autoencoder", "gan"):
        config = json.loads((FIXTURES / model / "config.json").read_text())
        assert config["model"] == model and config["command"].startswith(f"train.py -m {model}")
        assert json.loads((FIXTURES / model / "state.json").read_text()) == {"epoch": 1, "step": 1}


def test_old_run_colorizes_like_its_network(autoencoder_run):
    from core import colorspace
    from inference import Colorizer
    from loaders import cifar

    run_dir, model = autoencoder_run
    images = cifar.load_images(SAMPLE / "val", image_size=8).images[:4]
    colorizer = Colorizer.from_run(run_dir)
    x, _ = colorspace.encode_lab(images)                              # (4, 8, 8, 1), L / 100
    expected = colorspace.decode_lab(x, np.clip(model.predict_on_batch(x), 0.0, 1.0))
    np.testing.assert_allclose(colorizer.colorize(images), expected, atol=1e-5)


def test_old_run_predicts_and_resumes(autoencoder_run, tmp_path):
    run_dir, _ = autoencoder_run
    run_script("predict.py", "-m", "autoencoder", "--run-dir", run_dir, "--limit", "8", "--out", tmp_path / "out")
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 1
    result = run_script("train.py", "-m", "autoencoder", "--resume", "--run-dir", run_dir, "--epochs", "2")
    assert "resuming after epoch 1" in result.stdout
    assert progress(run_dir)[0] == 2
    assert (run_dir / "model.weights.h5").exists()                # the old files stay; checkpoints/ is newer


def test_old_gan_run_loads_its_generator(tmp_path):
    from inference import Colorizer
    from models.gan import build_generator

    run_dir, config = legacy_run(tmp_path, "gan")
    options = config["model_options"]
    generator = build_generator(options["image_size"], options["color_space"])
    generator.save_weights(run_dir / "generator.weights.h5")
    colorizer = Colorizer.from_run(run_dir)
    assert colorizer.color_space == "LAB_SYM"
    images = np.full((2, 32, 32, 3), 128, np.uint8)
    out = colorizer.colorize(images)
    assert out.shape == (2, 32, 32, 3) and np.isfinite(out).all()
