"""U-Net (the pix2pix generator of the original): L -> ab."""
from __future__ import annotations

import keras

from models.blocks import adam, check_image_size, unet


def build(image_size: int = 32) -> keras.Model:
    """Input (B, S, S, 1) L/100 in [0, 1]; output (B, S, S, 2).

    Kept from the original although inconsistent: the output is tanh, in [-1, 1], while the
    targets (ab + 128) / 255 lie in [0, 1]. The network simply learns to stay in [0, 1]; the
    negative half of tanh is never a correct answer. Predictions are clipped to [0, 1] when decoded.
    """
    check_image_size(image_size, 32, "unet")   # five stride-2 levels
    inputs = keras.Input((image_size, image_size, 1), name="L")
    outputs = unet(inputs, out_channels=2, out_activation="tanh")
    model = keras.Model(inputs, outputs, name="unet")
    model.compile(optimizer=adam(), loss="mse", metrics=["mae"])
    return model
