"""evaluation.baselines: hints spread by distance and lightness; histogram matching of chroma."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import baselines


def direct_spread(L, points_yx, points_ab, long_side=None):
    """The formula of spread's docstring, written out in float64 over the whole image at once."""
    H, W = L.shape
    s = 0.19 * (max(H, W) if long_side is None else long_side)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    num = np.zeros((H, W, 2))
    den = np.zeros((H, W))
    for (y, x), ab in zip(points_yx, points_ab):
        l_i = L[int(np.clip(np.rint(y), 0, H - 1)), int(np.clip(np.rint(x), 0, W - 1))]
        w = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s)) * np.exp(-(L.astype(np.float64) - l_i) ** 2 / 200)
        num += w[..., None] * np.asarray(ab, np.float64)
        den += w
    return num / den[..., None]


def random_L(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 100, shape).astype(np.float32)


def test_one_point_colors_every_pixel():
    L = random_L((37, 53))
    out = baselines.spread(L, np.array([[5.3, 40.8]]), np.array([[23.0, -41.5]]))
    assert out.shape == (37, 53, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], 23.0, atol=1e-4)
    np.testing.assert_allclose(out[..., 1], -41.5, atol=1e-4)


def test_two_points_of_equal_lightness_at_opposite_corners_average_in_the_middle():
    L = random_L((51, 71), seed=1)
    L[0, 0] = L[50, 70] = 40.0
    ab = np.array([[60.0, 10.0], [-20.0, -50.0]])
    out = baselines.spread(L, np.array([[0.0, 0.0], [50.0, 70.0]]), ab)
    np.testing.assert_allclose(out[25, 35], ab.mean(axis=0), atol=1e-4)
    # and near each corner, that corner's color dominates where L matches it (L = 40 at both ends)
    assert np.abs(out[0, 0] - ab[0]).max() < np.abs(out[0, 0] - ab[1]).max()


def test_pixels_lean_to_the_point_of_their_lightness():
    H, W = 40, 60
    checker = (np.add.outer(np.arange(H), np.arange(W)) % 2).astype(bool)
    L = np.where(checker, 80.0, 20.0).astype(np.float32)
    yx = np.array([[20.0, 14.0], [20.0, 45.0]])      # (20, 14): L = 20, (20, 45): L = 80
    assert L[20, 14] == 20 and L[20, 45] == 80
    ab = np.array([[50.0, 0.0], [-30.0, 40.0]])
    out = baselines.spread(L, yx, ab)
    # lightness term exp(-60^2 / 200) = exp(-18) against a spatial ratio of at most exp(6.9) here
    np.testing.assert_allclose(out[~checker], np.broadcast_to(ab[0], out[~checker].shape), atol=0.01)
    np.testing.assert_allclose(out[checker], np.broadcast_to(ab[1], out[checker].shape), atol=0.01)


def test_the_lightness_weight_is_exp_minus_dl_squared_over_200():
    """A pixel as far from both points, of the first point's L (45) vs the second's (55): weights 1 and e^-0.5."""
    L = np.full((21, 41), 50.0, np.float32)
    L[10, 10], L[10, 30] = 45.0, 55.0
    L[0, 20] = 45.0                                   # equidistant from (10, 10) and (10, 30)
    ab = np.array([[40.0, -10.0], [-20.0, 30.0]])
    out = baselines.spread(L, np.array([[10.0, 10.0], [10.0, 30.0]]), ab)
    w2 = np.exp(-0.5)
    np.testing.assert_allclose(out[0, 20], (ab[0] + w2 * ab[1]) / (1 + w2), atol=1e-4)
    np.testing.assert_allclose(out[5, 20], ab.mean(axis=0), atol=1e-4)   # L = 50: equal weights


def test_matches_the_formula_written_directly():
    rng = np.random.default_rng(2)
    L = random_L((33, 47), seed=3)
    yx = rng.uniform([-3, -3], [36, 50], (7, 2))      # a few off the image: L clipped to the border
    ab = rng.uniform(-80, 80, (7, 2))
    np.testing.assert_allclose(baselines.spread(L, yx, ab), direct_spread(L, yx, ab), atol=1e-3)
    np.testing.assert_allclose(baselines.spread(L, yx, ab, long_side=500),
                               direct_spread(L, yx, ab, long_side=500), atol=1e-3)


@pytest.mark.parametrize("shape", [(33, 47), (1, 19), (19, 1), (1, 1)])
def test_strips_equal_one_pass(shape):
    rng = np.random.default_rng(4)
    L = random_L(shape, seed=5)
    yx = rng.uniform(0, max(shape), (5, 2))
    ab = rng.uniform(-80, 80, (5, 2))
    whole = baselines.spread(L, yx, ab, strip_pixels=1 << 40)
    for strip_pixels in (1, shape[1] * 3, shape[1] * 4 + 1):
        np.testing.assert_allclose(baselines.spread(L, yx, ab, strip_pixels=strip_pixels), whole, atol=1e-5)


def test_no_points_gives_zeros():
    L = random_L((9, 11))
    for yx, ab in [(np.zeros((0, 2)), np.zeros((0, 2))), ([], [])]:
        out = baselines.spread(L, yx, ab)
        assert out.shape == (9, 11, 2) and out.dtype == np.float32 and not out.any()


def test_no_nan_where_every_weight_underflows():
    """1 x 5000, s = 0.19 x 100 = 19 px: at the far end the spatial weight is exp(-5000^2 / 722), 0 in any float."""
    L = np.full((1, 5000), 50.0, np.float32)
    out = baselines.spread(L, np.array([[0.0, 0.0]]), np.array([[30.0, -70.0]]), long_side=100)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], np.broadcast_to([30.0, -70.0], (5000, 2)), atol=1e-4)
    # two points at the two ends: in the middle both weights underflow, yet their ratio is kept,
    # exp((2500^2 - 2499^2) / 722) in favor of the nearer one
    ab = np.array([[30.0, -70.0], [-60.0, 20.0]])
    out = baselines.spread(L, np.array([[0.0, 0.0], [0.0, 4999.0]]), ab, long_side=100)
    assert np.isfinite(out).all()
    w2 = np.exp(-(2500.0 ** 2 - 2499.0 ** 2) / (2 * 19.0 ** 2))
    np.testing.assert_allclose(out[0, 2499], (ab[0] + w2 * ab[1]) / (1 + w2), atol=1e-3)
    np.testing.assert_allclose(out[0, :2000], np.broadcast_to(ab[0], (2000, 2)), atol=1e-3)
    np.testing.assert_allclose(out[0, 3000:], np.broadcast_to(ab[1], (2000, 2)), atol=1e-3)


def test_bad_points_are_refused():
    L = random_L((4, 4))
    with pytest.raises(ValueError):
        baselines.spread(L, np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        baselines.spread(L, np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        baselines.spread(L, [[np.nan, 0.0]], [[0.0, 0.0]])


# ---- histogram matching ----------------------------------------------------------------------

def test_histogram_matching_of_equal_sizes_gives_the_reference_values_in_the_input_order():
    """With as many pixels as the reference (distinct values), the k-th smallest input value becomes
    exactly the k-th smallest reference value: quantiles (k + 1) / n on both sides."""
    rng = np.random.default_rng(6)
    ab = rng.normal(0, 5, (20, 30, 2)).astype(np.float32)                 # a washed-out colorization
    ref = np.stack([rng.uniform(-60, 80, (24, 25)), rng.normal(20, 30, (24, 25))], -1).astype(np.float32)
    out = baselines.histogram_matched(ab, ref)
    assert out.shape == ab.shape and out.dtype == np.float32
    for c in (0, 1):
        np.testing.assert_array_equal(np.sort(out[..., c], axis=None), np.sort(ref[..., c], axis=None))
        order = np.argsort(ab[..., c], axis=None)                          # monotone: the order is kept
        np.testing.assert_array_equal(out[..., c].reshape(-1)[order], np.sort(ref[..., c], axis=None))


def test_histogram_matching_maps_quantiles_to_the_reference_quantiles():
    rng = np.random.default_rng(7)
    ab = rng.normal(0, 10, (17, 23, 2)).astype(np.float32)
    ref = rng.uniform(-50, 50, (8, 9, 2)).astype(np.float32)
    out = baselines.histogram_matched(ab, ref)
    assert out.shape == (17, 23, 2)
    n, m = ab[..., 0].size, ref[..., 0].size
    for c in (0, 1):
        src = ab[..., c].reshape(-1)
        ranks = np.empty(n, np.int64)
        ranks[np.argsort(src)] = np.arange(n)                              # distinct values: rank = index
        expected = np.interp((ranks + 1) / n, np.arange(1, m + 1) / m, np.sort(ref[..., c], axis=None))
        np.testing.assert_allclose(out[..., c].reshape(-1), expected, atol=1e-4)


def test_histogram_matching_takes_integer_chroma_as_values():
    ab = np.arange(-12, 12).reshape(4, 3, 2)                              # int64: must not be truncated
    ref = np.linspace(-0.5, 0.5, 12 * 2, dtype=np.float32).reshape(4, 3, 2)
    out = baselines.histogram_matched(ab, ref)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.sort(out[..., 0], axis=None), np.sort(ref[..., 0], axis=None), atol=1e-6)
