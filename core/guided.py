"""Edge-aware upsampling of chroma, guided by the full-resolution lightness (the fast guided filter).

A colorization network predicts chroma ab at a small working size (h, w); the photo is (H, W),
up to 40 megapixels. Bilinear upsampling of ab (what ``inference/fullres.recombine`` did before it used
this module) smears each color over a working-size cell, across the photo's edges. The guided filter (He, Sun and
Tang 2010, "Guided Image Filtering") models the output, in each window, as a linear function of
the guide, q = a L + b; its fast variant (He and Sun 2015, "Fast Guided Filter") fits a and b at
the small size, against the area-downsampled guide, upsamples the (box-averaged) coefficients
bilinearly and applies them to the full-resolution L. Where L has an edge inside a window, a is
the slope of chroma against lightness across that edge, so the color stops where L changes.

==================  ===============  =================================================
array               shape            units / range
==================  ===============  =================================================
guide (L)           (h, w), (H, W)   CIE L, 0 .. 100, float32
src (ab)            (h, w, C)        LAB units (about -110 .. 110), float32; C = 2 for ab
A                   (h, w, C)        chroma per unit of L (0 in flat windows)
B                   (h, w, C)        LAB units
output A L + B      (H, W, C)        LAB units, float32 (may leave the sRGB gamut: the caller
                                     reduces it, as fullres.fit_gamut does)
==================  ===============  =================================================

Full size is done in row strips (:func:`upsample_planes`, :func:`upsample_strip`): A and B are
resized bilinearly, only the strip's band of rows, as bilinear upsampling of ab would, so a strip
equals the matching rows of one full-size resize (to float rounding) and the only arrays of the
full width are strip-sized. Enlarging (the usual case), the band's rows are interpolated at the
working width and OpenCV resizes them along the rows; Pillow's filter with a ``box`` did both
before, and still does where a side shrinks (it averages there; OpenCV's bilinear would sample).
The two agree to about 1e-4 LAB units (tests/test_guided.py); OpenCV is 2.5 x faster.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# eps, in squared L units (L is 0..100), is the variance of L below which a window counts as flat:
# a = cov(L, ab) / (var(L) + eps). Small eps lets faint lightness edges steer the color, but the gain
# |a| <= std(ab) / (2 sqrt(eps)) (chroma per L unit) then also applies to full-resolution texture the
# small guide never saw, turning it into chroma noise; large eps shrinks the slope of real edges toward
# 0 (a is scaled by var / (var + eps)), which leaves plain smoothing. eps = 1 is a standard deviation of
# one L unit, about one just-noticeable lightness step: windows flatter than that are smoothed, and the
# gain stays below std(ab) / 2 per L unit. Measured when choosing it (eps 1e-2 .. 1e2):
# - the synthetic edge of tests/test_guided.py (8x13 -> 64x101, a = 60 | 0 at an L edge; pass: a > 50
#   and |a| < 10 beyond 1 px of the edge) passes up to eps 30 at contrast 30 | 70 (fails at 100), up to
#   3 at 45 | 55 (fails at 10), up to 0.1 at 48 | 52 (fails at 1); bilinear upsampling fails all three.
#   The limit grows as contrast^2: eps 1 keeps edges of about 6 L units and more;
# - six scikit-image photos (astronaut, coffee, chelsea, rocket, immunohistochemistry, retina), their
#   own ab area-shrunk to 16x16 .. 96x128 and brought back, against the full-resolution ab (mean per-pixel
#   ab error): flat from eps 1e-2 to 1 (eps 1 within 0.3 % of the best at every size), worse from 3 on;
#   radius 2 worse than 1 everywhere. Against bilinear upsampling (mean of per-photo ratios) eps 1 is
#   5 %, 6 % and 2 % lower at 16x16, 32x32 and 48x64 but 11 % higher at 96x128, and per photo mixed
#   (coffee, rocket, retina better; astronaut, chelsea, immunohistochemistry worse): it smooths chroma
#   where L is flat (coefficients box-averaged twice), which costs where color has detail of its own.
DEFAULT_EPS = 1.0
DEFAULT_RADIUS = 1           # working-size pixels: 3x3 windows
STRIP_PIXELS = 1 << 20       # full-size pixels per strip (as inference.fullres.STRIP_PIXELS)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2 radius + 1)^2 window, borders reflected (edge pixel repeated), same shape."""
    k = 2 * radius + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def coefficients(guide_small: np.ndarray, src_small: np.ndarray, radius: int = DEFAULT_RADIUS,
                 eps: float = DEFAULT_EPS) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's coefficients at the working size.

    guide_small (h, w) L in [0, 100]; src_small (h, w, C) (ab in LAB units) -> (A, B), each
    (h, w, C) float32: the box means over the windows covering each pixel of the per-window
    a = cov(L, src) / (var(L) + eps), b = mean(src) - a mean(L). The filtered output at a pixel
    of lightness L is A L + B. Any h, w >= 1 (borders reflect, so a 1-pixel side is flat).
    """
    guide = np.asarray(guide_small)
    src = np.asarray(src_small)
    if guide.ndim != 2 or src.ndim != 3 or src.shape[:2] != guide.shape:
        raise ValueError(f"guide_small must be (h, w) and src_small (h, w, C); got {guide.shape} and {src.shape}")
    if guide.size == 0:
        raise ValueError(f"empty working size {guide.shape}")
    if radius < 0 or int(radius) != radius:
        raise ValueError(f"radius must be an integer >= 0, got {radius}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (flat windows have var(L) = 0), got {eps}")
    radius = int(radius)
    # float64 at the small size costs nothing and keeps var = E[L^2] - E[L]^2 (L^2 up to 1e4) exact
    # enough: in float32 its rounding (~1e-3) would be comparable to a small eps.
    guide = guide.astype(np.float64)
    mean_l = _box(guide, radius)
    var_l = np.maximum(_box(guide * guide, radius) - mean_l * mean_l, 0.0)   # >= 0 despite rounding
    inv = 1.0 / (var_l + eps)
    A = np.empty(src.shape, np.float32)
    B = np.empty(src.shape, np.float32)
    for c in range(src.shape[2]):   # per plane: cv2 filters handle at most 4 channels at once
        p = src[..., c].astype(np.float64)
        mean_p = _box(p, radius)
        a = (_box(guide * p, radius) - mean_l * mean_p) * inv
        b = mean_p - a * mean_l
        A[..., c] = _box(a, radius)
        B[..., c] = _box(b, radius)
    return A, B


def _resize_band(plane: Image.Image, y0: int, y1: int, full_h: int, full_w: int) -> np.ndarray:
    """Rows y0:y1 of ``plane`` (mode "F", (h, w)) resized bilinearly to (full_h, full_w): (y1-y0, full_w) float32."""
    w, h = plane.size
    box = (0.0, y0 * h / full_h, float(w), y1 * h / full_h)
    return np.asarray(plane.resize((full_w, y1 - y0), Image.BILINEAR, box=box), dtype=np.float32)


def _band_rows(P: np.ndarray, y0: int, y1: int, full_h: int) -> np.ndarray:
    """Rows y0:y1 of P (h, w, K) enlarged bilinearly to full_h >= h rows: (y1 - y0, w, K) float32.

    Pixel centers at half-integers, the edge rows repeated beyond the outer centers: Pillow's and
    OpenCV's bilinear enlargement (Pillow's triangle filter is clipped there, then renormalized).
    """
    h = P.shape[0]
    ys = (np.arange(y0, y1, dtype=np.float64) + 0.5) * (h / full_h) - 0.5    # working-size rows
    np.clip(ys, 0, h - 1, out=ys)
    i0 = ys.astype(np.intp)                                                  # floor: ys >= 0
    t = (ys - i0).astype(np.float32)[:, None, None]
    return P[i0] * (1 - t) + P[np.minimum(i0 + 1, h - 1)] * t


def upsample_planes(A: np.ndarray, B: np.ndarray, guide_strip: np.ndarray, y0: int, y1: int,
                    full_h: int, full_w: int) -> list[np.ndarray]:
    """Rows y0:y1 of the full-resolution output, one (y1 - y0, full_w) float32 plane per channel C.

    A, B (h, w, C) from :func:`coefficients` are resized bilinearly to (full_h, full_w), only the
    band of rows y0:y1 (module docstring: OpenCV when enlarging, else Pillow with ``box`` = the band in
    working-size coordinates, as bilinear upsampling of ab would), then combined with guide_strip
    (y1 - y0, full_w), the full-resolution L of those rows: A L + B. Every array made is strip-sized.
    """
    A = np.asarray(A)
    B = np.asarray(B)
    guide = np.ascontiguousarray(guide_strip, dtype=np.float32)
    if A.ndim != 3 or A.shape != B.shape:
        raise ValueError(f"A and B must be (h, w, C) of one shape; got {A.shape} and {B.shape}")
    if not 0 <= y0 < y1 <= full_h:
        raise ValueError(f"need 0 <= y0 < y1 <= full_h; got y0={y0}, y1={y1}, full_h={full_h}")
    if guide.shape != (y1 - y0, full_w):
        raise ValueError(f"guide_strip must be ({y1 - y0}, {full_w}); got {guide.shape}")
    h, w, C = A.shape
    planes = []
    if full_h >= h and full_w >= w:
        band = _band_rows(np.concatenate([A, B], axis=-1).astype(np.float32, copy=False), y0, y1, full_h)
        for c in range(C):   # one plane at a time: contiguous planes make OpenCV's resize and arithmetic fastest
            a = cv2.resize(np.ascontiguousarray(band[..., c]), (full_w, y1 - y0), interpolation=cv2.INTER_LINEAR)
            b = cv2.resize(np.ascontiguousarray(band[..., C + c]), (full_w, y1 - y0), interpolation=cv2.INTER_LINEAR)
            np.multiply(a, guide, out=a)
            a += b
            planes.append(a)
        return planes
    for c in range(C):
        a_plane = Image.fromarray(np.ascontiguousarray(A[..., c], dtype=np.float32))   # mode "F"
        b_plane = Image.fromarray(np.ascontiguousarray(B[..., c], dtype=np.float32))
        plane = _resize_band(a_plane, y0, y1, full_h, full_w) * guide
        plane += _resize_band(b_plane, y0, y1, full_h, full_w)
        planes.append(plane)
    return planes


def upsample_strip(A: np.ndarray, B: np.ndarray, guide_strip: np.ndarray, y0: int, y1: int,
                   full_h: int, full_w: int) -> np.ndarray:
    """Rows y0:y1 of the full-resolution output: (y1 - y0, full_w, C) float32, :func:`upsample_planes`'
    planes as channels."""
    planes = upsample_planes(A, B, guide_strip, y0, y1, full_h, full_w)
    out = np.empty((*planes[0].shape, len(planes)), np.float32)
    for c, plane in enumerate(planes):
        out[..., c] = plane
    return out


def downsample_guide(guide_full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) L -> (h, w) float32, area-averaged (cv2 INTER_AREA), the guide the coefficients are fit to."""
    h, w = size
    return cv2.resize(np.asarray(guide_full, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA)


def guided_upsample(guide_full: np.ndarray, src_small: np.ndarray, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS, strip_pixels: int = STRIP_PIXELS) -> np.ndarray:
    """guide_full (H, W) L in [0, 100], src_small (h, w, C) -> (H, W, C) float32, the fast guided
    filter's upsampling of src_small, in strips of about ``strip_pixels`` pixels.

    For tests and small images: the output is one full-size float32 array. Full-size photos use
    :func:`coefficients` once and :func:`upsample_strip` per strip, with their own L per strip.
    """
    guide_full = np.asarray(guide_full, dtype=np.float32)
    src = np.asarray(src_small)
    if guide_full.ndim != 2 or guide_full.size == 0:
        raise ValueError(f"guide_full must be a non-empty (H, W) array; got {guide_full.shape}")
    if src.ndim != 3:
        raise ValueError(f"src_small must be (h, w, C); got {src.shape}")
    full_h, full_w = guide_full.shape
    A, B = coefficients(downsample_guide(guide_full, src.shape[:2]), src, radius, eps)
    out = np.empty((full_h, full_w, src.shape[2]), np.float32)
    rows = max(1, strip_pixels // full_w)
    for y0 in range(0, full_h, rows):
        y1 = min(full_h, y0 + rows)
        out[y0:y1] = upsample_strip(A, B, guide_full[y0:y1], y0, y1, full_h, full_w)
    return out
