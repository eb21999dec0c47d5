"""Build the real-photo evaluation set: python photoset.py [--out data/photos] [--max-side 0] [--keep-debs DIR]

Color photographs from scikit-image's, scikit-learn's and matplotlib's sample images (offline) and
from five Debian wallpaper packages (fetched with `apt-get download`, unpacked with `dpkg-deb -x`,
never installed), each file chosen by eye and listed in evaluation/photoset.py. Writes
<out>/<source>-<name>.jpg|png, and <out>/sources.json and <out>/SOURCES.md: every file with its
source, version, path in the source, size, author and license. Prints one line per file.

Re-running keeps the files already there at the right size (and downloads nothing when all are).
A source that fails (no network, no apt-get) is one line on stderr; the rest is built, exit code 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation import photoset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=photoset.DEFAULT_OUT, help="folder of the set (default: %(default)s)")
    p.add_argument("--max-side", type=int, default=0,
                   help="shrink photos whose longer side is above this many pixels (default: 0, the originals)")
    p.add_argument("--keep-debs", type=Path, default=None, metavar="DIR",
                   help="keep the downloaded .deb files in DIR, and use those already there instead of downloading")
    args = p.parse_args(argv)
    if args.max_side < 0:
        p.error("--max-side must be 0 (keep the originals) or positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = photoset.build(args.out, args.max_side, args.keep_debs, report=print)
    except photoset.PhotoSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for failure in result.failures:
        print(f"error: {failure}", file=sys.stderr)
    print(photoset.summary(result, args.out))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
