"""Color-space conversion and the network encodings, in one place.

All functions are NumPy, vectorized over any leading batch dimensions, and
return float32 (the original called skimage's per-image float64 ``rgb2lab``).
Per-pixel conversions run in cache-sized blocks over the whole batch; RGB -> LAB
keeps float64 inside a block, which keeps it within 1e-5 of skimage.

Value ranges
------------
=================  =====================  ==========================================
quantity           range                  notes
=================  =====================  ==========================================
RGB (uint8)        0 .. 255               what files and CIFAR batches hold
RGB (float)        0 .. 1                 sRGB, gamma-encoded
CIE L              0 .. 100               D65 white, 2 degree observer (as skimage)
CIE a, b           about -128 .. 127      sRGB gamut spans about [-86, 98] x [-108, 95]
L encoded          0 .. 1                 L / 100                    (network input X)
ab encoded         0 .. 1                 (ab + 128) / 255           (network target Y)
RGB encoded (GAN)  -1 .. 1                rgb * 2 - 1                (tanh output)
L sym. (LAB GAN)   -1 .. 1                L / 50 - 1
ab sym. (LAB GAN)  about -1 .. 1          ab / 128
=================  =====================  ==========================================

The "gray" version of an image is its L channel with a = b = 0, which in sRGB
is R = G = B = gamma(Y), Y being the linear luminance.
"""
from __future__ import annotations

import numpy as np

# sRGB (linear) -> XYZ, D65; the matrix skimage uses.
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]], dtype=np.float64)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
# D65 reference white, 2 degree observer (skimage's default illuminant).
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

# Fold the white point into the matrices so each conversion is one matmul.
_RGB_TO_XYZN = (_RGB_TO_XYZ / _WHITE[:, None]).T   # row-vector form, float64 (see rgb_to_lab)
_XYZN_TO_RGB = _XYZ_TO_RGB * _WHITE[None, :]
# skimage's white point and matrix disagree in the 5th digit, so a = b = 0 would decode to
# R, G, B differing by ~4e-5. Normalizing the rows makes gray decode to R = G = B (to float
# rounding); the change to any color is below 3e-5, well inside the 1e-4 agreement with skimage.
_XYZN_TO_RGB = (_XYZN_TO_RGB / _XYZN_TO_RGB.sum(axis=1, keepdims=True)).T.astype(np.float32)

_EPS = np.float32(0.008856)   # (6/29)^3, CIE threshold as skimage writes it
_KAPPA = np.float32(7.787)


def to_float_rgb(rgb) -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] RGB -> float32 [0, 1]."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    return rgb.astype(np.float32, copy=False)


def to_uint8(rgb) -> np.ndarray:
    """float [0, 1] RGB -> uint8 [0, 255], rounded and clipped."""
    return np.clip(np.rint(np.asarray(rgb, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _srgb_to_linear_float(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92).astype(np.float32)


# uint8 input has only 256 values: a lookup table replaces the costly pow().
_LINEAR_LUT = _srgb_to_linear_float(np.arange(256, dtype=np.float64) / 255.0)


def _srgb_to_linear(rgb, dtype=np.float32) -> np.ndarray:
    """uint8 or float [0, 1] sRGB -> linear RGB in ``dtype`` (float64 for rgb_to_lab's precision)."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return _LINEAR_LUT.astype(dtype, copy=False)[rgb]
    return _srgb_to_linear_float(rgb.astype(np.float32, copy=False)).astype(dtype, copy=False)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear RGB or luminance (any shape) -> float32 sRGB-encoded, [0, 1] for inputs in [0, 1]."""
    c = np.maximum(c, 0.0)   # pow of negatives is undefined; out-of-gamut goes to 0 as in skimage
    return np.where(c > 0.0031308, 1.055 * c ** (1 / 2.4) - 0.055, 12.92 * c).astype(np.float32)


def linear_lut() -> np.ndarray:
    """(256,) float32, read-only: sRGB uint8 level -> linear [0, 1], the table this module converts uint8 with
    (for code that looks it up another way, as inference.fullres does with OpenCV)."""
    view = _LINEAR_LUT.view()
    view.flags.writeable = False
    return view


def luminance_weights() -> np.ndarray:
    """(3,) float32: linear sRGB -> luminance Y (white Y = 1), the weights gray_rgb and L use."""
    return _RGB_TO_XYZ[1].astype(np.float32)


# Pixels per block of the per-pixel conversions. A whole-array pass makes a dozen temporaries the
# size of the data set (float64 for 256 px images: gigabytes), and is memory-bound: measured 19x
# slower than blocks that stay in cache (bench.py, data section).
_BLOCK = 16384


def _blocks(n_pixels: int):
    """Slices of at most _BLOCK pixels covering range(n_pixels)."""
    for start in range(0, n_pixels, _BLOCK):
        yield slice(start, min(start + _BLOCK, n_pixels))


def _blockwise(convert, pixels) -> np.ndarray:
    """Apply ``convert(src (n, 3), dst (n, 3) float32)`` to (..., 3) ``pixels`` block by block."""
    pixels = np.asarray(pixels)
    flat = pixels.reshape(-1, 3)
    out = np.empty(flat.shape, np.float32)
    for block in _blocks(len(flat)):
        convert(flat[block], out[block])
    return out.reshape(pixels.shape)


_F_TO_LAB = np.array([[0.0, 500.0, 0.0],       # fx
                      [116.0, -500.0, 200.0],  # fy
                      [0.0, 0.0, -200.0]])     # fz


def _rgb_to_lab_block(rgb: np.ndarray, lab: np.ndarray) -> None:
    # float64 from the matmul on: a = 500 (fx - fy) magnifies float32 rounding of f to ~1e-4, at
    # the edge of the agreement with skimage; in cache-sized blocks float64 costs next to nothing.
    # (all float64: a float32 x float64 matmul takes a slow mixed-type path, measured 7x slower)
    xyz = _srgb_to_linear(rgb, np.float64) @ _RGB_TO_XYZN   # normalized by the white point
    f = np.cbrt(xyz)
    small = xyz <= _EPS                          # the linear segment near black
    if small.any():
        f[small] = _KAPPA * xyz[small] + 16 / 116
    # L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz) as one matmul, cast, then stored: NumPy's
    # casting stores (float64 into a float32 view) were the slowest step of all, 30x a plain copy.
    lab32 = (f @ _F_TO_LAB).astype(np.float32)
    lab32[:, 0] -= 16.0
    lab[...] = lab32


def rgb_to_lab(rgb) -> np.ndarray:
    """(..., 3) RGB (uint8 or float [0, 1]) -> (..., 3) float32 LAB, L in [0, 100]."""
    return _blockwise(_rgb_to_lab_block, rgb)


def _lab_to_rgb_block(lab: np.ndarray, rgb: np.ndarray) -> None:
    lab = lab.astype(np.float32, copy=False)
    fy = (lab[:, 0] + 16.0) / 116.0
    f = np.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], axis=-1)
    f[:, 2] = np.maximum(f[:, 2], 0.0)   # skimage clips negative z (out of gamut) the same way
    xyz = np.where(f > 0.2068966, f ** 3, (f - np.float32(16 / 116)) / _KAPPA)
    rgb[:] = np.clip(linear_to_srgb(xyz @ _XYZN_TO_RGB), 0.0, 1.0)


def lab_to_rgb(lab) -> np.ndarray:
    """(..., 3) LAB -> (..., 3) float32 sRGB clipped to [0, 1]."""
    return _blockwise(_lab_to_rgb_block, lab)


def gray_rgb(rgb) -> np.ndarray:
    """(..., 3) RGB -> (..., 3) float32 [0, 1] gray image, R = G = B (the L channel, a = b = 0)."""
    lin = _srgb_to_linear(rgb)
    y = lin @ luminance_weights()   # linear luminance, (...)
    return np.repeat(linear_to_srgb(y)[..., None], 3, axis=-1)


# ---- network encodings -------------------------------------------------------

def encode_lab(rgb) -> tuple[np.ndarray, np.ndarray]:
    """RGB -> (X, Y) as the original: X = L/100, shape (..., 1); Y = (ab+128)/255, shape (..., 2)."""
    rgb = np.asarray(rgb)
    flat = rgb.reshape(-1, 3)
    x = np.empty((len(flat), 1), np.float32)         # (..., 1), [0, 1]
    y = np.empty((len(flat), 2), np.float32)         # (..., 2), [0, 1]
    lab = np.empty((min(_BLOCK, len(flat)), 3), np.float32)   # one block, reused: no full-size LAB copy
    for block in _blocks(len(flat)):
        n = block.stop - block.start
        _rgb_to_lab_block(flat[block], lab[:n])
        np.multiply(lab[:n, :1], np.float32(1 / 100), out=x[block])
        np.multiply(lab[:n, 1:] + np.float32(128), np.float32(1 / 255), out=y[block])
    return x.reshape(*rgb.shape[:-1], 1), y.reshape(*rgb.shape[:-1], 2)


def decode_lab(x, y) -> np.ndarray:
    """(X, Y) in the encoding of :func:`encode_lab` -> float32 RGB [0, 1]."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    lab = np.concatenate([x * 100.0, y * 255.0 - 128.0], axis=-1)
    return lab_to_rgb(lab)


def encode_rgb(rgb) -> tuple[np.ndarray, np.ndarray]:
    """RGB -> (color, gray3) for the RGB GAN, both float32 in [-1, 1], shape (..., 3)."""
    color = to_float_rgb(rgb) * 2.0 - 1.0
    gray3 = gray_rgb(rgb) * 2.0 - 1.0
    return color, gray3


def decode_rgb(color) -> np.ndarray:
    """[-1, 1] RGB (generator output) -> float32 RGB [0, 1]."""
    return np.clip((np.asarray(color, np.float32) + 1.0) * 0.5, 0.0, 1.0)


def encode_lab_symmetric(rgb) -> tuple[np.ndarray, np.ndarray]:
    """RGB -> (L, ab) in [-1, 1] for the LAB GAN: L/50 - 1 (..., 1) and ab/128 (..., 2)."""
    lab = rgb_to_lab(rgb)
    return lab[..., :1] * np.float32(1 / 50) - 1.0, lab[..., 1:] * np.float32(1 / 128)


def decode_lab_symmetric(l_sym, ab_sym) -> np.ndarray:
    """Inverse of :func:`encode_lab_symmetric` -> float32 RGB [0, 1]."""
    l_sym = np.asarray(l_sym, np.float32)
    ab_sym = np.asarray(ab_sym, np.float32)
    return lab_to_rgb(np.concatenate([(l_sym + 1.0) * 50.0, ab_sym * 128.0], axis=-1))


def xyzn_to_linear_matrix() -> np.ndarray:
    """(3, 3) float32, row-vector form: XYZ / white -> linear sRGB, the matrix :func:`lab_to_rgb` uses.

    Public for code that must decode exactly as this module does outside NumPy (the color
    conversion baked into exported models, serving.colorgraph).
    """
    return _XYZN_TO_RGB.copy()
