import numpy as np
import pytest
import skimage.color

from core import colorspace as cs


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)


def test_round_trip_rgb_lab_rgb(rgb):
    back = cs.to_uint8(cs.lab_to_rgb(cs.rgb_to_lab(rgb)))
    assert np.abs(back.astype(int) - rgb).max() <= 1


def test_rgb_to_lab_matches_skimage(rgb):
    assert np.abs(cs.rgb_to_lab(rgb) - skimage.color.rgb2lab(rgb)).max() < 1e-4
    # float input takes the non-lookup-table path
    assert np.abs(cs.rgb_to_lab(rgb / 255.0) - skimage.color.rgb2lab(rgb)).max() < 1e-4


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack([rng.uniform(0, 100, 2000), rng.uniform(-128, 127, 2000), rng.uniform(-128, 127, 2000)], -1)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # skimage warns about negative Z values
            ref = skimage.color.lab2rgb(lab)
    assert np.abs(cs.lab_to_rgb(lab) - ref).max() < 1e-4


def test_known_values():
    lab = cs.rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)   # skimage: (100, -0.0024, 0.0047)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-3)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.01)   # sRGB red, textbook value


def test_gray_decodes_to_equal_channels(rgb):
    lab = cs.rgb_to_lab(rgb)
    lab[..., 1:] = 0
    out = cs.lab_to_rgb(lab)
    assert np.abs(out[..., 0] - out[..., 1]).max() < 1e-6
    assert np.abs(out[..., 1] - out[..., 2]).max() < 1e-6
    np.testing.assert_allclose(cs.gray_rgb(rgb), out, atol=1e-4)


def test_lab_encoding_ranges_and_inverse(rgb):
    x, y = cs.encode_lab(rgb)
    assert x.shape == (16, 32, 32, 1) and y.shape == (16, 32, 32, 2)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1 and y.min() >= 0 and y.max() <= 1
    lab = cs.rgb_to_lab(rgb)
    np.testing.assert_allclose(x[..., 0], lab[..., 0] / 100, atol=1e-6)
    np.testing.assert_allclose(y, (lab[..., 1:] + 128) / 255, atol=1e-6)
    assert np.abs(cs.to_uint8(cs.decode_lab(x, y)).astype(int) - rgb).max() <= 1


def test_rgb_encoding_for_gan(rgb):
    color, gray3 = cs.encode_rgb(rgb)
    assert color.shape == gray3.shape == (16, 32, 32, 3)
    assert color.min() >= -1 and color.max() <= 1 and gray3.min() >= -1 and gray3.max() <= 1
    np.testing.assert_allclose(color, rgb / 127.5 - 1, atol=1e-6)
    assert np.array_equal(gray3[..., 0], gray3[..., 2])
    assert np.array_equal(cs.to_uint8(cs.decode_rgb(color)), rgb)


def test_symmetric_lab_encoding(rgb):
    l_sym, ab_sym = cs.encode_lab_symmetric(rgb)
    assert l_sym.min() >= -1 and l_sym.max() <= 1 and np.abs(ab_sym).max() <= 1
    assert np.abs(cs.to_uint8(cs.decode_lab_symmetric(l_sym, ab_sym)).astype(int) - rgb).max() <= 1


def test_batch_shapes_are_preserved():
    one = np.full((3,), 128, np.uint8)
    assert cs.rgb_to_lab(one).shape == (3,)
    assert cs.rgb_to_lab(np.zeros((2, 3, 4, 5, 3), np.uint8)).shape == (2, 3, 4, 5, 3)


def test_conversions_are_the_same_across_block_boundaries():
    # 3 x 100 x 100 = 30,000 pixels: two blocks of cs._BLOCK (16,384) and a partial third.
    rgb = np.random.default_rng(2).integers(0, 256, (3, 100, 100, 3), dtype=np.uint8)
    assert rgb[..., 0].size > cs._BLOCK
    lab = cs.rgb_to_lab(rgb)
    np.testing.assert_allclose(lab, skimage.color.rgb2lab(rgb), atol=1e-4)
    x, y = cs.encode_lab(rgb)
    assert x.shape == (3, 100, 100, 1) and y.shape == (3, 100, 100, 2)
    np.testing.assert_allclose(x, lab[..., :1] / 100, atol=1e-6)
    np.testing.assert_allclose(y, (lab[..., 1:] + 128) / 255, atol=1e-6)
    pixelwise = np.stack([cs.lab_to_rgb(lab[i, j]) for i in range(3) for j in range(100)])
    np.testing.assert_array_equal(cs.lab_to_rgb(lab), pixelwise.reshape(rgb.shape))
