"""Baselines for hinted colorization that learn nothing: what a model given color hints must beat.

- :func:`spread`: each pixel takes a weighted mean of the hints' colors, the weight falling off with
  the distance to the hint (Gaussian, sigma 0.19 x the image's long side) and with the difference
  of lightness between the pixel and the hint's pixel (Gaussian in L, variance 100, i.e.
  exp(-dL^2 / 200)): the colors of the hints, spread over the regions of similar lightness.
- :func:`histogram_matched`: a colorization's a and b each remapped to a reference's histogram
  (scikit-image's ``match_histograms``), e.g. to give a gray-world or washed-out colorization the
  color statistics of the original or of an example image.

Units: L in 0 .. 100, a and b in LAB units (about -110 .. 110), pixel positions (row, col) with
pixel centers at integer coordinates, as ``core.colorspace`` and ``core.guided``.
"""
from __future__ import annotations

import numpy as np
from skimage.exposure import match_histograms

SPREAD_SIGMA = 0.19          # spatial sigma, as a fraction of the image's long side
SPREAD_L_DENOM = 200.0       # lightness weight exp(-(L(p) - L(p_i))^2 / 200): a Gaussian of sigma 10 L units
STRIP_PIXELS = 1 << 20       # pixels per strip of spread (as inference.fullres.STRIP_PIXELS)


def spread(L: np.ndarray, points_yx: np.ndarray, points_ab: np.ndarray, long_side: int | None = None,
           strip_pixels: int = STRIP_PIXELS) -> np.ndarray:
    """L (H, W) in [0, 100]; points_yx (N, 2) float (row, col) of the hints; points_ab (N, 2) their
    a, b -> (H, W, 2) float32: ab(p) = sum_i w_i(p) ab_i / sum_i w_i(p), with

        w_i(p) = exp(-|p - p_i|^2 / (2 s^2)) * exp(-(L(p) - L(p_i))^2 / 200),  s = 0.19 * long_side,

    long_side defaulting to max(H, W) (give it when L is a part of a larger image whose scale the
    spread should follow), and L(p_i) the lightness at the hint's pixel (rounded, clipped to the
    image). No hints (N = 0): all zeros.

    Computed in row strips of about ``strip_pixels`` pixels, one hint at a time with a running
    log-sum-exp (each pixel's weights are scaled by their largest), so memory is a few strip-sized
    arrays whatever N and the image size, and weights that underflow (far hints, a small
    ``long_side``) never leave a pixel with 0 / 0: the nearest hint in weight always counts 1.
    """
    L = np.asarray(L, dtype=np.float32)
    yx = np.asarray(points_yx, dtype=np.float64)
    ab = np.asarray(points_ab, dtype=np.float32)
    if L.ndim != 2 or L.size == 0:
        raise ValueError(f"L must be a non-empty (H, W) array; got {L.shape}")
    yx = yx.reshape(-1, 2) if yx.size == 0 else yx
    ab = ab.reshape(-1, 2) if ab.size == 0 else ab
    if yx.ndim != 2 or yx.shape[1] != 2 or ab.shape != yx.shape:
        raise ValueError(f"points_yx and points_ab must both be (N, 2); got {yx.shape} and {ab.shape}")
    if not np.isfinite(yx).all() or not np.isfinite(ab).all():
        raise ValueError("points_yx and points_ab must be finite")
    H, W = L.shape
    out = np.zeros((H, W, 2), np.float32)
    if len(yx) == 0:
        return out
    s = SPREAD_SIGMA * (max(H, W) if long_side is None else long_side)
    if not s > 0:
        raise ValueError(f"long_side must be > 0, got {long_side}")
    rows_i = np.clip(np.rint(yx[:, 0]), 0, H - 1).astype(np.intp)
    cols_i = np.clip(np.rint(yx[:, 1]), 0, W - 1).astype(np.intp)
    l_hint = L[rows_i, cols_i]                                      # (N,)
    inv_2s2 = 1.0 / (2.0 * s * s)
    # the spatial term is separable: -(dy^2 + dx^2) / (2 s^2) = row part + column part
    col_term = (-((np.arange(W)[None, :] - yx[:, 1:2]) ** 2) * inv_2s2).astype(np.float32)   # (N, W)
    rows = max(1, strip_pixels // W)
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        l_strip = L[y0:y1]
        row_term = (-((np.arange(y0, y1)[None, :] - yx[:, 0:1]) ** 2) * inv_2s2).astype(np.float32)  # (N, r)
        m = np.full(l_strip.shape, -np.inf, np.float32)      # running max of log w over the hints so far
        den = np.zeros(l_strip.shape, np.float32)            # sum_i w_i / exp(m)
        num = np.zeros(l_strip.shape + (2,), np.float32)     # sum_i w_i ab_i / exp(m)
        log_w = np.empty(l_strip.shape, np.float32)
        for i in range(len(yx)):
            np.subtract(l_strip, l_hint[i], out=log_w)
            np.square(log_w, out=log_w)
            log_w *= np.float32(-1.0 / SPREAD_L_DENOM)
            log_w += row_term[i][:, None]
            log_w += col_term[i][None, :]
            m_new = np.maximum(m, log_w)
            rescale = np.exp(m - m_new)                      # 0 for the first hint (m = -inf)
            w = np.exp(log_w - m_new)                        # in (0, 1]; 1 where hint i is the heaviest
            den *= rescale
            den += w
            for c in (0, 1):
                num[..., c] *= rescale
                num[..., c] += w * ab[i, c]
            m = m_new
        out[y0:y1] = num / den[..., None]                    # den >= 1: the heaviest hint weighs 1
    return out


def histogram_matched(ab: np.ndarray, reference_ab: np.ndarray) -> np.ndarray:
    """ab (H, W, 2) a colorization's chroma, reference_ab (h, w, 2) a reference's -> (H, W, 2) float32:
    a and b each remapped, monotonically, so that their histograms match the reference's
    (``skimage.exposure.match_histograms`` per channel: a value at quantile q of the input takes the
    reference's value at quantile q, interpolated linearly between the reference's values)."""
    # float32 first: match_histograms writes into the input's dtype (integers would truncate) and
    # takes another path (bincount) for unsigned integers
    ab = np.asarray(ab, dtype=np.float32)
    reference_ab = np.asarray(reference_ab, dtype=np.float32)
    if ab.ndim != 3 or ab.shape[-1] != 2 or reference_ab.ndim != 3 or reference_ab.shape[-1] != 2:
        raise ValueError(f"ab and reference_ab must be (H, W, 2) and (h, w, 2); "
                         f"got {ab.shape} and {reference_ab.shape}")
    if ab.size == 0 or reference_ab.size == 0:
        raise ValueError("ab and reference_ab must not be empty")
    return match_histograms(ab, reference_ab, channel_axis=-1).astype(np.float32, copy=False)
