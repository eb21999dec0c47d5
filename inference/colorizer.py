"""A trained model with its data encoding: uint8 RGB images in, colorized RGB out.

Shared by predict.py, evaluate.py, colorize.py and the sample grids written during training,
so every tool encodes inputs and decodes outputs the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import colorspace, runs
from core.replicas import model_replicas
from dataset import CLASS_NAMES, one_hot
from models import build_model, dtype_policy, get_spec


def data_color_space(config: dict) -> str:
    """The CifarGenerator encoding a run trains on."""
    spec = get_spec(config["model"])
    if spec.trainer == "gan" and config["model_options"].get("color_space", "rgb") == "lab":
        return "LAB_SYM"
    return spec.color_space


class MissingLabelError(ValueError):
    pass


class Colorizer:
    """Wraps the network that maps gray input to color (the GAN's generator)."""

    def __init__(self, config: dict, network, run_dir: Path | None = None):
        self.config = config
        self.spec = get_spec(config["model"])
        self.network = network
        self.run_dir = run_dir
        self.color_space = data_color_space(config)
        self.image_size = int(config["model_options"].get("image_size", 32))

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Colorizer":
        """Rebuild the model from config.json and load its weights; no code is deserialized."""
        run_dir = Path(run_dir)
        config = runs.load_config(run_dir)
        if get_spec(config["model"]).trainer == "gan":
            from models.gan import build_generator   # the discriminator is not needed to colorize
            options = config["model_options"]
            with dtype_policy(options.get("precision", "float32")):
                network = build_generator(options["image_size"], options["color_space"])
            part = "generator"
        else:
            network, part = build_model(config["model"], **config["model_options"]), "model"
        runs.load_weights(network, run_dir, part)
        return cls(config, network, run_dir)

    def prior(self, images: np.ndarray, labels: np.ndarray | None) -> np.ndarray | None:
        """(N, D) prior for the fusion models; None for the others."""
        if self.spec.prior == "label":
            if labels is None or np.any(np.asarray(labels) < 0):
                raise MissingLabelError("fusion_label needs the class of every image (file names "
                                        f"img-<index>-<class>.png, or --label with one of {', '.join(CLASS_NAMES)})")
            return one_hot(np.asarray(labels))
        if self.spec.prior == "classifier":
            import priors
            return priors.compute_prior(images, **priors.prior_options(self.config))
        return None

    def colorize(self, images: np.ndarray, labels=None, prior: np.ndarray | None = None,
                 batch_size: int = 64) -> np.ndarray:
        """images (N, S, S, 3) uint8 at the model's size -> float32 RGB [0, 1] (N, S, S, 3)."""
        if self.spec.prior and prior is None:
            prior = self.prior(images, labels)
        if self.color_space == "RGB":
            _, gray3 = colorspace.encode_rgb(images)                 # (N, S, S, 3) in [-1, 1]
            return colorspace.decode_rgb(self._predict(gray3, batch_size))
        if self.color_space == "LAB_SYM":
            l_sym, _ = colorspace.encode_lab_symmetric(images)       # (N, S, S, 1) in [-1, 1]
            ab = np.clip(self._predict(l_sym, batch_size), -1.0, 1.0)
            return colorspace.decode_lab_symmetric(l_sym, ab)
        x, _ = colorspace.encode_lab(images)                         # (N, S, S, 1) in [0, 1]
        inputs = x if prior is None else (x, np.asarray(prior, np.float32))
        ab = np.clip(self._predict(inputs, batch_size), 0.0, 1.0)   # unet's tanh can leave [0, 1]
        return colorspace.decode_lab(x, ab)

    def _predict(self, inputs, batch_size: int) -> np.ndarray:
        if model_replicas(self.network) > 1:
            # train.py --strategy: predict_on_batch would give every replica the whole batch and return
            # it once per replica (Keras 3 pitfall 6); predict splits it between them and reassembles it.
            return np.asarray(self.network.predict(inputs, batch_size=batch_size, verbose=0))
        # predict_on_batch per slice: model.predict sets up a data pipeline per call (~0.4 s),
        # which dominates when colorize.py or a training callback colorizes a handful of images.
        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        out = []
        for i in range(0, len(parts[0]), batch_size):
            batch = tuple(p[i:i + batch_size] for p in parts)
            out.append(np.asarray(self.network.predict_on_batch(batch if len(batch) > 1 else batch[0])))
        return np.concatenate(out)
