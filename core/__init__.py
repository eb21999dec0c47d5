"""The ground layer: what every other part of the project stands on.

- ``colorspace``: RGB <-> LAB and the network encodings, with their value ranges.
- ``ab_bins``: the quantized ab space of a classification head (in-gamut bins, soft encoding,
  class rebalancing, annealed mean), with its value ranges.
- ``runs``: run folders (config, weights, state) and where they live; the one way to load a run's
  weights; the lock that keeps one writer per run folder.
- ``checkpoints``: crash-safe checkpoints (written whole or not at all, verified when read).
- ``stopping``: SIGTERM / Ctrl-C / SIGHUP end work at the next safe point; a second signal at once.
- ``faults``: pause points the fault-injection tests kill a process at.
- ``grids``: image grids ``[gray | generated | original]`` and saving them.
- ``tblog``: TensorBoard event files, written and read without TensorFlow.
- ``replicas``: how a batch is split between the replicas of a tf.distribute model.

May import: nothing of the project outside ``core`` (only the standard library and third-party packages).
"""
