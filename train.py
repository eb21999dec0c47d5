"""Train a colorization model: python train.py -m unet   (autoencoder | unet | fusion_label | fusion_resnet | \
gan | effnet_unet)

Writes a run folder runs/<model>/<run-id>/ (config.json, checkpoints/, samples/, summary.txt) and
TensorBoard logs to logs/<model>/<run-id>/ (view with: tensorboard --logdir logs/<model>).
SIGTERM, Ctrl-C or SIGHUP save a checkpoint at the next step boundary and print the --resume command
(exit status 128 + signal); a second one stops at once, the last complete checkpoint intact.
"""
from __future__ import annotations

import cli  # noqa: F401  (first: TensorFlow's environment, the filter of its start-up log)

# isort: split

import argparse
import sys
from pathlib import Path

from cli.errors import run_main
from cli.options import add_data_args, add_model_arg, check_data
from core.stopping import signal_name
from loaders.photos import DEFAULT_SCALE
from models import JIT_CHOICES, get_spec
from models.effnet_options import FINE_TUNE_FROM, HEADS, HINT_HEADS, LOSSES
from training import checkpointing, distribute, photo_data  # light; training.session (Keras) loads in main

# --mixed-precision's values: the keys of training.session.MIXED_PRECISION, which imports Keras
# (tests/test_startup.py checks that they agree).
MIXED_PRECISION_CHOICES = ("off", "float16", "bfloat16")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arg(p)
    add_data_args(p)
    p.add_argument("--val-data", type=Path, default=None,
                   help="validation folder (default: the sample's val/ with the sample, the test batch with "
                        "the CIFAR-10 download, else none)")
    p.add_argument("--val-split", default=None,
                   help="validation batches of a batch folder, e.g. 5 (uses --data when --val-data is not given)")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (default 5, as the original)")
    p.add_argument("--batch-size", type=int, default=None, help="default 32")
    p.add_argument("--steps", type=int, default=None, help="at most this many batches per epoch (quick trials)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: drawn, and saved in config.json)")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: runs/<model>/<time>)")
    p.add_argument("--no-logs", action="store_true", help="write no TensorBoard logs (the original's use_logs=False)")
    p.add_argument("--log-dir", type=Path, default=None, help="TensorBoard folder (default: logs/<model>/<run-id>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir (default: the latest run of the model) from its newest "
                        "complete checkpoint, at the exact batch where it stopped")
    g = p.add_argument_group("photos of any size: a crop bank or streamed crops (docs/data.md, \"Training on photos\")")
    g.add_argument("--crops-per-photo", type=int, default=None, metavar="K",
                   help="train on K crops of each photo of --data (any size; also a batch folder), at random scales "
                        "and positions drawn from the seed, resized to --image-size, made once by threads and kept "
                        "in memory: N x K x image-size^2 x 3 bytes for N photos (--limit counts photos); "
                        "validation: the largest centered square of each photo. Default: off, images are read whole "
                        "at --image-size")
    g.add_argument("--stream-crops", action="store_true",
                   help="effnet_unet: train on fresh random crops of the photos of --data every epoch (batch i of "
                        "epoch e: the loader's crops drawn from the seed, e and i, mirrored at random, resized to "
                        "--image-size), the frozen encoder's taps computed for every batch instead of cached; "
                        "memory: a few batches whatever the folder's size; validation: the largest centered square "
                        "of each photo. Instead of --crops-per-photo")
    g.add_argument("--crop-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="with --crops-per-photo or --stream-crops: the crops' area as a fraction of the photo's, "
                        f"drawn from [MIN, MAX] (default {DEFAULT_SCALE[0]} {DEFAULT_SCALE[1]})")
    g = p.add_argument_group("checkpoints (each one complete or absent, whatever stops training)")
    g.add_argument("--save-every", type=int, default=None, metavar="N",
                   help="also save a checkpoint every N steps (default: at epoch ends only)")
    g.add_argument("--keep", type=int, default=None, metavar="N",
                   help=f"keep the newest N checkpoints (default {checkpointing.DEFAULT_KEEP})")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels (TensorFlow's op determinism, PyTorch's deterministic algorithms): "
                        "a run stopped and resumed at any step ends with the same weights as one never stopped")
    # tf.distribute (training/distribute.py); --batch-size is then the global batch, split between the replicas.
    p.add_argument("--strategy", choices=distribute.STRATEGIES, default="none",
                   help="TensorFlow backend only: mirrored (all local GPUs) or multiworker (several machines, "
                        "TF_CONFIG); --batch-size is the global batch (default: none)")
    g = p.add_argument_group("speed (measurements in BENCHMARKS.md)")
    g.add_argument("--jit", choices=JIT_CHOICES, default=None,
                   help="compile each step: XLA (TensorFlow), jax.jit, torch.compile. auto (default): Keras' "
                        "choice, on for GPUs, off on CPU where XLA measured slower than TensorFlow's oneDNN kernels")
    g.add_argument("--mixed-precision", nargs="?", const="float16", choices=MIXED_PRECISION_CHOICES, default=None,
                   help="compute in float16 (the flag alone; GPUs with tensor cores) or bfloat16 (TPUs, recent "
                        "CPUs/GPUs), variables in float32; default off (float32)")
    g = p.add_argument_group("fusion_resnet")
    g.add_argument("--prior", default=None, help="classifier backbone: inception_resnet_v2 (the original, "
                                                  "downloads weights) or efficientnet_lite0 (offline)")
    g.add_argument("--prior-weights", default=None, help="local weights file for the backbone")
    g.add_argument("--allow-random-prior", action="store_true",
                   help="TESTS ONLY: use an untrained backbone when weights are missing")
    g = p.add_argument_group("effnet_unet")
    g.add_argument("--head", choices=HEADS, default=None,
                   help="classification over ab bins (default) or regression of ab")
    g.add_argument("--loss", choices=LOSSES, default=None,
                   help="the regression head's loss (default huber; mse is what pooled PSNR measures)")
    g.add_argument("--fine-tune-from", choices=FINE_TUNE_FROM, default=None, metavar="TAP",
                   help="also train the encoder's blocks after this tap (s16: the two stride-32 stages, s8: the last "
                        "four), from their ImageNet weights; default: the encoder stays frozen")
    g.add_argument("--hints", action="store_true", default=None,
                   help="also take color hints (points and a reference's colors), trained with simulated ones "
                        "(core.hints); with no hints given it still colorizes by itself")
    g.add_argument("--hint-head", choices=HINT_HEADS, default=None,
                   help="with --hints, how points become colors: attention_taps (default, the shipped run's: every "
                        "pixel a learned mix of the hinted pixels' colors and its own, the encoder's finest taps "
                        "telling which pixels look alike), attention_own (the same from the decoder's features "
                        "alone), attention (the hinted pixels' only) or gates (the first design: three fixed "
                        "spreads, gated)")
    g.add_argument("--decoder-points", choices=("on", "off"), default=None,
                   help="with --hints: whether the points reach the decoder too (on: the default, as in runs recorded "
                        "before the option) or only the hint head (off, the shipped run's: the decoder's own colors "
                        "ignore them, so a lone point does not tint what is not its)")
    g.add_argument("--encoder-size", type=int, default=None,
                   help="the ImageNet encoder sees the gray image resized to this (default: 4 x --image-size)")
    g.add_argument("--encoder-detail", action="store_true", default=None,
                   help="with --stream-crops: the encoder sees each crop cut at --encoder-size from the photo itself, "
                        "the decoder the same crop area-averaged to --image-size (default: the crop at --image-size "
                        "enlarged, as for CIFAR-10); photos are then colorized the same way")
    g.add_argument("--temperature", type=float, default=None,
                   help="annealed-mean temperature recorded as the run's default for decoding (default 0.6)")
    g.add_argument("--learning-rate", type=float, default=None,
                   help="Adam's initial rate, cosine-decayed to 0 over the run (default 1e-3; 1e-4 with --init)")
    g.add_argument("--init", type=Path, default=None, metavar="RUN_DIR",
                   help="start from the weights of this run (e.g. pretrained/effnet_unet) and fine-tune on --data; "
                        "the architecture is that run's")
    g.add_argument("--train-new-only", action="store_true",
                   help="with --init: train only the layers the --init run does not have (a --hint-head attention "
                        "started from a run with gates); the others keep its weights, so the new run colorizes "
                        "without points exactly as that run")
    g = p.add_argument_group("gan")
    g.add_argument("--color-space", choices=("rgb", "lab"), default=None,
                   help="gan: rgb (the original) or lab (generator L -> ab)")
    g.add_argument("--sample-every", type=int, default=None,
                   help="gan: write a sample grid every N steps (default 100)")
    args = p.parse_args(argv)
    if args.init is not None and args.resume:
        p.error("--init starts a new run from another run's weights; --resume continues a run: use one")
    if args.train_new_only and args.init is None:
        p.error("--train-new-only trains the layers an --init run does not have: give --init RUN_DIR")
    if args.hint_head is not None and not args.hints and args.init is None:
        p.error("--hint-head is the head of a run with --hints: add --hints")
    if args.encoder_detail and not args.stream_crops:
        p.error("--encoder-detail cuts the encoder's crops from the photos: add --stream-crops")
    if args.decoder_points is not None and not args.hints and args.init is None:
        p.error("--decoder-points says where a run with --hints reads its points: add --hints")
    return args


def check_early(args) -> None:
    """The mistakes that need no Keras, said before it loads (seconds): the model's name, the data folders."""
    get_spec(args.model)
    photo_data.check_options(args)
    if not args.resume:   # a resumed run reads the data its config names
        check_data(args.data, args.val_data)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_early(args)
    from training import session  # Keras and its backend: only now that the arguments are checked
    outcome = session.run(args)
    if outcome.stopped_by is not None:
        print(f"\nstopped by {signal_name(outcome.stopped_by)}: checkpoint saved in {outcome.run_dir} "
              f"(step {outcome.step}); continue with\n"
              f"  python train.py -m {outcome.model} --resume --run-dir {outcome.run_dir}", flush=True)
        return 128 + outcome.stopped_by
    if not outcome.chief:   # its run folder is temporary (distribute.worker_run_dir)
        print(f"done: {outcome.epochs_done} epoch(s); the chief worker saved the run")
        return 0
    print(f"done: {outcome.epochs_done} epoch(s); weights in {outcome.run_dir}")
    if outcome.log_dir:
        print(f"  tensorboard --logdir {Path(outcome.log_dir).parent}")
    print(f"  python predict.py -m {outcome.model} --run-dir {outcome.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
