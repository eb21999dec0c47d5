"""Using a trained model: a run's network with its color encoding, and full-resolution photos.

- ``colorizer``: :class:`Colorizer`, uint8 RGB images in, colorized RGB out; every tool (predict,
  evaluate, colorize, the training samples) goes through it, so they encode and decode alike.
- ``pretrained``: which run a tool uses: the one asked for, the latest local one, else the run
  shipped in ``pretrained/<model>/`` (and saying so).
- ``fullres``: the working size, and the model's chroma brought back to full resolution guided
  by the photo's lightness (``Colorizer.colorize_photo``).
- ``lean``: the network through ONNX Runtime, without TensorFlow (made with Keras once, cached):
  what the tools use by default where it can serve.
- ``hintsfile``: the hints file (points and a reference), parsed and checked.
- ``photos``: reading photo files of any size and format safely, with their hints, and writing
  them colorized (what ``colorize.py`` and the demo do).
- ``png``: PNG files written on every core (bands of rows compressed in threads, one valid stream).

May import: ``core``, ``loaders``, ``priors``, ``models``.
"""
from core.runs import RunError
from inference.colorizer import (
    Colorizer,
    DecodingError,
    HintInputs,
    HintsError,
    HintsNotSupportedError,
    MissingLabelError,
    data_color_space,
)
from inference.hintsfile import HintsFileError
from inference.lean import LeanExportError, RuntimeChoiceError
from loaders.cifar import DataError
from models import UnknownModelError
from priors import PriorError

# What a user can get wrong when asking for a colorization (no run, bad data, an unknown model, a
# missing class label or classifier weights, a runtime that cannot serve): tools print these as one line
# instead of a traceback.
USER_ERRORS = (DataError, RunError, UnknownModelError, MissingLabelError, PriorError, DecodingError,
               HintsError, HintsFileError, RuntimeChoiceError, LeanExportError)

__all__ = ["USER_ERRORS", "Colorizer", "DecodingError", "HintInputs", "HintsError", "HintsFileError",
           "HintsNotSupportedError", "MissingLabelError", "data_color_space"]
