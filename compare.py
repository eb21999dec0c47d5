"""Compare every trained model on the same images: python compare.py   (or python evaluate.py --compare)

For each model that has a run (the latest one under runs/<model>/), colorizes the same data,
scores it next to the gray baseline (the library: evaluation/report.py), and writes

    results/comparison.md                 Markdown: metrics table, run folders, links to the figures
    results/comparison.json               every figure (with per-class results)
    results/comparison/grid.png           the first images: [gray | each model | original]
    results/comparison/curves-<model>.png training curves from the run's TensorBoard logs

Models without a run, or that cannot run on this data (fusion_label without class labels,
fusion_resnet without its classifier weights), are listed as skipped with the reason.
"""
from __future__ import annotations

import cli  # noqa: F401  (first: TensorFlow's environment, the filter of its start-up log)

# isort: split

import argparse
import sys

from cli.errors import run_main
from cli.options import add_compare_args, add_data_args, check_data


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p, split_default="test", image_size=False)
    p.add_argument("--batch-size", type=int, default=64, help="images per prediction batch (default: %(default)s)")
    add_compare_args(p)
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    check_data(args.data)          # before Keras loads (seconds)
    from evaluation import report  # the models' networks: Keras
    doc = report.run(args.models, args.data, args.split, args.limit, args.runs_dir, args.out_dir, args.batch_size)
    print(report.summary(doc, args.runs_dir, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
