"""The lean inference path: a run's network through ONNX Runtime, without importing TensorFlow or Keras.

Why: importing TensorFlow costs about 6 s on two cores, many times the work of colorizing one photo;
ONNX Runtime imports, loads and runs the same network in a fraction of a second.

What: per run and working size (h, w), the run's network exported to ONNX (inputs and output as
the Keras network's: see ``models``), and for effnet_unet its ImageNet encoder (EfficientNet-Lite0's
taps, priors.features) exported on its own, shared by every run with the same taps. Keras' export
fixes the spatial size of these graphs (the decoders resize to fixed grids), hence one file per
working size; a photo at the default working size (long side 32) is one of seven shapes.

Made on first use, with Keras (``make``: TensorFlow and tf2onnx, requirements.txt installs them),
and cached under ``cache/lean/`` (or $COLORIZE_LEAN_CACHE), keyed by the run's config,
the sha256 of its weights and LEAN_VERSION; never written into a run folder (shipped runs stay as
committed). Every file is checked against Keras when made (largest |difference| of the raw output on
a fixed input, LEAN_TOLERANCE), so a converter that changed the numbers fails loudly, once.

The Colorizer uses a LeanRun through two calls: ``predict`` (the network's raw output for its
inputs, batched) and ``features`` (effnet_unet's encoder taps, float16 as priors.features gives
them). Decoding stays the Colorizer's (numpy), so both runtimes share it exactly.

Which runtime (``choose``): ``--runtime`` of the tools, default the environment's COLORIZE_RUNTIME,
else "auto": ONNX Runtime when it is installed and the model can take it (not fusion_resnet, whose
ImageNet classifier prior runs in Keras) and Keras runs on TensorFlow (KERAS_BACKEND), else Keras.
"onnx" insists (an error line when it cannot); "keras" never touches ONNX.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import priors
from core import checkpoints, colorspace, runs
from priors.imagenet import IMAGENET_MEAN, IMAGENET_STD

RUNTIMES = ("auto", "onnx", "keras")
RUNTIME_ENV = "COLORIZE_RUNTIME"      # the tools' default --runtime (tests/conftest.py sets keras)
LEAN_VERSION = "1"                    # bump when what is exported changes: invalidates the cache
LEAN_TOLERANCE = 1e-3                 # |ONNX - Keras| of the raw output allowed when a file is made
# The models whose inputs the lean path can make without Keras (fusion_resnet's prior is an ImageNet
# classifier's output, computed by Keras).
LEAN_MODELS = ("autoencoder", "unet", "fusion_label", "gan", "effnet_unet")


class RuntimeChoiceError(ValueError):
    """--runtime onnx where ONNX Runtime cannot serve (not installed, a model it cannot take); one line."""


def default_runtime() -> str:
    """The tools' --runtime default: $COLORIZE_RUNTIME, else auto."""
    value = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise RuntimeChoiceError(f"{RUNTIME_ENV}={value!r}: must be one of {', '.join(RUNTIMES)}")
    return value


def unavailable_reason(model: str) -> str | None:
    """Why the lean path cannot serve ``model`` here (None: it can)."""
    if model not in LEAN_MODELS:
        return f"{model}'s prior (an ImageNet classifier's output) is computed by Keras"
    if not _installed("onnxruntime"):
        return "onnxruntime is not installed (pip install -r requirements.txt installs it)"
    return None


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):   # a broken or blocked package
        return False


def choose(runtime: str | None, model: str) -> str:
    """"onnx" or "keras" for a --runtime choice (None: the default)."""
    runtime = default_runtime() if runtime is None else runtime
    if runtime not in RUNTIMES:
        raise RuntimeChoiceError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    reason = unavailable_reason(model)
    if runtime == "onnx" and reason:
        raise RuntimeChoiceError(f"--runtime onnx cannot serve {model}: {reason}; use --runtime keras")
    if runtime == "keras" or reason:
        return "keras"
    if runtime == "auto" and os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return "keras"   # the files are made through TensorFlow: a JAX or PyTorch user asks for them with "onnx"
    return "onnx"


CACHE_ENV = "COLORIZE_LEAN_CACHE"     # where the files go instead of cache/lean/ (tests: a fresh folder)


def cache_dir() -> Path:
    """$COLORIZE_LEAN_CACHE, else cache/lean/ (priors.CACHE_DIR, read now: tests move it)."""
    return Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else priors.CACHE_DIR / "lean"


def run_key(config: dict, run_dir: Path) -> str:
    """A digest of what the exported network depends on: the config, the weights, LEAN_VERSION."""
    checkpoint = runs.current_checkpoint(Path(run_dir), announce=False)
    if checkpoint is None:
        raise runs.RunError(f"{run_dir}: no weights in this run folder")
    part = "generator" if config["model"] == "gan" else "model"
    recorded = checkpoint.files.get(f"{part}.weights.h5", {}).get("sha256")
    weights = recorded or checkpoints.sha256(runs.weights_file(checkpoint, part))
    h = hashlib.sha256()
    for item in (LEAN_VERSION, json.dumps(config, sort_keys=True), weights):
        h.update(item.encode() + b"\0")
    return h.hexdigest()[:20]


def _session(path: Path):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3          # its warnings about unused initializers are noise here
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class LeanRun:
    """One run's network (and encoder) through ONNX Runtime, one session per input size, made when missing.

    ``keras_colorizer``: a callable returning the run's Keras Colorizer, called only to make a missing
    file (so a cached run never imports Keras). ``announce``: where "making ..." lines go (None: quiet).
    """

    def __init__(self, config: dict, run_dir: Path, keras_colorizer, announce=sys.stderr):
        self.config, self.run_dir = config, Path(run_dir)
        self.model = config["model"]
        self.key = run_key(config, run_dir)
        self._keras_colorizer = keras_colorizer
        self.announce = announce
        self._sessions: dict = {}

    # ---- running ---------------------------------------------------------------------------------

    def predict(self, parts: tuple, batch_size: int = 64) -> np.ndarray:
        """The network's raw output for its inputs ``parts`` (the Keras network's order), batch by batch."""
        session = self._network_session(tuple(parts[0].shape[1:3]))
        names = [i.name for i in session.get_inputs()]
        out = []
        for i in range(0, len(parts[0]), batch_size):
            feed = {n: np.ascontiguousarray(p[i:i + batch_size], np.float32) for n, p in zip(names, parts)}
            out.append(session.run(None, feed)[0])
        return np.concatenate(out)

    def features(self, images: np.ndarray, encoder_size, taps, batch_size: int = 32) -> list[np.ndarray]:
        """effnet_unet's encoder taps of ``images`` (N, h, w, 3) uint8 at ``encoder_size`` (an int: square, or
        (H, W)): one float16 (N, H/s, W/s, C) per tap, as priors.features.compute_features gives them."""
        from priors.features import encoder_hw as hw_of
        encoder_hw = hw_of(encoder_size)
        session = self._encoder_session(tuple(taps))
        name = session.get_inputs()[0].name
        out = [[] for _ in taps]
        for i in range(0, len(images), batch_size):
            result = session.run(None, {name: encoder_input(images[i:i + batch_size], encoder_hw)})
            for parts, value in zip(out, result):
                parts.append(value.astype(np.float16))     # the precision priors.features caches and Keras gets
        return [np.concatenate(p) for p in out]

    # ---- the files ---------------------------------------------------------------------------------

    def network_path(self, shape: tuple[int, int]) -> Path:
        return cache_dir() / f"{self.model}-{self.key}" / f"network-{shape[0]}x{shape[1]}.onnx"

    @staticmethod
    def encoder_path(taps) -> Path:
        return cache_dir() / "efficientnet_lite0" / f"taps-{'-'.join(taps)}-v{LEAN_VERSION}.onnx"

    def _network_session(self, shape: tuple[int, int]):
        key = ("network", shape)
        if key not in self._sessions:
            path = self.network_path(shape)
            if not path.exists():
                colorizer = self._keras_colorizer()
                self._make(path, lambda: inference_model(colorizer.network_for(shape)),
                           f"{self.model} at {shape[0]} x {shape[1]}")
            self._sessions[key] = _session(path)
        return self._sessions[key]

    def _encoder_session(self, taps: tuple):
        key = ("encoder", taps)
        if key not in self._sessions:
            path = self.encoder_path(taps)
            if not path.exists():
                from priors.features import imagenet_encoder, tap_model
                # convolutions only: one graph of free height and width serves every working size
                self._make(path, lambda: tap_model(imagenet_encoder(None), taps), "the ImageNet encoder")
            self._sessions[key] = _session(path)
        return self._sessions[key]

    def _make(self, path: Path, build, what: str) -> None:
        """Export the Keras model ``build()`` gives to ``path`` (atomically), checked against Keras."""
        # made by Keras' ONNX export, which converts through TensorFlow and tf2onnx
        missing = [m for m in ("tensorflow", "tf2onnx") if not _installed(m)]
        if missing:
            raise RuntimeChoiceError(f"cannot make the ONNX Runtime model of {what}: {', '.join(missing)} not "
                                     "installed (pip install -r requirements.txt), or use --runtime keras")
        start = time.perf_counter()
        if self.announce is not None:
            print(f"making the ONNX Runtime model of {what} (once; cached in {path.parent})", file=self.announce)
        make_onnx(build(), path)
        if self.announce is not None:
            print(f"  made in {time.perf_counter() - start:.1f} s", file=self.announce)


# ---- making (Keras) ---------------------------------------------------------------------------

class LeanExportError(RuntimeError):   # one line in the tools (inference.USER_ERRORS), with the way out
    """The ONNX export of a network failed or did not match Keras; names the network and the cause."""


def inference_model(network):
    """``network`` called with ``training=False``, as a model of the same inputs, outputs and name.

    Keras' export traces ``model.__call__`` without ``training``. For a decoder with BatchNormalization
    (issue 9's effnet_unet, on its branch) the ONNX path then received the layer's moving-statistics
    updates ("TF freezing failed" in tf2onnx) and its output differed from Keras by up to 10.8;
    called in inference mode explicitly, by 7.6e-6.
    """
    import keras
    names = [t.name.split(":")[0] for t in network.inputs]   # Keras' "L", "prior", "gray": every format keeps them
    inputs = [keras.Input(tuple(int(d) for d in t.shape[1:]), name=n) for t, n in zip(network.inputs, names)]
    outputs = network(inputs if len(inputs) > 1 else inputs[0], training=False)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=network.name)


def make_onnx(model, path: Path, check_hw: tuple[int, int] = (64, 96)) -> float:
    """Export ``model`` to ONNX at ``path`` (written whole or not at all) and return the largest
    |ONNX - Keras| of its outputs on one fixed random batch (free height and width: ``check_hw``);
    LeanExportError above LEAN_TOLERANCE (relative to the outputs' size when above 1)."""
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 1, (2, *(d if d is not None else c for d, c in zip(t.shape[1:], (*check_hw, None)))))
              .astype(np.float32) for t in model.inputs]
    feed = inputs if len(inputs) > 1 else inputs[0]
    want = model.predict_on_batch(feed)   # also: Keras' ONNX export refuses a model never called
    want = want if isinstance(want, (list, tuple)) else [want]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with quiet_native_logs():
            model.export(str(tmp), format="onnx", verbose=False)
        session = _session(tmp)
        got = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), inputs)})
        diff = max(float(np.abs(np.asarray(g, np.float32) - np.asarray(w, np.float32)).max())
                   for g, w in zip(got, want))
        scale = max(1.0, max(float(np.abs(np.asarray(w)).max()) for w in want))   # logits reach ~1e3 with hints
        if diff > LEAN_TOLERANCE * scale:
            raise LeanExportError(f"{model.name}: the ONNX export differs from Keras by {diff:.3g}; "
                                  "use --runtime keras")
        tmp.replace(path)
        return diff
    except LeanExportError:
        raise
    except Exception as err:   # noqa: BLE001 -- only the converter and the session run here
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise LeanExportError(f"{model.name} cannot be exported to ONNX ({first[:300]}); use --runtime keras") from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def quiet_native_logs():
    """Keep a converter's log lines (hundreds, on file descriptor 2) out of the terminal.

    A failure still raises; EXPORT_DEBUG=1 then also prints the converter's log.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            if os.environ.get("EXPORT_DEBUG"):
                sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# ---- the encoder's input, without Keras --------------------------------------------------------

def encoder_input(images: np.ndarray, encoder_hw: tuple[int, int]) -> np.ndarray:
    """(B, h, w, 3) uint8 -> (B, H, W, 3) float32: gray, resized bilinearly to ``encoder_hw`` and
    ImageNet-normalized -- priors.features.encoder_input's result, with OpenCV's resize in place of
    Keras' (both bilinear with half-pixel centers and no antialiasing; checked in tests/test_lean.py)."""
    import cv2

    gray = colorspace.gray_rgb(images)                                        # (B, h, w, 3) in [0, 1]
    size = (int(encoder_hw[1]), int(encoder_hw[0]))                           # OpenCV: (width, height)
    resized = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_LINEAR) for g in gray])
    return ((resized - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).astype(np.float32)
