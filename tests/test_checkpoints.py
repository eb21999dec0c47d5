"""Checkpoints written whole or not at all, verified when read; damaged ones; the run folder lock;
stop signals; the native log filter. In-process and fast (the subprocess kills: test_faults.py)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, run_script
from core import checkpoints, runs, stopping


def write(run_dir, step, payload: bytes = b"weights", keep=2):
    return checkpoints.write(run_dir, step, {"epoch": 0, "step": step},
                             {"model.weights.h5": lambda p: p.write_bytes(payload + str(step).encode())}, keep=keep)


def steps_on_disk(run_dir) -> list[str]:
    return sorted(p.name for p in (run_dir / checkpoints.FOLDER).iterdir())


# ---- writing and reading ------------------------------------------------------------------

def test_a_checkpoint_is_one_verified_unit_and_older_ones_are_pruned(tmp_path):
    for step in (3, 4, 6):
        write(tmp_path, step)
    assert steps_on_disk(tmp_path) == ["step-000000004", "step-000000006"]          # keep 2
    found, skipped = checkpoints.find(tmp_path)
    assert found.step == 6 and not skipped and not found.legacy
    manifest = json.loads((found.path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.weights.h5", "state.json"}
    assert manifest["files"]["model.weights.h5"]["size"] == len(b"weights6")
    write(tmp_path, 7, keep=1)
    assert steps_on_disk(tmp_path) == ["step-000000007"]
    assert found.step == 6 and write(tmp_path, 7).file("model.weights.h5").read_bytes() == b"weights7"  # no rewrite


def test_leftovers_of_a_dead_writer_are_never_read_and_are_cleaned_up(tmp_path):
    write(tmp_path, 2)
    tmp = tmp_path / checkpoints.FOLDER / ".tmp-step-000000005"
    tmp.mkdir()
    (tmp / "model.weights.h5").write_bytes(b"half")                                  # killed mid-write
    assert checkpoints.find(tmp_path)[0].step == 2
    write(tmp_path, 3)
    assert steps_on_disk(tmp_path) == ["step-000000002", "step-000000003"]


DAMAGE = {
    "truncated": lambda f: f.write_bytes(f.read_bytes()[:3]),
    "zero-length": lambda f: f.write_bytes(b""),
    "missing": lambda f: f.unlink(),
    "changed": lambda f: f.write_bytes(b"X" * f.stat().st_size),                    # same size, other bytes
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", ["model.weights.h5", "state.json", "manifest.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, name, capsys):
    write(tmp_path, 1)
    newest = write(tmp_path, 2)
    DAMAGE[damage](newest.file(name))
    found = runs.current_checkpoint(tmp_path)
    assert found.step == 1
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and str(newest.path) in warning and "using the previous checkpoint" in warning


def test_without_a_complete_checkpoint_the_error_is_one_line_with_the_fix(tmp_path):
    newest = write(tmp_path, 2)
    newest.file("model.weights.h5").write_bytes(b"")
    with pytest.raises(runs.RunError) as err:
        runs.current_checkpoint(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(newest.file("model.weights.h5")) in message
    assert "start a new run" in message and "delete that folder" in message


def test_damaged_checkpoints_a_resume_fell_back_past_are_replaced_or_removed(tmp_path):
    write(tmp_path, 1)
    DAMAGE["truncated"](write(tmp_path, 2).file("model.weights.h5"))
    assert runs.current_checkpoint(tmp_path).step == 1                              # resumed from step 1
    assert write(tmp_path, 2, b"again").file("model.weights.h5").read_bytes() == b"again2"
    found, skipped = checkpoints.find(tmp_path)
    assert found.step == 2 and not skipped
    DAMAGE["missing"](write(tmp_path, 9).file("state.json"))                        # resumed from step 2 ...
    write(tmp_path, 3)                                                               # ... which moved on
    assert steps_on_disk(tmp_path) == ["step-000000002", "step-000000003"]


def test_run_folders_of_the_older_layout_read_as_a_legacy_checkpoint(tmp_path):
    assert checkpoints.find(tmp_path) == (None, [])
    (tmp_path / "model.weights.h5").write_bytes(b"old")
    (tmp_path / "state.json").write_text('{"epoch": 3, "step": 30}')
    found, _ = checkpoints.find(tmp_path)
    assert found.legacy and found.step == 30 and found.file("model.weights.h5") == tmp_path / "model.weights.h5"
    (tmp_path / "state.json").write_text("{broken")
    with pytest.raises(runs.RunError, match=r"state\.json: unreadable"):
        runs.load_state(tmp_path)
    write(tmp_path, 31)                                                               # resumed: new layout wins
    assert runs.load_state(tmp_path)["step"] == 31


# ---- real weights: wrong architecture, damaged files, resume from the previous one ------------------

@pytest.fixture(scope="module")
def tiny():
    """Two tiny compiled models of different architectures (8 px autoencoder, 32 px fusion_label)."""
    import keras

    from models import build_model

    keras.utils.set_random_seed(1)
    auto = build_model("autoencoder", image_size=8)
    auto.train_on_batch(np.full((2, 8, 8, 1), 0.5, np.float32), np.full((2, 8, 8, 2), 0.4, np.float32))
    return auto, build_model("fusion_label")


def test_restore_falls_back_past_a_truncated_weights_file(tiny, tmp_path, capsys):
    from models import build_model
    from training import fit

    auto, _ = tiny
    fit.save_checkpoint(auto, tmp_path, {"epoch": 0, "step": 1, "batch": 1})
    fit.save_checkpoint(auto, tmp_path, {"epoch": 0, "step": 2, "batch": 2})
    DAMAGE["truncated"](runs.current_checkpoint(tmp_path).file("model.weights.h5"))
    fresh = build_model("autoencoder", image_size=8)
    assert fit.restore_checkpoint(fresh, tmp_path)["step"] == 1
    assert "step-000000002" in capsys.readouterr().err
    for a, b in zip(fresh.weights + fresh.optimizer.variables, auto.weights + auto.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("layout", ["legacy", "checkpoints"])
def test_weights_of_another_architecture_are_one_line_naming_the_file(tiny, tmp_path, layout):
    from training import fit

    auto, fusion = tiny
    if layout == "legacy":
        fusion.save_weights(tmp_path / "model.weights.h5")       # e.g. a file copied from another run
    else:
        fit.save_checkpoint(fusion, tmp_path, {"epoch": 1, "step": 4})
    with pytest.raises(runs.RunError) as err:
        fit.restore_checkpoint(auto, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "model.weights.h5: these weights do not fit" in message
    assert "damaged or mixed up" in message


def test_damaged_run_folders_from_the_command_line(tiny, tmp_path):
    """predict.py on a run whose newest checkpoint is truncated: a warning, then the previous one; with no
    complete checkpoint left: one error line naming the file, exit 2, no traceback."""
    from training import fit

    auto, _ = tiny
    config = {"model": "autoencoder", "model_options": {"image_size": 8, "precision": "float32"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    fit.save_checkpoint(auto, tmp_path, {"epoch": 1, "step": 1})
    fit.save_checkpoint(auto, tmp_path, {"epoch": 2, "step": 2})
    newest = runs.current_checkpoint(tmp_path).file("model.weights.h5")
    DAMAGE["truncated"](newest)
    args = ["predict.py", "-m", "autoencoder", "--run-dir", tmp_path, "--data", SAMPLE / "val", "--limit", "4",
            "--out", tmp_path / "out"]
    result = run_script(*args)
    assert f"warning: {newest}" in result.stderr and "step-000000001" in result.stderr
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 1
    DAMAGE["zero-length"](runs.current_checkpoint(tmp_path).file("model.weights.h5"))
    result = run_script(*args, expect=2)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "model.weights.h5" in result.stderr and "Traceback" not in result.stderr


# ---- one writer per run folder ------------------------------------------------------------------

LOCK_HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from core import runs
runs.lock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_and_a_killed_one_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER.format(root=str(ROOT)), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        shutil.copy(ROOT / "tests" / "fixtures" / "runs-before-layout" / "autoencoder" / "config.json", tmp_path)
        result = run_script("train.py", "-m", "autoencoder", "--resume", "--run-dir", tmp_path, expect=2)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert f"{tmp_path} is being trained by another process (pid {holder.pid}" in result.stderr
        with pytest.raises(runs.RunError, match="another process"):
            runs.lock(tmp_path)
    finally:
        holder.kill()                                                  # as a crash: no clean-up runs
        holder.wait()
    runs.lock(tmp_path)                                                # free at once


# ---- stop signals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", stopping.SIGNALS)
def test_first_signal_asks_to_stop_and_the_second_takes_the_default_action(signum, capfd):
    before = {s: signal.getsignal(s) for s in stopping.SIGNALS}
    with stopping.GracefulStop("finishing up") as stop:
        assert not stop.requested
        stop.check()
        os.kill(os.getpid(), signum)
        time.sleep(0.01)                                               # the handler runs between bytecodes
        assert stop.requested and all(signal.getsignal(s) == signal.SIG_DFL for s in stopping.SIGNALS)
        with pytest.raises(stopping.Stopped) as stopped:
            stop.check()
    name = signal.Signals(signum).name
    assert stopped.value.exit_code == 128 + signum and str(stopped.value) == f"stopped by {name}"
    assert {s: signal.getsignal(s) for s in stopping.SIGNALS} == before         # handlers restored
    assert f"{name}: finishing up; send it again to stop at once" in capfd.readouterr().err


# ---- the native log filter ------------------------------------------------------------------------

KNOWN_LINES = [
    "E0000 00:00:1795995748.171658    7957 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
    "Mutation::Apply error: fanout 'StatefulPartitionedCall/gradient_tape/unet_1/down5_lrelu_1/LeakyRelu/"
    "LeakyReluGrad' exist for missing node 'StatefulPartitionedCall/unet_1/down5_conv_1/BiasAdd'.",
    "E0000 00:00:1795995748.480780    7957 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512. "
    "Falling back to the default Eigen-based implementation if present.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]
OTHER_LINES = [
    "E0000 00:00:1795995748.480780    7957 util.cc:131] oneDNN supports DT_HALF only on platforms with AVX-512. "
    "Falling back to the default Eigen-based implementation if present.",
    "E0000 00:00:1795995748.171658    7957 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: other",
    "F0000 00:00:1795995748.171658    7957 some_kernel.cc:12] Check failed: x == y",
    "Traceback (most recent call last):",
]


def test_only_the_known_native_lines_are_filtered_and_the_rest_survives_a_crash(tmp_path):
    from cli import native_log

    assert all(native_log.is_known(line) for line in KNOWN_LINES)
    assert not any(native_log.is_known(line) for line in OTHER_LINES)
    # A script's process: known lines dropped, others passed in order, the last words of a SIGKILLed one too.
    script = tmp_path / "probe.py"
    script.write_text(   # native_log alone, not cli/__init__: no TF
        f"import os, sys\nsys.path.insert(0, {str(ROOT / 'cli')!r})\nimport native_log\nnative_log.install()\n"
        "for line in sys.argv[1:]:\n    os.write(2, (line + '\\n').encode())\nos.kill(os.getpid(), 9)\n")
    result = subprocess.run([sys.executable, str(script), *KNOWN_LINES, *OTHER_LINES], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == -9 and result.stderr.splitlines() == OTHER_LINES
