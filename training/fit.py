"""Training of the models that use ``model.fit`` (autoencoder, unet, fusion_label, fusion_resnet).

Each epoch end logs scalars and sample colorizations to TensorBoard, writes a sample grid
into the run folder, and saves a checkpoint (weights with optimizer state, and progress); so do
every ``--save-every`` steps and a stop signal at the next step boundary (training.checkpointing).

Keras' ``fit`` reads its batches from :class:`StepStream`, which serves the batch of each global
step by index, so a run resumed in the middle of an epoch continues with exactly the batches an
uninterrupted run would have seen: the rest of that epoch in one ``fit`` call, then whole epochs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from core import checkpoints, faults, runs
from core.grids import prediction_grid, save_image
from core.tblog import SummaryWriter
from inference import Colorizer
from training import checkpointing


class SampleBatch:
    """A fixed set of images colorized at every epoch end (the same ones every time)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, prior: np.ndarray | None):
        self.images, self.labels, self.prior = images, labels, prior

    @classmethod
    def take(cls, data, prior, n: int = 8) -> SampleBatch:
        """The first n images; ``prior`` is an (N, D) array, a list of per-image arrays (effnet_unet's taps) or None."""
        n = min(n, len(data))
        if isinstance(prior, (list, tuple)):
            prior = [p[:n] for p in prior]
        elif prior is not None:
            prior = prior[:n]
        return cls(data.images[:n], data.labels[:n], prior)

    def grid(self, colorizer: Colorizer, scale: int = 2) -> np.ndarray:
        generated = colorizer.colorize(self.images, self.labels, self.prior)
        return prediction_grid(self.images, generated, scale=scale)


def checkpoint_writers(model) -> dict:
    """The file of one checkpoint: the compiled model's weights with its optimizer state."""
    return {"model.weights.h5": model.save_weights}


def save_checkpoint(model, run_dir: Path, state: dict, keep: int = checkpointing.DEFAULT_KEEP) -> None:
    """One checkpoint (core.checkpoints: written whole or not at all) with ``state``."""
    checkpoints.write(Path(run_dir), int(state["step"]), state, checkpoint_writers(model), keep=keep)


def restore_checkpoint(model, source) -> dict:
    """Load a checkpoint (a core.checkpoints.Checkpoint, or a run folder's current one); its state."""
    checkpoint = source if isinstance(source, checkpoints.Checkpoint) else runs.current_checkpoint(source)
    if checkpoint is None:
        raise runs.RunError(f"{source}: no checkpoint to restore")
    runs.load_weights(model, checkpoint.path, "model", checkpoint)
    return dict(checkpoint.state)


class StepStream(keras.utils.PyDataset):
    """Training batches from global step ``start`` on, as one endless stream addressed by index.

    Item k is batch (start + k) mod S of epoch (start + k) div S, in that epoch's order
    (CifarGenerator.epoch_batch), S = ``steps`` per epoch. Keras reads it ahead (prefetching) and
    across its epochs (``steps_per_epoch`` = S); whenever it reads an item, the item is the same.
    """

    def __init__(self, gen, steps: int, start: int):
        super().__init__()
        self.gen, self.steps, self.start = gen, steps, start

    @property
    def num_batches(self):
        return None   # endless: fit takes steps_per_epoch items per epoch

    def __getitem__(self, k: int):
        epoch, i = divmod(self.start + k, self.steps)
        return self.gen.epoch_batch(epoch, i)


class StepEnd(keras.callbacks.Callback):
    """Counts global steps; step checkpoints and stop signals at each step's end (training.checkpointing)."""

    def __init__(self, saver: checkpointing.Saver, stop, step: int):
        super().__init__()
        self.saver, self.stop, self.step = saver, stop, step

    def on_train_batch_end(self, batch: int, logs=None):
        self.step += 1
        faults.pause("train-step")   # tests: a kill or signal between two steps
        epochs_done = (self.step - 1) // self.saver.steps   # before the epoch of this step ends
        self.saver.after_step(epochs_done, self.step, self.stop)


class EpochEnd(keras.callbacks.Callback):
    """Logs, samples and checkpoint at each epoch end."""

    def __init__(self, config: dict, run_dir: Path, writer: SummaryWriter | None, samples: SampleBatch,
                 saver: checkpointing.Saver, stop, counter: StepEnd):
        super().__init__()
        self.config, self.run_dir, self.writer, self.samples = config, run_dir, writer, samples
        self.saver, self.stop, self.counter = saver, stop, counter
        self.epochs_done = 0

    def on_epoch_end(self, epoch: int, logs=None):
        logs = logs or {}
        self.epochs_done = epoch + 1
        grid = self.samples.grid(Colorizer(self.config, self.model))
        save_image(grid, self.run_dir / "samples" / f"epoch-{epoch + 1:03d}.jpg")
        if self.writer is not None:
            for key, value in logs.items():
                subdir, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                self.writer.scalar(f"epoch_{tag}", value, epoch + 1, subdir)
            self.writer.image("samples [gray | generated | original]", grid, epoch + 1)
            self.writer.flush()
        self.saver.after_epoch(epoch + 1, self.counter.step, self.stop)


def progress_verbosity() -> int:
    """Keras' live progress bar on a terminal; one line per epoch when the output goes to a file
    (the bar's redraws would fill a log with thousands of partial lines)."""
    return 1 if sys.stdout.isatty() else 2


def fit(model, config: dict, run_dir: Path, train_gen, val_gen, samples: SampleBatch, state: dict,
        writer: SummaryWriter | None, saved_step: int | None = None, stream=StepStream) -> int:
    """Train up to config['epochs'] from ``state`` (a checkpoint's, or zeros); returns the epochs done.

    A SIGTERM, SIGINT or SIGHUP saves a checkpoint at the next step boundary and raises
    core.stopping.Stopped. ``saved_step``: the step of the checkpoint ``state`` comes from.
    ``stream(train_gen, steps, start)``: the input ``fit`` reads from global step ``start`` on
    (default StepStream; training.distribute.per_worker_stream's under --strategy multiworker).
    """
    # --steps larger than the data would make an epoch repeat batches: at most one pass per epoch.
    steps = checkpointing.steps_per_epoch(config, len(train_gen))
    epoch, step, batch = checkpointing.position(state, steps)
    saver = checkpointing.Saver(run_dir, config, steps, lambda: checkpoint_writers(model), saved_step)
    with checkpointing.graceful_stop() as stop:
        counter = StepEnd(saver, stop, step)
        # On JAX, fit keeps the weights outside the model during an epoch; a callback's ``model``
        # property puts them back (Keras' own checkpoint callbacks rely on it), only when saving.
        saver.before_save = lambda: counter.model
        end = EpochEnd(config, run_dir, writer, samples, saver, stop, counter)
        end.epochs_done = epoch
        options = {"validation_data": val_gen, "callbacks": [counter, end], "verbose": progress_verbosity(),
                   "shuffle": False}
        if batch and epoch < config["epochs"]:   # resumed inside an epoch: first the rest of it
            print(f"continuing epoch {epoch + 1} at batch {batch + 1} of {steps}")
            model.fit(stream(train_gen, steps, step), initial_epoch=epoch, epochs=epoch + 1,
                      steps_per_epoch=steps - batch, **options)
            epoch += 1
        if epoch < config["epochs"]:
            model.fit(stream(train_gen, steps, epoch * steps), initial_epoch=epoch, epochs=config["epochs"],
                      steps_per_epoch=steps, **options)
    return end.epochs_done
