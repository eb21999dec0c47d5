"""Color hints for user-guided colorization (Zhang et al. 2017): colored points and a reference.

A network that takes hints (``models/effnet_unet.py`` with ``hints=True``) gets two more inputs
besides L and the encoder taps; this module makes them, for training (simulated from the
original image) and for use (from points a person chose and a reference image):

- **local hints**, (h, w, 3) float32 at the network's working size (h, w): channels 0-1 the hinted
  a, b divided by ``AB_SCALE`` (about [-0.9, 0.9]) at hinted pixels, 0 elsewhere; channel 2 the
  mask, 1 at hinted pixels, 0 elsewhere (so a hinted gray, a = b = 0, differs from no hint).
  The network's input (``network_local``) adds channels computed from them and the gray image,
  with no learning: the hinted colors *spread* over the image, three times (SPREAD_FIELDS: local
  and strict, medium, broad and loose), each as ab / AB_SCALE (a weighted mean of the hints,
  weights Gaussian in distance, sigma s x the long side, and in lightness, exp(-dL^2 / v); the
  medium one, s = 0.19 and v = 200, is evaluate.py's spread baseline) and its confidence (the
  largest weight at that pixel, in [1e-6, 1]; 0 everywhere without hints): channels 3-5, 6-8, 9-11. A network
  learns quickly to trust or correct a dense field; from a few scattered pixels it barely learned
  anything in the same time (measured: docs/hints.md).
- **global hint**, (Q + 1,) float32: a reference's distribution over the Q = 261 in-gamut ab
  bins of ``core.ab_bins`` (fractions of its pixels, sum 1), then 1; all zeros when there is none.

Points are given in the photo's own pixels (x: column, y: row, 0-based from the top-left) and
mapped to the working size here, so a tool never rescales them itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core import ab_bins, colorspace

AB_SCALE = 128.0            # local hint channels hold ab / AB_SCALE
# The spread fields of the network's input: (spatial sigma x the long side, lightness variance), from
# local and strict to broad and loose; the network mixes them per pixel (models/effnet_unet.py).
SPREAD_FIELDS = ((0.06, 50.0), (0.19, 200.0), (0.5, 800.0))
NETWORK_CHANNELS = 3 + 3 * len(SPREAD_FIELDS)   # the hint channels, then per field spread ab (2), confidence
SPREAD_SIGMA = 0.19         # spatial sigma of the spread field, times the long side
CONFIDENCE_FLOOR = 1e-6    # the confidence anywhere in a hinted image: > 0 says "hinted" (models/effnet_unet.py)
SPREAD_L_VAR = 200.0        # lightness term of its weights: exp(-(L - L_i)^2 / SPREAD_L_VAR), L in 0-100
REFERENCE_PIXELS = 1 << 16  # a reference is area-shrunk to at most this many pixels before its histogram
# With a reference, the network's a and b are moved this share of the way to their values matched to the
# reference's histograms (match_reference): the hinted logits' expectation alone is faithful but faint
# (colorfulness 13.9 where the originals have 34.6, batch 5). Chosen on batch 1 (training data, the
# original as reference, evaluation.hinted.score_cifar): the smallest share on a grid of 0.05 that keeps
# colorfulness within 10% of the originals' (0.80: 30.07 of 34.34; 0.85: 31.11; 0.90: 32.15).
REFERENCE_MATCH = 0.85

# Training protocol (simulated hints), also evaluate.py --hints N's way of drawing N points.
P_NO_POINTS = 0.5           # the fraction of training images with no points at all
POINTS_GEOMETRIC_P = 1 / 8  # otherwise the number of points is geometric (mean 8), as in Zhang et al. 2017
MAX_POINTS = 64
MAX_PATCH = 3               # each point's color: the original's mean ab over a square patch of 1..3 pixels
P_GLOBAL = 0.25             # the fraction of training images given their own distribution as global hint


@dataclass(frozen=True)
class Point:
    """One hint in photo pixels: column x, row y; its color as LAB a, b; a radius in photo pixels."""
    x: float
    y: float
    a: float
    b: float
    radius: float | None = None   # None or 0: the one working pixel the point falls in


def point(x: float, y: float, rgb, radius: float | None = None) -> Point:
    """A point hint from an sRGB color (three 0-255 values; its lightness is ignored)."""
    a, b = rgb_to_ab(rgb)
    return Point(float(x), float(y), a, b, radius)


def n_bins() -> int:
    return len(ab_bins.gamut_bins())


def empty_local(shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) float32 zeros: no local hint."""
    return np.zeros((*shape, 3), np.float32)


def empty_global() -> np.ndarray:
    """(Q + 1,) float32 zeros: no global hint."""
    return np.zeros(n_bins() + 1, np.float32)


def rgb_to_ab(rgb) -> tuple[float, float]:
    """An sRGB color (three 0-255 values) -> its LAB a, b (its lightness is dropped)."""
    lab = colorspace.rgb_to_lab(np.asarray(rgb, np.float32).reshape(1, 1, 3) / np.float32(255))
    return float(lab[0, 0, 1]), float(lab[0, 0, 2])


def working_pixel(x: float, y: float, full_hw: tuple[int, int], work_hw: tuple[int, int]) -> tuple[int, int]:
    """(row, col) at the working size of the photo pixel (x, y): the working pixel its center falls in."""
    (H, W), (h, w) = full_hw, work_hw
    row = min(h - 1, max(0, int((y + 0.5) * h / H)))
    col = min(w - 1, max(0, int((x + 0.5) * w / W)))
    return row, col


def local_planes(points, full_hw: tuple[int, int], work_hw: tuple[int, int]) -> np.ndarray:
    """Points in photo pixels -> (h, w, 3) local hints at the working size (module docstring).

    A point covers the working pixel its center falls in, or, with a radius, every working pixel
    whose center lies within the radius (scaled to the working size) of it. Where points overlap,
    their colors are averaged.
    """
    h, w = work_hw
    total = np.zeros((h, w, 2), np.float64)
    count = np.zeros((h, w), np.float64)
    scale = w / full_hw[1]
    rows, cols = np.mgrid[0:h, 0:w]
    for p in points:
        r0, c0 = working_pixel(p.x, p.y, full_hw, work_hw)
        r = (p.radius or 0.0) * scale
        if r > 0.5:
            cy, cx = (p.y + 0.5) * h / full_hw[0] - 0.5, (p.x + 0.5) * scale - 0.5
            cover = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
            cover[r0, c0] = True
        else:
            cover = np.zeros((h, w), bool)
            cover[r0, c0] = True
        total[cover] += (p.a, p.b)
        count[cover] += 1
    out = empty_local(work_hw)
    hinted = count > 0
    out[hinted, :2] = total[hinted] / count[hinted, None] / AB_SCALE
    out[hinted, 2] = 1.0
    return out


def spread_field(local: np.ndarray, L: np.ndarray, sigma: float = SPREAD_SIGMA,
                 l_var: float = SPREAD_L_VAR) -> np.ndarray:
    """One image's local hints (h, w, 3) and L (h, w) in [0, 100] -> (h, w, 3): spread ab / AB_SCALE
    and confidence (module docstring; sigma times the long side, lightness variance l_var); zeros
    without hints."""
    h, w = L.shape
    out = np.zeros((h, w, 3), np.float32)
    rows, cols = np.nonzero(local[..., 2] > 0)
    if len(rows) == 0:
        return out
    s = sigma * max(h, w)
    L = L.astype(np.float64)
    rr, cc = np.mgrid[0:h, 0:w]
    d2 = (rr[..., None] - rows) ** 2 + (cc[..., None] - cols) ** 2                   # (h, w, N)
    log_w = -d2 / (2 * s * s) - (L[..., None] - L[rows, cols]) ** 2 / l_var
    ab = local[rows, cols, :2].astype(np.float64)                                     # (N, 2), / AB_SCALE
    top = log_w.max(-1, keepdims=True)                                                # a ratio safe from underflow
    rel = np.exp(log_w - top)
    out[..., :2] = (rel @ ab) / rel.sum(-1, keepdims=True)
    out[..., 2] = np.clip(np.exp(top[..., 0]), CONFIDENCE_FLOOR, 1.0)               # the largest weight
    return out


def network_local(local: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Local hints (B, h, w, 3) and the gray images' L (B, h, w) in [0, 100] -> the network's input
    (B, h, w, NETWORK_CHANNELS): the hints and their spread field."""
    out = np.zeros(local.shape[:3] + (NETWORK_CHANNELS,), np.float32)
    out[..., :3] = local
    for i in range(len(local)):
        if local[i, ..., 2].any():
            for k, (sigma, l_var) in enumerate(SPREAD_FIELDS):
                out[i, ..., 3 + 3 * k:6 + 3 * k] = spread_field(local[i], L[i], sigma, l_var)
    return out


def distribution(ab: np.ndarray) -> np.ndarray:
    """(..., 2) ab of an image -> (Q,) float32: the fraction of its pixels nearest to each gamut bin."""
    return ab_bins.empirical_distribution(ab, ab_bins.gamut_bins()).astype(np.float32)


def reference_distribution(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 reference image -> (Q,) float32 distribution of its colors (area-shrunk first)."""
    return distribution(reference_ab(rgb))


class Reference(NamedTuple):
    """A reference image as the network and the decoding use it (``reference(rgb)`` makes one)."""
    distribution: np.ndarray    # (Q,) float32: its colors over the gamut bins, the global hint
    pixels: np.ndarray          # (n, 2) float32: its pixels' ab (a strided sample), what match_reference matches to


def reference(rgb: np.ndarray) -> Reference:
    """(H, W, 3) uint8 reference image -> its Reference (its pixels sampled and converted once)."""
    pixels = reference_ab(rgb)
    return Reference(distribution(pixels), pixels)


def split_reference(given) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Any form a tool is given a reference in -> (its (Q,) distribution or None, its pixels' ab or None):
    None; a Reference; a (Q,) distribution alone (no pixels to match to); or an (H, W, 3) uint8 image."""
    if given is None:
        return None, None
    if isinstance(given, Reference):
        return given.distribution, given.pixels
    given = np.asarray(given)
    return (given, None) if given.ndim == 1 else tuple(reference(given))


def reference_ab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 reference image -> (n, 2) float32: the ab of its pixels (a strided sample of at most
    about REFERENCE_PIXELS: the histogram of a 40-megapixel photo needs no more), what reference_distribution
    counts and match_reference matches to."""
    rgb = np.asarray(rgb)
    step = int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / REFERENCE_PIXELS)))
    if step > 1:
        rgb = rgb[step // 2::step, step // 2::step]
    return colorspace.rgb_to_lab(rgb)[..., 1:].reshape(-1, 2).astype(np.float32)


def match_reference(ab: np.ndarray, reference: np.ndarray, share: float = REFERENCE_MATCH) -> np.ndarray:
    """(h, w, 2) ab -> (h, w, 2): a and b each moved ``share`` of the way to its value histogram-matched
    to the reference's (``reference``: (n, 2) ab of its pixels, reference_ab).

    Per channel, every value becomes the reference's quantile at the value's own mid-rank (equal values
    stay equal), as skimage.exposure.match_histograms does; numpy only (the lean inference path).
    """
    ab = np.asarray(ab, np.float32)
    reference = np.asarray(reference, np.float32).reshape(-1, 2)
    if not len(reference):
        return ab
    matched = np.empty_like(ab)
    ref_rank = (np.arange(len(reference)) + 0.5) / len(reference)
    for c in range(2):
        _, inverse, counts = np.unique(ab[..., c].ravel(), return_inverse=True, return_counts=True)
        mid_rank = (np.cumsum(counts) - 0.5 * counts) / counts.sum()             # in (0, 1)
        quantiles = np.interp(mid_rank, ref_rank, np.sort(reference[:, c]))
        matched[..., c] = quantiles[inverse.ravel()].reshape(ab.shape[:-1])
    return np.float32(share) * matched + np.float32(1 - share) * ab


def global_vector(dist: np.ndarray | None) -> np.ndarray:
    """(Q,) distribution or None -> (Q + 1,) global hint input."""
    out = empty_global()
    if dist is not None:
        dist = np.asarray(dist, np.float32)
        if dist.shape != (n_bins(),):
            raise ValueError(f"a reference distribution has {n_bins()} bins, got shape {dist.shape}")
        out[:-1] = dist / max(float(dist.sum()), 1e-12)
        out[-1] = 1.0
    return out


# ---- simulated hints (training, evaluate.py --hints N) --------------------------------------------

def draw_count(rng: np.random.Generator) -> int:
    """The training protocol's number of points for one image."""
    if rng.random() < P_NO_POINTS:
        return 0
    return int(min(MAX_POINTS, rng.geometric(POINTS_GEOMETRIC_P)))


def simulate_points(ab: np.ndarray, n: int, rng: np.random.Generator, max_patch: int = MAX_PATCH) -> list[Point]:
    """``n`` points drawn from an image's own chroma ab (H, W, 2): each at a uniformly random pixel, its
    color the mean ab over a square patch of random side 1..max_patch around it (clipped at the border)."""
    H, W = ab.shape[:2]
    points = []
    for _ in range(n):
        y, x = int(rng.integers(H)), int(rng.integers(W))
        side = int(rng.integers(1, max_patch + 1))
        y0, x0 = max(0, y - (side - 1) // 2), max(0, x - (side - 1) // 2)
        a, b = ab[y0:y0 + side, x0:x0 + side].reshape(-1, 2).mean(0)
        points.append(Point(float(x), float(y), float(a), float(b)))
    return points


def training_hints(ab: np.ndarray, distributions: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch's simulated hints: ab (B, S, S, 2) LAB units of the (possibly mirrored) originals,
    distributions (B, Q) their own color distributions -> (local (B, S, S, 3), global (B, Q + 1))."""
    B, H, W = ab.shape[:3]
    local = np.zeros((B, H, W, 3), np.float32)
    glob = np.zeros((B, n_bins() + 1), np.float32)
    for i in range(B):
        points = simulate_points(ab[i], draw_count(rng), rng)
        if points:
            local[i] = local_planes(points, (H, W), (H, W))
        if rng.random() < P_GLOBAL:
            glob[i] = global_vector(distributions[i])
    return local, glob
