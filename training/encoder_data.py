"""effnet_unet's training data: encoder taps computed once, flips, class rebalancing, ``--init``.

- The frozen encoder's taps (``priors.features``) are computed once per data set and once for the
  data set mirrored, and cached: the generator serves each image or its mirror image (1/2 each,
  drawn every epoch) with its own taps.
- The classification head's class rebalancing weights come from the empirical ab-bin distribution
  of the run's training images (``core.ab_bins``) and are recorded in config.json, so a resumed
  run keeps them; the targets are packed once per data set (``core.ab_bins.pack_targets``).
- A run with hints (``--hints``) is served simulated color hints with each batch (``HintGenerator``,
  the protocol of ``core.hints``): points drawn from the original, and for some images its own
  color distribution as the reference, drawn from the seed, the epoch and the batch, so a resumed
  run sees the same hints.
- ``--init RUN_DIR`` starts from another run's decoder weights (the shipped run included): the
  architecture is that run's, the image size may differ (the network is fully convolutional, and
  the encoder size scales with the image size).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from core import ab_bins, colorspace, hints, runs
from inference.colorizer import encoder_features
from loaders.cifar import CifarGenerator, ImageSet
from models import build_model, effnet_unet

# Options that fix the decoder's weights: an --init run must agree on them.
ARCHITECTURE = ("head", "taps", "widths", "hints")
INIT_LEARNING_RATE = 1e-4   # fine-tuning from a trained decoder: a tenth of a new run's


def model_options(args, train: ImageSet, init_config: dict | None) -> dict:
    """effnet_unet's model_options for a new run: train.py's choices, or the --init run's architecture."""
    given = {} if init_config is None else _inherited(init_config, args.image_size)
    for key, value in (("head", args.head), ("loss", args.loss), ("encoder_size", args.encoder_size),
                       ("temperature", args.temperature), ("learning_rate", args.learning_rate),
                       ("fine_tune", args.fine_tune_from), ("hints", getattr(args, "hints", None)),
                       ("hint_head", getattr(args, "hint_head", None)),
                       ("decoder_local_hints", _on_off(getattr(args, "decoder_points", None))),
                       ("encoder_detail", getattr(args, "encoder_detail", None))):
        if value is not None:
            given[key] = value
    if given.get("hints") and init_config is None:
        given.setdefault("hint_head", "attention_taps")   # a new run's; an --init run's is inherited (none: gates)
    if init_config is not None:
        if given.get("hint_head") and not given.get("hints"):
            raise runs.RunError(f"{args.init} was trained without hints: --hint-head is the head of a run with hints")
        if getattr(args, "decoder_points", None) is not None and not given.get("hints"):
            # checked on the flag, not on `given`: every run inherits decoder_local_hints (True by default)
            raise runs.RunError(f"{args.init} was trained without hints: --decoder-points says where a run with "
                                f"hints reads its points")
        given.setdefault("learning_rate", INIT_LEARNING_RATE)
        _check_same_architecture(init_config, given, args.init)
    batch = args.batch_size or 32
    # Streamed crops (training.stream_data) serve full batches only; a data set's last batch may be smaller.
    per_epoch = train.batches_per_epoch(batch) if hasattr(train, "batches_per_epoch") else math.ceil(len(train) / batch)
    steps = per_epoch if args.steps is None else min(args.steps, per_epoch)
    given["decay_steps"] = steps * (args.epochs if args.epochs is not None else 5)   # cosine decay over the run
    return effnet_unet.options(args.image_size, **given)


def _on_off(value: str | None) -> bool | None:
    return None if value is None else value == "on"


def _inherited(init_config: dict, image_size: int) -> dict:
    """The --init run's options; the encoder size scaled by the image size (same pixels per feature)."""
    old = dict(init_config["model_options"])
    scale = image_size / old.get("image_size", 32)
    old["encoder_size"] = int(round(old["encoder_size"] * scale))
    # encoder_detail says how the training crops are cut, not what the weights are: the new run's own choice
    return {k: v for k, v in old.items()
            if k in effnet_unet.DEFAULTS and k not in ("learning_rate", "decay_steps", "encoder_detail")}


def _check_same_architecture(init_config: dict, given: dict, init_dir: Path) -> None:
    old = init_config["model_options"]
    for key in ARCHITECTURE:
        if key in given and list(np.ravel(given[key])) != list(np.ravel(old.get(key))):
            raise runs.RunError(f"{init_dir} has {key} {old.get(key)}, not {given[key]}: --init needs a run of the "
                                f"same architecture (leave --{key} out to take the run's)")


def load_init_config(init_dir: Path, model: str) -> dict:
    """The config of the --init run, checked to be a run of ``model``."""
    config = runs.load_config(init_dir)
    if config.get("model") != model:
        raise runs.RunError(f"{init_dir} is a run of '{config.get('model')}', not '{model}': --init needs a run of "
                            f"the same model")
    return config


def load_init_weights(model, init_dir: Path, init_config: dict) -> None:
    """The --init run's weights into ``model``, layer by layer by name; its optimizer state is not taken
    (a new run, a new Adam). Layers it does not have (the encoder blocks of a run that fine-tunes
    them, started from a frozen run) keep their weights (ImageNet's: ``start_encoder``)."""
    source = build_model(init_config["model"], **init_config["model_options"])
    with warnings.catch_warnings():
        # Keras warns that the saved optimizer's variables are skipped: that is the point here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        try:
            source.load_weights(runs.weights_file(_init_checkpoint(init_dir)))
            copy_weights(source, model)
        except (ValueError, OSError) as err:
            raise runs.RunError(f"{init_dir}: its weights do not fit this model ({' '.join(str(err).split())[:200]});"
                                " --init needs a run of the same architecture") from None


def _init_layer_names(init_dir: Path) -> set[str]:
    init_config = runs.load_config(init_dir)
    return {layer.name for layer in build_model(init_config["model"], **init_config["model_options"]).layers}


def train_new_only(model, init_dir: Path) -> list[str]:
    """--train-new-only: every layer of ``model`` that the --init run has is frozen (BatchNorm in inference
    mode), the model compiled again so that only the others train; their names. Done before a checkpoint
    is restored too (the optimizer's variables are the trainable ones'). RunError if none is new."""
    have = _init_layer_names(init_dir)
    trained = [layer.name for layer in model.layers if layer.weights and layer.name not in have]
    if not trained:
        raise runs.RunError(f"--train-new-only: this model has no layer that {init_dir} lacks; nothing to train")
    for layer in model.layers:
        if layer.name in have:
            layer.trainable = False
    model.compile(optimizer=model.optimizer, loss=model.loss)   # Keras 3: trainable changes need a compile
    return trained


def copy_weights(source, target) -> list[str]:
    """Weights of every layer of ``target`` that ``source`` has under the same name; the names copied."""
    names = {layer.name for layer in source.layers}
    copied = []
    for layer in target.layers:
        if layer.weights and layer.name in names:
            layer.set_weights(source.get_layer(layer.name).get_weights())
            copied.append(layer.name)
    return copied


def start_encoder(model, config: dict) -> None:
    """A new fine-tuning run: the network's encoder blocks start from the ImageNet weights."""
    options = config["model_options"]
    if options.get("fine_tune") is None:
        return
    from priors.features import imagenet_encoder
    copied = copy_weights(imagenet_encoder(options["encoder_size"]), model)
    wanted = [layer.name for layer in effnet_unet.encoder_layers(model) if layer.weights]
    if sorted(copied) != sorted(wanted):
        raise RuntimeError(f"ImageNet weights found for {len(copied)} of the {len(wanted)} encoder layers")
    print(f"fine-tuning the encoder after tap {options['fine_tune']}: {len(wanted)} layers from ImageNet")


def _init_checkpoint(init_dir: Path):
    """The --init run's newest complete checkpoint (core.checkpoints); RunError if it has none."""
    checkpoint = runs.current_checkpoint(init_dir)
    if checkpoint is None:
        raise runs.RunError(f"{init_dir}: no weights in this run folder; --init needs a trained run")
    return checkpoint


def rebalancing(train: ImageSet) -> dict:
    """Class rebalancing of the classification head from the training images, for config.json."""
    _, y = colorspace.encode_lab(train.images)
    ab = y * np.float32(255) - np.float32(128)                       # (N, S, S, 2) ab units
    return rebalancing_record(ab_bins.empirical_distribution(ab, ab_bins.gamut_bins()))


def rebalancing_record(p: np.ndarray, **notes) -> dict:
    """config.json's class_rebalancing from the empirical distribution ``p`` (Q,) of the training pixels
    over the gamut bins; ``notes`` (such as how the pixels were sampled) are recorded beside it."""
    bins = ab_bins.gamut_bins()
    return {"lambda": ab_bins.LAMBDA, "sigma": ab_bins.SIGMA, "n_bins": len(bins),
            "weights": [round(float(w), 6) for w in ab_bins.rebalancing_weights(p, bins)], **notes}


def targets(config: dict):
    """The generator's target_transform: packed soft targets (classification), or None (regression)."""
    if config["model_options"]["head"] != "classification":
        return None
    weights = np.asarray(config["class_rebalancing"]["weights"], np.float32)

    def pack(y: np.ndarray) -> np.ndarray:   # (N, S, S, 2) LAB encoding -> (N, S, S, 11)
        return ab_bins.pack_targets(y * np.float32(255) - np.float32(128), weights)
    return pack


class HintGenerator(CifarGenerator):
    """effnet_unet's features batches with simulated hints: ((L, *taps, local hints, global hint), target).

    The hints come from the served image (mirrored when it is served mirrored), by core.hints'
    training protocol, from a generator seeded by (seed, epoch, the batch's first image): the
    same batch always gets the same hints, whatever reads it and when (resumes, prefetching).
    Validation (no epochs) always draws with epoch -1: the same hints at every evaluation.
    """

    def __init__(self, data, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        _, y = colorspace.encode_lab(self.data.images)
        self.ab = y * np.float32(255) - np.float32(128)                     # (N, S, S, 2) LAB units
        self.distributions = np.stack([hints.distribution(ab) for ab in self.ab])   # (N, Q)
        self._hint_epoch = self.epoch

    def __getitem__(self, i: int):
        self._hint_epoch = self.epoch
        return super().__getitem__(i)

    def epoch_batch(self, epoch: int, i: int):
        self._hint_epoch = epoch
        return super().epoch_batch(epoch, i)

    def _batch(self, idx: np.ndarray, mirrored: np.ndarray):
        inputs, *rest = super()._batch(idx, mirrored)
        ab = self.ab[idx]
        flip = mirrored[idx]
        ab[flip] = ab[flip][:, :, ::-1]
        rng = np.random.default_rng([self.seed, self._hint_epoch + 1, int(idx[0]), len(idx)])
        local, glob = hints.training_hints(ab, self.distributions[idx], rng)
        local = hints.network_local(local, inputs[0][..., 0] * np.float32(100))   # L / 100 -> L
        return ((*inputs, local, glob), *rest)


def generators(config: dict, train: ImageSet, val: ImageSet | None, seed: int):
    """(training generator with flips, validation generator or None, the sample images' taps)."""
    print("encoder features of the training images, and of their mirror images (for flips):")
    taps = encoder_features(config, train.images, verbose=True)
    mirrored = encoder_features(config, train.images, flip=True, verbose=True)
    kind = HintGenerator if config["model_options"].get("hints") else CifarGenerator
    train_gen = kind(train, config["batch_size"], "features", shuffle=True, prior=taps, flip_prior=mirrored,
                     target_transform=targets(config), seed=seed)
    if val is None:
        return train_gen, None, taps
    return train_gen, *val_generator(config, val)


def val_generator(config: dict, val: ImageSet, detail: np.ndarray | None = None):
    """(validation generator, its taps): a fixed set, its taps cached; hints drawn as at every evaluation.
    ``detail``: the same images at the encoder's size, which it then sees (a run with ``encoder_detail``)."""
    val_taps = encoder_features(config, val.images, verbose=True, detail=detail)
    kind = HintGenerator if config["model_options"].get("hints") else CifarGenerator
    return kind(val, config["batch_size"], "features", shuffle=False, prior=val_taps,
                target_transform=targets(config)), val_taps
