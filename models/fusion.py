"""The fusion network shared by fusion_label and fusion_resnet (Deep Koalarization idea).

A conv encoder brings L down to an (S/8, S/8, 256) grid; a prior vector (the one-hot class,
or an ImageNet classifier's 1000 softmax outputs) is repeated over that grid, concatenated
and mixed by a 1x1 conv; a conv/upsample decoder brings it back to (S, S, 2).
"""
from __future__ import annotations

import keras
from keras import layers

from models.blocks import OUTPUT_DTYPE, adam, check_image_size, conv


def build_fusion(prior_dim: int, image_size: int = 32, name: str = "fusion") -> keras.Model:
    """Inputs: L (B, S, S, 1) in [0, 1] and prior (B, prior_dim); output ab (B, S, S, 2) in [0, 1]."""
    check_image_size(image_size, 8, name)
    g = image_size // 8
    l_in = keras.Input((image_size, image_size, 1), name="L")
    prior = keras.Input((prior_dim,), name="prior")

    x = conv(l_in, 64, strides=2)                          # (B, S/2, S/2, 64)
    x = conv(x, 128)
    x = conv(x, 128, strides=2)                            # (B, S/4, S/4, 128)
    x = conv(x, 256)
    x = conv(x, 256, strides=2)                            # (B, S/8, S/8, 256)
    x = conv(x, 256)

    grid = layers.RepeatVector(g * g)(prior)               # (B, g*g, D)
    grid = layers.Reshape((g, g, prior_dim))(grid)         # (B, g, g, D), the prior at every cell
    x = layers.Concatenate(name="fuse")([x, grid])         # (B, g, g, 256 + D)
    x = conv(x, 256, kernel=1, name="fusion_1x1")

    x = conv(x, 128)
    x = layers.UpSampling2D(2)(x)                          # (B, S/4, S/4, 128)
    x = conv(x, 64)
    x = layers.UpSampling2D(2)(x)                          # (B, S/2, S/2, 64)
    x = conv(x, 32)
    x = layers.UpSampling2D(2)(x)                          # (B, S, S, 32)
    # Deep Koalarization ends in tanh for ab in [-1, 1]; the targets here are in [0, 1], so sigmoid.
    outputs = conv(x, 2, activation="sigmoid", name="ab", dtype=OUTPUT_DTYPE)
    model = keras.Model([l_in, prior], outputs, name=name)
    model.compile(optimizer=adam(), loss="mse", metrics=["mae"])
    return model
