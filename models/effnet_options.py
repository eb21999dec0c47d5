"""effnet_unet's options, encoder taps and output decoding: the parts that need no Keras.

The network itself is ``models.effnet_unet`` (which re-exports these names). Kept apart so that the
tools can check options, and the lean inference path (``inference.lean``, ONNX Runtime) can decode a
run's output, without importing Keras or TensorFlow.
"""
from __future__ import annotations

import numpy as np

from core import ab_bins
from priors.features import tap_block

HEADS = ("classification", "regression")
LOSSES = ("huber", "l1", "mse")             # regression head only
ENCODER_SCALE = 4                           # encoder size = 4 x image size by default (measured: docs/results.md)
DEFAULTS = {
    "encoder_size": None,                   # None: ENCODER_SCALE x image_size (128 for 32 px images)
    "taps": ("s4", "s8", "s16", "s32"),
    "widths": (128, 128, 64, 32),            # decoder channels, coarsest level first
    "head": "classification",
    "loss": "huber",
    "learning_rate": 1e-3,
    "decay_steps": 1000,                    # cosine decay to 0 over this many steps (train.py: the whole run)
    "temperature": 0.6,                     # annealed-mean default (decode), chosen on batch 5 (docs/results.md);
                                            # the paper: 0.38
    "fine_tune": None,                      # None: the encoder is frozen; "s16" / "s8": its blocks after that tap
                                            # are part of this network (ImageNet start, BatchNorm frozen) and train
    "hints": False,                         # True: two more inputs, local and global color hints (core.hints)
    "hint_head": None,                      # with hints, how points become colors: "attention_own",
                                            # "attention_taps" (attention_own, the encoder's finest taps in what a
                                            # pixel looks like; train.py's), "attention" (without the own-color key) or
                                            # "gates"; None: "gates",
                                            # what runs recorded before this option used
    "decoder_local_hints": True,            # with hints: the points reach the decoder too (True, what runs
                                            # recorded before this option did) or only the hint head (False:
                                            # the decoder sees zeros, so its own colors ignore the points)
    "encoder_detail": False,                # True: the encoder sees the photo itself at its size (crops cut at
                                            # encoder_size, the working image area-averaged from them); False:
                                            # the working image enlarged (a 32 px CIFAR-10 image has no more)
}
HINT_HEADS = ("attention_own", "attention_taps", "attention", "gates")
OWN_KEY_HEADS = ("attention_own", "attention_taps")   # the heads with the "no point applies here" key
FINE_TUNE_FROM = ("s8", "s16")
HUBER_DELTA = 10 / 255                      # 10 ab units in the (ab + 128) / 255 encoding


def options(image_size: int = 32, **given) -> dict:
    """The model's options with defaults filled in, as recorded in config.json (lists as lists)."""
    unknown = set(given) - set(DEFAULTS) - {"precision"}
    if unknown:
        raise ValueError(f"effnet_unet: unknown option(s) {sorted(unknown)}")
    out = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS and v is not None}}
    out["encoder_size"] = int(out["encoder_size"] or ENCODER_SCALE * image_size)
    out["taps"], out["widths"] = list(out["taps"]), [int(w) for w in out["widths"]]
    out["hints"] = bool(out["hints"])
    out["decoder_local_hints"] = bool(out["decoder_local_hints"])
    out["encoder_detail"] = bool(out["encoder_detail"])
    out["hint_head"] = (out["hint_head"] or "gates") if out["hints"] else None
    if out["hints"] and out["hint_head"] not in HINT_HEADS:
        raise ValueError(f"effnet_unet: hint_head must be one of {', '.join(HINT_HEADS)}, got {out['hint_head']!r}")
    if out["head"] not in HEADS:
        raise ValueError(f"effnet_unet: head must be one of {', '.join(HEADS)}, got {out['head']!r}")
    if out["loss"] not in LOSSES:
        raise ValueError(f"effnet_unet: loss must be one of {', '.join(LOSSES)}, got {out['loss']!r}")
    if out["fine_tune"] is not None:
        if out["fine_tune"] not in FINE_TUNE_FROM:
            raise ValueError(f"effnet_unet: fine_tune must be one of {', '.join(FINE_TUNE_FROM)}, "
                             f"got {out['fine_tune']!r}")
        if out["fine_tune"] not in out["taps"] or "head" in out["taps"]:
            raise ValueError(f"effnet_unet: fine-tuning from tap {out['fine_tune']} needs that tap among the taps, "
                             f"and not 'head' (taps: {', '.join(out['taps'])})")
    return out


def encoder_taps(opts: dict) -> list[str]:
    """The taps the frozen encoder computes (priors.features): all of them, or, when fine-tuning, those
    up to the fine_tune tap; the deeper ones are computed inside the network (``_trained_encoder``)."""
    if opts["fine_tune"] is None:
        return list(opts["taps"])
    return [t for t in opts["taps"] if tap_block(t) <= tap_block(opts["fine_tune"])]


def working_encoder_shape(opts: dict, work_shape) -> tuple[int, int]:
    """The encoder's input size (h, w) for a working size: the run's ratio of encoder size to image size."""
    h, w = _hw(work_shape)
    scale = opts["encoder_size"] / opts["image_size"] if "image_size" in opts else ENCODER_SCALE
    return int(round(h * scale)), int(round(w * scale))


def _hw(size) -> tuple[int, int]:
    """An int (square) or (h, w) -> (h, w)."""
    return (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))


HINTED_TEMPERATURE = 1.0   # decoding of the hinted logits: the expectation (trained without rebalancing)


def split_output(output: np.ndarray, hinted) -> np.ndarray:
    """A hint run's (N, h, w, 2Q) output -> (N, h, w, Q): the hinted logits of the images with hints
    (``hinted`` (N,) bool), the network's own of the others. Other outputs: unchanged."""
    q = len(ab_bins.gamut_bins())
    if output.shape[-1] != 2 * q:
        return output
    hinted = np.asarray(hinted, bool).reshape(-1, *([1] * (output.ndim - 1)))
    return np.where(hinted, output[..., :q], output[..., q:])


def decode(output: np.ndarray, head: str, temperature: float, undo_rebalancing: float = 0.0,
           rebalancing_weights=None) -> np.ndarray:
    """Network output -> (..., 2) ab in the LAB encoding (ab + 128) / 255, about [0, 1].

    Classification: softmax, then the annealed mean at ``temperature`` (1: the expectation).
    Trained with class rebalancing, the head predicts about p(q) w(q) / Z rather than the colors'
    probability p(q): rare, saturated bins are favored, which is what makes it colorful.
    ``undo_rebalancing`` u in [0, 1] divides that back out in part (logits - u log w, the weights of
    config.json's class_rebalancing): at u = 1 and T = 1 the result is the expected color under the
    estimated p(q), the prediction that minimizes the squared error (the fidelity setting).
    """
    if head == "regression":
        return np.asarray(output, np.float32)
    logits = np.asarray(output, np.float32)
    if undo_rebalancing:
        logits = logits - np.float32(undo_rebalancing) * np.log(np.asarray(rebalancing_weights, np.float32))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ab = ab_bins.annealed_mean(probs, ab_bins.gamut_bins(), temperature)
    return (ab + np.float32(128)) / np.float32(255)
