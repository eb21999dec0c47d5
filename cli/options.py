"""The arguments the scripts share (``-m``, the data options, the comparison options), and the checks of
them that need no Keras (made before a script loads a model)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core import runs
from loaders.cifar import DEFAULT_DATA_DIR, check_folder, relative
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


def check_data(*paths: Path | None) -> None:
    """DataError for a given --data (or --val-data) that is not a folder: said before a model loads
    (seconds), not after. None (not given) passes."""
    for path in paths:
        if path is not None:
            check_folder(path)


def add_compare_args(p: argparse.ArgumentParser) -> None:
    """Options of a comparison (shared by compare.py and ``evaluate.py --compare``)."""
    p.add_argument("--models", default=None,
                   help=f"comma-separated models to compare (default: all: {','.join(MODEL_NAMES)})")
    p.add_argument("--runs-dir", type=Path, default=runs.RUNS_DIR,
                   help="folder holding <model>/<run-id>/ run folders (default: %(default)s)")
    p.add_argument("--out-dir", type=Path, default=runs.ROOT / "results",
                   help="comparison.md, comparison.json and comparison/ go here (default: %(default)s)")


def _positive_floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _unit_floats(text: str) -> list[float]:
    values = _positive_floats(text)
    if not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers from 0 to 1, got {text!r}")
    return values


def add_decoding_args(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """--temperature, --chroma-gain, --undo-rebalancing, --flip-average and --square-view (and, for
    evaluate.py, sweeps of the first three)."""
    parser.add_argument("--temperature", type=float, default=None,
                        help="annealed-mean temperature of a classification head (effnet_unet): 1 = the expected "
                             "color, lower = more colorful (default: the run's; the shipped run's 0.7)")
    parser.add_argument("--chroma-gain", type=float, default=None,
                        help="multiply the predicted a, b by this (any model; default 1)")
    parser.add_argument("--undo-rebalancing", type=float, default=None, metavar="U",
                        help="classification head (effnet_unet): divide this much (0-1) of the training's class "
                             "rebalancing back out; with --temperature 1, 1 gives the expected color, the most "
                             "faithful setting (default: the run's, its config.json's \"undo_rebalancing\", else 0: as "
                             "trained, colorful)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                        help="also colorize the mirror image, mirror its colors back and average the two (any "
                             "model; twice the work; default: the run's, off unless its config.json says "
                             "\"flip_average\": true, as the shipped run's does; --no-flip-average: off)")
    parser.add_argument("--square-view", action=argparse.BooleanOptionalAction, default=None,
                        help="photos and video whose working shape is not square (flexible networks): also "
                             "colorize the photo squashed to a square and average the two chromas (twice the "
                             "network's work; default: the run's, off unless its config.json says "
                             "\"square_view\": true, as the shipped run's does; --no-square-view: off)")
    if sweep:
        parser.add_argument("--temperatures", type=_positive_floats, default=None, metavar="T1,T2,...",
                            help="also score each of these temperatures (e.g. 1,0.6,0.38)")
        parser.add_argument("--chroma-gains", type=_positive_floats, default=None, metavar="G1,G2,...",
                            help="also score each of these chroma gains (e.g. 1,1.2,1.4)")
        parser.add_argument("--undo-rebalancings", type=_unit_floats, default=None, metavar="U1,U2,...",
                            help="also score each of these --undo-rebalancing values (e.g. 0,0.5,1)")


def decoding(args) -> dict:
    """The decoding options of add_decoding_args, as Colorizer.set_decoding's keywords (None: the run's)."""
    return {"temperature": args.temperature, "chroma_gain": args.chroma_gain,
            "undo_rebalancing": args.undo_rebalancing, "flip_average": args.flip_average,
            "square_view": args.square_view}


def add_runtime_args(parser: argparse.ArgumentParser, verbose: bool = True) -> None:
    """--runtime (what runs the network; inference.lean) and, with ``verbose``, -v (say which ran it)."""
    from inference.lean import RUNTIME_ENV, RUNTIMES
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="what runs the network: onnx (ONNX Runtime, no TensorFlow: fast to start; its model "
                             "files are made with Keras on first use and cached in cache/lean/), keras, or auto "
                             f"(onnx where it can serve, else keras; the default, or ${RUNTIME_ENV})")
    if verbose:
        parser.add_argument("-v", "--verbose", action="store_true", help="say which runtime ran the network")


def describe_runtime(colorizer) -> str:
    """One line for -v: the runtime that ran the network, and its version."""
    from importlib.metadata import version
    if colorizer.runtime == "onnx":
        return (f"runtime: onnx (ONNX Runtime {version('onnxruntime')}; model files in "
                f"{colorizer.lean.network_path((0, 0)).parent})")
    import sys

    import keras
    backend = keras.backend.backend()
    return f"runtime: keras {keras.__version__} ({backend} {getattr(sys.modules.get(backend), '__version__', '?')})"
