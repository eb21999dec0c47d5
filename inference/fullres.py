"""Full-resolution colorization: a working size for the network, chroma brought back to the photo's size.

The network colorizes a small version of the photo (its *working size*); only its chroma (a, b of
CIE LAB) is used, recombined with the photo's own full-resolution lightness L, so the output keeps
the photo's size, lightness and detail.

- **Working size**: fully convolutional networks (``Colorizer.work_multiple``) see the photo at its
  own aspect ratio: effnet_unet always, its long side the run's working size unless asked otherwise
  (``Colorizer.work_size``: config.json ``work_size``, else the size the run was trained at; a multiple
  of 8: the encoder's deepest tap has stride 32 at 4x); unet and the GAN's
  generator when a working size is asked for (multiples of 32). Otherwise a network sees the photo
  squashed to its training size (32 x 32), and the stretch is undone when the chroma comes back.
  A run whose config.json says ``"square_view": true`` (the shipped one) also colorizes a non-square
  photo squashed to a square and averages the two chromas (``Colorizer.working_ab``).
- **Upsampling**: the fast guided filter (``core.guided``): the chroma's local linear fit to the
  working-size L is applied to the full-resolution L, so a color stops at the photo's edges instead
  of washing across them (bilinear upsampling did that).
- **Gamut**: where the chroma does not exist at the pixel's lightness (outside sRGB), it is reduced
  until it fits, keeping L and the hue, instead of clipping RGB (which would change L).
- **Speed**: photos and video frames (inference.video) share these full-size steps: L from the
  luminance alone, the chroma enlarged by OpenCV (core.guided), the gamut fit only where a color may be
  outside (a table of the chroma every hue has inside sRGB at each L), OpenCV's LAB -> RGB. They give
  core.colorspace's conversions' result within 1 level of 8 bits (tests/test_fullres_fast.py); a
  12-megapixel photo's L and colors take about 0.25 s instead of 1.3 s.

Arrays: the photo (H, W, 3) uint8; L (H, W) float32 in [0, 100]; the network's gray input
(h, w, 3) uint8; chroma (h, w, 2) float32 in LAB units. Everything of full size is done in strips
of about STRIP_PIXELS pixels, so the only full-size arrays are the uint8 images and L.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from core import colorspace, guided

STRIP_PIXELS = 1 << 20      # full-size work is done in strips of about this many pixels (~12 MB float32 LAB)
WORK_MULTIPLE = 8           # working sides are multiples of this


def working_shape(full_hw: tuple[int, int], long_side: int,
                  multiple: int = WORK_MULTIPLE) -> tuple[int, int]:
    """(h, w) for a photo of (H, W): the aspect ratio kept, the long side ``long_side`` (never more
    than the photo's own, rounded up), both sides multiples of ``multiple`` and at least that."""
    H, W = full_hw
    if long_side < multiple or long_side % multiple:
        raise ValueError(f"the working size must be a multiple of {multiple} of at least {multiple}, got {long_side}")
    long_side = min(long_side, -(-max(H, W) // multiple) * multiple)
    scale = long_side / max(H, W)
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in (H, W))


_LUMINANCE = colorspace.luminance_weights()[None]   # (1, 3) linear sRGB -> Y (D65 white: Y = 1), for cv2.transform


def _strip_rows(w: int) -> int:
    """Rows per strip of a full-size image of width w: about STRIP_PIXELS pixels."""
    return max(1, STRIP_PIXELS // max(w, 1))


def lightness(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 CIE L in [0, 100], in strips.

    core.colorspace.rgb_to_lab's L to 2e-5 (tests/test_fullres_fast.py), 5 x faster: L depends on
    the luminance Y alone, so it is a table lookup (sRGB -> linear), one weighted sum and one cube root
    (OpenCV and float32; rgb_to_lab computes all of L, a, b in float64).
    """
    if rgb.dtype != np.uint8:
        raise TypeError(f"lightness takes uint8 RGB, got {rgb.dtype} (core.colorspace.rgb_to_lab takes floats)")
    h, w = rgb.shape[:2]
    out = np.empty((h, w), np.float32)
    rows = _strip_rows(w)
    for y0 in range(0, h, rows):
        lin = cv2.LUT(np.ascontiguousarray(rgb[y0:y0 + rows]), colorspace.linear_lut())   # (n, w, 3) float32 linear RGB
        y = cv2.transform(lin, _LUMINANCE).reshape(lin.shape[:2])                  # (n, w) Y in [0, 1]
        f = np.cbrt(y)
        small = y <= np.float32(0.008856)                                          # CIE's linear segment near black
        if small.any():
            f[small] = np.float32(7.787) * y[small] + np.float32(16 / 116)
        np.multiply(f, np.float32(116), out=out[y0:y0 + rows])
        out[y0:y0 + rows] -= np.float32(16)
    return out


def small_gray(L: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Full-size L (H, W) -> (the network's gray input (h, w, 3) uint8, the guide: L area-averaged (h, w))."""
    guide = guided.downsample_guide(L, shape)                            # (h, w) float32, L units
    lab = np.zeros((*shape, 3), np.float32)
    lab[..., 0] = guide
    return colorspace.to_uint8(colorspace.lab_to_rgb(lab)), guide


def recombine(rgb: np.ndarray, ab_small: np.ndarray, with_gray: bool = False, L: np.ndarray | None = None,
              guide_small: np.ndarray | None = None):
    """Full-resolution colorization: (H, W, 3) uint8 input + (h, w, 2) predicted ab -> (H, W, 3) uint8.

    The chroma is brought to full size by the fast guided filter (module docstring), guided by the
    input's L (H, W) float32 in [0, 100] (computed here unless given) area-averaged to ab_small's size
    (or ``guide_small``), fit into sRGB (only where it may be outside, ``_fit_gamut_planes``) and
    converted by OpenCV. Returns (colorized, gray or None): gray is the input's gray version, for --compare.
    Photos (inference.colorizer) and video frames (inference.video) both come here.
    """
    h, w = rgb.shape[:2]
    L = lightness(rgb) if L is None else L
    if guide_small is None:
        guide_small = guided.downsample_guide(L, ab_small.shape[:2])
    A, B = guided.coefficients(guide_small, np.asarray(ab_small, np.float32))
    out = np.empty_like(rgb)
    gray = np.empty_like(rgb) if with_gray else None
    rows = _strip_rows(w)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        L_strip = np.ascontiguousarray(L[y0:y1], dtype=np.float32)                 # (n, w) [0, 100]
        a, b = guided.upsample_planes(A, B, L_strip, y0, y1, h, w)                 # (n, w) each, LAB units
        out[y0:y1] = _lab_to_uint8(_fit_gamut_planes(L_strip, a, b))
        if gray is not None:
            gray[y0:y1] = _gray_uint8(rgb[y0:y1])
    return out, gray


def _lab_to_uint8(lab: np.ndarray) -> np.ndarray:
    """(n, w, 3) float32 LAB inside sRGB -> (n, w, 3) uint8 RGB with OpenCV: 8 x faster than
    core.colorspace.lab_to_rgb + to_uint8, the same sRGB and D65 white to 4 digits (at most 1 level
    apart, in a few pixels: tests/test_fullres_fast.py)."""
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)          # float32 sRGB, [0, 1] up to float rounding
    np.clip(rgb, 0, 1, out=rgb)                         # convertScaleAbs takes |x|: no negatives into it
    return cv2.convertScaleAbs(rgb, alpha=255)          # x 255, rounded half to even (as np.rint), uint8


def _gray_uint8(rgb: np.ndarray) -> np.ndarray:
    """(n, w, 3) uint8 -> (n, w, 3) uint8 gray (R = G = B; a read-only broadcast view), equal to
    core.colorspace.to_uint8(core.colorspace.gray_rgb(rgb)) (tests/test_fullres_fast.py checks every bit):
    the same float32 arithmetic for the luminance and its sRGB encoding, but the table lookup by OpenCV and
    the encoding and rounding done once per pixel, not per channel (2 x faster)."""
    lin = cv2.LUT(np.ascontiguousarray(rgb), colorspace.linear_lut())   # (n, w, 3) float32 linear RGB
    level = colorspace.to_uint8(colorspace.linear_to_srgb(lin @ _LUMINANCE[0]))   # (n, w): gray_rgb's, once per pixel
    return np.broadcast_to(level[..., None], (*level.shape, 3))


# ---- the gamut ----------------------------------------------------------------------------------
# fit_gamut reduces the chroma of colors outside sRGB by bisection. In a photo few pixels are outside: the
# full-size path (_fit_gamut_planes) first compares each pixel's chroma with a chroma that every hue has
# inside sRGB at its L (_safe_chroma), and runs the fit only on the pixels above it (a few % of them).

@functools.cache
def _xyzn_to_linear() -> np.ndarray:
    """(3, 3) matrix, row-vector form: white-normalized XYZ -> linear sRGB, as colorspace uses it.

    Derived from the public colorspace.rgb_to_lab (the XYZ of each primary is a row of the
    forward matrix), so it follows that module without reaching into its private constants.
    """
    lab = colorspace.rgb_to_lab(np.eye(3, dtype=np.float32)).astype(np.float64)   # pure R, G, B
    return np.linalg.inv(_lab_to_xyzn(lab)).astype(np.float32)


def _f_inverse(f: np.ndarray) -> np.ndarray:
    """CIE's f^-1: f (any shape) -> XYZ / white, the cube above f = 6/29, the linear segment below."""
    out = f * f * f                                     # f*f*f: 7x faster than f**3
    low = ~(f > 0.2068966)
    if low.any():
        out[low] = (f[low] - 16.0 / 116.0) / 7.787
    return out


def _lab_to_xyzn(lab: np.ndarray) -> np.ndarray:
    """(..., 3) LAB -> (..., 3) XYZ / white (the CIE inverse, constants as colorspace's)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    return _f_inverse(np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1))


def _inside(fy: np.ndarray, y_terms: list[np.ndarray], a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """in_gamut for colors of fy = (L + 16) / 116 and a, b (all (K,) float32), with y_terms[c] = Y m[1, c]
    (Y's share of each linear channel, which does not change with a, b: computed once per bisection).
    The same float32 operations in the same order as before that split: bit for bit the same answer."""
    x = _f_inverse(fy + a / 500.0)
    z = _f_inverse(fy - b / 200.0)
    m = _xyzn_to_linear()
    inside = np.ones(fy.shape, bool)
    for c in range(3):   # three multiply-adds: NumPy's matmul is slow for an inner size of 3
        lin = x * m[0, c]
        lin += y_terms[c]
        lin += z * m[2, c]
        inside &= (lin >= -tol) & (lin <= 1.0 + tol)
    return inside


def _y_terms(fy: np.ndarray) -> list[np.ndarray]:
    y = _f_inverse(fy)
    m = _xyzn_to_linear()
    return [y * m[1, c] for c in range(3)]


def in_gamut(lab: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """(..., 3) LAB -> (...) bool: the color exists in sRGB (its linear RGB lies in [0, 1])."""
    lab = np.asarray(lab)
    fy = (lab[..., 0] + 16.0) / 116.0
    return _inside(fy, _y_terms(fy), lab[..., 1], lab[..., 2], tol)


def _fit_ab(L: np.ndarray, a: np.ndarray, b: np.ndarray, steps: int = 8) -> tuple[np.ndarray, np.ndarray] | None:
    """(K,) float32 L, a, b -> (indices, a, b there scaled toward 0) for the colors outside sRGB, or None
    when all are inside: fit_gamut's bisection (its docstring)."""
    fy = (L + 16.0) / 116.0
    y_terms = _y_terms(fy)
    idx = np.flatnonzero(~_inside(fy, y_terms, a, b))
    if len(idx) == 0:
        return None
    fy, y_terms, a, b = fy[idx], [t[idx] for t in y_terms], a[idx], b[idx]     # the colors outside
    lo = np.zeros(len(idx), np.float32)    # a scale known to be inside
    hi = np.ones(len(idx), np.float32)     # a scale known to be outside
    for _ in range(steps):
        mid = (lo + hi) * np.float32(0.5)
        inside = _inside(fy, y_terms, a * mid, b * mid)
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return idx, a * lo, b * lo


def fit_gamut(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """(..., 3) LAB -> the same with a, b scaled toward 0 where the color is outside sRGB.

    lab_to_rgb clips such colors in RGB, which changes their lightness; shrinking the chroma
    instead keeps L and the hue. The largest in-gamut scale is found by bisection, to 2**-steps.
    Gray (a = b = 0) with L in [0, 100] is always inside, so the search always succeeds.
    """
    flat = np.asarray(lab).reshape(-1, 3)
    fitted = _fit_ab(flat[:, 0], flat[:, 1], flat[:, 2], steps)
    if fitted is None:
        return lab
    idx, a, b = fitted
    flat = flat.copy()
    flat[idx, 1], flat[idx, 2] = a, b
    return flat.reshape(lab.shape)


SAFE_BINS = 2.55   # the table of safe chroma has a row per 1 / SAFE_BINS L units: row round(SAFE_BINS L), 0..255


@functools.cache
def _safe_chroma() -> np.ndarray:
    """(256,) float32: row k, for L in [k - 0.5, k + 0.5] / SAFE_BINS (within [0, 100]), a chroma (LAB units)
    that every hue has inside sRGB there, with a margin (0 near black and white). Built once per process
    (about 0.05 s): the largest in-gamut chroma of 720 hues at each row's two ends, by bisection."""
    L = np.clip((np.arange(257, dtype=np.float32) - 0.5) / SAFE_BINS, 0, 100)   # the rows' ends
    hue = np.linspace(0, 2 * np.pi, 720, endpoint=False, dtype=np.float32)
    cos, sin = np.cos(hue)[None, :], np.sin(hue)[None, :]
    fy = np.broadcast_to(((L + 16.0) / 116.0)[:, None], (len(L), len(hue))).ravel()
    y_terms = _y_terms(fy)
    lo = np.zeros((len(L), len(hue)), np.float32)
    hi = np.full_like(lo, 140.0)         # sRGB's most saturated color (blue) has chroma 134
    for _ in range(12):                  # bisection to 140 / 2^12 chroma units; lo is always inside
        mid = (lo + hi) / 2
        inside = _inside(fy, y_terms, (mid * cos).ravel(), (mid * sin).ravel()).reshape(lo.shape)
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    at_ends = lo.min(1)                                   # (257,): the chroma every sampled hue has
    safe = np.minimum(at_ends[:-1], at_ends[1:])          # both ends of each row's interval
    return np.maximum(safe * np.float32(0.97) - np.float32(0.5), 0)   # the margin: hues between the samples, L inside


def _fit_gamut_planes(L: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L, a, b (n, w) float32 -> LAB (n, w, 3) float32 with fit_gamut's chroma (a, b are changed in place).

    The fit is computed only where the chroma exceeds what every hue has inside sRGB at that L (the
    table above, looked up by OpenCV: L x 2.55 rounded to uint8); everywhere else the color is inside.
    """
    row = cv2.convertScaleAbs(L, alpha=SAFE_BINS)                  # (n, w) uint8 round(2.55 |L|), L >= 0
    maybe = np.flatnonzero(cv2.magnitude(a, b) > cv2.LUT(row, _safe_chroma()))
    if len(maybe):
        a_flat, b_flat = a.reshape(-1), b.reshape(-1)
        fitted = _fit_ab(L.reshape(-1)[maybe], a_flat[maybe], b_flat[maybe])
        if fitted is not None:
            idx, a_fit, b_fit = fitted
            a_flat[maybe[idx]], b_flat[maybe[idx]] = a_fit, b_fit
    return cv2.merge((L, a, b))
