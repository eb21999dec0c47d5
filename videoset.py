"""Build the test clips with known camera motion: python videoset.py [--out results/videoset] [--size 640x360]

Pans, a zoom and a pan with a cut over real photos (scikit-image's samples; the photo set's when
built), each an mp4 with a JSON of every frame's exact transform (evaluation/videoset.py says
which photos, from where, and the JSON's format). Prints one line per clip. Score a run on them with
``python evaluate.py --video results/videoset/*.mp4`` (docs/video.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation import videoset


def size_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x360; got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"clips need at least 16 x 16 pixels, got {w} x {h}")
    return w, h


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=videoset.DEFAULT_OUT, help="folder of the clips (default: %(default)s)")
    p.add_argument("--size", type=size_arg, default=videoset.SIZE, metavar="WxH", help="frame size (default: 640x360)")
    p.add_argument("--frames", type=int, default=videoset.FRAMES, help="frames per clip (default: %(default)s)")
    p.add_argument("--fps", type=int, default=videoset.FPS, help="frame rate (default: %(default)s)")
    p.add_argument("--only", nargs="+", default=None, metavar="CLIP", help="only these clips (pan, zoom, cut, pan_photoset)")
    p.add_argument("--no-photoset", action="store_true", help="scikit-image's photos only, even when data/photos is built")
    args = p.parse_args(argv)
    if args.frames < 2 or args.fps < 1:
        p.error("--frames must be at least 2 and --fps at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    videoset.build(args.out, args.size, args.frames, args.fps, None if args.no_photoset else videoset.PHOTOSET,
                   args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
