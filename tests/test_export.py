"""export.py and serving/: every model's network in every format, run by the format's own runtime, matches Keras.

Each (model, format) is exported once per session from an untrained run built in-process (the
weights do not matter for parity; train.py would only add minutes); effnet_unet also as a run
with color hints ("effnet_unet+hints"), checked with hints that are not zeros, baked and not. The
formats' libraries are in requirements-serving.txt; where one is missing its tests are skipped
with the reason, unless REQUIRE_SERVING (set by .ci/run) is set: then they fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, built_run
from core import colorspace, runs
from core import hints as core_hints
from inference import Colorizer
from inference.colorizer import HintInputs
from loaders.cifar import load_images, one_hot
from models import MODEL_NAMES
from serving import card, colorgraph, export

PARITY_TOL = 1e-4   # |exported - Keras| on outputs in [0, 1] or [-1, 1]; measured: at most 1e-6
# (raw logits are compared relative to their size: a hint run's reach about 1e3, where float32 steps are 1e-4)
BAKED_TOL = 1e-4    # the Keras color conversion against colorspace's NumPy one (RGB in [0, 1]); measured 1e-6
HINTS = "effnet_unet+hints"          # effnet_unet built with hints=True: two more inputs (core.hints)
# What test_exported_model_matches_keras exports to every format: every model but unet, whose network is the
# GAN's generator (models.blocks.unet: the same layers, 1 -> 2 channels where the GAN's are 3 -> 3) with the
# autoencoder's L -> ab interface; both are exported here, and a unet run goes through ONNX in the lean path
# (tests/test_lean.py, test_unet_at_a_working_size).
EXPORTED = [*(m for m in MODEL_NAMES if m != "unet"), HINTS]


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
            cache[key] = Colorizer.from_run(hint_run(tmp_path_factory) if model == HINTS
                                            else built_run(tmp_path_factory, model, color_space=color_space))
        return cache[key]
    return get


def hint_run(tmp_path_factory):
    """built_run's untrained effnet_unet run, with ``hints`` on: built_run records the model's defaults
    (effnet_unet.options), so they say hints=True while it builds; the folder is built-runs/effnet_unet-hints."""
    from models import effnet_unet
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(effnet_unet.DEFAULTS, "hints", True)
        patch.setitem(effnet_unet.DEFAULTS, "hint_head", "attention_own")   # train.py's head (HintAttention's ops)
        patch.setitem(effnet_unet.DEFAULTS, "decoder_local_hints", False)   # the shipped run's (ZerosLike)
        run_dir = built_run(tmp_path_factory, "effnet_unet", color_space="hints")   # color_space: only the folder name
    options = json.loads((run_dir / "config.json").read_text())["model_options"]
    assert options["hint_head"] == "attention_own" and options["decoder_local_hints"] is False
    return run_dir


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
@pytest.mark.parametrize("model", EXPORTED)
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
    excess = np.abs(got - want) / (1.0 + np.abs(want))
    assert excess.max() < PARITY_TOL, (model, fmt_name, np.abs(got - want).max())
    assert np.abs(want).max() > 0                                          # a real output, not zeros
    batch = runner.outputs[0].shape[0]
    assert batch == fmt.batch                                              # None (any) or TFLite's 1
    if model == HINTS:
        check_hint_inputs(runner, names, arrays, got)


def check_hint_inputs(runner, names: list[str], arrays: list[np.ndarray], got: np.ndarray) -> None:
    """The check batch's hints are not zeros, and they reach the artifact's output: zeros there change it by
    more than the parity tolerance (so an artifact that dropped a hint path would fail the parity check)."""
    assert names[-2:] == ["hints", "reference"]
    local, reference = arrays[-2:]
    assert (local[:2, ..., 2].sum(axis=(1, 2)) > export.CHECK_POINTS).all() and local[:2, ..., :2].any()   # one a patch
    assert not local[2:].any()
    assert np.allclose(reference[[0, 2]].sum(1), 2.0) and not reference[[1, 3]].any()          # distribution, then 1
    unhinted = runner(dict(zip(names, arrays[:-2] + [np.zeros_like(local), np.zeros_like(reference)])))
    changed = np.abs(got - unhinted).max(axis=(1, 2, 3))
    assert (changed[:3] > 2 * PARITY_TOL).all() and changed[3] < 1e-6, changed   # image 4 had no hints


# ---- the color conversion baked in -------------------------------------------------------------

BAKED_CASES = [(m, None) for m in MODEL_NAMES] + [("gan", "lab"), (HINTS, None)]


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
    hints = None
    if colorizer.takes_hints:                          # hints from the images' own colors (export's check)
        hints = HintInputs(*export.check_hints(images, network=False))
        arrays += export.check_hints(images)
    got = np.asarray(baked.predict_on_batch(arrays if len(arrays) > 1 else arrays[0]))
    want = colorizer.colorize(images, labels, prior, hints=hints)   # the color images: the Colorizer only uses their L*
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


@pytest.mark.parametrize("fmt_name", export.FORMAT_NAMES)
def test_baked_effnet_unet_with_hints_exports_to_every_format_with_its_card(colorizers, tmp_path, fmt_name):
    """effnet_unet trained with hints, --bake-color: export_colorizer's own check (hints not zeros) and the
    card's description of the two hint inputs, by the names the runtime gives them."""
    fmt = export.FORMATS[fmt_name]
    require(fmt)
    colorizer = colorizers(HINTS)
    out = tmp_path / f"hints{fmt.suffix}"
    doc = export.export_colorizer(colorizer, fmt_name, out, bake_color=True)
    assert doc["parity"]["max_abs_diff"] < PARITY_TOL, doc["parity"]
    assert "color hints made from the images' own colors" in doc["parity"]["batch"]
    names = [t["name"] for t in doc["inputs"]]
    assert names == ["gray", "tap_s4", "tap_s8", "tap_s16", "tap_s32", "hints", "reference"]
    local, reference = doc["inputs"][-2:]
    assert local["shape"] == [fmt.batch, 32, 32, core_hints.NETWORK_CHANNELS] and reference["shape"] == [fmt.batch, 262]
    assert local["range"] == [-1.0, 1.0] and reference["range"] == [0.0, 1.0]
    assert local["dtype"] == reference["dtype"] in ("float32", "tensor(float)")   # as the runtime names it
    assert "/ 128" in local["encoding"] and "mask" in local["encoding"] and "zeros: no hints" in local["encoding"]
    assert "reference_distribution" in reference["encoding"] and "zeros: no hints" in reference["encoding"]
    assert "| input | `reference` | (" in card.paths(out)[1].read_text()
    runner = export.Runner(fmt, out)                  # what a consumer loads: the runtime's names are the card's
    assert sorted(t.name for t in runner.inputs) == sorted(names)
    arrays = export.check_batch(colorizer, export.exportable(colorizer, bake_color=True), bake_color=True)
    check_hint_inputs(runner, names, arrays, runner(dict(zip(names, arrays))))


def test_a_card_says_when_the_run_averages_test_time_flips_or_views():
    """A run whose tools average flips (config.json flip_average, the shipped run's) or a square view
    (square_view): its card tells a consumer how to match them with the one-pass file; a run without
    says nothing of it."""
    base = {"model": "unet", "format": "onnx", "baked_color": False, "description": "d", "run_dir": "r",
            "artifact": "a.onnx", "runtime": "onnxruntime", "batch": None, "inputs": [], "outputs": [],
            "resize": "32 x 32", "parity": {"against": "Keras", "max_abs_diff": 0.0, "batch": "b"}, "metrics": {}}
    assert "mirror" not in card.markdown({**base, "config": {"model": "unet"}})
    text = card.markdown({**base, "config": {"model": "unet", "flip_average": True}})
    assert "Test-time flips" in text and "mirror that output back and average" in text
    assert "Square view" not in text
    text = card.markdown({**base, "config": {"model": "unet", "square_view": True}})
    assert "Square view" in text and "average the two chromas" in text and "Test-time flips" not in text
    plain = card.markdown({**base, "config": {"model": "effnet_unet", "model_options": {"encoder_detail": False}}})
    assert "Encoder detail" not in plain and "Decoding:" not in plain
    text = card.markdown({**base, "config": {"model": "effnet_unet", "model_options": {"encoder_detail": True},
                                             "undo_rebalancing": 0.4}})
    assert "Encoder detail" in text and "divide 0.4 of the class rebalancing back out" in text


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


def test_export_script_on_a_fresh_clone_exports_the_shipped_run_and_says_so(tmp_path, monkeypatch, capsys):
    """No runs/ folder: export.py -m effnet_unet finds the shipped run as colorize.py, predict.py and
    evaluate.py do (inference.pretrained.find_run), prints their "using the shipped run ..." line, exports it."""
    require(export.FORMATS["onnx"])
    import export as export_script
    monkeypatch.setattr(runs, "RUNS_DIR", tmp_path / "runs")               # no local run (the folder is not there)
    out = tmp_path / "out" / "shipped.onnx"
    assert export_script.run(["-m", "effnet_unet", "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    shipped = ROOT / "pretrained" / "effnet_unet"
    assert "using the shipped run pretrained/effnet_unet (no run of effnet_unet under" in printed, printed
    assert f"exporting effnet_unet from {shipped} to onnx" in printed, printed
    doc = json.loads(card.paths(out)[0].read_text())
    assert Path(doc["run_dir"]) == shipped and doc["config"]["model"] == "effnet_unet" and out.is_file()


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
    with pytest.raises(export.ExportError,
                       match=r"onnx export needs tf2onnx: pip install -r requirements-serving\.txt"):
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
