"""The data sets: CIFAR-10 (download, export), the real-photo evaluation set (photos) and the test clips (clips).

    python dataset.py download [--dest data]     # official CIFAR-10 python tarball, checked
    python dataset.py export --data DIR --split train --out data/png/train
    python dataset.py photos [--out data/photos] [--max-side 0] [--keep-debs DIR]
    python dataset.py clips [--out results/videoset] [--size 640x360] [--frames 48] [--fps 24]
                            [--only CLIP ...] [--no-photoset]

``python dataset.py COMMAND --help`` says more. The libraries: loaders/cifar.py (CIFAR-10 batch files
and image folders), evaluation/photoset.py (the photo set), evaluation/videoset.py (the clips). No
command imports Keras.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation import photoset, videoset
from loaders import cifar


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch the official CIFAR-10 python tarball (md5 checked) and unpack it into DEST/cifar-10-batches-py."""
    try:
        cifar.download(args.dest, args.timeout)
    except cifar.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the images of a CIFAR-10 batch folder (or image folder) as PNGs named img-<index>-<label>.png."""
    try:
        n = cifar.export_png(cifar.load_images(args.data, args.split), args.out, args.limit)
    except cifar.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {n} PNGs to {args.out}")
    return 0


def cmd_photos(args: argparse.Namespace) -> int:
    """Build the real-photo evaluation set: python dataset.py photos [--out data/photos] [--max-side 0] \
[--keep-debs DIR]

Color photographs from scikit-image's, scikit-learn's and matplotlib's sample images (offline) and
from five Debian wallpaper packages (fetched with `apt-get download`, unpacked with `dpkg-deb -x`,
never installed), each file chosen by eye and listed in evaluation/photoset.py. Writes
<out>/<source>-<name>.jpg|png, and <out>/sources.json and <out>/SOURCES.md: every file with its
source, version, path in the source, size, author and license. Prints one line per file.

Re-running keeps the files already there at the right size (and downloads nothing when all are).
A source that fails (no network, no apt-get) is one line on stderr; the rest is built, exit code 1.
"""
    try:
        result = photoset.build(args.out, args.max_side, args.keep_debs, report=print)
    except photoset.PhotoSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for failure in result.failures:
        print(f"error: {failure}", file=sys.stderr)
    print(photoset.summary(result, args.out))
    return 0 if result.ok else 1


def cmd_clips(args: argparse.Namespace) -> int:
    """Build the test clips with known camera motion: python dataset.py clips [--out results/videoset] [--size 640x360]

Pans, a zoom and a pan with a cut over real photos (scikit-image's samples; the photo set's when
built), each an mp4 with a JSON of every frame's exact transform (evaluation/videoset.py says
which photos, from where, and the JSON's format). Prints one line per clip. Score a run on them with
``python evaluate.py --video results/videoset/*.mp4`` (docs/video.md).
"""
    videoset.build(args.out, args.size, args.frames, args.fps, None if args.no_photoset else videoset.PHOTOSET,
                   args.only)
    return 0


COMMANDS = {"download": cmd_download, "export": cmd_export, "photos": cmd_photos, "clips": cmd_clips}


def size_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x360; got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"clips need at least 16 x 16 pixels, got {w} x {h}")
    return w, h


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download", help="fetch the official CIFAR-10 python tarball and unpack it")
    p.add_argument("--dest", type=Path, default=cifar.DEFAULT_DATA_DIR.parent)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before giving up on the network")
    p = sub.add_parser("export", help="write PNGs named img-<index>-<label>.png from a batch folder")
    p.add_argument("--data", type=Path, required=True, help="CIFAR-10 batch folder (or image folder)")
    p.add_argument("--split", default="train", help="train, test, or batch numbers such as 1-4")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None, help="write only the first N images")

    photos = sub.add_parser("photos", help="build the real-photo evaluation set (data/photos)",
                            description=cmd_photos.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    photos.add_argument("--out", type=Path, default=photoset.DEFAULT_OUT,
                        help="folder of the set (default: %(default)s)")
    photos.add_argument("--max-side", type=int, default=0,
                        help="shrink photos whose longer side is above this many pixels (default: 0, the originals)")
    photos.add_argument("--keep-debs", type=Path, default=None, metavar="DIR",
                        help="keep the downloaded .deb files in DIR, and use those already there "
                             "instead of downloading")

    clips = sub.add_parser("clips", help="build the test clips with known camera motion (results/videoset)",
                           description=cmd_clips.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clips.add_argument("--out", type=Path, default=videoset.DEFAULT_OUT,
                       help="folder of the clips (default: %(default)s)")
    clips.add_argument("--size", type=size_arg, default=videoset.SIZE, metavar="WxH",
                       help="frame size (default: 640x360)")
    clips.add_argument("--frames", type=int, default=videoset.FRAMES, help="frames per clip (default: %(default)s)")
    clips.add_argument("--fps", type=int, default=videoset.FPS, help="frame rate (default: %(default)s)")
    clips.add_argument("--only", nargs="+", default=None, metavar="CLIP",
                       help="only these clips (pan, zoom, cut, pan_photoset)")
    clips.add_argument("--no-photoset", action="store_true",
                       help="scikit-image's photos only, even when data/photos is built")

    args = parser.parse_args(argv)
    if args.command == "photos" and args.max_side < 0:
        photos.error("--max-side must be 0 (keep the originals) or positive")
    if args.command == "clips" and (args.frames < 2 or args.fps < 1):
        clips.error("--frames must be at least 2 and --fps at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
