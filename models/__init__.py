"""Model registry: maps the ``-m`` names of train.py / predict.py to model files.

Each model lives in ``models/<name>.py`` with a ``build(image_size=32, **options)`` function
returning a compiled Keras model (the GAN returns its generator, discriminator and combined
model). ``ModelSpec`` says what data the model eats, so the scripts need no per-model code.

May import: ``core``, ``loaders``, ``priors`` (and its own modules).
"""
from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    color_space: str        # CifarGenerator encoding: "LAB", "fusion", "features" or "RGB"
    prior: str | None       # None, "label" (one-hot class), "classifier" (ImageNet softmax) or
                            # "encoder" (an ImageNet encoder's feature maps, priors.features)
    trainer: str            # "fit" (model.fit) or "gan" (manual train_on_batch loop)
    description: str


REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("autoencoder", "LAB", None, "fit", "conv encoder, dense bottleneck, upsampling decoder; L -> ab"),
    ModelSpec("unet", "LAB", None, "fit", "U-Net; L -> ab"),
    ModelSpec("fusion_label", "fusion", "label", "fit", "fusion network with the CIFAR-10 class as prior"),
    ModelSpec("fusion_resnet", "fusion", "classifier", "fit",
              "fusion network with an ImageNet classifier's 1000-d output as prior"),
    ModelSpec("gan", "RGB", None, "gan", "conditional GAN (pix2pix-like): U-Net generator, patch discriminator"),
    ModelSpec("effnet_unet", "features", "encoder", "fit",
              "U-Net decoder on a frozen ImageNet EfficientNet-Lite0; ab-bin classification (or regression) head"),
)}

# The model whose trained run ships in pretrained/ (colorize.py's default).
SHIPPED_MODEL = "effnet_unet"

MODEL_NAMES = tuple(REGISTRY)


class UnknownModelError(ValueError):
    pass


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model '{name}'; valid names: {', '.join(MODEL_NAMES)}") from None


# Keras dtype policies of train.py --mixed-precision: "float32" (default), or float16 / bfloat16
# computation with float32 variables. Under "mixed_float16" compile() wraps the optimizer in a
# LossScaleOptimizer (Keras' auto_scale_loss), so small gradients do not underflow.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def dtype_policy(precision: str = "float32"):
    """Layers and models created inside take the Keras dtype policy ``precision`` (see PRECISIONS)."""
    import keras
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; valid: {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(name: str, precision: str = "float32", **options):
    """Build (and compile) model ``name`` under dtype policy ``precision``; options are those its
    ``build`` takes (image_size, ...). A run's config.json records both in ``model_options``."""
    get_spec(name)
    with dtype_policy(precision):
        return importlib.import_module(f"models.{name}").build(**options)


# train.py --jit: compile each training/prediction step with XLA (TensorFlow), jax.jit (JAX) or
# torch.compile (PyTorch). "auto" keeps Keras' own choice: TensorFlow on for GPUs and off on CPU,
# JAX on, PyTorch off. BENCHMARKS.md has the measurements behind leaving XLA off on CPU.
JIT_CHOICES = ("auto", "on", "off")


def set_jit(built, jit: str) -> None:
    """Apply a --jit choice to a built model (every part of the GAN); before the first step."""
    if jit not in JIT_CHOICES:
        raise ValueError(f"unknown jit setting '{jit}'; valid: {', '.join(JIT_CHOICES)}")
    if jit == "auto":
        return
    parts = (built.generator, built.discriminator, built.combined) if hasattr(built, "combined") else (built,)
    for part in parts:
        part.jit_compile = jit == "on"   # read when the first step makes the train/predict function
