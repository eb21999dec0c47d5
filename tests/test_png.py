"""inference.png: the multi-core PNG encoder gives files that Pillow and OpenCV decode to the same pixels."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from inference import png


def _decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        im.load()
        return np.asarray(im)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2 ** 16))
def test_any_small_image_round_trips(h, w, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decoded(png.encode_rgb(rgb)), rgb)


@pytest.mark.parametrize("bands", [2, 3, 7])
def test_an_image_cut_into_bands_is_one_valid_stream(monkeypatch, bands):
    """The bands' deflate blocks join into one zlib stream (checksum over all rows): Pillow, OpenCV and zlib
    itself read the rows back, also where a band boundary falls inside smooth and random content."""
    monkeypatch.setattr(png, "WORKERS", bands)
    monkeypatch.setattr(png, "MIN_BAND_BYTES", 1)
    monkeypatch.setattr(png, "_POOL", None)
    rng = np.random.default_rng(3)
    rgb = np.zeros((101, 67, 3), np.uint8)
    rgb[:50] = np.linspace(0, 255, 67, dtype=np.uint8)[None, :, None]       # smooth: long runs after the filter
    rgb[50:] = rng.integers(0, 256, (51, 67, 3), dtype=np.uint8)             # noise: no runs
    data = png.encode_rgb(rgb)
    np.testing.assert_array_equal(_decoded(data), rgb)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], rgb)
    # the IDAT payload is one zlib stream whose checksum zlib verifies: 101 scanlines of 1 + 67 x 3 bytes
    idat_len = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    assert len(zlib.decompress(data[41:41 + idat_len])) == 101 * (1 + 67 * 3)


def test_a_large_image_uses_several_bands_and_is_small(monkeypatch):
    """On 2+ cores a 2-megapixel image is cut into bands; a smooth image compresses well (the 'up' filter)."""
    monkeypatch.setattr(png, "WORKERS", 2)
    monkeypatch.setattr(png, "_POOL", None)
    y, x = np.mgrid[0:1000, 0:2000]
    rgb = np.stack([(x // 8) % 256, (y // 4) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
    seen = []
    real = png._band
    monkeypatch.setattr(png, "_band", lambda *a: seen.append(a[1:3]) or real(*a))
    data = png.encode_rgb(rgb)
    np.testing.assert_array_equal(_decoded(data), rgb)
    assert sorted(seen) == [(0, 500), (500, 1000)]
    assert len(data) < rgb.nbytes / 20


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_anything_but_8_bit_rgb_is_refused(bad):
    with pytest.raises(ValueError, match="uint8"):
        png.encode_rgb(bad)
