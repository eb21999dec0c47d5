"""Image grids: each row one sample, each column one version of it ([gray | generated | original])."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core import colorspace


def make_grid(columns: list[np.ndarray], scale: int = 1, gap: int = 0) -> np.ndarray:
    """columns: K arrays (N, S, S, 3), uint8 or float [0, 1] -> uint8 grid (N*S*scale, K*S*scale, 3).

    ``gap`` white pixels separate the columns (0 keeps the original's tight layout).
    """
    cols = [colorspace.to_uint8(c) if c.dtype != np.uint8 else c for c in columns]
    n, s = cols[0].shape[:2]
    if any(c.shape != cols[0].shape for c in cols):
        raise ValueError(f"all columns need the same shape, got {[c.shape for c in cols]}")
    rows = []
    for i in range(n):
        cells = []
        for k, c in enumerate(cols):
            if k and gap:
                cells.append(np.full((s, gap, 3), 255, np.uint8))
            cells.append(c[i])
        rows.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(rows, axis=0)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)   # nearest: keep pixels visible
    return grid


def prediction_grid(original: np.ndarray, generated: np.ndarray, scale: int = 1) -> np.ndarray:
    """[gray | generated | original] rows, the layout of the original's notebooks."""
    return make_grid([colorspace.gray_rgb(original), generated, original], scale=scale)


def save_image(image: np.ndarray, path: Path, quality: int = 95) -> None:
    """PNG or JPEG by suffix. JPEGs keep full-resolution chroma (no 4:2:0 subsampling):
    halving the color resolution of 32 px images would blur exactly what is being judged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(image).save(path, quality=quality, subsampling=0)
    else:
        Image.fromarray(image).save(path)
