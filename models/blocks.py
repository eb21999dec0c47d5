"""Layer blocks shared by several models (one definition each, no copies between models)."""
from __future__ import annotations

import keras
from keras import layers

# Keras 2 and Keras 3 define BatchNormalization momentum the same way
# (moving = momentum * moving + (1 - momentum) * batch); 0.8 is the original's value.
BN_MOMENTUM = 0.8

# A model's last layer computes in float32 even under a mixed-precision policy (train.py
# --mixed-precision): its output feeds the loss and the color decoding, where float16 would round
# the colors and could overflow the loss. Under the default float32 policy this changes nothing.
OUTPUT_DTYPE = "float32"


def adam() -> keras.optimizers.Optimizer:
    """The original's optimizer for every model: Adam(lr 2e-4, beta_1 0.5), as in pix2pix."""
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


def down(x, filters: int, batch_norm: bool = True, name: str | None = None):
    """Stride-2 4x4 conv, LeakyReLU(0.2), optional BatchNorm: halves H and W (U-Net and discriminator)."""
    x = layers.Conv2D(filters, 4, strides=2, padding="same", name=name and f"{name}_conv")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name=name and f"{name}_lrelu")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=name and f"{name}_bn")(x)
    return x


def up(x, skip, filters: int, name: str | None = None):
    """U-Net decoder level: 2x upsample, 4x4 conv + ReLU, BatchNorm, concatenate the skip."""
    x = layers.UpSampling2D(2, name=name and f"{name}_up")(x)
    x = layers.Conv2D(filters, 4, padding="same", activation="relu", name=name and f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=name and f"{name}_bn")(x)
    return layers.Concatenate(name=name and f"{name}_skip")([x, skip])


def unet(inputs, out_channels: int, out_activation: str, filters=(64, 128, 256, 512, 512)):
    """The pix2pix U-Net of the original: 5 stride-2 levels down, 4 up with skips, final upsample.

    For a 32x32 input the bottleneck is 1x1x512. The first level has no BatchNorm.
    Returns the output tensor (B, H, W, out_channels).
    """
    skips = []
    x = inputs
    for level, f in enumerate(filters):
        x = down(x, f, batch_norm=level > 0, name=f"down{level + 1}")
        skips.append(x)
    for level, (f, skip) in enumerate(zip(reversed(filters[:-1]), reversed(skips[:-1]))):
        x = up(x, skip, f, name=f"up{level + 1}")
    x = layers.UpSampling2D(2, name="out_up")(x)
    return layers.Conv2D(out_channels, 4, padding="same", activation=out_activation, dtype=OUTPUT_DTYPE,
                         name="out_conv")(x)


def conv(x, filters: int, strides: int = 1, kernel: int = 3, activation: str = "relu", name: str | None = None,
         dtype=None):
    """3x3 'same' conv with ReLU, the building brick of the autoencoder and fusion networks."""
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", activation=activation, name=name,
                         dtype=dtype)(x)


def check_image_size(image_size: int, multiple: int, model: str) -> None:
    if image_size % multiple or image_size < multiple:
        raise ValueError(f"{model} needs an image size that is a multiple of {multiple}, got {image_size}")
