"""How a batch is split between the replicas of a ``tf.distribute`` model.

Used by the ``Colorizer`` (inference) and the GAN's training loop alike, so it sits in the ground
layer rather than in ``training.distribute``, which creates the strategies. No TensorFlow import at
module level: the project also runs on the JAX and PyTorch backends, where every count here is 1.
"""
from __future__ import annotations

import numpy as np


def num_replicas(strategy) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def shard_batch(strategy, array: np.ndarray):
    """Split a global batch between the replicas: replica r of R gets the r-th contiguous slice.

    For manual loops (the GAN): ``train_on_batch`` and ``predict_on_batch`` under a strategy give
    every replica the *whole* array they receive (Keras 3 pitfall 6, measured), and
    ``predict_on_batch`` then returns it R times over; given this per-replica value instead, each
    replica trains on its own slice, and ``predict_on_batch`` returns the global batch in order.
    Every worker holds the same global batch (same seed), so the slices cover it exactly once.
    Slices differ by at most one row when R does not divide the batch (the last batch of an epoch):
    the logged mean is then the mean of the replicas' means, as in ``fit``; a last batch with fewer
    rows than replicas leaves some replica empty (its loss counts as 0). Returns ``array`` itself
    with fewer than two replicas.
    """
    if num_replicas(strategy) < 2:
        return array
    import tensorflow as tf
    array = np.asarray(array)

    def local_slice(context):
        r, n = context.replica_id_in_sync_group, context.num_replicas_in_sync
        bounds = np.linspace(0, len(array), n + 1).round().astype(int)   # sizes differ by 1 at most
        return tf.constant(array[bounds[r]:bounds[r + 1]])

    return strategy.experimental_distribute_values_from_function(local_slice)


def model_replicas(model) -> int:
    """Replicas of the tf.distribute strategy ``model`` was built under; 1 without one (or another backend).

    Keras' TensorFlow trainer records the strategy whose scope a model was created in; the JAX and
    PyTorch trainers have no such attribute, and TensorFlow is not imported here.
    """
    strategy = getattr(model, "_distribute_strategy", None)
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)
