"""Fusion network with the known CIFAR-10 class (10-d one-hot) as the prior."""
from __future__ import annotations

from loaders.cifar import CLASS_NAMES
from models.fusion import build_fusion


def build(image_size: int = 32):
    return build_fusion(prior_dim=len(CLASS_NAMES), image_size=image_size, name="fusion_label")
