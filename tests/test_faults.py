"""Fault injection: train.py and colorize.py killed or signalled at chosen points, then resumed.

Each kill lands where it is meant to (inside a checkpoint write, between two steps, ...): the process
runs with COLORIZE_TEST_PAUSE=POINT@N (core.faults), announces the pause on stdout and waits there
until the test kills or signals it. One chain of processes per trainer takes the same run through
every kind of stop, each resuming from what the previous one left, and must end with exactly the
weights (and optimizer state) of a run that was never stopped.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from conftest import ROOT, SAMPLE, run_script
from core import checkpoints, runs

TIMEOUT_S = 600


class Process:
    """A script run with a pause point; its output is collected by a thread as it comes."""

    def __init__(self, *args, pause: str | None = None, pause_seconds: float = 300):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if pause:
            env.update(COLORIZE_TEST_PAUSE=pause, COLORIZE_TEST_PAUSE_SECONDS=str(pause_seconds))
        self.proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.paused = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("test-pause: "):
                self.paused.set()
        self.paused.set()   # ended without pausing: wait_for_pause reports it

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_pause(self) -> None:
        assert self.paused.wait(TIMEOUT_S), self.output[-3000:]
        assert any(line.startswith("test-pause: ") for line in self.lines), self.output[-3000:]

    def signal(self, *signals: int) -> None:
        """Send each signal; before the next one, wait until the process has handled it (said so)."""
        for n, s in enumerate(signals):
            handled = sum("send it again to stop at once" in line for line in self.lines)
            self.proc.send_signal(s)
            if n + 1 < len(signals):
                for _ in range(TIMEOUT_S * 20):
                    if sum("send it again to stop at once" in line for line in self.lines) > handled:
                        break
                    threading.Event().wait(0.05)

    def finish(self) -> int:
        code = self.proc.wait(TIMEOUT_S)
        self.reader.join(TIMEOUT_S)
        return code


def kill_at(pause: str, *args, signals=(signal.SIGKILL,), pause_seconds: float = 300) -> Process:
    p = Process("train.py", *args, pause=pause, pause_seconds=pause_seconds)
    p.wait_for_pause()
    p.signal(*signals)
    p.finish()
    return p


def arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """Every array of the run's current checkpoint: weights and optimizer state of every part."""
    found = runs.current_checkpoint(run_dir)
    out: dict[str, np.ndarray] = {}
    for name in found.files:
        path = found.file(name)
        if name.endswith(".h5"):
            with h5py.File(path, "r") as f:
                f.visititems(lambda key, v, name=name: out.__setitem__(f"{name}/{key}", v[()])
                             if isinstance(v, h5py.Dataset) else None)
        elif name.endswith(".npz"):
            with np.load(path) as data:
                out.update({f"{name}/{key}": data[key] for key in data.files})
    return out


def assert_same_weights(run_dir: Path, reference: Path) -> None:
    got, expected = arrays(run_dir), arrays(reference)
    assert got.keys() == expected.keys() and len(got) > 10
    for key in expected:   # bit-identical here on CPU (TensorFlow's op determinism on); float tolerance allowed
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-7, err_msg=key)


def state(run_dir: Path) -> tuple[int, int, int]:
    s = runs.load_state(run_dir)
    return s["epoch"], s["step"], s.get("batch", 0)


# ---- the fit trainer ---------------------------------------------------------------------------------

# 16 images, batch 4: 4 steps per epoch, 2 epochs. Checkpoints: step 3 (--save-every), 4 (epoch end), 6, 8.
FIT = ["-m", "autoencoder", "--image-size", "8", "--data", SAMPLE / "train", "--limit", "16", "--batch-size", "4",
       "--epochs", "2", "--seed", "3", "--save-every", "3", "--keep", "1", "--no-logs", "--deterministic"]


def test_fit_training_survives_every_kind_of_stop_and_resumes_exactly(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    run_script("train.py", *FIT, "--run-dir", reference)
    resume = ["-m", "autoencoder", "--resume", "--run-dir", run]

    # 1. SIGKILL inside the first checkpoint write (weights written, manifest not): no checkpoint at all.
    kill_at("checkpoint-write@1", *FIT, "--run-dir", run)
    assert runs.current_checkpoint(run) is None and (run / checkpoints.FOLDER / ".tmp-step-000000003").exists()

    # 2. Resumed from the start; SIGKILL with the epoch-end checkpoint complete but not yet renamed.
    p = kill_at("checkpoint-rename@2", *resume)
    assert "no checkpoint yet" in p.output and state(run) == (0, 3, 3)

    # 3. SIGTERM between two steps: a checkpoint at that step, the resume command, exit 143.
    p = kill_at("train-step@2", *resume, signals=[signal.SIGTERM], pause_seconds=2)
    assert p.proc.returncode == 143, p.output[-3000:]
    assert "stopped by SIGTERM" in p.output and f"--resume --run-dir {run}" in p.output
    assert state(run) == (1, 5, 1)                                       # epoch 2, after its first batch

    # 4. SIGKILL after a checkpoint became current, before the older one was removed (--keep 1).
    kill_at("checkpoint-prune@1", *resume)
    assert state(run) == (1, 6, 2) and len(list((run / checkpoints.FOLDER).glob("step-*"))) == 2

    # 5. Ctrl-C twice inside the last checkpoint write: the second one ends the process at once.
    p = kill_at("checkpoint-write@1", *resume, signals=[signal.SIGINT, signal.SIGINT])
    assert p.proc.returncode == -signal.SIGINT and state(run) == (1, 6, 2), p.output[-3000:]

    # 6. The rest, undisturbed: the weights of the run that never stopped.
    out = run_script("train.py", *resume).stdout
    assert "resuming after epoch 1 (step 6)" in out and "continuing epoch 2 at batch 3 of 4" in out
    assert state(run) == (2, 8, 0)
    assert [p.name for p in (run / checkpoints.FOLDER).iterdir()] == ["step-000000008"]   # --keep 1, no leftovers
    assert_same_weights(run, reference)


# effnet_unet: the fit trainer on cached encoder taps; which images an epoch mirrors is drawn from
# (seed, epoch) like the order, so a resumed epoch mirrors the same ones. 16 images, batch 4, 2 epochs.
EFFNET = ["-m", "effnet_unet", "--encoder-size", "32", "--data", SAMPLE / "train", "--limit", "16",
          "--batch-size", "4", "--epochs", "2", "--seed", "5", "--no-logs", "--deterministic"]


def test_effnet_unet_stopped_mid_epoch_resumes_with_the_same_flips_and_weights(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    run_script("train.py", *EFFNET, "--run-dir", reference)
    p = kill_at("train-step@6", *EFFNET, "--run-dir", run, signals=[signal.SIGTERM], pause_seconds=2)
    assert p.proc.returncode == 143 and "stopped by SIGTERM" in p.output, p.output[-3000:]
    assert state(run) == (1, 6, 2)                                       # epoch 2, after its second batch
    out = run_script("train.py", "-m", "effnet_unet", "--resume", "--run-dir", run).stdout
    assert "continuing epoch 2 at batch 3 of 4" in out and state(run) == (2, 8, 0)
    assert_same_weights(run, reference)


# ---- the GAN's loop ----------------------------------------------------------------------------------

# 8 images, batch 4: 2 steps per epoch, 2 epochs; checkpoints at the epoch ends (steps 2 and 4).
GAN = ["-m", "gan", "--data", SAMPLE / "train", "--limit", "8", "--batch-size", "4", "--epochs", "2",
       "--seed", "4", "--no-logs", "--deterministic"]


def test_gan_training_survives_kills_and_signals_and_resumes_exactly(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    run_script("train.py", *GAN, "--run-dir", reference)
    resume = ["-m", "gan", "--resume", "--run-dir", run]

    # SIGKILL between writing the generator and the discriminator of the first checkpoint.
    kill_at("checkpoint-write@1", *GAN, "--run-dir", run)
    leftover = run / checkpoints.FOLDER / ".tmp-step-000000002"
    assert runs.current_checkpoint(run) is None and [p.name for p in leftover.iterdir()] == ["generator.weights.h5"]

    # SIGTERM in the middle of epoch 2: saved after that step, not at the epoch's start.
    p = kill_at("train-step@3", *resume, signals=[signal.SIGTERM], pause_seconds=2)
    assert p.proc.returncode == 143 and "stopped by SIGTERM" in p.output, p.output[-3000:]
    assert state(run) == (1, 3, 1)

    out = run_script("train.py", *resume).stdout
    assert "resuming after epoch 1 (step 3)" in out and state(run) == (2, 4, 0)
    assert_same_weights(run, reference)


# ---- colorize.py of a folder ---------------------------------------------------------------------------

def test_sigterm_during_colorize_keeps_every_image_written(tmp_path, tmp_path_factory):
    from conftest import trained_run

    run_dir = trained_run(tmp_path_factory, "unet")
    inputs, out = tmp_path / "photos", tmp_path / "out"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(inputs / f"p{i}.png")
    p = Process("colorize.py", "-m", "unet", "--run-dir", run_dir, inputs, "--out", out,
                pause="colorize-file@2", pause_seconds=2)
    p.wait_for_pause()
    p.signal(signal.SIGTERM)
    assert p.finish() == 143, p.output[-3000:]
    assert "interrupted by SIGTERM: colorized 2 of 5 image(s)" in p.output
    written = sorted(out.iterdir())
    assert [f.name for f in written] == ["p0.png", "p1.png"]                # complete files only, no .tmp
    assert all(Image.open(f).size == (48, 40) for f in written)
