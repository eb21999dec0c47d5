"""What the benchmark's sections share: presets, the context of a run, result rows, progress lines."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

# The backends the backends section compares (bench.py --backends); here, not in benchmarks.backends
# (which imports Keras), so that bench.py parses its arguments before Keras loads.
BACKENDS = ("tensorflow", "jax", "torch")


@dataclass(frozen=True)
class Settings:
    """How much to measure; FULL by default, QUICK with --quick, SMOKE to test the script itself."""
    name: str
    batch_sizes: tuple[int, ...]        # training batch sizes, timed with XLA off
    jit_batch_sizes: tuple[int, ...]    # those also timed with XLA on
    warmup: int                         # steps before timing (the first one traces/compiles)
    windows: int                        # timed windows; the median is reported
    window_s: float                     # a window runs at least this long (at least one step)
    png_images: int                     # data section: 32x32 PNGs
    jpeg_images: int                    # data section: 256x256 JPEGs
    colorize_repeats: int
    fusion_images: int = 1000           # fusion_epochs section: images per epoch
    default_batch: int = 32             # the project's default (train.py --batch-size)
    predict_batch: int = 64
    prior_batch: int = 32
    matmul_n: int = 2048
    matmul_repeats: int = 5
    epochs: int = 10
    jpeg_size: int = 256
    photo_sizes: tuple[tuple[int, int], ...] = ((1024, 1024), (4000, 3000))
    startup_repeats: int = 3            # startup section: best of this many fresh processes
    # video section: (target name, width, height, frames) of the pan clips (evaluation/videoset.py); the
    # targets (benchmarks/video.py) are read by name: 480p and 1080p
    video_clips: tuple[tuple[str, int, int, int], ...] = (("480p", 854, 480, 48), ("1080p", 1920, 1080, 24))
    video_repeats: int = 2              # video section: each clip and mode timed this many times, the best kept
    # photos section (benchmarks/photos.py): the photo folder (BSDS500's train split when it is there and
    # photos_shared, else photos_generated JPEGs of photos_generated_size), the loader's crop sizes and
    # worker counts, the crop bank's K, the encoder's sizes and batch, the decoder's image sizes and batch,
    # and the crop size of the per-epoch figures (the encoder at 4 x it)
    photos_shared: bool = True
    photos_generated: int = 200
    photos_generated_size: tuple[int, int] = (481, 321)
    photos_crop_sizes: tuple[int, ...] = (64, 224)
    photos_workers: tuple[int, ...] = (1, 2)
    photos_bank_k: int = 8
    photos_encoder_sizes: tuple[int, ...] = (128, 256)
    photos_encoder_batch: int = 32
    photos_decoder_sizes: tuple[int, ...] = (32, 64)
    photos_decoder_batch: int = 32
    photos_epoch_size: int = 64

    def describe(self) -> str:
        """One line for the report."""
        batches = ", ".join(map(str, self.batch_sizes))
        jit = ", ".join(map(str, self.jit_batch_sizes))
        return (f"{self.name}: train batch sizes {batches} (XLA also at {jit}); {self.warmup} warm-up step(s), "
                f"median of {self.windows} windows of >= {self.window_s:g} s (>= 1 step); predict batch "
                f"{self.predict_batch}; prior batch {self.prior_batch}; data {self.png_images} PNGs and "
                f"{self.jpeg_images} JPEGs x {self.epochs} epochs; colorize median of {self.colorize_repeats}; "
                f"video {', '.join(f'{w}x{h} x {n} frames' for _, w, h, n in self.video_clips)}, best of "
                f"{self.video_repeats}; photos: crops at {', '.join(map(str, self.photos_crop_sizes))} px, bank "
                f"K {self.photos_bank_k}, encoder at {', '.join(map(str, self.photos_encoder_sizes))} px, decoder at "
                f"{', '.join(map(str, self.photos_decoder_sizes))} px")


FULL = Settings("full", (16, 32, 64, 128), (16, 32, 64, 128), warmup=3, windows=5, window_s=3.0,
                png_images=2000, jpeg_images=300, colorize_repeats=3)


QUICK = Settings("quick", (32, 128), (32,), warmup=1, windows=3, window_s=0.0,
                 png_images=1000, jpeg_images=100, colorize_repeats=1, fusion_images=512, video_repeats=1)


SMOKE = Settings("smoke", (4,), (4,), warmup=1, windows=1, window_s=0.0, png_images=40, jpeg_images=6,
                 colorize_repeats=1, default_batch=4, predict_batch=4, prior_batch=2, matmul_n=256,
                 matmul_repeats=1, jpeg_size=64, photo_sizes=((256, 256), (400, 300)), fusion_images=16,
                 startup_repeats=1, video_clips=(("480p", 96, 54, 4), ("1080p", 128, 72, 3)), video_repeats=1,
                 photos_shared=False, photos_generated=8, photos_generated_size=(96, 64), photos_crop_sizes=(8, 16),
                 photos_bank_k=2, photos_encoder_sizes=(32,), photos_encoder_batch=2, photos_decoder_sizes=(8,),
                 photos_decoder_batch=2, photos_epoch_size=8)


@dataclass
class Context:
    """What the sections share: settings, the models asked for, the peak, a scratch folder."""
    settings: Settings
    models: tuple[str, ...]
    backends: tuple[str, ...]
    preset_args: list[str]              # the flags that select the preset, passed to --worker
    tmp: Path
    peak_gflops: float | None = None
    summary: list[str] = field(default_factory=list)   # PASS/FAIL and conclusions, printed last


@dataclass
class Row:
    section: str
    item: str
    setting: str
    result: str
    gflops: float | None = None
    pct_peak: float | None = None
    notes: str = ""


_T0 = time.perf_counter()


def log(message: str) -> None:
    """A progress line with the time since start."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {message}", flush=True)
