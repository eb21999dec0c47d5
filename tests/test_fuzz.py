"""Property-based fuzzing of every input reader (hypothesis): images, image folders, CIFAR-10 batch
files, run folders and checkpoints, PyTorch checkpoints.

The property everywhere: a reader returns a correct result, or raises the project's error for a bad
input with one line that names the file; never another exception (a traceback), never a hang (each
example runs under a timer); and a good file next to a bad one is still used. The examples are
bounded and derandomized (the same ones on every run, so CI is deterministic).
"""
from __future__ import annotations

import contextlib
import io
import pickle
import signal
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from core import checkpoints, runs
from inference import Colorizer, photos
from loaders import cifar
from loaders.cifar import DataError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])   # capsys: read out per example
HANG_S = 20   # per example: far above any honest read of these small inputs


@contextlib.contextmanager
def no_hang(seconds: float = HANG_S):
    def expired(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line_naming(err: BaseException, path: Path) -> None:
    message = str(err)
    assert "\n" not in message and str(path) in message, message


@contextlib.contextmanager
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ---- image files ------------------------------------------------------------------------------------

FORMATS = {   # Pillow format -> modes it writes, and the extension
    "PNG": (("RGB", "RGBA", "L", "LA", "P", "I;16", "1"), ".png"),
    "JPEG": (("RGB", "L", "CMYK"), ".jpg"),
    "WEBP": (("RGB", "RGBA"), ".webp"),
    "GIF": (("P", "L"), ".gif"),
    "BMP": (("RGB", "L", "P", "1"), ".bmp"),
    "TIFF": (("RGB", "CMYK", "I;16", "F", "LAB"), ".tif"),
}


def encode(fmt: str, mode: str, w: int, h: int, seed: int, frames: int = 1, exif_rotate: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.frombytes(mode, (w, h), rng.integers(0, 65536, (h, w)).astype("<u2").tobytes())
    elif mode == "F":
        img = Image.fromarray(rng.random((h, w)).astype(np.float32))
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
        if mode == "P" and fmt == "PNG" and seed % 2:
            img.info["transparency"] = 0
    buf = io.BytesIO()
    kwargs = {}
    if frames > 1 and fmt in ("GIF", "WEBP", "PNG"):
        kwargs = {"save_all": True, "append_images": [img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)] * (frames - 1)}
    if exif_rotate and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        exif = Image.Exif()
        exif[0x0112] = 6   # orientation: rotate 90 degrees clockwise to view
        kwargs["exif"] = exif.tobytes()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@st.composite
def image_files(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    modes, ext = FORMATS[fmt]
    mode = draw(st.sampled_from(modes))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    data = encode(fmt, mode, w, h, draw(st.integers(0, 3)), frames=draw(st.sampled_from([1, 1, 2])),
                  exif_rotate=draw(st.booleans()))
    # length classes: empty, a byte, inside the header, inside the pixels, all but the last byte, whole
    cut = draw(st.sampled_from(["empty", "one", "header", "body", "last", "whole", "whole"]))
    n = len(data)
    keep = {"empty": 0, "one": 1, "header": draw(st.integers(2, min(64, n))), "body": draw(st.integers(1, n)),
            "last": n - 1, "whole": n}[cut]
    return fmt, mode, (w, h), ext, data[:keep], keep == n


@FUZZ
@given(image_files(), st.sampled_from([8, 32]))
def test_any_image_or_damaged_image_reads_correctly_or_is_one_line(case, size):
    fmt, mode, (_w, _h), ext, data, whole = case
    with scratch() as d, no_hang():
        path = d / f"in put é{ext}"
        path.write_bytes(data)
        try:
            out = cifar.read_image(path, size)
        except DataError as err:
            one_line_naming(err, path)
            assert not (whole and mode != "LAB"), f"a whole {fmt} {mode} image was refused: {err}"
        else:
            assert out.shape == (size, size, 3) and out.dtype == np.uint8
        for read in (lambda: photos.read_full(path),):
            try:
                out = read()
            except photos.InputError as err:
                one_line_naming(err, path)
            else:
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(sorted(cifar.IMAGE_EXTENSIONS)))
@example(b"\x89PNG\r\n\x1a\n", ".png")
@example(b"GIF89a", ".gif")
@example(b"\xff\xd8\xff", ".jpg")
@example(b"RIFF\x00\x00\x00\x00WEBPVP8 ", ".webp")
def test_random_bytes_are_one_line_naming_the_file(data, ext):
    with scratch() as d, no_hang():
        path = d / f"x{ext}"
        path.write_bytes(data)
        for read, error in ((lambda: cifar.read_image(path, 32), DataError),
                            (lambda: photos.read_full(path), photos.InputError)):
            try:
                out = read()
            except error as err:
                one_line_naming(err, path)
            else:   # random bytes that happen to be an image (a few formats have tiny headers)
                assert out.dtype == np.uint8 and out.shape[-1] == 3


def png_header(w: int, h: int) -> bytes:
    """A valid PNG that claims w x h but holds 16 bytes of pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def gif_header(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, w, h) + b"\x00"


def bmp_header(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


@FUZZ
@given(st.sampled_from(["png", "gif", "bmp"]), st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
@example("png", 100_000, 100_000)
@example("gif", 65_535, 65_535)
@example("png", 6_000, 6_000)
def test_headers_claiming_huge_sizes_are_refused_before_decoding(kind, w, h):
    w, h = (min(w, 65_535), min(h, 65_535)) if kind == "gif" else (w, h)
    header = {"png": png_header, "gif": gif_header, "bmp": bmp_header}[kind](w, h)
    with scratch() as d, no_hang():
        path = d / f"huge.{kind}"
        path.write_bytes(header)
        try:
            out = cifar.read_image(path, 32)
        except DataError as err:
            one_line_naming(err, path)
            if kind == "png" and w * h > cifar.MAX_PIXELS:   # a valid header: refused by its size alone
                assert "megapixels, above the limit" in str(err) or "too many pixels" in str(err)
        else:   # small enough to decode (the missing pixels of a PNG read as zeros): a normal image
            assert w * h <= cifar.MAX_PIXELS and out.shape == (32, 32, 3)


def test_modes_are_converted_faithfully(tmp_path):
    """16-bit gray keeps its scale, EXIF rotation is applied, palette transparency gives no warning."""
    ramp = (np.arange(16 * 8, dtype=np.uint32).reshape(8, 16) * 512).astype("<u2")   # 0..65024
    Image.frombytes("I;16", (16, 8), ramp.tobytes()).save(tmp_path / "wide.png")
    out = cifar.read_image(tmp_path / "wide.png", 16)[..., 0]
    assert out.shape == (16, 16) and abs(int(out.max()) - round(65024 / 257)) <= 2
    tall = Image.new("RGB", (8, 24), "red")
    exif = Image.Exif()
    exif[0x0112] = 6
    tall.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert photos.read_full(tmp_path / "rotated.jpg").shape == (8, 24, 3)      # shown as 24 wide, 8 high
    Image.new("P", (4, 4)).save(tmp_path / "p.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # Pillow warns on a direct P -> RGB of a transparent palette
        assert cifar.read_image(tmp_path / "p.png", 4).shape == (4, 4, 3)


# ---- image folders -----------------------------------------------------------------------------------

NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00"), min_size=1,
               max_size=30).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@FUZZ
@given(good=NAME, bad=NAME, bad_data=st.binary(max_size=300), label=NAME,
       ext=st.sampled_from([".png", ".jpg", ".gif", ".webp"]))
@example(good="photo one", bad="ünïcødé 写真", bad_data=b"", label="cat", ext=".png")
@example(good="img-0-cat", bad="img-1-dog", bad_data=b"\x89PNG\r\n\x1a\nbroken", label="spaceship", ext=".png")
def test_a_good_image_next_to_bad_files_is_still_used(good, bad, bad_data, label, ext, capsys):
    assume(good != bad)
    with scratch() as d, no_hang():
        folder = d / "data set"
        (folder / "sub dir").mkdir(parents=True)
        (folder / "empty sub").mkdir()
        good_path = folder / f"{good}{ext}"
        labelled = folder / "sub dir" / f"img-7-{label}.png"
        Image.new("RGB", (20, 12), (200, 30, 30)).save(good_path, format=Image.registered_extensions()[ext])
        Image.new("RGB", (32, 32), (10, 10, 200)).save(labelled)
        (folder / f"{bad}.png").write_bytes(bad_data)
        (folder / "notes.txt").write_text("not an image")
        capsys.readouterr()
        data = cifar.load_images(folder, image_size=8)
        err = capsys.readouterr().err
        assert good in data.names and f"img-7-{label}" in data.names
        for line in err.splitlines():    # one warning line per problem, naming its file
            assert line.startswith("warning: ") and (str(folder / f"{bad}.png") in line or str(labelled) in line)
        if f"{bad}.png" != f"{good}{ext}" and bad not in data.names:
            assert str(folder / f"{bad}.png") in err
        expected_label = cifar.CLASS_NAMES.index(label.lower()) if label.lower() in cifar.CLASS_NAMES and \
            cifar._NAME_PATTERN.match(labelled.name) else -1
        assert data.labels[data.names.index(f"img-7-{label}")] == expected_label


def test_empty_and_unreadable_folders_are_one_line(tmp_path):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    for folder in (tmp_path / "empty", tmp_path / "bad", tmp_path / "missing"):
        with pytest.raises(DataError) as err:
            cifar.load_images(folder)
        one_line_naming(err.value, folder)


@FUZZ
@given(st.one_of(NAME, NAME.map(lambda s: f"img-{len(s)}-{s}.png")))
def test_any_file_name_gives_a_label_or_one_line(name):
    try:
        label = cifar.parse_label(f"/d/{name}")
    except DataError as err:
        one_line_naming(err, Path(f"/d/{name}"))
    else:
        assert -1 <= label < len(cifar.CLASS_NAMES)


# ---- colorize.py's reading: a good file next to a bad one is still colorized --------------------------

class TinyColorizer:
    """Stands in for a run's model (the reading, not the network, is under test): gray in, fixed color out;
    the photo path (working size, guided upsampling) is the real Colorizer's."""
    image_size = 8
    colorize_photo = Colorizer.colorize_photo
    working_ab = Colorizer.working_ab
    detail_view = staticmethod(lambda L, shape: None)   # no encoder detail
    square_view = False

    def working_shape(self, full_hw, long_side=None):
        return 8, 8

    def colorize(self, images, labels=None, hints=None, detail=None):
        out = images.astype(np.float32) / 255.0
        out[..., 0] = 0.8
        return out


@settings(FUZZ, max_examples=25)
@given(bad=st.binary(max_size=200), name=NAME)
def test_colorize_files_keeps_going_past_a_bad_file(bad, name, capsys):
    with scratch() as d, no_hang():
        Image.new("RGB", (30, 20), "gray").save(d / "good photo.jpg")
        (d / f"{name}.png").write_bytes(bad)
        jobs, errors = photos.collect_jobs([d], d / "out")
        done, failed = photos.colorize_files(TinyColorizer(), jobs, None, compare=False)
        assert not errors and (d / "out" / "good photo.png").exists()
        assert done + len(failed) == len(jobs) == 2
        for message in failed:
            one_line_naming(Exception(message), d / f"{name}.png")
        capsys.readouterr()


# ---- CIFAR-10 batch files -------------------------------------------------------------------------------

@st.composite
def batch_payloads(draw):
    """Random bytes, or pickles that look almost like a CIFAR-10 batch."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=1024))
    n = draw(st.integers(0, 3))
    width = draw(st.sampled_from([3072, 3071, 10]))
    data = draw(st.sampled_from([np.zeros((n, width), np.uint8), np.full((n, width), 300), [[1, 2], [3]],
                                 "text", None, np.zeros((n, width), np.float32)]))
    labels = draw(st.sampled_from([list(range(n)), [11] * n, [-1] * n, "abc", None, list(range(n + 1))]))
    obj = draw(st.sampled_from([{b"data": data, b"labels": labels}, {b"data": data}, [data, labels], 42]))
    blob = pickle.dumps(obj, protocol=2)
    return blob[:draw(st.integers(0, len(blob)))] if draw(st.booleans()) else blob


@FUZZ
@given(batch_payloads())
def test_batch_files_read_correctly_or_are_one_line(payload):
    with scratch() as d, no_hang():
        (d / "data_batch_1").write_bytes(payload)
        try:
            data = cifar.load_images(d, "1")
        except DataError as err:
            one_line_naming(err, d / "data_batch_1")
        else:
            assert data.images.dtype == np.uint8 and data.images.shape[1:] == (32, 32, 3)
            assert ((data.labels >= 0) & (data.labels < 10)).all()


# ---- run folders and checkpoints ----------------------------------------------------------------------

@FUZZ
@given(which=st.sampled_from(["config.json", "state.json", "manifest.json", "model.weights.h5", "legacy"]),
       garbage=st.binary(max_size=512))
def test_damaged_run_folder_files_fall_back_or_are_one_line(which, garbage, capsys):
    with scratch() as d, no_hang():
        (d / "config.json").write_text('{"model": "autoencoder", "model_options": {"image_size": 8}}')
        if which == "legacy":
            (d / "model.weights.h5").write_bytes(garbage)
            (d / "state.json").write_bytes(garbage[:20])
        else:
            for step in (1, 2):
                checkpoints.write(d, step, {"epoch": 0, "step": step},
                                  {"model.weights.h5": lambda p: p.write_bytes(b"h5" * 10)})
            target = d / "config.json" if which == "config.json" else \
                d / checkpoints.FOLDER / checkpoints.folder_name(2) / which
            target.write_bytes(garbage)
        try:
            runs.load_config(d)
            found = runs.current_checkpoint(d)
            if which not in ("config.json", "legacy"):
                assert found.step in (1, 2)
                if found.step == 1:
                    assert "using the previous checkpoint" in capsys.readouterr().err
            if found is not None and found.legacy:
                from models import build_model
                runs.load_weights(build_model("autoencoder", image_size=8), d)
        except runs.RunError as err:
            assert "\n" not in str(err) and str(d) in str(err), str(err)


# ---- PyTorch checkpoints (the EfficientNet-Lite0 prior's weights) ----------------------------------------

@FUZZ
@given(st.binary(max_size=1024), st.booleans())
def test_torch_checkpoint_reader_gives_tensors_or_one_line(data, as_zip):
    from priors.torch_checkpoint import CheckpointFormatError, UnsafeCheckpointError, load_torch_state_dict

    with scratch() as d, no_hang():
        path = d / "weights.pth"
        if as_zip:
            import zipfile
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("archive/data.pkl", data)
                zf.writestr("archive/data/0", data[:64])
        else:
            path.write_bytes(data)
        try:
            state = load_torch_state_dict(path)
        except (CheckpointFormatError, UnsafeCheckpointError) as err:
            one_line_naming(err, path)
        else:
            assert isinstance(state, dict) and all(isinstance(v, np.ndarray) for v in state.values())
