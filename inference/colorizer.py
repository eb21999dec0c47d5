"""A trained model with its data encoding: uint8 RGB images in, colorized RGB out.

Shared by predict.py, evaluate.py, colorize.py and the sample grids written during training,
so every tool encodes inputs and decodes outputs the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from core import colorspace, runs
from core import hints as core_hints
from core.replicas import model_replicas
from inference import fullres, lean
from loaders.cifar import CLASS_NAMES, one_hot
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
    hinted: np.ndarray | None = None        # (N,) bool: which images had hints (a hint run's output has both)
    reference_ab: list | None = None        # per image: its reference's (n, 2) ab pixels (match_reference), or None


class HintInputs(NamedTuple):
    """Hints for a network that takes them (core.hints' encodings), one row per image."""
    local: np.ndarray                       # (N, h, w, 3): ab / 128 where hinted, then the mask
    reference: np.ndarray                   # (N, Q + 1): a reference's bin distribution, then 1; zeros: none
    # per image (or None for all): its reference's ab pixels (core.hints.reference_ab), to which the
    # decoded colors are histogram-matched (core.hints.match_reference); None: the network's colors only
    reference_ab: list | None = None


class MissingLabelError(ValueError):
    pass


class HintsError(ValueError):
    """Hints or options that cannot apply (a bad hints file, hints for a run without them): stops the tool."""


class HintsNotSupportedError(HintsError):
    """Hints given to a run whose network does not take them."""


class DecodingError(ValueError):
    """A decoding option the run's model does not have (--temperature without a classification head)."""


def _bool_default(config: dict, run_dir, key: str) -> bool:
    """The run's decoding default for a test-time view (config.json ``key``, absent: false)."""
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise DecodingError(f"{run_dir}/config.json: {key} must be true or false, got {value!r}; "
                            "the run folder is damaged")
    return value


def _undo_default(config: dict, run_dir) -> float:
    """The run's default undoing of class rebalancing (config.json ``undo_rebalancing``, absent: 0)."""
    value = config.get("undo_rebalancing", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise DecodingError(f"{run_dir}/config.json: undo_rebalancing must be a number from 0 to 1, got {value!r}; "
                            "the run folder is damaged")
    if value and not config.get("class_rebalancing"):
        raise DecodingError(f"{run_dir}/config.json: undo_rebalancing {value} but no class_rebalancing weights to "
                            "undo; the run folder is damaged")
    return float(value)


def _work_size(config: dict, run_dir, image_size: int) -> int:
    """The run's default working size (config.json ``work_size``, absent: its training size)."""
    value = config.get("work_size", image_size)
    if isinstance(value, bool) or not isinstance(value, int) or value < fullres.WORK_MULTIPLE \
            or value % fullres.WORK_MULTIPLE:
        raise DecodingError(f"{run_dir}/config.json: work_size must be a multiple of {fullres.WORK_MULTIPLE} of at "
                            f"least {fullres.WORK_MULTIPLE}, got {value!r}; the run folder is damaged")
    return value


class Colorizer:
    """Wraps the network that maps gray input to color (the GAN's generator)."""

    def __init__(self, config: dict, network=None, run_dir: Path | None = None, lean=None):
        self.config = config
        self.spec = get_spec(config["model"])
        self._network = network     # the Keras network; None: built from run_dir when first needed
        self.run_dir = run_dir
        # inference.lean.LeanRun: the network through ONNX Runtime (no Keras unless a file must be made)
        self.lean = lean
        self.color_space = data_color_space(config)
        self.image_size = int(config["model_options"].get("image_size", 32))
        self.options = resolved_options(config)
        # Decoding: the annealed-mean temperature of a classification head (default: the run's
        # recorded choice; None for models without one), and a chroma gain g multiplying the
        # predicted a, b (1: as predicted).
        self.temperature = self.options.get("temperature") if self.options.get("head") == "classification" else None
        self.chroma_gain = 1.0
        # How much of the class rebalancing a classification head was trained with is divided back
        # out of its probabilities (models.effnet_options.decode): 0 as trained (colorful), 1 fully
        # (with T = 1: the expected color, most faithful). None for models without one.
        # Its default: config.json "undo_rebalancing" (absent: 0), chosen by measurement for a run on photos.
        self.undo_rebalancing = _undo_default(config, run_dir) if self.temperature is not None else None
        self.default_undo_rebalancing = self.undo_rebalancing
        # Test-time flips: also colorize the mirror image, mirror its colors back and average the two.
        # Off unless the run's config.json says "flip_average": true (the shipped run: chosen by measurement).
        self.flip_average = _bool_default(config, run_dir, "flip_average")
        # Photos and video frames whose working shape is not square: also colorize the photo squashed to a
        # square of the long side, bring its chroma to the working shape and average the two (working_ab).
        # Off unless config.json says "square_view": true (the shipped run: measured on the photo set).
        self.square_view = _bool_default(config, run_dir, "square_view")
        # The long side photos are colorized at by default (flexible networks): config.json "work_size", else
        # the run's training size (a run trained on 64-pixel crops works at 64, the shipped run at 32).
        self.work_size = _work_size(config, run_dir, self.image_size)
        self.note = None   # set by inference.pretrained.load_run when the shipped run stands in
        # Whether the network takes color hints (core.hints): local points and a global reference.
        self.takes_hints = bool(self.options.get("hints"))
        self._networks = {}   # the Keras network per working size other than the training size (network_for)

    @property
    def runtime(self) -> str:
        """What runs the network: "onnx" (inference.lean) or "keras"."""
        return "onnx" if self.lean is not None else "keras"

    @property
    def decoding_settings(self) -> dict:
        """The decoding in force (set_decoding's keywords): what a result file records beside its numbers."""
        return {"temperature": self.temperature, "undo_rebalancing": self.undo_rebalancing,
                "chroma_gain": self.chroma_gain, "flip_average": self.flip_average, "square_view": self.square_view}

    @property
    def network(self):
        """The run's Keras network (built and loaded from run_dir on first use by a lean Colorizer)."""
        if self._network is None:
            self._network = build_network(self.config, self.run_dir)
        return self._network

    @property
    def work_multiple(self) -> int | None:
        """The sides of working sizes the network takes (fully convolutional: effnet_unet 8, the U-Nets of
        unet and the GAN's generator 32, for their five stride-2 levels); None: its training size only
        (the dense bottleneck of the autoencoder, the fusion models' 4 x 4 fusion)."""
        if self.color_space == "features":
            return fullres.WORK_MULTIPLE
        return 32 if self.spec.name in ("unet", "gan") else None

    @property
    def flexible_size(self) -> bool:
        """Whether the network colorizes photos at their aspect ratio by default (effnet_unet); unet and the
        GAN do when a working size is asked for, the others never (fixed_size_note)."""
        return self.color_space == "features"

    def fixed_size_note(self, long_side: int | None = None) -> str | None:
        """One line for the tools when a working size cannot be used as asked; None when it can."""
        if self.work_multiple is None:
            return (f"{self.spec.name} works at its training size only ({self.image_size} x {self.image_size}: photos "
                    "are squashed to it, and the stretch undone when the colors are brought back)")
        if long_side is not None and long_side % self.work_multiple:
            return f"{self.spec.name} takes working sizes that are multiples of {self.work_multiple}, not {long_side}"
        return None

    def working_shape(self, full_hw: tuple[int, int], long_side: int | None = None) -> tuple[int, int]:
        """The size (h, w) the network colorizes a photo of full_hw at (inference.fullres): effnet_unet at
        the photo's aspect ratio, long side ``long_side`` (default: the run's ``work_size``); unet and the GAN so
        only when ``long_side`` is given; else the training size (the photo squashed)."""
        size = self.used_work_size(long_side)
        if size is None:
            return self.image_size, self.image_size
        return fullres.working_shape(full_hw, size, self.work_multiple)

    def used_work_size(self, long_side: int | None = None) -> int | None:
        """The long side photos are colorized at for a --work-size of ``long_side`` (what a result file
        records); None where they are squashed to the training size."""
        if self.fixed_size_note(long_side) is not None or (long_side is None and not self.flexible_size):
            return None
        return long_side or self.work_size

    def network_for(self, shape: tuple[int, int]):
        """The network for inputs of (h, w): the run's own, or the same weights built for that size."""
        shape = (int(shape[0]), int(shape[1]))
        if shape == (self.image_size, self.image_size):
            return self.network
        if shape not in self._networks:
            if self.work_multiple is None:
                raise ValueError(f"{self.spec.name} takes {self.image_size} x {self.image_size} inputs, not {shape}")
            options = self.config["model_options"]
            if self.spec.trainer == "gan":
                from models.gan import build_generator
                with dtype_policy(options.get("precision", "float32")):
                    net = build_generator(options["image_size"], options["color_space"], work_shape=shape)
            else:
                net = build_model(self.config["model"], work_shape=shape, **options)
            net.set_weights(self.network.get_weights())
            self._networks[shape] = net
        return self._networks[shape]

    def colorize_photo(self, rgb: np.ndarray, points=(), reference=None, label: int | None = None,
                       long_side: int | None = None, with_gray: bool = False):
        """A photo of any size, colorized at full resolution: (H, W, 3) uint8 -> (H, W, 3) uint8.

        ``points``: core.hints.Point hints in the photo's pixels (core.hints.point makes one from an
        sRGB color); ``reference``: a color image (h, w, 3) uint8 whose colors are the global hint and
        whose a, b histograms the result is moved toward when there are no points (core.hints.match_reference),
        the same as a core.hints.Reference, or its distribution (Q,) alone (the global hint, no matching).
        Both need a run trained with hints. ``long_side``: the working size (flexible networks; default
        the run's ``work_size``). ``label``: fusion_label's class. Returns (colorized, the gray
        input or None) -- gray with ``with_gray``.
        """
        rgb = np.asarray(rgb, np.uint8)
        full_hw = rgb.shape[:2]
        L = fullres.lightness(rgb)
        shape = self.working_shape(full_hw, long_side)
        small, guide = fullres.small_gray(L, shape)                      # (h, w, 3) uint8, (h, w) L
        dist, pixels = core_hints.split_reference(reference)
        # matched to the reference's histograms only without points: matching would pull a point's
        # color toward the reference's palette, and a point is what the user says the color is
        match = pixels is not None and not len(points)
        labels = None if label is None else np.array([label])
        ab = self.working_ab(L, small, points, dist, pixels if match else None, labels)   # (h, w, 2) LAB units
        return fullres.recombine(rgb, ab, with_gray, L=L, guide_small=guide)

    def working_ab(self, L: np.ndarray, small: np.ndarray, points=(), dist=None, match_pixels=None,
                   labels=None) -> np.ndarray:
        """The chroma (h, w, 2), LAB units, of a photo or frame whose full-size lightness is L (H, W) in
        [0, 100] and whose gray working image (h, w, 3) uint8 is ``small`` (fullres.small_gray).

        ``points``: hints in the photo's pixels; ``dist``: the reference's (Q,) distribution or None;
        ``match_pixels``: the reference's pixels to match the colors to, or None. With ``square_view``
        and a working shape that is not square, the photo squashed to a square of the long side is
        colorized too (the points mapped to it), its chroma resized to the working shape and the two
        averaged: the two views err differently, and the mean of two predictions is never further from
        the truth, in squared error, than the two are on average (docs/hints.md, "A second, square view").
        """
        shape = small.shape[:2]
        views = [(shape, small)]
        if self.square_view and shape[0] != shape[1]:
            side = max(shape)
            views.append(((side, side), fullres.small_gray(L, (side, side))[0]))
        abs_ = []
        for view, gray in views:
            hint_inputs = None
            if len(points) or dist is not None or match_pixels is not None:
                hint_inputs = HintInputs(core_hints.local_planes(points, L.shape[:2], view)[None],
                                         core_hints.global_vector(dist)[None],
                                         None if match_pixels is None else [match_pixels])
            detail = self.detail_view(L, view)
            colored = self.colorize(gray[None], labels, hints=hint_inputs,
                                    detail=None if detail is None else detail[None])[0]   # (h, w, 3) float32 [0, 1]
            ab = colorspace.rgb_to_lab(colored)[..., 1:].astype(np.float32)  # the GAN's RGB too: its chroma
            abs_.append(ab if view == shape else cv2.resize(ab, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR))
        return abs_[0] if len(abs_) == 1 else (abs_[0] + abs_[1]) / 2

    def detail_view(self, L: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
        """What the encoder of a run trained with ``encoder_detail`` sees of a photo colorized at ``shape``: its
        full-size lightness L (H, W) brought to the encoder's size for that shape (area-averaged; enlarged
        bilinearly where the photo is smaller), (E_h, E_w, 3) uint8 gray; None for other runs (the encoder
        sees the working image enlarged, as they were trained)."""
        if not self.options.get("encoder_detail"):
            return None
        from priors.features import encoder_hw
        size, _ = encoder_setup(self.config, shape)
        return fullres.small_gray(L, encoder_hw(size))[0]

    def set_decoding(self, temperature: float | None = None, chroma_gain: float | None = None,
                     flip_average: bool | None = None, undo_rebalancing: float | None = None,
                     square_view: bool | None = None) -> Colorizer:
        """Change the temperature and the undoing of class rebalancing (classification heads only),
        the chroma gain, test-time flips and the square view of photos; None keeps the current one."""
        if flip_average is not None:
            self.flip_average = bool(flip_average)
        if square_view is not None:
            self.square_view = bool(square_view)
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
    def from_run(cls, run_dir: str | Path, runtime: str | None = None) -> Colorizer:
        """Rebuild the model from config.json and load its weights; no code is deserialized.

        ``runtime`` (inference.lean.choose): "auto" (ONNX Runtime where it can serve: cheap to create, no
        Keras import once its files are cached; else Keras), "onnx", or "keras" (the network built now);
        None: $COLORIZE_RUNTIME, else auto. ``network`` is the Keras network whatever the runtime (built
        on first use by a lean Colorizer)."""
        run_dir = Path(run_dir)
        config = runs.load_config(run_dir)
        if lean.choose(runtime, config["model"]) == "keras":
            return cls(config, build_network(config, run_dir), run_dir)
        colorizer = cls(config, None, run_dir)
        colorizer.lean = lean.LeanRun(config, run_dir, keras_colorizer=lambda: colorizer)
        return colorizer

    def prior(self, images: np.ndarray, labels: np.ndarray | None,
              detail: np.ndarray | None = None) -> np.ndarray | None:
        """(N, D) prior for the fusion models, effnet_unet's encoder taps; None for the others. ``detail``:
        the same images at the encoder's size, for effnet_unet's encoder (:meth:`detail_view`)."""
        if self.spec.prior == "label":
            if labels is None or np.any(np.asarray(labels) < 0):
                raise MissingLabelError("fusion_label needs the class of every image (file names "
                                        f"img-<index>-<class>.png, or --label with one of {', '.join(CLASS_NAMES)})")
            return one_hot(np.asarray(labels))
        if self.spec.prior == "classifier":
            import priors
            return priors.compute_prior(images, **priors.prior_options(self.config))
        if self.spec.prior == "encoder":
            if self.lean is not None:
                seen = images if detail is None else detail
                return self.lean.features(seen, *encoder_setup(self.config, images.shape[1:3]))
            return encoder_features(self.config, images, cache=False, detail=detail)
        return None

    def colorize(self, images: np.ndarray, labels=None, prior: np.ndarray | None = None,
                 batch_size: int = 64, hints: HintInputs | None = None, detail: np.ndarray | None = None) -> np.ndarray:
        """images (N, S, S, 3) uint8 at the model's size -> float32 RGB [0, 1] (N, S, S, 3).

        ``hints``: color hints for a network that takes them (``takes_hints``); None: no hints.
        ``detail``: the same images at the encoder's size (:meth:`detail_view`), or None."""
        return self.decode(self.network_output(images, labels, prior, batch_size, hints, detail))

    def network_output(self, images: np.ndarray, labels=None, prior=None, batch_size: int = 64,
                       hints: HintInputs | None = None, detail: np.ndarray | None = None) -> RawOutput:
        """The network's input and raw output (and, with flip averaging, its output on the mirror
        images): what :meth:`decode` turns into colors.

        Decoding is separate so that a sweep over temperatures or chroma gains runs the network once.
        """
        self._check_hints(hints, images)
        x, y = self._run(images, labels, prior, batch_size, hints, detail)
        hinted = None
        if self.takes_hints:
            hinted = np.zeros(len(images), bool) if hints is None else \
                (hints.local[..., 2].reshape(len(images), -1).max(1) > 0) | (np.asarray(hints.reference)[:, -1] > 0)
        reference_ab = None if hints is None else hints.reference_ab
        if not self.flip_average:
            return RawOutput(x, y, None, hinted, reference_ab)
        # The mirror images' prior (encoder taps, classifier features) is computed from them; a label is the same.
        mirrored_hints = None if hints is None else hints._replace(local=np.ascontiguousarray(hints.local[:, :, ::-1]))
        mirrored_detail = None if detail is None else np.ascontiguousarray(detail[:, :, ::-1])
        _, y_mirrored = self._run(np.ascontiguousarray(images[:, :, ::-1]), labels, None, batch_size, mirrored_hints,
                                  mirrored_detail)
        return RawOutput(x, y, y_mirrored, hinted, reference_ab)

    def _check_hints(self, hints: HintInputs | None, images: np.ndarray) -> None:
        if hints is None:
            return
        if not self.takes_hints:
            raise HintsNotSupportedError(f"{self.spec.name} ({self.run_dir}) was not trained with hints; "
                                         "train one with `python train.py -m effnet_unet --hints`, "
                                         "or leave the hints out")
        if hints.local.shape != images.shape[:3] + (3,) or len(hints.reference) != len(images):
            raise ValueError(f"hints of shapes {hints.local.shape}, {hints.reference.shape} for images {images.shape}")

    def _hint_arrays(self, hints: HintInputs | None, x: np.ndarray) -> tuple:
        """The hint inputs for a network that takes them (zeros: none), else ()."""
        if not self.takes_hints:
            return ()
        if hints is None:
            return (np.zeros(x.shape[:3] + (core_hints.NETWORK_CHANNELS,), np.float32),
                    np.tile(core_hints.empty_global(), (len(x), 1)))
        local = core_hints.network_local(np.asarray(hints.local, np.float32), x[..., 0] * np.float32(100))
        return local, np.asarray(hints.reference, np.float32)

    def _run(self, images: np.ndarray, labels, prior, batch_size: int,
             hints: HintInputs | None = None, detail: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(the network's input, its raw output) for ``images``."""
        if self.spec.prior and prior is None:
            prior = self.prior(images, labels, detail)
        if self.color_space == "RGB":
            _, gray3 = colorspace.encode_rgb(images)                 # (N, S, S, 3) in [-1, 1]
            return gray3, self._predict(gray3, batch_size)
        if self.color_space == "LAB_SYM":
            l_sym, _ = colorspace.encode_lab_symmetric(images)       # (N, S, S, 1) in [-1, 1]
            return l_sym, self._predict(l_sym, batch_size)
        x, _ = colorspace.encode_lab(images)                         # (N, S, S, 1) in [0, 1]
        if self.color_space == "features":                          # effnet_unet: L and the encoder's taps
            inputs = (x, *(np.asarray(p, np.float32) for p in prior), *self._hint_arrays(hints, x))
        else:
            inputs = x if prior is None else (x, np.asarray(prior, np.float32))
        return x, self._predict(inputs, batch_size)

    def decode(self, raw: RawOutput) -> np.ndarray:
        """:meth:`network_output`'s result -> float32 RGB [0, 1] (N, S, S, 3), at this temperature and
        gain; the colors of the mirror images, when there, mirrored back and averaged in."""
        x = raw.x
        color = self._color(raw.y, raw.hinted)
        if raw.y_mirrored is not None:
            color = (color + self._color(raw.y_mirrored, raw.hinted)[:, :, ::-1]) * np.float32(0.5)
        if self.color_space == "RGB":
            return self._gain_rgb(color)
        if self.color_space == "LAB_SYM":
            return self._gain_rgb(colorspace.decode_lab_symmetric(x, color))
        if raw.reference_ab is not None:
            color = _matched(color, raw.reference_ab)
        ab = np.clip(self._gain_encoded(color), 0.0, 1.0)           # unet's tanh can leave [0, 1]
        return colorspace.decode_lab(x, ab)

    def _color(self, y: np.ndarray, hinted: np.ndarray | None = None) -> np.ndarray:
        """Raw output -> the colors that are averaged: RGB [0, 1] (RGB models), ab in [-1, 1] (LAB_SYM),
        or ab in the LAB encoding (ab + 128) / 255 (the others; effnet_unet decoded at this temperature)."""
        if self.color_space == "RGB":
            return colorspace.decode_rgb(y)
        if self.color_space == "LAB_SYM":
            return np.clip(y, -1.0, 1.0)
        if self.color_space == "features":
            from models.effnet_options import HINTED_TEMPERATURE, decode, split_output
            weights = self.config.get("class_rebalancing", {}).get("weights")
            if hinted is None or not hinted.any():      # the network's own logits (a hint run's second half)
                y = split_output(y, np.zeros(len(y), bool))
                return decode(y, self.options["head"], self.temperature, self.undo_rebalancing or 0.0,
                              weights)                                # (N, S, S, 2) about [0, 1]
            # each image decoded once: its hinted logits if it has hints, else its own
            out = np.empty(y.shape[:-1] + (2,), np.float32)
            out[hinted] = decode(split_output(y[hinted], np.ones(int(hinted.sum()), bool)), self.options["head"],
                                 HINTED_TEMPERATURE)
            if not hinted.all():
                out[~hinted] = self._color(y[~hinted], None)
            return out
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
        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        if self.lean is not None:
            return self.lean.predict(parts, batch_size)
        network = self.network_for(parts[0].shape[1:3]) if self.work_multiple else self.network
        if model_replicas(self.network) > 1:
            # train.py --strategy: predict_on_batch would give every replica the whole batch and return
            # it once per replica (Keras 3 pitfall 6); predict splits it between them and reassembles it.
            return np.asarray(self.network.predict(inputs, batch_size=batch_size, verbose=0))
        # predict_on_batch per slice: model.predict sets up a data pipeline per call (~0.4 s),
        # which dominates when colorize.py or a training callback colorizes a handful of images.
        out = []
        for i in range(0, len(parts[0]), batch_size):
            batch = tuple(p[i:i + batch_size] for p in parts)
            out.append(np.asarray(network.predict_on_batch(batch if len(batch) > 1 else batch[0])))
        return np.concatenate(out)


def _matched(color: np.ndarray, reference_ab: list) -> np.ndarray:
    """Colors (N, h, w, 2) in the LAB encoding (ab + 128) / 255, each image with a reference's ab pixels
    moved toward them (core.hints.match_reference); the others unchanged."""
    out = np.array(color, np.float32)
    for i, ref in enumerate(reference_ab):
        if ref is not None:
            ab = out[i] * np.float32(255) - np.float32(128)
            out[i] = (core_hints.match_reference(ab, ref) + np.float32(128)) / np.float32(255)
    return out


def resolved_options(config: dict) -> dict:
    """The run's model options with the model's defaults filled in (effnet_unet; as recorded for the others)."""
    if get_spec(config["model"]).prior == "encoder":
        from models.effnet_options import options
        return options(**config["model_options"])
    return dict(config["model_options"])


def encoder_features(config: dict, images: np.ndarray, flip: bool = False, cache: bool = True,
                     verbose: bool = False, detail: np.ndarray | None = None) -> list[np.ndarray]:
    """effnet_unet's encoder taps of ``images`` (N, h, w, 3) uint8, as the run's config asks (the
    encoder at the run's ratio of encoder size to image size: 4 x by default). ``detail``: the same
    images (N, E_h, E_w, 3) uint8 at that encoder size, which the encoder then sees instead of
    ``images`` enlarged (a run trained with ``encoder_detail``)."""
    from priors.features import compute_features
    size, taps = encoder_setup(config, images.shape[1:3])
    seen = images if detail is None else detail
    return compute_features(seen, size, taps, flip=flip, cache=cache, verbose=verbose)


def encoder_setup(config: dict, image_hw) -> tuple:
    """(encoder size, taps) of effnet_unet's encoder for images of (h, w): the training size's
    encoder_size (an int), else the run's ratio of encoder size to image size at (h, w)."""
    from models.effnet_options import encoder_taps, working_encoder_shape
    options = resolved_options(config)
    size, trained = options["encoder_size"], int(config["model_options"].get("image_size", 32))
    if tuple(image_hw) != (trained, trained):
        size = working_encoder_shape({**options, "image_size": trained}, image_hw)
    return size, encoder_taps(options)


def build_network(config: dict, run_dir: Path):
    """The run's Keras network (the GAN's generator), its weights loaded from run_dir."""
    if get_spec(config["model"]).trainer == "gan":
        from models.gan import build_generator  # the discriminator is not needed to colorize
        options = config["model_options"]
        with dtype_policy(options.get("precision", "float32")):
            network = build_generator(options["image_size"], options["color_space"])
        part = "generator"
    else:
        network, part = build_model(config["model"], **config["model_options"]), "model"
    runs.load_weights(network, run_dir, part, optimizer_state=False)   # colorizing needs no optimizer
    return network
