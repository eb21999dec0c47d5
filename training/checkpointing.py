"""When training saves, what a checkpoint's state says, and where a resumed run continues.

Both trainers (``fit`` and ``gan_loop``) save through a :class:`Saver`: at every epoch end, every
``save_every`` steps (``train.py --save-every``), and at the first step boundary after a SIGTERM,
SIGINT or SIGHUP (core.stopping), after which :class:`~core.stopping.Stopped` ends training. Each
save is one crash-safe unit (core.checkpoints): the weights of every part with their optimizer
state, and the state below.

The state says where training stands: ``epoch`` (epochs done), ``step`` (global steps done) and
``batch`` (batches of the epoch in progress done). The order of every epoch's batches is a
function of the seed and the epoch alone (loaders.cifar.epoch_order), so that position is all a resumed
run needs to see exactly the batches an uninterrupted run would, and to end with the same weights.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core import checkpoints
from core.stopping import GracefulStop

DEFAULT_KEEP = 2          # the current checkpoint and the one before (a fallback if the newest is damaged)
STOP_MESSAGE = "saving a checkpoint after the current step, then stopping"
ORDER = "loaders.cifar.epoch_order(n_images, seed, epoch)"   # recorded with each state: how batches are ordered


def steps_per_epoch(config: dict, batches: int) -> int:
    """Batches trained per epoch: all ``batches`` of the data, or at most ``--steps`` of them."""
    limit = config.get("steps_per_epoch")
    return min(int(limit), batches) if limit else batches


def position(state: dict, steps: int) -> tuple[int, int, int]:
    """(epochs done, global step, batches of the current epoch done) of a checkpoint's state.

    Checkpoints of run folders older than this module have no ``batch``: it follows from the step
    (their GAN saved mid-epoch on Ctrl-C; the ``fit`` models counted a stopped epoch as not begun).
    """
    epoch, step = int(state.get("epoch", 0)), int(state.get("step", 0))
    batch = step - epoch * steps
    if not 0 <= batch < steps:   # an older fit checkpoint: redo the epoch, as its code did
        batch = 0
    return epoch, step, batch


class Saver:
    """Saves the run's checkpoints (only ever the latest position) through ``writers``.

    ``writers()`` returns {file name: function writing it} for one checkpoint (the trainer's parts).
    """

    def __init__(self, run_dir: Path, config: dict, steps: int,
                 writers: Callable[[], dict[str, Callable[[Path], None]]], saved_step: int | None = None,
                 before_save: Callable[[], object] | None = None):
        self.before_save = before_save   # e.g. bring the weights back into the model (JAX, inside fit)
        self.run_dir = Path(run_dir)
        self.config = config
        self.steps = steps
        self.writers = writers
        self.keep = int(config.get("keep") or DEFAULT_KEEP)
        self.save_every = int(config.get("save_every") or 0)
        self.saved_step = saved_step   # the step of the newest checkpoint: never written twice

    def state(self, epoch: int, step: int) -> dict:
        return {"epoch": epoch, "step": step, "batch": step - epoch * self.steps,
                "data_order": {"order": ORDER, "seed": self.config["seed"], "batch_size": self.config["batch_size"],
                               "batches_per_epoch": self.steps}}

    def save(self, epoch: int, step: int) -> None:
        if step == self.saved_step:
            return
        if self.before_save is not None:
            self.before_save()
        checkpoints.write(self.run_dir, step, self.state(epoch, step), self.writers(), keep=self.keep)
        self.saved_step = step

    def after_step(self, epoch: int, step: int, stop: GracefulStop) -> None:
        """At the end of a training step; ``epoch`` = epochs done before this one's epoch ends.

        The last step of an epoch leaves both to the epoch end (samples, logs, then a checkpoint).
        """
        if step - epoch * self.steps >= self.steps:
            return
        if stop.requested:
            self.save(epoch, step)
            stop.check()
        if self.save_every and step % self.save_every == 0:
            self.save(epoch, step)

    def after_epoch(self, epoch: int, step: int, stop: GracefulStop) -> None:
        """After epoch ``epoch`` (now done) ended: its checkpoint, then a requested stop."""
        self.save(epoch, step)
        stop.check()


def graceful_stop() -> GracefulStop:
    return GracefulStop(STOP_MESSAGE)
