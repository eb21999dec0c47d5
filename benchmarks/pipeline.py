"""Sections data and colorize: the data pipeline against the original loop, full-resolution colorize latency."""
from __future__ import annotations

import contextlib
import io
import math
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.settings import Context, Row, log
from benchmarks.workloads import build, release_models, timed

SHARED_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


DATA_TARGET = 10.0        # CifarGenerator vs the original loop, stated by the issue


def source_images(n: int) -> np.ndarray:
    """n real CIFAR-10 images (N, 32, 32, 3) uint8, repeated as needed: the shared subset, else the sample."""
    from loaders import cifar
    data = (cifar.load_images(SHARED_SUBSET, "train") if SHARED_SUBSET.exists()
            else cifar.load_images(cifar.SAMPLE_DIR / "train"))
    return data.images[np.arange(n) % len(data)]


def write_folder(images: np.ndarray, folder: Path, size: int, ext: str) -> Path:
    """Save images as img-<i>-airplane.<ext> (upscaled bicubically to size x size if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        img = Image.fromarray(im)
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        img.save(folder / f"img-{i}-airplane.{ext}", **({"quality": 90} if ext == "jpg" else {}))
    return folder


def original_pipeline(folder: Path, batch_size: int, image_size: int, epochs: int) -> None:
    """The original generator, re-created: every batch reads its files and converts image by image."""
    from skimage.color import rgb2lab
    files = sorted(str(p) for p in folder.iterdir())
    for _ in range(epochs):
        for start in range(0, len(files), batch_size):
            xs, ys = [], []
            for f in files[start:start + batch_size]:
                with Image.open(f) as img:
                    img = img.convert("RGB")
                    if img.size != (image_size, image_size):   # keras target_size: nearest
                        img = img.resize((image_size, image_size), Image.NEAREST)
                    rgb = np.asarray(img, dtype=np.float64) / 255.0
                lab = rgb2lab(rgb)
                xs.append(lab[..., :1] / 100.0)
                ys.append((lab[..., 1:] + 128.0) / 255.0)
            np.stack(xs), np.stack(ys)


def generator_pipeline(folder: Path, batch_size: int, image_size: int, epochs: int) -> None:
    """CifarGenerator from the folder (decode + conversion once), then every batch of every epoch."""
    from loaders.cifar import CifarGenerator
    gen = CifarGenerator(str(folder), batch_size=batch_size, color_space="LAB", image_size=image_size, seed=0)
    for _ in range(epochs):
        for i in range(len(gen)):
            gen[i]
        gen.on_epoch_end()


def bench_data(ctx: Context) -> list[Row]:
    """CifarGenerator vs the original loop on 32x32 PNGs and on large JPEGs; PASS if >= DATA_TARGET x."""
    import skimage.color  # noqa: F401 -- the original loop's converter, imported before any timing
    s = ctx.settings
    cases = (("PNG", 32, s.png_images, "png"), ("JPEG", s.jpeg_size, s.jpeg_images, "jpg"))
    images = source_images(max(s.png_images, s.jpeg_images))
    rows = []
    for kind, size, n, ext in cases:
        folder = write_folder(images[:n], ctx.tmp / f"data-{ext}-{size}", size, ext)
        label = f"{n} {kind} {size}x{size}"
        batches = s.epochs * math.ceil(n / s.default_batch)   # what both pipelines serve
        rates = {}
        for impl, fn in (("original loop", original_pipeline), ("CifarGenerator", generator_pipeline)):
            log(f"data: {label}, {impl}, {s.epochs} epochs ...")
            # median of s.windows full runs (each decodes the folder again: preparation included)
            seconds = statistics.median(
                timed(lambda fn=fn, folder=folder, size=size: fn(folder, s.default_batch, size, s.epochs))
                for _ in range(s.windows))
            rates[impl] = s.epochs * n / seconds
            rows.append(Row("data", label, f"{impl}, {s.epochs} epochs, batch {s.default_batch}",
                            f"{rates[impl]:.0f} img/s", notes=f"{batches / seconds:.1f} batches/s; {seconds:.2f} s"))
            log(f"data: {label}, {impl}: {rates[impl]:.0f} img/s")
        ratio = rates["CifarGenerator"] / rates["original loop"]
        verdict = "PASS" if ratio >= DATA_TARGET else "FAIL"
        rows[-1].notes += f"; {ratio:.1f}x the original: {verdict} (target >= {DATA_TARGET:g}x)"
        ctx.summary.append(f"data {label}: CifarGenerator {ratio:.1f}x the original loop -> {verdict} "
                           f"(target >= {DATA_TARGET:g}x, decode included)")
    return rows


def synthetic_photo(width: int, height: int) -> np.ndarray:
    """A smooth, colorful (height, width, 3) uint8 image: low-frequency waves per channel."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    channels = [0.5 + 0.5 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
                for fx, fy, phase in ((1.0, 0.5, 0.0), (0.3, 1.2, 2.0), (0.8, -0.7, 4.0))]
    return (np.stack(channels, axis=-1) * 255).astype(np.uint8)


def colorize_once(colorizer, photo: Path, out_dir: Path) -> None:
    """colorize.py's work for one file (its printed line swallowed); raises if the file failed."""
    from inference import photos
    jobs, errors = photos.collect_jobs([photo], out_dir)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _, failed = photos.colorize_files(colorizer, jobs, None, compare=False)
    if errors or failed:
        raise RuntimeError(f"colorize failed: {errors + failed}")


def bench_colorize(ctx: Context) -> list[Row]:
    """Full-resolution colorize latency per photo size, unet with random weights."""
    from inference import Colorizer
    s = ctx.settings
    colorizer = Colorizer({"model": "unet", "model_options": {"image_size": 32}}, build("unet"))
    folder = ctx.tmp / "photos"
    folder.mkdir(exist_ok=True)
    warm = folder / "warm-up.jpg"
    Image.fromarray(synthetic_photo(64, 48)).save(warm, quality=92)
    colorize_once(colorizer, warm, ctx.tmp / "colorized")   # traces predict: not timed
    rows = []
    for w, h in s.photo_sizes:
        photo = folder / f"photo-{w}x{h}.jpg"
        Image.fromarray(synthetic_photo(w, h)).save(photo, quality=92)
        log(f"colorize: {w}x{h} ...")
        times = [timed(lambda photo=photo: colorize_once(colorizer, photo, ctx.tmp / "colorized"))
                 for _ in range(s.colorize_repeats)]
        seconds = statistics.median(times)
        rows.append(Row("colorize", f"{w}x{h} JPEG", "unet (random weights), colorize_files",
                        f"{seconds:.2f} s", notes=f"{w * h / 1e6 / seconds:.1f} MP/s; median of {len(times)}; "
                                                  "decode + predict + recombine + PNG write"))
        log(f"colorize: {w}x{h}: {seconds:.2f} s")
    release_models()
    return rows
