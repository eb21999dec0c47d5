"""Training on several GPUs or machines with ``tf.distribute``: ``train.py --strategy NAME``.

Strategies (TensorFlow backend only; JAX and PyTorch have their own mechanisms):

* ``none`` (default): no ``tf.distribute``; this module then does nothing at all.
* ``mirrored``: ``tf.distribute.MirroredStrategy``, one replica per local GPU (the CPU when there
  is none), gradients all-reduced between them.
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``: the same across machines. Each
  machine runs the same command with its own ``TF_CONFIG`` (the cluster and its own task), as
  TensorFlow documents; worker 0 (or the task of type ``chief``) is the chief.

What every model gets (``fit`` models and the GAN's manual loop alike):

* ``--batch-size`` is the *global* batch: each of the R replicas trains on ``batch/R`` images of
  it, gradients are all-reduced, and every replica applies the same update, so the weights stay
  identical everywhere. The loss is the mean over the global batch, as on one device, so the
  learning rate needs no change (Adam 2e-4 for a global batch of 32, as the original). A bigger
  global batch (say 32 per GPU) is a different experiment: scale the learning rate yourself.
* BatchNormalization is switched to ``synchronized=True`` (statistics of the global batch, one
  all-reduce of per-channel sums per layer and step). Without it each replica normalizes with the
  statistics of its own slice and updates its own moving statistics, so the loss differs from the
  one-device run and the workers end with *different* moving statistics (measured on the U-Net,
  2 workers, 2 steps: loss 2.7% off the one-process run, moving statistics 0.17 apart).
* Only the chief writes the run folder and TensorBoard logs. The other workers still run every
  step, sample grid and save (collective operations need every worker), but into a temporary
  folder removed at exit, as TensorFlow's multi-worker Keras guide does.

Keras 3 workarounds (multiworker only)
--------------------------------------
Keras 3.15 cannot train under ``MultiWorkerMirroredStrategy`` with more than one worker; two bugs,
each patched in Keras' TensorFlow trainer by :func:`_patch_keras_for_multiworker` (private names,
checked; the patches only change what fails):

1. Every train/test step (``fit``, ``train_on_batch``, ``evaluate``) reduces its scalar logs with
   ``strategy.reduce("MEAN", value, axis=0)``: "Invalid reduction dimension 0 for input with 0
   dimensions" (tensorflow/tensorflow#72388). Patched: ``axis=None`` for scalars, the mean of the
   workers' values, i.e. the mean over the global batch when the slices have equal sizes.
2. ``fit`` reads the shapes of its first batch with ``strategy.reduce("MEAN", (x, y), axis=None)``
   on the whole (x, y) structure, which MultiWorkerMirroredStrategy cannot reduce ("Attempt to
   convert a value (PerReplica...) to a Tensor"). Patched: the shapes are read from the local
   replica's part of the batch instead (they are only used to build losses and metrics).

No TensorFlow import at module level: the project also runs on the JAX and PyTorch backends.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from core import checkpoints, runs
from core.replicas import num_replicas, shard_batch  # noqa: F401  (re-exported for the training loops)

STRATEGIES = ("none", "mirrored", "multiworker")

# Tests set this to False to compare the weights a non-chief worker saved with the chief's.
REMOVE_WORKER_DIRS = True


class StrategyError(Exception):
    """A --strategy that cannot be used here; the message is one line saying why and what to do."""


# ---- TF_CONFIG -----------------------------------------------------------------

def tf_config() -> dict:
    """The parsed ``TF_CONFIG`` environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise StrategyError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return config


def task() -> tuple[str | None, int]:
    """(task type, task index) of this process from TF_CONFIG; (None, 0) without one."""
    t = tf_config().get("task") or {}
    return t.get("type"), int(t.get("index", 0))


def is_chief() -> bool:
    """Whether this process writes the run folder and logs.

    As TensorFlow defines it: the task of type ``chief`` if the cluster has one, else worker 0;
    a process without TF_CONFIG (one machine) is the chief.
    """
    task_type, index = task()
    if task_type is None or task_type == "chief":
        return True
    cluster = tf_config().get("cluster") or {}
    return task_type == "worker" and index == 0 and not cluster.get("chief")


def num_workers() -> int:
    """Machines (tasks of type chief or worker) in TF_CONFIG's cluster; 1 without one."""
    cluster = tf_config().get("cluster") or {}
    return max(1, len(cluster.get("chief") or []) + len(cluster.get("worker") or []))


# ---- strategies ----------------------------------------------------------------

def create_strategy(name: str, batch_size: int | None = None, seed: int | None = 0):
    """The ``tf.distribute`` strategy named ``name``, or None for "none".

    Create it before anything else starts TensorFlow's runtime (MultiWorkerMirroredStrategy
    requires that). ``batch_size`` (global) must be a multiple of the number of replicas;
    ``seed`` must be given for "multiworker" (every worker must shuffle the data the same way).
    Raises StrategyError with a one-line message.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}'; use one of {', '.join(STRATEGIES)}")
    if name == "none":
        return None
    import keras
    if keras.backend.backend() != "tensorflow":
        raise StrategyError(f"--strategy {name} needs the TensorFlow backend (KERAS_BACKEND is "
                            f"'{keras.backend.backend()}'); leave --strategy out, or set KERAS_BACKEND=tensorflow")
    import tensorflow as tf
    if name == "multiworker":
        config = tf_config()
        if not (config.get("cluster") and config.get("task")):
            raise StrategyError("--strategy multiworker needs TF_CONFIG with 'cluster' and 'task' (see docs/speed.md, "
                                "'Several GPUs or machines'); on one machine use --strategy mirrored")
        if seed is None:
            raise StrategyError("--strategy multiworker needs --seed N, the same on every worker, so that "
                                "all workers draw the same initial weights and shuffle the data alike")
        _patch_keras_for_multiworker()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy()   # every local GPU; the CPU when there is none
    if batch_size is not None and batch_size % strategy.num_replicas_in_sync:
        raise StrategyError(f"--batch-size {batch_size} is the global batch and must be a multiple of the "
                            f"{strategy.num_replicas_in_sync} replicas, so that each trains on an equal slice")
    return strategy


def describe(name: str, strategy, batch_size: int) -> dict:
    """What config.json records about the distribution of a run."""
    replicas = num_replicas(strategy)
    return {"strategy": name, "replicas": replicas,
            "workers": num_workers() if name == "multiworker" else 1,
            "global_batch_size": batch_size, "batch_size_per_replica": batch_size // replicas}


def scope(strategy):
    """``strategy.scope()``, or a no-op context for no strategy. Build and compile models inside it."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def synchronize_batch_norm(models, strategy) -> int:
    """Make every BatchNormalization layer use the statistics of the global batch; returns how many.

    ``models``: a Keras model, or an object with ``generator``/``discriminator`` (the GAN). Keras
    reads ``synchronized`` when a step is traced, so setting it after building is enough, and the
    model files stay strategy-free. A no-op with fewer than two replicas.
    """
    if num_replicas(strategy) < 2:
        return 0
    import keras
    roots = [m for m in (getattr(models, "generator", None), getattr(models, "discriminator", None)) if m is not None]
    seen, count = set(), 0
    stack = roots or [models]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
        stack.extend(getattr(layer, "layers", []))
    return count


# ---- only the chief writes -----------------------------------------------------

def worker_run_dir(run_dir: Path | None, chief: bool) -> Path | None:
    """The folder this process writes its run into: ``run_dir`` on the chief, else a temporary one.

    A non-chief worker trains and saves exactly like the chief (saving and sampling may involve
    collective operations), into a temporary folder removed at exit (unless REMOVE_WORKER_DIRS is
    False). On ``--resume``, that folder starts as a copy of the checkpoint in ``run_dir`` (which
    must then be readable on every machine), so that every worker restores the same state.
    """
    if chief:
        return run_dir
    task_type, index = task()
    tmp = Path(tempfile.mkdtemp(prefix=f"colorize-{task_type or 'worker'}{index}-"))
    if run_dir is not None and Path(run_dir).is_dir():
        for path in Path(run_dir).iterdir():   # config.json (and an older layout's weights and state)
            if path.is_file() and path.suffix in (".h5", ".npz", ".json"):
                shutil.copy2(path, tmp / path.name)
        current = runs.current_checkpoint(Path(run_dir), announce=False)
        if current is not None and not current.legacy:
            shutil.copytree(current.path, tmp / checkpoints.FOLDER / current.path.name)
    if REMOVE_WORKER_DIRS:
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return tmp


# ---- per-worker input ------------------------------------------------------------

def per_worker_stream(strategy, make_generator, steps: int, start: int, global_batch: int, example):
    """Training input where each worker makes only its own part of every global batch.

    ``make_generator(shard)`` returns a generator whose ``epoch_batch(e, i)`` serves the contiguous
    slice ``shard = (worker, workers)`` of batch i of epoch e (training.stream_data.StreamGenerator);
    item k of a worker's stream is batch (start + k) mod ``steps`` of epoch (start + k) div ``steps``,
    as ``training.fit.StepStream`` serves the whole batch. A worker with several replicas splits its
    slice between them. ``example``: one batch of that structure (any size), made before: the
    datasets' element types come from it, since a batch made inside the strategy's scope would run the
    encoder once per replica. Returns (the ``strategy.distribute_datasets_from_function`` input for
    ``model.fit``, the list the generators made are appended to, for the caller to close)."""
    import numpy as np
    import tensorflow as tf
    made = []

    def dataset_fn(context):
        generator = make_generator((context.input_pipeline_id, context.num_input_pipelines))
        made.append(generator)
        # the batch size static: Keras weighs each replica's loss by it when it averages them (with None the
        # logged loss came out twice the one-process run's on two workers)
        local = global_batch // context.num_input_pipelines
        spec = tf.nest.map_structure(
            lambda a: tf.TensorSpec((local, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)), example)

        def batches():
            k = start
            while True:
                yield generator.epoch_batch(*divmod(k, steps))
                k += 1

        dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
        per_replica = context.get_per_replica_batch_size(global_batch)
        if per_replica != local:   # several replicas on this worker
            dataset = dataset.unbatch().batch(per_replica, drop_remainder=True)
        return dataset

    return strategy.distribute_datasets_from_function(dataset_fn), made


# ---- Keras 3 workarounds ------------------------------------------------------

def _patch_keras_for_multiworker() -> None:
    """Patch the two Keras 3 multi-worker bugs described in the module docstring (idempotent).

    Both patched names are looked up when used (the train function when it is traced), so patching
    before the first step is enough. Does nothing if Keras' layout changed (another version).
    """
    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
        reduce_original = tf_trainer.reduce_per_replica
        build_original = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
        multi_worker = tf_trainer._collective_all_reduce_multi_worker
    except (ImportError, AttributeError):
        return
    if getattr(reduce_original, "patched_by", None) == __name__:
        return
    import keras
    import tensorflow as tf

    def reduce_per_replica(values, strategy, reduction):
        """Bug 1: scalar logs are reduced across workers with axis=None (not 0)."""
        if reduction not in ("auto", "mean") or not multi_worker(strategy):
            return reduce_original(values, strategy, reduction)

        def reduce(value):
            local = strategy.experimental_local_results(value)
            if all(getattr(v, "shape", None) is not None and v.shape.rank == 0 for v in local):
                return strategy.reduce("MEAN", value, axis=None)
            return reduce_original(value, strategy, reduction)

        return keras.tree.map_structure(reduce, values)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Bug 2: the first batch's shapes come from the local replica's part of it."""
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and multi_worker(strategy):
            for _, _, it in iterator:   # as Keras does: peek at the first batch
                data_batch = keras.tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
                break
            iterator = None
        return build_original(self, iterator=iterator, data_batch=data_batch)

    reduce_per_replica.patched_by = __name__
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
