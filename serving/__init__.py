"""Using a trained model outside the project's scripts: exported artifacts with a card, the demo web page.

- ``export``: ``model.export`` to a TensorFlow SavedModel, ONNX and TFLite (LiteRT), each artifact
  reloaded by its own runtime and checked against the Keras model (``export.py``).
- ``card``: the JSON/Markdown card written next to an exported model (tensors, encodings, the run).
- ``colorgraph``: the color conversion as Keras ops, baked into an export (gray image in, RGB out).
- ``catalog``: the runs the demo offers (the latest of each model, given ones, shipped pretrained ones).
- ``webapp``: the demo page (Flask), colorizing through ``inference.photos`` as colorize.py does (``demo.py``).

May import: ``core``, ``loaders``, ``models``, ``inference`` (layers 0-3).
"""
