"""Quantized ab space for colorization as classification (Zhang, Isola and Efros 2016), in NumPy.

The classification head of ``effnet_unet`` predicts, per pixel, a distribution over the ab bins
below; these functions make its training targets and weights and decode its output.

Value ranges
------------
==========================  =====================  ===============================================
quantity                    shape                  range
==========================  =====================  ===============================================
ab (CIE units)              (..., 2)               about -128 .. 127; the sRGB gamut spans about
                                                   a in [-86, 98], b in [-108, 95]
bins (bin centers)          (Q, 2)                 multiples of ``GRID`` in ab units; Q = 261 for
                                                   grid 10 (see :func:`gamut_bins`)
soft targets                (..., Q)               >= 0, sum 1 over Q; at most ``K_NEAREST`` nonzero
empirical distribution p    (Q,)                   >= 0, sum 1
rebalancing weights w       (Q,)                   > 0, sum_q p_q w_q = 1 (mean 1 over pixels)
probabilities z             (..., Q)               >= 0, sum 1 (the head's softmax)
temperature T               scalar                 > 0; 1 = the expectation, -> 0 = the mode
==========================  =====================  ===============================================

Bin count. A bin is kept when its grid cell (the square of side ``GRID`` around the center) holds
the ab of at least one 8-bit sRGB color, at any L: 261 bins for grid 10. The paper reports 313
"in-gamut" bins without defining its gamut test; stricter tests give fewer (bin centers in gamut
at some L: 225-229 depending on how finely L is sampled), none that follows from the sRGB gamut
gives 313.
"""
from __future__ import annotations

import functools

import numpy as np

from core import colorspace

GRID = 10          # bin spacing, ab units (the paper's)
K_NEAREST = 5      # soft encoding: the 5 nearest bins ...
SIGMA = 5.0        # ... weighted by a Gaussian of this width (ab units)
LAMBDA = 0.5       # rebalancing: mix of the smoothed empirical distribution with the uniform one
TEMPERATURE = 0.38  # the paper's annealed-mean temperature


def _srgb_surface() -> np.ndarray:
    """(6 * 256^2, 3) uint8: every 8-bit sRGB color with a channel at 0 or 255.

    The ab projection of the RGB cube is the projection of its surface (every fiber of the
    projection that meets the cube leaves it through the surface), so the surface suffices.
    """
    v = np.arange(256, dtype=np.uint8)
    u, w = (a.ravel() for a in np.meshgrid(v, v, indexing="ij"))
    faces = []
    for channel in range(3):
        for value in (0, 255):
            face = np.empty((len(u), 3), np.uint8)
            face[:, channel] = value
            face[:, (channel + 1) % 3] = u
            face[:, (channel + 2) % 3] = w
            faces.append(face)
    return np.concatenate(faces)


@functools.lru_cache(maxsize=4)
def gamut_bins(grid: int = GRID) -> np.ndarray:
    """(Q, 2) float32 bin centers (ab units), multiples of ``grid`` whose cell holds an sRGB color.

    Sorted by a, then b; deterministic (Q = 261 for grid 10). Cached: the result is read-only.
    """
    ab = colorspace.rgb_to_lab(_srgb_surface())[:, 1:]
    cells = np.unique(np.round(ab / grid).astype(np.int64), axis=0)
    bins = (cells * grid).astype(np.float32)
    bins.flags.writeable = False
    return bins


def _sq_distances(ab: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """(..., 2) ab and (Q, 2) bins -> (..., Q) squared distances (|x|^2 - 2 x.q + |q|^2: one matmul)."""
    ab = np.asarray(ab, np.float32)
    d2 = (ab ** 2).sum(-1, keepdims=True) - 2 * ab @ bins.T + (bins ** 2).sum(-1)
    return np.maximum(d2, 0.0)   # rounding can dip below 0 at a bin center


def nearest_bins(ab, bins: np.ndarray, k: int = 1) -> np.ndarray:
    """(..., 2) ab -> (..., k) int indices of the k nearest bins, nearest first."""
    d2 = _sq_distances(ab, bins)
    idx = np.argpartition(d2, k - 1, axis=-1)[..., :k] if k < bins.shape[0] else np.argsort(d2, -1)
    order = np.argsort(np.take_along_axis(d2, idx, -1), axis=-1)
    return np.take_along_axis(idx, order, -1)


def soft_encode(ab, bins: np.ndarray, k: int = K_NEAREST, sigma: float = SIGMA) -> np.ndarray:
    """(..., 2) ab -> (..., Q) float32 soft targets: Gaussian weights on the k nearest bins, sum 1."""
    d2 = _sq_distances(ab, bins)
    idx = nearest_bins(ab, bins, k)
    near = np.take_along_axis(d2, idx, -1)
    w = np.exp(-(near - near[..., :1]) / (2 * sigma ** 2))   # shifted by the nearest: no underflow
    out = np.zeros(d2.shape, np.float32)
    np.put_along_axis(out, idx, (w / w.sum(-1, keepdims=True)).astype(np.float32), -1)
    return out


def empirical_distribution(ab, bins: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """(..., 2) ab of a training set -> (Q,) float64 fraction of its pixels nearest to each bin."""
    flat = np.asarray(ab, np.float32).reshape(-1, 2)
    counts = np.zeros(len(bins), np.int64)
    for start in range(0, len(flat), chunk):   # (chunk, Q) distances at a time, not (N, Q)
        counts += np.bincount(nearest_bins(flat[start:start + chunk], bins)[:, 0], minlength=len(bins))
    if counts.sum() == 0:
        raise ValueError("no pixels to estimate the ab distribution from")
    return counts / counts.sum()


def smoothed_distribution(p: np.ndarray, bins: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """(Q,) distribution ``p`` blurred over the ab plane by a Gaussian of width ``sigma``; sums to 1."""
    d2 = _sq_distances(bins, bins).astype(np.float64)                  # (Q, Q)
    smoothed = np.exp(-d2 / (2 * sigma ** 2)) @ np.asarray(p, np.float64)
    return smoothed / smoothed.sum()


def rebalancing_weights(p: np.ndarray, bins: np.ndarray, lam: float = LAMBDA,
                        sigma: float = SIGMA) -> np.ndarray:
    """(Q,) class weights from the empirical distribution ``p`` (the paper's equation 4).

    p is smoothed by a Gaussian of width ``sigma`` over the ab plane, mixed with the uniform
    distribution (weight ``lam``), inverted, and normalized so that sum_q p~_q w_q = 1 (p~ the
    smoothed distribution): the mean weight over the training pixels is 1, so the loss keeps its
    scale, and rare (saturated) bins weigh more than common (grayish) ones.
    """
    smoothed = smoothed_distribution(p, bins, sigma)
    w = 1.0 / ((1.0 - lam) * smoothed + lam / len(bins))
    return (w / (smoothed * w).sum()).astype(np.float32)


def annealed_mean(probs, bins: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """(..., Q) probabilities -> (..., 2) float32 ab: the mean of z^(1/T), renormalized.

    T = 1 gives the expectation (faithful, desaturated); T -> 0 the mode (colorful, patchy).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logp = np.log(np.maximum(np.asarray(probs, np.float32), 1e-30)) / np.float32(temperature)
    logp -= logp.max(-1, keepdims=True)
    f = np.exp(logp)
    f /= f.sum(-1, keepdims=True)
    return (f @ bins).astype(np.float32)


_CANDIDATES = 16   # bins kept per table entry, among which the exact k nearest are chosen


@functools.lru_cache(maxsize=2)
def candidate_table(grid: int = GRID, k: int = K_NEAREST) -> np.ndarray:
    """(256, 256, 16) int16: the 16 nearest of ``gamut_bins(grid)`` to every integer (a, b) in [-128, 127]^2.

    Indexed by [a + 128, b + 128]. The exact k nearest bins of any ab are among the 16 of its
    rounded point r (at most 0.71 units away): a bin among x's k nearest is within d_k(r) + 1.42
    of r, and the table is only accepted when every entry's 16th bin lies farther than that.
    Finding the nearest bins of every pixel of a data set through a full (pixels, Q) distance matrix
    took minutes for 4,000 CIFAR images on two CPU cores; through this table, seconds.
    """
    axis = np.arange(-128, 128, dtype=np.float32)
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    bins = gamut_bins(grid)
    table = nearest_bins(points, bins, _CANDIDATES)                            # (65536, 16), nearest first
    dist = np.sqrt(((points[:, None, :] - bins[table]) ** 2).sum(-1))
    if not np.all(dist[:, -1] > dist[:, k - 1] + 2 * np.sqrt(0.5)):
        raise AssertionError(f"{_CANDIDATES} candidates do not guarantee the exact {k} nearest bins")
    table = table.astype(np.int16).reshape(256, 256, _CANDIDATES)
    table.flags.writeable = False
    return table


def pack_targets(ab, weights: np.ndarray, grid: int = GRID, k: int = K_NEAREST,
                 sigma: float = SIGMA) -> np.ndarray:
    """(..., 2) ab -> (..., 2k + 1) float32 targets of the classification loss, without a (..., Q) array.

    Per pixel: the indices of the k nearest bins, nearest first (as floats, exact below 2^24),
    their soft-encoding weights (as :func:`soft_encode`: Gaussian, sum 1), and the rebalancing
    weight ``weights`` (Q,) of the nearest. Exact, through :func:`candidate_table`.
    """
    flat = np.asarray(ab, np.float32).reshape(-1, 2)
    cell = np.clip(np.rint(flat), -128, 127).astype(np.int64) + 128
    cand = candidate_table(grid, k)[cell[:, 0], cell[:, 1]].astype(np.int64)   # (n, 16)
    d2 = ((flat[:, None, :] - gamut_bins(grid)[cand]) ** 2).sum(-1)            # (n, 16) squared distances
    order = np.argsort(d2, axis=-1, kind="stable")[:, :k]
    idx, near = np.take_along_axis(cand, order, -1), np.take_along_axis(d2, order, -1)   # (n, k) each
    w = np.exp(-(near - near[:, :1]) / np.float32(2 * sigma ** 2))             # shifted: no underflow
    out = np.concatenate([idx.astype(np.float32), w / w.sum(-1, keepdims=True),
                          np.asarray(weights, np.float32)[idx[:, :1]]], axis=-1)
    return out.reshape(*np.shape(ab)[:-1], 2 * k + 1)
