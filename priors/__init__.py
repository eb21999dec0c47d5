"""ImageNet classifier priors for fusion_resnet, computed once per data set and cached.

The original ran Inception-ResNet-v2 inside its data generator, image by image, every epoch
(about 0.5 s per image on a 2-core CPU). Here the prior of a data set is computed once,
batched, and stored in ``cache/priors/<backbone>-<key>.npy``, the key being a hash of the
pixels, the backbone, its weights and the preprocessing, so later epochs and later runs just
read it and any change of data invalidates it.

Input to the backbone: the gray version of each image (L with a = b = 0, R = G = B), resized
bilinearly to the backbone's input size and normalized as that backbone was trained.
Output: (N, 1000) float32 softmax probabilities.

Modules: ``efficientnet_lite0`` (the Keras port and its checkpoint converter), ``torch_checkpoint``
(the safe reader of PyTorch files), ``features`` (effnet_unet's multi-scale encoder feature maps,
computed once per data set and cached the same way).

May import: ``core`` (and its own modules).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core import colorspace

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "cache"
BACKBONES = ("inception_resnet_v2", "efficientnet_lite0")
DEFAULT_BACKBONE = "inception_resnet_v2"   # the original's choice; efficientnet_lite0 works offline
_PREPROCESS_VERSION = "gray-bilinear-v1"   # bump when the input pipeline changes: invalidates caches



class PriorError(Exception):
    """The prior cannot be computed as asked (missing weights, unknown backbone); one line, with the fix."""


def input_size(backbone: str) -> int:
    return {"inception_resnet_v2": 299, "efficientnet_lite0": 224}[_check(backbone)]


def _check(backbone: str) -> str:
    if backbone not in BACKBONES:
        raise PriorError(f"unknown prior backbone '{backbone}'; valid: {', '.join(BACKBONES)}")
    return backbone


def prior_options(config: dict) -> dict:
    """The compute_prior arguments recorded in a run's config."""
    p = config["prior"]
    return {"backbone": p["backbone"], "weights": p.get("weights"),
            "allow_random_weights": bool(p.get("allow_random_weights", False))}


def load_backbone(backbone: str, weights: str | None = None, allow_random_weights: bool = False):
    """The Keras classifier, (B, s, s, 3) normalized input -> (B, 1000) probabilities.

    Never falls back to random weights silently: only ``allow_random_weights=True`` (a test
    option) gives an untrained network.
    """
    import keras

    _check(backbone)
    if backbone == "efficientnet_lite0":
        from priors import efficientnet_lite0 as eff
        from priors.torch_checkpoint import CheckpointFormatError, UnsafeCheckpointError
        if allow_random_weights:
            logits = eff.build_efficientnet_lite0()
        else:
            try:
                # The converted weights are cached per checkpoint, so another file never reads a stale cache.
                cache = CACHE_DIR / "weights" / ("shipped" if weights is None else _weights_digest(weights))
                logits = eff.load_efficientnet_lite0(cache_dir=cache, checkpoint=weights)
            except (eff.WeightsUnavailableError, UnsafeCheckpointError, CheckpointFormatError) as err:
                raise PriorError(str(err)) from None
        return keras.Sequential([logits, keras.layers.Softmax()], name="efficientnet_lite0_softmax")
    return _inception(weights, allow_random_weights)


def _inception(weights: str | None, allow_random_weights: bool):
    import keras

    app = keras.applications.InceptionResNetV2
    if allow_random_weights:
        return app(weights=None)
    if weights is not None:
        if not Path(weights).is_file():
            raise PriorError(f"{weights}: no such weights file for inception_resnet_v2")
        return app(weights=str(weights))
    try:
        return app(weights="imagenet")   # downloaded once into ~/.keras/models by Keras
    except Exception as err:   # noqa: BLE001 -- offline: Keras raises URL/HTTP errors of several kinds
        raise PriorError(
            f"cannot get the ImageNet weights of inception_resnet_v2 ({type(err).__name__}: {err}); "
            "pass --prior-weights PATH to a local inception_resnet_v2 .h5 weights file, or use "
            "--prior efficientnet_lite0, whose weights ship with pip") from None


_LOADED: dict[tuple, object] = {}


def _backbone(backbone: str, weights: str | None, allow_random_weights: bool):
    """load_backbone, once per process: building a backbone costs seconds, and predict/colorize
    compute priors for several batches of data."""
    key = (backbone, weights, allow_random_weights)
    if key not in _LOADED:
        _LOADED[key] = load_backbone(backbone, weights, allow_random_weights)
    return _LOADED[key]


def preprocess(gray: np.ndarray, backbone: str) -> np.ndarray:
    """gray (B, s, s, 3) float [0, 1] at the backbone's size -> the backbone's input normalization."""
    if backbone == "efficientnet_lite0":
        from priors.efficientnet_lite0 import IMAGENET_MEAN, IMAGENET_STD
        return (gray - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return gray * 2.0 - 1.0   # Inception's preprocess_input: [-1, 1]


def cache_key(images: np.ndarray, backbone: str, weights: str | None) -> str:
    h = hashlib.sha256()
    for part in (backbone, _PREPROCESS_VERSION, _weights_id(weights), str(images.shape)):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:24]


def _weights_digest(weights: str) -> str:
    return hashlib.sha256(_weights_id(weights).encode()).hexdigest()[:16]


def _weights_id(weights: str | None) -> str:
    if weights is None:
        return "imagenet"
    p = Path(weights)
    stat = p.stat() if p.exists() else None
    return f"{p.resolve()}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"


def compute_prior(images: np.ndarray, backbone: str = DEFAULT_BACKBONE, weights: str | None = None,
                  allow_random_weights: bool = False, cache_dir: Path | None = None,
                  batch_size: int = 32, verbose: bool = True) -> np.ndarray:
    """images (N, S, S, 3) uint8 -> (N, 1000) float32 softmax, read from the cache when it can be."""
    _check(backbone)
    cache_dir = Path(cache_dir) if cache_dir is not None else CACHE_DIR / "priors"
    # Priors of an untrained backbone are never cached: they would differ at every build.
    path = None if allow_random_weights else cache_dir / f"{backbone}-{cache_key(images, backbone, weights)}.npy"
    if path is not None and path.exists():
        if verbose:
            print(f"prior: {len(images)} images, cached in {path}")
        return np.load(path, allow_pickle=False)
    model = _backbone(backbone, weights, allow_random_weights)
    prior = _run_backbone(model, images, backbone, batch_size, verbose)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, prior)
        tmp.replace(path)
    return prior


def _run_backbone(model, images: np.ndarray, backbone: str, batch_size: int, verbose: bool) -> np.ndarray:
    import keras

    size = input_size(backbone)
    out = np.empty((len(images), 1000), np.float32)
    bar = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    if verbose:
        print(f"prior: running {backbone} on {len(images)} images (once; cached afterwards)")
    for start in range(0, len(images), batch_size):
        gray = colorspace.gray_rgb(images[start:start + batch_size])         # (b, S, S, 3) in [0, 1]
        gray = keras.ops.convert_to_numpy(
            keras.ops.image.resize(gray, (size, size), interpolation="bilinear"))  # (b, s, s, 3)
        out[start:start + len(gray)] = keras.ops.convert_to_numpy(
            model.predict_on_batch(preprocess(gray, backbone)))   # compiled: ~2x faster than eager calls
        if bar is not None:
            bar.add(len(gray))
    return out
