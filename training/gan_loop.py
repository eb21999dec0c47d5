"""The GAN's manual training loop (the original's ``train_on_batch`` loop), backend-neutral Keras.

Per batch: the generator colorizes the conditions; the discriminator learns real -> 1 and
fake -> 0 (least squares); then the combined model trains the generator to make the frozen
discriminator answer 1, plus 100 x the L1 distance to the real colors.

Every step logs ``g_loss`` (total), ``g_adv`` (least-squares term), ``g_l1`` (mean absolute error,
unweighted), ``d_loss`` and ``d_acc`` to TensorBoard (``train`` subfolder); every
``sample_every`` steps and at each epoch end a sample grid goes to ``run_dir/samples`` and
TensorBoard. Each epoch end, every ``--save-every`` steps, and a stop signal (SIGTERM, Ctrl-C,
SIGHUP: at the next step boundary) save a checkpoint (training.checkpointing), from which
``train.py --resume`` continues at the exact batch where it stopped.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from core import checkpoints, faults, runs
from core.grids import save_image
from inference import Colorizer, data_color_space
from loaders.cifar import CifarGenerator
from training import checkpointing, distribute

SAMPLE_TAG = "samples [gray | generated | original]"
COMBINED_OPTIMIZER_FILE = "combined.optimizer.npz"
PRINT_EVERY = 10   # steps between progress lines when stdout is not a terminal


def set_discriminator_trainable(models, trainable: bool) -> None:
    """The one place that toggles D (Keras 3 pitfalls 1-2).

    Keras 3 reads ``trainable`` when a train step runs, not at ``compile()``: D must be trainable
    right before ``discriminator.train_on_batch`` and frozen right before
    ``combined.train_on_batch``. The combined model's optimizer fixes its variable list on first
    use, so its first step must run with D frozen (else it adopts D's variables).
    """
    models.discriminator.trainable = trainable


def train_step(models, real: np.ndarray, condition: np.ndarray, strategy=None) -> dict[str, float]:
    """One step on a batch: real colors (B, S, S, C) and conditions (B, S, S, C'), both in [-1, 1].

    ``strategy`` (train.py --strategy, models built in its scope): the batch is the global batch, and
    every model call gets it through ``shard``, which gives each replica its own slice of it
    (distribute.shard_batch; under a strategy, train_on_batch on a plain array would give every
    replica the whole batch, and predict_on_batch would return it once per replica). Gradients are
    all-reduced, so each update and each logged value is the mean over the global batch, as on one
    device when the replicas divide the batch evenly (train.py requires it of --batch-size).
    Without a strategy ``shard`` returns its argument: the step is the original's.
    """
    def shard(array):
        return distribute.shard_batch(strategy, array)

    n = len(real)   # the last batch of an epoch can be smaller: size the targets from it
    valid = np.ones((n, *models.patch_shape), np.float32)
    fake_target = np.zeros_like(valid)
    # As the original (generator.predict): the fakes come from G in inference mode; under a strategy
    # each replica colorizes its slice and predict_on_batch returns the global batch, in order.
    fake = np.asarray(models.generator.predict_on_batch(shard(condition)))

    set_discriminator_trainable(models, True)
    d_real = models.discriminator.train_on_batch([shard(real), shard(condition)], shard(valid), return_dict=True)
    d_fake = models.discriminator.train_on_batch([shard(fake), shard(condition)], shard(fake_target),
                                                 return_dict=True)

    set_discriminator_trainable(models, False)
    g = models.combined.train_on_batch(shard(condition), [shard(valid), shard(real)], return_dict=True)
    # combined's logs: "loss" (total), "<D name>_loss" (mse), "<G name>_loss" (mae, unweighted)
    return {
        "g_loss": float(g["loss"]),
        "g_adv": float(g[f"{models.discriminator.name}_loss"]),
        "g_l1": float(g[f"{models.generator.name}_loss"]),
        "d_loss": 0.5 * (float(d_real["loss"]) + float(d_fake["loss"])),
        "d_acc": 0.5 * (float(d_real["accuracy"]) + float(d_fake["accuracy"])),
    }


# ---- checkpoints -------------------------------------------------------------

def checkpoint_writers(models) -> dict:
    """The files of one GAN checkpoint: G's and D's weights (D's file holds its optimizer state too) and
    the combined model's optimizer (G's Adam), which Keras cannot store with a model it does not own."""
    writers = {"generator.weights.h5": models.generator.save_weights,
               "discriminator.weights.h5": models.discriminator.save_weights}
    if models.combined.optimizer.built:
        writers[COMBINED_OPTIMIZER_FILE] = lambda path: runs.save_optimizer(models.combined.optimizer, path)
    return writers


def save_checkpoint(models, run_dir: Path, state: dict, keep: int = checkpointing.DEFAULT_KEEP) -> None:
    """One checkpoint of the GAN (core.checkpoints: written whole or not at all) with ``state``."""
    checkpoints.write(Path(run_dir), int(state["step"]), state, checkpoint_writers(models), keep=keep)


def build_for_sharded_batches(models, real: np.ndarray, condition: np.ndarray) -> None:
    """Build D's and the combined model's compiled state from a plain batch, before sharded steps.

    train_on_batch builds a model's losses, metrics and optimizer from the shapes of its first
    batch, and cannot read them from the per-replica values train_step passes under a strategy
    (AttributeError: 'PerReplica' object has no attribute 'shape'). test_on_batch on one plain image
    builds them without training (BatchNorm in inference mode: no weight changes); D's flag is set as
    in the step that trains each model, so each optimizer adopts the right variables (pitfall 2).
    """
    valid = np.ones((1, *models.patch_shape), np.float32)
    set_discriminator_trainable(models, True)
    models.discriminator.test_on_batch([real[:1], condition[:1]], valid)
    set_discriminator_trainable(models, False)
    models.combined.test_on_batch(condition[:1], [valid, real[:1]])


def restore_checkpoint(models, source) -> dict:
    """Load a checkpoint (a core.checkpoints.Checkpoint, or a run folder's current one) into the GAN;
    returns its state. RunError (one line) if there is none or it does not fit."""
    checkpoint = source if isinstance(source, checkpoints.Checkpoint) else runs.current_checkpoint(source)
    if checkpoint is None:
        raise runs.RunError(f"{source}: no checkpoint to restore")
    runs.load_weights(models.generator, checkpoint.path, "generator", checkpoint)
    # runs.load_weights builds D's optimizer on D.trainable_variables: empty while D is frozen.
    set_discriminator_trainable(models, True)
    runs.load_weights(models.discriminator, checkpoint.path, "discriminator", checkpoint)
    set_discriminator_trainable(models, False)   # combined's variables = G's (its first-use list)
    runs.load_optimizer(models.combined.optimizer, models.combined.trainable_variables,
                        checkpoint.file(COMBINED_OPTIMIZER_FILE))
    return dict(checkpoint.state)


# ---- samples and progress ------------------------------------------------------

def write_samples(models, config: dict, run_dir: Path, samples, writer, name: str, step: int) -> None:
    grid = samples.grid(Colorizer(config, models.generator))
    save_image(grid, run_dir / "samples" / name)
    if writer is not None:
        writer.image(SAMPLE_TAG, grid, step)
        writer.flush()


class Progress:
    """One line per step on a terminal (``\\r``), every PRINT_EVERY steps and the last one otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0   # length of the line on screen, to blank a longer previous one

    def update(self, epoch: int, epochs: int, i: int, steps: int, losses: dict, images_per_s: float) -> None:
        last = i == steps
        if not (self.tty or last or i % PRINT_EVERY == 0):
            return
        line = (f"epoch {epoch}/{epochs} step {i}/{steps}  g_loss {losses['g_loss']:.4f} "
                f"(l1 {losses['g_l1']:.4f})  d_loss {losses['d_loss']:.4f}  d_acc {losses['d_acc']:.3f}  "
                f"{images_per_s:.1f} img/s")
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width) + ("\n" if last else ""))
            self._width = 0 if last else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _write_summary(models, run_dir: Path) -> None:
    lines: list[str] = []
    for model in (models.generator, models.discriminator, models.combined):
        model.summary(print_fn=lambda line, **_: lines.append(line))
    (run_dir / "summary.txt").write_text("\n".join(lines) + "\n")


# ---- the loop ----------------------------------------------------------------

def train(models, config: dict, run_dir: Path, train_data, samples, writer, state: dict, strategy=None) -> int:
    """Train up to config['epochs']; returns the number of epochs done.

    Continues from the run folder's current checkpoint if it has one (``state`` is then ignored),
    at the exact batch where it was saved. A SIGTERM, SIGINT or SIGHUP saves a checkpoint at the
    next step boundary and raises core.stopping.Stopped. ``strategy``: see train_step (each replica
    trains on its slice of every global batch).
    """
    run_dir = Path(run_dir)
    found = runs.current_checkpoint(run_dir)
    if found is not None:   # --resume (also after a stop inside epoch 1)
        state = restore_checkpoint(models, found)
        print(f"resuming after epoch {state['epoch']} (step {state['step']})")
    _write_summary(models, run_dir)

    gen = CifarGenerator(train_data, config["batch_size"], data_color_space(config), shuffle=True,
                         seed=config["seed"])
    steps = checkpointing.steps_per_epoch(config, len(gen))
    epoch, step, batch = checkpointing.position(state, steps)
    saver = checkpointing.Saver(run_dir, config, steps, lambda: checkpoint_writers(models),
                                saved_step=None if found is None else found.step)
    sample_every = int(config.get("sample_every") or 0)
    progress = Progress()
    if distribute.num_replicas(strategy) > 1:   # sharded steps need the compiled state built first
        build_for_sharded_batches(models, *gen[0])
    with checkpointing.graceful_stop() as stop:
        while epoch < config["epochs"]:
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            images = 0
            for i in range(batch, steps):
                # Batch i of this epoch's order (a function of seed and epoch: the same after a resume).
                # CifarGenerator only slices pre-encoded arrays: no prefetching needed.
                real, condition = gen.epoch_batch(epoch, i)
                losses = train_step(models, real, condition, strategy)
                step += 1
                images += len(real)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                if writer is not None:
                    for k, v in losses.items():
                        writer.scalar(k, v, step, "train")
                progress.update(epoch + 1, config["epochs"], i + 1, steps, losses,
                                images / max(time.perf_counter() - t0, 1e-9))
                if sample_every and step % sample_every == 0:
                    write_samples(models, config, run_dir, samples, writer, f"step-{step:07d}.jpg", step)
                faults.pause("train-step")   # tests: a kill or signal between two steps
                saver.after_step(epoch, step, stop)
            done_here = steps - batch   # steps of this epoch run in this session (all, unless resumed in it)
            batch = 0
            epoch += 1
            if writer is not None:
                for k, v in sums.items():
                    writer.scalar(f"epoch_{k}", v / max(done_here, 1), epoch, "train")
            write_samples(models, config, run_dir, samples, writer, f"epoch-{epoch:03d}.jpg", step)
            saver.after_epoch(epoch, step, stop)
    return epoch
