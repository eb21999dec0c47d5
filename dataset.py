"""CIFAR-10 data: reading image folders and batch files, and the Keras batch generator.

Sources (detected automatically by :func:`load_images`):

1. A folder of images named as in the original project, ``img-<index>-<label>.png``
   (label = CIFAR-10 class name); any other image file is read with an unknown label.
   Sub-folders are searched too; files that are not images are ignored.
2. A CIFAR-10 "python version" batch folder (``data_batch_1`` ... ``data_batch_5``,
   ``test_batch``, ``batches.meta``), such as a real download or
   ``../shared/data/cifar10-subset``.

Every image is decoded once into memory as uint8 (N, S, S, 3) and converted to the
network encoding once, vectorized (see ``colorspace``); batches are then slices by
index, so the generator is never the bottleneck.

Command line::

    python dataset.py download [--dest data]     # official CIFAR-10 python tarball, checked
    python dataset.py export --data DIR --split train --out data/png/train

A library module (layer 1 of the layout: it may import ``core`` only) that is also a script.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import pickle
import re
import sys
import tarfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

from core import colorspace

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
MAX_PIXELS = 40_000_000   # larger images are refused before decoding (decompression bombs)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
COLOR_SPACES = ("LAB", "RGB", "fusion", "features")

ROOT = Path(__file__).resolve().parent
SAMPLE_DIR = ROOT / "data" / "sample"              # shipped: train/ and val/ PNGs
DEFAULT_DATA_DIR = ROOT / "data" / "cifar-10-batches-py"   # where `download` unpacks

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"   # published on the CIFAR-10 page

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

    def subset(self, n: int) -> "ImageSet":
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
        except Exception as err:   # truncated or garbled file
            raise DataError(f"{file}: cannot read this CIFAR-10 batch file ({type(err).__name__}); "
                            "re-download it with `python dataset.py download`") from None


class _CifarUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batches(path: Path, split: str = "train") -> ImageSet:
    images, labels, names = [], [], []
    for file in batch_files(path, split):
        batch = _unpickle_batch(file)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            lab = np.asarray(batch[b"labels"], dtype=np.int64)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{file}: not a CIFAR-10 batch file (no b'data'/b'labels'); "
                            "re-download it with `python dataset.py download`") from None
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


def read_image(file: Path, size: int) -> np.ndarray:
    """Any Pillow image -> (size, size, 3) uint8 RGB.

    Grayscale, palette and RGBA images are converted to RGB (alpha dropped). Other sizes are
    resized with area averaging (Keras' ``target_size`` in the original used nearest neighbour,
    which aliases when shrinking photos).
    """
    try:
        with Image.open(file) as img:
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise DataError(f"{file}: {img.size[0]}x{img.size[1]} pixels, above the limit of "
                                f"{MAX_PIXELS / 1e6:g} megapixels; downscale it or remove it from the folder")
            if img.size != (size, size):
                img.draft("RGB", (size, size))   # JPEG: decode at reduced scale, much faster
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BOX if min(img.size) >= size else Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{file}: cannot read this image ({err}); delete or replace the file") from None


def read_image_folder(path: Path, image_size: int = 32) -> ImageSet:
    files = image_files(path)
    if not files:
        raise DataError(f"{path}: no image files (.png, .jpg, ...) in this folder; point --data at a "
                        "folder of images or at a CIFAR-10 batch folder")
    labels = np.array([parse_label(f) for f in files], dtype=np.int64)
    # Pillow releases the GIL while decoding large images, so threads decode photos in parallel; one
    # contiguous share of the files per thread (a task per file cost more than it saved on 32 px PNGs).
    workers = min(8, os.cpu_count() or 1, len(files))
    shares = [files[i * len(files) // workers:(i + 1) * len(files) // workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(lambda share: [read_image(f, image_size) for f in share], shares))
    return ImageSet(np.stack([im for share in decoded for im in share]), labels, [f.stem for f in files], str(path))


def load_images(path: str | os.PathLike, split: str = "train", image_size: int = 32) -> ImageSet:
    """Read a batch folder (``split`` selects batches) or an image folder (``split`` ignored)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such folder; pass --data with a folder of images or a CIFAR-10 "
                        "batch folder (or run `python dataset.py download`)")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; pass --data with a folder of images or a CIFAR-10 batch folder")
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


def load_data(path: Path | None, split: str, image_size: int, limit: int | None, kind: str = "train",
              announce: bool = True) -> ImageSet:
    """The images at ``path`` (``split`` for batch folders), or the default data when ``path`` is None;
    the first ``limit`` only. ``announce`` says so when the bundled sample stands in for CIFAR-10."""
    if path is None:
        path, split = default_data(kind)
        if announce and path.is_relative_to(SAMPLE_DIR):
            print(f"no --data given and {relative(DEFAULT_DATA_DIR)} not found: using the bundled sample "
                  f"{relative(path)} (`python dataset.py download` fetches full CIFAR-10)")
    data = load_images(path, split, image_size)
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be positive, got {limit}")
        data = data.subset(limit)
    return data


class CifarGenerator(keras.utils.PyDataset):
    """Batches for training and prediction, as the original's generator.

    ``color_space``:
      * ``"LAB"``    -> ``(X, Y)``: X (B, S, S, 1) L/100 in [0, 1]; Y (B, S, S, 2) (ab+128)/255 in [0, 1]
      * ``"fusion"`` -> ``((X, prior), Y)``: prior (B, D), the one-hot label (D = 10) unless a
        ``prior`` array (N, D) is given (the classifier prior of fusion_resnet)
      * ``"features"`` -> ``((X, *taps), Y)``: ``prior`` is a list of per-image feature maps (N, h, w, C)
        (effnet_unet's encoder taps, stored float16, served float32). With ``flip_prior`` (the same
        maps of the mirrored images) a training generator mirrors each image with probability 1/2,
        drawn again every epoch: X and Y are flipped left-right and the mirrored maps served.
      * ``"RGB"``    -> ``(color, gray3)``: both (B, S, S, 3) in [-1, 1] (the GAN's encoding)
      * ``"LAB_SYM"`` -> ``(ab, L)`` in [-1, 1] for the LAB GAN (ab/128, L/50 - 1)

    ``target_transform`` (LAB and features) maps the whole Y (N, S, S, 2) once, at construction, to
    what the loss wants (effnet_unet's classification head: packed soft targets, (N, S, S, 11) from
    ``core.ab_bins.pack_targets``); it must work pixel by pixel, so that flips commute with it.

    With ``is_training=False`` each batch also carries the file names as a third element.
    ``len()`` is ceil(N / batch_size); the last batch is smaller. When training with
    ``shuffle``, the order is reshuffled at each epoch end (Keras also calls ``on_epoch_end``
    once before epoch 0, which only reshuffles). ``__getitem__`` has no side effects.
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
        self._rng = np.random.default_rng(seed)
        self.index = np.arange(len(self.data))
        self.target_transform = target_transform
        self.flip_taps = None if flip_prior is None else self._tap_arrays(flip_prior)
        self.mirrored = np.zeros(len(self.data), bool)   # which images this epoch serves mirrored
        self.on_epoch_end()   # shuffled from the start: a manual loop need not call this first
        self.arrays = self._encode(prior)

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
        idx = self.index[i * self.batch_size:(i + 1) * self.batch_size]
        arrays = [a[idx] for a in self.arrays]
        if self.color_space == "features":
            arrays = self._mirror(idx, arrays)
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

    def _mirror(self, idx: np.ndarray, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Features batch: the mirrored images of this epoch flipped (X, Y) and their own taps; float32 taps."""
        x, *taps, y = arrays                                  # fancy indexing made copies: safe to edit
        flip = self.mirrored[idx]
        if flip.any():
            x[flip], y[flip] = x[flip][:, :, ::-1], y[flip][:, :, ::-1]
            for tap, mirrored in zip(taps, self.flip_taps):
                tap[flip] = mirrored[idx[flip]]
        return [x, *(t.astype(np.float32) for t in taps), y]

    def on_epoch_end(self):
        if self.is_training and self.shuffle:
            self._rng.shuffle(self.index)
        if self.is_training and self.flip_taps is not None:
            self.mirrored = self._rng.random(len(self.index)) < 0.5


# ---- command line ------------------------------------------------------------

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download", help="fetch the official CIFAR-10 python tarball and unpack it")
    p.add_argument("--dest", type=Path, default=DEFAULT_DATA_DIR.parent)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before giving up on the network")
    p = sub.add_parser("export", help="write PNGs named img-<index>-<label>.png from a batch folder")
    p.add_argument("--data", type=Path, required=True, help="CIFAR-10 batch folder (or image folder)")
    p.add_argument("--split", default="train", help="train, test, or batch numbers such as 1-4")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None, help="write only the first N images")
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            download(args.dest, args.timeout)
        else:
            n = export_png(load_images(args.data, args.split), args.out, args.limit)
            print(f"wrote {n} PNGs to {args.out}")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
