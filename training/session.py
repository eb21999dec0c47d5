"""One training session: what ``train.py`` does once its arguments are parsed.

Resolves the configuration of a new run (every default made explicit) or reloads a run to resume,
creates the run folder and takes its lock (one writer per run folder), loads the data (and the
fusion priors), builds the model under the ``--strategy`` and hands it to the ``fit`` trainer or
the GAN loop, which continue from the run's newest complete checkpoint (training.checkpointing).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from core import runs
from core.stopping import Stopped
from core.tblog import SummaryWriter
from inference import data_color_space
from loaders.cifar import CifarGenerator, ImageSet, load_data
from models import build_model, get_spec, set_jit
from training import checkpointing, distribute, encoder_data, photo_data, stream_data

# --mixed-precision value -> Keras dtype policy (models.PRECISIONS), recorded in config.json
MIXED_PRECISION = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


@dataclass
class Outcome:
    """What a session did: epochs done, where the run is, whether this process wrote it."""
    model: str
    run_dir: Path
    epochs_done: int
    chief: bool
    log_dir: str | None
    stopped_by: int | None = None   # the signal that stopped training (a checkpoint was saved first)
    step: int = 0                   # the global step of the run's current checkpoint


def run(args) -> Outcome:
    """Train (or resume) as ``train.py``'s parsed arguments ask; progress goes to stdout.

    A SIGTERM, SIGINT or SIGHUP saves a checkpoint at the next step boundary and returns with
    ``stopped_by`` set. The chief process holds the run folder's lock (one writer per run folder).
    """
    spec = get_spec(args.model)
    config, run_dir = prepare_run(args)
    # --strategy: created before TensorFlow starts its runtime (MultiWorkerMirroredStrategy needs that).
    strategy = distribute.create_strategy(
        args.strategy, config["batch_size"] if config else args.batch_size or 32,
        config["seed"] if config else args.seed)
    chief = args.strategy != "multiworker" or distribute.is_chief()   # only the chief writes run and logs
    if config is None:   # a new run: read the data first, so a data error leaves no empty run folder
        args = _with_seed(args)   # a crop bank is drawn from it: known before the data are read
        init_config = _init_config(args, spec)
        train = load_train(args)
        val = load_val(args, args.data is not None, args.image_size)
        config = new_config(args, spec, train, val, init_config)
        if chief:
            run_dir = runs.new_run_dir(spec.name, args.run_dir)
            runs.lock(run_dir)
            if (run_dir / "config.json").exists():   # another train.py created the run in the meantime
                raise runs.RunError(f"{run_dir} already holds a run; continue it with --resume, or choose a new "
                                    "--run-dir")
        else:
            run_dir = distribute.worker_run_dir(None, chief)
        config["run_dir"] = str(run_dir)
        config["log_dir"] = None if args.no_logs else str(args.log_dir or runs.LOGS_DIR / spec.name / run_dir.name)
    else:
        if chief:
            runs.lock(run_dir)   # before reading its checkpoint: no other writer can change it now
        size = config["model_options"]["image_size"]
        train = _reload(config["data"], size, config["seed"])
        val = _reload(config["val_data"], size, config["seed"]) if config["val_data"] else None
        run_dir = distribute.worker_run_dir(run_dir, chief)   # a non-chief: a temporary copy of the checkpoint
    config["distribute"] = distribute.describe(args.strategy, strategy, config["batch_size"])   # this session's
    config["logs"] = config["logs"] and chief
    runs.save_json(run_dir / "config.json", config)
    # The initial weights (a run stopped before its first checkpoint restarts from the same ones); nothing
    # else draws random numbers: the batch order is a function of seed and epoch (loaders.cifar.epoch_order).
    keras.utils.set_random_seed(config["seed"])
    if config.get("deterministic"):
        _deterministic_kernels()
    state = runs.load_state(run_dir)
    if args.resume and runs.current_checkpoint(run_dir, announce=False) is None:
        print("no checkpoint yet: training from the start")

    _precision_note(config["model_options"].get("precision", "float32"))
    print(f"model {spec.name}: {len(train)} training images ({config['data']['description']}), "
          f"{len(val) if val is not None else 0} validation; run folder {run_dir}")
    outcome = Outcome(spec.name, run_dir, state["epoch"], chief, config["log_dir"] if config["logs"] else None)
    writer = SummaryWriter(config["log_dir"]) if config["logs"] else None
    try:
        outcome.epochs_done = _train(spec, config, run_dir, train, val, state, writer, strategy)
    except Stopped as stopped:
        outcome.stopped_by = stopped.signum
        outcome.epochs_done = runs.load_state(run_dir)["epoch"]
    finally:
        if writer is not None:
            writer.close()
    outcome.step = runs.load_state(run_dir)["step"]
    return outcome


def _deterministic_kernels() -> None:
    """--deterministic: kernels that give the same result on every run of the same inputs.

    TensorFlow: op determinism (it also refuses ops that have no deterministic kernel). PyTorch:
    deterministic algorithms. JAX: nothing to switch on the CPU (XLA's CPU kernels measured
    deterministic here); on a GPU set XLA_FLAGS=--xla_gpu_deterministic_ops=true before starting.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch
        torch.use_deterministic_algorithms(True)


def _init_config(args, spec) -> dict | None:
    """The config of the --init run (checked to be a run of this model), or None without --init."""
    if getattr(args, "init", None) is None:
        return None
    if spec.prior != "encoder":
        raise runs.RunError(f"--init starts from a run's weights: only effnet_unet supports it, not {spec.name}")
    return encoder_data.load_init_config(args.init, spec.name)


def new_config(args, spec, train, val, init_config: dict | None = None) -> dict:
    """The resolved configuration of a new run (every default made explicit)."""
    options: dict = {"image_size": args.image_size, "precision": MIXED_PRECISION[args.mixed_precision or "off"]}
    if spec.trainer == "gan":
        options["color_space"] = args.color_space or "rgb"
    if spec.prior == "encoder":
        options.update(encoder_data.model_options(args, train, init_config))
    config = {
        "model": spec.name,
        "model_options": options,
        "data": data_record(train, args.data, args.split, **_crops_record(args, train)),
        "val_data": None if val is None else data_record(val, *_val_source(args), **_val_crop(args)),
        "epochs": args.epochs if args.epochs is not None else 5,
        "batch_size": args.batch_size or 32,
        "steps_per_epoch": args.steps,
        "seed": args.seed if args.seed is not None else random.SystemRandom().randrange(2**31),
        "jit": args.jit or "auto",
        "deterministic": bool(args.deterministic),
        "save_every": args.save_every,
        "keep": args.keep or checkpointing.DEFAULT_KEEP,
        "logs": not args.no_logs,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "versions": runs.versions(),
    }
    if spec.prior == "classifier":
        from priors import DEFAULT_BACKBONE
        config["prior"] = {"backbone": args.prior or DEFAULT_BACKBONE, "weights": args.prior_weights,
                           "allow_random_weights": args.allow_random_prior}
    if spec.trainer == "gan":
        config["sample_every"] = args.sample_every or 100
    if spec.prior == "encoder" and options["head"] == "classification":
        config["class_rebalancing"] = (stream_data.rebalancing(train, config["seed"]) if _streamed(train)
                                       else encoder_data.rebalancing(train))
    if init_config is not None:   # where the weights started from
        config["init"] = {"run_dir": str(args.init), "created": init_config.get("created"),
                          "data": init_config.get("data", {}).get("description"),
                          "train_new_only": bool(getattr(args, "train_new_only", False))}
        config.update(_inherited_views(init_config))
    return config


# Test-time views a run's tools use by default (inference.colorizer): chosen by measurement for a run, so a run
# that starts from its weights starts from its choice too (its temperature comes with its model_options).
DECODING_VIEWS = ("flip_average", "square_view")


def _inherited_views(init_config: dict) -> dict:
    """The --init run's test-time views (config.json flip_average, square_view), where it has them."""
    return {key: init_config[key] for key in DECODING_VIEWS if key in init_config}


def _with_seed(args):
    """``args`` with --seed drawn (and then recorded) when not given."""
    if args.seed is not None:
        return args
    return argparse.Namespace(**{**vars(args), "seed": random.SystemRandom().randrange(2**31)})


def load_train(args) -> ImageSet | stream_data.StreamPhotos:
    """The training images: read whole at --image-size, with --crops-per-photo a crop bank of the photos,
    with --stream-crops the photos themselves (their crops are made batch by batch)."""
    if getattr(args, "stream_crops", False):
        return stream_data.train_data(args)
    if getattr(args, "crops_per_photo", None):
        return photo_data.train_data(args, args.seed)
    return load_data(args.data, args.split, args.image_size, args.limit)


def _streamed(train) -> bool:
    return isinstance(train, stream_data.StreamPhotos)


def _crops_record(args, train) -> dict:
    if _streamed(train):
        return stream_data.record(train)
    return {"crop_bank": photo_data.record(args, train)} if getattr(args, "crops_per_photo", None) else {}


def _photo_crops(args) -> bool:
    """Whether the run trains on crops of photos (then validation is the largest centered square of each)."""
    return bool(getattr(args, "crops_per_photo", None) or getattr(args, "stream_crops", False))


def _val_crop(args) -> dict:
    return {"crop": photo_data.CENTER} if _photo_crops(args) else {}


def _val_source(args) -> tuple[Path | None, str]:
    if args.val_data is None and args.val_split is not None:
        return args.data, args.val_split
    return args.val_data, args.val_split or "train"


def load_val(args, train_path_given: bool, image_size: int):
    """Validation data: as asked, or the default's own validation part when --data was not given."""
    if args.val_data is not None or args.val_split is not None:
        path, split = _val_source(args)
    elif not train_path_given:
        path, split = None, "train"
    else:
        return None
    if _photo_crops(args):   # photos of any size: the largest centered square of each
        return photo_data.val_data(path, split, image_size)
    return load_data(path, split, image_size, None, kind="val", announce=False)


def prepare_run(args):
    """(config, run_dir) of the run to resume; (None, None) for a new run."""
    spec = get_spec(args.model)
    for option in ("save_every", "keep"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise runs.RunError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.resume:
        run_dir = args.run_dir or runs.latest_run(spec.name)
        config = runs.load_config(run_dir)
        if config["model"] != spec.name:
            raise runs.RunError(f"{run_dir} is a run of '{config['model']}', not '{spec.name}'")
        if args.epochs is not None:
            config["epochs"] = args.epochs
        if args.jit is not None:   # a speed setting: may change between sessions (e.g. on a GPU)
            config["jit"] = args.jit
        for option in ("save_every", "keep"):   # when to save: may change too
            if getattr(args, option, None) is not None:
                config[option] = getattr(args, option)
        if getattr(args, "deterministic", False):
            config["deterministic"] = True
        recorded = config["model_options"].get("precision", "float32")
        if args.mixed_precision is not None and MIXED_PRECISION[args.mixed_precision] != recorded:
            # The optimizer state differs (a loss-scale optimizer under float16): keep the run's choice.
            raise runs.RunError(f"{run_dir} was trained with precision {recorded}; --resume keeps it "
                                "(drop --mixed-precision, or start a new run)")
        photo_data.check_resume(args, config, Path(run_dir))   # crop banks and streamed crops
        return config, Path(run_dir)
    return None, None


def _precision_note(precision: str) -> None:
    """float16 is for GPUs: on a CPU it trained the U-Net 6x slower than float32 (BENCHMARKS.md)."""
    if precision == "mixed_float16" and not any(d.lower().startswith(("gpu", "cuda"))
                                                for d in keras.distribution.list_devices()):
        print("note: --mixed-precision float16 without a GPU is slow on CPUs; bfloat16 suits recent CPUs "
              "(AVX-512 BF16, AMX), or leave it off")


def _reload(record: dict, image_size: int, seed: int):
    if stream_data.is_streamed(record):   # the photos reopened, checked to be the run's
        return stream_data.reload(record)
    if photo_data.is_cropped(record):   # a crop bank: rebuilt, and checked to be the run's
        return photo_data.reload(record, image_size, seed)
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
    from training import fit as trainer

    if spec.prior == "encoder":
        return _train_on_features(spec, config, run_dir, train, val, state, writer, strategy)
    train_prior, val_prior = _prior(config, train), _prior(config, val)
    sample_source, sample_prior = (val, val_prior) if val is not None else (train, train_prior)
    samples = trainer.SampleBatch.take(sample_source, sample_prior)
    # --strategy: build, compile, restore and train under the strategy (distribute.scope is a no-op without
    # one); the priors above are inference only and stay outside it.
    with distribute.scope(strategy):
        return _train_model(spec, config, run_dir, train, val, state, writer, strategy, samples, train_prior,
                            val_prior)


def _build(spec, config, strategy):
    """The run's model (under the caller's strategy scope), with --jit and global-batch BatchNorm statistics."""
    built = build_model(spec.name, **config["model_options"])
    set_jit(built, config.get("jit", "auto"))
    distribute.synchronize_batch_norm(built, strategy)   # global-batch statistics with several replicas
    return built


def _train_model(spec, config, run_dir, train, val, state, writer, strategy, samples, train_prior, val_prior) -> int:
    built = _build(spec, config, strategy)
    if spec.trainer == "gan":
        from training import gan_loop
        return gan_loop.train(built, config, run_dir, train, samples, writer, state, strategy)

    color_space = data_color_space(config)
    train_gen = CifarGenerator(train, config["batch_size"], color_space, shuffle=True, prior=train_prior,
                               seed=config["seed"])
    val_gen = None if val is None else CifarGenerator(val, config["batch_size"], color_space, shuffle=False,
                                                      prior=val_prior)
    return _restore_and_fit(built, config, run_dir, train_gen, val_gen, samples, state, writer)


def _restore_and_fit(built, config, run_dir, train_gen, val_gen, samples, state, writer, stream=None) -> int:
    """Continue from the run's newest complete checkpoint (else from --init's weights, if given) and fit."""
    from training import fit as trainer

    found = runs.current_checkpoint(run_dir)
    if (config.get("init") or {}).get("train_new_only"):
        trained = encoder_data.train_new_only(built, Path(config["init"]["run_dir"]))
        print(f"training only the layers {config['init']['run_dir']} lacks: {', '.join(trained)}")
    if found is not None:   # --resume (also after a stop inside epoch 1)
        state = trainer.restore_checkpoint(built, found)
        print(f"resuming after epoch {state['epoch']} (step {state['step']})")
    elif config.get("init"):
        init_dir = Path(config["init"]["run_dir"])
        encoder_data.load_init_weights(built, init_dir, runs.load_config(init_dir))
        print(f"starting from the weights of {config['init']['run_dir']}")
    _write_summary(built, run_dir)
    return trainer.fit(built, config, run_dir, train_gen, val_gen, samples, state, writer,
                       None if found is None else found.step, stream or trainer.StepStream)


def _train_on_features(spec, config, run_dir, train, val, state, writer, strategy) -> int:
    """effnet_unet: the decoder trained on the frozen encoder's taps, cached (training/encoder_data.py) or
    computed per batch of streamed crops (training/stream_data.py)."""
    from training import fit as trainer

    opened = []   # streamed crops' generators, to stop their read-ahead and crop workers at the end
    stream = trainer.StepStream
    if _streamed(train):
        train_gen, val_gen, sample_taps, sample_set = stream_data.generators(config, train, val, config["seed"])
        opened.append(train_gen)
        if config["distribute"]["strategy"] == "multiworker":
            stream = _per_worker_stream(config, train, strategy, opened, train_gen.batch(0, 0))
    else:
        train_gen, val_gen, sample_taps = encoder_data.generators(config, train, val, config["seed"])
        sample_set = val if val is not None else train
    samples = trainer.SampleBatch.take(sample_set, sample_taps)
    try:
        with distribute.scope(strategy):
            built = _build(spec, config, strategy)
            encoder_data.start_encoder(built, config)   # fine-tuning: ImageNet blocks, unless restored or --init below
            return _restore_and_fit(built, config, run_dir, train_gen, val_gen, samples, state, writer, stream)
    finally:
        for generator in opened:
            generator.close()


def _per_worker_stream(config: dict, train, strategy, opened: list, example):
    """--strategy multiworker on streamed crops: each worker reads, encodes and trains its own slice of every
    global batch (distribute.per_worker_stream), instead of making all of it for Keras to keep a slice.
    ``example``: a batch made outside the strategy's scope (its structure and types)."""
    workers = config["distribute"]["workers"]
    print(f"streaming crops: each of the {workers} workers makes its own {config['batch_size'] // workers} of "
          f"every batch of {config['batch_size']}")

    def stream(_whole, steps: int, start: int):
        dataset, made = distribute.per_worker_stream(
            strategy, lambda shard: stream_data.StreamGenerator(config, train, config["seed"], shard=shard),
            steps, start, config["batch_size"], example)
        opened.extend(made)
        return dataset

    return stream


def _write_summary(model, run_dir: Path) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    (run_dir / "summary.txt").write_text("\n".join(lines) + "\n")


def data_record(data: ImageSet, path: Path | None, split: str, **crops) -> dict:
    """What a config stores about a data set (enough to reload it and to recognise it); ``crops``: how a
    crop bank or validation crops were made of the photos (training.photo_data)."""
    return {"path": str(path) if path is not None else None, "split": split, "description": data.description,
            "n_images": len(data), "fingerprint": data.fingerprint(), **crops}
