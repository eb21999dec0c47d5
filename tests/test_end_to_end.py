"""train.py and predict.py as a user runs them, on the bundled sample."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, progress
from conftest import run_script as run
from core import runs, tblog


@pytest.fixture(scope="module")
def unet_logged_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unet")
    out = run("train.py", "-m", "unet", "--epochs", "1", "--limit", "48", "--batch-size", "16", "--seed", "3",
              "--run-dir", str(tmp / "run"), "--log-dir", str(tmp / "logs"))
    return tmp, out


def test_train_writes_a_self_describing_run_folder(unet_logged_run):
    tmp, out = unet_logged_run
    run_dir = tmp / "run"
    assert "using the bundled sample" in out.stdout
    assert_one_line_per_epoch(out.stdout, 1)                      # captured: not a terminal
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "unet" and config["seed"] == 3 and config["epochs"] == 1
    assert config["batch_size"] == 16 and config["data"]["n_images"] == 48
    assert config["val_data"]["n_images"] == 100                 # the sample's val/ split
    assert runs.current_checkpoint(run_dir).file("model.weights.h5").exists()
    assert (run_dir / "summary.txt").read_text().strip()
    assert progress(run_dir) == (1, 3)                             # 48 images / 16
    assert (run_dir / "samples" / "epoch-001.jpg").exists()
    scalars = tblog.read_scalars(tmp / "logs")
    assert [s for s, _ in scalars["train"]["epoch_loss"]] == [1]
    assert np.isfinite(scalars["validation"]["epoch_loss"][0][1])


def test_predict_writes_gray_generated_original_grids(unet_logged_run, tmp_path):
    tmp, _ = unet_logged_run
    run("predict.py", "-m", "unet", "--run-dir", str(tmp / "run"), "--out", str(tmp_path), "--limit", "20",
        "--batch-size", "8", "--save-single")
    grids = sorted(tmp_path.glob("batch-*.jpg"))
    assert len(grids) == 3                                        # ceil(20 / 8)
    first = np.asarray(Image.open(grids[0]).convert("RGB")).astype(int)
    assert first.shape == (8 * 32, 3 * 32, 3)
    assert np.asarray(Image.open(grids[-1])).shape[:2] == (4 * 32, 3 * 32)
    gray = first[:, :32]
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 6          # JPEG noise only
    assert np.abs(gray[..., 1] - gray[..., 2]).max() <= 6
    original = first[:, 64:]
    assert np.abs(original[..., 0] - original[..., 2]).mean() > 5   # the original column is in color
    singles = sorted(p.name for p in (tmp_path / "single").glob("*.png"))
    assert len(singles) == 20 and "img-0-automobile.png" in singles


def test_resume_continues_the_run(unet_logged_run):
    tmp, _ = unet_logged_run
    out = run("train.py", "-m", "unet", "--resume", "--run-dir", str(tmp / "run"), "--epochs", "2")
    assert "resuming after epoch 1" in out.stdout
    assert_one_line_per_epoch(out.stdout, 1)
    assert "Epoch 2/2" in out.stdout                               # the header (a 1-epoch run prints none)
    assert progress(tmp / "run") == (2, 6)
    assert [s for s, _ in tblog.read_scalars(tmp / "logs")["train"]["epoch_loss"]] == [1, 2]


def test_predict_without_a_run_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "predict.py", "-m", "unet", "--run-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "no config.json" in result.stderr and "Traceback" not in result.stderr


def assert_one_line_per_epoch(out: str, epochs: int) -> None:
    """Progress when stdout is not a terminal (captured, as in a log file): one line per epoch, no redraws."""
    assert "\r" not in out and "━" not in out                  # no progress-bar redraws
    lines = [line for line in out.splitlines() if " - loss: " in line]
    assert len(lines) == epochs and all("val_loss" in line for line in lines), out
