"""train.py --crops-per-photo: photos of any size as a fixed bank of crops (loaders.photos.crop_bank,
training.photo_data), trained through effnet_unet's cached taps, recorded in config.json, resumed exactly;
train.py --stream-crops: fresh crops every epoch, their taps computed per batch (training.stream_data)."""
import pickle
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from PIL import Image

import priors
import train as train_script
from cli.errors import run_main
from conftest import SAMPLE
from core import colorspace, runs
from inference.colorizer import encoder_features
from loaders import photos
from loaders.cifar import DataError
from loaders.photos import LARGEST_SQUARE, FolderSource, PhotoCrops, crop_bank
from models import effnet_options
from training import encoder_data, photo_data, stream_data

# (width, height, format): small and large, wide and tall, PNG and JPEG (large enough for reduced decoding)
PHOTOS = [(50, 30, "png"), (120, 200, "jpg"), (64, 64, "png"), (200, 90, "jpg"), (33, 47, "jpg"), (90, 120, "png")]


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """(height, width, 3) uint8: random colors varying smoothly, like a photo's."""
    coarse = np.random.default_rng(seed).integers(0, 256, (max(2, height // 12), max(2, width // 12), 3), np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def make_folder(path, seed: int = 0):
    path.mkdir(parents=True, exist_ok=True)
    for i, (w, h, ext) in enumerate(PHOTOS):
        Image.fromarray(photo(w, h, seed + i)).save(path / f"img-{i}.{ext}", quality=90)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos"))


def train(*args, expect: int = 0) -> None:
    """train.py's main in this process (TensorFlow imported once for the file)."""
    held = len(runs._HELD)
    try:
        assert run_main(train_script.main, [str(a) for a in args]) == expect
    finally:
        # A run folder's lock is held until the process ends (core.runs.lock): release the one this run
        # took, so that the next run in this process takes it as the next train.py would.
        while len(runs._HELD) > held:
            runs._HELD.pop().release()


# ---- the bank ------------------------------------------------------------------------------------

def test_the_bank_holds_k_unflipped_loader_crops_per_photo(folder):
    source = FolderSource(folder)
    bank = crop_bank(source, 16, 3, seed=5, report=None)
    assert bank.images.shape == (18, 16, 16, 3) and bank.images.dtype == np.uint8
    assert bank.names[:4] == ["img-0#0", "img-0#1", "img-0#2", "img-1#0"] and list(bank.labels) == [-1] * 18
    plain, flipping = PhotoCrops(source, 16, 1, 5, flip=False), PhotoCrops(source, 16, 1, 5)
    for i in range(len(PHOTOS)):
        for k in range(3):
            assert np.array_equal(bank.images[3 * i + k], plain.crop(k, i)), (i, k)   # the loader's (seed, k, i)
            if flipping.plan(k, i).flip:                                               # its own flip is off
                assert np.array_equal(bank.images[3 * i + k], flipping.crop(k, i)[:, ::-1])
    w, h, _ = PHOTOS[1]   # the reduced-decoding path is taken: some JPEG crop decodes at 1/2 or less
    assert max(plain.plan(k, 1).grid(w, h, 16) for k in range(3)) > 1
    again = crop_bank(source, 16, 3, seed=5, workers=1, report=None)
    assert np.array_equal(again.images, bank.images) and again.fingerprint() == bank.fingerprint()
    other = crop_bank(source, 16, 3, seed=6, report=None)
    assert not np.array_equal(other.images, bank.images)
    narrow = crop_bank(source, 16, 3, seed=5, scale=(0.5, 0.6), limit=2, report=None)
    assert len(narrow) == 6 and not np.array_equal(narrow.images, bank.images[:6])


def test_a_batch_folder_and_its_pngs_give_the_same_bank_with_labels(tmp_path, sample_val):
    data = sample_val.subset(6)
    batches = tmp_path / "batches"
    batches.mkdir()
    with open(batches / "data_batch_1", "wb") as f:   # the official layout: (N, 3072) as R, G, B planes
        pickle.dump({b"data": data.images.transpose(0, 3, 1, 2).reshape(6, -1), b"labels": list(data.labels)}, f)
    from_batch = crop_bank(photos.open_source(batches), 24, 2, seed=1, report=None)
    from_pngs = crop_bank(photos.open_source(SAMPLE / "val"), 24, 2, seed=1, limit=6, report=None)
    assert np.array_equal(from_batch.images, from_pngs.images)
    assert list(from_batch.labels) == list(from_pngs.labels) == list(np.repeat(data.labels, 2))


def test_validation_takes_the_largest_centered_square(folder):
    assert LARGEST_SQUARE.box(120, 200) == (0, 40, 120, 120) and LARGEST_SQUARE.box(200, 90) == (55, 0, 90, 90)
    val = photos.center_crops(FolderSource(folder), 16, report=None)
    assert val.images.shape == (6, 16, 16, 3) and val.names[0] == "img-0"
    full = np.asarray(Image.open(folder / "img-5.png"))                      # a PNG: decoded whole
    assert np.array_equal(val.images[5], photos.crop_and_resize(full, LARGEST_SQUARE, 16))


# ---- train.py ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bank_run(tmp_path_factory):
    """A short effnet_unet run with hints on a crop bank (2 crops of 6 photos): 2 epochs of 2 steps, a
    checkpoint at every step; its taps cached in a temporary folder, its photos its own (a test changes them)."""
    base = tmp_path_factory.mktemp("bank-run")
    cache = base / "cache"
    cache.mkdir()
    (cache / "weights").symlink_to(priors.CACHE_DIR / "weights")   # the converted ImageNet weights, as they are
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(priors, "CACHE_DIR", cache)                   # the taps: cached there, not in cache/
        data = make_folder(base / "photos")
        train("-m", "effnet_unet", "--data", data, "--val-data", data, "--crops-per-photo", 2, "--image-size", 16,
              "--encoder-size", 32, "--epochs", 2, "--steps", 2, "--batch-size", 4, "--hints", "--no-logs",
              "--seed", 1, "--save-every", 1, "--keep", 4, "--run-dir", base / "run")
        yield base / "run", data, cache


def test_train_records_the_bank_and_caches_its_taps(bank_run, capsys):
    run_dir, data, cache = bank_run
    config = runs.load_config(run_dir)
    bank = crop_bank(FolderSource(data), 16, 2, seed=1, report=None)
    assert config["data"]["crop_bank"] == {"photos": str(data), "split": "train", "n_photos": 6, "crops_per_photo": 2,
                                           "scale": [0.08, 1.0], "ratio": [0.75, 4 / 3], "image_size": 16}
    assert config["data"]["n_images"] == 12 and config["data"]["fingerprint"] == bank.fingerprint()
    assert "6 photos x 2 crops" in config["data"]["description"]
    assert config["val_data"]["crop"] == photo_data.CENTER and config["val_data"]["n_images"] == 6
    assert config["model_options"]["hints"] is True and config["model_options"]["decay_steps"] == 2 * 2
    assert runs.load_state(run_dir)["step"] == 4
    assert len(list((cache / "features").glob("*.npz"))) == 3   # the bank, mirrored, the validation crops


def weights(run_dir) -> dict[str, np.ndarray]:
    """Every array of the run's current checkpoint: weights and optimizer state."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(runs.weights_file(runs.current_checkpoint(run_dir).path, "model"), "r") as f:
        f.visititems(lambda key, v: out.__setitem__(key, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out


def stopped_after_step_1(run_dir: Path, copy: Path) -> Path:
    """A copy of ``run_dir`` as if stopped after step 1, in the middle of epoch 1 (its later checkpoints removed)."""
    shutil.copytree(run_dir, copy)
    for checkpoint in (copy / "checkpoints").glob("step-*"):
        if int(checkpoint.name.removeprefix("step-")) > 1:
            shutil.rmtree(checkpoint)
    return copy


def assert_resume_refused(stopped: Path, capsys, *refusals: tuple[list, str]) -> None:
    """Each (options, message): ``--resume`` of ``stopped`` with those options stops with one line saying it."""
    for option, message in refusals:
        train("-m", "effnet_unet", "--resume", "--run-dir", stopped, *option, expect=2)
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err, err


def test_resume_rebuilds_the_same_bank_exactly_and_refuses_other_crops_or_photos(bank_run, tmp_path, capsys):
    run_dir, data, cache = bank_run
    stopped = stopped_after_step_1(run_dir, tmp_path / "stopped")
    assert_resume_refused(stopped, capsys, (["--crops-per-photo", 3], "was trained on 2 crops per photo"),
                          (["--crop-scale", 0.5, 1], "was trained with --crop-scale 0.08 1"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(priors, "CACHE_DIR", cache)
        train("-m", "effnet_unet", "--resume", "--run-dir", stopped)
    assert "crop bank of" in capsys.readouterr().out and runs.load_state(stopped)["step"] == 4
    got, expected = weights(stopped), weights(run_dir)
    assert got.keys() == expected.keys() and len(got) > 10
    for key in expected:   # the batches, flips and hints of the run never stopped: the same weights
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-7, err_msg=key)
    Image.fromarray(photo(120, 200, seed=99)).save(data / "img-1.jpg")     # a photo changed
    train("-m", "effnet_unet", "--resume", "--run-dir", stopped, "--epochs", 3, expect=2)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the photos changed since the run started" in err, err


# ---- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (["--crops-per-photo", "0"], "--crops-per-photo must be at least 1, got 0"),
    (["--crops-per-photo", "2", "--crop-scale", "0", "0.5"], "in (0, 1]"),
    (["--crops-per-photo", "2", "--crop-scale", "0.5", "1.5"], "in (0, 1]"),
    (["--crops-per-photo", "2", "--crop-scale", "0.9", "0.2"], "MIN 0.9 is above MAX 0.2"),
    (["--crop-scale", "0.2", "0.9"], "add --crops-per-photo K"),
])
def test_bad_crop_options_are_one_line(options, message, capsys):
    assert run_main(train_script.main, ["-m", "effnet_unet", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_a_folder_without_images_or_with_a_damaged_photo_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no photos here")
    train("-m", "effnet_unet", "--data", tmp_path, "--crops-per-photo", 2, "--run-dir", tmp_path / "run", expect=2)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no image files" in err and not (tmp_path / "run").exists(), err
    (tmp_path / "photo.jpg").write_bytes(b"not a jpeg")   # a bank never skips a photo: it would depend on it
    with pytest.raises(DataError, match=r"photo.jpg: not an image"):
        crop_bank(FolderSource(tmp_path), 16, 2, seed=1, report=None)


# ---- streamed crops (--stream-crops: training.stream_data) ----------------------------------------

def streamed_photos(folder) -> stream_data.StreamPhotos:
    return stream_data.StreamPhotos(FolderSource(folder), folder, "train", 16, photos.DEFAULT_SCALE,
                                    photos.DEFAULT_RATIO)


def stream_config(data, batch_size: int, **given) -> dict:
    """A run's config as train.py --stream-crops --image-size 16 --encoder-size 32 --hints resolves it."""
    options = {"image_size": 16, **effnet_options.options(16, encoder_size=32, hints=True, **given)}
    config = {"model": "effnet_unet", "model_options": options,
              "batch_size": batch_size, "epochs": 3, "steps_per_epoch": None, "seed": 3}
    config["class_rebalancing"] = stream_data.rebalancing(data, 3)
    return config


def arrays(batch) -> list[np.ndarray]:
    """((x, *taps, local, global), target) -> the arrays in that order."""
    return [*batch[0], batch[1]]


def test_streamed_batches_are_a_function_of_seed_epoch_and_batch(folder):
    data = streamed_photos(folder)
    config = stream_config(data, 2)
    assert config["class_rebalancing"]["sample"] == "epoch 0's crops of the first 6 photos in epoch 0's order"
    reading, computing = (stream_data.StreamGenerator(config, data, 3, prefetch=p) for p in (1, 0))
    assert len(reading) == 3
    in_order = [arrays(reading.epoch_batch(e, i)) for e in (0, 1) for i in range(3)]   # read ahead, in order
    backwards = [arrays(computing.epoch_batch(e, i)) for e in (1, 0) for i in (2, 1, 0)][::-1]
    for got, expected in zip(in_order, backwards):   # another object, other call order: the same batches
        assert len(got) == 1 + 4 + 2 + 1
        for a, b in zip(got, expected):
            assert np.array_equal(a, b)
    assert not np.array_equal(in_order[0][0], in_order[3][0])                           # epochs differ
    assert any(b[5].any() for b in in_order) and any(b[6].any() for b in in_order)     # hints were given
    crops = data.loader(2, 3, flip=True).epoch_batch(1, 2)   # the crops served, mirrored by the loader
    x, y = colorspace.encode_lab(crops)
    taps = encoder_features(config, crops, cache=False)
    served = in_order[5]
    assert np.array_equal(served[0], x) and np.array_equal(served[-1], encoder_data.targets(config)(y))
    for got, expected in zip(served[1:5], taps):
        assert got.dtype == np.float32 and np.array_equal(got, expected.astype(np.float32))
    reading.close()
    computing.close()


def test_with_encoder_detail_the_encoder_sees_the_crops_at_its_own_size(folder):
    """--encoder-detail: the loader cuts the same boxes at the encoder size (32); the decoder's L and targets
    are those crops area-averaged to 16, the taps the encoder's of the 32 px crops themselves."""
    data = streamed_photos(folder)
    config = stream_config(data, 2, encoder_detail=True)
    assert stream_data.detail_size(config) == 32 and stream_data.detail_size(stream_config(data, 2)) is None
    served = arrays(stream_data.StreamGenerator(config, data, 3, prefetch=0).epoch_batch(1, 2))
    big = data.loader(2, 3, size=32, flip=True).epoch_batch(1, 2)                  # (2, 32, 32, 3)
    small = stream_data.shrink(big, 16)
    x, y = colorspace.encode_lab(small)
    assert np.array_equal(served[0], x) and np.array_equal(served[-1], encoder_data.targets(config)(y))
    detailed = encoder_features(config, small, cache=False, detail=big)
    enlarged = encoder_features(config, small, cache=False)
    for got, expected, other in zip(served[1:5], detailed, enlarged):
        assert got.shape == other.shape and np.array_equal(got, expected.astype(np.float32))
    assert max(np.abs(d.astype(np.float32) - e.astype(np.float32)).max() for d, e in zip(detailed, enlarged)) > 0.1
    # the boxes are the run's without detail: the same crops, cut at another size (other pixels by the resizing)
    plain, other = (data.loader(2, 3, flip=True).epoch_batch(*at).astype(int) for at in ((1, 2), (1, 1)))
    assert np.abs(plain - small).mean() < np.abs(plain - other).mean() / 4


def test_streamed_shards_make_up_the_global_batch(folder):
    data = streamed_photos(folder)
    config = stream_config(data, 4)
    whole = arrays(stream_data.StreamGenerator(config, data, 3, prefetch=0).epoch_batch(2, 0))
    shards = [arrays(stream_data.StreamGenerator(config, data, 3, shard=(w, 2), prefetch=0).epoch_batch(2, 0))
              for w in (0, 1)]
    for k, expected in enumerate(whole):
        assert shards[0][k].shape[0] == 2
        got = np.concatenate([shards[0][k], shards[1][k]])
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3, err_msg=str(k))   # taps: float16
        if not 1 <= k <= 4:   # the crops' L, the hints, the targets: exactly
            assert np.array_equal(got, expected), k


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    """A short effnet_unet run with hints on streamed crops of 12 photos (3 batches of 4 per epoch): 2 epochs
    of 2 steps, a checkpoint at every step, no validation set; a temporary taps cache (nothing is written)."""
    base = tmp_path_factory.mktemp("stream-run")
    cache = base / "cache"
    cache.mkdir()
    (cache / "weights").symlink_to(priors.CACHE_DIR / "weights")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(priors, "CACHE_DIR", cache)
        data = make_folder(base / "photos")
        make_folder(data / "more", seed=10)
        train("-m", "effnet_unet", "--data", data, "--stream-crops", "--image-size", 16, "--encoder-size", 32,
              "--epochs", 2, "--steps", 2, "--batch-size", 4, "--hints", "--no-logs", "--seed", 1,
              "--save-every", 1, "--keep", 4, "--run-dir", base / "run")
        yield base / "run", data, cache


def test_train_records_streamed_crops(stream_run):
    run_dir, data, cache = stream_run
    config = runs.load_config(run_dir)
    assert config["data"]["stream_crops"] is True and config["data"]["n_images"] == 12
    assert config["data"]["crops"] == {"photos": str(data), "split": "train", "n_photos": 12, "limit": None,
                                       "scale": [0.08, 1.0], "ratio": [0.75, 4 / 3], "image_size": 16, "flip": True}
    assert config["data"]["fingerprint"] == stream_data.file_list_fingerprint(FolderSource(data))
    assert config["class_rebalancing"]["sample"] == "epoch 0's crops of the first 12 photos in epoch 0's order"
    assert config["val_data"] is None and config["model_options"]["decay_steps"] == 2 * 2
    assert runs.load_state(run_dir)["step"] == 4 and (run_dir / "samples" / "epoch-002.jpg").exists()
    assert not list(cache.glob("features/*"))   # no taps cached


def test_a_run_with_encoder_detail_trains_and_validates_on_photos(folder, tmp_path, monkeypatch):
    """--encoder-detail end to end: recorded in model_options, validation's taps from the photos' centered
    squares at the encoder's size (cached), and the run then colorizes a photo the same way."""
    from inference.colorizer import Colorizer
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "weights").symlink_to(priors.CACHE_DIR / "weights")
    monkeypatch.setattr(priors, "CACHE_DIR", tmp_path / "cache")
    seen = []
    real = stream_data.photo_data.val_data
    monkeypatch.setattr(stream_data.photo_data, "val_data", lambda *a: seen.append(a[2]) or real(*a))
    train("-m", "effnet_unet", "--data", folder, "--val-data", folder, "--stream-crops", "--encoder-detail",
          "--image-size", 16, "--encoder-size", 32, "--epochs", 1, "--steps", 1, "--batch-size", 2, "--no-logs",
          "--seed", 1, "--run-dir", tmp_path / "run")
    config = runs.load_config(tmp_path / "run")
    assert config["model_options"]["encoder_detail"] is True and seen == [16, 32]   # the decoder's, the encoder's
    colorizer = Colorizer.from_run(tmp_path / "run", runtime="keras")
    assert colorizer.detail_view(np.zeros((30, 50), np.float32), (16, 24)).shape == (32, 48, 3)   # encoder 2 x
    assert colorizer.colorize_photo(photo(50, 30, 0), long_side=32)[0].shape == (30, 50, 3)


def test_a_streamed_run_resumes_exactly_and_refuses_other_crops_or_photos(stream_run, tmp_path, capsys):
    run_dir, data, cache = stream_run
    stopped = stopped_after_step_1(run_dir, tmp_path / "stopped")
    assert_resume_refused(stopped, capsys,
                          (["--crops-per-photo", 3], "was trained on streamed crops (--stream-crops)"),
                          (["--crop-scale", 0.5, 1], "was trained with --crop-scale 0.08 1"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(priors, "CACHE_DIR", cache)
        patch.setattr(stream_data, "rebalancing", None)   # read from config.json, not measured again
        train("-m", "effnet_unet", "--resume", "--run-dir", stopped, "--stream-crops")
    assert "continuing epoch 1 at batch 2" in capsys.readouterr().out and runs.load_state(stopped)["step"] == 4
    got, expected = weights(stopped), weights(run_dir)
    assert got.keys() == expected.keys() and len(got) > 10
    for key in expected:   # the crops, flips, taps and hints of the run never stopped: the same weights
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-7, err_msg=key)
    size = (data / "img-1.jpg").stat().st_size
    Image.fromarray(photo(120, 200, seed=99)).save(data / "img-1.jpg")     # a photo replaced (names and count kept)
    assert (data / "img-1.jpg").stat().st_size != size
    train("-m", "effnet_unet", "--resume", "--run-dir", stopped, "--epochs", 3, expect=2)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the photos changed since the run started" in err, err


@pytest.mark.parametrize("argv, message", [
    (["-m", "effnet_unet", "--stream-crops", "--crops-per-photo", "2"], "two ways of training on photos: use one"),
    (["-m", "unet", "--stream-crops"], "only effnet_unet supports it, not unet"),
])
def test_bad_stream_options_are_one_line(argv, message, capsys):
    assert run_main(train_script.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err
