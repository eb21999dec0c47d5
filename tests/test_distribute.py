"""train.py --strategy (training/distribute.py): two MultiWorkerMirroredStrategy workers on localhost.

``test_two_workers_match_one_process`` runs, for the U-Net (``model.fit``) and the GAN (the manual
``train_on_batch`` loop), three processes at once on the CPU: two workers of a localhost cluster
(``tests/distribute_worker.py``, i.e. train.py's main, each with its own TF_CONFIG) and one process
without a strategy, all on the same global batch of 8 images for 2 steps with seed 1. It checks:

* every process exits 0 in time; all are killed otherwise (one failed worker would leave the
  other waiting for it in a collective operation forever);
* both workers end with bit-identical weights: trainable weights, BatchNorm moving statistics and
  optimizer state (every update is the same all-reduced one, applied on both);
* the losses the chief logged equal those of the single process within ``LOSS_RTOL``;
* only the chief wrote a run folder and logs; config.json records the distribution;
* GAN: each worker trained on its own half of every global batch (for ``fit``, Keras splits it).

Why LOSS_RTOL = 1e-4. Measured with Keras 3.15.1 / TensorFlow 2.21 on CPU, the largest relative
difference between the two-worker and the single-process losses is 2.4e-6 (GAN, adversarial
term; U-Net 3e-7): float32 sums taken in another order (per-worker partial sums, then the
all-reduce; synchronized BatchNorm's variance as E[x^2] - E[x]^2). Real errors are far above it:
with BatchNorm not synchronized the U-Net's loss is 2.7% off (and the workers' moving statistics
differ by 0.17); a worker that trained on its half alone would log that half's loss (several %).
1e-4 is 40x the noise and 270x below the smallest error measured.

The weights are *not* compared with the single process: Adam's first steps are about lr * sign(g),
so float noise in gradients that are zero in exact arithmetic (the conv biases just before a
BatchNorm, which cancels them) flips those weights by up to 2 * lr without changing any output.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SAMPLE
from core import checkpoints, runs, tblog
from training import distribute

LOSS_RTOL = 1e-4
TIMEOUT_S = 420            # per model, for all three processes (about 1-2 minutes on 2 busy CPU cores)
WORKERS = 2
TRAIN_ARGS = ["--data", str(SAMPLE / "train"), "--limit", "16", "--batch-size", "8", "--steps", "2",
              "--epochs", "1", "--seed", "1"]
WEIGHT_FILES = {"unet": ["model.weights.h5"], "effnet_unet": ["model.weights.h5"],
                "gan": ["generator.weights.h5", "discriminator.weights.h5", "combined.optimizer.npz"]}
# effnet_unet on streamed crops of the sample's PNGs: each worker makes only its half of every batch
# (distribute.per_worker_stream); two epochs, so the workers' streams also carry across an epoch's end
STREAM_ARGS = ["--stream-crops", "--image-size", "16", "--encoder-size", "32", "--epochs", "2"]


# ---- TF_CONFIG, helpers without TensorFlow ----------------------------------------

def _tf_config(monkeypatch, cluster: dict | None, task: dict | None = None) -> None:
    if cluster is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))


def test_chief_is_worker_0_or_the_chief_task(monkeypatch):
    workers = {"worker": ["a:1", "b:1"]}
    _tf_config(monkeypatch, None)
    assert distribute.is_chief() and distribute.num_workers() == 1
    _tf_config(monkeypatch, workers, {"type": "worker", "index": 0})
    assert distribute.is_chief() and distribute.num_workers() == 2
    _tf_config(monkeypatch, workers, {"type": "worker", "index": 1})
    assert not distribute.is_chief()
    with_chief = {"chief": ["c:1"], **workers}
    _tf_config(monkeypatch, with_chief, {"type": "chief", "index": 0})
    assert distribute.is_chief() and distribute.num_workers() == 3
    _tf_config(monkeypatch, with_chief, {"type": "worker", "index": 0})
    assert not distribute.is_chief()
    _tf_config(monkeypatch, with_chief, {"type": "evaluator", "index": 0})
    assert not distribute.is_chief()


def test_no_strategy_changes_nothing():
    batch = np.zeros((3, 2), np.float32)
    assert distribute.create_strategy("none") is None
    assert distribute.shard_batch(None, batch) is batch
    with distribute.scope(None):
        pass
    assert distribute.describe("none", None, 32) == {"strategy": "none", "replicas": 1, "workers": 1,
                                                     "global_batch_size": 32, "batch_size_per_replica": 32}


def test_distribute_imports_no_tensorflow_at_module_level():
    """The project runs on JAX and PyTorch too: TensorFlow is imported inside functions only."""
    tree = ast.parse((ROOT / "training" / "distribute.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top for a in n.names] + [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert "tensorflow" not in {n.split(".")[0] for n in names}


def test_strategy_on_another_backend_is_a_one_line_error(monkeypatch, capsys):
    import keras

    import train
    from cli.errors import run_main

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert run_main(train.main, ["-m", "unet", "--strategy", "mirrored"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --strategy mirrored needs the TensorFlow backend") and "\n" not in err


def test_multiworker_needs_tf_config_and_a_seed(monkeypatch):
    _tf_config(monkeypatch, None)
    with pytest.raises(distribute.StrategyError, match="needs TF_CONFIG"):
        distribute.create_strategy("multiworker", 8, seed=1)
    _tf_config(monkeypatch, {"worker": ["localhost:1"]}, {"type": "worker", "index": 0})
    with pytest.raises(distribute.StrategyError, match="needs --seed"):
        distribute.create_strategy("multiworker", 8, seed=None)


def test_a_non_chief_writes_into_a_temporary_copy_of_the_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    for name in ("config.json", "model.weights.h5", "combined.optimizer.npz"):   # the older layout
        (run / name).write_text(name)
    (run / "state.json").write_text('{"epoch": 1, "step": 4}')   # read (and checked) as the legacy checkpoint's state
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(distribute, "REMOVE_WORKER_DIRS", False)
    assert distribute.worker_run_dir(run, chief=True) == run
    copy = distribute.worker_run_dir(run, chief=False)
    assert copy != run and copy.parent == tmp_path
    assert sorted(p.name for p in copy.iterdir()) == ["combined.optimizer.npz", "config.json", "model.weights.h5",
                                                      "state.json"]
    # checkpoints/: the current checkpoint is copied, verified as the chief would read it
    checkpoints.write(run, 7, {"epoch": 1, "step": 7}, {"model.weights.h5": lambda p: p.write_bytes(b"w7")})
    copy = distribute.worker_run_dir(run, chief=False)
    found = runs.current_checkpoint(copy)
    assert not found.legacy and found.step == 7 and found.file("model.weights.h5").read_bytes() == b"w7"


# ---- two workers on localhost --------------------------------------------------

def _free_ports(n: int) -> list[int]:
    """n distinct free ports (all bound at once, then released for the workers to bind)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_all(commands: list[tuple[list[str], dict, object]], timeout: float) -> list[int | None]:
    """Start every (args, env, log path) at once; wait for all, or until one fails or time is up.

    Returns the exit codes (None: killed). Each process leads its own process group, which is killed
    if still running at the end, so no worker outlives the test, even on failure or Ctrl-C.
    """
    procs = []
    try:
        for args, env, log in commands:
            with open(log, "w") as out:
                procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
    return [p.returncode if p.returncode >= 0 else None for p in procs]


def _arrays(path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    import h5py
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.parametrize("model, extra", [("unet", []), ("gan", []), ("effnet_unet", STREAM_ARGS)],
                         ids=["unet", "gan", "effnet_unet-stream"])
def test_two_workers_match_one_process(model, extra, tmp_path):
    pytest.importorskip("tensorflow")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
           "TMPDIR": str(tmp_path)}   # TMPDIR: the non-chief's temporary run folder lands in tmp_path
    env.pop("TF_CONFIG", None)
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(WORKERS)]}
    commands = []
    for i in range(WORKERS):
        worker_env = {**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        args = ["tests/distribute_worker.py", str(tmp_path / f"report{i}.json"), "-m", model, *TRAIN_ARGS, *extra,
                "--strategy", "multiworker", "--run-dir", str(tmp_path / f"run{i}"),
                "--log-dir", str(tmp_path / f"logs{i}")]
        commands.append((args, worker_env, tmp_path / f"worker{i}.log"))
    commands.append((["train.py", "-m", model, *TRAIN_ARGS, *extra, "--run-dir", str(tmp_path / "single"),
                      "--log-dir", str(tmp_path / "logs-single")], env, tmp_path / "single.log"))

    codes = _run_all(commands, TIMEOUT_S)
    logs = "\n".join(f"--- {log.name} (exit {code}):\n{log.read_text()[-3000:]}"
                     for (_, _, log), code in zip(commands, codes))
    assert codes == [0] * len(commands), logs

    reports = [json.loads((tmp_path / f"report{i}.json").read_text()) for i in range(WORKERS)]
    # Only the chief (worker 0) wrote the run folder and logs; the other one, a temporary folder.
    chief_dir, other_dir = tmp_path / "run0", reports[1]["run_dir"]
    assert not (tmp_path / "run1").exists() and not (tmp_path / "logs1").exists(), logs
    assert other_dir and str(tmp_path) in other_dir, logs
    assert json.loads((chief_dir / "config.json").read_text())["distribute"] == {
        "strategy": "multiworker", "replicas": 2, "workers": 2, "global_batch_size": 8, "batch_size_per_replica": 4}

    # Both workers end with identical weights (and BatchNorm statistics and optimizer state).
    chief_checkpoint, other_checkpoint = runs.current_checkpoint(chief_dir), runs.current_checkpoint(Path(other_dir))
    for name in WEIGHT_FILES[model]:
        chief, other = _arrays(chief_checkpoint.file(name)), _arrays(other_checkpoint.file(name))
        assert chief.keys() == other.keys() and chief, name
        different = [k for k in chief if not np.array_equal(chief[k], other[k])]
        assert not different, f"{name}: the workers differ in {different[:5]}"

    # The chief's losses are the single process's (same global batch, seed and steps).
    distributed, single = tblog.read_scalars(tmp_path / "logs0"), tblog.read_scalars(tmp_path / "logs-single")
    assert distributed.keys() == single.keys() and distributed["train"], (distributed, single)
    for subdir, tags in single.items():
        assert distributed[subdir].keys() == tags.keys()
        for tag, values in tags.items():
            steps, expected = zip(*values)
            got_steps, got = zip(*distributed[subdir][tag])
            assert got_steps == steps, tag
            np.testing.assert_allclose(got, expected, rtol=LOSS_RTOL, err_msg=f"{subdir}/{tag}")

    if extra:   # each worker made its own half of every global batch
        for i in range(WORKERS):
            log = (tmp_path / f"worker{i}.log").read_text()
            assert "each of the 2 workers makes its own 4 of every batch of 8" in log, log[-3000:]
    if model == "gan":   # each worker trained on its own half of every global batch
        calls = [r["shards"] for r in reports]
        assert len(calls[0]) == len(calls[1]) > 0
        for first, second in zip(*calls):
            assert first["global_rows"] == 8 and [n for n, _ in first["local"] + second["local"]] == [4, 4]
            halves = first["local"][0][1] + second["local"][0][1]
            assert halves == pytest.approx(first["global_sum"], rel=1e-6, abs=1e-6)
