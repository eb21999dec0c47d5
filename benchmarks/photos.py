"""Photos: the costs of training on photos, for the choice between a cached crop bank and streaming crops.

Training on photos (``train.py --crops-per-photo K --image-size S``) builds a fixed bank of K crops per
photo (``loaders.photos.crop_bank``), runs the frozen EfficientNet-Lite0 encoder (``priors.features``,
at 4 x S px) once on the bank and once on its mirror images, caches the taps, and trains the decoder
(``models.effnet_unet``) on them. The alternative, streaming, draws fresh random crops every epoch
(``loaders.photos.PhotoCrops``) and runs the encoder on every batch. Per epoch of N crops:

    cached     N / decoder                                   (plus 2N / encoder once, before the first epoch)
    streaming  N / loader + N / encoder + N / decoder        (every epoch)

the rates measured here, one after the other (the sum assumes the three do not overlap; on 2 cores
they compete for the same CPUs, so an overlapping pipeline would gain little):

loader   crops/s and CPU ms per crop (``time.process_time``: all threads) of ``PhotoCrops.epoch_batch``
         (uint8 RGB crops, batch ``default_batch``, reduced JPEG decoding on) over whole epochs, per crop
         size and worker count, after one warm-up epoch (the page cache, the pool); the folder is
         BSDS500's train split (``../shared/data/bsds500/train``) when it is there, else generated
         481 x 321 JPEGs (smooth waves with noise), as many.
bank     seconds to build the crop bank, K crops per photo at the per-epoch crop size, every photo of the
         folder (``crop_bank`` with the CPUs as threads, as train.py builds it); median of the windows.
encoder  images/s of the frozen encoder's taps s4 s8 s16 s32 at batch 32 per encoder size, one batch
         as ``priors.features`` computes it: the gray input resized and normalized
         (``encoder_input`` from crops at a quarter of the size), ``predict_on_batch``, float16 taps.
         ImageNet weights when they are installed, else random weights (the same layers: the same cost).
decoder  training images/s of ``train_on_batch`` of effnet_unet with the shipped run's model options
         (pretrained/effnet_unet/config.json) as ``train.py --hints`` builds a new run (hint head
         attention_taps, decoder_local_hints off), per image size at batch 32, fresh random weights,
         on random crops' L, random taps of the right shapes, simulated hints (``core.hints``' training
         protocol) and packed soft targets with the shipped class rebalancing.

Summary: seconds per epoch of (photos x K) crops at the per-epoch crop size, cached and streaming, from
the rows above (the loader with its faster worker count, the encoder at 4 x that size).
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.settings import Context, Row, Settings, log
from benchmarks.workloads import failed_row, perf_row, release_models, throughput, timed

BSDS_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "bsds500" / "train"
TAPS = ("s4", "s8", "s16", "s32")   # the shipped run's (pretrained/effnet_unet/config.json)
SEED = 0


def photo_folder(ctx: Context) -> tuple[Path, str]:
    """(folder, what it is): BSDS500's train split if it is there (and the preset allows it), else JPEGs
    generated into the context's folder."""
    s = ctx.settings
    if s.photos_shared and BSDS_TRAIN.is_dir():
        return BSDS_TRAIN, f"BSDS500 train ({_relative(BSDS_TRAIN)})"
    w, h = s.photos_generated_size
    folder = ctx.tmp / f"photos-{w}x{h}"
    if not folder.is_dir():
        write_photos(folder, s.photos_generated, w, h)
    shared = "" if s.photos_shared else " (this preset's)"
    missing = f"; {_relative(BSDS_TRAIN)} not found" if s.photos_shared else ""
    return folder, f"{s.photos_generated} generated {w}x{h} JPEGs{shared}{missing}"


def write_photos(folder: Path, n: int, width: int, height: int) -> Path:
    """n JPEGs (quality 90): smooth colored waves, other phases per photo, with noise (texture to decode)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    for i in range(n):
        fx, fy, phase = rng.uniform(0.3, 2.0, 3), rng.uniform(-1.5, 1.5, 3), rng.uniform(0, 2 * np.pi, 3)
        waves = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (fx[c] * x + fy[c] * y) + phase[c]) for c in range(3)], -1)
        image = np.clip(waves * 255 + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"photo-{i:04d}.jpg", quality=90)
    return folder


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:   # another drive (Windows)
        return str(path)


# ---- loader ----------------------------------------------------------------------------------------

def loader_rate(loader, s: Settings) -> tuple[float, float]:
    """(crops/s, CPU ms per crop) of ``loader.epoch_batch`` over whole epochs: one warm-up epoch (with
    s.warmup), then s.windows windows of whole epochs, each of at least s.window_s; the median rate,
    the CPU time of all the windows over their crops."""
    batches = len(loader)
    if s.warmup:
        for i in range(batches):
            loader.epoch_batch(0, i)
    epoch, rates, cpu, crops = 1, [], 0.0, 0
    for _ in range(s.windows):
        wall, started, n = time.perf_counter(), time.process_time(), 0
        while True:
            for i in range(batches):
                loader.epoch_batch(epoch, i)
            n, epoch = n + batches * loader.batch_size, epoch + 1
            if time.perf_counter() - wall >= s.window_s:
                break
        rates.append(n / (time.perf_counter() - wall))
        cpu += time.process_time() - started
        crops += n
    return statistics.median(rates), 1000 * cpu / crops


def bench_loader(ctx: Context, folder: Path, what: str) -> tuple[list[Row], dict]:
    """Rows of PhotoCrops.epoch_batch per crop size and worker count; {(size, workers): crops/s}."""
    from loaders import photos
    s = ctx.settings
    source = photos.FolderSource(folder)
    rows, rates = [], {}
    for size in s.photos_crop_sizes:
        for workers in s.photos_workers:
            setting = f"{size} px, {workers} worker{'s' if workers > 1 else ''}, batch {s.default_batch}"
            log(f"photos: loader {setting} ...")
            try:
                with photos.PhotoCrops(source, size, s.default_batch, SEED, workers=workers) as loader:
                    rate, cpu_ms = loader_rate(loader, s)
            except Exception as err:   # noqa: BLE001 -- one failed measurement must not lose the others
                rows.append(failed_row("photos", "loader", setting, err))
                continue
            rates[size, workers] = rate
            rows.append(Row("photos", "loader: PhotoCrops.epoch_batch", setting, f"{rate:.1f} crops/s",
                            notes=f"CPU {cpu_ms:.2f} ms/crop (all threads); {what}, {len(source)} photos; uint8 RGB "
                                  f"crops, reduced JPEG decoding; median of {s.windows} window(s) of whole epochs "
                                  f"after a warm-up epoch"))
            log(f"photos: loader {setting}: {rate:.1f} crops/s, CPU {cpu_ms:.2f} ms/crop")
    return rows, rates


def bench_bank(ctx: Context, folder: Path, what: str) -> Row:
    """The crop bank of the folder: K crops per photo at the per-epoch size, as train.py builds it."""
    from loaders import photos
    s = ctx.settings
    size, k = s.photos_epoch_size, s.photos_bank_k
    source = photos.FolderSource(folder)
    workers = min(8, os.cpu_count() or 1)   # crop_bank's default: the CPUs, at most 8
    setting = f"K {k} at {size} px, {workers} threads"
    log(f"photos: crop bank {setting} ...")
    last = {}

    def build() -> None:
        last["bank"] = None   # the previous bank freed first
        last["bank"] = photos.crop_bank(source, size, k, SEED, workers=workers, report=None)
    try:
        times = [timed(build) for _ in range(s.windows)]
    except Exception as err:   # noqa: BLE001
        return failed_row("photos", "crop bank", setting, err)
    seconds, bank = statistics.median(times), last["bank"]
    log(f"photos: crop bank {setting}: {seconds:.3g} s")
    return Row("photos", "crop bank: loaders.photos.crop_bank", setting, f"{seconds:.3g} s",
               notes=f"{len(source)} photos x {k} = {len(bank)} crops ({bank.images.nbytes / 2**20:.1f} MiB), "
                     f"{len(bank) / seconds:.0f} crops/s; {what}; median of {len(times)}")


# ---- encoder and decoder -----------------------------------------------------------------------------

def encoder_model(size: int):
    """(the taps extractor at ``size`` px, a note on its weights): ImageNet's, else random ones."""
    from priors import PriorError, features
    try:
        return features.extractor(size, TAPS), "ImageNet weights"
    except PriorError as err:
        first = str(err).splitlines()[0][:120]
        return (features.extractor(size, TAPS, allow_random_weights=True),
                f"random weights (the ImageNet weights are unavailable: {first}; the same layers, the same cost)")


def encoder_step(size: int, batch: int, rng):
    """(step, model, weights note): one batch of taps at encoder size ``size`` as priors.features computes it."""
    import keras

    from models.effnet_options import ENCODER_SCALE
    from priors import features
    model, weights = encoder_model(size)
    crops = rng.integers(0, 256, (batch, size // ENCODER_SCALE, size // ENCODER_SCALE, 3), dtype=np.uint8)

    def step():
        out = model.predict_on_batch(features.encoder_input(crops, size))
        return [keras.ops.convert_to_numpy(v).astype(np.float16) for v in out]
    return step, model, weights


def bench_encoder(ctx: Context) -> tuple[list[Row], dict]:
    """Rows of the frozen encoder's taps per encoder size; {size: images/s}."""
    from benchmarks.flops import forward_flops
    from models.effnet_options import ENCODER_SCALE
    s = ctx.settings
    rows, rates = [], {}
    for size in s.photos_encoder_sizes:
        setting = f"{size} px, batch {s.photos_encoder_batch}"
        log(f"photos: encoder {setting} ...")
        try:
            step, model, weights = encoder_step(size, s.photos_encoder_batch, np.random.default_rng(SEED))
            rate = throughput(step, s.photos_encoder_batch, s)
            flops = forward_flops(model)
        except Exception as err:   # noqa: BLE001
            rows.append(failed_row("photos", "encoder", setting, err))
            continue
        rates[size] = rate
        rows.append(perf_row(ctx, "photos", "encoder: EfficientNet-Lite0 taps " + " ".join(TAPS), setting, rate,
                             flops, notes=f"{weights}; frozen, priors.features.extractor: encoder_input (gray, "
                                          f"resized from {size // ENCODER_SCALE} px crops, normalized) + "
                                          f"predict_on_batch + float16 taps; FLOPs: forward"))
        log(f"photos: encoder {setting}: {rate:.1f} img/s")
        del step, model
    release_models()
    return rows, rates


def shipped_config() -> dict:
    """The shipped run's config.json (its model options and class rebalancing)."""
    from core import runs
    from inference.pretrained import PRETRAINED_DIR
    from models import SHIPPED_MODEL
    return runs.load_config(PRETRAINED_DIR / SHIPPED_MODEL)


def decoder_options(config: dict, size: int) -> dict:
    """effnet_unet's options for a new hinted run at ``size`` px: the shipped run's, the encoder at 4 x size,
    hints with the attention_taps head and the points for the head alone (as the shipped run has them)."""
    from models.effnet_options import DEFAULTS, ENCODER_SCALE
    opts = {k: v for k, v in config["model_options"].items() if k in DEFAULTS}
    return {**opts, "image_size": size, "encoder_size": ENCODER_SCALE * size, "fine_tune": None, "hints": True,
            "hint_head": "attention_taps", "decoder_local_hints": False}


def decoder_batch(opts: dict, batch: int, weights: np.ndarray, rng) -> tuple[list[np.ndarray], np.ndarray]:
    """(inputs, packed targets) of one training batch at the options' size: random crops' L and ab, random
    taps of the encoder's shapes, hints by core.hints' training protocol (as training.encoder_data serves)."""
    from core import ab_bins, colorspace, hints
    from priors.features import tap_shapes
    size = opts["image_size"]
    x, y = colorspace.encode_lab(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    ab = y * np.float32(255) - np.float32(128)                                     # (B, S, S, 2) ab units
    local, glob = hints.training_hints(ab, np.stack([hints.distribution(a) for a in ab]), rng)
    local = hints.network_local(local, x[..., 0] * np.float32(100))
    taps = [rng.normal(size=(batch, *shape)).astype(np.float32)
            for shape in tap_shapes(opts["taps"], opts["encoder_size"])]
    return [x, *taps, local, glob], ab_bins.pack_targets(ab, weights)


def measure_decoder(opts: dict, batch: int, weights: np.ndarray, s: Settings) -> tuple[float, int, bool]:
    """(training images/s, training FLOPs per image, jit_compile) of a fresh effnet_unet with ``opts``."""
    import keras

    from benchmarks.flops import forward_flops, training_flops
    from models import build_model
    keras.utils.set_random_seed(SEED)
    built = build_model("effnet_unet", **opts)
    inputs, targets = decoder_batch(opts, batch, weights, np.random.default_rng(SEED))
    rate = throughput(lambda: built.train_on_batch(inputs, targets), batch, s)
    return rate, training_flops(forward_flops(built)), bool(built.jit_compile)


def bench_decoder(ctx: Context) -> tuple[list[Row], dict]:
    """Rows of effnet_unet's training on cached taps per image size; {size: images/s}."""
    s = ctx.settings
    config = shipped_config()
    weights = np.asarray(config["class_rebalancing"]["weights"], np.float32)
    rows, rates = [], {}
    for size in s.photos_decoder_sizes:
        setting = f"{size} px, batch {s.photos_decoder_batch}"
        log(f"photos: decoder {setting} ...")
        opts = decoder_options(config, size)
        try:
            rate, flops, jit = measure_decoder(opts, s.photos_decoder_batch, weights, s)
        except Exception as err:   # noqa: BLE001
            rows.append(failed_row("photos", "decoder", setting, err))
            continue
        finally:
            release_models()
        rates[size] = rate
        rows.append(perf_row(ctx, "photos", "decoder: effnet_unet on cached taps", setting, rate, flops,
                             notes=f"train_on_batch, hints (attention_taps, decoder_local_hints off), the shipped "
                                   f"options (widths {'/'.join(map(str, opts['widths']))}), encoder "
                                   f"{opts['encoder_size']} px taps as inputs; random weights and data, simulated "
                                   f"hints, packed targets; XLA {'on' if jit else 'off'}; FLOPs: 3 x forward "
                                   "(convolutions and dense layers only)"))
        log(f"photos: decoder {setting}: {rate:.1f} img/s")
    return rows, rates


# ---- per epoch --------------------------------------------------------------------------------------

def epoch_rows(ctx: Context, n_photos: int, loader: dict, encoder: dict, decoder: dict) -> list[Row]:
    """Seconds per epoch of n_photos x K crops at the per-epoch size, cached and streaming (rows and summary)."""
    from models.effnet_options import ENCODER_SCALE
    s = ctx.settings
    size, k = s.photos_epoch_size, s.photos_bank_k
    enc_size, n = ENCODER_SCALE * size, n_photos * s.photos_bank_k
    item = f"epoch of {n} crops at {size} px ({n_photos} photos x {k})"
    load = {w: r for (px, w), r in loader.items() if px == size}
    missing = [name for name, ok in (("loader", load), ("encoder", enc_size in encoder), ("decoder", size in decoder))
               if not ok]
    if missing:
        ctx.summary.append(f"photos {item}: not derived ({', '.join(missing)} at {size} px not measured)")
        return [Row("photos", item, "cached / streaming", "n/a", notes=f"not measured: {', '.join(missing)}")]
    workers = max(load, key=load.get)
    r_load, r_enc, r_dec = load[workers], encoder[enc_size], decoder[size]
    cached, once = n / r_dec, 2 * n / r_enc
    streaming = n / r_load + n / r_enc + n / r_dec
    extra = streaming - cached
    pays_back = (f"; cached is ahead after {once / extra:.1f} epochs (one-off / (streaming - cached))"
                 if extra > 0 else "")
    rows = [
        Row("photos", item, "cached crop bank", f"{cached:.1f} s/epoch",
            notes=f"{n}/decoder{size} = {n}/{r_dec:.1f}; plus once, before the first epoch, the encoder on the "
                  f"bank and its mirror images: {2 * n}/encoder{enc_size} = {2 * n}/{r_enc:.1f} = {once:.1f} s "
                  f"(the bank's crops: the crop bank row){pays_back}"),
        Row("photos", item, "streaming crops", f"{streaming:.1f} s/epoch",
            notes=f"{n}/loader{size} + {n}/encoder{enc_size} + {n}/decoder{size} = {n}/{r_load:.1f} + "
                  f"{n}/{r_enc:.1f} + {n}/{r_dec:.1f} = {n / r_load:.1f} + {n / r_enc:.1f} + {n / r_dec:.1f} s "
                  f"(loader with {workers} worker{'s' if workers > 1 else ''}, its faster; the three one after "
                  f"the other)"),
    ]
    ctx.summary.append(f"photos {item}, cached crop bank: {cached:.1f} s/epoch = {n}/decoder{size} "
                       f"= {n}/{r_dec:.1f}; plus {once:.1f} s once = {2 * n}/encoder{enc_size} (the bank and its "
                       f"mirror images)")
    ctx.summary.append(f"photos {item}, streaming crops: {streaming:.1f} s/epoch = {n}/loader{size} + "
                       f"{n}/encoder{enc_size} + {n}/decoder{size} = {n / r_load:.1f} + {n / r_enc:.1f} + "
                       f"{n / r_dec:.1f} ({streaming / cached:.1f}x the cached epoch)")
    return rows


def bench_photos(ctx: Context) -> list[Row]:
    """Loader, crop bank, encoder and decoder rows, then the per-epoch figures (the module docstring)."""
    folder, what = photo_folder(ctx)
    log(f"photos: {what}")
    loader_rows, loader = bench_loader(ctx, folder, what)
    bank = bench_bank(ctx, folder, what)
    encoder_rows, encoder = bench_encoder(ctx)
    decoder_rows, decoder = bench_decoder(ctx)
    from loaders.photos import FolderSource
    n_photos = len(FolderSource(folder))
    return [*loader_rows, bank, *encoder_rows, *decoder_rows, *epoch_rows(ctx, n_photos, loader, encoder, decoder)]
