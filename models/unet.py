"""U-Net (the pix2pix generator of the original): L -> ab."""
from __future__ import annotations

import keras

from models.blocks import adam, check_image_size, unet


def build(image_size: int = 32, work_shape=None) -> keras.Model:
    """Input (B, S, S, 1) L/100 in [0, 1]; output (B, S, S, 2). ``work_shape`` (h, w), multiples of 32:
    the same network for inputs of that size (it is fully convolutional; photos at their aspect ratio).

    Kept from the original although inconsistent: the output is tanh, in [-1, 1], while the
    targets (ab + 128) / 255 lie in [0, 1]. The network simply learns to stay in [0, 1]; the
    negative half of tanh is never a correct answer. Predictions are clipped to [0, 1] when decoded.
    """
    check_image_size(image_size, 32, "unet")   # five stride-2 levels
    h, w = (image_size, image_size) if work_shape is None else work_shape
    for side in (h, w):
        check_image_size(side, 32, "unet")
    inputs = keras.Input((h, w, 1), name="L")
    outputs = unet(inputs, out_channels=2, out_activation="tanh")
    model = keras.Model(inputs, outputs, name="unet")
    model.compile(optimizer=adam(), loss="mse", metrics=["mae"])
    return model
