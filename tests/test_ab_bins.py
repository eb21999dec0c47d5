"""The quantized ab space of effnet_unet's classification head (core/ab_bins.py)."""
import numpy as np
import pytest

from core import ab_bins, colorspace


@pytest.fixture(scope="module")
def bins():
    return ab_bins.gamut_bins()


def test_bin_count_and_grid(bins):
    # 261 cells of side 10 hold an sRGB color (the paper's 313 comes from an undefined gamut test)
    assert bins.shape == (261, 2)
    assert np.all(bins % 10 == 0)
    assert len(np.unique(bins, axis=0)) == len(bins)
    assert bins[:, 0].min() == -90 and bins[:, 0].max() == 100     # a: the gamut spans about -86 .. 98
    assert bins[:, 1].min() == -110 and bins[:, 1].max() == 90     # b: about -108 .. 95


def _reference_gamut_bins(surface_ab, grid):
    """The former gamut_bins: every surface color's cell, deduplicated and sorted by np.unique."""
    cells = np.unique(np.round(surface_ab / grid).astype(np.int64), axis=0)
    return (cells * grid).astype(np.float32)


@pytest.fixture(scope="module")
def surface_ab():
    """(6 * 256^2, 2) float32 ab of every 8-bit sRGB color with a channel at 0 or 255 (computed once)."""
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
    return colorspace.rgb_to_lab(np.concatenate(faces))[:, 1:]


@pytest.mark.parametrize("grid", [10, 7, 20])
def test_gamut_bins_equal_converting_every_surface_color(surface_ab, grid):
    """The patch search finds exactly the cells of the exhaustive definition: same dtype, order, bits."""
    got, ref = ab_bins.gamut_bins(grid), _reference_gamut_bins(surface_ab, grid)
    assert got.dtype == ref.dtype == np.float32 and got.shape == ref.shape
    assert got.tobytes() == ref.tobytes()
    assert not got.flags.writeable and ab_bins.gamut_bins(grid) is got      # cached, read-only


def test_gamut_bins_have_the_documented_count(bins):
    assert len(bins) == 261
    for doc in (ab_bins.__doc__, ab_bins.gamut_bins.__doc__):
        assert "Q = 261 for grid 10" in " ".join(doc.split())


def test_every_bin_holds_an_srgb_color(bins):
    """Independently of how the bins were found: some (L, a, b) in each cell survives LAB -> sRGB -> LAB."""
    offsets = np.linspace(-5, 5, 11)
    L = np.linspace(1, 99, 50)
    grid = np.stack(np.meshgrid(L, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)   # (L, da, db)
    lab = np.repeat(grid[None], len(bins), 0)                                             # (Q, M, 3)
    lab[..., 1:] += bins[:, None, :]
    back = colorspace.rgb_to_lab(colorspace.lab_to_rgb(lab.astype(np.float32)))
    representable = np.abs(back - lab).max(-1) < 0.5      # lab_to_rgb clips out-of-gamut colors
    assert representable.any(axis=1).all()


def test_a_cell_outside_the_gamut_is_not_a_bin(bins):
    as_set = {tuple(b) for b in bins.astype(int)}
    assert (100, -100) not in as_set and (-100, -100) not in as_set   # saturated magenta-blue, green-blue
    assert (0, 0) in as_set


def test_soft_encoding_sums_to_one_on_the_5_nearest(bins):
    ab = np.random.default_rng(0).uniform(-80, 80, (500, 2)).astype(np.float32)
    soft = ab_bins.soft_encode(ab, bins)
    np.testing.assert_allclose(soft.sum(-1), 1.0, atol=1e-5)
    assert np.all((soft > 0).sum(-1) == 5)
    # the weights fall with the distance: the nearest bin weighs the most
    d2 = ((ab[:, None] - bins) ** 2).sum(-1)
    assert np.all(soft.argmax(-1) == d2.argmin(-1))
    # a point on a bin center: Gaussian sigma 5 against neighbours 10 away, exp(-2)
    one = ab_bins.soft_encode(np.array([[0.0, 0.0]], np.float32), bins)[0]
    assert one.max() == pytest.approx(1 / (1 + 4 * np.exp(-2)), rel=1e-5)


def test_packed_targets_equal_the_soft_encoding(bins):
    ab = np.random.default_rng(1).uniform(-110, 110, (3000, 2)).astype(np.float32)
    weights = np.arange(len(bins), dtype=np.float32)
    packed = ab_bins.pack_targets(ab.reshape(30, 100, 2), weights).reshape(-1, 11)
    index = packed[:, :5].astype(int)
    np.testing.assert_array_equal(index, ab_bins.nearest_bins(ab, bins, 5))   # exact 5 nearest, nearest first
    soft = ab_bins.soft_encode(ab, bins)
    np.testing.assert_allclose(packed[:, 5:10], np.take_along_axis(soft, index, -1), atol=1e-4)
    np.testing.assert_array_equal(packed[:, 10], weights[index[:, 0]])


def test_annealed_mean_is_the_expectation_at_t1_and_the_mode_as_t_falls(bins):
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.full(len(bins), 0.3), size=20)
    probs[np.arange(20), probs.argmax(-1)] *= 2          # a clear mode (no near-ties)
    probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float32)
    np.testing.assert_allclose(ab_bins.annealed_mean(probs, bins, 1.0), probs @ bins, atol=1e-3)
    mode = bins[probs.argmax(-1)]
    gaps = [np.abs(ab_bins.annealed_mean(probs, bins, t) - mode).max() for t in (1.0, 0.38, 0.1, 0.01)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3
    with pytest.raises(ValueError, match="positive"):
        ab_bins.annealed_mean(probs, bins, 0.0)


def test_rebalancing_weights_have_mean_1_and_favor_rare_bins(bins):
    # a distribution dominated by the grayish bins, as in photos
    p = np.exp(-(bins ** 2).sum(-1) / (2 * 15.0 ** 2))
    p /= p.sum()
    w = ab_bins.rebalancing_weights(p, bins)
    smoothed = ab_bins.smoothed_distribution(p, bins)
    assert float((smoothed * w).sum()) == pytest.approx(1.0, abs=1e-5)   # mean 1 over the training pixels
    gray = np.flatnonzero((bins == 0).all(-1))[0]
    saturated = np.argmax((bins ** 2).sum(-1))
    assert w[saturated] > 1.5 > 1 > w[gray]
    # lambda 1 (pure uniform prior) gives equal weights
    np.testing.assert_allclose(ab_bins.rebalancing_weights(p, bins, lam=1.0), 1.0, rtol=1e-5)


def test_empirical_distribution_counts_nearest_bins(bins):
    ab = np.array([[0.0, 0.0], [1.0, -2.0], [38.0, 41.0]], np.float32)
    p = ab_bins.empirical_distribution(ab, bins)
    assert p.sum() == pytest.approx(1.0)
    assert p[np.flatnonzero((bins == (0, 0)).all(-1))[0]] == pytest.approx(2 / 3)
    assert p[np.flatnonzero((bins == (40, 40)).all(-1))[0]] == pytest.approx(1 / 3)
