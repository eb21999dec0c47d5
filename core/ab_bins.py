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


def _face_colors(face: np.ndarray, u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 colors on faces of the RGB cube: face f sets channel f // 2 to 0 (f even) or
    255 (f odd), the next two channels (cyclically) to u and w."""
    rgb = np.empty((len(face), 3), np.uint8)
    rows, channel = np.arange(len(face)), face // 2
    rgb[rows, channel] = 255 * (face % 2)
    rgb[rows, (channel + 1) % 3] = u
    rgb[rows, (channel + 2) % 3] = w
    return rgb


_PATCH = 16        # gamut_bins: side of the first square patches of a face, in 8-bit steps
_MARGIN = 0.01     # gamut_bins: ab units added to the bounds, far above float rounding (~1e-5)


@functools.lru_cache(maxsize=4)
def gamut_bins(grid: int = GRID) -> np.ndarray:
    """(Q, 2) float32 bin centers (ab units), multiples of ``grid`` whose cell holds an sRGB color.

    Sorted by a, then b; deterministic (Q = 261 for grid 10). Cached: the result is read-only.

    A cell is held when some 8-bit color with a channel at 0 or 255 has its ``round(ab / grid)``
    there, ab from ``colorspace.rgb_to_lab``: the ab projection of the RGB cube is the projection of
    its surface (every fiber of the projection that meets the cube leaves it through the surface).

    Converting all 6 * 256^2 surface colors and np.unique over their cells took 0.3 s. Instead,
    square patches of each face are bounded and split: X, Y and Z rise with every RGB channel
    (the sRGB matrix is positive) and f (cube root, linear near black) rises with them, so over a
    patch fx, fy and fz lie between their values at its darkest and its lightest corner, and
    a = 500 (fx - fy), b = 200 (fy - fz) in intervals found from those 2 colors. A patch whose ab
    box only meets cells already held (by the colors converted so far) can add none and is
    dropped; the others are split in 4, down to single colors. The cells are exactly those of
    converting every surface color (tests/test_ab_bins.py), from about 12,000 conversions: 3 ms.
    """
    reach = int(np.ceil(500 / grid)) + 1      # |a|, |b| < 500 (f in [16/116, 1]): cells in [-reach, reach]
    side = 2 * reach + 1
    held = np.zeros((side, side), bool)       # [a cell + reach, b cell + reach]
    corners = np.arange(0, 256, _PATCH)
    face, u, w = (x.ravel() for x in np.meshgrid(np.arange(6), corners, corners, indexing="ij"))
    size = _PATCH
    while len(face):
        lab = colorspace.rgb_to_lab(np.concatenate([_face_colors(face, u, w),
                                                    _face_colors(face, u + size - 1, w + size - 1)]))
        cells = np.round(lab[:, 1:] / grid).astype(np.int64) + reach
        held[cells[:, 0], cells[:, 1]] = True
        if size == 1:
            break
        # f at the darkest (lo) and lightest (hi) corner, from L = 116 fy - 16, a, b
        lab = lab.astype(np.float64)
        fy = (lab[:, 0] + 16) / 116
        fx, fz = fy + lab[:, 1] / 500, fy - lab[:, 2] / 200
        lo, hi = slice(0, len(face)), slice(len(face), None)
        a0, a1 = 500 * (fx[lo] - fy[hi]) - _MARGIN, 500 * (fx[hi] - fy[lo]) + _MARGIN
        b0, b1 = 200 * (fy[lo] - fz[hi]) - _MARGIN, 200 * (fy[hi] - fz[lo]) + _MARGIN
        # cells round(v / grid) can take for v in [v0, v1] (round half to even: either neighbour)
        ca0, ca1 = np.ceil(a0 / grid - 0.5).astype(np.int64), np.floor(a1 / grid + 0.5).astype(np.int64)
        cb0, cb1 = np.ceil(b0 / grid - 0.5).astype(np.int64), np.floor(b1 / grid + 0.5).astype(np.int64)
        # held cells in each box, from a summed-area table
        table = np.zeros((side + 1, side + 1), np.int64)
        table[1:, 1:] = held.cumsum(0).cumsum(1)
        i0, i1 = np.clip(ca0 + reach, 0, side), np.clip(ca1 + reach + 1, 0, side)
        j0, j1 = np.clip(cb0 + reach, 0, side), np.clip(cb1 + reach + 1, 0, side)
        inside = table[i1, j1] - table[i0, j1] - table[i1, j0] + table[i0, j0]
        split = inside < (ca1 - ca0 + 1) * (cb1 - cb0 + 1)
        size //= 2
        face, u, w = (np.repeat(x[split], 4) for x in (face, u, w))
        u += np.tile([0, 0, size, size], len(u) // 4)
        w += np.tile([0, size, 0, size], len(w) // 4)
    a, b = np.nonzero(held)                   # row-major: sorted by a, then b
    bins = (np.stack([a - reach, b - reach], -1) * grid).astype(np.float32)
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
