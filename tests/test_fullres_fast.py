"""inference.fullres's full-size steps (photos and video frames): the same result as core.colorspace's path.

The old path, computed here from its parts: L from colorspace.rgb_to_lab, the guided filter's
coefficients with A and B enlarged by Pillow (one full-size bilinear resize), fit_gamut on every pixel,
colorspace.lab_to_rgb and to_uint8. fullres.recombine must stay within 1 level of 8 bits of it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import colorspace, guided
from inference import fullres

ODD_SHAPES = [(1, 1), (1, 7), (7, 1), (13, 29), (301, 397)]


def photo(size=(613, 409)) -> np.ndarray:
    """A photo-like (H, W, 3) uint8: scikit-image's chelsea (offline), enlarged to an odd size."""
    skimage_data = pytest.importorskip("skimage.data")
    return np.asarray(Image.fromarray(skimage_data.chelsea()).resize(size, Image.BILINEAR))


def pillow_enlarge(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(plane, np.float32)).resize((w, h), Image.BILINEAR))


def old_recombine(rgb: np.ndarray, ab_small: np.ndarray) -> np.ndarray:
    """The photo path before OpenCV: (H, W, 3) uint8 from core.colorspace's conversions."""
    h, w = rgb.shape[:2]
    L = colorspace.rgb_to_lab(rgb)[..., 0]
    A, B = guided.coefficients(guided.downsample_guide(L, ab_small.shape[:2]), ab_small)
    lab = np.empty((h, w, 3), np.float32)
    lab[..., 0] = L
    for c in range(2):
        lab[..., 1 + c] = pillow_enlarge(A[..., c], h, w) * L + pillow_enlarge(B[..., c], h, w)
    return colorspace.to_uint8(colorspace.lab_to_rgb(fullres.fit_gamut(lab)))


def old_in_gamut(lab: np.ndarray) -> np.ndarray:
    """in_gamut as it was written before the bisection kept Y's terms (the reference for bit equality)."""
    m = fullres._xyzn_to_linear()
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / 7.787)
    ok = np.ones(lab.shape[:-1], bool)
    for c in range(3):
        lin = xyz[..., 0] * m[0, c] + xyz[..., 1] * m[1, c] + xyz[..., 2] * m[2, c]
        ok &= (lin >= -1e-4) & (lin <= 1.0 + 1e-4)
    return ok


def old_fit_gamut(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """fit_gamut as it was written before, on old_in_gamut."""
    inside = old_in_gamut
    flat = lab.reshape(-1, 3)
    idx = np.flatnonzero(~inside(flat))
    if len(idx) == 0:
        return lab
    sub = flat[idx]
    lo, hi = np.zeros(len(idx), np.float32), np.ones(len(idx), np.float32)
    trial = sub.copy()
    for _ in range(steps):
        mid = (lo + hi) * np.float32(0.5)
        trial[:, 1:] = sub[:, 1:] * mid[:, None]
        ok = inside(trial)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    flat = flat.copy()
    flat[idx, 1:] = sub[:, 1:] * lo[:, None]
    return flat.reshape(lab.shape)


# ---- lightness --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_lightness_is_colorspaces_L(shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    L = fullres.lightness(rgb)
    assert L.shape == shape and L.dtype == np.float32
    np.testing.assert_allclose(L, colorspace.rgb_to_lab(rgb)[..., 0], atol=1e-3, rtol=0)


def test_lightness_of_every_gray_and_primary_and_in_strips(monkeypatch):
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.stack([np.stack([levels] * 3, -1),                                 # grays, black to white
                    np.stack([levels, 0 * levels, 0 * levels], -1),              # red, green, blue ramps
                    np.stack([0 * levels, levels, 0 * levels], -1),
                    np.stack([0 * levels, 0 * levels, levels], -1)])             # (4, 256, 3)
    expected = colorspace.rgb_to_lab(rgb)[..., 0]
    np.testing.assert_allclose(fullres.lightness(rgb), expected, atol=1e-3, rtol=0)
    monkeypatch.setattr(fullres, "STRIP_PIXELS", 300)                            # strips of one row
    np.testing.assert_allclose(fullres.lightness(rgb), expected, atol=1e-3, rtol=0)
    assert fullres.lightness(rgb).min() >= 0 and fullres.lightness(rgb).max() <= 100 + 1e-3
    with pytest.raises(TypeError):
        fullres.lightness(rgb / 255.0)                                           # floats: colorspace's to take


# ---- recombine against the old path -------------------------------------------------------------------

@pytest.mark.parametrize("chroma", [40, 90])
def test_recombine_is_the_old_path_to_one_level(chroma, monkeypatch):
    """Random ab in [-chroma, chroma] at 22 x 32 on a photo: 40 is a photo's range, 90 mostly outside sRGB.

    Measured: 0.08 % / 0.26 % of the pixels differ, by 1 level; with chroma 90, 2 of 250,000 pixels by 2:
    colors fit to sRGB's edge with a channel near 0, where fit_gamut's bisection (steps of chroma / 256)
    takes the other side of a step for an L 1e-5 apart and the sRGB curve is steepest (12.92 x).
    """
    rgb = photo()
    ab_small = np.random.default_rng(chroma).uniform(-chroma, chroma, (22, 32, 2)).astype(np.float32)
    old = old_recombine(rgb, ab_small).astype(int)
    monkeypatch.setattr(fullres, "STRIP_PIXELS", 613 * 50 + 7)                   # several strips
    new, gray = fullres.recombine(rgb, ab_small)
    assert new.shape == rgb.shape and new.dtype == np.uint8 and gray is None
    diff = np.abs(new - old).max(-1)
    assert (diff > 0).mean() <= 0.005, f"{(diff > 0).mean():.2%} of the pixels differ"
    if chroma <= 40:
        assert diff.max() <= 1
    else:
        assert diff.max() <= 2 and (diff > 1).sum() <= 5


def test_recombine_keeps_its_arguments_and_gives_the_gray():
    rgb = photo((97, 61))
    ab_small = np.random.default_rng(1).uniform(-40, 40, (8, 16, 2)).astype(np.float32)
    L = fullres.lightness(rgb)
    guide = guided.downsample_guide(L, (8, 16))
    before = (rgb.copy(), ab_small.copy(), L.copy())
    out, gray = fullres.recombine(rgb, ab_small, with_gray=True, L=L, guide_small=guide)
    np.testing.assert_array_equal(out, fullres.recombine(rgb, ab_small)[0])
    for kept, was in zip((rgb, ab_small, L), before):
        np.testing.assert_array_equal(kept, was)
    np.testing.assert_array_equal(gray, colorspace.to_uint8(colorspace.gray_rgb(rgb)))


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_gray_is_colorspaces_bit_for_bit(shape):
    rgb = np.random.default_rng(len(shape) + shape[0]).integers(0, 256, shape + (3,), dtype=np.uint8)
    np.testing.assert_array_equal(fullres._gray_uint8(rgb), colorspace.to_uint8(colorspace.gray_rgb(rgb)))


# ---- the gamut ------------------------------------------------------------------------------------------

def wild_lab(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 100, n), rng.uniform(-130, 130, n), rng.uniform(-130, 130, n)],
                    -1).astype(np.float32)


def test_fit_gamut_is_the_old_bisection_bit_for_bit():
    lab = wild_lab(20000, 0)
    np.testing.assert_array_equal(fullres.fit_gamut(lab), old_fit_gamut(lab))
    np.testing.assert_array_equal(fullres.in_gamut(lab), old_in_gamut(lab))


def test_fit_of_a_strip_is_fit_gamut_and_inside_sRGB():
    lab = wild_lab(300 * 41, 1).reshape(300, 41, 3)
    fitted = fullres._fit_gamut_planes(np.ascontiguousarray(lab[..., 0]), np.ascontiguousarray(lab[..., 1]),
                                       np.ascontiguousarray(lab[..., 2]))
    assert fitted.shape == lab.shape and fitted.dtype == np.float32
    np.testing.assert_array_equal(fitted, fullres.fit_gamut(lab))
    assert fullres.in_gamut(fitted).all()
    assert (~fullres.in_gamut(lab)).mean() > 0.5                                 # the test has colors to fit


def test_the_safe_chroma_is_inside_sRGB_at_every_hue():
    """The gate of _fit_gamut_planes: a chroma at the table's value is inside at any L of its row, any hue."""
    rng = np.random.default_rng(2)
    L = np.concatenate([rng.uniform(0, 100, 200000), np.linspace(0, 100, 20001)]).astype(np.float32)
    hue = rng.uniform(0, 2 * np.pi, len(L)).astype(np.float32)
    row = np.rint(L * fullres.SAFE_BINS).astype(int)
    chroma = fullres._safe_chroma()[row]
    lab = np.stack([L, chroma * np.cos(hue), chroma * np.sin(hue)], -1)
    assert fullres.in_gamut(lab).all()
    assert fullres._safe_chroma().max() > 20                                     # and the gate lets most colors by


def test_recombine_of_wild_chroma_stays_inside_sRGB():
    """ab far outside sRGB: the output's colors are fit (converted back, within 8-bit rounding of inside)."""
    rgb = photo((131, 77))
    ab_small = np.empty((32, 32, 2), np.float32)
    ab_small[..., 0] = np.linspace(-120, 120, 32)[None, :]
    ab_small[..., 1] = np.linspace(120, -120, 32)[:, None]
    out, _ = fullres.recombine(rgb, ab_small)
    back = colorspace.rgb_to_lab(out)
    assert np.abs(back[..., 0] - colorspace.rgb_to_lab(rgb)[..., 0]).max() < 1.0   # L kept: nothing was clipped


# ---- one implementation ---------------------------------------------------------------------------------

def test_fullres_does_not_import_video_and_video_has_no_copy():
    tree = ast.parse(Path(fullres.__file__).read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
             for alias in node.names} | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name and "video" in name for name in names)
    from inference import video
    for name in ("lightness", "recombine", "lab_to_uint8", "_fit_gamut_strip", "_safe_chroma", "_linear_lut"):
        assert not hasattr(video, name), name
