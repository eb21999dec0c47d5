"""Fusion network with an ImageNet classifier's 1000-d softmax as the prior (Deep Koalarization).

The network is fusion_label's, with a 1000-wide prior instead of the 10-wide one-hot; the
prior itself is computed by ``priors.compute_prior`` (Inception-ResNet-v2 as in the original,
or EfficientNet-Lite0 offline), once per data set, outside the network.
"""
from __future__ import annotations

from models.fusion import build_fusion

PRIOR_DIM = 1000   # ImageNet classes


def build(image_size: int = 32):
    return build_fusion(prior_dim=PRIOR_DIM, image_size=image_size, name="fusion_resnet")
