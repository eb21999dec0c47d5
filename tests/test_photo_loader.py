"""loaders.photos: random crops of photos of any size, from the seed, read by workers with bounded memory."""
import builtins
import pickle
import subprocess
import sys
import threading
import tracemalloc
import weakref

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SAMPLE
from loaders import cifar, photos
from loaders.cifar import DataError
from loaders.photos import ArraySource, FolderSource, PhotoCrops, crop_plan


def photo(width: int, height: int, seed: int = 0, cell: int = 16) -> np.ndarray:
    """(height, width, 3) uint8: random colors varying smoothly over ``cell`` pixels, like a photo's."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // cell), max(2, width // cell), 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def save(path, array: np.ndarray, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def folder(tmp_path, sizes, ext=".jpg"):
    """A folder of photos of the given (width, height), named img-0, img-1..."""
    for k, (w, h) in enumerate(sizes):
        save(tmp_path / f"img-{k}{ext}", photo(w, h, seed=k))
    return tmp_path


def without_threads_left(baseline: int, timeout: float = 5.0) -> bool:
    for t in threading.enumerate():
        if t.name.startswith("photo-crops"):
            t.join(timeout)
    return threading.active_count() == baseline


SMALL = [(60 + 7 * k, 40 + 5 * (k % 4)) for k in range(12)]


# ---- from the seed -------------------------------------------------------------

def test_a_batch_is_a_function_of_seed_epoch_and_index(tmp_path):
    root = folder(tmp_path, SMALL)
    a = PhotoCrops(FolderSource(root), 16, 4, seed=3)
    b = PhotoCrops(FolderSource(root), 16, 4, seed=3, workers=1)
    first = a.epoch_batch(1, 2)
    assert first.shape == (4, 16, 16, 3) and first.dtype == np.uint8
    assert np.array_equal(first, b.epoch_batch(1, 2))              # another loader, another worker count
    assert np.array_equal(first, a.epoch_batch(1, 2))              # asked again
    assert not np.array_equal(first, a.epoch_batch(2, 2))          # another epoch
    assert not np.array_equal(first, PhotoCrops(FolderSource(root), 16, 4, seed=4).epoch_batch(1, 2))
    # Not only the order: the same image is cropped differently in another epoch.
    assert not np.array_equal(a.crop(1, 0), a.crop(2, 0))
    assert a.batch_names(1, 2) == b.batch_names(1, 2) and len(set(a.batch_names(1, 2))) == 4
    # Keras' multiprocessing readers pickle the loader (its thread pool stays behind).
    assert np.array_equal(pickle.loads(pickle.dumps(a)).epoch_batch(1, 2), first)


def test_crop_plans_lie_in_the_ranges_and_flip_half_the_time():
    scale, ratio = (0.2, 0.6), (0.5, 2.0)
    plans = [crop_plan(7, 0, i, scale, ratio) for i in range(2000)]
    area = np.array([p.area for p in plans])
    aspect = np.array([p.ratio for p in plans])
    assert scale[0] <= area.min() and area.max() <= scale[1] and area.std() > 0.08   # spread, not constant
    assert ratio[0] <= aspect.min() and aspect.max() <= ratio[1]
    assert abs(np.mean(np.log(aspect))) < 0.05   # log-uniform: as many tall crops as wide ones
    assert 0.45 < np.mean([p.flip for p in plans]) < 0.55
    assert all(0 <= p.x < 1 and 0 <= p.y < 1 for p in plans)
    unflipped = [crop_plan(7, 0, i, scale, ratio, flip=False) for i in range(50)]
    assert not any(p.flip for p in unflipped)
    assert [(p.area, p.ratio, p.x, p.y) for p in unflipped] == [(p.area, p.ratio, p.x, p.y) for p in plans[:50]]
    # In pixels, the boxes keep their fractions (to a pixel) where they fit in the image; where they do
    # not (area x ratio > 1 in a square), they shrink to fit, keeping their ratio.
    fitting = 0
    for p in plans[:300]:
        left, top, w, h = p.box(1000, 1000)
        assert left >= 0 and left + w <= 1000 and top >= 0 and top + h <= 1000
        assert w / h == pytest.approx(p.ratio, rel=0.01)
        if p.area * max(p.ratio, 1 / p.ratio) <= 1:
            fitting += 1
            assert w * h / 1e6 == pytest.approx(p.area, abs=0.004)
        else:
            assert max(w, h) == 1000 and w * h / 1e6 < p.area
    assert fitting > 200


@pytest.mark.parametrize("width, height", [(7, 20), (481, 321), (1000, 37), (1, 1), (5000, 2)])
def test_a_box_fits_in_any_image_and_keeps_its_ratio_range(width, height):
    for i in range(200):
        plan = crop_plan(1, 0, i)
        left, top, w, h = plan.box(width, height)
        assert w >= 1 and h >= 1 and 0 <= left <= width - w and 0 <= top <= height - h
        fw, fh = plan.extent(width, height)   # where it does not fit, it shrinks but keeps its ratio
        assert fw / fh == pytest.approx(plan.ratio) and fw <= width + 1e-9 and fh <= height + 1e-9


# ---- any image ---------------------------------------------------------------

def test_photos_of_any_size_and_mode_give_the_same_crops(tmp_path):
    rgb = photo(40, 30)
    save(tmp_path / "a-narrow.png", photo(7, 20))
    save(tmp_path / "b-bsds.jpg", photo(481, 321))
    save(tmp_path / "c-strip.png", photo(1000, 37))
    save(tmp_path / "d-gray.png", rgb[..., 0])
    save(tmp_path / "e-alpha.png", np.dstack([rgb, np.full((30, 40), 100, np.uint8)]))
    Image.fromarray(rgb).convert("P").save(tmp_path / "f-palette.png", transparency=0)
    save(tmp_path / "g-16bit.png", np.full((30, 40), 128 * 257, np.uint16))   # mode I;16
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "h-cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6   # stored sideways: viewers turn it a quarter
    save(tmp_path / "i-rotated.jpg", photo(48, 24), exif=exif.tobytes())
    (tmp_path / "notes.txt").write_text("not an image")

    source = FolderSource(tmp_path)
    assert len(source) == 9 and source.name(0) == "a-narrow"
    assert source.read(1).shape == (321, 481, 3)
    assert source.read(8).shape == (48, 24, 3)                       # upright
    assert np.all(np.abs(source.read(6).astype(int) - 128) <= 1)     # 16-bit scaled, not clipped at 255
    crops = PhotoCrops(source, 32, 9, seed=0, workers=2).epoch_batch(0, 0)
    assert crops.shape == (9, 32, 32, 3) and crops.dtype == np.uint8
    # A whole image smaller than the output is enlarged: 7x7 of the 7x20 photo -> 32x32.
    whole = PhotoCrops(source, 32, 9, seed=0, scale=(1, 1), ratio=(1, 1), flip=False)
    left, top, w, h = whole.plan(0, 0).box(7, 20)
    assert (left, w, h) == (0, 7, 7)
    expected = cv2.resize(source.read(0)[top:top + 7], (32, 32), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(whole.crop(0, 0), expected)


def test_listing_opens_no_file(tmp_path, monkeypatch):
    for k in range(5):
        (tmp_path / "sub" / f"{k}.JPG").parent.mkdir(exist_ok=True)
        (tmp_path / "sub" / f"{k}.JPG").write_bytes(b"not decoded while listing")
    (tmp_path / "img-10.png").write_bytes(b"x")
    (tmp_path / "img-9.png").write_bytes(b"x")
    (tmp_path / "._img-1.png").write_bytes(b"macOS resource fork")   # hidden: left out
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.png").write_bytes(b"x")
    (tmp_path / "readme.md").write_text("not an image")

    def refuse(*args, **kwargs):
        raise AssertionError("listing opened a file")
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(Image, "open", refuse)
    source = FolderSource(tmp_path)
    monkeypatch.undo()
    assert [source.relative_path(i) for i in range(len(source))] == \
        ["img-9.png", "img-10.png"] + [f"sub/{k}.JPG" for k in range(5)]   # natural order, files then folders


def test_a_cifar_folder_lists_in_the_cifar_loaders_order():
    source = FolderSource(SAMPLE / "val")
    data = cifar.load_images(SAMPLE / "val")
    assert [source.name(i) for i in range(len(source))] == data.names
    whole = PhotoCrops(source, 32, 10, seed=0, scale=(1, 1), ratio=(1, 1), flip=False)
    order = cifar.epoch_order(len(data), 0, 3)
    assert np.array_equal(whole.epoch_batch(3, 2), data.images[order[20:30]])


# ---- errors ------------------------------------------------------------------

def test_a_folder_without_photos_is_one_data_error(tmp_path):
    with pytest.raises(DataError, match="no image files"):
        FolderSource(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no image files"):
        FolderSource(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        FolderSource(tmp_path / "missing")
    folder(tmp_path, SMALL[:3])
    with pytest.raises(DataError, match=r"3 image.* fewer than one batch of 4"):
        PhotoCrops(FolderSource(tmp_path), 16, 4, seed=0)


def test_a_damaged_photo_stops_the_batch_naming_the_file(tmp_path):
    root = folder(tmp_path, SMALL[:8])
    good = (root / "img-5.jpg").read_bytes()
    (root / "img-5.jpg").write_bytes(good[:len(good) // 3])   # truncated
    loader = PhotoCrops(FolderSource(root), 16, 4, seed=0, workers=2)
    batch = next(i for i in range(2) if "img-5" in loader.batch_names(0, i))
    with pytest.raises(DataError, match=r"img-5\.jpg: cannot (open|decode)"):
        loader.epoch_batch(0, batch)
    loader.close()
    baseline = threading.active_count()
    with pytest.raises(DataError, match=r"img-5\.jpg"):
        for _ in loader.batches(0):
            pass
    assert without_threads_left(baseline)


def test_photos_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    save(tmp_path / "big.png", photo(300, 200))
    monkeypatch.setattr(cifar, "MAX_PIXELS", 50_000)
    with pytest.raises(DataError, match=r"big\.png: 300x200 is 0\.1 megapixels, above the limit"):
        FolderSource(tmp_path).read(0)


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 5, "shard": (0, 2)}, "multiple of the 2 shards"),
    ({"shard": (2, 2)}, "shard must be"),
    ({"scale": (0, 1)}, "scale must be"),
    ({"ratio": (2, 1)}, "ratio must be"),
    ({"workers": 0}, "workers must be"),
    ({"encoding": "hsv"}, "encoding must be"),
])
def test_impossible_options_are_value_errors(options, message):
    kwargs = {"batch_size": 4} | options
    with pytest.raises(ValueError, match=message):
        PhotoCrops(ArraySource(np.zeros((8, 4, 4, 3), np.uint8)), 4, seed=0, **kwargs)


# ---- workers, memory, resume -------------------------------------------------

def test_the_read_ahead_iterator_gives_the_serial_batches_and_stops_its_threads(tmp_path):
    loader = PhotoCrops(FolderSource(folder(tmp_path, SMALL)), 16, 3, seed=5, workers=2, prefetch=2)
    serial = PhotoCrops(FolderSource(tmp_path), 16, 3, seed=5, workers=1)
    baseline = threading.active_count()
    read = list(loader.batches(1))
    assert len(read) == len(loader) == 4
    for i, batch in enumerate(read):
        assert np.array_equal(batch, serial.epoch_batch(1, i))
    assert without_threads_left(baseline)

    stream = loader.batches(1)
    next(stream)
    assert threading.active_count() > baseline   # reading ahead now
    stream.close()                               # closed early, batches still queued
    assert without_threads_left(baseline)
    for _ in loader.batches(1):
        break                                    # a loop left early: the iterator is dropped
    assert without_threads_left(baseline)


def test_resuming_mid_epoch_reads_the_rest_of_it(tmp_path):
    loader = PhotoCrops(FolderSource(folder(tmp_path, SMALL)), 16, 2, seed=9, workers=2, prefetch=1)
    full = list(loader.batches(4))
    rest = list(loader.batches(4, start=3))
    assert len(rest) == len(full) - 3 == 3
    assert all(np.array_equal(a, b) for a, b in zip(rest, full[3:]))
    assert list(loader.batches(4, start=len(loader))) == []
    with pytest.raises(IndexError):
        loader.batches(4, start=len(loader) + 1)


class CountingSource:
    """A source that counts the decoded images still alive (held by the loader somewhere)."""

    def __init__(self, source):
        self.source, self.live, self.most = source, 0, 0
        self.lock = threading.Lock()

    def __len__(self):
        return len(self.source)

    def name(self, i):
        return self.source.name(i)

    def read(self, i):
        image = self.source.read(i)
        with self.lock:
            self.live += 1
            self.most = max(self.most, self.live)
        weakref.finalize(image, self._released)
        return image

    def _released(self):
        with self.lock:
            self.live -= 1


def test_memory_stays_bounded_whatever_the_folder_size(tmp_path):
    n, width, height = 40, 1000, 800
    image = photo(width, height)
    for k in range(n):
        save(tmp_path / f"img-{k}.jpg", np.roll(image, 17 * k, axis=1), quality=80)
    counting = CountingSource(FolderSource(tmp_path))
    workers, prefetch, batch = 2, 1, 4
    loader = PhotoCrops(counting, 32, batch, seed=0, workers=workers, prefetch=prefetch)
    assert not loader.reduced_decoding   # CountingSource has no read_reduced: whole photos are decoded
    tracemalloc.start()
    try:
        for crops in loader.batches(0):
            crops.sum()   # the consumer at work
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counting.most <= workers and counting.live == 0   # one decoded photo per worker at most
    one_photo = width * height * 3
    # Decoding the folder up front would hold n photos (96 MB). A read peaks at two copies of its photo
    # (Pillow's tobytes joins its chunks into a second one); crops are 12 KB a batch.
    assert peak < (2 * workers + 1) * one_photo < n * one_photo / 6, f"peak {peak / 1e6:.1f} MB"


# ---- sharding ----------------------------------------------------------------

def test_shards_slice_every_global_batch(tmp_path):
    source = FolderSource(folder(tmp_path, SMALL))
    whole = PhotoCrops(source, 16, 6, seed=2)
    shards = [PhotoCrops(source, 16, 6, seed=2, shard=(w, 2)) for w in range(2)]
    assert len(whole) == len(shards[0]) == len(shards[1]) == 2 and shards[0].local_batch_size == 3
    for epoch in range(2):
        for i in range(len(whole)):
            parts = [s.epoch_batch(epoch, i) for s in shards]
            assert all(p.shape == (3, 16, 16, 3) for p in parts)
            assert np.array_equal(np.concatenate(parts), whole.epoch_batch(epoch, i))
            assert not np.array_equal(parts[0], parts[1])
            assert shards[0].batch_names(epoch, i) + shards[1].batch_names(epoch, i) == whole.batch_names(epoch, i)
    streamed = [np.concatenate(parts) for parts in zip(*(s.batches(1) for s in shards), strict=True)]
    assert all(np.array_equal(a, whole.epoch_batch(1, i)) for i, a in enumerate(streamed))


# ---- CIFAR-10 and the encoding -----------------------------------------------

def test_whole_cifar_images_come_back_unchanged():
    images = np.random.default_rng(0).integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    source = ArraySource(images, [f"img-{i}" for i in range(23)])
    loader = PhotoCrops(source, 32, 5, seed=11, scale=(1, 1), ratio=(1, 1), flip=False)
    assert len(loader) == 4   # 23 // 5: the last 3 images of each epoch's order are left out
    for epoch in range(2):
        order = cifar.epoch_order(23, 11, epoch)
        for i in range(len(loader)):
            assert np.array_equal(loader.epoch_batch(epoch, i), images[order[5 * i:5 * i + 5]])
            assert loader.batch_names(epoch, i) == [f"img-{j}" for j in order[5 * i:5 * i + 5]]


def test_lab_batches_have_the_network_shapes_and_ranges(tmp_path):
    source = FolderSource(folder(tmp_path, SMALL))
    rgb = PhotoCrops(source, 24, 4, seed=1).epoch_batch(0, 1)
    x, y = PhotoCrops(source, 24, 4, seed=1, encoding="lab").epoch_batch(0, 1)
    assert x.shape == (4, 24, 24, 1) and y.shape == (4, 24, 24, 2) and x.dtype == y.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1 and y.min() >= 0 and y.max() <= 1
    assert x.std() > 0.01 and y.std() > 0.01
    x_batch, y_batch = photos.lab_pair(rgb)   # encoded per image by the workers = the whole batch at once
    assert np.array_equal(x, x_batch) and np.array_equal(y, y_batch)


# ---- reduced JPEG decoding ---------------------------------------------------

@pytest.mark.parametrize("orientation, most", [(1, 8), (3, 4), (6, 4), (8, 8)])
def test_large_jpegs_decode_at_a_reduced_scale_with_the_same_crops(tmp_path, orientation, most):
    """``most``: the largest reduction that keeps the blocks at the upright photo's corner (1500 = 8 x 187.5)."""
    exif = Image.Exif()
    exif[0x0112] = orientation   # 3: upside down; 6, 8: stored sideways, the upright photo is 1500 x 2000
    save(tmp_path / "big.jpg", photo(2000, 1500, cell=40), quality=90, exif=exif.tobytes())
    upright = (2000, 1500) if orientation in (1, 3) else (1500, 2000)   # (width, height)
    source = FolderSource(tmp_path)
    asked = []
    quarter, factor = source.read_reduced(0, lambda w, h: asked.append((w, h)) or 4)
    assert asked == [upright] and factor == 4 and quarter.shape == (upright[1] // 4, upright[0] // 4, 3)
    assert source.read_reduced(0, lambda w, h: 8)[1] == most
    blocks = source.read(0).reshape(upright[1] // 4, 4, upright[0] // 4, 4, 3).mean(axis=(1, 3))
    assert np.abs(quarter - blocks).mean() < 1   # each pixel: the average of a 4 x 4 block

    factors = []
    read_reduced = source.read_reduced

    def spy(i, largest):
        image, factor = read_reduced(i, largest)
        if largest is not None:   # FolderSource.read (the full decode) comes here too
            factors.append(factor)
        return image, factor
    source.read_reduced = spy
    reduced = PhotoCrops(source, 64, 1, seed=0, scale=(0.08, 0.5))
    full = PhotoCrops(source, 64, 1, seed=0, scale=(0.08, 0.5), reduced_decoding=False)
    for epoch in range(4):
        a, b = reduced.epoch_batch(epoch, 0), full.epoch_batch(epoch, 0)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.5
    # Each JPEG decoded at the largest reduction its crop allows (keeping 2 x 64 pixels each way; crops of 8%
    # of the area or more are 424 pixels or more each way: 1/2 at least), where its blocks start at the corner.
    expected = [min(reduced.plan(epoch, 0).grid(*upright, 64), most) for epoch in range(4)]
    assert factors == expected and min(factors) >= 2 and max(factors) >= 4, factors


def test_importing_the_loader_loads_no_keras():
    code = "import sys, loaders.photos; print(sorted(m for m in ('keras', 'tensorflow', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
