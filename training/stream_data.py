"""``--stream-crops``: effnet_unet trained on fresh random crops of the photos every epoch.

A crop bank (``training.photo_data``) cuts K crops of each photo once and caches their encoder taps:
cheap per epoch, but the same N x K crops every epoch (small photo sets overfit them) and all of
them in memory (ImageNet-size folders do not fit). Streaming serves batch i of epoch e as

* the crops ``loaders.photos.PhotoCrops(photos, --image-size, batch, seed, scale=--crop-scale,
  flip=True).epoch_batch(e, i)``: other crops every epoch, mirrored by the loader. The taps are
  computed on the crops as served, so no mirrored-taps cache is needed;
* the frozen encoder's taps of those crops, computed as cached taps are
  (``inference.colorizer.encoder_features``: ``priors.features`` at the run's encoder size), not cached;
* the packed targets with the run's class rebalancing weights (``encoder_data.targets``), and with
  ``--hints`` simulated hints (``core.hints``' training protocol), each image's drawn from
  (seed, epoch, batch, its place in the global batch).

All of it is a pure function of (seed, e, i) and the photos, so the trainers' ``StepStream`` and
exact mid-epoch resumes work as with cached taps. :class:`StreamGenerator` reads ahead ``prefetch``
batches on a thread while the caller trains; it holds ``prefetch + 1`` batches (one more for a
moment after a jump, such as a resume: the batch in progress is finished, then dropped) plus one
decoded photo per crop worker, whatever the folder's size (the folder itself: its list of names,
about 40 bytes a file).

Class rebalancing: measured once, before training, on a fixed sample (:func:`rebalancing`), and
recorded in config.json (a resume reads it there). Validation, as for a crop bank: the largest
centered square of each photo, a fixed set whose taps are cached.

config.json's ``data``: ``stream_crops: true``, ``crops`` (the folder, the number of photos, the
scale and ratio ranges, the image size) and a ``fingerprint`` of the file list (names and sizes in
bytes: no photo is decoded, so it is cheap for a million files). ``--resume`` stops with one line if
the count or the fingerprint differ: other photos would be other batches.

Sharding (``--strategy multiworker``): :class:`StreamGenerator` accepts ``shard=(worker, count)``
and then serves that worker's contiguous slice of every global batch (crops, taps, targets and
hints: the slices in order make up the global batch). The session gives each worker its own
(``training.distribute.per_worker_stream``, one input pipeline per worker), so each worker decodes
and encodes only its slice.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from core import ab_bins, colorspace, hints
from inference.colorizer import encoder_features, encoder_setup
from loaders import photos
from loaders.cifar import DataError, ImageSet, check_limit, data_source, relative
from training import checkpointing, encoder_data, photo_data

# Class rebalancing's sample (recorded in config.json): epoch 0's crops of the first REBALANCING_PHOTOS
# photos in epoch 0's order (the crops epoch 0 trains on first), every k-th pixel each way with
# k = ceil(image size / REBALANCING_SIDE), so at most 64 x 64 pixels of each: the distribution (the nearest of
# 261 bins per pixel) cost 15 ms per 64 x 64 crop (measured 2026-12-07 on 2 busy cores), so 2,000 crops of any
# size about 30 s, once per run (all the pixels of 224 px crops: 12 times as many).
REBALANCING_PHOTOS = 2000
REBALANCING_SIDE = 64
SAMPLES = 8           # images of the sample grids when there is no validation set
_HINT_STREAM = 3      # seed stream of the hints (loaders.photos' crops use 2)


class StreamPhotos:
    """The training photos of a ``--stream-crops`` run, as the session handles training data: ``len()``
    (photos), ``description``, ``fingerprint()``, the record of config.json; nothing is decoded."""

    def __init__(self, source: photos.Source, path: Path, split: str, image_size: int, scale, ratio,
                 limit: int | None = None):
        self.source = source if limit is None or limit >= len(source) else _First(source, limit)
        self.path, self.split, self.image_size, self.limit = Path(path), split, int(image_size), limit
        self.scale, self.ratio = (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1]))
        self.description = (f"crops of {relative(self.path)} streamed: {len(self)} photos, fresh random crops every "
                            f"epoch at {self.image_size} px, scale {self.scale[0]:g}-{self.scale[1]:g}")
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.source)

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self) // batch_size   # PhotoCrops drops an epoch's incomplete last batch

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = file_list_fingerprint(self.source)
        return self._fingerprint

    def loader(self, batch_size: int, seed: int, size: int | None = None, **options) -> photos.PhotoCrops:
        """PhotoCrops of these photos at the run's ranges and size (or ``size``: the same boxes cut at another
        size; ``options``: flip, shard, workers, prefetch)."""
        return photos.PhotoCrops(self.source, size or self.image_size, batch_size, seed, scale=self.scale,
                                 ratio=self.ratio, **options)

    def record(self) -> dict:
        """config.json's ``data.crops``: what reopens these photos and draws the same crops with the run's seed."""
        return {"photos": str(self.path), "split": self.split, "n_photos": len(self), "limit": self.limit,
                "scale": list(self.scale), "ratio": list(self.ratio), "image_size": self.image_size, "flip": True}

    def samples(self, size: int | None = None) -> ImageSet:
        """The largest centered square of the first SAMPLES photos (the sample grids without validation), at the
        run's size or ``size``."""
        return photos.center_crops(self.source, size or self.image_size, limit=SAMPLES, origin=relative(self.path),
                                   report=None)


class _First:
    """The first ``n`` images of a source (``--limit``); anything else is the source's."""

    def __init__(self, source: photos.Source, n: int):
        self._source, self._n = source, n

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name: str):
        return getattr(self._source, name)


def file_list_fingerprint(source: photos.Source) -> str:
    """SHA-256 of the photos' list: each file's relative path and size in bytes (directory entries and
    ``stat`` only, no decode); images held in memory (a CIFAR-10 batch folder): names and pixels."""
    digest = hashlib.sha256()
    path = getattr(source, "path", None)
    for i in range(len(source)):
        if path is not None:
            digest.update(f"{source.relative_path(i)}\0{os.stat(path(i)).st_size}\0".encode())
        else:
            digest.update(f"{source.name(i)}\0".encode() + np.ascontiguousarray(source.read(i)).tobytes())
    return digest.hexdigest()


# ---- batches -----------------------------------------------------------------

class StreamGenerator:
    """effnet_unet's training batches of streamed crops: ``epoch_batch(e, i)`` -> ((x, *taps[, local,
    global]), target), as ``encoder_data``'s generators serve cached taps; ``len()`` batches per epoch.

    x (B, S, S, 1) L / 100 in [0, 1]; taps float32 (B, h, w, C), one per encoder tap; target: packed
    soft targets (B, S, S, 11) (classification) or (B, S, S, 2) (ab + 128) / 255 (regression); with
    hints, local (B, S, S, core.hints.NETWORK_CHANNELS) and global (B, Q + 1). B is the shard's
    share of the global batch (``config["batch_size"] / shard count``).
    """

    def __init__(self, config: dict, data: StreamPhotos, seed: int, *, shard: tuple[int, int] = (0, 1),
                 workers: int | None = None, prefetch: int = 1):
        self.config, self.seed, self.prefetch = config, int(seed), prefetch
        self.size, self.detail_size = data.image_size, detail_size(config)
        self.crops = data.loader(config["batch_size"], seed, size=self.detail_size, flip=True, shard=shard, prefetch=0,
                                 workers=workers or min(8, os.cpu_count() or 1))
        self.first = shard[0] * self.crops.local_batch_size   # this shard's first place in a global batch
        self.hints = bool(config["model_options"].get("hints"))
        self.pack = encoder_data.targets(config)
        self.steps = checkpointing.steps_per_epoch(config, len(self))   # StepStream's epoch: where it wraps
        self._ahead: dict[tuple[int, int], Future] = {}   # (epoch, i) -> that batch, read ahead
        self._lock = threading.Lock()      # _ahead: Keras may read from another thread than the caller's
        self._encoder = threading.Lock()   # one encoder call at a time (the read-ahead's and a caller's)
        self._pool: ThreadPoolExecutor | None = None
        from priors.features import extractor
        extractor(*encoder_setup(config, (data.image_size,) * 2))   # built here, not inside a data thread

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        return self.epoch_batch(0, i)

    def epoch_batch(self, epoch: int, i: int):
        """Batch ``i`` of ``epoch``; starts reading the batches that follow it in StepStream's order."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range 0..{len(self) - 1}")
        with self._lock:
            ahead = self._ahead.pop((epoch, i), None)
            self._read_ahead(epoch, i)
        return ahead.result() if ahead is not None else self.batch(epoch, i)

    def _read_ahead(self, epoch: int, i: int) -> None:
        """Submit the ``prefetch`` batches after (epoch, i) (the next epoch's first after its last step,
        none past the run's last epoch); cancel what was read ahead for any other position."""
        wanted = []
        for _ in range(self.prefetch):
            epoch, i = (epoch, i + 1) if i + 1 < self.steps else (epoch + 1, 0)
            if epoch >= self.config["epochs"]:
                break
            wanted.append((epoch, i))
        for key in [k for k in self._ahead if k not in wanted]:   # a jump: a resume, Keras' look at two batches
            self._ahead.pop(key).cancel()
        for key in wanted:
            if key not in self._ahead:
                self._ahead[key] = self._executor().submit(self.batch, *key)

    def batch(self, epoch: int, i: int):
        """Batch ``i`` of ``epoch`` computed now, in this thread: a pure function of (seed, epoch, i)."""
        crops = self.crops.epoch_batch(epoch, i)          # (B, S, S, 3) uint8 (with detail (B, E, E, 3)), mirrored
        detail = None
        if self.detail_size:                              # the encoder's crops; the decoder's area-averaged from them
            detail, crops = crops, shrink(crops, self.size)
        x, y = colorspace.encode_lab(crops)               # (B, S, S, 1) L / 100, (B, S, S, 2) (ab + 128) / 255
        with self._encoder:
            taps = encoder_features(self.config, crops, cache=False, detail=detail)   # float16 (B, h, w, C) each
        inputs = [x, *(t.astype(np.float32) for t in taps)]
        if self.hints:
            inputs.extend(self._hints(x, y, epoch, i))
        return tuple(inputs), (y if self.pack is None else self.pack(y))

    def _hints(self, x: np.ndarray, y: np.ndarray, epoch: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(local, global) simulated hints, each image's from (seed, epoch, i, its place in the global batch):
        a shard's are the global batch's. Epoch + 1 as HintGenerator's (validation's -1 -> 0)."""
        ab = y * np.float32(255) - np.float32(128)        # (B, S, S, 2) LAB units, of the crops as served
        local = np.zeros((*ab.shape[:3], 3), np.float32)
        glob = np.zeros((len(ab), hints.n_bins() + 1), np.float32)
        for j in range(len(ab)):
            rng = np.random.default_rng([self.seed % 2**32, epoch + 1, i, self.first + j, _HINT_STREAM])
            local[j:j + 1], glob[j:j + 1] = hints.training_hints(ab[j:j + 1], _Distributions(ab[j:j + 1]), rng)
        return hints.network_local(local, x[..., 0] * np.float32(100)), glob   # L / 100 -> L

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:   # one thread: batches are read ahead in order, at most `prefetch` of them
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="stream-crops")
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Cancel what is read ahead, wait for the batch in progress, stop the crop workers."""
        with self._lock:
            for future in self._ahead.values():
                future.cancel()
            self._ahead.clear()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.crops.close()


def detail_size(config: dict) -> int | None:
    """The size crops are cut at for the encoder of a run with ``encoder_detail`` (its encoder size), else None."""
    options = config["model_options"]
    return int(options["encoder_size"]) if options.get("encoder_detail") else None


def shrink(images: np.ndarray, size: int) -> np.ndarray:
    """(B, E, E, 3) uint8 -> (B, size, size, 3) uint8, area-averaged (what the decoder sees of the encoder's crops)."""
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


class _Distributions:
    """Each image's own color distribution (Q,), computed only when ``hints.training_hints`` asks: it gives one
    to a quarter of the images (P_GLOBAL), and one costs 15 ms per 64 x 64 crop (REBALANCING_SIDE's note)."""

    def __init__(self, ab: np.ndarray):
        self.ab = ab   # (B, S, S, 2) LAB units

    def __getitem__(self, j: int) -> np.ndarray:
        return hints.distribution(self.ab[j])


def generators(config: dict, data: StreamPhotos, val: ImageSet | None, seed: int, shard: tuple[int, int] = (0, 1)):
    """(training generator, validation generator or None, the sample images' taps, the sample images: the
    validation images, else the largest centered squares of the first photos)."""
    train_gen = StreamGenerator(config, data, seed, shard=shard)
    print(f"streaming crops: {len(data)} photos, {len(train_gen)} batches of {config['batch_size']} per epoch, "
          "fresh crops every epoch, their encoder taps computed per batch (not cached)")
    size = detail_size(config)
    if val is not None:
        detail = None
        if size:   # the encoder sees the validation photos' centered squares at its own size
            record = config["val_data"]
            detail = photo_data.val_data(Path(record["path"]) if record["path"] else None, record["split"], size).images
        return train_gen, *encoder_data.val_generator(config, val, detail), val
    samples = data.samples()   # a few images: their taps are not worth a cache file
    detail = data.samples(size).images if size else None
    return train_gen, None, encoder_features(config, samples.images, cache=False, detail=detail), samples


# ---- train.py ----------------------------------------------------------------

def is_streamed(data_record: dict) -> bool:
    """Whether a config's data record is streamed crops."""
    return bool(data_record.get("stream_crops"))


def train_data(args) -> StreamPhotos:
    """The photos of --data (or the default data) as train.py's arguments ask; a one-line DataError for a
    folder without images or with fewer photos than one batch, before the run folder is made."""
    check_limit(args.limit)
    path, split = data_source(args.data, args.split, "train")
    data = StreamPhotos(photos.open_source(path, split), path, split, args.image_size, photo_data.crop_scale(args),
                        photos.DEFAULT_RATIO, args.limit)
    data.loader(args.batch_size or 32, 0)   # checks the count and options now; decodes nothing
    return data


def record(data: StreamPhotos) -> dict:
    """The entries of config.json's ``data`` that say the run streams crops, and of what."""
    return {"stream_crops": True, "crops": data.record()}


def reload(data_record: dict) -> StreamPhotos:
    """The recorded photos, reopened; a one-line DataError if their count or file list changed."""
    crops = data_record["crops"]
    path = Path(crops["photos"])
    data = StreamPhotos(photos.open_source(path, crops["split"]), path, crops["split"], crops["image_size"],
                        crops["scale"], crops["ratio"], crops["limit"])
    if len(data) != crops["n_photos"] or data.fingerprint() != data_record["fingerprint"]:
        raise DataError(f"{path}: {len(data)} photos, file list {data.fingerprint()[:12]}; the run's: "
                        f"{crops['n_photos']}, {data_record['fingerprint'][:12]}: the photos changed since the run "
                        "started; restore them, or start a new run")
    return data


# ---- class rebalancing -------------------------------------------------------

def rebalancing(data: StreamPhotos, seed: int) -> dict:
    """config.json's class_rebalancing, from the sample REBALANCING_PHOTOS describes, measured once per run."""
    n, stride = min(len(data), REBALANCING_PHOTOS), math.ceil(data.image_size / REBALANCING_SIDE)
    bins = ab_bins.gamut_bins()
    total, done = np.zeros(len(bins)), 0   # (Q,) sum over chunks of (fraction of its pixels per bin) x (its crops)
    # Batches of one: the order of epoch 0 whatever the batch size. Unflipped: a flip moves no color.
    loader = data.loader(1, seed, flip=False, workers=min(8, os.cpu_count() or 1), prefetch=16)
    with loader, closing(loader.batches(0)) as crops:
        while done < n:
            chunk = np.concatenate(list(islice(crops, min(64, n - done))))   # (c, S, S, 3) uint8
            _, y = colorspace.encode_lab(chunk[:, ::stride, ::stride])        # (c, s, s, 2) in [0, 1]
            ab = y * np.float32(255) - np.float32(128)                        # LAB units
            total += ab_bins.empirical_distribution(ab, bins) * len(chunk)   # every crop has as many pixels
            done += len(chunk)
    sample = (f"epoch 0's crops of the first {n} photos in epoch 0's order"
              + (f", one pixel in {stride} each way" if stride > 1 else ""))
    return encoder_data.rebalancing_record(total / total.sum(), sample=sample)
