"""A trained model with its data encoding: uint8 RGB images in, colorized RGB out.

Shared by predict.py, evaluate.py, colorize.py and the sample grids written during training,
so every tool encodes inputs and decodes outputs the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

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


class RawOutput(NamedTuple):
    """What a network made of a batch, before decoding (:meth:`Colorizer.network_output`)."""
    x: np.ndarray                           # the network's input: L or gray, which decoding keeps
    y: np.ndarray                           # its raw output (RGB, ab, or effnet_unet's logits)
    y_mirrored: np.ndarray | None = None    # its raw output on the mirror images (flip averaging), not flipped back


class MissingLabelError(ValueError):
    pass


class DecodingError(ValueError):
    """A decoding option the run's model does not have (--temperature without a classification head)."""


class Colorizer:
    """Wraps the network that maps gray input to color (the GAN's generator)."""

    def __init__(self, config: dict, network, run_dir: Path | None = None):
        self.config = config
        self.spec = get_spec(config["model"])
        self.network = network
        self.run_dir = run_dir
        self.color_space = data_color_space(config)
        self.image_size = int(config["model_options"].get("image_size", 32))
        self.options = resolved_options(config)
        # Decoding: the annealed-mean temperature of a classification head (default: the run's
        # recorded choice; None for models without one), and a chroma gain g multiplying the
        # predicted a, b (1: as predicted).
        self.temperature = self.options.get("temperature") if self.options.get("head") == "classification" else None
        self.chroma_gain = 1.0
        # How much of the class rebalancing a classification head was trained with is divided back
        # out of its probabilities (models.effnet_unet.decode): 0 as trained (colorful), 1 fully
        # (with T = 1: the expected color, most faithful). None for models without one.
        self.undo_rebalancing = 0.0 if self.temperature is not None else None
        # Test-time flips: also colorize the mirror image, mirror its colors back and average the two.
        self.flip_average = False
        self.note = None   # set by inference.pretrained.load_run when the shipped run stands in

    def set_decoding(self, temperature: float | None = None, chroma_gain: float | None = None,
                     flip_average: bool | None = None, undo_rebalancing: float | None = None) -> "Colorizer":
        """Change the temperature and the undoing of class rebalancing (classification heads only),
        the chroma gain and test-time flips; None keeps the current one."""
        if flip_average is not None:
            self.flip_average = bool(flip_average)
        if undo_rebalancing is not None:
            if self.undo_rebalancing is None:
                raise DecodingError(f"--undo-rebalancing applies to a classification head; {self.spec.name} "
                                    f"({self.run_dir}) has none: leave it out")
            if undo_rebalancing and not self.config.get("class_rebalancing"):
                raise DecodingError(f"{self.run_dir}: config.json records no class_rebalancing weights to undo")
            if not 0 <= undo_rebalancing <= 1:
                raise DecodingError(f"--undo-rebalancing must be between 0 and 1, got {undo_rebalancing}")
            self.undo_rebalancing = float(undo_rebalancing)
        if temperature is not None:
            if self.options.get("head") != "classification":
                raise DecodingError(f"--temperature applies to a classification head; {self.spec.name} "
                                    f"({self.run_dir}) predicts ab directly: leave it out (--chroma-gain works)")
            if not temperature > 0:
                raise DecodingError(f"the temperature must be positive, got {temperature}")
            self.temperature = float(temperature)
        if chroma_gain is not None:
            if not chroma_gain >= 0:
                raise DecodingError(f"the chroma gain must be 0 or more, got {chroma_gain}")
            self.chroma_gain = float(chroma_gain)
        return self

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
        if self.spec.prior == "encoder":
            return encoder_features(self.config, images, cache=False)
        return None

    def colorize(self, images: np.ndarray, labels=None, prior: np.ndarray | None = None,
                 batch_size: int = 64) -> np.ndarray:
        """images (N, S, S, 3) uint8 at the model's size -> float32 RGB [0, 1] (N, S, S, 3)."""
        return self.decode(self.network_output(images, labels, prior, batch_size))

    def network_output(self, images: np.ndarray, labels=None, prior=None, batch_size: int = 64) -> "RawOutput":
        """The network's input and raw output (and, with flip averaging, its output on the mirror
        images): what :meth:`decode` turns into colors.

        Decoding is separate so that a sweep over temperatures or chroma gains runs the network once.
        """
        x, y = self._run(images, labels, prior, batch_size)
        if not self.flip_average:
            return RawOutput(x, y)
        # The mirror images' prior (encoder taps, classifier features) is computed from them; a label is the same.
        _, y_mirrored = self._run(np.ascontiguousarray(images[:, :, ::-1]), labels, None, batch_size)
        return RawOutput(x, y, y_mirrored)

    def _run(self, images: np.ndarray, labels, prior, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(the network's input, its raw output) for ``images``."""
        if self.spec.prior and prior is None:
            prior = self.prior(images, labels)
        if self.color_space == "RGB":
            _, gray3 = colorspace.encode_rgb(images)                 # (N, S, S, 3) in [-1, 1]
            return gray3, self._predict(gray3, batch_size)
        if self.color_space == "LAB_SYM":
            l_sym, _ = colorspace.encode_lab_symmetric(images)       # (N, S, S, 1) in [-1, 1]
            return l_sym, self._predict(l_sym, batch_size)
        x, _ = colorspace.encode_lab(images)                         # (N, S, S, 1) in [0, 1]
        if self.color_space == "features":                          # effnet_unet: L and the encoder's taps
            inputs = (x, *(np.asarray(p, np.float32) for p in prior))
        else:
            inputs = x if prior is None else (x, np.asarray(prior, np.float32))
        return x, self._predict(inputs, batch_size)

    def decode(self, raw: "RawOutput") -> np.ndarray:
        """:meth:`network_output`'s result -> float32 RGB [0, 1] (N, S, S, 3), at this temperature and
        gain; the colors of the mirror images, when there, mirrored back and averaged in."""
        x = raw.x
        color = self._color(raw.y)
        if raw.y_mirrored is not None:
            color = (color + self._color(raw.y_mirrored)[:, :, ::-1]) * np.float32(0.5)
        if self.color_space == "RGB":
            return self._gain_rgb(color)
        if self.color_space == "LAB_SYM":
            return self._gain_rgb(colorspace.decode_lab_symmetric(x, color))
        ab = np.clip(self._gain_encoded(color), 0.0, 1.0)           # unet's tanh can leave [0, 1]
        return colorspace.decode_lab(x, ab)

    def _color(self, y: np.ndarray) -> np.ndarray:
        """Raw output -> the colors that are averaged: RGB [0, 1] (RGB models), ab in [-1, 1] (LAB_SYM),
        or ab in the LAB encoding (ab + 128) / 255 (the others; effnet_unet decoded at this temperature)."""
        if self.color_space == "RGB":
            return colorspace.decode_rgb(y)
        if self.color_space == "LAB_SYM":
            return np.clip(y, -1.0, 1.0)
        if self.color_space == "features":
            from models.effnet_unet import decode
            weights = self.config.get("class_rebalancing", {}).get("weights")
            return decode(y, self.options["head"], self.temperature, self.undo_rebalancing or 0.0,
                          weights)                                    # (N, S, S, 2) about [0, 1]
        return np.asarray(y, np.float32)

    def _gain_encoded(self, y: np.ndarray) -> np.ndarray:
        """Chroma gain on ab in the LAB encoding (ab + 128) / 255: ab -> g * ab."""
        if self.chroma_gain == 1.0:
            return y
        half = np.float32(128 / 255)
        return (np.asarray(y, np.float32) - half) * np.float32(self.chroma_gain) + half

    def _gain_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Chroma gain on an RGB prediction (the GANs), through LAB: L kept, a and b multiplied."""
        if self.chroma_gain == 1.0:
            return rgb
        lab = colorspace.rgb_to_lab(rgb)
        lab[..., 1:] *= np.float32(self.chroma_gain)
        return colorspace.lab_to_rgb(lab)

    def _predict(self, inputs, batch_size: int) -> np.ndarray:
        """The network's raw output for (a tuple of) input arrays, batch by batch."""
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


def resolved_options(config: dict) -> dict:
    """The run's model options with the model's defaults filled in (effnet_unet; as recorded for the others)."""
    if get_spec(config["model"]).prior == "encoder":
        from models.effnet_unet import options
        return options(**config["model_options"])
    return dict(config["model_options"])


def encoder_features(config: dict, images: np.ndarray, flip: bool = False, cache: bool = True,
                     verbose: bool = False) -> list[np.ndarray]:
    """effnet_unet's encoder taps of ``images`` (N, S, S, 3) uint8, as the run's config asks."""
    from models.effnet_unet import encoder_taps
    from priors.features import compute_features
    options = resolved_options(config)
    return compute_features(images, options["encoder_size"], encoder_taps(options), flip=flip, cache=cache,
                            verbose=verbose)
