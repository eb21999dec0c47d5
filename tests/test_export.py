"""export.py and serving/: every model in every format, run by the format's own runtime, matches Keras.

Each (model, format) is exported once per session from an untrained run built in-process (the
weights do not matter for parity; train.py would only add minutes). The formats' libraries are in
requirements-serving.txt; where one is missing its tests are skipped with the reason, unless
REQUIRE_SERVING (set by .ci/run) is set: then they fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, built_run

from core import colorspace
from dataset import load_images, one_hot
from inference import Colorizer
from models import MODEL_NAMES
from serving import card, colorgraph, export

PARITY_TOL = 1e-4   # |exported - Keras| on outputs in [0, 1] or [-1, 1]; measured: at most 1e-6
BAKED_TOL = 1e-4    # the Keras color conversion against colorspace's NumPy one (RGB in [0, 1]); measured 1e-6


def require(fmt: export.Format) -> None:
    missing = export.missing_modules(fmt)
    if missing:
        why = f"{fmt.name} needs {', '.join(missing)} (pip install -r requirements-serving.txt)"
        if os.environ.get("REQUIRE_SERVING"):
            pytest.fail(why + "; REQUIRE_SERVING asks for it")
        pytest.skip(why)


@pytest.fixture(scope="session")
def colorizers(tmp_path_factory):
    """{model: Colorizer of an untrained in-process run}, built on first use."""
    cache: dict[str, Colorizer] = {}

    def get(model: str, color_space: str | None = None) -> Colorizer:
        key = f"{model}-{color_space}"
        if key not in cache:
            cache[key] = Colorizer.from_run(built_run(tmp_path_factory, model, color_space=color_space))
        return cache[key]
    return get


@pytest.fixture(scope="session")
def exported(tmp_path_factory, colorizers):
    """(model, format) -> (Keras model, Runner) of the exported network; each exported once per session."""
    cache: dict = {}
    base = tmp_path_factory.mktemp("exports")

    def get(model: str, fmt_name: str):
        if (model, fmt_name) not in cache:
            fmt = export.FORMATS[fmt_name]
            colorizer = colorizers(model)
            network = export.exportable(colorizer)
            out = base / f"{model}{fmt.suffix}"
            export.export_model(network, fmt, out)
            cache[model, fmt_name] = (colorizer, network, export.Runner(fmt, out))
        return cache[model, fmt_name]
    return get


@pytest.mark.parametrize("fmt_name", export.FORMAT_NAMES)
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_exported_model_matches_keras(exported, model, fmt_name):
    fmt = export.FORMATS[fmt_name]
    require(fmt)
    colorizer, network, runner = exported(model, fmt_name)
    arrays = export.check_batch(colorizer, network, bake_color=False)
    names = export.input_names(network)
    assert sorted(t.name for t in runner.inputs) == sorted(names)        # the Keras names survive the export
    got = runner(dict(zip(names, arrays)))
    want = np.asarray(colorizer.network.predict_on_batch(arrays if len(arrays) > 1 else arrays[0]))   # the run's own
    assert got.shape == want.shape == (len(arrays[0]), 32, 32, want.shape[-1])
    assert np.abs(got - want).max() < PARITY_TOL, (model, fmt_name, np.abs(got - want).max())
    assert np.abs(want).max() > 0                                          # a real output, not zeros
    batch = runner.outputs[0].shape[0]
    assert batch == fmt.batch                                              # None (any) or TFLite's 1


# ---- the color conversion baked in -------------------------------------------------------------

BAKED_CASES = [(m, None) for m in MODEL_NAMES] + [("gan", "lab")]


@pytest.mark.parametrize("model,color_space", BAKED_CASES, ids=[f"{m}-{c or 'default'}" for m, c in BAKED_CASES])
def test_baked_model_computes_what_the_colorizer_computes(colorizers, model, color_space, sample_val):
    """Gray image in, RGB out: the Keras-ops conversion around the network equals the NumPy path of Colorizer."""
    colorizer = colorizers(model, color_space)
    if colorizer.color_space not in colorgraph.ENCODINGS:   # a model whose encoding --bake-color lacks: said so
        with pytest.raises(export.ExportError, match=f"{model} uses '{colorizer.color_space}': export it without"):
            export.exportable(colorizer, bake_color=True)
        return
    baked = colorgraph.bake(colorizer)
    images = sample_val.images[:6]
    gray = colorspace.gray_rgb(images)              # float gray version: the same L* as the color images
    labels = sample_val.labels[:6]
    arrays = [gray[..., :1]]
    prior = None
    if colorizer.spec.prior == "label":
        prior = one_hot(labels).astype(np.float32)
    elif colorizer.spec.prior == "classifier":
        prior = np.random.default_rng(0).dirichlet(np.ones(1000), 6).astype(np.float32)
    elif colorizer.spec.prior == "encoder":            # effnet_unet: the encoder's taps of the images
        prior = [np.asarray(t, np.float32) for t in colorizer.prior(images, labels)]
    if prior is not None:
        arrays += prior if isinstance(prior, list) else [prior]
    got = np.asarray(baked.predict_on_batch(arrays if len(arrays) > 1 else arrays[0]))
    want = colorizer.colorize(images, labels, prior)   # the color images: the Colorizer only uses their L*
    assert got.shape == want.shape == (6, 32, 32, 3)
    assert np.abs(got - want).max() < BAKED_TOL, np.abs(got - want).max()


def stub_colorizer(color_space: str, prior_dim: int = 0) -> Colorizer:
    """A one-layer network with a run's interface (a cheap stand-in: the conversion is what is tested here)."""
    import keras
    spec = {"LAB": "unet", "fusion": "fusion_label", "RGB": "gan", "LAB_SYM": "gan"}[color_space]
    channels_in, channels_out = {"RGB": (3, 3)}.get(color_space, (1, 2))
    x = keras.Input((32, 32, channels_in), name="gray" if color_space == "RGB" else "L")
    inputs = [x]
    h = x
    if prior_dim:
        prior = keras.Input((prior_dim,), name="prior")
        inputs.append(prior)
        grid = keras.layers.UpSampling2D(32)(keras.layers.Reshape((1, 1, prior_dim))(prior))   # (B, 32, 32, D)
        h = keras.layers.Concatenate()([x, grid])
    act = "sigmoid" if color_space in ("LAB", "fusion") else "tanh"
    y = keras.layers.Conv2D(channels_out, 3, padding="same", activation=act, bias_initializer="random_normal")(h)
    network = keras.Model(inputs if prior_dim else x, y)
    options = {"image_size": 32, "precision": "float32"}
    if spec == "gan":
        options["color_space"] = "lab" if color_space == "LAB_SYM" else "rgb"
    return Colorizer({"model": spec, "model_options": options}, network)


@pytest.mark.parametrize("fmt_name", export.FORMAT_NAMES)
@pytest.mark.parametrize("color_space", ["fusion", "RGB", "LAB_SYM"])
def test_baked_conversion_exports_to_every_format(tmp_path, color_space, fmt_name):
    """The Keras ops of the conversion exist in each format (on a one-layer stand-in network, for speed)."""
    fmt = export.FORMATS[fmt_name]
    require(fmt)
    colorizer = stub_colorizer(color_space, prior_dim=10 if color_space == "fusion" else 0)
    model = export.exportable(colorizer, bake_color=True)
    out = tmp_path / f"baked{fmt.suffix}"
    export.export_model(model, fmt, out)
    runner = export.Runner(fmt, out)
    arrays = export.check_batch(colorizer, model, bake_color=True)
    assert export.parity(model, runner, arrays) < PARITY_TOL
    rgb = runner(dict(zip(export.input_names(model), arrays)))
    assert rgb.shape == (len(arrays[0]), 32, 32, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0


# ---- the script and its card ---------------------------------------------------------------------

def test_export_script_writes_a_card_a_consumer_can_follow(tmp_path_factory, tmp_path):
    """export.py --bake-color to ONNX; then only the card and onnxruntime: gray image in, RGB out."""
    require(export.FORMATS["onnx"])
    import onnxruntime
    run_dir = built_run(tmp_path_factory, "fusion_label")
    out = tmp_path / "fusion_label.onnx"
    result = subprocess.run([sys.executable, "export.py", "-m", "fusion_label", "--run-dir", str(run_dir),
                             "--format", "onnx", "--out", str(out), "--bake-color"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    json_path, md_path = card.paths(out)
    doc = json.loads(json_path.read_text())
    assert doc["model"] == "fusion_label" and doc["format"] == "onnx" and doc["baked_color"] is True
    assert doc["config"]["model"] == "fusion_label" and doc["metrics"]["progress"]["epoch"] == 1
    assert doc["parity"]["max_abs_diff"] < PARITY_TOL
    image_in, prior_in = doc["inputs"]
    assert image_in["shape"] == [None, 32, 32, 1] and image_in["range"] == [0.0, 1.0]
    assert prior_in["shape"] == [None, 10] and "airplane, automobile" in prior_in["encoding"]
    assert doc["outputs"][0]["shape"] == [None, 32, 32, 3]
    assert "| input | `gray` |" in md_path.read_text()

    # a consumer: gray photos and the class, fed by the names in the card, give RGB
    data = load_images(SAMPLE / "val").subset(5)
    gray = colorspace.gray_rgb(data.images)[..., :1]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rgb = session.run([doc["outputs"][0]["name"]], {image_in["name"]: gray,
                                                     prior_in["name"]: one_hot(data.labels).astype(np.float32)})[0]
    want = Colorizer.from_run(run_dir).colorize(data.images, data.labels)
    assert np.abs(rgb - want).max() < BAKED_TOL


def test_export_mistakes_are_one_line(tmp_path_factory, tmp_path, capsys):
    import export as export_script
    run_dir = str(built_run(tmp_path_factory, "autoencoder"))
    cases = [
        (["-m", "autoencoder", "--format", "tflite", "--out", tmp_path / "a.onnx"], "ending in .tflite"),
        (["-m", "autoencoder", "--format", "savedmodel", "--out", tmp_path / "a.onnx"], "a SavedModel is a folder"),
        (["-m", "unet", "--format", "onnx", "--out", tmp_path / "b.onnx"], "is a run of 'autoencoder', not 'unet'"),
        (["-m", "unet", "--format", "onnx", "--out", tmp_path / "b.onnx", "--run-dir", tmp_path], "no config.json"),
    ]
    for argv, message in cases:
        argv = [*map(str, argv)] + ([] if "--run-dir" in map(str, argv) else ["--run-dir", run_dir])
        assert export_script.run(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err, err
    assert not list(tmp_path.iterdir())                                     # nothing written


def test_a_model_a_format_cannot_express_is_one_clear_error(tmp_path):
    """TFLite's builtin ops have no inverse error function: the converter's pages of MLIR become one line."""
    import keras
    require(export.FORMATS["tflite"])
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.ops.erfinv(x * 0.5), name="uses_erfinv")
    model.predict_on_batch(np.ones((1, 4), np.float32))
    with pytest.raises(export.ExportError) as info:
        export.export_model(model, export.FORMATS["tflite"], tmp_path / "m.tflite")
    message = str(info.value)
    assert message == "uses_erfinv cannot be exported to tflite: no builtin op for tf.Erfinv (ConverterError)"


def test_missing_library_or_backend_is_one_clear_error(monkeypatch):
    import importlib.util

    import keras
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    with pytest.raises(export.ExportError, match="onnx export needs tf2onnx: pip install -r requirements-serving.txt"):
        export.check_ready(export.FORMATS["onnx"])
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(export.ExportError, match="export runs on the TensorFlow backend"):
        export.check_ready(export.FORMATS["savedmodel"])


def test_card_documents_every_color_space():
    for color_space in ("LAB", "fusion", "RGB", "LAB_SYM"):
        for baked in (False, True):
            image_in, out = card.encodings(color_space, baked)
            assert image_in["range"][0] < image_in["range"][1] and out["encoding"]
    assert card.encodings("RGB", False)[1]["range"] == [-1.0, 1.0]
    assert "L* / 100" in card.encodings("LAB", False)[0]["encoding"]
    assert card.paths(ROOT / "x" / "m.onnx")[0].name == "m.onnx.card.json"


def test_an_encoding_the_conversion_does_not_know_is_one_clear_error():
    from types import SimpleNamespace
    newcomer = SimpleNamespace(color_space="hsv", spec=SimpleNamespace(name="newcomer"), network=None, image_size=32)
    with pytest.raises(export.ExportError, match="newcomer uses 'hsv': export it without --bake-color"):
        export.exportable(newcomer, bake_color=True)
    image_in, out = card.encodings("features", baked=False)
    assert image_in["range"] == [0.0, 1.0] and out["range"] is None and "raw output" in out["encoding"]
