"""Colorize a data set with a trained model and write grid JPEGs: python predict.py -m unet

Each JPEG holds one batch; each row is one sample [gray | generated | original].
"""
from __future__ import annotations

import cli  # noqa: F401  (first: TensorFlow's environment, the filter of its start-up log)

# isort: split

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cli.errors import run_main
from cli.options import (
    add_data_args,
    add_decoding_args,
    add_model_arg,
    add_runtime_args,
    check_data,
    decoding,
    describe_runtime,
)
from core import runs
from core.grids import prediction_grid, save_image
from loaders.cifar import load_data
from models import get_spec


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arg(p)
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the latest run of the model)")
    add_data_args(p, split_default="test", image_size=False)
    p.add_argument("--batch-size", type=int, default=16, help="rows per grid image (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/<model>/)")
    p.add_argument("--scale", type=int, default=1, help="enlarge each 32 px cell this many times")
    add_decoding_args(p)
    add_runtime_args(p)
    p.add_argument("--save-single", action="store_true",
                   help="also write each colorized image as <out>/single/<input name>.png")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.scale < 1:
        p.error("--batch-size and --scale must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    get_spec(args.model)          # the mistakes that need no Keras, said before it loads (seconds)
    check_data(args.data)
    from inference.pretrained import load_run  # the run's network (ONNX Runtime or Keras: --runtime)
    colorizer = load_run(args.model, args.run_dir, runtime=args.runtime).set_decoding(**decoding(args))
    if colorizer.note:
        print(colorizer.note)
    if args.verbose:
        print(describe_runtime(colorizer))
    data = load_data(args.data, args.split, colorizer.image_size, args.limit, kind="val")
    out = args.out or runs.ROOT / "results" / colorizer.spec.name
    print(f"colorizing {len(data)} images ({data.description}) with {colorizer.run_dir}")

    generated = colorizer.colorize(data.images, data.labels)   # (N, S, S, 3) float [0, 1]
    n_grids = 0
    for start in range(0, len(data), args.batch_size):
        stop = start + args.batch_size
        grid = prediction_grid(data.images[start:stop], generated[start:stop], scale=args.scale)
        save_image(grid, out / f"batch-{start // args.batch_size:04d}.jpg")
        n_grids += 1
    if args.save_single:
        single = out / "single"
        single.mkdir(parents=True, exist_ok=True)
        for name, image in zip(data.names, (np.rint(generated * 255)).astype(np.uint8)):
            Image.fromarray(image).save(single / f"{name}.png")
    print(f"wrote {n_grids} grid JPEG(s) [gray | generated | original] to {out}"
          + (f" and {len(data)} PNGs to {out / 'single'}" if args.save_single else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
