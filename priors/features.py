"""Multi-scale ImageNet features of gray images (EfficientNet-Lite0), for ``effnet_unet``'s decoder.

The encoder is the ImageNet EfficientNet-Lite0 of :mod:`priors.efficientnet_lite0`, frozen: its
feature maps at several strides ("taps") are computed once per data set (and once for the data
set mirrored left-right, for flip augmentation), cached under ``cache/features/`` by a hash of
the pixels, the encoder size, the taps and the weights, and read back by later epochs and runs.
That leaves only the decoder to train: the encoder at 128 px runs at about 45 images/s on two
busy CPU cores, far slower than a decoder step.

Input to the encoder: the gray version of each image (L kept, a = b = 0, so R = G = B: what the
ImageNet network sees of a black-and-white photo), resized bilinearly to ``encoder_size`` and
normalized with the ImageNet mean and std, as ``priors.compute_prior`` does for the fusion prior.

Output: one float16 array per tap, (N, encoder_size / stride, same, channels); float16 halves
the cache (the decoder computes in float32).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import priors
from core import colorspace
from priors import PriorError  # FeatureError is one, so the tools print it as one line

_VERSION = "gray-bilinear-v1"   # bump when the input pipeline changes: invalidates caches

# tap name -> (stride, channels, layer, "input"/"output" of that layer). Block outputs are taken
# as the input of the next block's first layer, because the residual Add layers have no stable
# names of their own (Keras numbers them per process).
TAPS = {
    "s2": (2, 16, "blocks_1__expand_conv", "input"),
    "s4": (4, 24, "blocks_3__expand_conv", "input"),
    "s8": (8, 40, "blocks_5__expand_conv", "input"),
    "s16": (16, 112, "blocks_11__expand_conv", "input"),
    "s32": (32, 320, "blocks_15__bn2", "output"),
    "head": (32, 1280, "avg_pool", "input"),     # the classifier's last feature map
}


class FeatureError(PriorError):
    """Features cannot be computed as asked (unknown tap, bad size); one line, with the fix."""


def encoder_hw(encoder_size) -> tuple[int, int]:
    """The encoder's input size: an int (square, as training uses) or (h, w) (photos at their aspect ratio)."""
    if np.ndim(encoder_size) == 0:
        return int(encoder_size), int(encoder_size)
    return int(encoder_size[0]), int(encoder_size[1])


def check_taps(taps, encoder_size) -> tuple[str, ...]:
    taps = tuple(taps)
    unknown = [t for t in taps if t not in TAPS]
    if unknown or not taps:
        raise FeatureError(f"unknown encoder tap(s) {unknown or taps}; valid: {', '.join(TAPS)}")
    deepest = max(TAPS[t][0] for t in taps)
    for side in encoder_hw(encoder_size):
        if side % deepest:
            raise FeatureError(f"encoder size {side} must be a multiple of {deepest} (the stride of tap "
                               f"'{max(taps, key=lambda t: TAPS[t][0])}')")
    return taps


def tap_shapes(taps, encoder_size) -> list[tuple[int, int, int]]:
    """(h, w, channels) of each tap for an encoder input of ``encoder_size`` pixels (square) or (h, w)."""
    h, w = encoder_hw(encoder_size)
    return [(h // TAPS[t][0], w // TAPS[t][0], TAPS[t][1]) for t in check_taps(taps, encoder_size)]


def tap_block(tap: str) -> int | None:
    """The index of the MBConv block whose output a tap is (None: "head", after the blocks)."""
    _, _, name, where = TAPS[tap]
    if not name.startswith("blocks_"):
        return None
    index = int(name.split("_")[1])
    return index if where == "output" else index - 1   # the input of block i is the output of block i - 1


_LOADED: dict[tuple, object] = {}


def imagenet_encoder(encoder_size):
    """The whole ImageNet EfficientNet-Lite0 for (E, E, 3) or (h, w, 3) inputs, or inputs of any size for
    ``encoder_size`` None (PriorError when its weights are missing)."""
    from priors import efficientnet_lite0 as eff
    from priors.torch_checkpoint import CheckpointFormatError, UnsafeCheckpointError
    try:
        # the converted weights where priors.load_backbone keeps them (priors.CACHE_DIR is read now: tests move it)
        return eff.load_efficientnet_lite0(cache_dir=priors.CACHE_DIR / "weights" / "shipped",
                                           input_shape=(*((None, None) if encoder_size is None
                                                            else encoder_hw(encoder_size)), 3))
    except (eff.WeightsUnavailableError, UnsafeCheckpointError, CheckpointFormatError) as err:
        raise PriorError(str(err)) from None


def extractor(encoder_size, taps, allow_random_weights: bool = False):
    """Keras model: normalized RGB (B, E, E, 3) (or (B, h, w, 3)) -> [tap arrays], once per process and setting."""
    key = (encoder_hw(encoder_size), tuple(taps), allow_random_weights)
    if key not in _LOADED:
        _LOADED[key] = _build_extractor(encoder_size, check_taps(taps, encoder_size), allow_random_weights)
    return _LOADED[key]


def _build_extractor(encoder_size: int, taps, allow_random_weights: bool):
    from priors import efficientnet_lite0 as eff
    if allow_random_weights:
        net = eff.build_efficientnet_lite0((*encoder_hw(encoder_size), 3))
    else:
        net = imagenet_encoder(encoder_size)
    h, w = encoder_hw(encoder_size)
    return tap_model(net, taps, name=f"efficientnet_lite0_taps_{h}" + ("" if h == w else f"x{w}"))


def tap_model(net, taps, name: str = "efficientnet_lite0_taps"):
    """Keras model: the encoder ``net``'s input -> [its tap arrays] (TAPS says where each is taken)."""
    import keras
    outputs = []
    for tap in taps:
        _, _, layer_name, where = TAPS[tap]
        layer = net.get_layer(layer_name)
        outputs.append(layer.input if where == "input" else layer.output)
    return keras.Model(net.input, outputs, name=name)


def encoder_input(images: np.ndarray, encoder_size, flip: bool = False) -> np.ndarray:
    """(B, h, w, 3) uint8 -> (B, E, E, 3) (or (B, *encoder_size, 3)) float32: gray, resized, ImageNet-normalized
    (flipped if asked)."""
    import keras

    from priors.efficientnet_lite0 import IMAGENET_MEAN, IMAGENET_STD
    gray = colorspace.gray_rgb(images[:, :, ::-1] if flip else images)          # (B, S, S, 3) in [0, 1]
    gray = keras.ops.convert_to_numpy(keras.ops.image.resize(gray, encoder_hw(encoder_size),
                                                             interpolation="bilinear"))
    return (gray - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)


def cache_key(images: np.ndarray, encoder_size: int, taps, flip: bool) -> str:
    h = hashlib.sha256()
    for part in ("efficientnet_lite0", _VERSION, str(encoder_size), ",".join(taps), str(flip), str(images.shape)):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:24]


def compute_features(images: np.ndarray, encoder_size: int, taps, flip: bool = False, cache: bool = True,
                     cache_dir: Path | None = None, batch_size: int = 32, verbose: bool = True,
                     allow_random_weights: bool = False) -> list[np.ndarray]:
    """images (N, S, S, 3) uint8 -> one float16 (N, E/stride, E/stride, C) array per tap.

    With ``cache`` (data sets), read from / written to ``cache_dir`` (default cache/features);
    features of an untrained encoder (a test option) are never cached.
    """
    taps = check_taps(taps, encoder_size)
    path = None
    if cache and not allow_random_weights:
        cache_dir = Path(cache_dir) if cache_dir is not None else priors.CACHE_DIR / "features"
        path = cache_dir / f"efficientnet_lite0-{cache_key(images, encoder_size, taps, flip)}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as stored:
                if verbose:
                    print(f"encoder features: {len(images)} images{' (mirrored)' if flip else ''}, cached in {path}")
                return [stored[t] for t in taps]
    out = _run_encoder(images, encoder_size, taps, flip, batch_size, verbose, allow_random_weights)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **dict(zip(taps, out)))
        tmp.replace(path)   # never a half-written cache
    return out


def _run_encoder(images, encoder_size, taps, flip, batch_size, verbose, allow_random_weights) -> list[np.ndarray]:
    import keras

    model = extractor(encoder_size, taps, allow_random_weights)
    shapes = tap_shapes(taps, encoder_size)
    out = [np.empty((len(images), *s), np.float16) for s in shapes]
    bar = None
    if verbose and len(images) > batch_size:
        print(f"encoder features: running EfficientNet-Lite0 at {encoder_size} px on {len(images)} images"
              f"{' (mirrored)' if flip else ''} (once; cached afterwards)")
        bar = keras.utils.Progbar(len(images), unit_name="image")
    for start in range(0, len(images), batch_size):
        batch = encoder_input(images[start:start + batch_size], encoder_size, flip)
        result = model.predict_on_batch(batch)   # compiled: faster than eager calls
        result = result if isinstance(result, (list, tuple)) else [result]
        for array, value in zip(out, result):
            array[start:start + len(batch)] = keras.ops.convert_to_numpy(value)
        if bar is not None:
            bar.add(len(batch))
    return out
