"""Benchmark (not a test): training, prediction, data, colorize, prior, video and photo-training speed on this machine.

    python bench.py [--models unet gan ...] [--quick] [--backends tensorflow,jax,torch]
                    [--sections train,predict,...] [--out BENCHMARKS.md]

Prints progress lines, then one table, and writes this run's section into BENCHMARKS.md (the
section is rewritten after every benchmark section, so an interrupted run keeps what it
measured; a second run adds its own dated section, with its command line). Run it on a quiet
machine: the load average at start is recorded, and a busy machine is flagged in the output.

The sections, in the order they run (what each measures, and the FLOP convention: the
docstring of ``benchmarks/``):

    peak           float32 matmul, the reference of "% peak"       benchmarks/compute.py
    train          training images/s per model, batch, XLA, bf16   benchmarks/compute.py
    predict        predict_on_batch images/s                       benchmarks/compute.py
    prior          fusion_resnet's classifier prior                benchmarks/compute.py
    fusion_epochs  fusion_resnet vs fusion_label epochs            benchmarks/compute.py
    data           CifarGenerator vs the original loop             benchmarks/pipeline.py
    colorize       full-resolution colorize latency                benchmarks/pipeline.py
    backends       unet under TensorFlow, JAX, PyTorch             benchmarks/backends.py
    startup        scripts' start-up and latency per runtime       benchmarks/startup.py
    video          clips' fps at 480p and 1080p, steps, memory     benchmarks/video.py
    photos         training on photos: loader, crop bank, encoder,  benchmarks/photos.py
                   decoder; cached vs streaming s/epoch
"""
from __future__ import annotations

import os

import cli  # noqa: F401  (first: TensorFlow's environment defaults, as train.py gets them)

# isort: split

import argparse
import logging
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.settings import BACKENDS, FULL, QUICK, SMOKE, Context, Row, log

DEFAULT_OUT = Path(__file__).resolve().parent / "BENCHMARKS.md"


# The sections in the order they run: name -> the module of benchmarks/ whose bench_<name> runs it and
# returns its result rows. Named, not imported: those modules import Keras (seconds), which --help and
# a mistyped option should not wait for.
SECTIONS = {"train": "compute", "predict": "compute", "prior": "compute", "fusion_epochs": "compute",
            "data": "pipeline", "colorize": "pipeline", "backends": "backends", "startup": "startup",
            "video": "video", "photos": "photos"}
PEAK = "peak"   # measured first, always (compute.bench_peak): the reference of "% peak"


def section_function(name: str):
    """bench_<name> of the section's module (PEAK's: compute), imported now."""
    from benchmarks import backends, compute, photos, pipeline, startup, video
    modules = {"compute": compute, "pipeline": pipeline, "backends": backends, "startup": startup, "video": video,
               "photos": photos}
    return getattr(modules[{PEAK: "compute", **SECTIONS}[name]], f"bench_{name}")


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
    p.add_argument("--sections", type=_csv(tuple(SECTIONS)), default=tuple(SECTIONS),
                   help=f"sections to run (default: all: {','.join(SECTIONS)}); the peak is always measured")
    p.add_argument("--out", type=Path, default=None,
                   help="Markdown file to add this run's section to (default: BENCHMARKS.md; none with --smoke)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from benchmarks import backends, report  # Keras: only now that the arguments are checked
    logging.getLogger("tensorflow").setLevel(logging.ERROR)   # tf.function retracing notes: one per new model
    settings = SMOKE if args.smoke else QUICK if args.quick else FULL
    preset_args = ["--smoke"] if args.smoke else ["--quick"] if args.quick else []
    if args.worker:
        backends.worker(settings)
        return 0
    out = args.out if args.out is not None or args.smoke else DEFAULT_OUT
    command = shlex.join(["python", "bench.py", *(sys.argv[1:] if argv is None else argv)])
    info = report.machine_info()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log(f"bench ({settings.name}): {info['cpu']}, {info['cores']} cores, backend {info['backend']}, "
        f"load average {report._fmt(info['load'], 2)}")
    if info["load"] is not None and info["load"] > report.BUSY_LOAD:
        log(f"warning: the machine is busy (load average {info['load']:.2f} > {report.BUSY_LOAD}): timings will be low")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context(settings, tuple(args.models), tuple(args.backends), preset_args, Path(tmp))
        rows: list[Row] = []
        steps = [(name, section_function(name)) for name in [PEAK, *(n for n in SECTIONS if n in args.sections)]]
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
                report.update_benchmarks(out, run_id, report.render_section(info, command, settings.name, rows,
                                                              done=i == len(steps) - 1, details=settings.describe()))
    print()
    print(report.render_table(rows))
    for line in ctx.summary:
        print(line)
    log(f"done{f'; section written to {out}' if out is not None else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
