"""train.py --jit and --mixed-precision: what they set in the models, the run folder and a resume."""
import json

import keras
import numpy as np
import pytest
from test_models import EXPECTED, fixed_batch

from conftest import progress
from conftest import run_script as run
from models import MODEL_NAMES, PRECISIONS, REGISTRY, build_model, dtype_policy, set_jit
from training import gan_loop


@pytest.mark.parametrize("jit, expected", [("on", True), ("off", False)])
def test_set_jit_reaches_every_part_of_the_gan(jit, expected):
    gan = build_model("gan")
    set_jit(gan, jit)
    assert [p.jit_compile for p in (gan.generator, gan.discriminator, gan.combined)] == [expected] * 3


def test_set_jit_auto_keeps_keras_choice_and_rejects_unknown_values():
    model, default = build_model("autoencoder"), build_model("autoencoder")
    set_jit(model, "auto")
    assert model.jit_compile == default.jit_compile
    with pytest.raises(ValueError, match="valid: auto, on, off"):
        set_jit(model, "xla")


def test_dtype_policy_is_scoped_and_checked():
    with dtype_policy("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError, match="valid: float32, mixed_float16, mixed_bfloat16"), dtype_policy("float8"):
        pass
    assert keras.config.dtype_policy().name == "float32"


def _check_mixed(network, compute: str) -> None:
    """Hidden layers compute in ``compute``, every variable is float32, the output layer is float32."""
    convs = [l for l in network.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs[0].compute_dtype == compute
    assert convs[-1].compute_dtype == "float32" and network.outputs[0].dtype == "float32"
    assert {v.dtype for v in network.weights} == {"float32"}


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if REGISTRY[n].trainer == "fit"])
def test_fit_models_train_in_mixed_bfloat16(name, sample_val):
    # bfloat16 rather than float16 here: it has CPU kernels everywhere (float16 is for GPUs).
    keras.utils.set_random_seed(0)
    model = build_model(name, precision="mixed_bfloat16")
    _check_mixed(model, "bfloat16")
    x, y = fixed_batch(name, sample_val)
    losses = [float(np.ravel(model.train_on_batch(x, y))[0]) for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    pred = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    _, shape, (lo, hi) = EXPECTED[name]
    assert pred.dtype == np.float32 and pred.shape == (8, *shape) and lo <= pred.min() and pred.max() <= hi


def test_gan_trains_in_mixed_bfloat16():
    keras.utils.set_random_seed(0)
    gan = build_model("gan", precision="mixed_bfloat16")
    for part in (gan.generator, gan.discriminator):
        _check_mixed(part, "bfloat16")
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    condition = np.repeat(real.mean(axis=-1, keepdims=True), 3, axis=-1)
    logs = [gan_loop.train_step(gan, real, condition) for _ in range(2)]
    assert all(np.isfinite(v) for step in logs for v in step.values()), logs
    assert 0.0 <= logs[-1]["d_acc"] <= 1.0


def test_mixed_float16_scales_the_loss():
    # Keras wraps the optimizer of a mixed_float16 model so that small float16 gradients do not underflow.
    model = build_model("unet", precision="mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(build_model("unet").optimizer, keras.optimizers.LossScaleOptimizer)
    assert PRECISIONS[0] == "float32"


def test_train_records_the_options_predict_follows_them_and_resume_keeps_precision(tmp_path):
    run_dir = tmp_path / "run"
    run("train.py", "-m", "autoencoder", "--epochs", "1", "--steps", "2", "--limit", "16", "--batch-size", "8",
        "--seed", "1", "--no-logs", "--run-dir", run_dir, "--jit", "off", "--mixed-precision", "bfloat16")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["jit"] == "off" and config["model_options"]["precision"] == "mixed_bfloat16"

    from inference import Colorizer
    colorizer = Colorizer.from_run(run_dir)
    _check_mixed(colorizer.network, "bfloat16")   # rebuilt from config.json alone, weights loaded
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    out = colorizer.colorize(images)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1

    refused = run("train.py", "-m", "autoencoder", "--resume", "--run-dir", run_dir, "--epochs", "2",
                  "--mixed-precision", expect=2)
    assert "trained with precision mixed_bfloat16" in refused.stderr and "Traceback" not in refused.stderr
    assert progress(run_dir)[0] == 1   # nothing ran


def test_mixed_precision_rejects_unknown_values():
    out = run("train.py", "-m", "unet", "--mixed-precision", "int8", expect=2)
    assert "invalid choice: 'int8'" in out.stderr
