"""The lean inference path (inference.lean): ONNX Runtime gives the Keras path's colors, without Keras.

Parity is measured as the issue asks: mean |ONNX - Keras| of the colorized bundled sample, in levels of
255, for every model the lean path serves; the shipped run is also run by colorize.py in a process where
TensorFlow and Keras cannot be imported at all.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, built_run
from inference import lean
from inference.colorizer import Colorizer
from models.effnet_options import OWN_KEY_HEADS

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

SHIPPED = ROOT / "pretrained" / "effnet_unet"
LEVEL = 1 / 255


@pytest.fixture(scope="module", autouse=True)
def lean_cache(tmp_path_factory):
    """A fresh cache/lean for this module (made files are shared by its tests, not by the user's cache)."""
    path = tmp_path_factory.mktemp("lean-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(lean.CACHE_ENV, str(path))
        yield path


def both(run_dir) -> tuple[Colorizer, Colorizer]:
    return Colorizer.from_run(run_dir, runtime="onnx"), Colorizer.from_run(run_dir, runtime="keras")


def levels(a, b) -> tuple[float, float]:
    """(mean, max) |a - b| in levels of 255, for float [0, 1] or uint8 images."""
    scale = 1.0 if np.asarray(a).dtype == np.uint8 else 255.0
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) * scale
    return float(diff.mean()), float(diff.max())


# unet is not listed: its network is the LAB GAN's generator (models.blocks.unet, L -> ab, 1 -> 2 channels),
# checked here as ("gan", "lab"), and the unet run itself goes through ONNX in test_unet_at_a_working_size.
@pytest.mark.parametrize("model, color_space, options", [
    ("autoencoder", None, {}), ("fusion_label", None, {}), ("gan", "rgb", {}), ("gan", "lab", {}),
    ("effnet_unet", None, {"hints": True, "hint_head": "gates"}),
])
def test_same_colors_as_keras(tmp_path_factory, sample_val, model, color_space, options):
    onnx, keras_ = both(built_run(tmp_path_factory, model, color_space=color_space, **options))
    assert onnx.runtime == "onnx" and keras_.runtime == "keras"
    images, labels = sample_val.images[:16], sample_val.labels[:16]
    mean, worst = levels(onnx.colorize(images, labels), keras_.colorize(images, labels))
    assert mean <= 0.05 and worst <= 1.0, (mean, worst)   # the bound is a mean of 1 level


@pytest.mark.parametrize("head", OWN_KEY_HEADS)
def test_hints_and_photo_sizes(tmp_path_factory, head):
    """A hint run with points and a reference, at a photo's own aspect ratio (a working size of its own file)."""
    from core import hints
    onnx, keras_ = both(built_run(tmp_path_factory, "effnet_unet", hints=True, hint_head=head))
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (45, 70, 3), np.uint8)
    points = [hints.point(10, 5, (200, 30, 30)), hints.point(60, 40, (20, 200, 40), radius=3)]
    reference = rng.integers(0, 256, (20, 20, 3), np.uint8)
    for kwargs in ({}, {"points": points}, {"points": points, "reference": reference}, {"reference": reference}):
        got, _ = onnx.colorize_photo(photo, long_side=64, **kwargs)
        want, _ = keras_.colorize_photo(photo, long_side=64, **kwargs)
        assert got.shape == photo.shape and levels(got, want)[0] <= 0.2, kwargs   # the bound: 1
    assert onnx.lean.network_path((40, 64)).exists()   # 45 x 70 at long side 64, multiples of 8


def test_a_run_with_encoder_detail(tmp_path_factory):
    """A run trained with encoder_detail: its encoder sees the photo at its own size through ONNX Runtime too."""
    onnx, keras_ = both(built_run(tmp_path_factory, "effnet_unet", encoder_detail=True))
    photo = np.random.default_rng(4).integers(0, 256, (300, 451, 3), np.uint8)
    got, _ = onnx.colorize_photo(photo)
    want, _ = keras_.colorize_photo(photo)
    assert levels(got, want)[0] <= 0.2


def test_unet_at_a_working_size(tmp_path_factory):
    onnx, keras_ = both(built_run(tmp_path_factory, "unet"))
    photo = np.random.default_rng(4).integers(0, 256, (50, 100, 3), np.uint8)
    got, _ = onnx.colorize_photo(photo, long_side=64)
    want, _ = keras_.colorize_photo(photo, long_side=64)
    assert levels(got, want)[0] <= 0.05


def test_encoder_input_matches_keras():
    from priors.features import encoder_input
    images = np.random.default_rng(0).integers(0, 256, (3, 24, 32, 3), np.uint8)
    for size in ((96, 128), (24, 32), (48, 64)):
        np.testing.assert_allclose(lean.encoder_input(images, size), encoder_input(images, size), atol=2e-5)


def test_made_once_then_reused_without_keras(tmp_path_factory):
    run_dir = built_run(tmp_path_factory, "unet")
    made = Colorizer.from_run(run_dir, runtime="onnx")
    images = np.zeros((2, 32, 32, 3), np.uint8)
    made.colorize(images)
    path = made.lean.network_path((32, 32))
    stamp = path.stat().st_mtime_ns

    def no_keras():
        raise AssertionError("a cached file was made again")
    again = lean.LeanRun(made.config, run_dir, keras_colorizer=no_keras)
    assert again.predict((np.zeros((2, 32, 32, 1), np.float32),)).shape == (2, 32, 32, 2)
    assert path.stat().st_mtime_ns == stamp
    # another config (or other weights) is another key: never a stale file
    other = {**made.config, "seed": 99}
    assert lean.run_key(other, run_dir) != made.lean.key


def test_a_failed_check_leaves_no_file(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv(lean.CACHE_ENV, str(tmp_path))   # nothing made yet
    run_dir = built_run(tmp_path_factory, "autoencoder")
    colorizer = Colorizer.from_run(run_dir, runtime="onnx")
    monkeypatch.setattr(lean, "LEAN_TOLERANCE", -1.0)   # any difference fails
    with pytest.raises(lean.LeanExportError, match="differs from Keras"):
        colorizer.colorize(np.zeros((1, 32, 32, 3), np.uint8))
    assert not list(colorizer.lean.network_path((32, 32)).parent.glob("*"))


def test_runtime_choice(monkeypatch):
    assert lean.choose("auto", "fusion_resnet") == "keras"   # its classifier prior runs in Keras
    assert lean.choose("keras", "effnet_unet") == "keras"
    assert lean.choose("auto", "effnet_unet") == "onnx"
    with pytest.raises(lean.RuntimeChoiceError, match="fusion_resnet"):
        lean.choose("onnx", "fusion_resnet")
    with pytest.raises(lean.RuntimeChoiceError, match="unknown runtime"):
        lean.choose("tflite", "unet")
    monkeypatch.setenv(lean.RUNTIME_ENV, "fast")
    with pytest.raises(lean.RuntimeChoiceError, match="COLORIZE_RUNTIME"):
        lean.choose(None, "unet")
    monkeypatch.setenv(lean.RUNTIME_ENV, "onnx")
    assert lean.choose(None, "unet") == "onnx"


BLOCK_KERAS = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "jax", "torch"):
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
""")


def test_shipped_run_in_a_process_without_keras(tmp_path, lean_cache):
    """colorize.py --runtime onnx on the bundled sample with TensorFlow and Keras unimportable (files made
    here first), colors within a level of the Keras path's; -v says which runtime ran."""
    photo = sorted((SAMPLE / "val").glob("*.png"))[0]
    from PIL import Image
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    onnx, keras_ = both(SHIPPED)
    want, _ = keras_.colorize_photo(rgb)
    onnx.colorize_photo(rgb)                                      # makes the files, here, with Keras
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCK_KERAS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "block"), lean.RUNTIME_ENV: "auto"}
    result = subprocess.run([sys.executable, "colorize.py", str(photo), "--run-dir", str(SHIPPED), "--out",
                             str(tmp_path / "out"), "-v"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime: onnx" in result.stdout and "making" not in result.stderr
    got = np.asarray(Image.open(tmp_path / "out" / f"{photo.stem}.png").convert("RGB"))
    mean, _ = levels(got, want)
    assert mean <= 1.0, mean
