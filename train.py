"""Train a colorization model: python train.py -m unet   (autoencoder | unet | fusion_label | fusion_resnet | gan)

Writes a run folder runs/<model>/<run-id>/ (config.json, weights, samples/, summary.txt) and
TensorBoard logs to logs/<model>/<run-id>/ (view with: tensorboard --logdir logs/<model>).
"""
from __future__ import annotations

import cli  # noqa: F401  (first: quiets TensorFlow's start-up logging)

import argparse
import random
import sys
import time
from pathlib import Path

import keras

import distribute
import runs
from cli import add_data_args, add_model_arg, data_record, load_data, run_main, versions
from dataset import CifarGenerator
from inference import data_color_space
from models import JIT_CHOICES, build_model, get_spec, set_jit
from tblog import SummaryWriter

# --mixed-precision value -> Keras dtype policy (models.PRECISIONS), recorded in config.json
MIXED_PRECISION = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


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
                   help="continue the run in --run-dir (default: the latest run of the model)")
    # tf.distribute (distribute.py); --batch-size is then the global batch, split between the replicas.
    p.add_argument("--strategy", choices=distribute.STRATEGIES, default="none",
                   help="TensorFlow backend only: mirrored (all local GPUs) or multiworker (several machines, "
                        "TF_CONFIG); --batch-size is the global batch (default: none)")
    g = p.add_argument_group("speed (measurements in BENCHMARKS.md)")
    g.add_argument("--jit", choices=JIT_CHOICES, default=None,
                   help="compile each step: XLA (TensorFlow), jax.jit, torch.compile. auto (default): Keras' "
                        "choice, on for GPUs, off on CPU where XLA measured slower than TensorFlow's oneDNN kernels")
    g.add_argument("--mixed-precision", nargs="?", const="float16", choices=tuple(MIXED_PRECISION), default=None,
                   help="compute in float16 (the flag alone; GPUs with tensor cores) or bfloat16 (TPUs, recent "
                        "CPUs/GPUs), variables in float32; default off (float32)")
    g = p.add_argument_group("fusion_resnet")
    g.add_argument("--prior", default=None, help="classifier backbone: inception_resnet_v2 (the original, "
                                                  "downloads weights) or efficientnet_lite0 (offline)")
    g.add_argument("--prior-weights", default=None, help="local weights file for the backbone")
    g.add_argument("--allow-random-prior", action="store_true",
                   help="TESTS ONLY: use an untrained backbone when weights are missing")
    g = p.add_argument_group("gan")
    g.add_argument("--color-space", choices=("rgb", "lab"), default=None,
                   help="gan: rgb (the original) or lab (generator L -> ab)")
    g.add_argument("--sample-every", type=int, default=None, help="gan: write a sample grid every N steps (default 100)")
    return p.parse_args(argv)


def new_config(args, spec, train, val) -> dict:
    """The resolved configuration of a new run (every default made explicit)."""
    options: dict = {"image_size": args.image_size, "precision": MIXED_PRECISION[args.mixed_precision or "off"]}
    if spec.trainer == "gan":
        options["color_space"] = args.color_space or "rgb"
    config = {
        "model": spec.name,
        "model_options": options,
        "data": data_record(train, args.data, args.split),
        "val_data": None if val is None else data_record(val, *_val_source(args)),
        "epochs": args.epochs if args.epochs is not None else 5,
        "batch_size": args.batch_size or 32,
        "steps_per_epoch": args.steps,
        "seed": args.seed if args.seed is not None else random.SystemRandom().randrange(2**31),
        "jit": args.jit or "auto",
        "logs": not args.no_logs,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "versions": versions(),
    }
    if spec.prior == "classifier":
        from priors import DEFAULT_BACKBONE
        config["prior"] = {"backbone": args.prior or DEFAULT_BACKBONE, "weights": args.prior_weights,
                           "allow_random_weights": args.allow_random_prior}
    if spec.trainer == "gan":
        config["sample_every"] = args.sample_every or 100
    return config


def _val_source(args) -> tuple[Path | None, str]:
    if args.val_data is None and args.val_split is not None:
        return args.data, args.val_split
    return args.val_data, args.val_split or "train"


def load_val(args, train_path_given: bool, image_size: int):
    """Validation data: as asked, or the default's own validation part when --data was not given."""
    if args.val_data is not None or args.val_split is not None:
        path, split = _val_source(args)
        return load_data(path, split, image_size, None, kind="val", announce=False)
    if not train_path_given:
        return load_data(None, "train", image_size, None, kind="val", announce=False)
    return None


def prepare_run(args):
    """(config, run_dir, initial state) for a new run or a resumed one."""
    spec = get_spec(args.model)
    if args.resume:
        run_dir = args.run_dir or runs.latest_run(spec.name)
        config = runs.load_config(run_dir)
        if config["model"] != spec.name:
            raise runs.RunError(f"{run_dir} is a run of '{config['model']}', not '{spec.name}'")
        if args.epochs is not None:
            config["epochs"] = args.epochs
        if args.jit is not None:   # a speed setting: may change between sessions (e.g. on a GPU)
            config["jit"] = args.jit
        recorded = config["model_options"].get("precision", "float32")
        if args.mixed_precision is not None and MIXED_PRECISION[args.mixed_precision] != recorded:
            # The optimizer state differs (a loss-scale optimizer under float16): keep the run's choice.
            raise runs.RunError(f"{run_dir} was trained with precision {recorded}; --resume keeps it "
                                "(drop --mixed-precision, or start a new run)")
        return config, Path(run_dir), runs.load_state(Path(run_dir))
    return None, None, {"epoch": 0, "step": 0}


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = get_spec(args.model)
    config, run_dir, state = prepare_run(args)
    # --strategy: created before TensorFlow starts its runtime (MultiWorkerMirroredStrategy needs that).
    try:
        strategy = distribute.create_strategy(
            args.strategy, config["batch_size"] if config else args.batch_size or 32,
            config["seed"] if config else args.seed)
    except distribute.StrategyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chief = args.strategy != "multiworker" or distribute.is_chief()   # only the chief writes run and logs
    if config is None:   # a new run: read the data first, so a data error leaves no empty run folder
        train = load_data(args.data, args.split, args.image_size, args.limit)
        val = load_val(args, args.data is not None, args.image_size)
        config = new_config(args, spec, train, val)
        run_dir = runs.new_run_dir(spec.name, args.run_dir) if chief else distribute.worker_run_dir(None, chief)
        config["run_dir"] = str(run_dir)
        config["log_dir"] = None if args.no_logs else str(args.log_dir or runs.LOGS_DIR / spec.name / run_dir.name)
    else:
        train = _reload(config["data"], config["model_options"]["image_size"])
        val = _reload(config["val_data"], config["model_options"]["image_size"]) if config["val_data"] else None
        run_dir = distribute.worker_run_dir(run_dir, chief)   # a non-chief: a temporary copy of the checkpoint
    config["distribute"] = distribute.describe(args.strategy, strategy, config["batch_size"])   # this session's
    config["logs"] = config["logs"] and chief
    runs.save_json(run_dir / "config.json", config)
    keras.utils.set_random_seed(config["seed"] + state["epoch"])   # a resumed run continues reproducibly

    _precision_note(config["model_options"].get("precision", "float32"))
    print(f"model {spec.name}: {len(train)} training images ({config['data']['description']}), "
          f"{len(val) if val is not None else 0} validation; run folder {run_dir}")
    writer = SummaryWriter(config["log_dir"]) if config["logs"] else None
    try:
        done = _train(spec, config, run_dir, train, val, state, writer, strategy)
    except KeyboardInterrupt:
        print(f"\ninterrupted: weights saved in {run_dir}; continue with\n"
              f"  python train.py -m {spec.name} --resume --run-dir {run_dir}")
        return 130
    finally:
        if writer is not None:
            writer.close()
    if not chief:   # its run folder is temporary (distribute.worker_run_dir)
        print(f"done: {done} epoch(s); the chief worker saved the run")
        return 0
    print(f"done: {done} epoch(s); weights in {run_dir}")
    if config["logs"]:
        print(f"  tensorboard --logdir {Path(config['log_dir']).parent}")
    print(f"  python predict.py -m {spec.name} --run-dir {run_dir}")
    return 0


def _precision_note(precision: str) -> None:
    """float16 is for GPUs: on a CPU it trained the U-Net 6x slower than float32 (BENCHMARKS.md)."""
    if precision == "mixed_float16" and not any(d.lower().startswith(("gpu", "cuda"))
                                                for d in keras.distribution.list_devices()):
        print("note: --mixed-precision float16 without a GPU is slow on CPUs; bfloat16 suits recent CPUs "
              "(AVX-512 BF16, AMX), or leave it off")


def _reload(record: dict, image_size: int):
    data = load_data(Path(record["path"]) if record["path"] else None, record["split"], image_size, None,
                     announce=False)
    data = data.subset(record["n_images"]) if len(data) > record["n_images"] else data
    if data.fingerprint() != record["fingerprint"]:
        print(f"warning: the data at {record['path']} changed since the run started")
    return data


def _prior(config: dict, data):
    if config.get("prior") is None or data is None:
        return None
    from priors import compute_prior, prior_options
    return compute_prior(data.images, **prior_options(config))


def _train(spec, config, run_dir, train, val, state, writer, strategy=None) -> int:
    import trainer

    train_prior, val_prior = _prior(config, train), _prior(config, val)
    sample_source, sample_prior = (val, val_prior) if val is not None else (train, train_prior)
    samples = trainer.SampleBatch.take(sample_source, sample_prior)
    # --strategy: build, compile, restore and train under the strategy (distribute.scope is a no-op without
    # one); the priors above are inference only and stay outside it.
    with distribute.scope(strategy):
        return _train_model(spec, config, run_dir, train, val, state, writer, strategy, samples, train_prior,
                            val_prior)


def _train_model(spec, config, run_dir, train, val, state, writer, strategy, samples, train_prior, val_prior) -> int:
    import trainer

    built = build_model(spec.name, **config["model_options"])
    set_jit(built, config.get("jit", "auto"))
    distribute.synchronize_batch_norm(built, strategy)   # global-batch statistics with several replicas
    if spec.trainer == "gan":
        import gan_training
        return gan_training.train(built, config, run_dir, train, samples, writer, state, strategy)

    color_space = data_color_space(config)
    train_gen = CifarGenerator(train, config["batch_size"], color_space, shuffle=True, prior=train_prior,
                               seed=config["seed"] + state["epoch"])
    val_gen = None if val is None else CifarGenerator(val, config["batch_size"], color_space, shuffle=False,
                                                      prior=val_prior)
    if runs.weights_file(run_dir).exists():   # --resume (also after a Ctrl-C inside epoch 1)
        state = trainer.restore_checkpoint(built, run_dir)
        print(f"resuming after epoch {state['epoch']}")
    _write_summary(built, run_dir)
    return trainer.fit(built, config, run_dir, train_gen, val_gen, samples, state["epoch"], writer,
                       config.get("steps_per_epoch"))


def _write_summary(model, run_dir: Path) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    (run_dir / "summary.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(run_main(main))
