"""The color conversion of a run's encoding as Keras ops, so an exported model can take a gray image and give RGB.

``bake(colorizer)`` wraps the run's network (the GAN's generator) in a Keras model

    gray (B, S, S, 1) float32, the gray image's sRGB value in [0, 1]
      -> encode as the run trained (L / 100, L / 50 - 1, or gray x 2 - 1 on 3 channels)
      -> the network (fusion models also take their prior as a second input, effnet_unet its
         encoder taps as further inputs and, trained with hints, its local hints and reference
         after them: all passed through unchanged)
      -> decode (effnet_unet's classification head: the annealed mean softmax(logits / T) . bins
         at the Colorizer's temperature; clip, then LAB -> sRGB, or the GAN's [-1, 1] RGB -> [0, 1])
      -> rgb (B, S, S, 3) float32 in [0, 1]

built from ``keras.ops`` only (no Lambda, no custom layer), so ``model.export`` writes it through
the same path as the bare network, in every format. It computes what :class:`inference.Colorizer`
computes with NumPy (core.colorspace) for a gray input, to float32 rounding (tested: 1e-6).

The formulas are core.colorspace's: sRGB gamma, CIE LAB with the D65 white, and for LAB -> RGB
the very matrix ``colorspace.lab_to_rgb`` uses (``colorspace.xyzn_to_linear_matrix``).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from core import ab_bins, colorspace

GRAY_INPUT = "gray"   # the baked model's image input
ENCODINGS = ("LAB", "fusion", "features", "RGB", "LAB_SYM")   # the Colorizer color spaces bake() converts


def srgb_to_linear(c):
    """sRGB value in [0, 1] -> linear light."""
    return ops.where(c > 0.04045, ops.power((c + 0.055) / 1.055, 2.4), c / 12.92)


def linear_to_srgb(c):
    """Linear light -> sRGB value (negatives, outside the gamut, go to 0 as in colorspace)."""
    c = ops.maximum(c, 0.0)
    # the maximum keeps pow's argument positive in both branches: where() evaluates both
    return ops.where(c > 0.0031308, 1.055 * ops.power(ops.maximum(c, 0.0031308), 1 / 2.4) - 0.055, 12.92 * c)


def gray_to_lightness(gray):
    """(..., 1) gray sRGB value in [0, 1] -> (..., 1) CIE L* in [0, 100].

    A gray pixel (R = G = B) has the luminance Y of its linear value (the Y row of the sRGB matrix
    sums to 1), and the D65 white has Y = 1.
    """
    y = srgb_to_linear(gray)
    f = ops.where(y > 0.008856, ops.power(ops.maximum(y, 0.008856), 1 / 3), 7.787 * y + 16 / 116)
    return 116.0 * f - 16.0


def annealed_mean(logits, temperature: float):
    """(..., Q) ab-bin logits -> (..., 2) ab: softmax(logits / T) . bins, which is core.ab_bins.annealed_mean
    of the softmax probabilities (z^(1/T) renormalized is the softmax of logits / T)."""
    # A NumPy array, not ops.convert_to_tensor: a tensor made while the functional model is built is
    # captured by the exported function, and tf2onnx then made it a graph input the consumer would have
    # to feed ("Required inputs (['..._rgb/Tensordot/b:0']) are missing"); an array becomes a constant.
    bins = np.array(ab_bins.gamut_bins(), np.float32)                  # (Q, 2) ab units
    return ops.matmul(ops.softmax(logits / float(temperature), axis=-1), bins)


def lab_to_rgb(lightness, ab):
    """(..., 1) L* and (..., 2) a*, b* -> (..., 3) sRGB clipped to [0, 1], as colorspace.lab_to_rgb."""
    fy = (lightness + 16.0) / 116.0
    fx = fy + ab[..., 0:1] / 500.0
    fz = ops.maximum(fy - ab[..., 1:2] / 200.0, 0.0)
    f = ops.concatenate([fx, fy, fz], axis=-1)
    xyz = ops.where(f > 0.2068966, f * f * f, (f - 16 / 116) / 7.787)   # X/Xn, Y/Yn, Z/Zn
    m = colorspace.xyzn_to_linear_matrix()                             # (3, 3), row-vector form
    # three multiply-adds per channel instead of a matmul: the same graph in every format
    linear = ops.concatenate([xyz[..., 0:1] * float(m[0, c]) + xyz[..., 1:2] * float(m[1, c])
                              + xyz[..., 2:3] * float(m[2, c]) for c in range(3)], axis=-1)
    return ops.clip(linear_to_srgb(linear), 0.0, 1.0)


def _hinted_decode(y, local, reference, temperature: float):
    """A hint run's (B, S, S, 2Q) logits -> (B, S, S, 2) ab encoded: per image, the hinted logits at
    HINTED_TEMPERATURE where it has a hint (a hinted pixel or a reference), else the network's own at
    ``temperature`` (inference.Colorizer's choice, models.effnet_unet.split_output)."""
    from models.effnet_options import HINTED_TEMPERATURE
    q = len(ab_bins.gamut_bins())
    has_points = ops.max(local[..., 2], axis=(1, 2))                           # (B,) 1 where any pixel is hinted
    hinted = ops.maximum(has_points, reference[:, -1])[:, None, None, None]    # (B, 1, 1, 1) in {0, 1}
    with_hints = annealed_mean(y[..., :q], HINTED_TEMPERATURE)
    own = annealed_mean(y[..., q:], temperature)
    return (hinted * with_hints + (1.0 - hinted) * own + 128.0) / 255.0


def bake(colorizer) -> keras.Model:
    """The run's network between the gray -> encoding and prediction -> RGB conversions (see the module doc)."""
    if colorizer.color_space not in ENCODINGS:
        raise ValueError(f"--bake-color knows the encodings {', '.join(ENCODINGS)}; {colorizer.spec.name} uses "
                         f"'{colorizer.color_space}': export it without --bake-color")
    network, size = colorizer.network, colorizer.image_size
    gray = keras.Input((size, size, 1), name=GRAY_INPUT)
    # the fusion models' prior, effnet_unet's taps and hints: inputs of the baked model too, passed through untouched
    extra = [keras.Input(tuple(t.shape[1:]), name=t.name.split(":")[0]) for t in network.inputs[1:]]
    if colorizer.color_space == "RGB":
        gray3 = ops.concatenate([gray * 2.0 - 1.0] * 3, axis=-1)               # (B, S, S, 3) in [-1, 1]
        rgb = ops.clip((network(gray3, training=False) + 1.0) * 0.5, 0.0, 1.0)
    else:
        lightness = gray_to_lightness(gray)                                    # (B, S, S, 1) in [0, 100]
        if colorizer.color_space == "LAB_SYM":
            ab = ops.clip(network(lightness / 50.0 - 1.0, training=False), -1.0, 1.0) * 128.0
        else:
            x = lightness / 100.0
            y = network([x, *extra] if extra else x, training=False)             # (B, S, S, 2) (ab + 128) / 255
            if colorizer.options.get("head") == "classification" and colorizer.takes_hints:
                y = _hinted_decode(y, extra[-2], extra[-1], colorizer.temperature)
            elif colorizer.options.get("head") == "classification":              # (B, S, S, Q) ab-bin logits
                y = (annealed_mean(y, colorizer.temperature) + 128.0) / 255.0
            ab = ops.clip(y, 0.0, 1.0) * 255.0 - 128.0
        rgb = lab_to_rgb(lightness, ab)
    return keras.Model([gray, *extra] if extra else gray, rgb, name=f"{network.name}_rgb")
