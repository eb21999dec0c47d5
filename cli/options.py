"""The arguments the scripts share (``-m``, the data options, the comparison options)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core import runs
from dataset import DEFAULT_DATA_DIR, relative
from models import MODEL_NAMES


def add_model_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    # No `choices=`: the registry's own error lists the valid names in one line.
    parser.add_argument("-m", "--model", required=required, metavar="NAME",
                        help=f"one of: {', '.join(MODEL_NAMES)}")


def add_data_args(parser: argparse.ArgumentParser, split_default: str = "train", image_size: bool = True) -> None:
    """--data, --split, --limit, and --image-size where the size is a choice (training, not a run's tools)."""
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of images (img-<index>-<class>.png) or a CIFAR-10 batch folder "
                             f"(default: {relative(DEFAULT_DATA_DIR)} if present, else the bundled sample)")
    parser.add_argument("--split", default=split_default,
                        help="for batch folders: train, test, or batch numbers such as 1-4 (default: %(default)s)")
    if image_size:
        parser.add_argument("--image-size", type=int, default=32,
                            help="images are resized to this size (default: 32)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")


def add_compare_args(p: argparse.ArgumentParser) -> None:
    """Options of a comparison (shared by compare.py and ``evaluate.py --compare``)."""
    p.add_argument("--models", default=None,
                   help=f"comma-separated models to compare (default: all: {','.join(MODEL_NAMES)})")
    p.add_argument("--runs-dir", type=Path, default=runs.RUNS_DIR,
                   help="folder holding <model>/<run-id>/ run folders (default: %(default)s)")
    p.add_argument("--out-dir", type=Path, default=runs.ROOT / "results",
                   help="comparison.md, comparison.json and comparison/ go here (default: %(default)s)")
