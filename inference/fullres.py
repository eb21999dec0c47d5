"""Full-resolution colorization: a working size for the network, chroma brought back to the photo's size.

The network colorizes a small version of the photo (its *working size*); only its chroma (a, b of
CIE LAB) is used, recombined with the photo's own full-resolution lightness L, so the output keeps
the photo's size, lightness and detail.

- **Working size**: fully convolutional networks (``Colorizer.work_multiple``) see the photo at its
  own aspect ratio: effnet_unet always, its long side ``WORK_LONG_SIDE`` pixels unless asked
  otherwise (a multiple of 8: the encoder's deepest tap has stride 32 at 4x); unet and the GAN's
  generator when a working size is asked for (multiples of 32). Otherwise a network sees the photo
  squashed to its training size (32 x 32), and the stretch is undone when the chroma comes back.
- **Upsampling**: the fast guided filter (``core.guided``): the chroma's local linear fit to the
  working-size L is applied to the full-resolution L, so a color stops at the photo's edges instead
  of washing across them (bilinear upsampling did that).
- **Gamut**: where the chroma does not exist at the pixel's lightness (outside sRGB), it is reduced
  until it fits, keeping L and the hue, instead of clipping RGB (which would change L).

Arrays: the photo (H, W, 3) uint8; L (H, W) float32 in [0, 100]; the network's gray input
(h, w, 3) uint8; chroma (h, w, 2) float32 in LAB units. Everything of full size is done in strips
of about STRIP_PIXELS pixels, so the only full-size arrays are the uint8 images and L.
"""
from __future__ import annotations

import functools

import numpy as np

from core import colorspace, guided

STRIP_PIXELS = 1 << 20      # full-size work is done in strips of about this many pixels (~12 MB float32 LAB)
WORK_LONG_SIDE = 32         # default working size of flexible networks, the long side: measured on the photo set
                            # (README, Color hints: at 32 better than 64 on pooled PSNR and SSIM, no hints)
WORK_MULTIPLE = 8           # working sides are multiples of this


def working_shape(full_hw: tuple[int, int], long_side: int = WORK_LONG_SIDE,
                  multiple: int = WORK_MULTIPLE) -> tuple[int, int]:
    """(h, w) for a photo of (H, W): the aspect ratio kept, the long side ``long_side`` (never more
    than the photo's own, rounded up), both sides multiples of ``multiple`` and at least that."""
    H, W = full_hw
    if long_side < multiple or long_side % multiple:
        raise ValueError(f"the working size must be a multiple of {multiple} of at least {multiple}, got {long_side}")
    long_side = min(long_side, -(-max(H, W) // multiple) * multiple)
    scale = long_side / max(H, W)
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in (H, W))


def lightness(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 L in [0, 100], converted in strips."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w), np.float32)
    rows = max(1, STRIP_PIXELS // max(w, 1))
    for y0 in range(0, h, rows):
        out[y0:y0 + rows] = colorspace.rgb_to_lab(rgb[y0:y0 + rows])[..., 0]
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
    input's L (computed here unless given) area-averaged to ab_small's size (or ``guide_small``).
    Returns (colorized, gray or None): gray is the input's gray version, for --compare.
    """
    h, w = rgb.shape[:2]
    L = lightness(rgb) if L is None else L
    if guide_small is None:
        guide_small = guided.downsample_guide(L, ab_small.shape[:2])
    A, B = guided.coefficients(guide_small, np.asarray(ab_small, np.float32))
    out = np.empty_like(rgb)
    gray = np.empty_like(rgb) if with_gray else None
    rows = max(1, STRIP_PIXELS // w)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        lab = np.empty((y1 - y0, w, 3), np.float32)
        lab[..., 0] = L[y0:y1]
        lab[..., 1:] = guided.upsample_strip(A, B, L[y0:y1], y0, y1, h, w)
        out[y0:y1] = colorspace.to_uint8(colorspace.lab_to_rgb(fit_gamut(lab)))
        if gray is not None:
            gray[y0:y1] = colorspace.to_uint8(colorspace.gray_rgb(rgb[y0:y1]))
    return out, gray


@functools.cache
def _xyzn_to_linear() -> np.ndarray:
    """(3, 3) matrix, row-vector form: white-normalized XYZ -> linear sRGB, as colorspace uses it.

    Derived from the public colorspace.rgb_to_lab (the XYZ of each primary is a row of the
    forward matrix), so it follows that module without reaching into its private constants.
    """
    lab = colorspace.rgb_to_lab(np.eye(3, dtype=np.float32)).astype(np.float64)   # pure R, G, B
    return np.linalg.inv(_lab_to_xyzn(lab)).astype(np.float32)


def _lab_to_xyzn(lab: np.ndarray) -> np.ndarray:
    """(..., 3) LAB -> (..., 3) XYZ / white (the CIE inverse, constants as colorspace's)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    return np.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / 7.787)   # f*f*f: 7x faster than f**3


def in_gamut(lab: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """(..., 3) LAB -> (...) bool: the color exists in sRGB (its linear RGB lies in [0, 1])."""
    xyz = _lab_to_xyzn(lab)
    m = _xyzn_to_linear()
    inside = np.ones(lab.shape[:-1], bool)
    for c in range(3):   # three multiply-adds: NumPy's matmul is slow for an inner size of 3
        lin = xyz[..., 0] * m[0, c] + xyz[..., 1] * m[1, c] + xyz[..., 2] * m[2, c]
        inside &= (lin >= -tol) & (lin <= 1.0 + tol)
    return inside


def fit_gamut(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """(..., 3) LAB -> the same with a, b scaled toward 0 where the color is outside sRGB.

    lab_to_rgb clips such colors in RGB, which changes their lightness; shrinking the chroma
    instead keeps L and the hue. The largest in-gamut scale is found by bisection, to 2**-steps.
    Gray (a = b = 0) with L in [0, 100] is always inside, so the search always succeeds.
    """
    flat = lab.reshape(-1, 3)
    idx = np.flatnonzero(~in_gamut(flat))
    if len(idx) == 0:
        return lab
    sub = flat[idx]                        # (K, 3) the colors outside
    lo = np.zeros(len(idx), np.float32)    # a scale known to be inside
    hi = np.ones(len(idx), np.float32)     # a scale known to be outside
    trial = sub.copy()
    for _ in range(steps):
        mid = (lo + hi) * np.float32(0.5)
        trial[:, 1:] = sub[:, 1:] * mid[:, None]
        inside = in_gamut(trial)
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    flat = flat.copy()
    flat[idx, 1:] = sub[:, 1:] * lo[:, None]
    return flat.reshape(lab.shape)


