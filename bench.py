"""Benchmark (not a test): training, prediction, data, colorize and prior speed on this machine.

    python bench.py [--models unet gan ...] [--quick] [--backends tensorflow,jax,torch]
                    [--sections train,predict,...] [--out BENCHMARKS.md]

Prints progress lines, then one table, and writes this run's section into BENCHMARKS.md (the
section is rewritten after every benchmark section, so an interrupted run keeps what it
measured; a second run adds its own dated section, with its command line). Run it on a quiet
machine: the load average at start is recorded, and a busy machine is flagged in the output.

What is measured, all in the same run:

peak      float32 matrix multiply (n x n, 2 n^3 FLOPs) with NumPy and with the Keras backend
          (``keras.ops.matmul``); the best of the two is "peak", the reference of "% peak".
train     images/s of ``train_on_batch`` on random data in each model's encoding (fusion: a random
          prior, one-hot for fusion_label, softmax for fusion_resnet; GAN: one full
          ``gan_training.train_step``, counting the real images of the step), per batch size, with
          XLA off and on (``jit_compile`` set after build, before the first step; for the GAN on
          the discriminator, the combined model and the generator, whose predict makes the
          fakes). A fresh model per setting; warm-up steps first; the median of timed windows.
          Also, at the default batch size, XLA off: the mixed_bfloat16 policy
          (``train.py --mixed-precision bfloat16``), against float32.
predict   images/s of ``predict_on_batch`` at batch 64 (the GAN: its generator).
prior     fusion_resnet's classifier prior (``priors.compute_prior``), images/s at batch 32 per
          backbone: efficientnet_lite0 with its real weights, inception_resnet_v2 with random
          weights (``allow_random_weights=True``; same layers, so the same cost; its ImageNet
          weights need a download). Priors go to a temporary cache, never read back: only compute.
fusion_epochs  fusion_resnet against fusion_label on the same images: the prior computed once
          (cold cache) and read back, then two epochs of each (epoch 2 is after tracing).
data      ``CifarGenerator`` over 10 epochs, its one-time decode and conversion included (median
          of as many runs as timed windows), against
          a re-creation of the original generator (per batch: each file opened with PIL, then
          ``skimage.color.rgb2lab`` per image in float64, stacked into X, Y), on a folder of
          32x32 PNGs and on a folder of 256x256 JPEGs (``image_size=256``). Target: >= 10x.
colorize  wall time of ``colorize.colorize_files`` for one 1024x1024 and one 4000x3000 JPEG
          (smooth synthetic photo): decode, predict (unet, random weights), recombine, PNG write.
backends  unet training at batch 32 under each Keras backend of --backends that is installed, each
          in a subprocess (``bench.py --worker``) with KERAS_BACKEND set, with that backend's
          default ``jit_compile`` (TensorFlow: off on CPU; JAX: on). For TensorFlow also two
          kernel variants beside the project's default (TF_ENABLE_ONEDNN_OPTS=1, set by cli.py):
          TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0), and oneDNN restricted to AVX2
          (ONEDNN_MAX_CPU_ISA=AVX2: what a CPU without AVX-512 runs).

FLOP convention (columns GFLOP/s and % peak):

* forward FLOPs per image, from the layer shapes: a multiply-add is 2 FLOPs; Conv (any rank,
  depthwise included): 2 * k*k*cin*cout (the kernel's size) * Hout*Wout (output positions);
  Dense: 2 * in * out (per position when applied over a grid); separable conv: both kernels;
  transposed conv: input positions. Biases, activations, normalization, pooling, upsampling,
  concatenation and the optimizer update are not counted.
* training = 3 x forward (forward, then backward = 2 x forward: input and weight gradients).
* GAN, per real image of one train_step: G forward for the fakes (G), two D steps (2 x 3D), the
  combined step 3G + 2D (the frozen D is run forward and back to its input, without weight
  gradients): 4G + 8D in all.
* achieved GFLOP/s = FLOPs per image x images/s; % peak = that / the peak matmul GFLOP/s.
"""
from __future__ import annotations

import os

import cli  # noqa: F401  (first: TensorFlow's environment defaults, as train.py gets them)

import argparse
import contextlib
import logging
import gc
import io
import json
import math
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent
SHARED_SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset"
DEFAULT_OUT = ROOT / "BENCHMARKS.md"
SECTIONS = ("train", "predict", "prior", "fusion_epochs", "data", "colorize", "backends")
BACKENDS = ("tensorflow", "jax", "torch")
DATA_TARGET = 10.0        # CifarGenerator vs the original loop, stated by the issue
BUSY_LOAD = 0.5           # 1-minute load average above which the machine is flagged as busy
PRIOR_BACKBONES = (("efficientnet_lite0", False), ("inception_resnet_v2", True))   # (name, random weights)

PREAMBLE = """# Benchmarks

Written by `python bench.py` (see its docstring for what each section measures); one section per
run, newest last. Throughputs are medians of timed windows after warm-up, on random data in each
model's encoding.

FLOP convention: forward FLOPs per image from the layer shapes (a multiply-add = 2 FLOPs; conv:
2*k*k*cin*cout*Hout*Wout; dense: 2*in*out; biases, activations, normalization and resampling not
counted); training = 3 x forward (backward = 2 x forward); GAN train_step per real image =
G (fakes) + 2 x 3D (discriminator steps) + 3G + 2D (combined step, frozen D without weight
gradients) = 4G + 8D. "% peak" compares achieved GFLOP/s with the best float32 matmul
(NumPy or the Keras backend) measured in the same run.
"""


# ---- settings ----------------------------------------------------------------

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

    def describe(self) -> str:
        """One line for the report."""
        batches = ", ".join(map(str, self.batch_sizes))
        jit = ", ".join(map(str, self.jit_batch_sizes))
        return (f"{self.name}: train batch sizes {batches} (XLA also at {jit}); {self.warmup} warm-up step(s), "
                f"median of {self.windows} windows of >= {self.window_s:g} s (>= 1 step); predict batch "
                f"{self.predict_batch}; prior batch {self.prior_batch}; data {self.png_images} PNGs and "
                f"{self.jpeg_images} JPEGs x {self.epochs} epochs; colorize median of {self.colorize_repeats}")


FULL = Settings("full", (16, 32, 64, 128), (16, 32, 64, 128), warmup=3, windows=5, window_s=3.0,
                png_images=2000, jpeg_images=300, colorize_repeats=3)
QUICK = Settings("quick", (32, 128), (32,), warmup=1, windows=3, window_s=0.0,
                 png_images=1000, jpeg_images=100, colorize_repeats=1, fusion_images=512)
SMOKE = Settings("smoke", (4,), (4,), warmup=1, windows=1, window_s=0.0, png_images=40, jpeg_images=6,
                 colorize_repeats=1, default_batch=4, predict_batch=4, prior_batch=2, matmul_n=256,
                 matmul_repeats=1, jpeg_size=64, photo_sizes=((256, 256), (400, 300)), fusion_images=16)


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


# ---- FLOPs -------------------------------------------------------------------

def _positions(shape) -> int:
    """Number of positions a kernel is applied at: the product of the non-batch, non-channel dims."""
    dims = tuple(shape)[1:-1]
    if any(d is None for d in dims):
        raise ValueError(f"cannot count FLOPs with an undefined spatial size {tuple(shape)}")
    return math.prod(dims)


def layer_flops(layer) -> int:
    """Forward FLOPs per example of one layer (see the convention in the module docstring)."""
    if isinstance(layer, keras.Model):
        return forward_flops(layer)
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                          keras.layers.Conv3DTranspose)):
        return 2 * math.prod(layer.kernel.shape) * _positions(layer.input.shape)
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        weights = math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape)
        return 2 * weights * _positions(layer.output.shape)
    kernel = getattr(layer, "kernel", None)   # Dense, Conv1D/2D/3D, DepthwiseConv
    if kernel is None:
        return 0
    return 2 * math.prod(kernel.shape) * _positions(layer.output.shape)


def forward_flops(model) -> int:
    """Forward FLOPs per example of a built model; nested models are counted through their layers."""
    return sum(layer_flops(layer) for layer in model.layers)


def training_flops(forward: int) -> int:
    """One training step per example: forward + backward (2 x forward)."""
    return 3 * forward


def gan_training_flops(generator: int, discriminator: int) -> int:
    """One gan_training.train_step per real image, from G's and D's forward FLOPs."""
    fakes = generator
    d_steps = 2 * training_flops(discriminator)
    combined = training_flops(generator) + 2 * discriminator   # frozen D: no weight gradients
    return fakes + d_steps + combined


# ---- timing ------------------------------------------------------------------

def throughput(step, items_per_step: int, s: Settings) -> float:
    """Median items/s of ``step()`` over s.windows windows, after s.warmup warm-up steps.

    A window runs ceil(s.window_s / last warm-up step time) steps, at least one (one without
    warm-up). ``step`` must return only when its work is done (train_on_batch and
    predict_on_batch return NumPy values).
    """
    last = None
    for _ in range(s.warmup):
        last = timed(step)
    steps = max(1, math.ceil(s.window_s / max(last, 1e-9))) if last else 1
    rates = []
    for _ in range(s.windows):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * items_per_step / (time.perf_counter() - t))
    return statistics.median(rates)


def timed(fn) -> float:
    """Seconds taken by one call of ``fn()``."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def perf_row(ctx: Context, section: str, item: str, setting: str, per_s: float, flops: int | None,
             unit: str = "img/s", notes: str = "") -> Row:
    """A row for a throughput, with achieved GFLOP/s and % of the peak when FLOPs are known."""
    gflops = per_s * flops / 1e9 if flops else None
    pct = 100 * gflops / ctx.peak_gflops if gflops and ctx.peak_gflops else None
    return Row(section, item, setting, f"{per_s:.1f} {unit}", gflops, pct, notes)


def failed_row(section: str, item: str, setting: str, err: Exception) -> Row:
    """A row for a measurement that raised (the run goes on with the next one)."""
    log(f"{section}: {item} {setting}: FAILED ({type(err).__name__}: {err})")
    return Row(section, item, setting, "FAILED", notes=f"{type(err).__name__}: {err}")


def release_models() -> None:
    """Drop the models of the previous measurement, so the next one starts clean."""
    keras.backend.clear_session()
    gc.collect()


# ---- random data in each model's encoding -------------------------------------

def _uniform(rng, shape, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(np.float32)


def _prior(rng, batch: int, dim: int, kind: str) -> np.ndarray:
    """A random prior: one-hot classes (fusion_label) or a softmax over random logits (classifier)."""
    if kind == "label":
        return np.eye(dim, dtype=np.float32)[rng.integers(0, dim, batch)]
    logits = rng.normal(size=(batch, dim)).astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def network_inputs(name: str, network, batch: int, rng):
    """Random inputs of a fit model (L in [0, 1], plus the prior) or of the GAN's generator (gray, [-1, 1])."""
    from models import get_spec
    spec = get_spec(name)
    if spec.trainer == "gan":
        shape = tuple(network.inputs[0].shape[1:])
        gray = _uniform(rng, (batch, *shape[:-1], 1), -1.0, 1.0)   # R = G = B, as the encoding
        return np.repeat(gray, shape[-1], axis=-1)
    inputs = [_prior(rng, batch, int(t.shape[-1]), spec.prior) if len(t.shape) == 2
              else _uniform(rng, (batch, *t.shape[1:]), 0.0, 1.0) for t in network.inputs]
    return inputs[0] if len(inputs) == 1 else tuple(inputs)


# ---- models: build, FLOPs, one step --------------------------------------------

def build(name: str, jit: bool | None = None, seed: int = 0, precision: str = "float32"):
    """A fresh compiled model (GanModels for the GAN); ``jit`` overrides jit_compile, None keeps the default."""
    from models import build_model, set_jit
    keras.utils.set_random_seed(seed)
    built = build_model(name, precision=precision)
    if jit is not None:
        set_jit(built, "on" if jit else "off")
    return built


def model_training_flops(name: str, built) -> int:
    """Training FLOPs per image of a built model (convention in the module docstring)."""
    if name == "gan":
        return gan_training_flops(forward_flops(built.generator), forward_flops(built.discriminator))
    return training_flops(forward_flops(built))


def train_step_fn(name: str, built, batch: int, rng):
    """A callable doing one training step on a fixed random batch."""
    import gan_training
    if name == "gan":
        real = _uniform(rng, (batch, *built.generator.outputs[0].shape[1:]), -1.0, 1.0)
        condition = network_inputs(name, built.generator, batch, rng)
        return lambda: gan_training.train_step(built, real, condition)
    x = network_inputs(name, built, batch, rng)
    y = _uniform(rng, (batch, *built.outputs[0].shape[1:]), 0.0, 1.0)
    return lambda: built.train_on_batch(x, y)


def measure_training(name: str, batch: int, jit: bool | None, s: Settings, precision: str = "float32") -> dict:
    """Training images/s of a fresh model, its training FLOPs per image and the jit_compile in effect."""
    built = build(name, jit, precision=precision)
    step = train_step_fn(name, built, batch, np.random.default_rng(0))
    first = built.combined if name == "gan" else built
    result = {"images_per_s": throughput(step, batch, s), "flops_per_image": model_training_flops(name, built),
              "jit_compile": bool(first.jit_compile)}
    del built, step, first
    release_models()
    return result


# ---- sections ------------------------------------------------------------------

def bench_peak(ctx: Context) -> list[Row]:
    """Best float32 n x n matmul GFLOP/s with NumPy and with the Keras backend; sets ctx.peak_gflops."""
    s = ctx.settings
    n = s.matmul_n
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    candidates = {"numpy": lambda: a @ b,
                  f"keras.ops ({keras.backend.backend()})": lambda: keras.ops.convert_to_numpy(keras.ops.matmul(ta, tb))}
    rows = []
    for label, fn in candidates.items():
        fn()   # warm-up (thread pools, kernels)
        best = min(timed(fn) for _ in range(s.matmul_repeats))
        gflops = 2 * n ** 3 / best / 1e9
        log(f"peak: {label} matmul {n}x{n}: {gflops:.1f} GFLOP/s")
        rows.append(Row("peak", f"matmul {label}", f"float32 {n}x{n}, best of {s.matmul_repeats}",
                        f"{gflops:.1f} GFLOP/s", gflops))
    ctx.peak_gflops = max(r.gflops for r in rows)
    for r in rows:
        r.pct_peak = 100 * r.gflops / ctx.peak_gflops
    return rows


def bench_train(ctx: Context) -> list[Row]:
    """Training throughput per model, batch size and XLA setting; the XLA speed-up of each pair."""
    s = ctx.settings
    rows, speedups = [], []
    for name in ctx.models:
        float32_rate = None   # the default batch, XLA off: what the bfloat16 row compares with
        for batch in s.batch_sizes:
            rate_off = None
            for jit in (False, True) if batch in s.jit_batch_sizes else (False,):
                setting = f"batch {batch}, XLA {'on' if jit else 'off'}"
                log(f"train: {name} {setting} ...")
                try:
                    r = measure_training(name, batch, jit, s)
                except Exception as err:   # noqa: BLE001 -- e.g. XLA failing to compile: go on
                    release_models()
                    rows.append(failed_row("train", name, setting, err))
                    continue
                notes = f"{r['flops_per_image'] / 1e9:.3f} GFLOP/img"
                if jit and rate_off:
                    speedups.append(r["images_per_s"] / rate_off)
                    notes += f"; XLA {speedups[-1]:.2f}x vs off"
                rate_off = rate_off or r["images_per_s"]
                if batch == s.default_batch and not jit:
                    float32_rate = r["images_per_s"]
                rows.append(perf_row(ctx, "train", name, setting, r["images_per_s"], r["flops_per_image"], notes=notes))
                log(f"train: {name} {setting}: {r['images_per_s']:.1f} img/s")
        rows.append(_bfloat16_row(ctx, name, float32_rate))
    if speedups:
        median = statistics.median(speedups)
        verdict = "XLA helps on this CPU" if median > 1.05 else (
            "XLA does not help on this CPU" if median < 0.95 else "XLA makes no clear difference on this CPU")
        rows.append(Row("train", "XLA", f"{len(speedups)} pairs", f"{median:.2f}x median",
                        notes=f"{verdict} (range {min(speedups):.2f}x-{max(speedups):.2f}x)"))
        ctx.summary.append(f"{verdict}: median speed-up {median:.2f}x over {len(speedups)} model/batch pairs")
    return rows


def _bfloat16_row(ctx: Context, name: str, float32_rate: float | None) -> Row:
    """train.py --mixed-precision bfloat16 at the default batch, XLA off, against float32's rate."""
    s = ctx.settings
    setting = f"batch {s.default_batch}, XLA off, mixed_bfloat16"
    log(f"train: {name} {setting} ...")
    try:
        r = measure_training(name, s.default_batch, False, s, precision="mixed_bfloat16")
    except Exception as err:   # noqa: BLE001 -- e.g. no bfloat16 kernels on this backend: go on
        release_models()
        return failed_row("train", name, setting, err)
    notes = "bfloat16 compute, float32 variables (FLOPs counted as float32's)"
    if float32_rate:
        notes += f"; {r['images_per_s'] / float32_rate:.2f}x vs float32"
    log(f"train: {name} {setting}: {r['images_per_s']:.1f} img/s")
    return perf_row(ctx, "train", name, setting, r["images_per_s"], r["flops_per_image"], notes=notes)


def bench_predict(ctx: Context) -> list[Row]:
    """predict_on_batch images/s per model (the GAN's generator), at the prediction batch size."""
    rows = []
    for name in ctx.models:
        rows.append(_predict_row(ctx, name))
        release_models()
    return rows


def _predict_row(ctx: Context, name: str) -> Row:
    s = ctx.settings
    built = build(name)
    network = built.generator if name == "gan" else built
    x = network_inputs(name, network, s.predict_batch, np.random.default_rng(0))
    rate = throughput(lambda: network.predict_on_batch(x), s.predict_batch, s)
    log(f"predict: {name} batch {s.predict_batch}: {rate:.1f} img/s")
    return perf_row(ctx, "predict", name, f"batch {s.predict_batch}", rate, forward_flops(network))


def bench_prior(ctx: Context) -> list[Row]:
    """fusion_resnet's prior per backbone: compute_prior images/s, never served from the cache."""
    import priors
    saved_cache_dir = priors.CACHE_DIR
    priors.CACHE_DIR = ctx.tmp / "cache"   # converted weights too: nothing read from or written to cache/
    try:
        return [_prior_row(ctx, priors, backbone, random_weights) for backbone, random_weights in PRIOR_BACKBONES]
    finally:
        priors.CACHE_DIR = saved_cache_dir
        priors._LOADED.clear()   # compute_prior's per-process backbones: free them
        release_models()


def _prior_row(ctx: Context, priors, backbone: str, random_weights: bool) -> Row:
    """compute_prior images/s of one backbone, at the prior batch size, fresh images every call."""
    s = ctx.settings
    rng = np.random.default_rng(0)

    def run(n: int):   # new random images each call: a cache hit is impossible
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        priors.compute_prior(images, backbone, allow_random_weights=random_weights,
                             cache_dir=ctx.tmp / "priors", batch_size=s.prior_batch, verbose=False)

    weights = "random" if random_weights else "real"
    log(f"prior: {backbone} ({weights} weights), loading ...")
    run(2)   # loads the backbone (kept per process by priors): not timed
    # compute_prior uses predict_on_batch, traced once per batch shape: s.warmup calls warm it up.
    rate = throughput(lambda: run(s.prior_batch), s.prior_batch, s)
    model = priors._backbone(backbone, None, random_weights)   # the instance compute_prior used
    note = ("random weights: same layers and cost as the ImageNet ones" if random_weights
            else "real ImageNet weights")
    log(f"prior: {backbone}: {rate:.1f} img/s ({note})")
    return perf_row(ctx, "prior", backbone, f"batch {s.prior_batch}, input {priors.input_size(backbone)} px",
                    rate, forward_flops(model), notes=f"{note}; includes gray conversion and resize")


# -- fusion_resnet against fusion_label, epoch by epoch --

class EpochTimes(keras.callbacks.Callback):
    """Wall time of each epoch of a fit."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]


def bench_fusion_epochs(ctx: Context) -> list[Row]:
    """Epoch times of fusion_resnet (efficientnet_lite0 prior, cold cache) and fusion_label on the same images.

    fusion_resnet's prior is computed once before training (cold cache), then read back (what a
    later run does); the epochs themselves then cost what fusion_label's cost, the point of the cache.
    """
    import priors
    from dataset import CifarGenerator, ImageSet, one_hot

    n = ctx.settings.fusion_images
    images = source_images(n)
    labels = np.arange(n) % 10                               # any labels: the cost is the same
    data = ImageSet(images, labels, [f"img-{i}" for i in range(n)], "bench")
    cache = ctx.tmp / "fusion-priors"
    timings = []
    for _ in ("computed", "read from the cache"):
        start = time.perf_counter()
        prior = priors.compute_prior(images, "efficientnet_lite0", cache_dir=cache, verbose=False)
        timings.append(time.perf_counter() - start)
    cold, warm = timings
    log(f"fusion_epochs: prior of {n} images: {cold:.1f} s computed, {warm:.2f} s from the cache")
    rows = [Row("fusion_epochs", "fusion_resnet prior", f"{n} images, efficientnet_lite0",
                f"{cold:.1f} s computed", notes=f"{warm:.2f} s read from the cache (later epochs and runs)")]
    for name, p in (("fusion_label", one_hot(labels)), ("fusion_resnet", prior)):
        keras.utils.set_random_seed(0)
        model = build(name)
        times = EpochTimes()
        model.fit(CifarGenerator(data, ctx.settings.default_batch, "fusion", prior=p, seed=0), epochs=2,
                  verbose=0, callbacks=[times])
        log(f"fusion_epochs: {name}: epoch 1 {times.seconds[0]:.1f} s, epoch 2 {times.seconds[1]:.1f} s")
        rows.append(Row("fusion_epochs", name, f"{n} images, batch {ctx.settings.default_batch}",
                        f"epoch 2: {times.seconds[1]:.1f} s", notes=f"epoch 1 (with tracing): {times.seconds[0]:.1f} s"))
        release_models()
    priors._LOADED.clear()
    return rows


# -- data pipeline --

def source_images(n: int) -> np.ndarray:
    """n real CIFAR-10 images (N, 32, 32, 3) uint8, repeated as needed: the shared subset, else the sample."""
    import dataset
    data = (dataset.load_images(SHARED_SUBSET, "train") if SHARED_SUBSET.exists()
            else dataset.load_images(dataset.SAMPLE_DIR / "train"))
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
    from dataset import CifarGenerator
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
            seconds = statistics.median(timed(lambda: fn(folder, s.default_batch, size, s.epochs))
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


# -- colorize --

def synthetic_photo(width: int, height: int) -> np.ndarray:
    """A smooth, colorful (height, width, 3) uint8 image: low-frequency waves per channel."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    channels = [0.5 + 0.5 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
                for fx, fy, phase in ((1.0, 0.5, 0.0), (0.3, 1.2, 2.0), (0.8, -0.7, 4.0))]
    return (np.stack(channels, axis=-1) * 255).astype(np.uint8)


def colorize_once(colorizer, photo: Path, out_dir: Path) -> None:
    """colorize.py's work for one file (its printed line swallowed); raises if the file failed."""
    import colorize
    jobs, errors = colorize.collect_jobs([photo], out_dir)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _, failed = colorize.colorize_files(colorizer, jobs, None, compare=False)
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
        times = [timed(lambda: colorize_once(colorizer, photo, ctx.tmp / "colorized")) for _ in range(s.colorize_repeats)]
        seconds = statistics.median(times)
        rows.append(Row("colorize", f"{w}x{h} JPEG", "unet (random weights), colorize_files",
                        f"{seconds:.2f} s", notes=f"{w * h / 1e6 / seconds:.1f} MP/s; median of {len(times)}; "
                                                  "decode + predict + recombine + PNG write"))
        log(f"colorize: {w}x{h}: {seconds:.2f} s")
    release_models()
    return rows


# -- backends --

def backend_installed(backend: str) -> bool:
    """Whether this interpreter can import the backend's package (checked in a subprocess)."""
    return subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True).returncode == 0


def run_worker(backend: str, ctx: Context, env_extra: dict | None = None) -> dict:
    """unet training throughput under a backend, in a fresh `bench.py --worker` subprocess."""
    env = dict(os.environ, KERAS_BACKEND=backend, **(env_extra or {}))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", *ctx.preset_args],
                          env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


# TensorFlow's conv kernels, timed beside the project's default (cli.py: TF_ENABLE_ONEDNN_OPTS=1):
# TensorFlow's own kernels, and oneDNN restricted to AVX2 (what a CPU without AVX-512 gets).
TF_VARIANTS = (("oneDNN off", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
               ("oneDNN limited to AVX2", {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}))


def bench_backends(ctx: Context) -> list[Row]:
    """unet at the default batch size under each requested backend (and TensorFlow kernel variant)."""
    s = ctx.settings
    rows = []
    setting = f"unet batch {s.default_batch}"
    for backend in ctx.backends:
        if not backend_installed(backend):
            rows.append(Row("backends", backend, setting, "skipped", notes=f"`import {backend}` fails here"))
            log(f"backends: {backend}: not installed, skipped")
            continue
        variants = [("", {})] + (list(TF_VARIANTS) if backend == "tensorflow" else [])
        for variant, env_extra in variants:
            item = f"{backend}, {variant}" if variant else backend
            log(f"backends: {item}: {setting} in a subprocess ...")
            try:
                r = run_worker(backend, ctx, env_extra)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as err:
                rows.append(failed_row("backends", item, setting, err))
                continue
            env_note = " ".join(f"{k}={v}" for k, v in env_extra.items())
            rows.append(perf_row(ctx, "backends", item, f"{setting}, jit_compile {r['jit_compile']} (default)",
                                 r["images_per_s"], r["flops_per_image"],
                                 notes=f"subprocess; Keras {r['keras']}" + (f"; {env_note}" if env_note else "")))
            log(f"backends: {item}: {r['images_per_s']:.1f} img/s")
    return rows


def worker(s: Settings) -> None:
    """--worker: one unet training measurement under this process's backend, printed as JSON (last line)."""
    r = measure_training("unet", s.default_batch, None, s)
    print(json.dumps({**r, "backend": keras.backend.backend(), "keras": keras.__version__}))


SECTION_FUNCTIONS = {"train": bench_train, "predict": bench_predict, "prior": bench_prior,
                     "fusion_epochs": bench_fusion_epochs, "data": bench_data, "colorize": bench_colorize, "backends": bench_backends}


# ---- report --------------------------------------------------------------------

def parse_cpu_model(cpuinfo: str) -> str:
    """The first 'model name' of /proc/cpuinfo text ('unknown' if none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return "unknown"


def parse_cpu_isa(cpuinfo: str) -> str:
    """The vector extensions that decide conv speed (oneDNN kernels, XLA), from /proc/cpuinfo flags."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
                            if f in flags) or "no AVX2"
    return "unknown"


def machine_info() -> dict:
    """CPU, cores, versions, backend, date and load: the header of a run's section."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu, isa = parse_cpu_model(cpuinfo), parse_cpu_isa(cpuinfo)
    except OSError:
        cpu, isa = platform.processor() or "unknown", "unknown"
    try:
        import tensorflow as tf
        tf_version = tf.__version__
    except ImportError:
        tf_version = "not installed"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "isa": isa, "cores": os.cpu_count(), "usable_cores": usable, "tensorflow": tf_version,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default"),
            "keras": keras.__version__, "numpy": np.__version__, "backend": keras.backend.backend(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_table(rows: list[Row]) -> str:
    """Rows as one Markdown table."""
    lines = ["| section | item | setting | result | GFLOP/s | % peak | notes |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        cells = (r.section, r.item, r.setting, r.result, _fmt(r.gflops), _fmt(r.pct_peak), r.notes)
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_section(info: dict, command: str, settings_name: str, rows: list[Row], done: bool = True,
                   details: str = "") -> str:
    """A run's section of BENCHMARKS.md: header (machine, versions, command, settings) and the table."""
    load = info.get("load")
    busy = load is not None and load > BUSY_LOAD
    lines = [f"## {info['date']}: {settings_name} run, {info['backend']} backend",
             "",
             f"- command: `{command}`",
             f"- CPU: {info['cpu']} ({info.get('isa', 'unknown')}), {info['cores']} cores "
             f"({info['usable_cores']} usable); TF_ENABLE_ONEDNN_OPTS={info.get('onednn', 'unset')}",
             f"- TensorFlow {info['tensorflow']}, Keras {info['keras']}, NumPy {info['numpy']}, "
             f"Python {info['python']}, backend {info['backend']}",
             f"- load average at start: {_fmt(load, 2) or 'unknown'}"
             + (" (**busy machine: timings unreliable**)" if busy else ""),
             "- inception_resnet_v2 is timed with random weights (same cost as its ImageNet weights)"]
    if details:
        lines.append(f"- settings: {details}")
    if not done:
        lines.append("- **incomplete: the run was interrupted or is still going**")
    return "\n".join(lines) + "\n\n" + render_table(rows)


def _markers(run_id: str) -> tuple[str, str]:
    return f"<!-- bench run {run_id} -->", f"<!-- end bench run {run_id} -->"


def update_benchmarks(path: Path, run_id: str, section: str) -> None:
    """Put a run's section in the file: replaced if the run already wrote one, else appended.

    A new file starts with PREAMBLE. Writing the same (run_id, section) twice leaves the file as
    after the first time; other runs' sections are kept as they are.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else PREAMBLE
    begin, end = _markers(run_id)
    block = f"{begin}\n{section.rstrip()}\n{end}"
    start = text.rfind(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        text = text[:start] + block + text[stop + len(end):]
    else:   # (a section left without its end marker stays as it is)
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---- command line --------------------------------------------------------------

def _csv(choices: tuple[str, ...]):
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; valid: {', '.join(choices)}")
        return items
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    from models import MODEL_NAMES
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES, metavar="NAME",
                   help=f"models of the train and predict sections (default: all: {' '.join(MODEL_NAMES)})")
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true",
                        help="fewer batch sizes (32, 128; XLA at 32), steps and images: under 10 minutes on 2 cores")
    preset.add_argument("--smoke", action="store_true",
                        help="tiny sizes, to check that the script runs; the numbers mean nothing "
                             "and nothing is written unless --out is given")
    p.add_argument("--backends", type=_csv(BACKENDS), default=BACKENDS,
                   help="backends compared in the backends section (default: tensorflow,jax,torch; "
                        "those not installed are skipped)")
    p.add_argument("--sections", type=_csv(SECTIONS), default=SECTIONS,
                   help=f"sections to run (default: all: {','.join(SECTIONS)}); the peak is always measured")
    p.add_argument("--out", type=Path, default=None,
                   help="Markdown file to add this run's section to (default: BENCHMARKS.md; none with --smoke)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)   # tf.function retracing notes: one per new model
    settings = SMOKE if args.smoke else QUICK if args.quick else FULL
    preset_args = ["--smoke"] if args.smoke else ["--quick"] if args.quick else []
    if args.worker:
        worker(settings)
        return 0
    out = args.out if args.out is not None or args.smoke else DEFAULT_OUT
    command = shlex.join(["python", "bench.py", *(sys.argv[1:] if argv is None else argv)])
    info = machine_info()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log(f"bench ({settings.name}): {info['cpu']}, {info['cores']} cores, backend {info['backend']}, "
        f"load average {_fmt(info['load'], 2)}")
    if info["load"] is not None and info["load"] > BUSY_LOAD:
        log(f"warning: the machine is busy (load average {info['load']:.2f} > {BUSY_LOAD}): timings will be low")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context(settings, tuple(args.models), tuple(args.backends), preset_args, Path(tmp))
        rows: list[Row] = []
        steps = [("peak", bench_peak)] + [(name, SECTION_FUNCTIONS[name]) for name in SECTIONS if name in args.sections]
        for i, (name, fn) in enumerate(steps):
            started = time.perf_counter()
            try:
                rows += fn(ctx)
            except Exception as err:   # noqa: BLE001 -- one failed section must not lose the others
                traceback.print_exc()
                rows.append(Row(name, "error", "", "FAILED", notes=f"{type(err).__name__}: {err}"))
                ctx.summary.append(f"section {name} FAILED: {type(err).__name__}: {err}")
            log(f"section {name}: {time.perf_counter() - started:.0f} s")
            if out is not None:
                update_benchmarks(out, run_id, render_section(info, command, settings.name, rows,
                                                              done=i == len(steps) - 1, details=settings.describe()))
    print()
    print(render_table(rows))
    for line in ctx.summary:
        print(line)
    log(f"done{f'; section written to {out}' if out is not None else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
