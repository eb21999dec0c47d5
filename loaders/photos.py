"""Photos of any size and number as training batches: random crops at random scales, read per batch.

The photo colorizer trains on real photos at their own resolution, from folders too large to
decode up front (ImageNet: 1.2 million files). This module reads them batch by batch:

* **Sources** give images by index: ``len(source)``, ``source.read(i)`` -> uint8 (H, W, 3) of any
  H and W, ``source.name(i)``. :class:`FolderSource` lists the image files of a folder (listing
  opens no file) and decodes one when it is read; :class:`ArraySource` holds decoded images (the
  CIFAR-10 batch files, read by ``loaders.cifar``). CIFAR-10 PNG folders are folders like any other.
* **Crops** (:func:`crop_plan`): for image ``index`` in ``epoch``, an area fraction in ``scale``, a
  log-uniform aspect ratio in ``ratio``, a position and a left-right flip are drawn from
  (seed, epoch, index) alone, as fractions that do not depend on the image's size; they become a
  pixel box only when the image is read (:meth:`CropPlan.box`), and the box is resized to
  ``size`` x ``size`` (area averaging when shrinking, linear when enlarging).
* **Batches** (:class:`PhotoCrops`): epoch ``e`` visits the images in the order
  ``loaders.cifar.epoch_order`` (a permutation drawn from the seed and the epoch, as for CIFAR-10),
  ``batch_size`` at a time; the last, incomplete batch of an epoch is dropped, so every training
  batch has ``batch_size`` items. :meth:`PhotoCrops.epoch_batch` (epoch, i) is therefore a pure
  function of (seed, epoch, i) and the source: a run resumed in the middle of an epoch sees exactly
  the batches an uninterrupted one would (the trainers' ``StepStream`` asks for batches that way).
* **Sharding**: with ``shard=(w, count)``, shard ``w`` serves the w-th contiguous slice of every
  global batch, ``batch_size / count`` items (a ValueError unless ``count`` divides it): the
  shards in order make up the unsharded batch exactly, as ``core.replicas.shard_batch`` slices a
  global batch, and each shard decodes only its own images. Under ``--strategy multiworker`` each
  machine would be a shard (w = its worker index), its slice then split between its local replicas
  in the same contiguous way; ``mirrored`` (one process) needs no shard: Keras splits the batch.
* **Workers and memory**: a batch's images are decoded and cropped on a thread pool (Pillow's
  decoders and OpenCV's resize release the GIL). :meth:`PhotoCrops.batches` reads ahead at most
  ``prefetch`` batches while the consumer trains. What it holds is bounded whatever the folder's
  size: at most ``prefetch + 1`` batches of crops, plus one decoded image per worker; the folder
  itself costs only its list of file names (about 40 bytes a file, packed).
* **Reduced decoding**: a JPEG is decoded at scale 1/d, d = 2, 4 or 8 (Pillow's ``draft``: libjpeg's
  DCT scaling, each pixel the average of a d x d block) when its crop still has twice ``size``
  pixels each way at that scale (``REDUCED_MARGIN``): 6-7x less CPU time per crop of a
  12-megapixel JPEG at 64 and 224 px (BSDS500's 481 x 321 photos: 1.2x at 64 px). A crop that
  large has its box laid on the image's d x d blocks however the image is decoded
  (:meth:`CropPlan.grid`), so the reduced decode averages the pixels the full one would: the crops
  agree to within about a level on average.
* **A crop bank** (:func:`crop_bank`): the CPU-practical way to train on photos, with the crops
  made once instead of every epoch: crops k = 0..K-1 of image i are the loader's crops of
  (seed, epoch=k, index=i), unflipped, held in memory as a ``loaders.cifar.ImageSet`` of N x K
  images (N x K x size^2 x 3 bytes), which every trainer reads as it reads CIFAR-10.
  :func:`center_crops` gives one crop per image, its largest centered square (validation).
  :func:`crops_of` makes an image's crops from one decode per decoding scale they accept.

Errors: a folder without images, or fewer images than one batch, is a ``loaders.cifar.DataError``
at construction. A file that cannot be read (damaged, not an image, above ``MAX_PIXELS``) is a
``DataError`` naming it when its batch is read: training stops there rather than skip it, because
a skipped image would change the batches silently (and a resumed run could no longer repeat
them). Replace the file with a readable copy and resume.

Layer 1 of the layout: NumPy, Pillow, OpenCV, ``core``; ``loaders.cifar`` (its decoding helpers,
``DataError`` and ``epoch_order``) and OpenCV are imported at first use, Keras never.
"""
from __future__ import annotations

import math
import os
import re
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import ExifTags

from core import colorspace

DEFAULT_SCALE = (0.08, 1.0)        # area fraction of the crop, as torchvision's RandomResizedCrop
DEFAULT_RATIO = (3 / 4, 4 / 3)     # width / height of the crop, drawn log-uniformly
ENCODINGS = ("rgb", "lab")         # what a batch holds: uint8 crops, or the LAB training pair
REDUCTIONS = (8, 4, 2)             # the reduced scales 1/d libjpeg decodes at (Pillow's Image.draft)
# A crop decoded at 1/d keeps at least REDUCED_MARGIN x size pixels each way. With 2 the area filter
# averages 2 x 2 reduced pixels or more into each output pixel, and the crops match a full decode's
# to 0.5-1.2 levels on average (measured: BSDS500 and 12-megapixel JPEGs, 64 and 224 px); with 1
# (just the output size) they differed by up to 8 levels, for a saving of 0-15% of the CPU time
# (a 1/4 and a 1/8 decode cost about the same, 18 vs 16 ms at 12 megapixels: entropy decoding dominates).
REDUCED_MARGIN = 2
_CROP_STREAM = 2                   # seed stream of the crops (epoch_order uses none, epoch_mirrored 1)
_TRANSPOSING = {5, 6, 7, 8}        # EXIF orientations that swap width and height
# EXIF orientation -> whether the stored (width, height) runs backwards in the upright image: the
# last, partial block of a reduced decode then comes first, so the blocks miss the upright corner.
_REVERSED = {2: (True, False), 3: (True, True), 4: (False, True), 6: (False, True), 7: (True, True),
             8: (True, False)}

Largest = Callable[[int, int], int]   # (width, height) of the upright full image -> largest d accepted


def _cifar():
    """``loaders.cifar``, imported at first use (its decoding helpers, DataError, epoch_order)."""
    from loaders import cifar
    return cifar


# ---- sources -----------------------------------------------------------------

class Source(Protocol):
    """Images by index. A source may also offer ``read_reduced`` (see :meth:`FolderSource.read_reduced`)."""

    def __len__(self) -> int: ...

    def read(self, i: int) -> np.ndarray: ...   # (H, W, 3) uint8 RGB, any H and W

    def name(self, i: int) -> str: ...


class FolderSource:
    """The image files under a folder, recursively, decoded one at a time when read.

    Listing reads directory entries only (no file is opened, so an ImageNet-size folder lists in
    seconds): files whose extension is one of ``loaders.cifar.IMAGE_EXTENSIONS``, any case; hidden
    files and folders (a leading dot, such as macOS' ``._x.jpg`` companions) are left out. Order:
    a folder's files in natural order (img-2 before img-10), then its sub-folders in natural order,
    depth first. The names are kept packed (about 40 bytes a file), not as Path objects.
    """

    def __init__(self, path: str | os.PathLike):
        cifar = _cifar()
        self.root = Path(path)
        if not self.root.is_dir():
            raise cifar.DataError(f"{self.root}: no such folder; pass a folder of images")
        relative = _list_images(self.root, cifar.IMAGE_EXTENSIONS)
        if not relative:
            raise cifar.DataError(f"{self.root}: no image files ({', '.join(sorted(cifar.IMAGE_EXTENSIONS))}) "
                                  "in this folder or its sub-folders; point it at a folder of photos")
        encoded = [os.fsencode(r) for r in relative]
        self._names = b"".join(encoded)                                   # every relative path, packed
        self._ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)   # (N,) end of each in _names

    def __len__(self) -> int:
        return len(self._ends)

    def relative_path(self, i: int) -> str:
        """Path of file ``i`` relative to the folder, with "/" separators."""
        start = int(self._ends[i - 1]) if i > 0 else 0
        return os.fsdecode(self._names[start:int(self._ends[i])])

    def path(self, i: int) -> Path:
        return self.root / self.relative_path(i)

    def name(self, i: int) -> str:
        """The relative path without its extension (``n01440764/n01440764_10026``): unique in the folder."""
        return Path(self.relative_path(i)).with_suffix("").as_posix()

    def read(self, i: int) -> np.ndarray:
        """Image ``i`` -> (H, W, 3) uint8 RGB, upright (EXIF rotation applied), any mode converted.

        Raises ``loaders.cifar.DataError`` naming the file if it cannot be read, or has more than
        ``MAX_PIXELS`` pixels (checked from the header, before decoding).
        """
        return self.read_reduced(i, None)[0]

    def read_reduced(self, i: int, largest: Largest | None) -> tuple[np.ndarray, int]:
        """(image, d): image ``i`` as :meth:`read` gives it, but decoded at scale 1/d where the
        format allows it (JPEG: d = 1, 2, 4 or 8), d at most ``largest(width, height)``.

        ``largest`` is called at most once, before decoding, with the size of the upright
        full-scale image (from the file's header); it is not called for other formats (d = 1).
        The reduced image is ceil(width / d) x ceil(height / d), each pixel the DCT-domain
        average of a d x d block of the full image.
        """
        cifar, path = _cifar(), self.path(i)
        with cifar.open_image(path) as img:
            factor = _draft(img, largest) if largest is not None and img.format == "JPEG" else 1
            return np.asarray(cifar.decode_rgb(img, path)), factor   # (H/d, W/d, 3) uint8


def _list_images(root: Path, extensions: set[str]) -> list[str]:
    """Relative paths ("/"-separated) of the image files under ``root``, in the documented order."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):   # scandir: entries only, no file opened
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural_key)   # walked in this order
        base = Path(folder).relative_to(root)
        found.extend((base / f).as_posix() for f in sorted(files, key=_natural_key)
                     if not f.startswith(".") and os.path.splitext(f)[1].lower() in extensions)
    return found


def _natural_key(name: str) -> list:
    # "img-2" before "img-10"; numbers and text alternate, so the lists compare element by element.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _draft(img, largest: Largest) -> int:
    """Set Pillow's JPEG decoder to scale 1/d, d the largest of 8, 4, 2 that ``largest`` accepts; d (1: none)."""
    width, height = img.size                       # as stored; EXIF may turn it a quarter
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)   # from the header
    except Exception:   # noqa: BLE001 -- damaged EXIF: decode_rgb keeps the pixels as stored too
        orientation = 1
    accepted = largest(height, width) if orientation in _TRANSPOSING else largest(width, height)
    # The crop is laid on d x d blocks counted from the upright image's top-left corner: a side that
    # runs backwards once upright must hold whole blocks (phone photos' sides are multiples of 8).
    backwards_w, backwards_h = _REVERSED.get(orientation, (False, False))
    factor = next((d for d in REDUCTIONS if d <= accepted and not (backwards_w and width % d)
                   and not (backwards_h and height % d)), 1)
    if factor == 1:
        return 1
    try:
        # Pillow picks the largest scale s of 8, 4, 2, 1 with s <= width // asked (and the same for
        # heights): asking for (width // d, height // d) gives s = d.
        chosen = img.draft("RGB", (width // factor, height // factor))
    except Exception:   # noqa: BLE001 -- only an optimization: the full decode gives the same crop
        return 1
    return 1 if chosen is None else round(width / chosen[1][2])   # chosen box: the full image at 1/s


class ArraySource:
    """Decoded images in memory: uint8 (N, H, W, 3), such as CIFAR-10's batch files; ``labels``
    (N,) class indices (-1: unknown), kept for the crops made of them (:func:`source_labels`)."""

    def __init__(self, images: np.ndarray, names: Sequence[str] | None = None, labels: Sequence[int] | None = None):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if names is not None and len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} images")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images = images
        self.names = list(names) if names is not None else [str(i) for i in range(len(images))]
        self.labels = None if labels is None else np.asarray(labels, np.int64)   # (N,) or None

    @classmethod
    def from_image_set(cls, data) -> ArraySource:
        """From a ``loaders.cifar.ImageSet`` (or anything with ``images`` and ``names``; ``labels`` if it has them)."""
        return cls(data.images, data.names, getattr(data, "labels", None))

    def __len__(self) -> int:
        return len(self.images)

    def read(self, i: int) -> np.ndarray:
        return self.images[i]   # (H, W, 3) uint8, a view: crops copy what they keep

    def name(self, i: int) -> str:
        return self.names[i]


def open_source(path: str | os.PathLike, split: str = "train") -> Source:
    """The images at ``path``: a CIFAR-10 batch folder's ``split`` decoded (an :class:`ArraySource` with
    its labels), any other folder's image files (a :class:`FolderSource`). DataError (one line) for a
    missing folder, a folder without images, a damaged batch file."""
    cifar = _cifar()
    path = cifar.check_folder(path)
    if cifar.is_batch_folder(path):
        return ArraySource.from_image_set(cifar.read_cifar_batches(path, split))
    return FolderSource(path)


def source_labels(source: Source, n: int | None = None) -> np.ndarray:
    """(n,) int64 class indices of the first ``n`` images (default all), -1 where unknown: an
    :class:`ArraySource`'s labels, or read from a :class:`FolderSource`'s file names as
    ``loaders.cifar`` reads them (``img-<index>-<class>.png``; another name or class: -1, silently)."""
    n = len(source) if n is None else n
    labels = getattr(source, "labels", None)
    if labels is not None:
        return np.asarray(labels[:n], np.int64)
    if not isinstance(source, FolderSource):
        return np.full(n, -1, np.int64)
    return np.array([_label(source.relative_path(i)) for i in range(n)], np.int64)


def _label(name: str) -> int:
    try:
        return _cifar().parse_label(name)
    except _cifar().DataError:   # a CIFAR-style name with another class: no label, as loaders.cifar reads it
        return -1


# ---- crops -------------------------------------------------------------------

@dataclass(frozen=True)
class CropPlan:
    """One image's crop in one epoch, as fractions independent of the image's size."""
    area: float    # fraction of the image's area, in the scale range
    ratio: float   # width / height of the crop, in the ratio range
    x: float       # left edge, as a fraction of the room left beside the crop, [0, 1)
    y: float       # top edge, likewise, [0, 1)
    flip: bool     # mirrored left-right after cropping

    def extent(self, width: int, height: int) -> tuple[float, float]:
        """(w, h) of the crop in a ``width`` x ``height`` image, in (fractional) pixels.

        Where the asked area and ratio do not fit (a full-area crop of a non-square image, a
        panorama), the crop shrinks keeping its ratio: the square output is then never stretched
        more than the ratio range allows, at the cost of a smaller area.
        """
        area = self.area * width * height
        w, h = math.sqrt(area * self.ratio), math.sqrt(area / self.ratio)
        shrink = min(1.0, width / w, height / h)
        return w * shrink, h * shrink

    def box(self, width: int, height: int, grid: int = 1) -> tuple[int, int, int, int]:
        """(left, top, w, h) in whole pixels, inside the image, at least 1 x 1; with ``grid`` d > 1,
        in whole d x d blocks of the image (every value a multiple of d; edges move less than d)."""
        w, h = self.extent(width, height)
        w, h = min(width, max(1, round(w))), min(height, max(1, round(h)))
        cols, rows, w, h = width // grid, height // grid, w // grid, h // grid   # in blocks
        return round(self.x * (cols - w)) * grid, round(self.y * (rows - h)) * grid, w * grid, h * grid

    def grid(self, width: int, height: int, size: int) -> int:
        """d: the largest of 8, 4, 2 with the crop still ``REDUCED_MARGIN x size`` pixels each way
        at scale 1/d; else 1.

        The box is laid on the d x d blocks of the image whether the image is decoded at full scale
        or at 1/d (a JPEG's reduced decode, each pixel a block's average): both then average the
        same pixels into the output, and give the same crop to within about a level (the DCT's
        filter, the output pixels' edges falling inside blocks). Without the blocks, the box's
        edges would differ by up to half a reduced pixel: 6-8 levels on average. A snapped edge
        moves by less than d pixels, under 1/(2 size) of the crop.
        """
        _, _, w, h = self.box(width, height)
        return next((d for d in REDUCTIONS if min(w, h) // d >= REDUCED_MARGIN * size), 1)


def crop_plan(seed: int, epoch: int, index: int, scale: tuple[float, float] = DEFAULT_SCALE,
              ratio: tuple[float, float] = DEFAULT_RATIO, flip: bool = True) -> CropPlan:
    """The crop of image ``index`` in ``epoch``: drawn from (seed, epoch, index) alone.

    Its own stream per image: the crop of an image does not depend on the order, the batch size,
    the sharding or the other images. All five numbers are drawn whatever ``flip`` says, so
    turning flips off leaves the crops as they were.
    """
    u = np.random.default_rng([epoch, seed % 2**32, index, _CROP_STREAM]).random(5)   # (5,) in [0, 1)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    return CropPlan(area=scale[0] + float(u[0]) * (scale[1] - scale[0]),
                    ratio=math.exp(log_lo + float(u[1]) * (log_hi - log_lo)),
                    x=float(u[2]), y=float(u[3]), flip=bool(flip and u[4] < 0.5))


def crop_and_resize(image: np.ndarray, plan: CropPlan, size: int, full_size: tuple[int, int] | None = None,
                    factor: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: the plan's box, resized, mirrored if planned.

    ``image`` may be the full image decoded at scale 1/``factor`` (``full_size``: its full (width,
    height)); the box is the full image's, on its grid (:meth:`CropPlan.grid`), which ``factor`` divides.
    """
    width, height = full_size if factor > 1 else (image.shape[1], image.shape[0])
    grid = plan.grid(width, height, size)
    if grid % factor:
        raise ValueError(f"image decoded at scale 1/{factor}, but its crop allows 1/{grid} at most")
    left, top, w, h = (v // factor for v in plan.box(width, height, grid))
    crop = _resize(image[top:top + h, left:left + w], size)
    return crop[:, ::-1] if plan.flip else crop


# The largest centered square of an image (area 1 at ratio 1 shrinks to the shorter side), not mirrored.
LARGEST_SQUARE = CropPlan(area=1.0, ratio=1.0, x=0.5, y=0.5, flip=False)


def crops_of(source: Source, index: int, plans: Sequence[CropPlan], size: int,
             reduced_decoding: bool = True) -> np.ndarray:
    """(len(plans), size, size, 3) uint8: source image ``index`` cropped by each plan, each crop exactly
    as :meth:`PhotoCrops.crop` makes it alone, from one decode per decoding scale the crops accept
    (a JPEG: at most 4, at 1, 1/2, 1/4, 1/8; another format or a source without ``read_reduced``: 1)
    instead of one per crop. ``reduced_decoding=False`` reads the image whole."""
    out = np.empty((len(plans), size, size, 3), np.uint8)
    if not (reduced_decoding and hasattr(source, "read_reduced")):
        image = source.read(index)   # (H, W, 3) uint8: the same for every plan
        for k, plan in enumerate(plans):
            out[k] = crop_and_resize(image, plan, size)
        return out
    decodes = _Decodes(source, index, size)
    for k, plan in enumerate(plans):
        image, full_size, factor = decodes.get(plan)
        out[k] = crop_and_resize(image, plan, size, full_size, factor)
    return out


class _Decodes:
    """One image's decodes for several crops: the decode a crop's own read makes (``read_reduced`` at the
    scale its plan accepts, :meth:`CropPlan.grid`), made once per accepted scale."""

    def __init__(self, source: Source, index: int, size: int):
        self.source, self.index, self.size = source, index, size
        self.full_size: tuple[int, int] | None = None   # upright (width, height), told by a JPEG's header
        self.whole: np.ndarray | None = None             # a format decoded whole whatever the crop (not JPEG)
        self.by_scale: dict[int, tuple[np.ndarray, int]] = {}   # accepted d -> (image at 1/factor, factor)

    def get(self, plan: CropPlan) -> tuple[np.ndarray, tuple[int, int] | None, int]:
        """(image, full size or None, factor): what crop_and_resize takes to crop ``plan``."""
        if self.whole is not None:
            return self.whole, None, 1
        accepted = None if self.full_size is None else plan.grid(*self.full_size, self.size)
        if accepted not in self.by_scale:   # also the first read (accepted None: the size is not known yet)
            told: list[tuple[int, int]] = []

            def largest(width: int, height: int) -> int:   # the source tells the full size, the plan the scale
                told.append((width, height))
                return plan.grid(width, height, self.size)

            image, factor = self.source.read_reduced(self.index, largest)
            if not told:   # not a JPEG: decoded whole, as it is for any crop
                self.whole = image
                return image, None, 1
            self.full_size = told[0]
            accepted = plan.grid(*self.full_size, self.size)
            self.by_scale[accepted] = (image, factor)
        image, factor = self.by_scale[accepted]
        return image, self.full_size if factor > 1 else None, factor


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    """Area averaging along what shrinks (no aliasing), then linear along what grows; as is at size."""
    import cv2
    h, w = crop.shape[:2]
    if w > size or h > size:
        crop = cv2.resize(crop, (min(w, size), min(h, size)), interpolation=cv2.INTER_AREA)
    if crop.shape[:2] != (size, size):
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    return crop


def lab_pair(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 crops (B, S, S, 3) -> the training pair, as for CIFAR-10 (``colorspace.encode_lab``):
    X (B, S, S, 1) float32 L/100 in [0, 1], Y (B, S, S, 2) float32 (ab+128)/255 in [0, 1]."""
    return colorspace.encode_lab(crops)


# ---- batches -----------------------------------------------------------------

class PhotoCrops:
    """Training batches of random crops from a source; see the module docstring.

    ``len()`` is the number of *full* global batches per epoch, ``len(source) // batch_size``: the
    remaining images of an epoch are left out (other ones each epoch, as the order changes), so
    every batch has ``batch_size`` items and every replica an equal slice.

    ``encoding``: ``"rgb"`` -> batches are uint8 (B, size, size, 3) crops; ``"lab"`` -> (X, Y) as
    :func:`lab_pair` gives, encoded by the workers. B is the shard's ``batch_size // count``.
    ``workers`` threads decode; ``prefetch`` batches are read ahead by :meth:`batches`.
    ``reduced_decoding`` lets JPEGs decode at a smaller scale where the crop allows it (sources
    without ``read_reduced``, such as :class:`ArraySource`, are always read whole).
    """

    def __init__(self, source: Source, size: int, batch_size: int, seed: int, *,
                 scale: tuple[float, float] = DEFAULT_SCALE, ratio: tuple[float, float] = DEFAULT_RATIO,
                 flip: bool = True, shard: tuple[int, int] = (0, 1), workers: int = 2, prefetch: int = 2,
                 encoding: str = "rgb", reduced_decoding: bool = True):
        _check_options(size, batch_size, scale, ratio, shard, workers, prefetch, encoding)
        if len(source) < batch_size:
            raise _cifar().DataError(f"{getattr(source, 'root', 'the data')}: {len(source)} image(s), fewer than "
                                     f"one batch of {batch_size}; use a smaller batch size or more images")
        self.source, self.size, self.batch_size, self.seed = source, size, batch_size, int(seed)
        self.scale, self.ratio, self.flip = (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1])), flip
        self.shard, self.workers, self.prefetch = shard, workers, prefetch
        self.encoding = encoding
        self.reduced_decoding = reduced_decoding and hasattr(source, "read_reduced")
        self.local_batch_size = batch_size // shard[1]
        self._order: tuple[int, np.ndarray] | None = None   # (epoch, its order): one epoch cached
        self._pool: ThreadPoolExecutor | None = None         # epoch_batch's workers, made at first use

    def __len__(self) -> int:
        return len(self.source) // self.batch_size

    # -- what a batch holds

    def epoch_order(self, epoch: int) -> np.ndarray:
        """(N,) source indices in the order ``epoch`` visits them (``loaders.cifar.epoch_order``)."""
        cached = self._order   # one read: another thread may replace it meanwhile
        if cached is None or cached[0] != epoch:
            cached = (epoch, _cifar().epoch_order(len(self.source), self.seed, epoch))
            self._order = cached
        return cached[1]

    def batch_indices(self, epoch: int, i: int) -> np.ndarray:
        """(B,) source indices of this shard's slice of global batch ``i`` of ``epoch``."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range 0..{len(self) - 1}")
        start = i * self.batch_size + self.shard[0] * self.local_batch_size
        return self.epoch_order(epoch)[start:start + self.local_batch_size]

    def batch_names(self, epoch: int, i: int) -> list[str]:
        """Names of the images of :meth:`epoch_batch` (epoch, i), in order; nothing is decoded."""
        return [self.source.name(int(j)) for j in self.batch_indices(epoch, i)]

    def plan(self, epoch: int, index: int) -> CropPlan:
        """The crop of source image ``index`` in ``epoch``."""
        return crop_plan(self.seed, epoch, index, self.scale, self.ratio, self.flip)

    def crop(self, epoch: int, index: int) -> np.ndarray:
        """Source image ``index`` cropped as planned for ``epoch``: (size, size, 3) uint8."""
        return crops_of(self.source, index, [self.plan(epoch, index)], self.size, self.reduced_decoding)[0]

    # -- reading batches

    def epoch_batch(self, epoch: int, i: int):
        """Batch ``i`` of ``epoch`` (this shard's slice), decoded by the workers; a pure function
        of (seed, epoch, i) and the source. Safe to call from several threads at once."""
        out, jobs = self._start(self._shared_pool(), epoch, i)
        return _finish(out, jobs)

    def __getitem__(self, i: int):
        """Batch ``i`` of epoch 0 (for code that indexes a generator; the trainers use epoch_batch)."""
        return self.epoch_batch(0, i)

    def batches(self, epoch: int, start: int = 0) -> Iterator:
        """``epoch_batch(epoch, i)`` for i = start, start + 1, ... len() - 1, read ahead while the
        consumer works: at most ``prefetch`` batches beyond the one it holds, by a pool of its own.

        Resuming mid-epoch is ``start=i``. Closing the iterator early (``close()``, or dropping
        it) cancels what is queued and waits for the images being decoded: no thread is left.
        """
        if not 0 <= start <= len(self):   # checked now, not at the first next()
            raise IndexError(f"start {start} out of range 0..{len(self)}")
        return self._read_ahead(epoch, start)

    def _read_ahead(self, epoch: int, start: int) -> Iterator:
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="photo-crops")
        pending: deque = deque()   # (out, jobs) of the batches read ahead, in order
        following = start
        try:
            while pending or following < len(self):
                while following < len(self) and len(pending) <= self.prefetch:
                    pending.append(self._start(pool, epoch, following))
                    following += 1
                yield _finish(*pending.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, pool: ThreadPoolExecutor | None, epoch: int, i: int) -> tuple[tuple, list[Future]]:
        """Allocate batch ``i``'s arrays and submit one job per image (run here without a pool)."""
        indices = self.batch_indices(epoch, i)
        out = self._allocate(len(indices))
        if pool is None:
            for j, index in enumerate(indices):
                self._fill(out, j, epoch, int(index))
            return out, []
        return out, [pool.submit(self._fill, out, j, epoch, int(index)) for j, index in enumerate(indices)]

    def _allocate(self, n: int) -> tuple[np.ndarray, ...]:
        s = self.size
        if self.encoding == "lab":
            return (np.empty((n, s, s, 1), np.float32),    # X: L / 100, [0, 1]
                    np.empty((n, s, s, 2), np.float32))    # Y: (ab + 128) / 255, [0, 1]
        return (np.empty((n, s, s, 3), np.uint8),)         # RGB crops, 0..255

    def _fill(self, out: tuple[np.ndarray, ...], j: int, epoch: int, index: int) -> None:
        crop = self.crop(epoch, index)                   # (S, S, 3) uint8
        if self.encoding == "lab":
            out[0][j], out[1][j] = colorspace.encode_lab(crop)   # per pixel: as encoding the whole batch
        else:
            out[0][j] = crop

    def _shared_pool(self) -> ThreadPoolExecutor | None:
        """epoch_batch's pool (None with one worker: the caller's thread decodes), shut down with the loader."""
        if self.workers == 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="photo-crops")
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop epoch_batch's workers (they start again at the next call)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PhotoCrops:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # Keras' multiprocessing readers pickle the dataset: a pool cannot travel (a new one starts there).
        return {**self.__dict__, "_pool": None}


def _finish(out: tuple[np.ndarray, ...], jobs: list[Future]):
    """Wait for a batch's jobs (the first error, a DataError naming the file, is raised); its arrays."""
    for job in jobs:
        job.result()
    return out[0] if len(out) == 1 else out


def _check_options(size, batch_size, scale, ratio, shard, workers, prefetch, encoding) -> None:
    """ValueError (one line) for options no loader could serve."""
    if size < 1 or batch_size < 1:
        raise ValueError(f"size and batch_size must be positive, got {size} and {batch_size}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must be (min, max) with 0 < min <= max <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {ratio}")
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    if batch_size % count:
        raise ValueError(f"the global batch size {batch_size} must be a multiple of the {count} shards, "
                         "so that each serves an equal slice")
    if workers < 1 or prefetch < 0:
        raise ValueError(f"workers must be at least 1 and prefetch at least 0, got {workers} and {prefetch}")
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")


# ---- crop banks --------------------------------------------------------------

PROGRESS_EVERY = 500   # photos between two progress lines of a long bank build


def crop_bank(source: Source, size: int, crops_per_photo: int, seed: int, *,
              scale: tuple[float, float] = DEFAULT_SCALE, ratio: tuple[float, float] = DEFAULT_RATIO,
              limit: int | None = None, workers: int | None = None, origin: str | None = None,
              report: Callable[[str], None] | None = print):
    """A fixed bank of K = ``crops_per_photo`` crops of each of the first N = ``limit`` images (default
    all): a ``loaders.cifar.ImageSet`` of N x K images, made once.

    Crop k of image i (item i * K + k, named ``<name>#k``, the image's label) is the loader's crop of
    (seed, epoch=k, index=i) without flip: ``PhotoCrops(source, size, ..., seed, scale=scale,
    ratio=ratio, flip=False).crop(k, i)``, bit for bit. Not flipped, because the trainers flip
    (effnet_unet with each mirrored image's own taps). Decoded by ``workers`` threads (default: the
    CPUs, at most 8), each image once per decoding scale its crops accept (:func:`crops_of`).
    Memory: the bank, N x K x size^2 x 3 bytes, plus the decodes of one image per worker.
    ``report`` gets a progress line every ``PROGRESS_EVERY`` images and a summary line (None: silent).
    DataError naming the file if an image cannot be read.
    """
    _check_options(size, 1, scale, ratio, (0, 1), 1, 0, "rgb")
    if crops_per_photo < 1:
        raise ValueError(f"crops_per_photo must be at least 1, got {crops_per_photo}")
    n, epochs = _count(source, limit), range(crops_per_photo)
    origin = origin or str(getattr(source, "root", "the images"))

    def plans(i: int) -> list[CropPlan]:
        return [crop_plan(seed, k, i, scale, ratio, flip=False) for k in epochs]

    images, seconds, workers = _crop_set(source, size, n, crops_per_photo, plans, workers, report)
    if report is not None:
        report(f"crop bank of {origin}: {n} photos x {crops_per_photo} crops at {size} px = {len(images)} images "
               f"({images.nbytes / 2**20:.1f} MiB) in {seconds:.1f} s ({workers} threads)")
    names = [f"{source.name(i)}#{k}" for i in range(n) for k in epochs]
    return _cifar().ImageSet(images, np.repeat(source_labels(source, n), crops_per_photo), names,
                             f"crop bank of {origin}: {n} photos x {crops_per_photo} crops at {size} px, "
                             f"scale {scale[0]:g}-{scale[1]:g}")


def center_crops(source: Source, size: int, *, limit: int | None = None, workers: int | None = None,
                 origin: str | None = None, report: Callable[[str], None] | None = print):
    """The largest centered square of each of the first ``limit`` images (default all), resized to
    ``size``: a ``loaders.cifar.ImageSet`` of N images named as the source names them (validation of
    a crop bank: the same crop whatever the seed, most of each photo, undistorted)."""
    n = _count(source, limit)
    origin = origin or str(getattr(source, "root", "the images"))
    images, seconds, workers = _crop_set(source, size, n, 1, lambda i: [LARGEST_SQUARE], workers, None)
    if report is not None:
        report(f"{origin}: the largest centered square of {n} photos at {size} px in {seconds:.1f} s")
    return _cifar().ImageSet(images, source_labels(source, n), [source.name(i) for i in range(n)],
                             f"{origin}, the largest centered square of each at {size} px")


def _count(source: Source, limit: int | None) -> int:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    return len(source) if limit is None else min(limit, len(source))


def _crop_set(source: Source, size: int, n: int, per_image: int, plans: Callable[[int], list[CropPlan]],
              workers: int | None, report: Callable[[str], None] | None) -> tuple[np.ndarray, float, int]:
    """(images (n * per_image, size, size, 3) uint8, seconds, workers): image i's crops (``plans(i)``) at
    rows i * per_image onwards. At most 4 x ``workers`` images are in flight, so a folder of any size
    queues no more than that; the first error (a DataError naming the file) stops the rest."""
    workers = max(1, min(workers or min(8, os.cpu_count() or 1), n))
    images = np.empty((n * per_image, size, size, 3), np.uint8)   # RGB, 0..255
    reduced = hasattr(source, "read_reduced")

    def fill(i: int) -> None:
        images[i * per_image:(i + 1) * per_image] = crops_of(source, i, plans(i), size, reduced)

    start, pending, submitted = time.perf_counter(), deque(), 0
    pool = ThreadPoolExecutor(workers, thread_name_prefix="photo-crops")
    try:
        for done in range(n):
            while submitted < n and submitted - done < 4 * workers:
                pending.append(pool.submit(fill, submitted))
                submitted += 1
            pending.popleft().result()   # in order: image `done`
            if report is not None and n > PROGRESS_EVERY and (done + 1) % PROGRESS_EVERY == 0:
                report(f"  {done + 1}/{n} photos cropped ({time.perf_counter() - start:.0f} s)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return images, time.perf_counter() - start, workers
