"""The ground layer: what every other part of the project stands on.

- ``colorspace``: RGB <-> LAB and the network encodings, with their value ranges.
- ``ab_bins``: the quantized ab space of a classification head (in-gamut bins, soft encoding,
  class rebalancing, annealed mean), with its value ranges.
- ``runs``: run folders (config, weights, state) and where they live.
- ``grids``: image grids ``[gray | generated | original]`` and saving them.
- ``tblog``: TensorBoard event files, written and read without TensorFlow.
- ``replicas``: how a batch is split between the replicas of a tf.distribute model.

May import: nothing of the project (only the standard library and third-party packages).
"""
