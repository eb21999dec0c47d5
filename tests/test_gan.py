"""The GAN (models/gan.py) and its manual training loop (gan_loop.py), incl. Keras 3 pitfalls 1-3."""
import io
import json
import os
import signal

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, progress
from conftest import run_script as run
from core import runs, tblog
from core.stopping import Stopped
from inference import Colorizer
from loaders.cifar import CifarGenerator, load_images
from models import build_model
from training import gan_loop
from training.fit import SampleBatch

BATCH = 8


def make_config(run_dir, color_space="rgb", **overrides) -> dict:
    """What train.py's new_config writes for a GAN run (the keys the loop and Colorizer read)."""
    config = {"model": "gan", "model_options": {"image_size": 32, "color_space": color_space},
              "epochs": 1, "batch_size": BATCH, "steps_per_epoch": None, "seed": 7, "sample_every": 1,
              "logs": True, "run_dir": str(run_dir), "log_dir": str(run_dir.parent / "logs")}
    config.update(overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.save_json(run_dir / "config.json", config)
    return config


def weights(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.weights]   # trainable and non-trainable (BN moving stats)


def changed(before, after) -> list[bool]:
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


def bn_moving_stats(model) -> list[np.ndarray]:
    return [np.array(w) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]


@pytest.fixture(scope="module")
def images():
    return load_images(SAMPLE / "val").subset(16)


@pytest.fixture(scope="module")
def rgb():
    keras.utils.set_random_seed(0)
    return build_model("gan", image_size=32, color_space="rgb")


@pytest.fixture(scope="module")
def batch(images):
    real, condition = CifarGenerator(images, BATCH, "RGB", shuffle=False)[0]
    return real, condition


def test_models_have_the_original_shapes(rgb):
    assert rgb.generator.input_shape == (None, 32, 32, 3) and rgb.generator.output_shape == (None, 32, 32, 3)
    assert rgb.generator.layers[-1].activation.__name__ == "tanh"
    assert [tuple(i.shape) for i in rgb.discriminator.inputs] == [(None, 32, 32, 3)] * 2
    assert rgb.patch_shape == (2, 2, 1)
    convs = [l for l in rgb.discriminator.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 128, 128, 128, 1]
    assert [c.strides for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in rgb.discriminator.layers) == 3
    assert rgb.discriminator.loss == "mse"
    assert rgb.combined.loss == ["mse", "mae"]   # weights [1, 100]: checked on the losses of a step
    assert [tuple(o.shape) for o in rgb.combined.outputs] == [(None, 2, 2, 1), (None, 32, 32, 3)]


def test_one_step_trains_both_networks(rgb, batch):
    g0, d0 = weights(rgb.generator), weights(rgb.discriminator)
    losses = gan_loop.train_step(rgb, *batch)
    assert set(losses) == {"g_loss", "g_adv", "g_l1", "d_loss", "d_acc"}
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert 0.0 <= losses["d_acc"] <= 1.0
    assert losses["g_loss"] == pytest.approx(losses["g_adv"] + 100 * losses["g_l1"], rel=1e-4)
    assert all(changed(g0, weights(rgb.generator))[i] for i, w in enumerate(rgb.generator.weights)
               if w.trainable)
    assert all(changed(d0, weights(rgb.discriminator)))   # kernels, biases, BN gammas and moving stats
    # pitfall 2: the combined optimizer adopted exactly G's variables on its first step (D frozen)
    tracked = {id(v) for v in rgb.combined.optimizer._trainable_variables}
    assert tracked == {id(v) for v in rgb.generator.trainable_variables}


def test_discriminator_is_frozen_in_the_generator_step(rgb, batch):
    """Pitfall 1: D changes on its own step only; G changes on the combined step."""
    real, condition = batch
    valid = np.ones((len(real), *rgb.patch_shape), np.float32)
    g0, d0 = weights(rgb.generator), weights(rgb.discriminator)
    gan_loop.set_discriminator_trainable(rgb, False)
    rgb.combined.train_on_batch(condition, [valid, real])
    assert not any(changed(d0, weights(rgb.discriminator)))   # incl. BN moving stats (pitfall 3)
    assert any(changed(g0, weights(rgb.generator)))

    d1 = weights(rgb.discriminator)
    gan_loop.set_discriminator_trainable(rgb, True)
    rgb.discriminator.train_on_batch([real, condition], valid)
    assert all(changed(d1, weights(rgb.discriminator)))
    gan_loop.set_discriminator_trainable(rgb, False)


def test_frozen_discriminator_batchnorm_runs_in_inference_mode(rgb, batch):
    """Pitfall 3: the port keeps Keras 3's behaviour (moving statistics, no update) in the G step."""
    _real, condition = batch
    fake = rgb.generator.predict_on_batch(condition)
    gan_loop.set_discriminator_trainable(rgb, False)
    stats = bn_moving_stats(rgb.discriminator)
    train_mode = np.asarray(rgb.discriminator([fake, condition], training=True))
    infer_mode = np.asarray(rgb.discriminator([fake, condition], training=False))
    np.testing.assert_allclose(train_mode, infer_mode, rtol=1e-5, atol=1e-6)
    assert not any(changed(stats, bn_moving_stats(rgb.discriminator)))
    # The combined model's validity is D in inference mode on G's fakes
    validity, generated = rgb.combined(condition, training=True)   # the G step's forward pass
    np.testing.assert_allclose(np.asarray(validity),
                               np.asarray(rgb.discriminator([np.asarray(generated), condition], training=False)),
                               rtol=1e-5, atol=1e-6)
    # ... while a trainable D normalizes with the batch statistics (so the check above means something)
    gan_loop.set_discriminator_trainable(rgb, True)
    batch_mode = np.asarray(rgb.discriminator([fake, condition], training=True))
    gan_loop.set_discriminator_trainable(rgb, False)
    assert not np.allclose(batch_mode, infer_mode, atol=1e-3)


def test_validity_matches_the_target_for_full_and_partial_batches(rgb, images):
    gen = CifarGenerator(images.subset(13), BATCH, "RGB", shuffle=False)
    assert [len(gen[i][0]) for i in range(len(gen))] == [8, 5]
    for i in range(len(gen)):
        real, condition = gen[i]
        out = rgb.discriminator.predict_on_batch([real, condition])
        assert out.shape == (len(real), *rgb.patch_shape)
    losses = gan_loop.train_step(rgb, *gen[1])   # targets sized from the smaller last batch
    assert all(np.isfinite(v) for v in losses.values())


def test_checkpoint_and_resume(rgb, images, tmp_path):
    run_dir = tmp_path / "run"
    config = make_config(run_dir)                                 # 16 images, batch 8: 2 steps per epoch
    samples = SampleBatch.take(images, None, n=4)
    writer = tblog.SummaryWriter(config["log_dir"])
    assert gan_loop.train(rgb, config, run_dir, images, samples, writer, {"epoch": 0, "step": 0}) == 1
    writer.close()
    checkpoint = runs.current_checkpoint(run_dir)
    assert (checkpoint.state["epoch"], checkpoint.state["step"]) == (1, 2)
    for name in ("generator.weights.h5", "discriminator.weights.h5", "combined.optimizer.npz"):
        assert checkpoint.file(name).exists(), name
    for name in ("summary.txt", "samples/step-0000001.jpg", "samples/step-0000002.jpg", "samples/epoch-001.jpg"):
        assert (run_dir / name).exists(), name
    assert np.asarray(Image.open(run_dir / "samples" / "epoch-001.jpg")).shape == (4 * 64, 3 * 64, 3)

    # predict.py's path: identical generator predictions
    restored = Colorizer.from_run(run_dir)
    _, condition = CifarGenerator(images, 16, "RGB", shuffle=False)[0]
    np.testing.assert_allclose(restored.network.predict(condition, verbose=0),
                               rgb.generator.predict(condition, verbose=0), rtol=0, atol=1e-6)

    # a fresh build restores G, D (with its optimizer) and the combined optimizer
    fresh = build_model("gan", image_size=32, color_space="rgb")
    state = gan_loop.restore_checkpoint(fresh, run_dir)
    assert (state["epoch"], state["step"], state["batch"]) == (1, 2, 0)
    for a, b in ((fresh.generator, rgb.generator), (fresh.discriminator, rgb.discriminator)):
        assert not any(changed(weights(a), weights(b)))
    for a, b in ((fresh.discriminator.optimizer, rgb.discriminator.optimizer),
                 (fresh.combined.optimizer, rgb.combined.optimizer)):
        assert int(a.iterations) == int(b.iterations) > 0
        assert len(a.variables) == len(b.variables)
        assert not any(changed([np.array(v) for v in a.variables], [np.array(v) for v in b.variables]))

    # resume: continues from epoch 1 and global step 2
    config["epochs"] = 2
    writer = tblog.SummaryWriter(config["log_dir"])
    assert gan_loop.train(fresh, config, run_dir, images, samples, writer, state) == 2
    writer.close()
    assert progress(run_dir) == (2, 4)
    scalars = tblog.read_scalars(config["log_dir"])["train"]
    assert [s for s, _ in scalars["g_loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in scalars["epoch_d_loss"]] == [1, 2]
    assert all(np.isfinite(v) for tag in ("g_loss", "g_l1", "d_loss", "d_acc") for _, v in scalars[tag])
    assert (run_dir / "samples" / "step-0000004.jpg").exists() and (run_dir / "samples" / "epoch-002.jpg").exists()


def test_ctrl_c_saves_a_checkpoint_after_the_step_and_resume_continues_there(rgb, images, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    config = make_config(run_dir, sample_every=0)                 # 2 steps per epoch
    real_step, calls = gan_loop.train_step, []

    def ctrl_c_during_the_first_step(*args):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)                   # as Ctrl-C: the step still completes
        return real_step(*args)

    monkeypatch.setattr(gan_loop, "train_step", ctrl_c_during_the_first_step)
    samples = SampleBatch.take(images, None, n=2)
    with pytest.raises(Stopped) as stopped:
        gan_loop.train(rgb, config, run_dir, images, samples, None, {"epoch": 0, "step": 0})
    assert stopped.value.exit_code == 130 and len(calls) == 1
    state = runs.load_state(run_dir)
    assert (state["epoch"], state["step"], state["batch"]) == (0, 1, 1)   # one step of epoch 1 done

    assert gan_loop.train(rgb, config, run_dir, images, samples, None, {"epoch": 0, "step": 0}) == 1
    assert len(calls) == 2 and progress(run_dir) == (1, 2)     # the second batch only, not epoch 1 again


def test_lab_variant(images):
    keras.utils.set_random_seed(1)
    lab = build_model("gan", image_size=32, color_space="lab")
    assert lab.generator.input_shape == (None, 32, 32, 1) and lab.generator.output_shape == (None, 32, 32, 2)
    assert [tuple(i.shape) for i in lab.discriminator.inputs] == [(None, 32, 32, 2), (None, 32, 32, 1)]
    assert [tuple(o.shape) for o in lab.combined.outputs] == [(None, 2, 2, 1), (None, 32, 32, 2)]
    ab, l_sym = CifarGenerator(images, BATCH, "LAB_SYM", shuffle=False)[0]
    assert ab.shape == (BATCH, 32, 32, 2) and l_sym.shape == (BATCH, 32, 32, 1)
    g0, d0 = weights(lab.generator), weights(lab.discriminator)
    losses = gan_loop.train_step(lab, ab, l_sym)
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert any(changed(g0, weights(lab.generator))) and any(changed(d0, weights(lab.discriminator)))
    colorized = Colorizer(make_config_dict("lab"), lab.generator).colorize(images.images[:4])
    assert colorized.shape == (4, 32, 32, 3) and colorized.min() >= 0 and colorized.max() <= 1


def make_config_dict(color_space: str) -> dict:
    return {"model": "gan", "model_options": {"image_size": 32, "color_space": color_space}}


def test_bad_color_space_is_refused():
    with pytest.raises(ValueError, match="color_space"):
        build_model("gan", color_space="hsv")


def test_progress_lines_without_a_terminal():
    out = io.StringIO()
    progress = gan_loop.Progress(out)
    losses = {"g_loss": 1.0, "g_l1": 0.01, "d_loss": 0.25, "d_acc": 0.5}
    for i in range(1, 26):
        progress.update(1, 5, i, 25, losses, 100.0)
    lines = out.getvalue().splitlines()
    assert [line.split()[3] for line in lines] == ["10/25", "20/25", "25/25"]
    assert "\r" not in out.getvalue() and "img/s" in lines[0]


def test_progress_rewrites_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    progress = gan_loop.Progress(out)
    for i, g in enumerate((100.0, 1.0, 1.0), start=1):
        progress.update(1, 5, i, 3, {"g_loss": g, "g_l1": 0.01, "d_loss": 0.25, "d_acc": 0.5}, 10.0)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")
    first, second = text.split("\r")[1:3]
    assert len(second) == len(first)   # the shorter line blanks the longer one


# ---- end to end: train.py and predict.py as a user runs them -------------------------------

@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_train_and_predict_scripts(color_space, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    result = run("train.py", "-m", "gan", "--epochs", "1", "--steps", "3", "--limit", "64",
                 "--color-space", color_space, "--seed", "5",
                 "--run-dir", str(run_dir), "--log-dir", str(tmp_path / "logs"))
    assert "done: 1 epoch(s)" in result.stdout
    assert "epoch 1/1 step 2/2" in result.stdout                  # 64 images / 32 = 2 batches < --steps 3
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_options"] == {"image_size": 32, "color_space": color_space, "precision": "float32"}
    assert config["jit"] == "auto"
    assert progress(run_dir) == (1, 2)
    assert (run_dir / "samples" / "epoch-001.jpg").exists()
    assert [s for s, _ in tblog.read_scalars(tmp_path / "logs")["train"]["d_loss"]] == [1, 2]

    run("predict.py", "-m", "gan", "--run-dir", str(run_dir), "--limit", "16", "--out", str(out))
    grid = out / "batch-0000.jpg"
    assert grid.exists()
    assert np.asarray(Image.open(grid)).shape[:2] == (16 * 32, 3 * 32)
