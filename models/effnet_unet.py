"""U-Net decoder on a frozen ImageNet encoder (EfficientNet-Lite0), with a classification or regression head.

The encoder is ``priors.features``: the ImageNet EfficientNet-Lite0 sees the gray image resized to
``encoder_size`` (128 px for 32 px images: the stride-4 map is then 32 x 32) and its feature maps at
several strides ("taps") are computed once per data set and cached. This network is the decoder
that is trained on them: starting from the coarsest tap, each level resizes to the next tap's
grid, concatenates it and mixes with a 3x3 conv; the result is resized to the image size, the
input L is concatenated, and a last 3x3 conv feeds the head.

Fine-tuning (``fine_tune``, train.py ``--fine-tune-from``): the encoder's blocks after one tap (s16:
the two stride-32 stages, blocks 11-15; s8: blocks 5-15) become part of this network, computing the
deeper taps from the cached one; they start from the ImageNet weights (training/encoder_data.py)
with their BatchNorm frozen, and train with the decoder (at --init's lower rate when started from
a trained run).

Heads (``head``):

- ``classification`` (default; Zhang, Isola and Efros 2016): per pixel, logits over the Q = 261
  in-gamut ab bins of ``core.ab_bins``, trained with cross-entropy on soft-encoded targets (5
  nearest bins, Gaussian sigma 5) weighted by class rebalancing (lambda 0.5); decoded with the
  annealed mean at a temperature T (``decode``), with the rebalancing optionally undone (the
  fidelity setting: T = 1, undo 1).
- ``regression``: ab directly, in the LAB models' encoding (ab + 128) / 255, with an L1, Huber
  or MSE loss.

Inputs: L (B, S, S, 1) in [0, 1], then one (B, E/stride, E/stride, C) array per tap that the frozen
encoder computes (``encoder_taps``; E the encoder size). Outputs: (B, S, S, Q) logits
(classification) or (B, S, S, 2) ab encoded in about [0, 1].
Targets: for regression the LAB encoding (B, S, S, 2); for classification the packed soft
targets of ``core.ab_bins.pack_targets`` (B, S, S, 2K + 1), made from it by the data generator.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from core import ab_bins
from models.blocks import OUTPUT_DTYPE
from priors.efficientnet_lite0 import apply_blocks
from priors.features import check_taps, tap_block, tap_shapes

HEADS = ("classification", "regression")
LOSSES = ("huber", "l1", "mse")             # regression head only
ENCODER_SCALE = 4                           # encoder size = 4 x image size by default (measured: README)
DEFAULTS = {
    "encoder_size": None,                   # None: ENCODER_SCALE x image_size (128 for 32 px images)
    "taps": ("s4", "s8", "s16", "s32"),
    "widths": (128, 128, 64, 32),            # decoder channels, coarsest level first
    "head": "classification",
    "loss": "huber",
    "learning_rate": 1e-3,
    "decay_steps": 1000,                    # cosine decay to 0 over this many steps (train.py: the whole run)
    "temperature": 0.6,                     # annealed-mean default (decode), chosen on batch 5 (README); the paper: 0.38
    "fine_tune": None,                      # None: the encoder is frozen; "s16" / "s8": its blocks after that tap
                                            # are part of this network (ImageNet start, BatchNorm frozen) and train
}
FINE_TUNE_FROM = ("s8", "s16")
HUBER_DELTA = 10 / 255                      # 10 ab units in the (ab + 128) / 255 encoding


def options(image_size: int = 32, **given) -> dict:
    """The model's options with defaults filled in, as recorded in config.json (lists as lists)."""
    unknown = set(given) - set(DEFAULTS) - {"precision"}
    if unknown:
        raise ValueError(f"effnet_unet: unknown option(s) {sorted(unknown)}")
    out = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS and v is not None}}
    out["encoder_size"] = int(out["encoder_size"] or ENCODER_SCALE * image_size)
    out["taps"], out["widths"] = list(out["taps"]), [int(w) for w in out["widths"]]
    if out["head"] not in HEADS:
        raise ValueError(f"effnet_unet: head must be one of {', '.join(HEADS)}, got {out['head']!r}")
    if out["loss"] not in LOSSES:
        raise ValueError(f"effnet_unet: loss must be one of {', '.join(LOSSES)}, got {out['loss']!r}")
    if out["fine_tune"] is not None:
        if out["fine_tune"] not in FINE_TUNE_FROM:
            raise ValueError(f"effnet_unet: fine_tune must be one of {', '.join(FINE_TUNE_FROM)}, got {out['fine_tune']!r}")
        if out["fine_tune"] not in out["taps"] or "head" in out["taps"]:
            raise ValueError(f"effnet_unet: fine-tuning from tap {out['fine_tune']} needs that tap among the taps, "
                             f"and not 'head' (taps: {', '.join(out['taps'])})")
    return out


def encoder_taps(opts: dict) -> list[str]:
    """The taps the frozen encoder computes (priors.features): all of them, or, when fine-tuning, those
    up to the fine_tune tap; the deeper ones are computed inside the network (``_trained_encoder``)."""
    if opts["fine_tune"] is None:
        return list(opts["taps"])
    return [t for t in opts["taps"] if tap_block(t) <= tap_block(opts["fine_tune"])]


def _trained_encoder(opts: dict, frozen: dict) -> list:
    """The encoder's blocks after the fine_tune tap, applied to it: the deeper taps, (B, E/s, E/s, C) each.

    Named as in EfficientNet-Lite0, so training/encoder_data.py starts them from the ImageNet weights.
    """
    if opts["fine_tune"] is None:
        return []
    deeper = [t for t in opts["taps"] if t not in frozen]
    first = tap_block(opts["fine_tune"]) + 1
    blocks = apply_blocks(frozen[opts["fine_tune"]], first, max(tap_block(t) for t in deeper))
    return [blocks[tap_block(t)] for t in deeper]


def encoder_layers(model) -> list:
    """The network's layers that belong to the encoder (fine-tuning; none when it is frozen)."""
    return [layer for layer in model.layers if layer.name.startswith("blocks_")]


def _conv_bn_relu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


class BilinearResize(layers.Layer):
    """(B, h, w, C) -> (B, size, size, C), bilinear (half-pixel centers, no antialiasing).

    Not keras.layers.Resizing: that preprocessing layer needs TensorFlow installed even under the
    JAX and PyTorch backends. No weights, and nothing to deserialize: runs rebuild the network
    from code and config.json.
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, x):
        return ops.image.resize(x, (self.size, self.size), interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def _resize(x, size: int, name: str):
    """Bilinear resize of a (B, h, w, C) map to (B, size, size, C); identity when it already fits."""
    if x.shape[1] == size:
        return x
    return BilinearResize(size, name=name)(x)


def decoder(l_in, taps: list, widths, image_size: int):
    """(B, S, S, widths[-1]) features from L and the taps (coarsest first after sorting)."""
    levels: dict[int, list] = {}
    for t in taps:                          # taps of the same stride (s32, head) merge into one level
        levels.setdefault(int(t.shape[1]), []).append(t)
    x = None
    for i, size in enumerate(sorted(levels)):
        parts = levels[size] if x is None else [_resize(x, size, f"up{i}")] + levels[size]
        x = parts[0] if len(parts) == 1 else layers.Concatenate(name=f"skip{i}")(parts)
        x = _conv_bn_relu(x, widths[min(i, len(widths) - 1)], f"level{i}")
    x = _resize(x, image_size, "to_image")
    x = layers.Concatenate(name="with_L")([x, l_in])              # (B, S, S, w + 1)
    return layers.Conv2D(widths[-1], 3, padding="same", activation="relu", name="out_mix")(x)


def class_loss(k: int = ab_bins.K_NEAREST):
    """Rebalanced cross-entropy against packed soft targets (core.ab_bins.pack_targets)."""
    def loss(packed, logits):
        index = ops.cast(packed[..., :k], "int32")                # (B, S, S, k) bin indices
        weight = packed[..., k:2 * k]                             # (B, S, S, k) soft target, sum 1
        rebalance = packed[..., 2 * k]                            # (B, S, S) class weight of the nearest bin
        log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        ce = -ops.sum(weight * ops.take_along_axis(log_p, index, axis=-1), axis=-1)
        return ops.mean(rebalance * ce)
    return loss


def _regression_loss(kind: str):
    if kind == "huber":
        return keras.losses.Huber(delta=HUBER_DELTA)
    return keras.losses.MeanAbsoluteError() if kind == "l1" else keras.losses.MeanSquaredError()


def build(image_size: int = 32, **given) -> keras.Model:
    """The decoder network, compiled (Adam with cosine decay); see the module docstring for shapes."""
    opts = options(image_size, **given)
    check_taps(opts["taps"], opts["encoder_size"])
    if image_size < 8:
        raise ValueError(f"effnet_unet needs images of at least 8 px, got {image_size}")
    l_in = keras.Input((image_size, image_size, 1), name="L")
    taps = encoder_taps(opts)
    tap_in = [keras.Input(shape, name=f"tap_{t}") for t, shape in zip(taps, tap_shapes(taps, opts["encoder_size"]))]
    x = decoder(l_in, tap_in + _trained_encoder(opts, dict(zip(taps, tap_in))), opts["widths"], image_size)
    classify = opts["head"] == "classification"
    out = layers.Conv2D(len(ab_bins.gamut_bins()) if classify else 2, 1, dtype=OUTPUT_DTYPE,
                        name="bin_logits" if classify else "ab")(x)
    model = keras.Model([l_in, *tap_in], out, name="effnet_unet")
    for layer in encoder_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False   # ImageNet statistics kept (batches of 64 small maps would move them)
    schedule = keras.optimizers.schedules.CosineDecay(opts["learning_rate"], max(1, int(opts["decay_steps"])))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=class_loss() if classify else _regression_loss(opts["loss"]))
    return model


def decode(output: np.ndarray, head: str, temperature: float, undo_rebalancing: float = 0.0,
           rebalancing_weights=None) -> np.ndarray:
    """Network output -> (..., 2) ab in the LAB encoding (ab + 128) / 255, about [0, 1].

    Classification: softmax, then the annealed mean at ``temperature`` (1: the expectation).
    Trained with class rebalancing, the head predicts about p(q) w(q) / Z rather than the colors'
    probability p(q): rare, saturated bins are favored, which is what makes it colorful.
    ``undo_rebalancing`` u in [0, 1] divides that back out in part (logits - u log w, the weights of
    config.json's class_rebalancing): at u = 1 and T = 1 the result is the expected color under the
    estimated p(q), the prediction that minimizes the squared error (the fidelity setting).
    """
    if head == "regression":
        return np.asarray(output, np.float32)
    logits = np.asarray(output, np.float32)
    if undo_rebalancing:
        logits = logits - np.float32(undo_rebalancing) * np.log(np.asarray(rebalancing_weights, np.float32))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ab = ab_bins.annealed_mean(probs, ab_bins.gamut_bins(), temperature)
    return (ab + np.float32(128)) / np.float32(255)
