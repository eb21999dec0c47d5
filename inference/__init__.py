"""Using a trained model: a run's network with its color encoding, and full-resolution photos.

- ``colorizer``: :class:`Colorizer`, uint8 RGB images in, colorized RGB out; every tool (predict,
  evaluate, colorize, the training samples) goes through it, so they encode and decode alike.
- ``pretrained``: which run a tool uses: the one asked for, the latest local one, else the run
  shipped in ``pretrained/<model>/`` (and saying so).
- ``photos``: reading photos of any size and format safely, and recombining the model's chroma
  with the full-resolution lightness (what ``colorize.py`` does).

May import: ``core``, ``dataset``, ``priors``, ``models``.
"""
from core.runs import RunError
from dataset import DataError
from inference.colorizer import Colorizer, DecodingError, MissingLabelError, data_color_space
from models import UnknownModelError
from priors import PriorError

# What a user can get wrong when asking for a colorization (no run, bad data, an unknown model, a
# missing class label or classifier weights): tools print these as one line instead of a traceback.
USER_ERRORS = (DataError, RunError, UnknownModelError, MissingLabelError, PriorError, DecodingError)

__all__ = ["USER_ERRORS", "Colorizer", "DecodingError", "MissingLabelError", "data_color_space"]
