"""Sections peak, train, predict, prior and fusion_epochs: the models' arithmetic against the machine's peak."""
from __future__ import annotations

import statistics
import time

import keras
import numpy as np

from benchmarks.flops import forward_flops
from benchmarks.pipeline import source_images
from benchmarks.settings import Context, Row, log
from benchmarks.workloads import (
    build,
    failed_row,
    measure_training,
    network_inputs,
    perf_row,
    release_models,
    throughput,
    timed,
)

PRIOR_BACKBONES = (("efficientnet_lite0", False), ("inception_resnet_v2", True))   # (name, random weights)


def bench_peak(ctx: Context) -> list[Row]:
    """Best float32 n x n matmul GFLOP/s with NumPy and with the Keras backend; sets ctx.peak_gflops."""
    s = ctx.settings
    n = s.matmul_n
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    candidates = {"numpy": lambda: a @ b,
                  f"keras.ops ({keras.backend.backend()})":
                      lambda: keras.ops.convert_to_numpy(keras.ops.matmul(ta, tb))}
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
    from loaders.cifar import CifarGenerator, ImageSet, one_hot

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
                        f"epoch 2: {times.seconds[1]:.1f} s",
                        notes=f"epoch 1 (with tracing): {times.seconds[0]:.1f} s"))
        release_models()
    priors._LOADED.clear()
    return rows
