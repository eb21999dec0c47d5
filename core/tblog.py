"""TensorBoard event files written with the ``tensorboard`` package alone.

Keras' TensorBoard callback needs TensorFlow's summary ops; this writer needs only the
``tensorboard`` package, so logs look the same under every Keras backend and from the GAN's
manual loop. Scalars and images go to ``<logdir>/<subdir>``; TensorBoard overlays the
``train`` and ``validation`` subfolders of a run the way Keras' callback lays them out.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer import event_file_writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def _avoid_importing_tensorflow() -> None:
    """EventFileWriter opens its file through ``tensorboard.compat.tf``: TensorFlow when importable,
    else tensorboard's TF-free stub. Where TensorFlow is installed but not loaded (a JAX or PyTorch run
    beside it, as in CI), that would import all of TensorFlow (seconds, and its own CUDA libraries) to
    open a local file, so that module gets the stub, which is what it uses without TensorFlow anyway.
    Under the TensorFlow backend (TensorFlow loaded by Keras) nothing changes."""
    if "tensorflow" not in sys.modules:
        from tensorboard.compat import tensorflow_stub
        event_file_writer.tf = tensorflow_stub


class SummaryWriter:
    """Scalars and images for one run; one event file per subfolder."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self._writers: dict[str, EventFileWriter] = {}

    def _writer(self, subdir: str) -> EventFileWriter:
        if subdir not in self._writers:
            path = self.logdir / subdir
            path.mkdir(parents=True, exist_ok=True)
            _avoid_importing_tensorflow()
            self._writers[subdir] = EventFileWriter(str(path))
        return self._writers[subdir]

    def _add(self, subdir: str, step: int, value: Summary.Value) -> None:
        event = Event(wall_time=time.time(), step=int(step), summary=Summary(value=[value]))
        self._writer(subdir).add_event(event)

    def scalar(self, tag: str, value: float, step: int, subdir: str = "train") -> None:
        self._add(subdir, step, Summary.Value(tag=tag, simple_value=float(value)))

    def image(self, tag: str, image: np.ndarray, step: int, subdir: str = "train") -> None:
        """image: (H, W, 3) uint8."""
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        h, w = image.shape[:2]
        img = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buf.getvalue())
        self._add(subdir, step, Summary.Value(tag=tag, image=img))

    def flush(self) -> None:
        for w in self._writers.values():
            w.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def read_scalars(logdir: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{subdir: {tag: [(step, value), ...]}} from the event files under logdir (for plots and tests)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for sub in sorted(p for p in Path(logdir).rglob("*") if p.is_dir() and any(p.glob("events.out.*"))):
        acc = EventAccumulator(str(sub), size_guidance={"scalars": 0})
        acc.Reload()
        tags = {}
        for tag in acc.Tags().get("scalars", []):
            tags[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
        out[str(sub.relative_to(logdir))] = tags
    return out
