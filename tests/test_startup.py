"""Start fast (issue 20): no script imports a framework before it needs one.

Every script parses and checks its arguments, finds its files and reports a usage error before it
imports TensorFlow, Keras, JAX or PyTorch, and ``--help`` imports none of the heavy libraries at
all. Each script runs here as a user runs it, in a subprocess where those imports are refused: a
``sitecustomize.py`` (in a folder put first on PYTHONPATH, so Python runs it at start-up) installs a
``sys.meta_path`` finder that claims the refused packages and fails their import with ImportError,
after writing ``refused import: NAME`` to stderr, so that even an import whose failure the code
catches (an optional dependency) is seen. The finder does answer ``importlib.util.find_spec``, as
for an installed package: checks that a library is there (export.py's) behave as on a real install.
No timings are asserted: the machines that run the tests are shared.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")
# What --help must not import: the frameworks, plotting, SciPy, scikit-image, the web app's Flask, ONNX.
HEAVY = FRAMEWORKS + ("matplotlib", "scipy", "skimage", "flask", "onnx", "onnxruntime", "tf2onnx")
MARK = "refused import: "

SITECUSTOMIZE = '''
import importlib.abc, importlib.machinery, os, sys

REFUSED = set(os.environ.get("STARTUP_TEST_REFUSE", "").split(","))


class _Refuse(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Claims the refused top-level packages (and their submodules); their import fails."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        os.write(2, f"{MARK}{module.__name__}\\n".encode())
        raise ImportError(f"{module.__name__} is refused by tests/test_startup.py")


sys.meta_path.insert(0, _Refuse())
'''.replace("{MARK}", MARK)

SCRIPTS = ("train", "predict", "evaluate", "compare", "colorize", "bench", "export", "demo", "dataset")
# What each script needs besides the option under test, so that argparse gets to that option.
REQUIRED = {"train": ["-m", "unet"], "predict": ["-m", "unet"], "evaluate": ["-m", "unet"], "compare": [],
            "colorize": ["photo.jpg"], "bench": [], "export": ["-m", "unet", "--format", "onnx", "--out", "x.onnx"],
            "demo": [], "dataset": ["download"]}
# dataset.py's commands, each with what it needs besides the option under test.
DATASET_COMMANDS = {"download": [], "export": ["--data", "x", "--out", "y"], "photos": [], "clips": []}
MISSING = "no-such-folder-for-test-startup"   # relative to the repository root, where the scripts run
# Mistakes found in main, past argparse: one line "error: ..." on stderr, exit code 2, no framework loaded.
USER_MISTAKES = [
    ("train", ["-m", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    ("train", ["-m", "unet", "--data", MISSING], f"{MISSING}: no such folder"),
    ("train", ["-m", "unet", "--val-data", MISSING], f"{MISSING}: no such folder"),
    ("predict", ["-m", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    ("predict", ["-m", "unet", "--data", MISSING], f"{MISSING}: no such folder"),
    ("evaluate", ["-m", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    ("evaluate", ["-m", "unet", "--data", MISSING], f"{MISSING}: no such folder"),
    ("evaluate", ["-m", "effnet_unet", "--hints", "5", "--photos", MISSING], f"{MISSING}: no image files"),
    ("evaluate", ["--compare", "--models", "unet,nosuchmodel"], "unknown model 'nosuchmodel'"),
    ("evaluate", ["--video", f"{MISSING}.mp4"], f"{MISSING}.mp4: no such file"),
    ("evaluate", ["--video", "README.md"], "README.md: not a readable video"),
    ("compare", ["--models", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    ("compare", ["--data", MISSING], f"{MISSING}: no such folder"),
    ("colorize", ["-m", "nosuchmodel", "photo.jpg"], "unknown model 'nosuchmodel'"),
    ("colorize", ["--work-size", "7", "photo.jpg"], "--work-size must be a multiple of 8"),
    ("export", ["-m", "nosuchmodel", "--format", "onnx", "--out", "x.onnx"], "unknown model 'nosuchmodel'"),
    ("export", ["-m", "unet", "--format", "savedmodel", "--out", "x.onnx"], "a SavedModel is a folder"),
    ("demo", ["--run-dir", MISSING], f"{MISSING}: no config.json"),
    ("dataset", ["export", "--data", MISSING, "--out", MISSING], f"{MISSING}: no such folder"),
]
# Mistakes argparse reports (usage, then "PROG: error: ..."), beyond the unknown option of every script.
ARGPARSE_MISTAKES = [
    ("bench", ["--models", "nosuchmodel"], "invalid choice: 'nosuchmodel'"),
    ("bench", ["--sections", "nosuchsection"], "unknown nosuchsection"),
    ("dataset", ["photos", "--max-side", "-1"], "--max-side must be 0"),
    ("dataset", ["clips", "--size", "8x8"], "at least 16 x 16"),
    ("dataset", ["clips", "--frames", "1"], "--frames must be at least 2"),
    ("evaluate", ["--video", "clip.mp4", "--modes", "slow"], "expected frame, stable and/or photo"),
    ("evaluate", ["--video", "clip.mp4", "--compare"], "--video goes without --compare"),
    ("evaluate", ["-m", "unet", "--no-stabilize"], "--no-stabilize: only with --video"),
    ("demo", ["--max-files", "0"], "must be positive"),
    ("train", ["-m", "unet", "--mixed-precision", "float8"], "invalid choice: 'float8'"),
    ("train", ["-m", "effnet_unet", "--hints", "--train-new-only"], "give --init RUN_DIR"),
    ("train", ["-m", "effnet_unet", "--hint-head", "attention"], "add --hints"),
    ("train", ["-m", "effnet_unet", "--decoder-points", "off"], "add --hints"),
    ("train", ["-m", "effnet_unet", "--encoder-detail"], "--encoder-detail cuts the encoder's crops from the photos"),
]


@pytest.fixture(scope="module")
def refusing_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refuse")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def run_refusing(refusing_path, refused, *args) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root, the ``refused`` packages unimportable."""
    env = dict(os.environ, STARTUP_TEST_REFUSE=",".join(refused),
               PYTHONPATH=os.pathsep.join(p for p in (str(refusing_path), os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_refusal_works(refusing_path):
    """The guard itself: an import of a refused package fails and is named (else every test here passes vacuously)."""
    code = "import importlib.util, sys; assert importlib.util.find_spec('keras'); import numpy; import keras"
    result = run_refusing(refusing_path, HEAVY, "-c", code)
    assert result.returncode == 1 and f"{MARK}keras" in result.stderr, result.stderr
    assert "ImportError: keras is refused" in result.stderr
    caught = run_refusing(refusing_path, HEAVY, "-c", "try:\n import matplotlib.pyplot\nexcept ImportError:\n pass")
    assert caught.returncode == 0 and f"{MARK}matplotlib" in caught.stderr   # seen even when caught


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_imports_nothing_heavy(refusing_path, script):
    result = run_refusing(refusing_path, HEAVY, f"{script}.py", "--help")
    assert MARK not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"usage: {script}.py") and not result.stderr


def assert_argparse_error(result, message: str) -> None:
    """argparse's report: exit code 2, the usage, then one "PROG: error: ..." line, no traceback."""
    assert MARK not in result.stderr, result.stderr
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert lines[0].startswith("usage: ") and "Traceback" not in result.stderr
    assert [line for line in lines if "error:" in line] == lines[-1:] and message in lines[-1], result.stderr


@pytest.mark.parametrize("command", DATASET_COMMANDS)
def test_each_dataset_command_help_imports_nothing_heavy(refusing_path, command):
    result = run_refusing(refusing_path, HEAVY, "dataset.py", command, "--help")
    assert MARK not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"usage: dataset.py {command}") and not result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_option_is_reported_before_any_framework_loads(refusing_path, script):
    result = run_refusing(refusing_path, FRAMEWORKS, f"{script}.py", *REQUIRED[script], "--no-such-option")
    assert_argparse_error(result, "unrecognized arguments: --no-such-option")


@pytest.mark.parametrize("command", DATASET_COMMANDS)
def test_an_unknown_option_of_a_dataset_command_is_reported_before_any_framework_loads(refusing_path, command):
    result = run_refusing(refusing_path, FRAMEWORKS, "dataset.py", command, *DATASET_COMMANDS[command],
                          "--no-such-option")
    assert_argparse_error(result, "unrecognized arguments: --no-such-option")


@pytest.mark.parametrize("script, args, message", ARGPARSE_MISTAKES, ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_value_is_reported_by_argparse_before_any_framework_loads(refusing_path, script, args, message):
    assert_argparse_error(run_refusing(refusing_path, FRAMEWORKS, f"{script}.py", *args), message)


@pytest.mark.parametrize("script, args, message", USER_MISTAKES, ids=lambda v: v if isinstance(v, str) else None)
def test_a_user_mistake_is_one_line_before_any_framework_loads(refusing_path, script, args, message):
    result = run_refusing(refusing_path, FRAMEWORKS, f"{script}.py", *args)
    assert MARK not in result.stderr, result.stderr
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


def test_the_light_packages_import_no_framework():
    code = ("import sys, cli, cli.errors, cli.options, loaders, loaders.cifar, core, models, models.effnet_options, "
            "evaluation.metrics, training.distribute, benchmarks.settings; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_what_the_scripts_name_instead_of_importing_exists():
    """The tables kept light agree with the heavy modules they stand for."""
    import keras

    import bench
    import train
    from loaders import cifar
    from training import session

    assert set(train.MIXED_PRECISION_CHOICES) == set(session.MIXED_PRECISION)
    assert all(callable(bench.section_function(name)) for name in (bench.PEAK, *bench.SECTIONS))
    assert issubclass(cifar.CifarGenerator, keras.utils.PyDataset)
    assert cifar.CifarGenerator.__name__ == "CifarGenerator" and cifar.CifarGenerator.__module__ == "loaders.cifar"


def test_colorize_with_no_readable_input_stops_before_any_framework_loads(refusing_path, tmp_path):
    """Only missing files: each one error line, exit 1, and no model loaded for nothing."""
    result = run_refusing(refusing_path, FRAMEWORKS, "colorize.py", str(tmp_path / "missing.jpg"),
                          "--out", str(tmp_path))
    assert MARK not in result.stderr, result.stderr
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] and "missing.jpg" in result.stderr
    assert "colorized nothing: 1 error(s)" in result.stdout
