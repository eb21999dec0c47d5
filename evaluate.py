"""Score a trained model against the gray baseline: python evaluate.py -m unet

Colorizes a data set (default: the validation data, as predict.py), computes PSNR, SSIM, MAE and
colorfulness (see evaluation/metrics.py for the formulas) for the model and for the trivial gray baseline
(a = b = 0) on the same images, prints both side by side and per class, and writes every
figure to results/<model>/eval.json (the library: evaluation/scoring.py).

    python evaluate.py --compare     # every model with a run: results/comparison.md (evaluation/report.py)

Color hints (a run trained with --hints): --hints 0,1,2,5,10,20,50 scores the model with that many
points drawn from each original (seeded; the training protocol) beside the *spread* baseline with
the same points, and --reference self (each original its own reference) or FILE beside the
*histogram-matched* baseline; on CIFAR-10 data, or with --photos DIR on photos at full resolution
(evaluation/hinted.py). Writes results/<model>/hints.json (--plot: a figure of PSNR and colorfulness
against N).

Video clips: --video CLIP [CLIP ...] colorizes each clip in memory (default: with the shipped
effnet_unet; each frame alone and with stable colors, --modes or --no-stabilize to choose) and
scores every frame against the original: PSNR, SSIM, colorfulness against the gray baseline,
flicker between frames (after the known motion, where the clip's videoset JSON is beside it:
`python dataset.py clips`) and the warping error (evaluation/video.py). Writes results/<model>/video.json.
"""
from __future__ import annotations

import cli  # noqa: F401  (first: TensorFlow's environment, the filter of its start-up log)

# isort: split

import argparse
import itertools
import json
import sys
from pathlib import Path

from cli.errors import run_main
from cli.options import (
    add_compare_args,
    add_data_args,
    add_decoding_args,
    add_model_arg,
    add_runtime_args,
    check_data,
    decoding,
    describe_runtime,
)
from core import runs
from core.grids import save_image
from evaluation import metrics
from inference import HintsNotSupportedError, photos
from inference.video import Stabilization
from loaders.cifar import DataError, image_files, load_data
from models import SHIPPED_MODEL, get_spec


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arg(p, required=False)
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the latest run of the model)")
    add_data_args(p, split_default="test", image_size=False)
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default: results/<model>/eval.json)")
    p.add_argument("--batch-size", type=int, default=64, help="images per prediction batch (default: %(default)s)")
    add_decoding_args(p, sweep=True)
    add_runtime_args(p)
    p.add_argument("--compare", action="store_true",
                   help="evaluate the latest run of every model instead (same as `python compare.py`)")
    g = p.add_argument_group("color hints (a run trained with --hints)")
    g.add_argument("--hints", type=_counts, default=None, metavar="N[,N...]",
                   help="score with N points drawn from each original, against the spread baseline "
                        "(e.g. 0,1,2,5,10,20,50)")
    g.add_argument("--reference", default=None, metavar="self|FILE",
                   help="a global hint: each original's own colors (self) or one image's, against histogram matching")
    g.add_argument("--hint-seed", type=int, default=0, help="seed of the drawn points (default: %(default)s)")
    g.add_argument("--photos", type=Path, default=None, metavar="DIR",
                   help="score on this folder of photos at full resolution instead of --data")
    g.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="--photos: shrink photos whose long side is larger to this first (default: full size)")
    g.add_argument("--work-size", type=int, default=None, metavar="N",
                   help="--photos and --video: the network's working size (long side; default: colorize.py's)")
    g.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="with --hints: PSNR and colorfulness against N")
    g.add_argument("--figure", type=Path, default=None, metavar="JPG",
                   help="with --photos and --hints N (one N above 0): also write a figure, one row per photo: the "
                        "gray input with its N points | no hints | with the points | the original")
    v = p.add_argument_group("video clips (docs/video.md)")
    v.add_argument("--video", nargs="+", type=Path, default=None, metavar="CLIP",
                   help="score on these clips instead of --data (-m default: effnet_unet): each colorized in memory, "
                        "per-frame PSNR, SSIM, colorfulness against gray, flicker (known motion: with the clip's "
                        "videoset JSON beside it) and the warping error; writes results/<model>/video.json")
    modes = v.add_mutually_exclusive_group()
    modes.add_argument("--modes", type=_modes, default=None, metavar="MODE[,MODE...]",
                       help="--video: frame (each frame alone), stable (colors carried along the motion, as "
                            "colorize.py), photo (the photo path per frame) (default: frame,stable)")
    modes.add_argument("--no-stabilize", action="store_true", help="--video: frame by frame only (--modes frame)")
    v.add_argument("--no-warping", action="store_true",
                   help="--video: leave out the warping error (its optical flows are the slow part)")
    for name, kind, what in STABILIZATION_ARGS:
        v.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, metavar="N" if kind is int else "X",
                       help=f"--video, stable: {what} (default: {getattr(Stabilization(), name):g})")
    add_compare_args(p)
    args = p.parse_args(argv)
    video_options = [f"--{n}" for n in ("modes", "no_stabilize", "no_warping", *(a[0] for a in STABILIZATION_ARGS))
                     if getattr(args, n) not in (None, False)]
    if args.video:
        if args.compare or args.hints is not None or args.reference is not None or args.photos or args.plot:
            p.error("--video goes without --compare, --hints, --reference, --photos and --plot")
        if args.model is None:
            args.model = SHIPPED_MODEL
        args.modes = ("frame",) if args.no_stabilize else args.modes or ("frame", "stable")
    elif video_options:
        p.error(f"{', '.join(o.replace('_', '-') for o in video_options)}: only with --video")
    if args.compare:
        if args.model or args.run_dir or args.out:
            p.error("--compare evaluates the latest run of each model: use --models, --runs-dir and --out-dir "
                    "instead of -m, --run-dir and --out")
    elif args.model is None:
        p.error("the following arguments are required: -m/--model (or --compare, or --video)")
    if (args.photos or args.plot) and args.hints is None and args.reference is None:
        p.error("--photos and --plot go with --hints and/or --reference")
    sweeping = [f"--{n}" for n in ("temperatures", "undo_rebalancings", "chroma_gains") if getattr(args, n)]
    if sweeping and (args.video or ((args.hints is not None or args.reference is not None) and not args.photos)):
        p.error(f"{', '.join(s.replace('_', '-') for s in sweeping)}: a decoding sweep scores the run without "
                "hints: on --photos (with --hints), or on --data without --hints and --reference")
    if args.figure is not None and (args.photos is None or args.hints is None or len(args.hints) != 1
                                    or args.hints[0] < 1):
        p.error("--figure goes with --photos and one --hints N above 0")
    if args.reference not in (None, "self") and not Path(args.reference).is_file():
        p.error(f"--reference {args.reference}: no such file (or use 'self')")
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def check_early(args) -> list[Path] | None:
    """The mistakes that need no Keras, said before it loads (seconds): the model's name, the data
    folder, a --photos folder without images, a --video clip that is missing or not a video (its
    container read). Returns the files of --photos (None without it)."""
    if not args.compare:
        get_spec(args.model)
    if args.video:
        from inference import video
        for clip in args.video:
            if not clip.is_file():
                raise DataError(f"{clip}: no such file")
            video.probe(clip)     # VideoError (a DataError): one line
        return None
    if args.compare or args.photos is None:
        check_data(args.data)
        return None
    paths = image_files(args.photos)
    if not paths:
        raise DataError(f"{args.photos}: no image files in this folder")
    return paths


def main(argv=None) -> int:
    args = parse_args(argv)
    photo_files = check_early(args)
    from evaluation import report, scoring  # the models' networks (Keras): only now that the arguments are checked
    if args.compare:
        doc = report.run(args.models, args.data, args.split, args.limit, args.runs_dir, args.out_dir, args.batch_size)
        print(report.summary(doc, args.runs_dir, args.out_dir))
        return 0
    colorizer = scoring.load_colorizer(args.model, args.run_dir, args.runs_dir, args.runtime)
    if colorizer.note:
        print(colorizer.note)
    if args.verbose:
        print(describe_runtime(colorizer))
    colorizer.set_decoding(**decoding(args))
    if args.video:
        return _video(args, colorizer)
    if args.hints is not None or args.reference is not None:
        return _hinted(args, colorizer, photo_files)
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


# The Stabilization fields evaluate.py --video can override: (name, type, what it is).
STABILIZATION_ARGS = (
    ("carry", float, "weight of the carried color where the flow is trusted"),
    ("fb_sigma", float, "forward-backward flow error (flow-size pixels) that lowers that weight to 1/e"),
    ("l_sigma", float, "lightness difference (L units) that lowers that weight to 1/e"),
    ("cut_l", float, "mean lightness difference above which a scene cut is declared"),
    ("flow_long_side", int, "long side of the flow and the carried colors"),
)


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in ("frame", "stable", "photo")]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"expected frame, stable and/or photo (e.g. frame,stable), got {text!r}")
    return modes


def _video(args, colorizer) -> int:
    """evaluate.py --video: each clip colorized in memory in each mode, scored (evaluation/video.py)."""
    import dataclasses

    from evaluation import scoring
    from evaluation import video as vmetrics
    overrides = {name: getattr(args, name) for name, _, _ in STABILIZATION_ARGS if getattr(args, name) is not None}
    settings = dataclasses.replace(Stabilization(), **overrides)
    print(f"scoring {colorizer.run_dir} on {len(args.video)} clip(s), modes {', '.join(args.modes)}"
          + (f", {', '.join(f'{k} {v}' for k, v in overrides.items())}" if overrides else ""))
    doc = vmetrics.evaluate_clips(colorizer, args.video, args.modes, args.work_size, settings,
                                  warping=not args.no_warping, report=lambda line: print(f"  {line}", flush=True))
    doc = {"model": colorizer.spec.name, "run_dir": str(colorizer.run_dir), "runtime": colorizer.runtime,
           "decoding": colorizer.decoding_settings,
           **doc}
    out = args.out or runs.ROOT / "results" / colorizer.spec.name / "video.json"
    scoring.write_json(out, vmetrics.json_ready(doc))
    print(f"\nwrote {out}")
    return 0


def _counts(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers of points like 10 or 0,1,2,5,10, got {text!r}") from None
    if any(n < 0 for n in counts):
        raise argparse.ArgumentTypeError(f"numbers of points must be 0 or more, got {text!r}")
    return counts


def _hinted(args, colorizer, paths: list[Path] | None) -> int:
    """evaluate.py --hints / --reference: hinted colorization against the spread and histogram baselines,
    on the photos ``paths`` (the files of --photos) or, when None, on --data."""
    from evaluation import hinted, scoring  # hinted's baselines: scikit-image
    if not colorizer.takes_hints:
        raise HintsNotSupportedError(f"{colorizer.run_dir} was not trained with hints: --hints and --reference need "
                                     "a run trained with `train.py -m effnet_unet --hints` (the shipped one)")
    counts = args.hints if args.hints is not None else [0]
    reference = None
    if args.reference == "self":
        reference = "self"
    elif args.reference is not None:
        reference = photos.read_full(Path(args.reference))
    if paths is not None:
        print(f"scoring {colorizer.run_dir} with hints on {len(paths)} photos in {args.photos} (full resolution"
              f"{f', long side at most {args.max_side}' if args.max_side else ''})")
        images = (hinted.shrink(photos.read_full(p), args.max_side) for p in paths)
        result = hinted.score_images(colorizer, images, counts, args.hint_seed, reference, args.work_size,
                                     progress=lambda i: print(f"  {i}/{len(paths)} photos", flush=True))
        result["data"] = {"photos": str(args.photos), "n_images": len(paths), "max_side": args.max_side,
                          "work_size": colorizer.used_work_size(args.work_size)}
        settings = sweep_settings(args)
        if settings:
            print(f"decoding sweep: {len(settings)} settings, the network run once per photo")
            kept = [hinted.shrink(photos.read_full(p), args.max_side) for p in paths]
            result["sweep"] = hinted.sweep_photos(colorizer, kept, settings, args.work_size,
                                                  progress=lambda i: print(f"  {i}/{len(settings)} settings",
                                                                           flush=True))
        if args.figure is not None:
            images = (hinted.shrink(photos.read_full(p), args.max_side) for p in paths)
            save_image(hinted.figure(colorizer, images, args.hints[0], args.hint_seed, args.work_size), args.figure)
            print(f"wrote {args.figure}")
    else:
        data = load_data(args.data, args.split, colorizer.image_size, args.limit, kind="val")
        print(f"scoring {colorizer.run_dir} with hints on {len(data)} images ({data.description})")
        result = hinted.score_cifar(colorizer, data.images, counts, args.hint_seed, reference, args.batch_size)
        result["data"] = scoring.data_info(data, *scoring.data_source(args.data, args.split), args.limit)
    result.update(model=colorizer.spec.name, run_dir=str(colorizer.run_dir), reference_file=args.reference,
                  decoding=colorizer.decoding_settings)
    out = args.out or runs.ROOT / "results" / colorizer.spec.name / "hints.json"
    scoring.write_json(out, json.loads(json.dumps(result, default=str)))
    print()
    print(hinted.table(result))
    if result.get("sweep"):
        print("\nsweep without hints (T: temperature, undo: rebalancing undone, gain: chroma gain):")
        print(scoring.sweep_table(result["sweep"], result["gray"]))
    if args.plot is not None:
        hinted.plot(result, args.plot, f"{colorizer.spec.name}: {result['data'].get('description') or args.photos}")
        print(f"wrote {args.plot}")
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
