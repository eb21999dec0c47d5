"""colorize.py: full-resolution colorization of arbitrary image files."""
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import colorize
from inference import Colorizer, fullres, photos
from core import colorspace
from conftest import ROOT, SAMPLE


def lightness(rgb) -> np.ndarray:
    return colorspace.rgb_to_lab(np.asarray(rgb))[..., 0]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit gray
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


@pytest.fixture
def inputs(tmp_path):
    """A folder: a 97x203 color PNG, a grayscale JPEG, a truncated PNG, a text file named .png, a .txt."""
    folder = tmp_path / "in"
    (folder / "broken").mkdir(parents=True)
    Image.open(SAMPLE / "val" / "img-10-horse.png").convert("RGB").resize((97, 203), Image.BICUBIC) \
        .save(folder / "color.png")
    Image.open(SAMPLE / "val" / "img-1-ship.png").convert("L").resize((150, 64), Image.BICUBIC) \
        .save(folder / "gray.jpg", quality=92)
    data = (folder / "color.png").read_bytes()
    (folder / "broken" / "truncated.png").write_bytes(data[:len(data) // 2])
    (folder / "broken" / "notes.png").write_text("not an image, just a renamed text file\n")
    (folder / "readme.txt").write_text("ignored: not an image file name\n")
    return folder


class FakeColorizer:
    """Stands in for inference.Colorizer (its photo path is the real one): every pixel predicted as one
    color; records the labels."""
    image_size = 32
    flexible_size = False
    takes_hints = False
    colorize_photo = Colorizer.colorize_photo

    def working_shape(self, full_hw, long_side=None):
        return 32, 32                                             # the photo squashed, as a fixed-size model

    def __init__(self, rgb=(0.9, 0.2, 0.1)):
        self.rgb = np.asarray(rgb, np.float32)
        self.labels = []

    def colorize(self, images, labels=None, hints=None):
        assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
        assert (images[..., 0] == images[..., 2]).all()           # the model is given gray only
        self.labels.append(labels)
        return np.broadcast_to(self.rgb, images.shape).copy()


# ---- the command ----------------------------------------------------------------------

def test_colorize_keeps_size_and_lightness_and_reports_bad_files(unet_run, inputs, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "colorize.py", "-m", "unet", "--run-dir", str(unet_run),
                             str(inputs), "--out", str(out), "--compare"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr   # some files failed
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in result.stderr
    truncated = next(e for e in errors if "truncated.png" in e)
    notes = next(e for e in errors if "notes.png" in e)
    assert str(inputs / "broken" / "truncated.png") in truncated and "cannot decode" in truncated
    assert str(inputs / "broken" / "notes.png") in notes and "not an image" in notes
    assert "readme.txt" not in result.stderr                    # folders contribute image files only
    assert "colorized 2 of 4" in result.stdout

    for name, stem in (("color.png", "color"), ("gray.jpg", "gray")):
        source = Image.open(inputs / name)
        colored = Image.open(out / f"{stem}.png")
        assert colored.size == source.size and colored.mode == "RGB"   # (97, 203) and (150, 64)
        # the lightness is the input's own, at full resolution: equal up to 8-bit rounding
        diff = np.abs(lightness(colored) - lightness(source.convert("RGB")))
        assert diff.max() < 1.0, (name, diff.max())
        rgb = np.asarray(colored).astype(int)
        assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 2           # and it has color
        pair = np.asarray(Image.open(out / f"{stem}-compare.png"))
        w, h = source.size
        assert pair.shape == (h, 2 * w + photos.COMPARE_GAP, 3)
        assert (pair[:, w + photos.COMPARE_GAP:] == np.asarray(colored)).all()   # right: colorized
        left = pair[:, :w].astype(int)
        assert (left[..., 0] == left[..., 1]).all()                    # left: the gray input
    assert not (out / "broken").exists()                               # nothing written for bad files


def test_fusion_label_without_label_is_a_one_line_usage_error(inputs, capsys):
    from cli import errors as cli

    assert cli.run_main(colorize.main, ["-m", "fusion_label", str(inputs / "color.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--label" in err and "airplane" in err
    with pytest.raises(SystemExit) as exit_info:
        colorize.parse_args(["-m", "fusion_label", "--label", "spaceship", str(inputs / "color.png")])
    assert exit_info.value.code == 2


# ---- bad inputs ------------------------------------------------------------------------

def test_huge_images_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", photos.MAX_PIXELS)   # as main sets it
    over = tmp_path / "over.png"
    over.write_bytes(png_header_only(8000, 6000))            # 48 MP: above our limit, below Pillow's
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(100_000, 100_000))      # 10 gigapixels in ~100 bytes
    with pytest.raises(photos.InputError, match=r"over.png: 8000x6000 is 48.0 megapixels, above the limit"):
        photos.read_full(over)
    with pytest.raises(photos.InputError, match=r"bomb.png: refused, too many pixels"):
        photos.read_full(bomb)


def test_collect_jobs_reports_missing_and_empty_and_keeps_names_unique(tmp_path):
    a, b, empty = tmp_path / "a", tmp_path / "b", tmp_path / "empty"
    for d in (a / "deep", b, empty):
        d.mkdir(parents=True)
    for path in (a / "x.png", b / "x.jpg", a / "deep" / "y.png"):
        Image.new("RGB", (8, 8)).save(path)
    out = tmp_path / "out"
    jobs, errors = photos.collect_jobs([a / "x.png", b / "x.jpg", a, tmp_path / "missing.png", empty], out)
    assert errors == [f"{tmp_path / 'missing.png'}: no such file or folder",
                      f"{empty}: no image files (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp) in this folder"]
    # a/x.png given twice (alone and in its folder) is done once; b/x.jpg must not overwrite it
    assert [(j.source, j.out) for j in jobs] == [(a / "x.png", out / "x.png"), (b / "x.jpg", out / "x-2.png"),
                                                 (a / "deep" / "y.png", out / "deep" / "y.png")]
    # writing next to the inputs never overwrites an input PNG
    jobs, _ = photos.collect_jobs([a / "x.png"], a)
    assert jobs[0].out == a / "x-2.png"


def test_one_bad_file_does_not_stop_the_others(inputs, tmp_path, capsys):
    jobs, _ = photos.collect_jobs([inputs], tmp_path / "out")
    fake = FakeColorizer()
    n_done, errors = photos.colorize_files(fake, jobs, label=None, compare=False)
    assert n_done == 2 and len(errors) == 2
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["color.png", "gray.png"]
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    assert len(fake.labels) == 2                                 # one model call per image (each decoded once)


# ---- the recombination ----------------------------------------------------------------

def test_predicted_chroma_is_taken_from_rgb_output_and_labels_passed():
    fake = FakeColorizer(rgb=(0.2, 0.6, 0.3))
    rgb = np.full((40, 70, 3), 120, np.uint8)                     # flat gray: the chroma comes back as predicted
    out, _ = fake.colorize_photo(rgb, label=4)
    expected = colorspace.rgb_to_lab(np.array([0.2, 0.6, 0.3], np.float32))[1:]
    ab = colorspace.rgb_to_lab(out)[..., 1:]
    assert np.abs(ab - expected).max() < 1.5                       # 8-bit rounding of the output
    np.testing.assert_array_equal(fake.labels[0], [4])


def test_recombine_in_strips_equals_one_pass_and_keeps_lightness(monkeypatch):
    rng = np.random.default_rng(0)
    rgb = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)).resize((131, 77)))
    ab_small = np.empty((32, 32, 2), np.float32)
    ab_small[..., 0] = np.linspace(-90, 90, 32)[None, :]         # far outside sRGB at many lightnesses
    ab_small[..., 1] = np.linspace(90, -90, 32)[:, None]
    whole, _ = fullres.recombine(rgb, ab_small)
    monkeypatch.setattr(fullres, "STRIP_PIXELS", 500)           # strips of 3 rows
    strips, gray = fullres.recombine(rgb, ab_small, with_gray=True)
    assert whole.shape == rgb.shape
    assert np.abs(whole.astype(int) - strips).max() <= 1         # float rounding may flip a last bit
    assert np.abs(lightness(strips) - lightness(rgb)).max() < 1.0
    np.testing.assert_array_equal(gray, colorspace.to_uint8(colorspace.gray_rgb(rgb)))


def test_fit_gamut_keeps_lightness_and_hue_and_leaves_sRGB_colors_alone():
    rng = np.random.default_rng(3)
    real = colorspace.rgb_to_lab(rng.integers(0, 256, (1000, 3), dtype=np.uint8))
    assert fullres.in_gamut(real).all()
    np.testing.assert_array_equal(fullres.fit_gamut(real), real)
    wild = np.array([[50, 120, -120], [95, -80, 80], [5, 60, 60], [100, 0, 0], [0, 0, 0]], np.float32)
    fitted = fullres.fit_gamut(wild)
    assert fullres.in_gamut(fitted).all()
    np.testing.assert_array_equal(fitted[:, 0], wild[:, 0])     # L untouched
    np.testing.assert_allclose(fitted[:3, 1] * wild[:3, 2], fitted[:3, 2] * wild[:3, 1], atol=1e-3)   # same hue
    back = colorspace.rgb_to_lab(colorspace.lab_to_rgb(fitted))
    assert np.abs(back[:, 0] - wild[:, 0]).max() < 0.05           # so lab_to_rgb no longer shifts L
