"""Every registered model: builds, documented shapes, learns on a fixed batch, saves and reloads."""
import keras
import numpy as np
import pytest

from core import ab_bins
from loaders.cifar import CifarGenerator
from models import MODEL_NAMES, REGISTRY, UnknownModelError, build_model, get_spec

FIT_MODELS = [name for name in MODEL_NAMES if REGISTRY[name].trainer == "fit"]

# (input shapes, output shape, output range) as documented in each model file
EXPECTED = {
    "autoencoder": ([(32, 32, 1)], (32, 32, 2), (0, 1)),
    "unet": ([(32, 32, 1)], (32, 32, 2), (-1, 1)),          # tanh, kept from the original
    "fusion_label": ([(32, 32, 1), (10,)], (32, 32, 2), (0, 1)),
    "fusion_resnet": ([(32, 32, 1), (1000,)], (32, 32, 2), (0, 1)),
    # L, then the encoder taps at 128 px (strides 4 to 32); logits over the 261 ab bins
    "effnet_unet": ([(32, 32, 1), (32, 32, 24), (16, 16, 40), (8, 8, 112), (4, 4, 320)], (32, 32, 261),
                    (-np.inf, np.inf)),
}


def test_registry_lists_every_model_and_rejects_unknown_names():
    assert set(MODEL_NAMES) == {"autoencoder", "unet", "fusion_label", "fusion_resnet", "gan", "effnet_unet"}
    with pytest.raises(UnknownModelError, match="valid names: autoencoder, unet, fusion_label, fusion_resnet, gan, "
                                                "effnet_unet"):
        get_spec("resnet")


def fixed_batch(name, sample_val, n=8):
    spec = get_spec(name)
    prior, targets = None, None
    rng = np.random.default_rng(0)
    if spec.prior == "classifier":   # any (N, 1000) distribution will do for shape and learning
        prior = keras.ops.convert_to_numpy(keras.ops.softmax(
            rng.normal(size=(len(sample_val), 1000)).astype(np.float32)))
    if spec.prior == "encoder":      # any feature maps of the taps' shapes will do, too
        prior = [rng.normal(size=(len(sample_val), *shape)).astype(np.float16) for shape in EXPECTED[name][0][1:]]
        weights = np.ones(len(ab_bins.gamut_bins()), np.float32)
        targets = lambda y: ab_bins.pack_targets(y * 255 - 128, weights)   # noqa: E731
    return CifarGenerator(sample_val, batch_size=n, color_space=spec.color_space, shuffle=False, prior=prior,
                          target_transform=targets)[0]


@pytest.mark.parametrize("name", FIT_MODELS)
def test_shapes(name):
    model = build_model(name)
    inputs, output, _ = EXPECTED[name]
    assert [tuple(t.shape[1:]) for t in model.inputs] == inputs
    assert tuple(model.outputs[0].shape[1:]) == output


@pytest.mark.parametrize("name", FIT_MODELS)
def test_learns_on_a_fixed_batch_and_reloads_identically(name, sample_val, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name)
    x, y = fixed_batch(name, sample_val)
    losses = [float(np.ravel(model.train_on_batch(x, y))[0]) for _ in range(8)]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses

    pred = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    lo, hi = EXPECTED[name][2]
    assert pred.shape == (8, *EXPECTED[name][1]) and lo <= pred.min() and pred.max() <= hi

    model.save_weights(tmp_path / "m.weights.h5")
    again = build_model(name)
    again.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.predict(x, verbose=0)), pred)


@pytest.mark.parametrize("name", ["autoencoder", "fusion_label"])
def test_other_image_sizes(name):
    model = build_model(name, image_size=64)
    assert tuple(model.outputs[0].shape[1:]) == (64, 64, 2)
    with pytest.raises(ValueError, match="multiple of"):
        build_model("unet", image_size=48)


def test_fusion_models_share_one_network_definition():
    label, resnet = build_model("fusion_label"), build_model("fusion_resnet")
    # Same layers except the prior's width: the 1x1 fusion conv sees 256 + D channels.
    assert [type(l).__name__ for l in label.layers] == [type(l).__name__ for l in resnet.layers]
    assert label.get_layer("fusion_1x1").kernel.shape == (1, 1, 266, 256)
    assert resnet.get_layer("fusion_1x1").kernel.shape == (1, 1, 1256, 256)
