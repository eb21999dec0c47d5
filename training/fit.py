"""Training of the models that use ``model.fit`` (autoencoder, unet, fusion_label, fusion_resnet).

Each epoch end logs scalars and sample colorizations to TensorBoard, writes a sample grid
into the run folder, and saves weights, optimizer state and progress, so a crash or Ctrl-C
loses at most the epoch in progress.
"""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from core import runs
from core.grids import prediction_grid, save_image
from core.tblog import SummaryWriter
from inference import Colorizer


class SampleBatch:
    """A fixed set of images colorized at every epoch end (the same ones every time)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, prior: np.ndarray | None):
        self.images, self.labels, self.prior = images, labels, prior

    @classmethod
    def take(cls, data, prior, n: int = 8) -> "SampleBatch":
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


def save_checkpoint(model, run_dir: Path, state: dict) -> None:
    model.save_weights(runs.weights_file(run_dir, "model"))   # includes the optimizer state
    runs.save_json(run_dir / "state.json", state)


def restore_checkpoint(model, run_dir: Path) -> dict:
    runs.load_weights(model, run_dir, "model")
    return runs.load_state(run_dir)


class EpochEnd(keras.callbacks.Callback):
    """Logs, samples and checkpoint at each epoch end."""

    def __init__(self, config: dict, run_dir: Path, writer: SummaryWriter | None, samples: SampleBatch,
                 steps_per_epoch: int):
        super().__init__()
        self.config, self.run_dir, self.writer, self.samples = config, run_dir, writer, samples
        self.steps_per_epoch = steps_per_epoch
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
        save_checkpoint(self.model, self.run_dir,
                        {"epoch": epoch + 1, "step": (epoch + 1) * self.steps_per_epoch})


def progress_verbosity() -> int:
    """Keras' live progress bar on a terminal; one line per epoch when the output goes to a file
    (the bar's redraws would fill a log with thousands of partial lines)."""
    return 1 if sys.stdout.isatty() else 2


def fit(model, config: dict, run_dir: Path, train_gen, val_gen, samples: SampleBatch,
        initial_epoch: int, writer: SummaryWriter | None, steps_per_epoch: int | None = None) -> int:
    """Train up to config['epochs']; returns the number of epochs done. Ctrl-C saves and returns."""
    # --steps larger than the data would make Keras stop with "input ran out of data" and the state
    # count batches that never ran: at most one pass over the generator per epoch.
    steps_per_epoch = min(steps_per_epoch, len(train_gen)) if steps_per_epoch else None
    steps = steps_per_epoch or len(train_gen)
    end = EpochEnd(config, run_dir, writer, samples, steps)
    end.epochs_done = initial_epoch
    try:
        model.fit(train_gen, validation_data=val_gen, epochs=config["epochs"], initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch, callbacks=[end], verbose=progress_verbosity())
    except KeyboardInterrupt:
        # Keep the weights of the interrupted epoch, but count only the epochs that finished.
        save_checkpoint(model, run_dir, {"epoch": end.epochs_done, "step": end.epochs_done * steps,
                                         "interrupted": True})
        raise
    return end.epochs_done
