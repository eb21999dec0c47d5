"""Decoding options of every Colorizer: test-time flips (any model), undoing class rebalancing
(classification heads); their checks and their command-line errors."""
import numpy as np
import pytest

from cli.errors import run_main
from conftest import built_run
from core import ab_bins, runs
from inference import Colorizer
from inference.colorizer import DecodingError
from models import MODEL_NAMES
from models.effnet_unet import decode

RUNS = [(m, None) for m in MODEL_NAMES] + [("gan", "lab")]


@pytest.mark.parametrize("model, color_space", RUNS, ids=[m if c is None else f"{m}-{c}" for m, c in RUNS])
def test_flip_averaging_makes_the_colors_mirror_equivariant(model, color_space, tmp_path_factory, sample_val):
    """With --flip-average, colorizing the mirror image gives the mirror of the colors (exactly: the two
    passes are averaged either way round); a single pass of an untrained network does not."""
    colorizer = Colorizer.from_run(built_run(tmp_path_factory, model, color_space))
    images, labels = sample_val.images[:4], sample_val.labels[:4]
    mirrored = np.ascontiguousarray(images[:, :, ::-1])

    def gap():
        direct = colorizer.colorize(images, labels)          # (4, 32, 32, 3) RGB in [0, 1]
        return np.abs(colorizer.colorize(mirrored, labels)[:, :, ::-1] - direct).max()

    assert gap() > 1e-3                                      # a network is not mirror-symmetric by itself
    colorizer.set_decoding(flip_average=True)
    raw = colorizer.network_output(images, labels)
    assert raw.y_mirrored is not None and raw.y_mirrored.shape == raw.y.shape
    assert gap() < 1e-5


def test_flip_averaging_averages_the_two_passes(tmp_path_factory, sample_val):
    """The averaged colors are the mean of the image's and the mirror image's, mirrored back (unet: ab)."""
    from core import colorspace
    colorizer = Colorizer.from_run(built_run(tmp_path_factory, "unet")).set_decoding(flip_average=True)
    images = sample_val.images[:3]
    raw = colorizer.network_output(images)
    single = Colorizer.from_run(built_run(tmp_path_factory, "unet"))
    y_mirror = single.network_output(np.ascontiguousarray(images[:, :, ::-1])).y
    np.testing.assert_allclose(raw.y_mirrored, y_mirror, atol=1e-6)
    expected = colorspace.decode_lab(raw.x, np.clip((raw.y + y_mirror[:, :, ::-1]) / 2, 0, 1))
    np.testing.assert_allclose(colorizer.decode(raw), expected, atol=1e-6)


def _copied_run(tmp_path_factory, tmp_path, **config_keys):
    """A copy of the built unet run whose config.json has ``config_keys`` added."""
    import json
    import shutil
    run_dir = shutil.copytree(built_run(tmp_path_factory, "unet"), tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, **config_keys}))
    return run_dir


def test_a_run_can_turn_flips_on_by_default_and_the_tools_can_turn_them_off(tmp_path_factory, tmp_path, sample_val):
    """config.json "flip_average": true (the shipped run's) makes flips the run's default: the colors are
    the averaged ones; set_decoding(flip_average=False) (--no-flip-average) gives the single pass back."""
    images = sample_val.images[:3]
    single = Colorizer.from_run(built_run(tmp_path_factory, "unet"))
    assert single.flip_average is False                                       # absent: off
    flipped = Colorizer.from_run(_copied_run(tmp_path_factory, tmp_path, flip_average=True))
    assert flipped.flip_average is True
    averaged = single.set_decoding(flip_average=True).colorize(images)
    np.testing.assert_allclose(flipped.colorize(images), averaged, atol=1e-6)
    one_pass = single.set_decoding(flip_average=False).colorize(images)
    assert np.abs(one_pass - averaged).max() > 1e-3
    np.testing.assert_allclose(flipped.set_decoding(flip_average=False).colorize(images), one_pass, atol=1e-6)


@pytest.mark.parametrize("bad, message", [({"flip_average": "yes"}, "flip_average must be true or false, got 'yes'"),
                                          ({"work_size": 30}, "work_size must be a multiple of 8 of at least 8, got 3"),
                                          ({"work_size": "64"}, "work_size must be a multiple of 8")])
def test_a_bad_decoding_default_in_config_json_is_one_line(tmp_path_factory, tmp_path, capsys, bad, message):
    import predict
    run_dir = _copied_run(tmp_path_factory, tmp_path, **bad)
    assert run_main(predict.main, ["-m", "unet", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_the_undoing_of_rebalancing_is_the_runs(sample_val):
    """config.json "undo_rebalancing" (a photo run's measured choice) is the run's default decoding: the same
    colors as set_decoding(undo_rebalancing=...) on a run without it; the demo's "as trained" goes back to
    it; values outside 0-1, or with no weights to undo, say the run folder is damaged."""
    from serving.catalog import set_faithful
    shipped = Colorizer.from_run(runs.ROOT / "pretrained" / "effnet_unet", runtime="keras")
    assert shipped.undo_rebalancing == 0.0
    chosen = Colorizer({**shipped.config, "undo_rebalancing": 0.4}, shipped.network, shipped.run_dir)
    assert chosen.undo_rebalancing == chosen.default_undo_rebalancing == 0.4
    images = sample_val.images[:2]
    expected = shipped.set_decoding(undo_rebalancing=0.4).colorize(images)
    np.testing.assert_allclose(chosen.colorize(images), expected, atol=1e-6)
    assert np.abs(expected - shipped.set_decoding(undo_rebalancing=0.0).colorize(images)).max() > 0.02
    set_faithful(chosen, True)
    assert (chosen.temperature, chosen.undo_rebalancing) == (1.0, 1.0)
    set_faithful(chosen, False)
    assert chosen.undo_rebalancing == 0.4
    for bad, message in (({"undo_rebalancing": 1.5}, "undo_rebalancing must be a number from 0 to 1, got 1.5"),
                         ({"undo_rebalancing": True}, "undo_rebalancing must be a number from 0 to 1"),
                         ({"undo_rebalancing": 0.4, "class_rebalancing": None}, "no class_rebalancing weights")):
        with pytest.raises(DecodingError, match=message):
            Colorizer({**shipped.config, **bad}, shipped.network, shipped.run_dir)


def test_with_encoder_detail_the_encoder_sees_the_photo_itself():
    """A run trained with encoder_detail: its encoder sees the photo's L area-averaged to the encoder's size
    for the working shape (4 x), not the working image enlarged; other runs have no such view."""
    from skimage import data as skdata

    from inference import fullres
    shipped = Colorizer.from_run(runs.ROOT / "pretrained" / "effnet_unet", runtime="keras")
    options = {**shipped.config["model_options"], "encoder_detail": True}
    detail = Colorizer({**shipped.config, "model_options": options}, shipped.network, shipped.run_dir)
    rgb = skdata.coffee()                                                     # (400, 600, 3)
    L = fullres.lightness(rgb)
    assert shipped.detail_view(L, (24, 32)) is None
    view = detail.detail_view(L, (24, 32))
    assert view.shape == (96, 128, 3) and np.array_equal(view, fullres.small_gray(L, (96, 128))[0])
    seen, plain = detail.colorize_photo(rgb)[0], shipped.colorize_photo(rgb)[0]
    assert seen.shape == rgb.shape and np.abs(seen.astype(int) - plain.astype(int)).mean() > 0.5


def test_the_working_size_is_the_runs(tmp_path_factory, tmp_path):
    """A flexible run colorizes photos at its training size unless config.json says "work_size" (the shipped
    run: 32); --work-size (long_side) still wins."""
    shipped = Colorizer.from_run(runs.ROOT / "pretrained" / "effnet_unet")
    assert shipped.work_size == 32 and shipped.working_shape((300, 451)) == (24, 32)
    assert shipped.used_work_size() == 32 and shipped.used_work_size(64) == 64     # what result files record
    unet = Colorizer.from_run(built_run(tmp_path_factory, "unet"))
    assert unet.used_work_size() is None and unet.used_work_size(64) == 64       # None: squashed to 32 x 32
    chosen = Colorizer({**shipped.config, "work_size": 64}, run_dir=shipped.run_dir)
    assert chosen.working_shape((300, 451)) == (40, 64) and chosen.working_shape((300, 451), 32) == (24, 32)
    trained_at_48 = {**shipped.config, "model_options": {**shipped.config["model_options"], "image_size": 48}}
    assert Colorizer(trained_at_48, run_dir=shipped.run_dir).working_shape((451, 300)) == (48, 32)


def test_undoing_the_rebalancing_recovers_the_expected_color():
    """A head trained with rebalancing predicts p(q) w(q) / Z; undoing it fully gives back the expectation under p."""
    bins = ab_bins.gamut_bins()
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(len(bins), 0.3), size=(2, 3))                 # (2, 3, Q) the colors' probabilities
    weights = rng.uniform(0.2, 5.0, len(bins))                               # rebalancing weights
    logits = np.log(p * weights).astype(np.float32)                          # what the rebalanced head predicts
    expected = (p @ bins + 128) / 255                                        # (2, 3, 2) in the LAB encoding
    np.testing.assert_allclose(decode(logits, "classification", 1.0, 1.0, weights), expected, atol=1e-4)
    as_trained = decode(logits, "classification", 1.0)
    assert np.abs(as_trained - expected).max() > 1e-2                       # not undone: another color
    np.testing.assert_allclose(decode(logits, "classification", 1.0, 0.0, weights), as_trained)
    halfway = decode(logits, "classification", 1.0, 0.5, weights)
    assert np.all(np.abs(halfway - expected).max(-1) <= np.abs(as_trained - expected).max(-1) + 1e-6)


def test_undo_rebalancing_is_checked(tmp_path_factory):
    regression = Colorizer.from_run(built_run(tmp_path_factory, "unet"))
    assert regression.undo_rebalancing is None
    with pytest.raises(DecodingError, match="applies to a classification head"):
        regression.set_decoding(undo_rebalancing=1.0)
    classifier = Colorizer({"model": "effnet_unet", "model_options": {"image_size": 32},
                            "class_rebalancing": {"weights": [1.0] * 261}}, network=None)
    assert classifier.undo_rebalancing == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(DecodingError, match="between 0 and 1"):
            classifier.set_decoding(undo_rebalancing=bad)
    assert classifier.set_decoding(undo_rebalancing=0.5).undo_rebalancing == 0.5
    unrecorded = Colorizer({"model": "effnet_unet", "model_options": {"image_size": 32}}, network=None)
    with pytest.raises(DecodingError, match="no class_rebalancing"):
        unrecorded.set_decoding(undo_rebalancing=1.0)


def test_undo_rebalancing_without_a_classification_head_is_one_line(tmp_path_factory, capsys):
    import predict
    run_dir = built_run(tmp_path_factory, "unet")
    assert run_main(predict.main, ["-m", "unet", "--run-dir", str(run_dir), "--undo-rebalancing", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--undo-rebalancing applies to a classification head" in err


def test_the_square_view_averages_a_photos_chroma_with_its_squashed_ones(tmp_path_factory, tmp_path):
    """config.json "square_view": true (the shipped run's): a photo whose working shape is not square
    (90 x 120: 24 x 32) is also colorized squashed to 32 x 32, that chroma resized to 24 x 32 and the two
    averaged before the guided upsampling; a square photo gets its one view; --no-square-view
    (set_decoding(square_view=False)) gives the one view back."""
    import json
    import shutil

    import cv2

    from core import colorspace
    from inference import fullres
    run_dir = shutil.copytree(built_run(tmp_path_factory, "effnet_unet"), tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "square_view": True}))
    viewed, single = Colorizer.from_run(run_dir), Colorizer.from_run(built_run(tmp_path_factory, "effnet_unet"))
    assert viewed.square_view is True and single.square_view is False                 # absent: off
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), (120, 90), interpolation=cv2.INTER_CUBIC)
    L = fullres.lightness(rgb)                                                        # (90, 120) in [0, 100]

    def ab(shape):                                                                    # (h, w, 2) LAB units
        return colorspace.rgb_to_lab(single.colorize(fullres.small_gray(L, shape)[0][None])[0])[..., 1:]

    assert viewed.working_shape(rgb.shape[:2]) == (24, 32)
    mean = (ab((24, 32)) + cv2.resize(ab((32, 32)), (32, 24), interpolation=cv2.INTER_LINEAR)) / 2
    expected, _ = fullres.recombine(rgb, mean, L=L)
    got, _ = viewed.colorize_photo(rgb)
    assert np.abs(got.astype(int) - expected).max() <= 1
    one_view, _ = single.colorize_photo(rgb)
    assert np.abs(one_view.astype(int) - got).max() > 5                               # the second view counts
    np.testing.assert_array_equal(viewed.set_decoding(square_view=False).colorize_photo(rgb)[0], one_view)
    square = np.ascontiguousarray(rgb[:, :90])                                        # 90 x 90: one 32 x 32 view
    np.testing.assert_array_equal(viewed.set_decoding(square_view=True).colorize_photo(square)[0],
                                  single.colorize_photo(square)[0])


def test_square_view_is_a_decoding_option_of_the_tools():
    """--square-view / --no-square-view reach set_decoding (None: the run's default)."""
    import argparse

    from cli.options import add_decoding_args, decoding
    parser = argparse.ArgumentParser()
    add_decoding_args(parser)
    assert decoding(parser.parse_args([]))["square_view"] is None
    assert decoding(parser.parse_args(["--no-square-view"]))["square_view"] is False
    assert decoding(parser.parse_args(["--square-view"]))["square_view"] is True
