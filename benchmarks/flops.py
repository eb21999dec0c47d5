"""FLOPs per image counted from layer shapes (the convention is in ``benchmarks/__init__.py``)."""
from __future__ import annotations

import math

import keras


def _positions(shape) -> int:
    """Number of positions a kernel is applied at: the product of the non-batch, non-channel dims."""
    dims = tuple(shape)[1:-1]
    if any(d is None for d in dims):
        raise ValueError(f"cannot count FLOPs with an undefined spatial size {tuple(shape)}")
    return math.prod(dims)


def layer_flops(layer) -> int:
    """Forward FLOPs per example of one layer (see the convention in the module docstring)."""
    if isinstance(layer, keras.Model):
        return forward_flops(layer)
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                          keras.layers.Conv3DTranspose)):
        return 2 * math.prod(layer.kernel.shape) * _positions(layer.input.shape)
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        weights = math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape)
        return 2 * weights * _positions(layer.output.shape)
    kernel = getattr(layer, "kernel", None)   # Dense, Conv1D/2D/3D, DepthwiseConv
    if kernel is None:
        return 0
    return 2 * math.prod(kernel.shape) * _positions(layer.output.shape)


def forward_flops(model) -> int:
    """Forward FLOPs per example of a built model; nested models are counted through their layers."""
    return sum(layer_flops(layer) for layer in model.layers)


def training_flops(forward: int) -> int:
    """One training step per example: forward + backward (2 x forward)."""
    return 3 * forward


def gan_training_flops(generator: int, discriminator: int) -> int:
    """One gan_loop.train_step per real image, from G's and D's forward FLOPs."""
    fakes = generator
    d_steps = 2 * training_flops(discriminator)
    combined = training_flops(generator) + 2 * discriminator   # frozen D: no weight gradients
    return fakes + d_steps + combined


def model_training_flops(name: str, built) -> int:
    """Training FLOPs per image of a built model (convention in the module docstring)."""
    if name == "gan":
        return gan_training_flops(forward_flops(built.generator), forward_flops(built.discriminator))
    return training_flops(forward_flops(built))
