"""evaluation/metrics.py against values worked out by hand."""
import math
import warnings

import numpy as np
import pytest

from core import colorspace
from evaluation import metrics


def two_images():
    """true: two 2x2 RGB images of zeros (M = 2*2*3 = 12 values each).

    pred[0]: one value is 10, the other 11 are 0  -> squared errors sum 100, abs errors sum 10
    pred[1]: every value is 1                      -> squared errors sum 12,  abs errors sum 12
    """
    true = np.zeros((2, 2, 2, 3), np.uint8)
    pred = true.copy()
    pred[0, 0, 0, 0] = 10
    pred[1] = 1
    return pred, true


def test_psnr_per_image_mean_and_pooled_by_hand():
    pred, true = two_images()
    # MSE_0 = 100 / 12 = 8.3333;  PSNR_0 = 10 log10(65025 / 8.3333) = 10 log10(7803) = 38.9226 dB
    # MSE_1 = 12 / 12 = 1;        PSNR_1 = 10 log10(65025) = 20 log10(255)   = 48.1308 dB
    np.testing.assert_allclose(metrics.mse_per_image(pred, true), [100 / 12, 1.0])
    np.testing.assert_allclose(metrics.psnr_per_image(pred, true), [38.92262, 48.13080], atol=1e-4)
    # mean of per-image PSNR: (38.9226 + 48.1308) / 2 = 43.5267 dB
    report = metrics.report(pred, true)
    assert report["psnr"] == pytest.approx(43.52671, abs=1e-4)
    # pooled: MSE = (8.3333 + 1) / 2 = 4.6667;  10 log10(65025 / 4.6667) = 10 log10(13933.9) = 41.4407 dB
    assert metrics.psnr_pooled(pred, true) == pytest.approx(41.44074, abs=1e-4)
    assert report["psnr_pooled"] == pytest.approx(41.44074, abs=1e-4)
    assert report["psnr_n_capped"] == 0


def test_psnr_accepts_float_0_255_like_uint8():
    pred, true = two_images()
    np.testing.assert_allclose(metrics.psnr_per_image(pred.astype(np.float32), true.astype(np.float64)),
                               metrics.psnr_per_image(pred, true))


def test_mae_by_hand():
    pred, true = two_images()
    # image 0: 10 / 12 / 255 = 0.0032680;  image 1: 12 / 12 / 255 = 0.0039216;  mean 0.0035948
    np.testing.assert_allclose(metrics.mae_per_image(pred, true), [10 / 12 / 255, 1 / 255])
    assert metrics.report(pred, true)["mae"] == pytest.approx(0.0035948, abs=1e-7)


def test_identical_images_give_the_capped_psnr_without_warning_or_nan():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no divide-by-zero RuntimeWarning either
        psnr = metrics.psnr_per_image(images, images)
        report = metrics.report(images, images)
    np.testing.assert_array_equal(psnr, [metrics.PSNR_CAP_DB] * 3)
    assert report["psnr"] == report["psnr_pooled"] == metrics.PSNR_CAP_DB == 100.0
    assert report["psnr_n_capped"] == 3 and report["mae"] == 0.0
    # one identical image among others: capped value enters the mean, the count says so
    other = images.copy()
    other[1:] ^= 1                                # images 1, 2: every value off by 1 -> 48.1308 dB
    report = metrics.report(other, images)
    assert report["psnr_n_capped"] == 1
    assert report["psnr"] == pytest.approx((100.0 + 2 * 48.13080) / 3, abs=1e-4)
    assert all(math.isfinite(v) for k, v in report.items() if k != "per_class")


def test_ssim_of_identical_images_is_one_and_drops_for_different_ones():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(metrics.ssim_per_image(images, images), [1.0, 1.0])
    noisy = np.clip(images.astype(int) + rng.integers(-40, 41, images.shape), 0, 255).astype(np.uint8)
    assert np.all(metrics.ssim_per_image(noisy, images) < 0.99)


def test_ssim_uses_skimage_defaults_with_data_range_255():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 256, (2, 1, 12, 12, 3), dtype=np.uint8)
    expected = structural_similarity(a[0].astype(float), b[0].astype(float), channel_axis=-1, data_range=255)
    assert metrics.ssim_per_image(a, b)[0] == pytest.approx(expected)


def test_colorfulness_of_gray_is_zero():
    gray = np.repeat(np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1), 3, axis=-1)   # R = G = B, varying
    assert metrics.colorfulness_per_image(gray)[0] == 0.0


def test_colorfulness_of_one_color_by_hand():
    # every pixel (200, 100, 50): rg = 100, yb = (200 + 100) / 2 - 50 = 100, both with std 0
    # CF = sqrt(0 + 0) + 0.3 * sqrt(100^2 + 100^2) = 0.3 * 141.4214 = 42.4264
    image = np.empty((1, 4, 4, 3), np.uint8)
    image[...] = (200, 100, 50)
    assert metrics.colorfulness_per_image(image)[0] == pytest.approx(42.42641, abs=1e-4)


def test_colorfulness_of_a_two_color_image_by_hand():
    # half the pixels pure red (255, 0, 0), half pure blue (0, 0, 255):
    #   rg: red 255, blue 0        -> mean 127.5,  std 127.5
    #   yb: red 127.5 - 0 = 127.5, blue 0 - 255 = -255 -> mean -63.75, std 191.25
    # CF = sqrt(127.5^2 + 191.25^2) + 0.3 sqrt(127.5^2 + 63.75^2)
    #    = sqrt(52832.8125) + 0.3 sqrt(20320.3125) = 229.8539 + 0.3 * 142.5493 = 272.6187
    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[0, :2, :, 0] = 255
    image[0, 2:, :, 2] = 255
    assert metrics.colorfulness_per_image(image)[0] == pytest.approx(272.61869, abs=1e-4)


def test_report_colorfulness_delta_and_per_class():
    red_blue = np.zeros((1, 4, 4, 3), np.uint8)
    red_blue[0, :2, :, 0] = 255
    red_blue[0, 2:, :, 2] = 255
    gray = np.full((1, 4, 4, 3), 128, np.uint8)
    pred = np.concatenate([gray, red_blue])       # image 0 predicted gray, image 1 perfect
    true = np.concatenate([red_blue, red_blue])
    report = metrics.report(pred, true, labels=np.array([3, -1]))
    # CF_pred = (0 + 272.6187) / 2, CF_true = 272.6187, delta = -136.3093
    assert report["colorfulness"] == pytest.approx(136.30935, abs=1e-4)
    assert report["colorfulness_true"] == pytest.approx(272.61869, abs=1e-4)
    assert report["colorfulness_delta"] == pytest.approx(-136.30935, abs=1e-4)
    assert list(report["per_class"]) == ["cat"]   # label -1 counts overall, in no class
    cat = report["per_class"]["cat"]
    assert cat["n_images"] == 1 and cat["colorfulness"] == 0.0 and cat["psnr"] < 100
    assert report["psnr_n_capped"] == 1            # image 1 is identical


def test_report_quantizes_float_predictions_to_8_bit():
    true = np.full((1, 8, 8, 3), 100, np.uint8)
    pred = np.full((1, 8, 8, 3), 100.4 / 255, np.float32)   # rounds to 100: identical after saving
    assert metrics.report(pred, true)["psnr_n_capped"] == 1


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        metrics.report(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 9, 3), np.uint8))


def test_headline_psnr_leaves_out_originals_without_color():
    """A gray original gives the gray baseline 100 dB; the headline mean is over originals with color."""
    rng = np.random.default_rng(3)
    color = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    gray = np.repeat(rng.integers(0, 256, (1, 8, 8, 1), dtype=np.uint8), 3, axis=-1)   # R = G = B
    almost = gray.copy()
    almost[0, 0, 0, 0] += 1                    # one 8-bit step: chroma below one just-noticeable difference
    true = np.concatenate([color, gray, almost])
    np.testing.assert_array_equal(metrics.has_color(true), [True, True, False, False])
    pred = colorspace.to_uint8(colorspace.gray_rgb(true))
    report = metrics.report(pred, true)
    per_image = metrics.psnr_per_image(pred, true)
    assert report["n_no_color"] == 2
    assert report["psnr_color"] == pytest.approx(per_image[:2].mean())
    assert report["psnr"] == pytest.approx(per_image.mean()) and report["psnr"] > report["psnr_color"] + 20
    assert metrics.has_color(np.full((1, 8, 8, 3), (120, 100, 100), np.uint8))[0]   # a faint but real tint
