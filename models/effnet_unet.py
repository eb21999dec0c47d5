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
encoder computes (``encoder_taps``; E the encoder size); with ``hints`` also the local hints
(B, S, S, 3) and the global hint (B, Q + 1) of ``core.hints``, fed to every decoder level (pooled
to its size; the global hint embedded and tiled at the coarsest level) and to the last conv; with
``decoder_local_hints`` False the decoder gets zeros for the local hints (the points reach the hint
head alone, so the network's own colors ignore them: a lone point does not tint what is not its).
The encoder only ever sees the gray image, so its cached taps serve hinted training too.
Built with ``work_shape`` (h, w), the same weights take inputs of that size (S x S -> h x w; the
encoder at the run's ratio of encoder size to image size). Outputs: (B, S, S, Q) logits
(classification) or (B, S, S, 2) ab encoded in about [0, 1].
Targets: for regression the LAB encoding (B, S, S, 2); for classification the packed soft
targets of ``core.ab_bins.pack_targets`` (B, S, S, 2K + 1), made from it by the data generator.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from core import ab_bins
from core.hints import NETWORK_CHANNELS, SPREAD_FIELDS, SPREAD_L_VAR, SPREAD_SIGMA
from models.blocks import OUTPUT_DTYPE

# the Keras-free part (options, decoding), re-exported: the tools import them from either module
from models.effnet_options import (  # noqa: F401
    DEFAULTS,
    ENCODER_SCALE,
    FINE_TUNE_FROM,
    HEADS,
    HINTED_TEMPERATURE,
    HUBER_DELTA,
    LOSSES,
    OWN_KEY_HEADS,
    _hw,
    decode,
    encoder_taps,
    options,
    split_output,
    working_encoder_shape,
)
from priors.efficientnet_lite0 import apply_blocks
from priors.features import check_taps, tap_block, tap_shapes


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
    """(B, h, w, C) -> (B, H, W, C), bilinear (half-pixel centers, no antialiasing); ``size`` H (= W) or (H, W).

    Not keras.layers.Resizing: that preprocessing layer needs TensorFlow installed even under the
    JAX and PyTorch backends. No weights, and nothing to deserialize: runs rebuild the network
    from code and config.json.
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = _hw(size)

    def call(self, x):
        return ops.image.resize(x, self.size, interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


def _resize(x, size, name: str):
    """Bilinear resize of a (B, h, w, C) map to (B, H, W, C), ``size`` H or (H, W); identity when it already fits."""
    if tuple(x.shape[1:3]) == _hw(size):
        return x
    return BilinearResize(size, name=name)(x)


class PoolHints(layers.Layer):
    """Local hints (B, H, W, 6) (core.hints.network_local: ab / 128 where hinted, the mask, the spread
    ab / 128 and its confidence) -> the same at 1/factor: per cell the mean hinted color (0 where none),
    whether any pixel of it is hinted (0 or 1), and the mean spread field."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        f = self.factor
        mask = x[..., 2:3]
        color_sum = ops.average_pool(x[..., :2] * mask, f, f, padding="valid")
        mask_sum = ops.average_pool(mask, f, f, padding="valid")
        present = ops.minimum(mask_sum * (f * f), 1.0)
        field = ops.average_pool(x[..., 3:], f, f, padding="valid")
        return ops.concatenate([color_sum / ops.maximum(mask_sum, 1e-6), present, field], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] // self.factor, input_shape[2] // self.factor, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Broadcast2D(layers.Layer):
    """(B, C) -> (B, h, w, C), the vector repeated at every cell."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = _hw(size)

    def call(self, v):
        return ops.tile(v[:, None, None, :], (1, *self.size, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


class HintLogits(layers.Layer):
    """The hints as bin logits, added to a copy of the network's own: ``[logits, local, gates, reference]``
    -> (B, h, w, Q) logits with hints.

    - each spread field k of the local input (core.hints.SPREAD_FIELDS) as a Gaussian around its color,
      g_k x -|q - ab_k|^2 / (2 sigma^2) for every bin q (ab units), where the image has any point
      (confidence > 0), weighted by the gates g_k >= 0 that the network predicts per pixel: their sum
      is a Gaussian around the gate-weighted mean of the fields, so the network chooses per pixel
      which propagation to trust, and how much;
    - the reference's distribution r as a log-prior, beta x log(r + 1e-4) (beta = softplus of a weight),
      where there is one: the network's distribution reweighted toward the reference's colors;
    - a learned bias per bin (the classification head's class rebalancing need not hold here).

    The network's own logits enter with their gradient stopped: they are trained, colorful, by their
    own loss alone, and without hints (every term 0) the hinted logits are the network's own plus the
    bias. Why not learn it all in the decoder: it barely learned to use hints given as inputs in a few
    hundred steps (docs/hints.md, The network).
    """

    def __init__(self, sigma: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.sigma = float(sigma)
        bins = ab_bins.gamut_bins().astype(np.float32)                   # (Q, 2) ab units
        self._bins_t = bins.T.copy()                                     # (2, Q)
        self._bins_sq = (bins ** 2).sum(1)                               # (Q,)

    def build(self, input_shape):
        q = len(self._bins_sq)
        self.bias = self.add_weight(shape=(q,), initializer="zeros", name="bin_bias")
        self.beta = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.5), name="beta")

    def call(self, inputs):
        logits, local, gates, reference = inputs
        out = self._own(logits, reference)
        for k in range(gates.shape[-1]):
            weight = ops.sign(local[..., 5 + 3 * k:6 + 3 * k]) * gates[..., k:k + 1]
            out = out + weight * self._gaussian(local[..., 3 + 3 * k:5 + 3 * k])
        return out

    def _own(self, logits, reference):
        """The network's own logits (gradient stopped), the bias, the reference's log-prior: (B, h, w, Q)."""
        log_r = ops.log(reference[:, :-1] + 1e-4) * reference[:, -1:]   # (B, Q); 0 without a reference
        return ops.stop_gradient(logits) + self.bias + ops.softplus(self.beta) * log_r[:, None, None, :]

    def _gaussian(self, ab):
        """ab / 128 (B, h, w, 2) -> -|q - ab|^2 / (2 sigma^2) over the bins q (ab units): (B, h, w, Q)."""
        ab = ab * 128.0                                                  # ab units
        sq = ops.sum(ab * ab, axis=-1, keepdims=True) - 2.0 * ops.matmul(ab, self._bins_t) + self._bins_sq
        return sq * (-0.5 / (self.sigma * self.sigma))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


class HintAttention(layers.Layer):
    """Every pixel's color as a weighted mean of the hinted pixels' colors, the weights learned:
    ``[L, local, features]`` -> (B, h, w, 2) ab / AB_SCALE.

    Per pixel p and hinted pixel i (the mask of the local hints), the weight is the softmax over i of
    -|p - p_i|^2 / (2 s^2) - (L(p) - L(p_i))^2 / v + q(p) . k(p_i), where q and k are learned linear maps
    of ``features`` (what a pixel looks like: learned from the decoder's, gradient stopped, so the decoder
    stays the network's own) and L, s (times the long side) and v learned too. It starts as evaluate.py's
    spread baseline (s 0.19, v 200, q . k about 0) and learns which pixels look alike (the same object, the
    same material): measured, a fixed propagation mixed per pixel stayed below that baseline
    (docs/hints.md). At most MAX_KEYS hinted pixels are attended to (all of them at the training size; at a
    large working size, radius points covering more pixels are sampled by the top-k's order). Without hints,
    zeros.

    With ``[L, local, features, own_logit, own_ab]`` (the head "attention_own") there is one more key per
    pixel, "no point applies here": its logit ``own_logit`` (B, h, w, 1) learned per pixel, its value the
    network's own color ``own_ab`` (B, h, w, 2) ab / 128: where every point is far, or across an edge in
    L, the pixel keeps its own color instead of the nearest point's (measured: docs/hints.md).
    """

    MAX_KEYS = 1024

    def __init__(self, dim: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)

    def build(self, input_shape):
        channels = int(input_shape[2][-1]) + 1                                 # features and L
        small = keras.initializers.RandomNormal(stddev=0.01)                    # q . k about 0: the spread at first
        self.query = self.add_weight(shape=(channels, self.dim), initializer=small, name="query")
        self.key = self.add_weight(shape=(channels, self.dim), initializer=small, name="key")
        self.log_sigma = self.add_weight(shape=(), initializer=keras.initializers.Constant(np.log(SPREAD_SIGMA)),
                                         name="log_sigma")
        self.log_l_var = self.add_weight(shape=(), initializer=keras.initializers.Constant(np.log(SPREAD_L_VAR)),
                                         name="log_l_var")

    def call(self, inputs):
        L, local, features = inputs[:3]                                         # L in [0, 1]
        h, w = int(L.shape[1]), int(L.shape[2])
        n, k = h * w, min(h * w, self.MAX_KEYS)
        mask = ops.reshape(local[..., 2], (-1, n))                             # (B, n) 1 at hinted pixels
        _, index = ops.top_k(mask, k)                                          # (B, k) the hinted pixels first
        pick = ops.one_hot(index, n, dtype=L.dtype)                            # (B, k, n): gathers as a matmul
        rows, cols = np.mgrid[0:h, 0:w]
        pos = np.stack([rows.ravel(), cols.ravel()], -1).astype(np.float32)   # (n, 2) pixel coordinates
        light = ops.reshape(L, (-1, n, 1)) * 100.0                             # (B, n, 1) L in [0, 100]
        feats = ops.concatenate([ops.reshape(features, (-1, n, int(features.shape[-1]))), light / 100.0], -1)
        key_pos = ops.matmul(pick, pos)                                        # (B, k, 2)
        key_light = ops.matmul(pick, light)                                    # (B, k, 1)
        key_ab = ops.matmul(pick, ops.reshape(local[..., :2], (-1, n, 2)))     # (B, k, 2)
        key_on = ops.matmul(pick, mask[..., None])                             # (B, k, 1) 1: a hinted pixel
        d2 = (np.sum(pos * pos, -1)[None, :, None]
              + ops.transpose(ops.sum(key_pos * key_pos, -1, keepdims=True), (0, 2, 1))
              - 2.0 * ops.matmul(pos, ops.transpose(key_pos, (0, 2, 1))))    # (B, n, k) squared distances
        s = ops.exp(self.log_sigma) * max(h, w)
        logits = (-d2 / (2.0 * s * s) - (light - ops.transpose(key_light, (0, 2, 1))) ** 2 / ops.exp(self.log_l_var)
                  + ops.matmul(ops.matmul(feats, self.query),
                               ops.transpose(ops.matmul(ops.matmul(pick, feats), self.key), (0, 2, 1)))
                  + (ops.transpose(key_on, (0, 2, 1)) - 1.0) * 1e9)            # not hinted: weight 0
        if len(inputs) == 3:
            ab = ops.matmul(ops.softmax(logits, axis=-1), key_ab)              # (B, n, 2)
            return ops.reshape(ab, (-1, h, w, 2))
        own_logit, own_ab = inputs[3:]
        weights = ops.softmax(ops.concatenate([logits, ops.reshape(own_logit, (-1, n, 1))], -1),
                              axis=-1)  # (B, n, k + 1)
        ab = ops.matmul(weights[..., :k], key_ab) + weights[..., k:] * ops.reshape(own_ab, (-1, n, 2))
        return ops.reshape(ab, (-1, h, w, 2))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:3], 2)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


class OwnColor(layers.Layer):
    """The network's own color for the attention's "no point applies here" key: the expectation of its
    logits (gradient stopped) plus a learned bias per bin, zero at first: (B, h, w, Q) -> (B, h, w, 2) ab / 128.
    The bias lets the hinted loss pull that color away from what the class rebalancing favors (rare,
    saturated colors) toward the expected color it wants: measured +0.4 dB at one point, docs/hints.md."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._bins = (ab_bins.gamut_bins() / 128.0).astype(np.float32)         # (Q, 2)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(len(self._bins),), initializer="zeros", name="own_bias")

    def call(self, logits):
        logits = ops.stop_gradient(ops.cast(logits, "float32")) + self.bias
        return ops.matmul(ops.softmax(logits, axis=-1), self._bins)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], 2)


class AttendedLogits(HintLogits):
    """The logits with hints of the attention head: ``[logits, local, ab, reference]`` -> (B, h, w, Q).

    An image with points: a Gaussian around HintAttention's color ab, -|q - ab|^2 / (2 sigma^2) over the
    bins q (sigma 5 ab units: the expectation, the decoding at temperature 1, gives ab back to within
    about a unit inside the gamut); the points decide, a reference given as well is not used. An image
    without points: HintLogits' (the network's own logits, the learned bias, the reference's log-prior).
    """

    def call(self, inputs):
        logits, local, ab, reference = inputs
        points = ops.max(local[..., 2], axis=(1, 2))[:, None, None, None] > 0  # (B, 1, 1, 1)
        return ops.where(points, self._gaussian(ab), self._own(logits, reference))


GLOBAL_WIDTH = 64   # the global hint's embedding, concatenated at the coarsest level
# The attention head's sizes (measured on batch 5 with 10 points: docs/hints.md)
ATTENTION_CONTEXT = 32   # channels of the 3x3 convolution on the decoder's features and L
ATTENTION_EMBED = 64     # channels of the per-pixel mix that the queries and keys are read from
ATTENTION_DIM = 32       # query and key size
OWN_KEY_BIAS = -8.0      # the "no point applies here" key's logit at first: it wins only where every point's
                         # spread weight is below e^-8 (e.g. 20 L levels away at v 200, or 4 s away)


def _hint_parts(hints, size_hw: tuple[int, int], image_hw: tuple[int, int], i: int) -> list:
    """The local hints at a level of size_hw (pooled), and at the coarsest level (i = 0) the global hint's embedding."""
    if hints is None:
        return []
    local, glob = hints
    factor = image_hw[0] // size_hw[0]
    parts = [local if factor == 1 else PoolHints(factor, name=f"hints{i}")(local)]
    if i == 0:
        embedded = layers.Dense(GLOBAL_WIDTH, activation="relu", name="reference_embed")(glob)
        parts.append(Broadcast2D(size_hw, name="reference_map")(embedded))
    return parts


def decoder(l_in, taps: list, widths, image_size, hints=None):
    """(B, h, w, widths[-1]) features from L (B, h, w, 1) and the taps (coarsest first after sorting);
    ``hints``: None, or (local (B, h, w, 3), global (B, Q + 1)) tensors, fed to every level."""
    image_hw = _hw(image_size)
    levels: dict[tuple[int, int], list] = {}
    for t in taps:                          # taps of the same stride (s32, head) merge into one level
        levels.setdefault((int(t.shape[1]), int(t.shape[2])), []).append(t)
    x = None
    for i, size in enumerate(sorted(levels)):
        parts = levels[size] if x is None else [_resize(x, size, f"up{i}")] + levels[size]
        parts = parts + _hint_parts(hints, size, image_hw, i)
        x = parts[0] if len(parts) == 1 else layers.Concatenate(name=f"skip{i}")(parts)
        x = _conv_bn_relu(x, widths[min(i, len(widths) - 1)], f"level{i}")
    x = _resize(x, image_hw, "to_image")
    x = layers.Concatenate(name="with_L")([x, l_in] + ([] if hints is None else [hints[0]]))   # (B, h, w, w + 1 (+ 3))
    return layers.Conv2D(widths[-1], 3, padding="same", activation="relu", name="out_mix")(x)


def _cross_entropy(packed, logits, k: int, rebalanced: bool):
    index = ops.cast(packed[..., :k], "int32")                    # (B, S, S, k) bin indices
    weight = packed[..., k:2 * k]                                 # (B, S, S, k) soft target, sum 1
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    ce = -ops.sum(weight * ops.take_along_axis(log_p, index, axis=-1), axis=-1)   # (B, S, S)
    # (B,): one value per image, which Keras averages over the batch and divides by the number of replicas
    # under tf.distribute; a scalar here is left unscaled (Keras 3 pitfall), which made every replica's
    # gradient count in full: the sum over R replicas R x the one-device gradient, the logged loss R x
    return ops.mean(packed[..., 2 * k] * ce if rebalanced else ce, axis=(1, 2))   # packed[..., 2k]: class weights


def class_loss(k: int = ab_bins.K_NEAREST):
    """Rebalanced cross-entropy against packed soft targets (core.ab_bins.pack_targets)."""
    def loss(packed, logits):
        return _cross_entropy(packed, logits, k, rebalanced=True)
    return loss


def hinted_class_loss(k: int = ab_bins.K_NEAREST):
    """A run with hints, output (B, S, S, 2Q): plain cross-entropy on the hinted logits (their expectation,
    HINTED_TEMPERATURE 1, is then the prediction with the least squared error: hints are for fidelity)
    plus the rebalanced one on the network's own logits (colorful without hints, as class_loss)."""
    q = len(ab_bins.gamut_bins())

    def loss(packed, logits):
        return (_cross_entropy(packed, logits[..., :q], k, rebalanced=False)
                + _cross_entropy(packed, logits[..., q:], k, rebalanced=True))
    return loss


def _regression_loss(kind: str):
    if kind == "huber":
        return keras.losses.Huber(delta=HUBER_DELTA)
    return keras.losses.MeanAbsoluteError() if kind == "l1" else keras.losses.MeanSquaredError()


HINT_CHANNELS = NETWORK_CHANNELS   # the local hint input of a network that takes hints (core.hints)


class StopGradient(layers.Layer):
    """Identity forward, no gradient backward."""

    def call(self, x):
        return ops.stop_gradient(x)


def _hinted_logits(logits, features, l_in, local, reference, head: str, taps: list):
    """The logits with hints: ``head`` "attention_own" or "attention" (AttendedLogits on HintAttention, with or
    without the network's own color as a key; "attention_taps": attention_own with the encoder's two finest
    ``taps`` in what a pixel looks like), or "gates" (HintLogits, the gates predicted per pixel from the
    decoder's features and the hints)."""
    # the decoder's features enter the head with their gradient stopped: the decoder is trained by the
    # network's own (rebalanced) loss alone, so it colorizes without hints as a run without them does
    fixed = StopGradient(name="features_fixed")(features)
    if head.startswith("attention"):
        # what a pixel looks like, for the attention: the features with their 3x3 context, mixed per pixel
        looked_at = [fixed, l_in]
        if head == "attention_taps":   # ImageNet's view of the pixel too, not only what its color was trained on
            hw = tuple(int(d) for d in l_in.shape[1:3])
            finest = sorted(taps, key=lambda t: -int(t.shape[1]))[:2]
            looked_at += [_resize(StopGradient(name=f"hint_tap{i}_fixed")(t), hw, f"hint_tap{i}")
                          for i, t in enumerate(finest)]
        with_l = layers.Concatenate(name="hint_features_l")(looked_at)
        context = layers.Conv2D(ATTENTION_CONTEXT, 3, padding="same", activation="relu", name="hint_context")(with_l)
        looks = layers.Conv2D(ATTENTION_EMBED, 1, activation="relu", name="hint_embed")(
            layers.Concatenate(name="hint_looks")([context, with_l]))                      # (B, h, w, ATTENTION_EMBED)
        keys = [l_in, local, looks]
        if head in OWN_KEY_HEADS:
            own = OwnColor(name="own_color")(logits)                                      # (B, h, w, 2) ab / 128
            own_logit = layers.Conv2D(1, 1, kernel_initializer="zeros", name="hint_own_key",
                                      bias_initializer=keras.initializers.Constant(OWN_KEY_BIAS))(
                layers.Concatenate(name="hint_own_in")([looks, l_in, own]))              # (B, h, w, 1)
            keys += [own_logit, own]
        ab = HintAttention(ATTENTION_DIM, name="hint_attention")(keys)                  # (B, h, w, 2) ab / 128
        return AttendedLogits(name="hint_logits", dtype=OUTPUT_DTYPE)([logits, local, ab, reference])
    gate_in = layers.Concatenate(name="gate_in")([fixed, local])
    gates = layers.Conv2D(len(SPREAD_FIELDS), 3, padding="same", activation="softplus",
                          bias_initializer=keras.initializers.Constant(1.0), name="hint_gate")(gate_in)   # (B, h, w, K)
    return HintLogits(name="hint_logits", dtype=OUTPUT_DTYPE)([logits, local, gates, reference])


class ZerosLike(layers.Layer):
    """Zeros of the input's shape: the local hints as the decoder sees them when only the head reads them."""

    def call(self, x):
        return ops.zeros_like(x)


def _decoder_hints(hint_in: list, opts: dict):
    """What of the hints the decoder sees: None without hints; (local, global), the local hints zeroed
    unless ``decoder_local_hints`` (so that a point changes the colors only through the hint head)."""
    if not hint_in:
        return None
    local, glob = hint_in
    return (local if opts["decoder_local_hints"] else ZerosLike(name="decoder_local_hints_off")(local)), glob


def build(image_size: int = 32, work_shape=None, **given) -> keras.Model:
    """The decoder network, compiled (Adam with cosine decay); see the module docstring for shapes.

    ``work_shape`` (h, w): the same network (same weights) for inputs of that size instead of
    image_size x image_size (the network is fully convolutional; inference at a photo's aspect ratio).
    """
    opts = options(image_size, **given)
    hw = _hw(image_size if work_shape is None else work_shape)
    encoder_hw = working_encoder_shape({**opts, "image_size": image_size}, hw)
    check_taps(opts["taps"], encoder_hw)
    if min(hw) < 8:
        raise ValueError(f"effnet_unet needs images of at least 8 px, got {hw[0]} x {hw[1]}")
    l_in = keras.Input((*hw, 1), name="L")
    taps = encoder_taps(opts)
    tap_in = [keras.Input(shape, name=f"tap_{t}") for t, shape in zip(taps, tap_shapes(taps, encoder_hw))]
    hint_in = [keras.Input((*hw, HINT_CHANNELS), name="hints"),
               keras.Input((len(ab_bins.gamut_bins()) + 1,), name="reference")] if opts["hints"] else []
    all_taps = tap_in + _trained_encoder(opts, dict(zip(taps, tap_in)))
    x = decoder(l_in, all_taps, opts["widths"], hw, _decoder_hints(hint_in, opts))
    classify = opts["head"] == "classification"
    out = layers.Conv2D(len(ab_bins.gamut_bins()) if classify else 2, 1, dtype=OUTPUT_DTYPE,
                        name="bin_logits" if classify else "ab")(x)
    if hint_in and classify:
        # (B, h, w, 2Q): the logits with hints (the gated spread Gaussian added), then the network's own
        out = layers.Concatenate(name="hinted_and_own_logits", dtype=OUTPUT_DTYPE)(
            [_hinted_logits(out, x, l_in, *hint_in, opts["hint_head"], all_taps), out])
    model = keras.Model([l_in, *tap_in, *hint_in], out, name="effnet_unet")
    for layer in encoder_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False   # ImageNet statistics kept (batches of 64 small maps would move them)
    schedule = keras.optimizers.schedules.CosineDecay(opts["learning_rate"], max(1, int(opts["decay_steps"])))
    loss = (hinted_class_loss() if opts["hints"] else class_loss()) if classify else _regression_loss(opts["loss"])
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    return model


