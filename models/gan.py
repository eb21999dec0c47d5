"""Conditional GAN (pix2pix-like) of the original: U-Net generator, patch discriminator, least squares.

Two variants, chosen by ``color_space``:

* ``"rgb"`` (the original): generator gray3 (B, S, S, 3) in [-1, 1] -> color (B, S, S, 3), tanh;
  the discriminator judges (color, gray3).
* ``"lab"``: generator L_sym (B, S, S, 1) in [-1, 1] -> ab_sym (B, S, S, 2), tanh; the discriminator
  judges (ab, L). Encodings: ``colorspace.encode_lab_symmetric`` (CifarGenerator's ``"LAB_SYM"``).

``build`` returns the three models of the original's manual training loop (see gan_loop.py):

* ``generator``: not compiled (it is trained through ``combined``).
* ``discriminator``: inputs ``[image, condition]``, output the validity patch (B, S/16, S/16, 1);
  compiled with least-squares loss ("mse"), Adam(2e-4, 0.5) and accuracy (binary, threshold 0.5).
* ``combined``: condition -> ``[validity of G(condition), G(condition)]``, losses mse + 100 * mae,
  trains the generator only: the training loop freezes the discriminator right before every
  combined step (gan_loop.set_discriminator_trainable; Keras 3 pitfalls 1 and 2).

BatchNorm of the frozen discriminator during the generator step (Keras 3 pitfall 3)
--------------------------------------------------------------------------------------
The port keeps Keras 3's behaviour: a BatchNormalization layer whose ``trainable`` is False runs
in inference mode, so in ``combined.train_on_batch`` the discriminator normalizes the fakes with
its *moving* statistics and does not update them. The original (Keras 2.2) normalized with the
statistics of the fake batch itself (learning phase 1) and, the discriminator being frozen, also
left its moving statistics alone. Why the port does not emulate that:

* It would need a custom BatchNormalization subclass (trainable=False but training-mode forward),
  i.e. a custom layer in every saved file, for a difference that only affects the forward pass.
* The moving statistics are unchanged by the G step in both versions (tested), and with the
  original's momentum 0.8 they follow the last ~5 discriminator batches, so they are close to
  the batch statistics once training is under way.
* It is the behaviour of tf.keras 2.x and Keras 3, and of current pix2pix implementations, and it
  makes the G step deterministic for a given batch (no dependence on the batch composition).
Real and fake batches still go through the discriminator separately in its own step (training-mode
BatchNorm on all-real, then all-fake batches), exactly as the original did.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from models.blocks import OUTPUT_DTYPE, adam, check_image_size, down, unet

COLOR_SPACES = ("rgb", "lab")
DISCRIMINATOR_FILTERS = (64, 128, 128, 128)   # the original's (df, 2 df, 2 df, 2 df)
L1_WEIGHT = 100                               # pix2pix's lambda: loss = mse(validity) + 100 * mae(color)


@dataclass
class GanModels:
    generator: keras.Model
    discriminator: keras.Model
    combined: keras.Model

    @property
    def patch_shape(self) -> tuple[int, int, int]:
        """Shape of one validity target without the batch axis: (S/16, S/16, 1)."""
        return tuple(int(d) for d in self.discriminator.outputs[0].shape[1:])


def channels(color_space: str) -> tuple[int, int]:
    """(condition channels, generated channels) of a variant."""
    if color_space not in COLOR_SPACES:
        raise ValueError(f"gan color_space must be one of {COLOR_SPACES}, got {color_space!r}")
    return (3, 3) if color_space == "rgb" else (1, 2)


def build_generator(image_size: int, color_space: str, work_shape=None) -> keras.Model:
    """The U-Net generator; ``work_shape`` (h, w), multiples of 32: the same network for that size."""
    cond_ch, out_ch = channels(color_space)
    h, w = (image_size, image_size) if work_shape is None else work_shape
    for side in (h, w):
        check_image_size(side, 32, "gan")
    condition = keras.Input((h, w, cond_ch), name="gray" if color_space == "rgb" else "L")
    return keras.Model(condition, unet(condition, out_channels=out_ch, out_activation="tanh"), name="generator")


def build_discriminator(image_size: int, color_space: str) -> keras.Model:
    """[image, condition] concatenated on channels -> 4 stride-2 levels -> 1-channel validity patch."""
    cond_ch, out_ch = channels(color_space)
    image = keras.Input((image_size, image_size, out_ch), name="color" if color_space == "rgb" else "ab")
    condition = keras.Input((image_size, image_size, cond_ch), name="gray" if color_space == "rgb" else "L")
    x = layers.Concatenate(name="pair")([image, condition])
    for level, f in enumerate(DISCRIMINATOR_FILTERS):
        x = down(x, f, batch_norm=level > 0, name=f"d{level + 1}")
    validity = layers.Conv2D(1, 4, padding="same", dtype=OUTPUT_DTYPE, name="validity")(x)
    return keras.Model([image, condition], validity, name="discriminator")


def build(image_size: int = 32, color_space: str = "rgb") -> GanModels:
    check_image_size(image_size, 32, "gan")   # the generator's five stride-2 levels
    generator = build_generator(image_size, color_space)
    discriminator = build_discriminator(image_size, color_space)
    discriminator.compile(optimizer=adam(), loss="mse", metrics=["accuracy"])

    # The combined model is built with D frozen; the training loop sets the flag again before every
    # step, because Keras 3 reads it when a step runs, not here (pitfall 1).
    discriminator.trainable = False
    condition = keras.Input(generator.inputs[0].shape[1:], name=generator.inputs[0].name)
    fake = generator(condition)
    validity = discriminator([fake, condition])
    combined = keras.Model(condition, [validity, fake], name="combined")
    combined.compile(optimizer=adam(), loss=["mse", "mae"], loss_weights=[1, L1_WEIGHT])
    return GanModels(generator, discriminator, combined)
