"""Model registry: maps the ``-m`` names of train.py / predict.py to model files.

Each model lives in ``models/<name>.py`` with a ``build(image_size=32, **options)`` function
returning a compiled Keras model (the GAN returns its generator, discriminator and combined
model). ``ModelSpec`` says what data the model eats, so the scripts need no per-model code.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    color_space: str        # CifarGenerator encoding: "LAB", "fusion" or "RGB"
    prior: str | None       # None, "label" (one-hot class) or "classifier" (ImageNet softmax)
    trainer: str            # "fit" (model.fit) or "gan" (manual train_on_batch loop)
    description: str


REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("autoencoder", "LAB", None, "fit", "conv encoder, dense bottleneck, upsampling decoder; L -> ab"),
    ModelSpec("unet", "LAB", None, "fit", "U-Net; L -> ab"),
    ModelSpec("fusion_label", "fusion", "label", "fit", "fusion network with the CIFAR-10 class as prior"),
    ModelSpec("fusion_resnet", "fusion", "classifier", "fit",
              "fusion network with an ImageNet classifier's 1000-d output as prior"),
    ModelSpec("gan", "RGB", None, "gan", "conditional GAN (pix2pix-like): U-Net generator, patch discriminator"),
)}

MODEL_NAMES = tuple(REGISTRY)


class UnknownModelError(ValueError):
    pass


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model '{name}'; valid names: {', '.join(MODEL_NAMES)}") from None


def build_model(name: str, **options):
    """Build (and compile) model ``name``; options are those its ``build`` takes (image_size, ...)."""
    get_spec(name)
    return importlib.import_module(f"models.{name}").build(**options)
