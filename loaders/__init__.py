"""Data loaders (layer 1 of the layout: may import ``core`` only; Keras only lazily, at first use).

- ``cifar``: CIFAR-10 batch files and image folders read whole at a fixed size, and the Keras batch
  generator of the faithful models (``CifarGenerator``).
- ``photos``: photos of any size read per batch as random crops at random scales, drawn from the
  seed, decoded by parallel workers, with bounded memory (the photo colorizer's training data).
"""
