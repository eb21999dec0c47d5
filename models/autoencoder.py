"""Convolutional autoencoder with a dense bottleneck: L -> ab (the original's first model)."""
from __future__ import annotations

import keras
from keras import layers

from models.blocks import OUTPUT_DTYPE, adam, check_image_size, conv


def build(image_size: int = 32) -> keras.Model:
    """Conv(128)-Pool-Conv(64)-Pool-Flatten-Dense(500)-Dense(s*s*64)-Reshape-Up-Conv(64)-Up-Conv(2, sigmoid).

    Input (B, S, S, 1) L/100 in [0, 1]; output (B, S, S, 2) ab encoded in [0, 1] (sigmoid matches it).
    """
    check_image_size(image_size, 4, "autoencoder")
    s = image_size // 4
    inputs = keras.Input((image_size, image_size, 1), name="L")
    x = conv(inputs, 128)
    x = layers.MaxPooling2D(2)(x)                       # (B, S/2, S/2, 128)
    x = conv(x, 64)
    x = layers.MaxPooling2D(2)(x)                       # (B, S/4, S/4, 64)
    x = layers.Flatten()(x)
    x = layers.Dense(500, activation="relu")(x)         # the bottleneck
    x = layers.Dense(s * s * 64, activation="relu")(x)
    x = layers.Reshape((s, s, 64))(x)
    x = layers.UpSampling2D(2)(x)
    x = conv(x, 64)
    x = layers.UpSampling2D(2)(x)
    outputs = conv(x, 2, activation="sigmoid", name="ab", dtype=OUTPUT_DTYPE)  # (B, S, S, 2) in [0, 1]
    model = keras.Model(inputs, outputs, name="autoencoder")
    model.compile(optimizer=adam(), loss="mse", metrics=["mae"])
    return model
