"""``--crops-per-photo K``: the training photos as a fixed bank of crops, for any model.

Crop k = 0..K-1 of photo i is ``loaders.photos``' crop of (seed, epoch=k, index=i) at --image-size,
unflipped (``loaders.photos.crop_bank``): an ImageSet like CIFAR-10's, so training takes it
unchanged (effnet_unet: its taps computed once and cached under a hash of the pixels, flips with the
mirrored images' own taps, class rebalancing, simulated hints). Memory: N x K x image_size^2 x 3
bytes for N photos. ``--limit`` counts photos.

config.json records what rebuilds the bank (:func:`record`: the photos' folder, their number, K, the
scale and ratio ranges, next to the data's fingerprint and the run's seed). ``--resume`` rebuilds it
from that record and stops with one line if its fingerprint differs (the photos changed): the run
could not continue with the batches it would have seen.

Validation with --crops-per-photo is one crop per photo, its largest centered square resized to
--image-size (``loaders.photos.center_crops``): the same images at every evaluation, whatever the
seed, so validation losses compare across epochs and runs (random crops would draw other views per
seed); the whole scene at one scale, as the colorizer sees a photo; square, as the training crops
and batches are; and the largest square keeps the most of the photo without stretching it.
"""
from __future__ import annotations

from pathlib import Path

from core.runs import RunError
from loaders import photos
from loaders.cifar import DataError, ImageSet, check_limit, data_source, relative
from models import get_spec

CENTER = "largest centered square"   # the record of validation crops (config.json's val_data "crop")


def check_options(args) -> None:
    """RunError (one line) for --crops-per-photo, --stream-crops and --crop-scale values that make no crops;
    before Keras."""
    k, scale = getattr(args, "crops_per_photo", None), getattr(args, "crop_scale", None)
    stream = getattr(args, "stream_crops", False)
    if stream and k is not None:
        raise RunError("--stream-crops (fresh crops every epoch) and --crops-per-photo (a fixed bank of crops) are two "
                       "ways of training on photos: use one")
    if stream and get_spec(args.model).prior != "encoder":
        raise RunError(f"--stream-crops computes effnet_unet's encoder taps of every batch: only effnet_unet supports "
                       f"it, not {args.model} (use --crops-per-photo K)")
    if k is not None and k < 1:
        raise RunError(f"--crops-per-photo must be at least 1, got {k}")
    if scale is None:
        return
    low, high = scale
    if not (0 < low <= 1 and 0 < high <= 1):   # NaN fails too
        raise RunError(f"--crop-scale MIN MAX are fractions of the photo's area, in (0, 1]; got {low:g} {high:g}")
    if low > high:
        raise RunError(f"--crop-scale MIN MAX: MIN {low:g} is above MAX {high:g}")
    if k is None and not stream and not getattr(args, "resume", False):
        raise RunError("--crop-scale sets the scales of the crops: add --crops-per-photo K or --stream-crops")


def train_data(args, seed: int) -> ImageSet:
    """The crop bank of --data (or the default data) as train.py's arguments ask, drawn from ``seed``."""
    check_limit(args.limit)
    path, split = data_source(args.data, args.split, "train")
    return _bank(path, split, args.image_size, args.crops_per_photo, crop_scale(args), photos.DEFAULT_RATIO,
                 seed, args.limit)


def val_data(path: Path | None, split: str, image_size: int) -> ImageSet:
    """Validation images of a crop-bank run: the largest centered square of each (module docstring)."""
    path, split = data_source(path, split, "val", announce=False)
    return photos.center_crops(photos.open_source(path, split), image_size, origin=relative(path))


def record(args, data: ImageSet) -> dict:
    """The ``crop_bank`` entry of config.json's ``data``: what rebuilds the bank with the run's seed."""
    path, split = data_source(args.data, args.split, "train", announce=False)
    k = args.crops_per_photo
    return {"photos": str(path), "split": split, "n_photos": len(data) // k, "crops_per_photo": k,
            "scale": list(crop_scale(args)), "ratio": list(photos.DEFAULT_RATIO), "image_size": args.image_size}


def is_cropped(data_record: dict) -> bool:
    """Whether a config's data record is a crop bank or validation crops (else: images read whole)."""
    return "crop_bank" in data_record or data_record.get("crop") == CENTER


def reload(data_record: dict, image_size: int, seed: int) -> ImageSet:
    """The recorded crop bank, rebuilt (DataError in one line if it is not the run's: the photos
    changed), or the recorded validation crops (a warning if they changed, as for images read whole)."""
    if data_record.get("crop") == CENTER:
        data = val_data(Path(data_record["path"]) if data_record["path"] else None, data_record["split"], image_size)
        if data.fingerprint() != data_record["fingerprint"]:
            print(f"warning: the validation photos at {data_record['path']} changed since the run started")
        return data
    bank = data_record["crop_bank"]
    data = _bank(Path(bank["photos"]), bank["split"], image_size, bank["crops_per_photo"], tuple(bank["scale"]),
                 tuple(bank["ratio"]), seed, bank["n_photos"])
    if len(data) != data_record["n_images"] or data.fingerprint() != data_record["fingerprint"]:
        raise DataError(f"{bank['photos']}: its crop bank is not the run's ({len(data)} crops, fingerprint "
                        f"{data.fingerprint()[:12]}; the run's: {data_record['n_images']}, "
                        f"{data_record['fingerprint'][:12]}): the photos changed since the run started; "
                        "restore them, or start a new run")
    return data


def check_resume(args, config: dict, run_dir: Path) -> None:
    """RunError if --resume is given another --crops-per-photo, --stream-crops or --crop-scale than the run's:
    other crops would be other batches, and a resume continues with the run's own."""
    data = config["data"]
    bank = data.get("crop_bank")
    streamed = data.get("crops") if data.get("stream_crops") else None   # training.stream_data's record
    k, scale = getattr(args, "crops_per_photo", None), getattr(args, "crop_scale", None)
    if k is not None and k != (bank or {}).get("crops_per_photo"):
        had = (f"{bank['crops_per_photo']} crops per photo" if bank else "streamed crops (--stream-crops)" if streamed
               else "whole images (no --crops-per-photo)")
        raise RunError(f"{run_dir} was trained on {had}; --resume keeps its data (drop --crops-per-photo, or "
                       "start a new run)")
    if getattr(args, "stream_crops", False) and not streamed:
        raise RunError(f"{run_dir} was not trained on streamed crops; --resume keeps its data (drop --stream-crops, "
                       "or start a new run)")
    crops = bank or streamed
    if scale is not None and (crops is None or [float(v) for v in scale] != crops["scale"]):
        had = f"--crop-scale {crops['scale'][0]:g} {crops['scale'][1]:g}" if crops else "whole images (no crops)"
        raise RunError(f"{run_dir} was trained with {had}; --resume keeps its data (drop --crop-scale, or start "
                       "a new run)")


def crop_scale(args) -> tuple[float, float]:
    """--crop-scale as (MIN, MAX), or the loader's default range."""
    return photos.DEFAULT_SCALE if args.crop_scale is None else (float(args.crop_scale[0]), float(args.crop_scale[1]))


def _bank(path: Path, split: str, image_size: int, k: int, scale: tuple, ratio: tuple, seed: int,
          limit: int | None) -> ImageSet:
    return photos.crop_bank(photos.open_source(path, split), image_size, k, seed, scale=scale, ratio=ratio,
                            limit=limit, origin=relative(path))
