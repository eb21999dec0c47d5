"""Score a trained model against the gray baseline: python evaluate.py -m unet

Colorizes a data set (default: the validation data, as predict.py), computes PSNR, SSIM, MAE and
colorfulness (see evaluation/metrics.py for the formulas) for the model and for the trivial gray baseline
(a = b = 0) on the same images, prints both side by side and per class, and writes every
figure to results/<model>/eval.json (the library: evaluation/scoring.py).

    python evaluate.py --compare     # every model with a run: results/comparison.md (evaluation/report.py)
"""
from __future__ import annotations

import cli  # noqa: F401  (first: quiets TensorFlow's start-up logging)

import argparse
import itertools
import sys
from pathlib import Path

from cli.errors import run_main
from cli.options import add_compare_args, add_data_args, add_decoding_args, add_model_arg, decoding
from core import runs
from dataset import load_data
from evaluation import metrics, report, scoring


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arg(p, required=False)
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the latest run of the model)")
    add_data_args(p, split_default="test", image_size=False)
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default: results/<model>/eval.json)")
    p.add_argument("--batch-size", type=int, default=64, help="images per prediction batch (default: %(default)s)")
    add_decoding_args(p, sweep=True)
    p.add_argument("--compare", action="store_true",
                   help="evaluate the latest run of every model instead (same as `python compare.py`)")
    add_compare_args(p)
    args = p.parse_args(argv)
    if args.compare:
        if args.model or args.run_dir or args.out:
            p.error("--compare evaluates the latest run of each model: use --models, --runs-dir and --out-dir "
                    "instead of -m, --run-dir and --out")
    elif args.model is None:
        p.error("the following arguments are required: -m/--model (or --compare)")
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compare:
        doc = report.run(args.models, args.data, args.split, args.limit, args.runs_dir, args.out_dir, args.batch_size)
        print(report.summary(doc, args.runs_dir, args.out_dir))
        return 0
    colorizer = scoring.load_colorizer(args.model, args.run_dir, args.runs_dir)
    if colorizer.note:
        print(colorizer.note)
    colorizer.set_decoding(**decoding(args))
    data = load_data(args.data, args.split, colorizer.image_size, args.limit, kind="val")
    print(f"evaluating {colorizer.run_dir} on {len(data)} images ({data.description})")
    model_report, _ = scoring.evaluate(colorizer, data, args.batch_size)
    gray_report = metrics.report(scoring.gray_baseline(data.images), data.images, data.labels)
    result = scoring.result_record(colorizer, data, scoring.data_info(data, *scoring.data_source(args.data, args.split),
                                                                      args.limit), model_report, gray_report)
    settings = sweep_settings(args)
    if settings:
        result["sweep"] = scoring.sweep(colorizer, data, settings, args.batch_size)
    out = args.out or runs.ROOT / "results" / colorizer.spec.name / "eval.json"
    scoring.write_json(out, result)
    print()
    print(scoring.format_result(result))
    if settings:
        print("\nsweep (T: temperature, undo: rebalancing undone, gain: chroma gain):")
        print(scoring.sweep_table(result["sweep"], gray_report))
    print(f"\nwrote {out}")
    return 0


def sweep_settings(args) -> list[dict]:
    """Every combination of --temperatures x --undo-rebalancings x --chroma-gains (one given alone
    varies alone; None: the evaluated setting's)."""
    lists = {"temperature": args.temperatures, "undo_rebalancing": args.undo_rebalancings,
             "chroma_gain": args.chroma_gains}
    if all(v is None for v in lists.values()):
        return []
    axes = [[(k, v) for v in (values or [getattr(args, k)])] for k, values in lists.items()]
    return [dict(combo) for combo in itertools.product(*axes)]


if __name__ == "__main__":
    sys.exit(run_main(main))
