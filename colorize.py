"""Colorize photos of any size at full resolution, and video clips: python colorize.py photo.jpg clip.mp4 folder/ ...

Without -m, the shipped model (effnet_unet; its trained run ships in pretrained/effnet_unet, used
when you have no run of your own under runs/effnet_unet).

The model sees the input's gray version at a small working size (effnet_unet: the photo's aspect
ratio, long side --work-size; the other models: their 32 x 32); its chroma is brought back to full
size guided by the input's own lightness, so the output keeps the input's size, lightness and
detail, and colors stop at its edges (how, and why: inference/fullres.py).

Color hints (a run trained with --hints, such as the shipped one): --hints FILE for one input
(JSON: {"points": [{"x": 120, "y": 45, "color": "#3a7d2c"}], "reference": "beach.jpg"}; x, y in
the input's pixels), STEM.hints.json beside each image of a folder, --reference IMAGE for every
input (its colors are the global hint). A bad hints file stops before any work, in one line.

Outputs are PNGs: <out>/<stem>.png (files found in a folder keep their sub-folders), and with
--compare additionally <out>/<stem>-compare.png = [gray input | colorized] side by side.
Color inputs are turned gray first, so the model only sees L.

Video clips (mp4, mkv, webm, mov, avi, animated GIF), given or found in folders, are colorized frame
by frame into the same container, <out>/<stem><suffix> (same size, frame count and rate; audio copied),
with a progress line on stderr (frames, fps, time left). Colors are carried along the motion between
frames, so they do not flicker; --no-stabilize colorizes each frame alone (for comparison). Hints
apply to a clip too: --reference for every frame, points in the first frame's pixels (then carried
along the motion; dropped at a scene cut). --compare is for photos: it is ignored for clips, with a
note. How, and what was measured: inference/video.py, docs/video.md.

Bad inputs (missing, not an image, truncated, above MAX_PIXELS, decompression bombs; a damaged or
truncated clip, whose frames before the damage are still written) are reported one per line, naming
the file; the others are still processed. Exit status: 0 when every file was colorized, 1 when any
failed, 2 for usage errors (bad options, no usable run, a bad hints file). SIGTERM, SIGINT (Ctrl-C) or
SIGHUP stop after the image in progress, or a clip after its frame in progress (the clip closed and
playable, said so), keeping every output written (128 + signal).
"""
from __future__ import annotations

import cli  # noqa: F401  (first: quiets TensorFlow's start-up logging)

# isort: split

import argparse
import sys
from pathlib import Path

from PIL import Image

from cli.errors import run_main
from cli.options import add_decoding_args, add_runtime_args, decoding, describe_runtime
from core import runs
from core.stopping import GracefulStop, signal_name
from inference import MissingLabelError, photos
from inference.pretrained import load_run
from loaders.cifar import CLASS_NAMES, MAX_PIXELS
from models import MODEL_NAMES, SHIPPED_MODEL, get_spec


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--model", default=SHIPPED_MODEL, metavar="NAME",
                   help=f"one of: {', '.join(MODEL_NAMES)} "
                        "(default: %(default)s, whose trained run ships with the code)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="image and video files (mp4, mkv, webm, mov, avi, animated GIF), or folders searched "
                        "recursively for them")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the latest run of the model)")
    p.add_argument("--out", type=Path, default=runs.ROOT / "results" / "colorized",
                   help="output folder (default: results/colorized)")
    p.add_argument("--label", choices=CLASS_NAMES, default=None, metavar="CLASS",
                   help=f"fusion_label: the class of every input, one of {', '.join(CLASS_NAMES)}")
    p.add_argument("--compare", action="store_true",
                   help="photos: also write <stem>-compare.png: [gray input | colorized] side by side "
                        "(ignored for clips)")
    p.add_argument("--hints", type=Path, default=None, metavar="FILE",
                   help="color hints for the (one) input: JSON with points (x, y, color, radius) and a reference "
                        "image; for a folder, STEM.hints.json beside an image or clip applies to it; a clip's "
                        "points are in its first frame's pixels")
    p.add_argument("--reference", type=Path, default=None, metavar="IMAGE",
                   help="a color image whose colors guide every input (a global hint; every frame of a clip)")
    p.add_argument("--no-stabilize", action="store_true",
                   help="clips: colorize each frame alone instead of carrying colors along the motion "
                        "(for comparison: the colors flicker)")
    p.add_argument("--work-size", type=int, default=None, metavar="N",
                   help="the long side of the size the network works at, aspect ratio kept: effnet_unet (a multiple "
                        "of 8; default: the run's, config.json work_size, else its training size: 32 for the "
                        "shipped run), unet and gan (a multiple of 32; default: their 32 x 32); "
                        "the other models work at 32 x 32 only")
    add_decoding_args(p)
    add_runtime_args(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = get_spec(args.model)
    if spec.prior == "label" and args.label is None:
        # checked before the model loads: one line, exit 2
        raise MissingLabelError(f"{spec.name} needs the class of the inputs: pass --label CLASS, "
                                f"one of {', '.join(CLASS_NAMES)}")
    if args.label is not None and spec.prior != "label":
        print(f"note: --label is ignored by {spec.name}")
    # Pillow refuses (DecompressionBombError) images above twice this before decoding; open_image
    # refuses those above MAX_PIXELS itself. Set here, not at import: other tools keep Pillow's default.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if args.work_size is not None and (args.work_size < 8 or args.work_size % 8):
        raise photos.HintsError(f"--work-size must be a multiple of 8 of at least 8, got {args.work_size}")
    jobs, errors = photos.collect_jobs(args.inputs, args.out)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    hint_errors = photos.attach_hints(jobs, args.hints, args.reference)   # before the model loads
    if hint_errors:
        raise photos.HintsError("; ".join(hint_errors))
    if not jobs:   # nothing to colorize: said without loading a model (seconds)
        print(f"colorized nothing: {len(errors)} error(s), listed above" if errors else "colorized nothing: no input")
        return 1
    clips = sum(job.video for job in jobs)
    if clips and args.compare:
        print(f"note: --compare is for photos: ignored for the {clips} clip(s)")
    if args.no_stabilize and not clips:
        print("note: --no-stabilize is for clips: there are none")
    colorizer = load_run(spec.name, args.run_dir, runtime=args.runtime).set_decoding(**decoding(args))
    if colorizer.note:
        print(colorizer.note)
    if any(job.hints for job in jobs) and not colorizer.takes_hints:
        raise photos.HintsError(f"{colorizer.run_dir} ({spec.name}) was not trained with hints: leave out --hints, "
                         "--reference and STEM.hints.json files, or use a run trained with --hints (the shipped one)")
    if args.work_size is not None and colorizer.fixed_size_note(args.work_size):
        print(f"note: {colorizer.fixed_size_note(args.work_size)}; --work-size is ignored")
    run_dir = colorizer.run_dir
    if args.verbose:
        print(describe_runtime(colorizer))
    label = None if args.label is None or spec.prior != "label" else CLASS_NAMES.index(args.label)
    what = ("stopping after the current image or frame (the files written so far are complete; a clip in "
            "progress is closed, playable, at that frame)" if clips else
            "stopping after the current image (the images written so far are complete)")
    with GracefulStop(what) as stop:
        n_done, failed = photos.colorize_files(colorizer, jobs, label, args.compare, stop, args.work_size,
                                               stabilize=not args.no_stabilize)
    errors += failed
    files = "clip(s)" if clips == len(jobs) and clips else "file(s)" if clips else "image(s)"
    if stop.requested:
        cut = [job for job in jobs if job.stats is not None and job.stats.stopped]
        partial = "".join(f"; {job.out} holds the first {job.stats.frames} frame(s) of {job.source} (closed and "
                          "playable)" for job in cut)
        print(f"interrupted by {signal_name(stop.signum)}: colorized {n_done} of {len(jobs)} {files} into "
              f"{args.out} (each one complete){partial}; run the command again for the rest")
        return 128 + stop.signum
    print(f"colorized {n_done} of {len(jobs)} {files} with {run_dir} into {args.out}"
          + (f"; {len(errors)} error(s), listed above" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
