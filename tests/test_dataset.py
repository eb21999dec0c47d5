import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import dataset as script  # the command line: python dataset.py
from conftest import ROOT, SAMPLE, SHARED
from core import colorspace
from loaders import cifar
from loaders.cifar import CifarGenerator, DataError, load_images, parse_label


def write_batch(path, images, labels, name="data_batch_1"):
    """A batch file in the official layout: (N, 3072) uint8 as 1024 R, 1024 G, 1024 B."""
    path.mkdir(parents=True, exist_ok=True)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with open(path / name, "wb") as f:
        pickle.dump({b"data": data, b"labels": list(map(int, labels)), b"batch_label": b"x",
                     b"filenames": [b"f%d.png" % i for i in range(len(images))]}, f, protocol=2)
    with open(path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in cifar.CLASS_NAMES]}, f, protocol=2)


# ---- labels ------------------------------------------------------------------

@pytest.mark.parametrize("name, label", [
    ("img-12-cat.png", 3), ("img-0-truck.png", 9), ("/data/my-set-dog/img-5-frog.png", 6),
    ("/a-b/c-d/img-7-Airplane.PNG", 0), ("photo.png", -1), ("img-cat.png", -1),
])
def test_parse_label(name, label):
    assert parse_label(name) == label


def test_unknown_class_name_is_one_warning_and_the_image_is_kept(tmp_path, capsys):
    with pytest.raises(DataError, match=r"img-3-unicorn.png: unknown class name 'unicorn'"):
        parse_label("/x/img-3-unicorn.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "img-0-cat.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "img-1-2-cat.png")
    data = load_images(tmp_path)
    assert list(data.labels) == [3, -1]                               # kept, without a label
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "img-1-2-cat.png: unknown class name '2-cat'" in err
    with pytest.raises(DataError, match=r"no class label .*img-1-2-cat"):   # only a label model minds
        CifarGenerator(data, color_space="fusion")


# ---- both sources, same arrays -----------------------------------------------

def test_png_folder_and_batch_folder_give_identical_arrays(tmp_path, sample_val):
    write_batch(tmp_path / "batches", sample_val.images, sample_val.labels)
    from_batch = load_images(tmp_path / "batches", "train")
    cifar.export_png(from_batch, tmp_path / "png")
    from_png = load_images(tmp_path / "png")
    assert np.array_equal(from_batch.images, from_png.images)
    assert np.array_equal(from_batch.labels, from_png.labels)
    assert np.array_equal(from_png.images, sample_val.images)
    assert from_png.names == [f"img-{i}-{cifar.CLASS_NAMES[c]}" for i, c in enumerate(sample_val.labels)]


@pytest.mark.skipif(not (SHARED / "data" / "cifar10-subset").exists(), reason="needs ../shared")
def test_bundled_sample_matches_the_official_batches():
    batch5 = load_images(SHARED / "data" / "cifar10-subset", "5")
    sample = load_images(SAMPLE / "val")
    for image, label, name in zip(sample.images, sample.labels, sample.names):
        index = int(name.split("-")[1])
        assert np.array_equal(batch5.images[index], image)
        assert batch5.labels[index] == label
    train = load_images(SHARED / "data" / "cifar10-subset", "1-4")
    assert len(train) == 4068 and train.images.shape == (4068, 32, 32, 3)


def test_batch_split_selection(tmp_path, sample_val):
    write_batch(tmp_path, sample_val.images[:10], sample_val.labels[:10], "data_batch_1")
    write_batch(tmp_path, sample_val.images[10:30], sample_val.labels[10:30], "data_batch_2")
    assert len(load_images(tmp_path, "train")) == 30
    assert len(load_images(tmp_path, "2")) == 20
    assert np.array_equal(load_images(tmp_path, "1-2").images, sample_val.images[:30])
    with pytest.raises(DataError, match="test_batch"):
        load_images(tmp_path, "test")
    with pytest.raises(DataError, match="bad split"):
        load_images(tmp_path, "x-y")


def test_cifar_reader_refuses_pickled_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match="data_batch_1"):
        load_images(tmp_path, "train")
    assert not marker.exists()


# ---- image conversion --------------------------------------------------------

def test_images_of_other_modes_and_sizes_are_converted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("L").save(tmp_path / "img-0-cat.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "img-1-dog.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "img-2-ship.png")
    Image.fromarray(rgb).resize((64, 48)).save(tmp_path / "img-3-bird.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_images(tmp_path)
    assert data.images.shape == (4, 32, 32, 3) and data.images.dtype == np.uint8
    assert list(data.labels) == [3, 5, 8, 2]
    gray = data.images[0]
    assert np.array_equal(gray[..., 0], gray[..., 1])                 # grayscale -> R = G = B
    assert np.array_equal(data.images[2], rgb)                        # alpha dropped, pixels kept


def test_bad_inputs_give_one_line_errors(tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "nope"
    (tmp_path / "empty").mkdir()
    cases["empty"] = tmp_path / "empty"
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    cases["no images"] = tmp_path / "text"
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "img-0-cat.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    cases["corrupt"] = tmp_path / "corrupt"
    (tmp_path / "file.png").write_bytes(b"x")
    cases["file"] = tmp_path / "file.png"
    for what, path in cases.items():
        with pytest.raises(DataError) as err:
            load_images(path)
        message = str(err.value)
        assert "\n" not in message, what
        assert str(path) in message, what


def test_cli_reports_data_errors_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "-m", "unet", "--data", str(tmp_path / "nope")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and "nope" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "train.py", "-m", "resnet"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "valid names: autoencoder, unet, fusion_label" in result.stderr


# ---- the generator -----------------------------------------------------------

def test_batch_count_and_last_batch(sample_val):
    gen = CifarGenerator(sample_val, batch_size=32, color_space="LAB", shuffle=False)
    assert len(gen) == 4                                # ceil(100 / 32)
    x, y = gen[3]
    assert x.shape == (4, 32, 32, 1) and y.shape == (4, 32, 32, 2)
    x0, y0 = gen[0]
    assert x0.shape == (32, 32, 32, 1) and x0.dtype == np.float32
    ex, ey = colorspace.encode_lab(sample_val.images[:32])
    assert np.array_equal(x0, ex) and np.array_equal(y0, ey)
    with pytest.raises(IndexError):
        gen[4]


def test_reshuffles_each_epoch_only_when_training(sample_val):
    gen = CifarGenerator(sample_val, batch_size=100, shuffle=True, seed=1)
    first = gen[0][0].copy()
    assert np.array_equal(first, gen[0][0])             # __getitem__ has no side effects
    gen.on_epoch_end()
    second = gen[0][0]
    assert not np.array_equal(first, second)
    assert np.allclose(np.sort(first.ravel()), np.sort(second.ravel()))   # same images, new order
    frozen = CifarGenerator(sample_val, batch_size=100, shuffle=True, is_training=False)
    before = frozen[0][0].copy()
    frozen.on_epoch_end()
    assert np.array_equal(before, frozen[0][0])


def test_fusion_batches_are_tuples_with_one_hot_labels(sample_val):
    gen = CifarGenerator(sample_val, batch_size=8, color_space="fusion", shuffle=False)
    inputs, y = gen[0]
    assert isinstance(inputs, tuple) and len(inputs) == 2   # a list fails on the TF backend
    x, onehot = inputs
    assert x.shape == (8, 32, 32, 1) and onehot.shape == (8, 10) and y.shape == (8, 32, 32, 2)
    assert np.array_equal(onehot.argmax(1), sample_val.labels[:8]) and np.all(onehot.sum(1) == 1)
    prior = np.random.default_rng(0).random((100, 1000), dtype=np.float32)
    (x, p), _ = CifarGenerator(sample_val, batch_size=8, color_space="fusion", shuffle=False, prior=prior)[1]
    assert np.array_equal(p, prior[8:16])


def test_fusion_without_labels_is_a_clear_error(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "photo.png")
    with pytest.raises(DataError, match="no class label"):
        CifarGenerator(tmp_path, color_space="fusion")


def test_rgb_batches_and_inference_names(sample_val):
    gen = CifarGenerator(sample_val, batch_size=5, color_space="RGB", shuffle=False, is_training=False)
    color, gray3, names = gen[0]
    assert color.shape == gray3.shape == (5, 32, 32, 3)
    assert color.min() >= -1 and color.max() <= 1
    assert np.array_equal(gray3[..., 0], gray3[..., 1])
    assert names == sample_val.names[:5]


# ---- download and export -----------------------------------------------------

def test_download_offline_fails_fast_with_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "CIFAR_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="offline, point --data at a local copy"):
        cifar.download(tmp_path, timeout=5)


def test_download_rejects_a_bad_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "_fetch", lambda url, target, timeout: target.write_bytes(b"not cifar"))
    with pytest.raises(DataError, match="checksum mismatch"):
        cifar.download(tmp_path)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def test_export_cli_writes_original_names(tmp_path, sample_val):
    write_batch(tmp_path / "b", sample_val.images[:12], sample_val.labels[:12])
    assert script.main(["export", "--data", str(tmp_path / "b"), "--out", str(tmp_path / "png")]) == 0
    files = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert len(files) == 12 and "img-0-automobile.png" in files
    assert script.main(["export", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_a_limit_that_selects_nothing_is_one_clear_error_before_any_reading(tmp_path):
    """loaders.cifar.check_limit, which the crop bank and streamed crops call too: said before the folder is read."""
    for limit in (0, -3):
        with pytest.raises(cifar.DataError, match=r"--limit must be positive, got -?\d"):
            cifar.load_data(tmp_path / "missing", "train", 32, limit)   # a missing folder would be another error
    cifar.check_limit(None)
    cifar.check_limit(1)
