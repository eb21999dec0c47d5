"""Export a trained model for use outside this project: python export.py -m unet --format onnx --out unet.onnx

Formats, all written by Keras' own ``model.export`` (TensorFlow backend): ``savedmodel`` (a
TensorFlow SavedModel folder), ``onnx`` (through tf2onnx) and ``tflite`` (LiteRT, through the
TensorFlow converter; batch fixed at 1). The GAN exports its generator. ``--bake-color`` wraps the
network in the run's color conversion: the exported model takes a gray image and gives RGB, so a
consumer needs no LAB code. A model's further inputs stay inputs: a fusion model's prior,
effnet_unet's encoder taps and, for a run trained with color hints, its local hints and reference
(zeros: no hints).

After writing, the artifact is loaded by its own runtime (tf.saved_model, onnxruntime, the LiteRT
interpreter) and compared with the Keras model on a fixed batch (a hint run's with hints made
from the images' own colors, so the hint paths are compared too). A card beside it, OUT.card.json
and OUT.card.md, documents the tensors (names, shapes, value ranges, color encoding), the parity,
the run's config and metrics (serving/card.py). Exit status: 0 on success, 2 for a usage error or
a model the format cannot express (one line, no traceback).
"""
from __future__ import annotations

import cli  # noqa: F401  (first: TensorFlow's environment, the filter of its start-up log)

# isort: split

import argparse
import sys
from pathlib import Path

from cli.errors import run_main
from cli.options import add_model_arg
from core import runs
from inference import Colorizer, pretrained
from models import get_spec
from serving import card
from serving.export import FORMAT_NAMES, ExportError, check_out, check_ready, export_colorizer, get_format


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arg(p)
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the latest run of the model)")
    p.add_argument("--format", required=True, choices=FORMAT_NAMES, help="artifact format")
    p.add_argument("--out", required=True, type=Path,
                   help="artifact path: a folder for savedmodel, NAME.onnx, NAME.tflite")
    p.add_argument("--bake-color", action="store_true",
                   help="export gray image in, RGB out (the color conversion inside the graph)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = get_spec(args.model)
    fmt = get_format(args.format)
    check_out(fmt, args.out)      # the mistakes that need no Keras first: said before it loads (seconds)
    run_dir = run_of(spec, args.run_dir)
    check_ready(fmt)              # a missing library or another backend (asks Keras): before the model loads
    colorizer = Colorizer.from_run(run_dir, runtime="keras")   # exports the Keras network
    print(f"exporting {spec.name} from {run_dir} to {args.format} ...", flush=True)
    result = export_colorizer(colorizer, args.format, args.out, args.bake_color)
    json_path, md_path = card.paths(args.out)
    print(f"wrote {args.out} ({result['runtime']}; largest difference to Keras "
          f"{result['parity']['max_abs_diff']:.1e}) and its card {json_path}, {md_path}")
    return 0


def run_of(spec, run_dir: Path | None) -> Path:
    """The run to export, found as every tool finds it (inference.pretrained.find_run: ``run_dir``, else the
    latest run of the model, else the shipped one, said in one line), checked to be a run of ``spec`` from its
    config."""
    run_dir, note = pretrained.find_run(spec.name, run_dir)
    if note:
        print(note, flush=True)
    model = get_spec(runs.load_config(run_dir)["model"]).name
    if model != spec.name:
        raise runs.RunError(f"{run_dir} is a run of '{model}', not '{spec.name}'")
    return run_dir


def run(argv=None) -> int:
    """main with user mistakes and formats that cannot express the model as one error line (exit code 2)."""
    return run_main(main, argv, extra_errors=(ExportError,))


if __name__ == "__main__":
    sys.exit(run())
