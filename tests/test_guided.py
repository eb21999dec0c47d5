"""core.guided: the fast guided filter that upsamples chroma along the full-resolution lightness."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from core import guided

TINY_WORKING = [(1, 1), (1, 10), (10, 1)]
ODD_FULL = [(1, 1), (7, 13), (1, 97)]


def bilinear(src_small: np.ndarray, full_h: int, full_w: int) -> np.ndarray:
    """Plain bilinear upsampling of each plane, as inference.photos.recombine did (the thing to beat)."""
    planes = [Image.fromarray(np.ascontiguousarray(src_small[..., c], dtype=np.float32))
              for c in range(src_small.shape[2])]
    return np.stack([np.asarray(p.resize((full_w, full_h), Image.BILINEAR)) for p in planes], axis=-1)


def random_guide(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 100, shape).astype(np.float32)


# ---- (1) constant in, constant out -----------------------------------------------------

@pytest.mark.parametrize("small", [(8, 13), *TINY_WORKING])
@pytest.mark.parametrize("full", [(64, 101), *ODD_FULL])
def test_constant_source_gives_constant_output(small, full):
    src = np.empty(small + (2,), np.float32)
    src[..., 0], src[..., 1] = 37.5, -12.25
    out = guided.guided_upsample(random_guide(full), src)
    assert out.shape == full + (2,) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], 37.5, atol=1e-3)
    np.testing.assert_allclose(out[..., 1], -12.25, atol=1e-3)


@pytest.mark.parametrize("small", TINY_WORKING)
def test_coefficients_on_one_pixel_sides_are_flat(small):
    """A side of one pixel has no variance along it; with one pixel in all, A = 0 and B = src."""
    src = np.random.default_rng(1).normal(0, 30, small + (2,)).astype(np.float32)
    A, B = guided.coefficients(random_guide(small), src)
    assert A.shape == B.shape == src.shape and A.dtype == B.dtype == np.float32
    assert np.isfinite(A).all() and np.isfinite(B).all()
    if small == (1, 1):
        np.testing.assert_array_equal(A, 0)
        np.testing.assert_allclose(B, src, atol=1e-4)


# ---- (2) a linear function of the guide is reproduced ----------------------------------

def test_linear_function_of_the_guide_is_reproduced_at_full_resolution():
    full = random_guide((64, 101))
    small_l = guided.downsample_guide(full, (8, 13))
    src = np.stack([0.5 * small_l + 3, -0.25 * small_l + 10], axis=-1)
    # eps -> 0: the fitted slope is exactly cov / var, and every window of this guide has variance, so
    # A = (0.5, -0.25) and B = (3, 10) everywhere, which hold at any L. (With eps > 0 the slope is
    # var / (var + eps) of that: the default eps trades exactness for robustness, see DEFAULT_EPS.)
    out = guided.guided_upsample(full, src, eps=1e-6)
    np.testing.assert_allclose(out[..., 0], 0.5 * full + 3, atol=1e-2)
    np.testing.assert_allclose(out[..., 1], -0.25 * full + 10, atol=1e-2)
    # bilinear upsampling cannot: the full-resolution L varies inside every working-size cell
    assert np.abs(bilinear(src, 64, 101)[..., 0] - (0.5 * full + 3)).max() > 10


# ---- (3) colors stop at the edges of the full-resolution lightness ------------------------

H, W, EDGE = 64, 101, 37     # L = 30 on columns 0..36, 70 from column 37 on


@pytest.fixture(scope="module")
def edge_case():
    cols = np.arange(W)
    L = np.repeat(np.where(cols < EDGE, 30.0, 70.0).astype(np.float32)[None], H, axis=0)
    a = np.repeat(np.where(cols < EDGE, 60.0, 0.0).astype(np.float32)[None], H, axis=0)
    a_small = guided.downsample_guide(a, (8, 13))      # area-averaged: cell 4 straddles the edge
    src = np.stack([a_small, np.zeros_like(a_small)], axis=-1)
    return L, src


def test_the_small_source_is_what_the_test_says(edge_case):
    _, src = edge_case
    row = src[0, :, 0]
    assert np.allclose(src[..., 0], row[None])                      # the same in every row
    np.testing.assert_allclose(row[:4], 60, atol=1e-4)               # cells fully left (columns < 31.1)
    np.testing.assert_allclose(row[5:], 0, atol=1e-4)                # cells fully right (columns >= 38.8)
    assert 10 < row[4] < 50                                          # the straddling cell: a mix


def edge_ok(a: np.ndarray) -> tuple[bool, float, float]:
    left = a[:, : EDGE - 1]       # pixel centers c + 0.5 more than 1 px left of the edge at 37
    right = a[:, EDGE + 1:]       # ... more than 1 px right of it
    return bool(left.min() > 50 and np.abs(right).max() < 10), float(left.min()), float(np.abs(right).max())


def test_a_sharp_edge_stops_the_color(edge_case):
    L, src = edge_case
    ok, left_min, right_max = edge_ok(guided.guided_upsample(L, src)[..., 0])
    assert ok, f"guided: left min {left_min:.2f} (want > 50), right max |a| {right_max:.2f} (want < 10)"


def test_bilinear_upsampling_fails_the_edge_test(edge_case):
    """The test can fail: plain bilinear upsampling bleeds the color across the edge both ways."""
    _, src = edge_case
    ok, left_min, right_max = edge_ok(bilinear(src, H, W)[..., 0])
    assert not ok and left_min < 50 and right_max > 10


# ---- (4) strips equal one pass ------------------------------------------------------------

def smooth_chroma(small, seed) -> np.ndarray:
    """(h, w, 2) photo-like chroma: a 3x3 random field of ab in [-60, 60], bilinearly enlarged."""
    coarse = np.random.default_rng(seed).uniform(-60, 60, (3, 3, 2)).astype(np.float32)
    return bilinear(coarse, *small)


STRIP_CASES = [((8, 13), (64, 101)), ((48, 64), (301, 397)), ((32, 32), (97, 53)),
               ((1, 10), (7, 13)), ((10, 1), (1, 97)), ((1, 1), (7, 13))]


@pytest.mark.parametrize("small, full", STRIP_CASES)
def test_strips_equal_a_single_pass(small, full):
    guide = random_guide(full, seed=2)
    src = smooth_chroma(small, seed=3)
    whole = guided.guided_upsample(guide, src, strip_pixels=1 << 40)
    for strip_pixels in (1, full[1] * 3, full[1] * 7 + 5):
        np.testing.assert_allclose(guided.guided_upsample(guide, src, strip_pixels=strip_pixels), whole,
                                   atol=1e-4, rtol=0)


def test_strips_equal_a_single_pass_to_float_rounding_of_large_coefficients():
    """Noise for chroma, uncorrelated with a noisy guide: |A| L and |B| reach ~900, where float32 rounding
    (of the interpolation weights) is ~1e-4; strips still agree to a few float32 steps of those terms."""
    full, small = (301, 397), (48, 64)
    guide = random_guide(full, seed=2)
    src = np.random.default_rng(3).normal(0, 40, small + (2,)).astype(np.float32)
    A, B = guided.coefficients(guided.downsample_guide(guide, small), src)
    scale = float((np.abs(A) * 100 + np.abs(B)).max())
    whole = guided.guided_upsample(guide, src, strip_pixels=1 << 40)
    strips = guided.guided_upsample(guide, src, strip_pixels=full[1] * 7 + 5)
    assert np.abs(strips - whole).max() <= 8 * np.finfo(np.float32).eps * scale


# ---- (5) a strip is made from strip-sized arrays ----------------------------------------------

def test_a_mid_strip_equals_those_rows_of_the_full_result():
    full_h, full_w = 400, 300
    guide = random_guide((full_h, full_w), seed=4)
    src = np.random.default_rng(5).normal(0, 40, (48, 64, 2)).astype(np.float32)
    whole = guided.guided_upsample(guide, src, strip_pixels=1 << 40)
    A, B = guided.coefficients(guided.downsample_guide(guide, (48, 64)), src)
    y0, y1 = 157, 211
    strip = guided.upsample_strip(A, B, guide[y0:y1], y0, y1, full_h, full_w)
    assert strip.shape == (y1 - y0, full_w, 2) and strip.dtype == np.float32
    np.testing.assert_allclose(strip, whole[y0:y1], atol=1e-4, rtol=0)


def test_a_strip_of_a_12_megapixel_photo_allocates_only_strip_sized_arrays():
    """(4000, 3000): a full-size float32 plane would be 48 MB; one strip of 16 rows holds 384 kB of output."""
    full_h, full_w, y0, y1 = 4000, 3000, 2000, 2016
    src = np.random.default_rng(6).normal(0, 40, (48, 64, 2)).astype(np.float32)
    A, B = guided.coefficients(random_guide((48, 64), seed=7), src)
    guide_strip = random_guide((y1 - y0, full_w), seed=8)
    tracemalloc.start()
    try:
        strip = guided.upsample_strip(A, B, guide_strip, y0, y1, full_h, full_w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert strip.shape == (y1 - y0, full_w, 2)
    assert peak < 8 * strip.nbytes, f"peak {peak} bytes for a {strip.nbytes}-byte strip"


# ---- (6) OpenCV's enlargement is Pillow's ------------------------------------------------------

def pillow_strip(A, B, guide_strip, y0, y1, full_h, full_w) -> np.ndarray:
    """A strip as upsample_strip made it with Pillow alone (box = the band), the reference."""
    out = np.empty((y1 - y0, full_w, A.shape[2]), np.float32)
    for c in range(A.shape[2]):
        a = guided._resize_band(Image.fromarray(np.ascontiguousarray(A[..., c])), y0, y1, full_h, full_w)
        b = guided._resize_band(Image.fromarray(np.ascontiguousarray(B[..., c])), y0, y1, full_h, full_w)
        out[..., c] = a * guide_strip + b
    return out


@pytest.mark.parametrize("small, full", [*STRIP_CASES, ((22, 32), (2828, 4243)), ((24, 32), (37, 41)),
                                         ((8, 13), (5, 40)), ((8, 13), (40, 5)), ((8, 13), (3, 4))])
def test_strips_are_pillows_bilinear_resize(small, full):
    """Enlarging, OpenCV's resize (rows interpolated first) gives Pillow's result to float rounding (measured
    1.4e-7 of the terms' size |A| 100 + |B|; 1e-5 allowed): first, middle and last strips, 1-pixel working
    sides; a side that shrinks (the last three cases) takes Pillow's path, which averages there."""
    src = np.random.default_rng(9).normal(0, 40, small + (2,)).astype(np.float32)
    A, B = guided.coefficients(random_guide(small, seed=10), src)
    scale = float((np.abs(A) * 100 + np.abs(B)).max()) + 1
    full_h, full_w = full
    rows = max(1, min(full_h // 3, 97))
    for y0 in sorted({0, full_h // 2, full_h - rows}):
        y1 = min(full_h, y0 + rows)
        guide_strip = random_guide((y1 - y0, full_w), seed=y0)
        expected = pillow_strip(A, B, guide_strip, y0, y1, full_h, full_w)
        planes = guided.upsample_planes(A, B, guide_strip, y0, y1, full_h, full_w)
        assert len(planes) == 2 and all(p.shape == (y1 - y0, full_w) and p.dtype == np.float32 for p in planes)
        np.testing.assert_allclose(np.stack(planes, -1), expected, atol=1e-5 * scale, rtol=0)
        np.testing.assert_array_equal(guided.upsample_strip(A, B, guide_strip, y0, y1, full_h, full_w),
                                      np.stack(planes, -1))


# ---- arguments ----------------------------------------------------------------------------------

def test_bad_arguments_are_refused():
    src = np.zeros((4, 4, 2), np.float32)
    guide = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError):
        guided.coefficients(guide, src, eps=0)
    with pytest.raises(ValueError):
        guided.coefficients(guide[:3], src)
    with pytest.raises(ValueError):
        guided.coefficients(guide, src[..., 0])
    A, B = guided.coefficients(guide, src)
    with pytest.raises(ValueError):
        guided.upsample_strip(A, B, np.zeros((5, 10), np.float32), 3, 7, 20, 10)   # 5 rows for y0:y1 = 4
    with pytest.raises(ValueError):
        guided.upsample_strip(A, B, np.zeros((0, 10), np.float32), 7, 7, 20, 10)
