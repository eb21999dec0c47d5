"""Export a run's network to deployable formats with Keras' own ``model.export``, and run the result.

Formats (``FORMATS``), each written by ``keras.Model.export`` (TensorFlow backend) and run here by
the runtime a consumer would use:

==========  ==========================  ===================  ==============================================
name        written by                  run by               notes
==========  ==========================  ===================  ==============================================
savedmodel  ``format="tf_saved_model"``  ``tf.saved_model``   a folder; signature ``serving_default``
onnx        ``format="onnx"`` (tf2onnx)  ``onnxruntime``      one ``.onnx`` file
tflite      ``format="litert"``          ``ai_edge_litert``   one ``.tflite`` file, batch fixed at 1, builtin
                                                              ops only (runs without the Flex delegate)
==========  ==========================  ===================  ==============================================

The exported graph is the run's network (the GAN's generator), or with ``bake_color`` the same
network wrapped in the color conversion (serving.colorgraph: gray image in, RGB out); a model's
further inputs (a fusion model's prior, effnet_unet's encoder taps and, in a run trained with
hints, its two color-hint inputs) stay inputs of the artifact. After writing, the artifact is loaded
by its runtime and checked against the Keras model on a fixed batch (with color hints made from
the images' own colors, for a run that takes them); the difference goes into the card
(serving.card) written next to it.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import colorspace
from core import hints as core_hints
from inference import Colorizer

# the network in inference mode, and the converters' logs kept out of the terminal: shared with the lean path
from inference.lean import inference_model, quiet_native_logs
from loaders.cifar import SAMPLE_DIR, load_images
from serving import card as cards


class ExportError(Exception):
    """The export cannot be made (format, dependency, or a model the format cannot express); one line."""


@dataclass(frozen=True)
class Format:
    name: str
    keras_format: str          # model.export's format
    suffix: str                # the artifact's file suffix ("" for a folder)
    runtime: str               # what runs the artifact (here and for a consumer)
    needs: tuple[str, ...]     # Python modules the export and the runtime need
    batch: int | None          # fixed batch size of the artifact, None when any


FORMATS = {f.name: f for f in (
    Format("savedmodel", "tf_saved_model", "", "tensorflow (tf.saved_model.load)", ("tensorflow",), None),
    Format("onnx", "onnx", ".onnx", "onnxruntime", ("tensorflow", "tf2onnx", "onnx", "onnxruntime"), None),
    Format("tflite", "litert", ".tflite", "ai_edge_litert (LiteRT interpreter)", ("tensorflow", "ai_edge_litert"), 1),
)}
FORMAT_NAMES = tuple(FORMATS)
CHECK_IMAGES = 4   # images of the bundled sample in the parity check written into the card
CHECK_POINTS = 6   # color hints per hinted image of the check batch (check_hints)
CHECK_HINTS = (f"color hints made from the images' own colors, image by image in turn: {CHECK_POINTS} points "
               "(one of radius 3 px) and the image's color distribution as reference; the points only; the "
               "reference only; no hints (zeros)")


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ExportError(f"unknown format '{name}'; valid formats: {', '.join(FORMAT_NAMES)}") from None


def missing_modules(fmt: Format) -> list[str]:
    return [m for m in fmt.needs if importlib.util.find_spec(m) is None]


def check_ready(fmt: Format) -> None:
    """Refuse with one line when the backend or a package the format needs is missing."""
    import keras
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"export runs on the TensorFlow backend (KERAS_BACKEND={keras.backend.backend()} "
                          "now); run folders are the same on every backend: unset KERAS_BACKEND")
    missing = missing_modules(fmt)
    if missing:
        raise ExportError(f"{fmt.name} export needs {', '.join(missing)}: pip install -r requirements-serving.txt")


def check_out(fmt: Format, out: Path) -> None:
    if fmt.suffix and out.suffix != fmt.suffix:
        raise ExportError(f"{out}: a {fmt.name} artifact is one file ending in {fmt.suffix}; "
                          f"use --out NAME{fmt.suffix}")
    if not fmt.suffix and out.suffix in {f.suffix for f in FORMATS.values() if f.suffix}:
        raise ExportError(f"{out}: a SavedModel is a folder; give a folder name without {out.suffix}")


# ---- the model to export --------------------------------------------------------------

def exportable(colorizer: Colorizer, bake_color: bool = False):
    """The Keras model to export: the run's network, or it inside the color conversion; called once.

    Keras 3.15's ONNX export refuses a model that was never called ("The model provided has never
    called"), even a built functional one, so one zero batch goes through first.
    """
    from serving.colorgraph import bake  # Keras ops: imported when exporting, not by export.py's checks
    try:
        model = bake(colorizer) if bake_color else inference_model(colorizer.network)
    except ValueError as err:   # an encoding bake() does not know
        raise ExportError(str(err)) from None
    model.predict_on_batch(_feed([np.zeros((1, *spec_shape(t)), np.float32) for t in model.inputs]))
    return model


def spec_shape(tensor) -> tuple[int, ...]:
    """A Keras input's shape without the batch axis."""
    return tuple(int(d) for d in tensor.shape[1:])


def input_names(model) -> list[str]:
    """The model's input names (Keras' "L", "prior", "gray"), which every format keeps."""
    return [t.name.split(":")[0] for t in model.inputs]


def _feed(arrays: list[np.ndarray]):
    return arrays[0] if len(arrays) == 1 else arrays


def check_batch(colorizer: Colorizer, model, bake_color: bool, n: int = CHECK_IMAGES) -> list[np.ndarray]:
    """Inputs of ``model`` for the first n images of the bundled validation sample, encoded as the run encodes them.

    The image input is the real encoding of real images. A model's prior is the Colorizer's own
    (fusion_label: the one-hot class), except fusion_resnet's: a fixed pseudo-random softmax vector,
    since running the ImageNet classifier would only slow the check (the network is what is compared).
    A run trained with color hints (effnet_unet) gets ``check_hints``: hints from the images' own colors,
    not zeros, so the parity covers the hint paths too.
    """
    data = load_images(SAMPLE_DIR / "val", "train", colorizer.image_size).subset(n)
    gray = colorspace.gray_rgb(data.images)                 # (n, S, S, 3) float32 in [0, 1], R = G = B
    if bake_color:
        first = gray[..., :1]                               # the baked model takes the gray image itself
    elif colorizer.color_space == "RGB":
        first = gray * 2.0 - 1.0
    elif colorizer.color_space == "LAB_SYM":
        first = colorspace.encode_lab_symmetric(gray)[0]
    else:
        first = colorspace.encode_lab(gray)[0]              # L / 100
    arrays = [np.asarray(first, np.float32)]
    if colorizer.spec.prior == "classifier":
        logits = np.random.default_rng(0).normal(size=(n, spec_shape(model.inputs[1])[0]))
        arrays.append((np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32))
    elif colorizer.spec.prior:
        prior = colorizer.prior(data.images, data.labels)
        arrays += [np.asarray(p, np.float32) for p in (prior if isinstance(prior, (list, tuple)) else [prior])]
    if getattr(colorizer, "takes_hints", False):          # effnet_unet trained with hints: its last two inputs
        arrays += check_hints(data.images)
    if len(arrays) != len(model.inputs):
        raise ExportError(f"{colorizer.spec.name}: cannot make a check batch for its {len(model.inputs)} inputs "
                          f"({', '.join(input_names(model))})")
    return arrays


def check_hints(images: np.ndarray, n_points: int = CHECK_POINTS, seed: int = 0,
                network: bool = True) -> list[np.ndarray]:
    """[local (n, S, S, 6), reference (n, Q + 1)] color hints as the network takes them
    (core.hints.network_local; ``network=False``: the 3 hint channels, as Colorizer.colorize takes them) for the images
    (n, S, S, 3) uint8, made from their own colors so that every hint path of the network is exercised:
    in turn, points and a reference, points only, a reference only, none (``CHECK_HINTS``).

    The points are core.hints.simulate_points' (training's simulated hints: a pixel's color, or a
    small patch's mean), the first with a radius of 3 px (a hinted area, not one pixel); the
    reference is the image's own color distribution (core.hints.reference_distribution).
    """
    from dataclasses import replace
    rng = np.random.default_rng(seed)
    ab = colorspace.rgb_to_lab(images)[..., 1:]
    hw = tuple(images.shape[1:3])
    local = np.zeros((*images.shape[:3], 3), np.float32)
    reference = np.zeros((len(images), core_hints.n_bins() + 1), np.float32)
    for i, image in enumerate(images):
        if i % 4 in (0, 1):
            points = core_hints.simulate_points(ab[i], n_points, rng)
            points[0] = replace(points[0], radius=3.0)
            local[i] = core_hints.local_planes(points, hw, hw)
        if i % 4 in (0, 2):
            reference[i] = core_hints.global_vector(core_hints.reference_distribution(image))
    if network:
        local = core_hints.network_local(local, colorspace.rgb_to_lab(images)[..., 0])
    return [local, reference]


# ---- writing --------------------------------------------------------------------------

def export_model(model, fmt: Format, out: Path) -> None:
    """``model.export`` to ``out``; a failure of the converter becomes one ExportError line."""
    import keras
    check_ready(fmt)
    check_out(fmt, out)
    kwargs = {}
    if fmt.name == "tflite":
        import tensorflow as tf
        # Builtin ops only: a file that needs the Flex delegate (TensorFlow ops inside TFLite) would not
        # run on the plain LiteRT runtime. With a free batch axis the converter loses the fusion
        # decoder's shapes and falls back to Flex Conv2D; a fixed batch keeps every op builtin.
        kwargs["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
        specs = [keras.InputSpec(shape=(fmt.batch, *spec_shape(t)), dtype="float32", name=n)
                 for t, n in zip(model.inputs, input_names(model))]
        kwargs["input_signature"] = [specs] if len(specs) > 1 else specs
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet_native_logs():
            model.export(str(out), format=fmt.keras_format, verbose=False, **kwargs)
    except Exception as err:   # noqa: BLE001 -- only the converter runs here; its error names the op
        raise ExportError(f"{model.name} cannot be exported to {fmt.name}: {_one_line(err)}") from None


def _one_line(err: Exception) -> str:
    """The informative part of a converter's (often pages long) message, on one line.

    The TFLite converter names each op it cannot express ("'tf.Erfinv' op is neither a custom op
    nor a flex op"), tf2onnx lists them ("Unsupported ops: Counter({'Erfinv': 1})"): those names
    are the message; otherwise its first line.
    """
    text = str(err)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    ops += (sorted(set(re.findall(r"'(\w+)': \d+", text[text.find("Unsupported ops"):])))
            if "Unsupported ops" in text else [])
    if ops:
        return f"no builtin op for {', '.join(ops)} ({type(err).__name__})"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{' '.join(first.split())[:300]} ({type(err).__name__})"


# ---- running ------------------------------------------------------------------------------

@dataclass
class Tensor:
    name: str
    shape: list            # None for a free axis
    dtype: str


class Runner:
    """An exported artifact loaded by its runtime: ``runner(arrays in the Keras input order) -> output``."""

    def __init__(self, fmt: Format, path: Path):
        self.fmt, self.path = fmt, Path(path)
        loader = getattr(self, f"_load_{fmt.name}")
        self.inputs, self.outputs, self._run = loader()

    def __call__(self, named: dict[str, np.ndarray]) -> np.ndarray:
        """{input name: (B, ...) float32} -> the output, (B, ...) float32."""
        return np.asarray(self._run({k: np.asarray(v, np.float32) for k, v in named.items()}))

    def _load_savedmodel(self):
        import tensorflow as tf
        signature = tf.saved_model.load(str(self.path)).signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        inputs = [Tensor(k, _dims(s.shape), s.dtype.name) for k, s in specs.items()]
        (out_name, out_spec), = signature.structured_outputs.items()
        outputs = [Tensor(out_name, _dims(out_spec.shape), out_spec.dtype.name)]
        return inputs, outputs, lambda named: signature(**{k: tf.constant(v) for k, v in named.items()})[out_name]

    def _load_onnx(self):
        import onnxruntime
        session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])

        def dims(shape):
            return [d if isinstance(d, int) else None for d in shape]
        inputs = [Tensor(i.name, dims(i.shape), i.type) for i in session.get_inputs()]
        outputs = [Tensor(o.name, dims(o.shape), o.type) for o in session.get_outputs()]
        return inputs, outputs, lambda named: session.run(None, named)[0]

    def _load_tflite(self):
        from ai_edge_litert.interpreter import Interpreter
        interpreter = Interpreter(model_path=str(self.path))
        runner = interpreter.get_signature_runner("serving_default")
        details = runner.get_input_details()
        inputs = [Tensor(k, d["shape"].tolist(), np.dtype(d["dtype"]).name) for k, d in details.items()]
        (out_name, out_detail), = runner.get_output_details().items()
        outputs = [Tensor(out_name, out_detail["shape"].tolist(), np.dtype(out_detail["dtype"]).name)]
        batch = self.fmt.batch

        def run(named):
            n = len(next(iter(named.values())))
            return np.concatenate([runner(**{k: v[i:i + batch] for k, v in named.items()})[out_name]
                                   for i in range(0, n, batch)])
        return inputs, outputs, run


def _dims(shape) -> list:
    return [None if d is None else int(d) for d in shape]


def run_keras(model, arrays: list[np.ndarray]) -> np.ndarray:
    return np.asarray(model.predict_on_batch(_feed(arrays)))


def parity(model, runner: Runner, arrays: list[np.ndarray]) -> float:
    """Largest |exported - Keras| over the outputs of one batch."""
    named = dict(zip(input_names(model), arrays))
    return float(np.abs(runner(named) - run_keras(model, arrays)).max())


# ---- the whole step ---------------------------------------------------------------------------

def export_colorizer(colorizer: Colorizer, fmt_name: str, out: Path, bake_color: bool = False) -> dict:
    """Export, reload with the runtime, check, write the card; returns the card."""
    fmt = get_format(fmt_name)
    check_ready(fmt)
    check_out(fmt, Path(out))
    model = exportable(colorizer, bake_color)
    export_model(model, fmt, Path(out))
    runner = Runner(fmt, Path(out))
    arrays = check_batch(colorizer, model, bake_color)
    diff = parity(model, runner, arrays)
    card = cards.build(colorizer, fmt, Path(out), bake_color, runner, input_names(model), diff, len(arrays[0]),
                       CHECK_HINTS if getattr(colorizer, "takes_hints", False) else None)
    cards.write(Path(out), card)
    return card
