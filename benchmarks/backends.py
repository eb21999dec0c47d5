"""The backends section: unet training under each Keras backend, each in a ``bench.py --worker`` subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras

from benchmarks.settings import BACKENDS, Context, Row, Settings, log  # noqa: F401  (BACKENDS: re-exported)
from benchmarks.workloads import failed_row, measure_training, perf_row

ROOT = Path(__file__).resolve().parents[1]   # where bench.py is


def backend_installed(backend: str) -> bool:
    """Whether this interpreter can import the backend's package (checked in a subprocess)."""
    return subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True).returncode == 0


def run_worker(backend: str, ctx: Context, env_extra: dict | None = None) -> dict:
    """unet training throughput under a backend, in a fresh `bench.py --worker` subprocess."""
    env = dict(os.environ, KERAS_BACKEND=backend, **(env_extra or {}))
    proc = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--worker", *ctx.preset_args],
                          env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


# TensorFlow's conv kernels, timed beside the project's default (cli/__init__.py: TF_ENABLE_ONEDNN_OPTS=1):
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
