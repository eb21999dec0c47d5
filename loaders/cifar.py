"""CIFAR-10 data: reading image folders and batch files, and the Keras batch generator.

Sources (detected automatically by :func:`load_images`):

1. A folder of images named as in the original project, ``img-<index>-<label>.png``
   (label = CIFAR-10 class name); any other image file is read with an unknown label.
   Sub-folders are searched too; files that are not images are ignored. A file that cannot be
   read, and a class name that is not CIFAR-10's, each give one warning line naming the file: the
   file is skipped, the image is read without a label; the other files are used.
2. A CIFAR-10 "python version" batch folder (``data_batch_1`` ... ``data_batch_5``,
   ``test_batch``, ``batches.meta``), such as a real download or
   ``../shared/data/cifar10-subset``.

Every image is decoded once into memory as uint8 (N, S, S, 3) and converted to the
network encoding once, vectorized (see ``colorspace``); batches are then slices by
index, so the generator is never the bottleneck.

Its command line is the top-level script ``dataset.py``::

    python dataset.py download [--dest data]     # official CIFAR-10 python tarball, checked (download)
    python dataset.py export --data DIR --split train --out data/png/train    # (export_png)

A library module (layer 1 of the layout: it may import ``core`` only). Keras is imported only when
``CifarGenerator`` is first looked up, so that reading data and the scripts' argument checks do not
wait for Keras and its backend to load.
"""
from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import sys
import tarfile
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core import colorspace

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
MAX_PIXELS = 40_000_000   # larger images are refused before decoding (decompression bombs)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
COLOR_SPACES = ("LAB", "RGB", "fusion", "features")

ROOT = Path(__file__).resolve().parent.parent       # the project root (this file is loaders/cifar.py)
SAMPLE_DIR = ROOT / "data" / "sample"              # shipped: train/ and val/ PNGs
DEFAULT_DATA_DIR = ROOT / "data" / "cifar-10-batches-py"   # where `download` unpacks

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"   # published on the CIFAR-10 page

# Pillow warns about damaged EXIF blocks while reading them; decode_rgb ignores a damaged EXIF block
# anyway (the pixels are kept as stored), so the warning would only add noise to a one-line report.
warnings.filterwarnings("ignore", message=r"(Possibly )?[Cc]orrupt EXIF", category=UserWarning, module="PIL")

# img-<index>-<label>.<ext>; only the file's own name is parsed, never its folders.
_NAME_PATTERN = re.compile(r"^img-(\d+)-([^.]+)\.[A-Za-z]+$")


class DataError(Exception):
    """A problem with the user's data; the message is one line naming the path and the fix."""


@dataclass
class ImageSet:
    """Decoded images kept in memory."""
    images: np.ndarray           # (N, S, S, 3) uint8 RGB
    labels: np.ndarray           # (N,) int64 class index, -1 where unknown
    names: list[str]             # (N,) file stem of each image, used for --save-single
    description: str             # where the images came from, for configs and reports
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """SHA-256 of pixels and labels: the key of caches derived from this data."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(str(self.images.shape).encode())
            h.update(np.ascontiguousarray(self.images).tobytes())
            h.update(self.labels.astype(np.int64).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def subset(self, n: int) -> ImageSet:
        return ImageSet(self.images[:n], self.labels[:n], self.names[:n], f"{self.description} (first {n})")


# ---- labels ------------------------------------------------------------------

def parse_label(path: str | os.PathLike) -> int:
    """Class index from a file name ``img-<index>-<label>.png``; -1 for other names.

    Raises DataError for a name in the original pattern whose label is not a CIFAR-10 class.
    """
    name = Path(path).name
    match = _NAME_PATTERN.match(name)
    if not match:
        return -1
    label = match.group(2).lower()
    if label not in CLASS_NAMES:
        raise DataError(f"{path}: unknown class name '{label}' in the file name; "
                        f"use one of {', '.join(CLASS_NAMES)}, or rename the file")
    return CLASS_NAMES.index(label)


def one_hot(labels: np.ndarray, n: int = len(CLASS_NAMES)) -> np.ndarray:
    """(N,) int -> (N, n) float32 one-hot."""
    return np.eye(n, dtype=np.float32)[labels]


# ---- CIFAR-10 batch folders --------------------------------------------------

def is_batch_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "batches.meta").exists() or any(path.glob("data_batch_*"))
                              or (path / "test_batch").exists())


def batch_files(path: Path, split: str) -> list[Path]:
    """Batch files for a split: 'train' (every data_batch_*), 'test', or numbers like '1-4' / '5' / '1,3'."""
    if split == "train":
        files = sorted(path.glob("data_batch_*"))
    elif split == "test":
        files = [path / "test_batch"]
    else:
        files = [path / f"data_batch_{i}" for i in _parse_batch_numbers(split)]
    missing = [f.name for f in files if not f.exists()]
    if not files or missing:
        raise DataError(f"{path}: no CIFAR-10 batch file for split '{split}' "
                        f"(missing: {', '.join(missing) or 'data_batch_*'}); "
                        "use --split train, test, or batch numbers such as 1-4")
    return files


def _parse_batch_numbers(spec: str) -> list[int]:
    numbers: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            numbers.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise DataError(f"bad split '{spec}': use train, test, or batch numbers such as 1-4 or 1,2,5") from None
    return numbers


def _unpickle_batch(file: Path) -> dict:
    # The official CIFAR-10 files are pickles. Read them with an unpickler that can build only
    # plain containers and NumPy arrays, so a tampered file cannot run code.
    with open(file, "rb") as f:
        try:
            return _CifarUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as err:
            raise DataError(f"{file}: not a CIFAR-10 batch file ({err}); re-download it "
                            "with `python dataset.py download`") from None
        except Exception as err:   # noqa: BLE001 -- truncated or garbled file
            raise DataError(f"{file}: cannot read this CIFAR-10 batch file ({type(err).__name__}); "
                            "re-download it with `python dataset.py download`") from None


class _CifarUnpickler(pickle.Unpickler):
    _ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                          ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                          ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")})

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def _batch_arrays(batch, file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (N, 3072) uint8, labels (N,) int64 in 0..9) of an unpickled batch; DataError if it is not one."""
    try:
        data = np.asarray(batch[b"data"])
        lab = np.asarray(batch[b"labels"])
        ok = (data.ndim == 2 and data.shape[1] == 3 * 32 * 32 and lab.shape == (len(data),)
              and np.issubdtype(data.dtype, np.integer) and np.issubdtype(lab.dtype, np.integer)
              and data.min(initial=0) >= 0 and data.max(initial=0) <= 255
              and lab.min(initial=0) >= 0 and lab.max(initial=0) < len(CLASS_NAMES))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        ok = False
    if not ok:
        raise DataError(f"{file}: not a CIFAR-10 batch file (b'data' must be N x 3072 bytes and b'labels' "
                        "N class numbers 0-9); re-download it with `python dataset.py download`")
    return data.astype(np.uint8), lab.astype(np.int64)


def read_cifar_batches(path: Path, split: str = "train") -> ImageSet:
    images, labels, names = [], [], []
    for file in batch_files(path, split):
        batch = _unpickle_batch(file)
        data, lab = _batch_arrays(batch, file)
        # (N, 3072) = 1024 R, 1024 G, 1024 B, row-major -> (N, 32, 32, 3)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
        offset = sum(len(x) for x in names)
        names.append([f"img-{offset + i}-{CLASS_NAMES[c]}" for i, c in enumerate(lab)])
    return ImageSet(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels),
                    [n for part in names for n in part], f"{path} [{split}]")


# ---- image folders -----------------------------------------------------------

def image_files(path: Path) -> list[Path]:
    """Image files under a folder, recursively, in a stable order; other files are ignored."""
    return sorted((p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                  key=lambda p: _natural_key(p.relative_to(path)))


def _natural_key(rel: Path):
    # img-2 before img-10, so the order matches the CIFAR index.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(rel))]


def open_image(path: Path) -> Image.Image:
    """Open lazily (header only) and refuse images above MAX_PIXELS before any pixel is decoded.

    Pillow's own guard (``Image.MAX_IMAGE_PIXELS``; ``colorize.py`` sets it to MAX_PIXELS) raises
    DecompressionBombError above twice that; below, our check gives the clearer message.
    """
    try:
        with warnings.catch_warnings():
            # The warning Pillow gives between MAX_IMAGE_PIXELS and twice it: checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: refused, too many pixels ({err})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (Pillow cannot identify this file)") from None
    except Exception as err:   # noqa: BLE001 -- OSError, or a parser's error on a damaged header
        raise DataError(f"{path}: cannot open ({_one_line(err)})") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise DataError(f"{path}: {w}x{h} is {w * h / 1e6:.1f} megapixels, above the limit of "
                        f"{MAX_PIXELS / 1e6:g}; downscale it first")
    return img


def decode_rgb(img: Image.Image, path: Path) -> Image.Image:
    """Decode the pixels (any mode) into an 8-bit RGB image, EXIF orientation applied.

    Any failure of Pillow's decoders (truncated or corrupt data raise OSError, SyntaxError,
    EOFError, ValueError, struct.error... depending on the format) becomes one DataError line.
    Animated images give their first frame; alpha is dropped.
    """
    try:
        img.load()
    except MemoryError:
        raise DataError(f"{path}: not enough memory to decode this image") from None
    except Exception as err:   # noqa: BLE001 -- only Pillow's decoding runs in this block
        raise DataError(f"{path}: cannot decode this image ({_one_line(err)}); the file may be truncated "
                        "or damaged") from None
    try:
        img = ImageOps.exif_transpose(img)   # as viewers show it (phone photos are often stored sideways)
    except Exception:   # noqa: BLE001 -- damaged EXIF: the pixels are fine, keep them as stored
        pass
    try:
        if img.mode.startswith("I") or img.mode == "F":
            img = _wide_to_8bit(img)         # convert("RGB") would clip 16-bit values at 255
        elif img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")        # what Pillow asks for (it warns on a direct P -> RGB)
        return img.convert("RGB")            # gray, palette, CMYK, alpha (dropped) -> RGB
    except Exception as err:   # noqa: BLE001 -- a mode Pillow cannot turn into RGB, or late decoding
        raise DataError(f"{path}: cannot convert this {img.mode} image to RGB ({_one_line(err)})") from None


def _wide_to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float gray -> 8-bit "L": 16-bit by 255/65535, floats in [0, 1] by 255.

    Modes I;16* are 16-bit by definition; mode I (32-bit) is taken as 16-bit data when a value
    exceeds 255 (how Pillow opens 16-bit PNGs and TIFFs), else as 8-bit values.
    """
    a = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        a = a * 255.0 if a.max(initial=0.0) <= 1.0 else a
    elif img.mode.startswith("I;16") or a.max(initial=0.0) > 255:
        a = a / 257.0   # 65535 / 255
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


def read_image(file: Path, size: int) -> np.ndarray:
    """Any image Pillow reads -> (size, size, 3) uint8 RGB; DataError (one line naming the file) if not.

    Grayscale, 16-bit, palette, CMYK and RGBA images are converted to RGB (alpha dropped), EXIF
    rotation applied. Other sizes are resized with area averaging (Keras' ``target_size`` in the
    original used nearest neighbour, which aliases when shrinking photos).
    """
    with open_image(file) as img:
        if img.size != (size, size):
            try:
                img.draft("RGB", (size, size))   # JPEG: decode at reduced scale, much faster
            except Exception:   # noqa: BLE001 -- draft is only an optimization
                pass
        rgb = decode_rgb(img, file)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.BOX if min(rgb.size) >= size else Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def read_image_folder(path: Path, image_size: int = 32) -> ImageSet:
    """Every readable image under ``path``; each unreadable one is skipped with a warning naming it."""
    files = image_files(path)
    if not files:
        raise DataError(f"{path}: no image files (.png, .jpg, ...) in this folder; point --data at a "
                        "folder of images or at a CIFAR-10 batch folder")
    # Pillow releases the GIL while decoding large images, so threads decode photos in parallel; one
    # contiguous share of the files per thread (a task per file cost more than it saved on 32 px PNGs).
    workers = min(8, os.cpu_count() or 1, len(files))
    shares = [files[i * len(files) // workers:(i + 1) * len(files) // workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = [item for share in pool.map(lambda share: [_try_read(f, image_size) for f in share], shares)
                   for item in share]
    problems = [str(item) for item in decoded if isinstance(item, DataError)]
    good = [(f, im) for f, im in zip(files, decoded) if not isinstance(im, DataError)]
    _warn(problems, "skipped")
    if not good:
        raise DataError(f"{path}: none of its {len(files)} image file(s) could be read (the first: "
                        f"{problems[0]}); replace them, or point --data elsewhere")
    labels, unlabeled = [], []
    for f, _ in good:
        try:
            labels.append(parse_label(f))
        except DataError as err:   # a name in the original pattern with an unknown class: keep the image
            labels.append(-1)
            unlabeled.append(str(err))
    _warn(unlabeled, "read without a class label")
    description = str(path) + (f" ({len(problems)} unreadable file(s) skipped)" if problems else "")
    return ImageSet(np.stack([im for _, im in good]), np.array(labels, dtype=np.int64), [f.stem for f, _ in good],
                    description)


def _try_read(file: Path, size: int):
    try:
        return read_image(file, size)
    except DataError as err:
        return err


def _warn(messages: list[str], outcome: str, most: int = 5) -> None:
    """One warning line per problem, ``most`` at most, then how many more (a folder of 10,000 odd names
    would otherwise bury everything else)."""
    for message in messages[:most]:
        print(f"warning: {message}; {outcome}", file=sys.stderr)
    if len(messages) > most:
        print(f"warning: ... and {len(messages) - most} more file(s) {outcome}", file=sys.stderr)


def check_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a folder, else the DataError load_images would give (scripts call
    it on --data before loading a model, so a mistyped path is said at once)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such folder; pass --data with a folder of images or a CIFAR-10 "
                        "batch folder (or run `python dataset.py download`)")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; pass --data with a folder of images or a CIFAR-10 batch folder")
    return path


def load_images(path: str | os.PathLike, split: str = "train", image_size: int = 32) -> ImageSet:
    """Read a batch folder (``split`` selects batches) or an image folder (``split`` ignored)."""
    path = check_folder(path)
    if is_batch_folder(path):
        data = read_cifar_batches(path, split)
        if image_size != 32:
            data.images = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size),
                                                                          Image.BILINEAR)) for im in data.images])
        return data
    return read_image_folder(path, image_size)


# ---- the generator -----------------------------------------------------------

def relative(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it (for messages)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def default_data(kind: str) -> tuple[Path, str]:
    """(path, split) used when --data is not given: the downloaded CIFAR-10, else the bundled sample.

    kind is "train" or "val"; for the download, validation is the official test batch.
    """
    if DEFAULT_DATA_DIR.exists():
        return DEFAULT_DATA_DIR, "train" if kind == "train" else "test"
    return SAMPLE_DIR / ("train" if kind == "train" else "val"), "train"


def data_source(path: Path | None, split: str, kind: str = "train", announce: bool = True) -> tuple[Path, str]:
    """(path, split) to read: as given, or the default data's (:func:`default_data`) when ``path`` is None;
    ``announce`` says so when the bundled sample stands in for CIFAR-10."""
    if path is None:
        path, split = default_data(kind)
        if announce and path.is_relative_to(SAMPLE_DIR):
            print(f"no --data given and {relative(DEFAULT_DATA_DIR)} not found: using the bundled sample "
                  f"{relative(path)} (`python dataset.py download` fetches full CIFAR-10)")
    return path, split


def check_limit(limit: int | None) -> None:
    """DataError (one line) for a --limit that selects nothing; None: no limit."""
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be positive, got {limit}")


def load_data(path: Path | None, split: str, image_size: int, limit: int | None, kind: str = "train",
              announce: bool = True) -> ImageSet:
    """The images at ``path`` (``split`` for batch folders), or the default data when ``path`` is None;
    the first ``limit`` only. ``announce`` says so when the bundled sample stands in for CIFAR-10."""
    check_limit(limit)
    path, split = data_source(path, split, kind, announce)
    data = load_images(path, split, image_size)
    return data if limit is None else data.subset(limit)


def __getattr__(name: str):
    """``cifar.CifarGenerator``, made at first use (PEP 562).

    It subclasses ``keras.utils.PyDataset``, and importing Keras loads its backend (TensorFlow:
    seconds): made at import, it would make every script pay that before parsing its arguments.
    """
    if name == "CifarGenerator":
        generator = _make_cifar_generator()
        globals()[name] = generator   # made once: later look-ups find it without coming here
        return generator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_cifar_generator() -> type:
    import keras
    # _CifarBatches first: its __len__, __getitem__ and on_epoch_end override PyDataset's, and its
    # super().__init__ reaches PyDataset's (workers, multiprocessing, max_queue_size).
    return type("CifarGenerator", (_CifarBatches, keras.utils.PyDataset),
                {"__module__": __name__, "__qualname__": "CifarGenerator", "__doc__": _CifarBatches.__doc__})


class _CifarBatches:
    """Batches for training and prediction, as the original's generator (``CifarGenerator``: this,
    with ``keras.utils.PyDataset`` as its other base).

    ``color_space``:
      * ``"LAB"``    -> ``(X, Y)``: X (B, S, S, 1) L/100 in [0, 1]; Y (B, S, S, 2) (ab+128)/255 in [0, 1]
      * ``"fusion"`` -> ``((X, prior), Y)``: prior (B, D), the one-hot label (D = 10) unless a
        ``prior`` array (N, D) is given (the classifier prior of fusion_resnet)
      * ``"features"`` -> ``((X, *taps), Y)``: ``prior`` is a list of per-image feature maps (N, h, w, C)
        (effnet_unet's encoder taps, stored float16, served float32). With ``flip_prior`` (the same
        maps of the mirrored images) a training generator mirrors each image with probability 1/2,
        drawn for every epoch from the seed (:func:`epoch_mirrored`): X and Y are flipped left-right and the
        mirrored maps served.
      * ``"RGB"``    -> ``(color, gray3)``: both (B, S, S, 3) in [-1, 1] (the GAN's encoding)
      * ``"LAB_SYM"`` -> ``(ab, L)`` in [-1, 1] for the LAB GAN (ab/128, L/50 - 1)

    ``target_transform`` (LAB and features) maps the whole Y (N, S, S, 2) once, at construction, to
    what the loss wants (effnet_unet's classification head: packed soft targets, (N, S, S, 11) from
    ``core.ab_bins.pack_targets``); it must work pixel by pixel, so that flips commute with it.

    With ``is_training=False`` each batch also carries the file names as a third element.
    ``len()`` is ceil(N / batch_size); the last batch is smaller. When training with
    ``shuffle``, the order is reshuffled at each epoch end (Keras also calls ``on_epoch_end``
    once before epoch 0, which only reshuffles). ``__getitem__`` has no side effects.

    The trainers address batches by epoch instead: :meth:`epoch_batch` (epoch, i) is batch i in
    that epoch's order, :func:`epoch_order` (a function of the seed and the epoch alone), so a run
    resumed in the middle of an epoch sees exactly the batches an uninterrupted run would.
    """

    def __init__(self, data, batch_size: int = 32, color_space: str = "LAB", shuffle: bool = True,
                 is_training: bool = True, prior: np.ndarray | None = None, split: str = "train",
                 image_size: int = 32, seed: int | None = None, flip_prior: list | None = None,
                 target_transform=None, **kwargs):
        super().__init__(**kwargs)
        if color_space not in COLOR_SPACES + ("LAB_SYM",):
            raise ValueError(f"color_space must be one of {COLOR_SPACES + ('LAB_SYM',)}, got {color_space!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data = data if isinstance(data, ImageSet) else load_images(data, split, image_size)
        self.batch_size = batch_size
        self.color_space = color_space
        self.shuffle = shuffle
        self.is_training = is_training
        self.seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**32)
        self.epoch = -1                        # the epoch whose order ``index`` holds (on_epoch_end)
        self.index = np.arange(len(self.data))
        self.target_transform = target_transform
        self.flip_taps = None if flip_prior is None else self._tap_arrays(flip_prior)
        self.mirrored = np.zeros(len(self.data), bool)   # which images this epoch serves mirrored
        self.on_epoch_end()   # shuffled from the start: a manual loop need not call this first
        self.arrays = self._encode(prior)
        self._order_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def _encode(self, prior) -> tuple[np.ndarray, ...]:
        """All samples encoded once: (inputs..., target)."""
        images = self.data.images
        if self.color_space == "RGB":
            color, gray3 = colorspace.encode_rgb(images)     # (N, S, S, 3) each, [-1, 1]
            return gray3, color
        if self.color_space == "LAB_SYM":
            l_sym, ab_sym = colorspace.encode_lab_symmetric(images)
            return l_sym, ab_sym
        x, y = colorspace.encode_lab(images)                  # (N, S, S, 1), (N, S, S, 2)
        if self.target_transform is not None:
            y = self.target_transform(y)
        if self.color_space == "LAB":
            return x, y
        if self.color_space == "features":
            return x, *self._tap_arrays(prior), y
        return x, self._prior_array(prior), y

    def _tap_arrays(self, taps) -> list[np.ndarray]:
        if not isinstance(taps, (list, tuple)) or not taps or any(
                np.ndim(t) != 4 or len(t) != len(self.data) for t in taps):
            raise ValueError(f"features need a list of (N={len(self.data)}, h, w, C) arrays")
        return list(taps)

    def _prior_array(self, prior) -> np.ndarray:
        if prior is None:
            unknown = np.flatnonzero(self.data.labels < 0)
            if len(unknown):
                raise DataError(f"{self.data.description}: {len(unknown)} image(s) have no class label "
                                f"(e.g. {self.data.names[unknown[0]]}); name files img-<index>-<class>.png "
                                "or use a model without a label prior")
            return one_hot(self.data.labels)                  # (N, 10)
        prior = np.asarray(prior, np.float32)
        if prior.ndim != 2 or len(prior) != len(self.data):
            raise ValueError(f"prior must have shape (N={len(self.data)}, D), got {prior.shape}")
        return prior

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range 0..{len(self) - 1}")
        return self._batch(self.index[i * self.batch_size:(i + 1) * self.batch_size], self.mirrored)

    def epoch_batch(self, epoch: int, i: int):
        """Batch ``i`` of ``epoch`` in that epoch's training order (:func:`epoch_order`)."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range 0..{len(self) - 1}")
        if self._order_cache is None or self._order_cache[0] != epoch:
            self._order_cache = (epoch, *self._epoch_plan(epoch))
        _, order, mirrored = self._order_cache
        return self._batch(order[i * self.batch_size:(i + 1) * self.batch_size], mirrored)

    def _batch(self, idx: np.ndarray, mirrored: np.ndarray):
        arrays = [a[idx] for a in self.arrays]
        if self.color_space == "features":
            arrays = self._mirror(idx, arrays, mirrored)
        *inputs, target = arrays
        if self.color_space == "RGB":
            batch = (target, inputs[0])                       # (color, gray3) as the original
        elif self.color_space == "LAB_SYM":
            batch = (target, inputs[0])                       # (ab, L)
        else:
            batch = (tuple(inputs) if len(inputs) > 1 else inputs[0], target)
        if not self.is_training:
            batch = batch + ([self.data.names[j] for j in idx],)
        return batch

    def _mirror(self, idx: np.ndarray, arrays: list[np.ndarray], mirrored: np.ndarray) -> list[np.ndarray]:
        """Features batch: the images ``mirrored`` marks flipped (X, Y) with their own taps; float32 taps."""
        x, *taps, y = arrays                                  # fancy indexing made copies: safe to edit
        flip = mirrored[idx]
        if flip.any():
            x[flip], y[flip] = x[flip][:, :, ::-1], y[flip][:, :, ::-1]
            for tap, mirrored in zip(taps, self.flip_taps):
                tap[flip] = mirrored[idx[flip]]
        return [x, *(t.astype(np.float32) for t in taps), y]

    def on_epoch_end(self):
        if self.is_training and (self.shuffle or self.flip_taps is not None):
            self.epoch += 1
            self.index, self.mirrored = self._epoch_plan(self.epoch)

    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(order (N,), mirrored (N,) bool) of ``epoch``: functions of the seed and the epoch alone."""
        n = len(self.data)
        order = epoch_order(n, self.seed, epoch) if self.shuffle else np.arange(n)
        mirrored = epoch_mirrored(n, self.seed, epoch) if self.flip_taps is not None else np.zeros(n, bool)
        return order, mirrored


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """(n,) the order in which training visits n images in ``epoch``: a permutation drawn from
    (seed, epoch) alone, so it is the same whenever and however often it is asked for."""
    return np.random.default_rng([epoch, seed % 2**32]).permutation(n)


def epoch_mirrored(n: int, seed: int, epoch: int) -> np.ndarray:
    """(n,) bool: which images ``epoch`` serves mirrored (probability 1/2 each), from (seed, epoch)
    alone like :func:`epoch_order`, but from a stream of its own (the order does not change with it)."""
    return np.random.default_rng([epoch, seed % 2**32, 1]).random(n) < 0.5


# ---- download and export (the commands of dataset.py) ------------------------

def download(dest: Path, timeout: float = 20.0) -> Path:
    """Fetch and unpack the official tarball into dest/cifar-10-batches-py (checksum verified)."""
    dest.mkdir(parents=True, exist_ok=True)
    tarball = dest / "cifar-10-python.tar.gz"
    if not tarball.exists() or _md5(tarball) != CIFAR_MD5:
        print(f"downloading {CIFAR_URL} ...", flush=True)
        try:
            _fetch(CIFAR_URL, tarball, timeout)
        except (urllib.error.URLError, OSError) as err:
            raise DataError(f"cannot download CIFAR-10 ({getattr(err, 'reason', err)}); offline, point "
                            "--data at a local copy, e.g. ../shared/data/cifar10-subset, or the bundled "
                            f"sample {SAMPLE_DIR.relative_to(ROOT)}/train") from None
    digest = _md5(tarball)
    if digest != CIFAR_MD5:
        tarball.unlink()
        raise DataError(f"{tarball}: checksum mismatch (md5 {digest}, expected {CIFAR_MD5}); "
                        "the file was removed, run the download again")
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")   # "data" filter: no absolute paths or links out
    out = dest / "cifar-10-batches-py"
    print(f"CIFAR-10 ready in {out}")
    return out


def _fetch(url: str, target: Path, timeout: float) -> None:
    part = target.with_suffix(".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while chunk := response.read(1 << 20):
            f.write(chunk)
            done += len(chunk)
            if total:
                print(f"\r  {done / 2**20:6.1f} / {total / 2**20:.1f} MiB", end="", flush=True)
    print()
    part.replace(target)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_png(data: ImageSet, out: Path, limit: int | None = None) -> int:
    """Write images as PNGs named img-<index>-<label>.png, the original's layout."""
    out.mkdir(parents=True, exist_ok=True)
    n = len(data) if limit is None else min(limit, len(data))
    for i in range(n):
        label = CLASS_NAMES[data.labels[i]] if data.labels[i] >= 0 else "unknown"
        Image.fromarray(data.images[i]).save(out / f"img-{i}-{label}.png", optimize=True)
    return n

