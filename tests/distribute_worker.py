"""One process of tests/test_distribute.py: ``train.py``'s main, plus what the test checks.

    python tests/distribute_worker.py REPORT.json TRAIN_PY_ARGS...     (TF_CONFIG set by the test)

Runs ``train.main(TRAIN_PY_ARGS)`` as ``python train.py`` would, except that a non-chief worker's
temporary run folder is kept (``distribute.REMOVE_WORKER_DIRS``), and writes REPORT.json:

* ``exit``: train.py's exit status;
* ``run_dir``: the folder this process wrote its run into (the chief's --run-dir, or the
  non-chief's temporary folder), to compare the weights the workers saved;
* ``shards``: for every ``distribute.shard_batch`` call (the GAN's steps), the rows of the global
  batch and their sum and, per local replica, the rows it got and their sum, to check that the workers split
  each global batch between them instead of each processing all of it.
"""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402, F401  (first, as in train.py)

# isort: split
import train  # noqa: E402
from cli.errors import run_main  # noqa: E402
from training import distribute  # noqa: E402

report: dict = {"shards": []}
distribute.REMOVE_WORKER_DIRS = False

_worker_run_dir = distribute.worker_run_dir
_shard_batch = distribute.shard_batch


def worker_run_dir(run_dir, chief):
    path = _worker_run_dir(run_dir, chief)
    report["run_dir"] = str(path)
    return path


def shard_batch(strategy, array):
    value = _shard_batch(strategy, array)
    local = [value] if distribute.num_replicas(strategy) < 2 else strategy.experimental_local_results(value)
    report["shards"].append({"global_rows": len(array), "global_sum": float(np.sum(array, dtype=np.float64)),
                             "local": [[int(v.shape[0]), float(np.sum(np.asarray(v), dtype=np.float64))]
                                       for v in local]})
    return value


distribute.worker_run_dir = worker_run_dir
distribute.shard_batch = shard_batch

if __name__ == "__main__":
    code = run_main(train.main, sys.argv[2:])
    report["exit"] = code
    report.setdefault("run_dir", None)
    Path(sys.argv[1]).write_text(json.dumps(report))
    sys.exit(code)
