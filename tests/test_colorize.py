"""colorize.py: full-resolution colorization of arbitrary image files."""
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import colorize
from conftest import ROOT, SAMPLE
from core import colorspace
from inference import Colorizer, fullres, photos


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
    working_ab = Colorizer.working_ab
    detail_view = staticmethod(lambda L, shape: None)   # no encoder detail
    square_view = False

    def working_shape(self, full_hw, long_side=None):
        return 32, 32                                             # the photo squashed, as a fixed-size model

    def __init__(self, rgb=(0.9, 0.2, 0.1)):
        self.rgb = np.asarray(rgb, np.float32)
        self.labels = []

    def colorize(self, images, labels=None, hints=None, detail=None):
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
                      f"{empty}: no image or video files (.avi, .bmp, .gif, .jpeg, .jpg, .mkv, .mov, .mp4, .png, .tif, "
                      ".tiff, .webm, .webp) in this folder"]
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


def test_a_truncated_photo_with_a_hints_file_is_one_line_when_its_turn_comes(inputs, tmp_path, capsys):
    """Checking the points against a truncated PNG's size: its header's (Pillow's search for EXIF after the
    pixels fails: ignored); the file's error is the decoder's one line when its turn comes, not a traceback."""
    import json
    truncated = inputs / "broken" / "truncated.png"
    (inputs / "broken" / "truncated.hints.json").write_text(
        json.dumps({"points": [{"x": 5, "y": 9, "color": "#ff0000"}]}))
    assert photos.image_size(truncated) == (97, 203)                  # the header's; the pixels are not there
    jobs, _ = photos.collect_jobs([truncated], tmp_path / "out")
    assert photos.attach_hints(jobs) == [] and jobs[0].hints.points
    assert photos.colorize_files(FakeColorizer(), jobs, None, compare=False) == (0, [f"{truncated}: cannot decode "
                                 "this image (image file is truncated); the file may be truncated or damaged"])
    assert capsys.readouterr().err.count("\n") == 1


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


# ---- video clips ---------------------------------------------------------------------------------

SHIPPED_RUN = ROOT / "pretrained" / "effnet_unet"   # explicit: a local runs/effnet_unet would be taken first


def videoset_clip(folder, name="pan", size=(48, 32), frames=6):
    """A small clip of evaluation/videoset (its JSON beside it): 24 fps, h264."""
    from evaluation import videoset
    plan = videoset.clip_plan(size, frames, photoset=None)[name]
    return videoset.write_clip(name, plan, folder, size, 24)


def truncated_clip(path, frames=24, size=(48, 32)):
    """An mp4 of noisy frames (each about as many bytes as the next) cut to half its bytes."""
    from fractions import Fraction

    from inference import video
    rng = np.random.default_rng(0)
    full = path.with_name("full-" + path.name)
    with video.ClipWriter(full, *size, Fraction(24)) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


def clip_facts(path):
    """(width, height, rate, frames decoded) of a clip."""
    from inference import video
    info = video.probe(path)
    return info.width, info.height, info.rate, sum(1 for _ in video.read_frames(path))


def test_colorize_does_a_clip_and_a_photo_of_one_folder(tmp_path):
    pytest.importorskip("av")
    folder, out = tmp_path / "in", tmp_path / "out"
    (folder / "clips").mkdir(parents=True)
    clip = videoset_clip(folder / "clips")
    Image.open(SAMPLE / "val" / "img-10-horse.png").convert("RGB").resize((60, 40)).save(folder / "photo.png")
    result = subprocess.run([sys.executable, "colorize.py", "--run-dir", str(SHIPPED_RUN), str(folder),
                             "--out", str(out), "--compare"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: --compare is for photos: ignored for the 1 clip(s)" in result.stdout
    assert "colorized 2 of 2 file(s)" in result.stdout
    assert "pan.mp4: 6/6 frames (100%)" in result.stderr and "fps" in result.stderr      # the progress line
    colored = out / "clips" / "pan.mp4"                       # the folder's structure, the clip's container
    assert clip_facts(colored) == clip_facts(clip) == (48, 32, 24, 6)
    from inference import video
    first = next(iter(video.read_frames(colored))).astype(int)
    assert np.abs(first - first.mean(-1, keepdims=True)).mean() > 1      # it has color
    assert (out / "photo.png").is_file() and (out / "photo-compare.png").is_file()
    assert not (out / "clips" / "pan-compare.mp4").exists()


def test_a_truncated_clip_is_one_error_line_and_the_other_input_is_still_done(tmp_path):
    pytest.importorskip("av")
    good = videoset_clip(tmp_path)
    bad = truncated_clip(tmp_path / "bad.mp4")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "colorize.py", "--run-dir", str(SHIPPED_RUN), str(bad), str(good),
                             "--out", str(out), "--no-stabilize"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: damaged") and "Traceback" not in result.stderr
    assert "truncated" in errors[0] and "playable" in errors[0]
    assert "colorized 1 of 2 clip(s)" in result.stdout
    assert clip_facts(out / "pan.mp4") == (48, 32, 24, 6)
    written = int(errors[0].split("wrote the ")[1].split(" frames")[0])
    assert 0 < written < 24 and clip_facts(out / "bad.mp4")[3] == written   # the part before the damage: playable


def test_a_hint_outside_the_clips_frame_is_refused_before_any_work(tmp_path, capsys):
    pytest.importorskip("av")
    from cli import errors as cli

    clip = videoset_clip(tmp_path)
    (tmp_path / "pan.hints.json").write_text('{"points": [{"x": 50, "y": 10, "color": "#ff0000"}]}')
    out = tmp_path / "out"
    assert cli.run_main(colorize.main, [str(clip), "--out", str(out), "--run-dir", str(tmp_path / "no-run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and ("pan.hints.json: point 0 (x 50, y 10) is outside the first frame of pan.mp4 "
                                "(48 x 32 pixels)") in err
    assert not out.exists()                     # refused before the run is looked for: nothing written


def test_clip_hints_are_read_and_checked_against_the_clips_size(tmp_path):
    pytest.importorskip("av")
    clip = videoset_clip(tmp_path)
    (tmp_path / "ref.png").write_bytes((SAMPLE / "val" / "img-10-horse.png").read_bytes())
    (tmp_path / "pan.hints.json").write_text('{"points": [{"x": 47, "y": 31, "color": "#ff0000"}], '
                                             '"reference": "ref.png"}')
    jobs, errors = photos.collect_jobs([clip], tmp_path / "out")
    assert not errors and photos.attach_hints(jobs) == []
    hints = jobs[0].hints
    assert jobs[0].video and len(hints.points) == 1 and hints.reference is not None


def test_collect_jobs_names_clips_by_their_container(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("x.mp4", "x.png", "y.MKV", "z.webm"):
        (folder / name).write_bytes(b"")       # names only: nothing is read but GIFs
    Image.new("RGB", (8, 8)).save(folder / "still.gif")
    Image.new("RGB", (8, 8)).save(folder / "anim.gif", save_all=True, append_images=[Image.new("RGB", (8, 8), "red")])
    jobs, errors = photos.collect_jobs([folder], tmp_path / "out")
    assert not errors
    assert {j.source.name: (j.out.name, j.video) for j in jobs} == {
        "x.mp4": ("x.mp4", True), "x.png": ("x.png", False), "y.MKV": ("y.mkv", True), "z.webm": ("z.webm", True),
        "still.gif": ("still.png", False), "anim.gif": ("anim.gif", True)}
    jobs, _ = photos.collect_jobs([folder / "x.mp4"], folder)   # writing beside the input never overwrites it
    assert jobs[0].out == folder / "x-2.mp4"


def test_sigterm_during_a_clip_closes_it_playable_and_says_so(tmp_path):
    pytest.importorskip("av")
    import os
    import signal

    clip = videoset_clip(tmp_path, frames=8)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLORIZE_TEST_PAUSE": "colorize-frame@3",
           "COLORIZE_TEST_PAUSE_SECONDS": "2"}
    proc = subprocess.Popen([sys.executable, "colorize.py", "--run-dir", str(SHIPPED_RUN), str(clip),
                             "--out", str(out)],
                            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("test-pause: colorize-frame"):
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(300) == 128 + signal.SIGTERM, "".join(lines)
    output = "".join(lines)
    assert "stopped after 3 frame(s), the clip closed and playable" in output
    assert f"{out / 'pan.mp4'} holds the first 3 frame(s) of {clip} (closed and playable)" in output
    assert clip_facts(out / "pan.mp4") == (48, 32, 24, 3)


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (61, 97)])
def test_results_are_written_as_lossless_png_any_reader_opens(tmp_path, shape):
    """save_png (inference.png: 'up' filter, run-length zlib, bands on every core) keeps every pixel, in RGB order."""
    rgb = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    path = tmp_path / "out.png"
    photos.save_png(rgb, path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), rgb)
    assert not (tmp_path / "out.png.tmp").exists()
