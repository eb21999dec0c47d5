import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def sample_val():
    import dataset
    return dataset.load_images(SAMPLE / "val")


def run_script(*args, expect: int = 0, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would (python SCRIPT ARGS, from the repo root)."""
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def trained_run(tmp_path_factory, model: str, logs: bool = False) -> Path:
    """A one-step run of ``model`` in <session tmp>/runs/<model>/r1, trained once per test session.

    The runs live in one folder per session so that compare.py's --runs-dir finds all of them.
    """
    base = tmp_path_factory.getbasetemp()
    run_dir = base / "runs" / model / "r1"
    if not (run_dir / "model.weights.h5").exists():
        args = ["train.py", "-m", model, "--epochs", "1", "--steps", "1", "--limit", "16", "--seed", "1",
                "--run-dir", run_dir]
        args += ["--log-dir", base / "logs" / model / "r1"] if logs else ["--no-logs"]
        run_script(*args)
    return run_dir


@pytest.fixture(scope="session")
def unet_run(tmp_path_factory):
    return trained_run(tmp_path_factory, "unet")
