"""Start-up and per-image latency of the scripts, per runtime (issue 20: start fast).

Every figure is a fresh process as a user starts it (wall time, best of ``startup_repeats``), beside
``python -c "import tensorflow"`` measured the same way, the yardstick of the targets:

- ``--help`` of every script, and of ``dataset.py photos`` and ``dataset.py clips`` (nothing heavy may load
  before the arguments are checked);
- ``colorize.py`` on a 0.14-megapixel photo (scikit-image's ``chelsea``, 451 x 300) with the shipped run,
  through ONNX Runtime (``--runtime onnx``: its files made once first, that first run reported apart)
  and through Keras (``--runtime keras``);
- ``predict.py`` and ``evaluate.py`` on the bundled sample (16 images), each runtime;
- the demo: from ``python demo.py`` to its page served;
- ``colorize.py`` end to end on the same photo enlarged to 2 and 12 megapixels (JPEG), through ONNX Runtime
  (the hints issue's target: 12 MP at most twice 2 MP, by the bests and by the medians; the two sizes
  alternate, at least PHOTO_ROUNDS runs each, so that a drift of the machine falls on both);
- in one process, a shipped Colorizer's per-photo latency (the photo above) for each runtime, after a
  warm-up call.

The lean files are made into a fresh folder of the run (COLORIZE_LEAN_CACHE), so "first use" is what a
new user pays once.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.settings import Context, Row, log
from inference.pretrained import PRETRAINED_DIR
from models import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("train", "predict", "evaluate", "compare", "colorize", "export", "demo", "bench", "dataset")
# (key, command) whose --help is timed
HELPS = tuple((script, f"{script}.py") for script in SCRIPTS) + (
    ("dataset photos", "dataset.py photos"), ("dataset clips", "dataset.py clips"))
SHIPPED = PRETRAINED_DIR / SHIPPED_MODEL   # the shipped run (effnet_unet), given to every script by --run-dir
PHOTO_ROUNDS = 5   # at least this many alternating runs of the 2 and 12 MP photos: their ratio is a target


def _env(ctx: Context) -> dict:
    return {**os.environ, "COLORIZE_LEAN_CACHE": str(ctx.tmp / "lean"), "COLORIZE_RUNTIME": "auto"}


def _run(ctx: Context, args: list[str]) -> float:
    """Wall seconds of ``python ARGS`` from the repository root (it must succeed)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(ctx), capture_output=True, text=True,
                            timeout=900)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed: {(result.stderr or result.stdout)[-300:]}")
    return seconds


def _best(ctx: Context, args: list[str], repeats: int) -> float:
    return min(_run(ctx, args) for _ in range(repeats))


def _demo_page_seconds(ctx: Context) -> float:
    """From starting ``demo.py --port 0`` to its page answering 200."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "demo.py", "--port", "0", "--run-dir", str(SHIPPED)], cwd=ROOT,
                            env=_env(ctx), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                with urllib.request.urlopen(found.group(1), timeout=60) as page:
                    if page.status == 200:
                        return time.perf_counter() - start
        raise RuntimeError("demo.py ended without serving")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _in_process(photo, runtime: str, repeats: int) -> float:
    """Median seconds of one shipped Colorizer's colorize_photo, after a warm-up call."""
    from inference import Colorizer
    colorizer = Colorizer.from_run(SHIPPED, runtime=runtime)
    colorizer.colorize_photo(photo)
    times = []
    for _ in range(max(3, repeats)):
        start = time.perf_counter()
        colorizer.colorize_photo(photo)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_startup(ctx: Context) -> list[Row]:
    import numpy as np
    import skimage.data
    from PIL import Image

    n = ctx.settings.startup_repeats
    rows: list[Row] = []

    def row(item: str, setting: str, seconds: float, notes: str = "") -> float:
        rows.append(Row("startup", item, setting, f"{seconds:.2f} s", notes=notes))
        log(f"startup: {item} ({setting}): {seconds:.2f} s")
        return seconds

    tf = row("import tensorflow", "python -c", _best(ctx, ["-c", "import tensorflow"], n),
             f"best of {n}: the yardstick")
    helps = {}
    for key, command in HELPS:
        seconds = _best(ctx, [*command.split(), "--help"], n)
        helps[key] = row(f"{command} --help", "", seconds, f"best of {n}; {seconds / tf:.2f} x import tensorflow")
    photo = ctx.tmp / "chelsea.png"
    rgb = skimage.data.chelsea()                                   # (300, 451, 3): 0.14 megapixels
    Image.fromarray(rgb).save(photo)
    out = ["--out", str(ctx.tmp / "colorized"), "--run-dir", str(SHIPPED)]
    first = row("colorize.py chelsea.png", "onnx, first use",
                _run(ctx, ["colorize.py", str(photo), *out, "--runtime", "onnx"]),
                "makes the ONNX files (Keras, once per run and working size)")
    lean = row("colorize.py chelsea.png", "onnx", _best(ctx, ["colorize.py", str(photo), *out, "--runtime", "onnx"], n),
               f"best of {n}")
    keras_ = row("colorize.py chelsea.png", "keras",
                 _best(ctx, ["colorize.py", str(photo), *out, "--runtime", "keras"], n), f"best of {n}")
    bigs = {}
    for mp, (w, h) in (("2", (1732, 1155)), ("12", (4243, 2828))):   # chelsea enlarged (Lanczos), JPEG
        bigs[mp] = (ctx.tmp / f"chelsea-{mp}mp.jpg", w, h)
        Image.fromarray(rgb).resize((w, h), Image.LANCZOS).save(bigs[mp][0], quality=92)
        # its working size's file: made, not timed
        _run(ctx, ["colorize.py", str(bigs[mp][0]), *out, "--runtime", "onnx"])
    times = {mp: [] for mp in bigs}
    for _ in range(max(n, PHOTO_ROUNDS)):     # the sizes alternate, so that the machine's drift falls on both
        for mp, (big, *_size) in bigs.items():
            times[mp].append(_run(ctx, ["colorize.py", str(big), *out, "--runtime", "onnx"]))
    sizes, medians = {mp: min(t) for mp, t in times.items()}, {mp: statistics.median(t) for mp, t in times.items()}
    for mp, (_, w, h) in bigs.items():
        row(f"colorize.py {w}x{h} JPEG ({mp} MP)", "onnx", sizes[mp],
            f"best of {len(times[mp])}, alternating with the other size (median {medians[mp]:.2f} s); end to end")
    common = ["--limit", "16", "--run-dir", str(SHIPPED), "-m", "effnet_unet"]
    tools = {"predict.py": ["predict.py", *common, "--out", str(ctx.tmp / "pred")],
             "evaluate.py": ["evaluate.py", *common, "--out", str(ctx.tmp / "eval.json")]}
    _run(ctx, [*tools["predict.py"], "--runtime", "onnx"])          # its 32 x 32 files: made once, not timed
    for name, args in tools.items():
        for runtime in ("onnx", "keras"):
            row(f"{name}, bundled sample (16)", runtime, _best(ctx, [*args, "--runtime", runtime], n), f"best of {n}")
    demo = row("demo.py: page served", "auto", min(_demo_page_seconds(ctx) for _ in range(n)), f"best of {n}")
    os.environ["COLORIZE_LEAN_CACHE"] = str(ctx.tmp / "lean")     # the files made above
    for runtime in ("onnx", "keras"):
        row("Colorizer.colorize_photo, 0.14 MP", runtime, _in_process(np.asarray(rgb), runtime, n),
            "in one process, after a warm-up; median")
    ctx.summary += [
        f"startup: colorize.py --help {helps['colorize']:.2f} s = {helps['colorize'] / tf:.2f} x import tensorflow "
        f"({tf:.2f} s); target <= 0.1: {'PASS' if helps['colorize'] <= 0.1 * tf else 'FAIL'}",
        f"startup: colorize.py on 0.14 MP, onnx {lean:.2f} s = {lean / tf:.2f} x import tensorflow "
        f"(keras {keras_:.2f} s, "
        f"first use {first:.2f} s); target <= 0.5: {'PASS' if lean <= 0.5 * tf else 'FAIL'}",
        f"startup: demo page served in {demo:.2f} s; target <= 5 s: {'PASS' if demo <= 5 else 'FAIL'}",
        f"photos: colorize.py 12 MP {sizes['12']:.2f} s = {sizes['12'] / sizes['2']:.2f} x 2 MP ({sizes['2']:.2f} s), "
        f"bests; medians {medians['12'] / medians['2']:.2f} x; target <= 2 (issue 18): "
        f"{'PASS' if max(sizes['12'] / sizes['2'], medians['12'] / medians['2']) <= 2 else 'FAIL'} (both)",
    ]
    return rows
