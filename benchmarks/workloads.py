"""What is timed and how: timing loops, fresh models, one training step on random data."""
from __future__ import annotations

import gc
import math
import statistics
import time

import keras
import numpy as np

from benchmarks.flops import model_training_flops
from benchmarks.settings import Context, Row, Settings, log


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


def build(name: str, jit: bool | None = None, seed: int = 0, precision: str = "float32"):
    """A fresh compiled model (GanModels for the GAN); ``jit`` overrides jit_compile, None keeps the default."""
    from models import build_model, set_jit
    keras.utils.set_random_seed(seed)
    built = build_model(name, precision=precision)
    if jit is not None:
        set_jit(built, "on" if jit else "off")
    return built


def train_step_fn(name: str, built, batch: int, rng):
    """A callable doing one training step on a fixed random batch."""
    from training import gan_loop
    if name == "gan":
        real = _uniform(rng, (batch, *built.generator.outputs[0].shape[1:]), -1.0, 1.0)
        condition = network_inputs(name, built.generator, batch, rng)
        return lambda: gan_loop.train_step(built, real, condition)
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
