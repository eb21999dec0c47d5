"""Color hints: their encodings (core.hints), the network that takes them, training's simulated hints,
and photos colorized with hints at their own aspect ratio (Colorizer.colorize_photo)."""
import numpy as np
import pytest

from conftest import built_run
from core import colorspace, hints
from models.effnet_options import OWN_KEY_HEADS

# ---- encodings ---------------------------------------------------------------------------------

def test_a_point_lands_on_the_working_pixel_its_photo_pixel_falls_in():
    p = hints.point(399, 0, (255, 0, 0))                          # top-right pixel of a 400 x 300 photo
    local = hints.local_planes([p], (300, 400), (24, 32))
    assert local.shape == (24, 32, 3) and local[..., 2].sum() == 1 and local[0, 31, 2] == 1
    a, b = hints.rgb_to_ab((255, 0, 0))
    np.testing.assert_allclose(local[0, 31, :2], np.array([a, b]) / hints.AB_SCALE, rtol=1e-6)
    assert a > 70 and b > 60                                      # sRGB red: a = 80.1, b = 67.2


def test_a_radius_covers_a_disc_and_overlapping_points_average():
    red, blue = hints.point(50, 50, (255, 0, 0), radius=20), hints.point(50, 50, (0, 0, 255))
    local = hints.local_planes([red], (100, 100), (10, 10))
    assert 9 <= local[..., 2].sum() <= 16 and local[5, 5, 2] == 1 and local[0, 0, 2] == 0
    both = hints.local_planes([red, blue], (100, 100), (10, 10))
    center = both[5, 5, :2] * hints.AB_SCALE
    expected = (np.array(hints.rgb_to_ab((255, 0, 0))) + hints.rgb_to_ab((0, 0, 255))) / 2
    np.testing.assert_allclose(center, expected, rtol=1e-5)


def test_reference_distribution_and_global_vector():
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :10] = (200, 30, 30)                                  # half red, half black
    dist = hints.reference_distribution(rgb)
    assert dist.shape == (hints.n_bins(),) and abs(dist.sum() - 1) < 1e-6 and np.sort(dist)[-2:].sum() > 0.99
    vec = hints.global_vector(dist)
    assert vec[-1] == 1 and abs(vec[:-1].sum() - 1) < 1e-6
    assert not hints.global_vector(None).any()
    with pytest.raises(ValueError, match="261 bins"):
        hints.global_vector(np.ones(10))


def test_match_reference_takes_the_references_quantiles_keeping_order_and_ties():
    rng = np.random.default_rng(0)
    ab = rng.normal(0, 5, (20, 30, 2)).astype(np.float32)
    ab[0, :5] = 3.0                                             # ties
    ref = np.stack([np.linspace(-60, 60, 500), np.full(500, 20.0)], axis=1)
    full = hints.match_reference(ab, ref, share=1.0)
    assert np.allclose(full[..., 1], 20.0)                      # a constant reference channel
    # spread to the reference's
    assert full[..., 0].min() >= -60 and full[..., 0].max() <= 60 and full[..., 0].std() > 30
    order = np.argsort(ab[..., 0].ravel(), kind="stable")
    assert np.all(np.diff(full[..., 0].ravel()[order]) >= 0)    # monotone
    assert np.unique(full[0, :5, 0]).size == 1                  # equal values stay equal
    np.testing.assert_allclose(hints.match_reference(ab, ref, share=0.0), ab)
    np.testing.assert_allclose(hints.match_reference(ab, ref, share=0.5), 0.5 * full + 0.5 * ab, atol=1e-5)
    image = rng.integers(0, 256, (40, 50, 3), np.uint8)
    r = hints.reference(image)
    assert r.distribution.shape == (hints.n_bins(),) and r.pixels.shape == (40 * 50, 2)


def test_simulated_points_take_the_originals_patch_color_and_are_seeded():
    ab = np.zeros((32, 32, 2), np.float32)
    ab[:, 16:] = (40, -30)
    points = hints.simulate_points(ab, 50, np.random.default_rng(3))
    for p in points:
        if p.x >= 18:
            assert (p.a, p.b) == (40, -30)
        if p.x <= 13:
            assert (p.a, p.b) == (0, 0)
    again = hints.simulate_points(ab, 50, np.random.default_rng(3))
    assert points == again


# ---- the network ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hint_colorizer(tmp_path_factory):
    from inference import Colorizer
    return Colorizer.from_run(built_run(tmp_path_factory, "effnet_unet", hints=True, hint_head="attention_own"))


def _predict(model, L, local, rng) -> np.ndarray:
    """An effnet_unet with hints on L (B, 32, 32, 1) in [0, 1] and local hints (B, 32, 32, 3), random taps, no
    reference: (B, 32, 32, 2Q), the logits with hints, then the network's own."""
    taps = [rng.normal(size=(len(L), *i.shape[1:])).astype(np.float32) for i in model.inputs[1:-2]]
    net = hints.network_local(local, L[..., 0] * 100)
    return np.asarray(model.predict([L, *taps, net, np.zeros((len(L), 262), np.float32)], verbose=0))


def _decoded(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_predict's output -> (with hints, own) colors at temperature 1, ab units, each (B, 32, 32, 2)."""
    from models.effnet_unet import decode
    q = out.shape[-1] // 2
    return tuple(decode(half, "classification", 1.0) * 255 - 128 for half in (out[..., :q], out[..., q:]))


def test_the_attention_head_starts_as_the_spread_baseline_and_ignores_hints_without_points():
    """Untrained, HintAttention's weights are evaluate.py's spread (s 0.19, v 200): the hinted logits decode
    (expectation) to core.hints.spread_field's colors; an image without points gets the network's own
    logits plus the bias (zero at first), whatever its attention would say."""
    import keras

    from models import effnet_unet
    from models.effnet_unet import build
    keras.utils.set_random_seed(3)
    model = build(32, hints=True, hint_head="attention")
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 1, (3, 32, 32, 1)).astype(np.float32)
    local = np.zeros((3, 32, 32, 3), np.float32)
    for b in (1, 2):   # image 0: no points
        ab = rng.uniform(-40, 40, (32, 32, 2))
        local[b] = hints.local_planes(hints.simulate_points(ab, 5 * b, rng), (32, 32), (32, 32))
    out = _predict(model, L, local, rng)
    q = out.shape[-1] // 2
    decoded, _ = _decoded(out)
    for b in (1, 2):
        spread = hints.spread_field(local[b], L[b, ..., 0] * 100)[..., :2] * hints.AB_SCALE
        assert np.abs(decoded[b] - spread).max() < 0.5 and np.abs(spread).max() > 10
    np.testing.assert_array_equal(out[0, ..., :q], out[0, ..., q:])
    with pytest.raises(ValueError, match="hint_head must be one of"):
        effnet_unet.options(32, hints=True, hint_head="nearest")
    assert effnet_unet.options(32, hints=True)["hint_head"] == "gates"       # runs recorded before the option
    assert effnet_unet.options(32)["hint_head"] is None


@pytest.mark.parametrize("own_head", OWN_KEY_HEADS)
def test_the_own_color_key_keeps_a_lone_points_color_from_crossing_an_edge(own_head):
    """attention_own (and attention_taps, which also reads the encoder's finest taps), untrained: near its
    point (same L, within 10 px) a pixel takes the point's color as the spread does; across a sharp edge in L
    (60 levels: a spread weight of e^-18, below the own key's e^-8) it keeps the network's own color, where
    the plain attention head paints the point's color."""
    import keras

    from models.effnet_unet import build
    L = np.full((1, 32, 32, 1), 0.2, np.float32)
    L[:, :, 16:] = 0.8                                                       # a sharp edge at column 16
    local = hints.local_planes([hints.Point(8, 16, 60.0, 40.0)], (32, 32), (32, 32))[None]
    rng = np.random.default_rng(0)
    decoded = {}
    for head in (own_head, "attention"):
        keras.utils.set_random_seed(3)
        model = build(32, hints=True, hint_head=head)
        decoded[head] = [half[0] for half in _decoded(_predict(model, L, local, rng))]   # with the point, own
    hinted, own = decoded[own_head]
    rows, cols = np.mgrid[0:32, 0:32]
    near = ((rows - 16) ** 2 + (cols - 8) ** 2 <= 100) & (cols < 16)
    assert np.abs(hinted[near] - (60, 40)).max() < 1.5
    assert np.abs(hinted[:, 16:] - own[:, 16:]).max() < 1.5 and np.abs(own[:, 16:] - (60, 40)).min() > 20
    assert np.abs(decoded["attention"][0][:, 16:] - (60, 40)).max() < 1.5        # without the key: crosses


@pytest.mark.parametrize("decoder_points", [True, False])
def test_points_reach_the_decoder_only_when_asked_and_the_reference_always(decoder_points):
    """decoder_local_hints False: the decoder sees zeros for the local hints, so a point leaves the network's
    own logits exactly as they are without it (it changes colors only through the hint head); True (runs
    recorded before the option): the own logits move too. The reference reaches the decoder either way.
    The weights are the same in both (a run of either kind loads into the other)."""
    import keras

    from models.effnet_unet import build
    keras.utils.set_random_seed(3)
    model = build(32, hints=True, hint_head="attention_taps", decoder_local_hints=decoder_points)
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)
    taps = [rng.normal(size=(1, *i.shape[1:])).astype(np.float32) for i in model.inputs[1:-2]]
    local = hints.local_planes([hints.Point(8, 16, 60.0, 40.0)], (32, 32), (32, 32))[None]
    reference = hints.global_vector(hints.distribution(rng.uniform(-60, 60, (16, 16, 2))))[None]
    q = model.output.shape[-1] // 2

    def run(local, reference):   # (32, 32, 2Q): the logits with hints, then the own
        net = hints.network_local(local, L[..., 0] * 100)
        return np.asarray(model.predict([L, *taps, net, reference], verbose=0))[0]
    none = run(np.zeros_like(local), np.zeros_like(reference))
    with_point = run(local, np.zeros_like(reference))
    with_reference = run(np.zeros_like(local), reference)
    own_moved = np.abs(with_point[..., q:] - none[..., q:]).max()
    assert (own_moved > 1e-3) if decoder_points else (own_moved == 0), own_moved
    assert np.abs(with_point[..., :q] - none[..., :q]).max() > 1e-3            # the head reads the point
    assert np.abs(with_reference[..., q:] - none[..., q:]).max() > 1e-3        # and the decoder the reference
    keras.utils.set_random_seed(3)
    other = build(32, hints=True, hint_head="attention_taps", decoder_local_hints=not decoder_points)
    assert [w.shape for w in other.weights] == [w.shape for w in model.weights]


def test_hints_change_the_output_and_a_run_without_them_refuses_them(hint_colorizer, tmp_path_factory, sample_val):
    from inference import Colorizer, HintInputs, HintsNotSupportedError
    images = sample_val.images[:2]
    local = np.zeros((2, 32, 32, 3), np.float32)
    local[:, 10, 10] = (0.5, -0.3, 1.0)
    glob = np.tile(hints.global_vector(hints.reference_distribution(images[0])), (2, 1))
    plain = hint_colorizer.network_output(images).y
    hinted = hint_colorizer.network_output(images, hints=HintInputs(local, glob)).y
    assert np.abs(plain - hinted).max() > 1e-3
    no_hints = Colorizer.from_run(built_run(tmp_path_factory, "effnet_unet"))
    assert not no_hints.takes_hints
    with pytest.raises(HintsNotSupportedError, match="not trained with hints"):
        no_hints.colorize(images, hints=HintInputs(local, glob))


@pytest.mark.parametrize("shape", [(1, 1), (5, 50), (50, 5), (37, 53), (300, 451)])
def test_photos_of_any_shape_with_hints_keep_size_and_lightness(hint_colorizer, shape):
    """1-pixel, 1:10 and odd-sized photos: the working size keeps the aspect ratio (multiples of 8)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    work = hint_colorizer.working_shape(shape)
    assert all(s % 8 == 0 and s >= 8 for s in work)
    if min(shape) > 8:
        assert abs(work[1] / work[0] - shape[1] / shape[0]) < 0.35 * shape[1] / shape[0]
    points = [hints.point(shape[1] - 1, shape[0] - 1, (0, 200, 0)), hints.point(0, 0, (200, 0, 0), radius=3)]
    out, gray = hint_colorizer.colorize_photo(rgb, points, reference=rgb, with_gray=True)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and gray.shape == rgb.shape
    lab_in, lab_out = colorspace.rgb_to_lab(rgb), colorspace.rgb_to_lab(out)
    assert np.abs(lab_in[..., 0] - lab_out[..., 0]).max() < 1.0


def test_the_same_weights_serve_every_working_size(hint_colorizer):
    net = hint_colorizer.network_for((16, 40))
    assert net.input_shape[0] == (None, 16, 40, 1) and net is hint_colorizer.network_for((16, 40))
    for a, b in zip(net.get_weights(), hint_colorizer.network.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_draws_a_figure_of_the_points_it_scores(tmp_path_factory, tmp_path, capsys):
    """evaluate.py --photos DIR --hints N --figure JPG: one row per photo (gray with the N points marked
    in their original colors | no hints | with the points | the original), the photos' own sizes;
    --figure without --photos or with several N is a usage error."""
    from PIL import Image

    import evaluate
    from cli.errors import run_main
    from evaluation import hinted
    run_dir = built_run(tmp_path_factory, "effnet_unet", hints=True, hint_head="attention_own")
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = [(40, 56), (48, 32)]                                     # (H, W)
    for i, (h, w) in enumerate(sizes):
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 0], rgb[..., 2] = 200, 40                           # saturated red everywhere: points are red
        rgb[..., 1] = rng.integers(0, 60, (h, w))
        Image.fromarray(rgb).save(folder / f"{i}.png")
    out = tmp_path / "figure.jpg"
    args = ["-m", "effnet_unet", "--run-dir", str(run_dir), "--photos", str(folder), "--hints", "3",
            "--out", str(tmp_path / "hints.json"), "--figure", str(out)]
    assert run_main(evaluate.main, args) == 0
    figure = np.asarray(Image.open(out).convert("RGB")).astype(int)
    gap = hinted.FIGURE_GAP
    assert figure.shape == (40 + gap + 48, 4 * 56 + 3 * gap, 3)
    first = figure[:40, :56]                                         # the gray input with 3 red dots
    assert (first[..., 0] - first[..., 1] > 80).sum() >= 3 * 9
    assert np.abs(figure[:40, 3 * (56 + gap):] - np.asarray(Image.open(folder / "0.png"))).mean() < 4
    assert (figure[40:40 + gap] > 240).all() and (figure[40 + gap:, 4 * 32 + 3 * gap:] > 240).all()   # white padding
    for bad in (["--hints", "3", "--figure", str(out)],
                ["--photos", str(folder), "--hints", "1,3", "--figure", str(out)]):
        with pytest.raises(SystemExit) as stopped:
            evaluate.parse_args(["-m", "effnet_unet", *bad])
        assert (stopped.value.code == 2
                and "--figure goes with --photos and one --hints N above 0" in capsys.readouterr().err)


def test_a_decoding_sweep_on_photos_runs_the_network_once(tmp_path_factory, tmp_path, capsys):
    """evaluate.py --photos --hints 0 --temperatures ... --chroma-gains ...: one row per setting without hints,
    the run's own setting's row equal to the plain scores, the network run once per photo and view; a
    sweep with --hints on CIFAR-10 data (where it would be ignored) is a usage error."""
    import json

    from PIL import Image

    import evaluate
    from cli.errors import run_main
    from evaluation import hinted
    from inference.colorizer import Colorizer
    run_dir = built_run(tmp_path_factory, "effnet_unet", hints=True, hint_head="attention_own")
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    photos_ = [rng.integers(0, 256, (40, 56, 3), np.uint8), rng.integers(0, 256, (48, 32, 3), np.uint8)]
    for i, rgb in enumerate(photos_):
        Image.fromarray(rgb).save(folder / f"{i}.png")
    out = tmp_path / "hints.json"
    assert run_main(evaluate.main, ["-m", "effnet_unet", "--run-dir", str(run_dir), "--photos", str(folder),
                                    "--hints", "0", "--temperatures", "0.6,1", "--chroma-gains", "1,3",
                                    "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["sweep"]
    assert [(r["temperature"], r["chroma_gain"]) for r in rows] == [(0.6, 1), (0.6, 3), (1, 1), (1, 3)]
    assert rows[0]["psnr"] == pytest.approx(result["no_hints"]["psnr"], abs=1e-9)   # the run's own: T 0.6
    assert len({round(r["colorfulness"], 6) for r in rows}) == 4
    assert "sweep without hints" in capsys.readouterr().out
    colorizer = Colorizer.from_run(run_dir, runtime="keras")
    calls = []
    run = colorizer.network_output
    colorizer.network_output = lambda *a, **k: calls.append(1) or run(*a, **k)
    hinted.sweep_photos(colorizer, photos_, [{"temperature": 0.6}])
    once = len(calls)
    hinted.sweep_photos(colorizer, photos_, [{"temperature": t} for t in (0.6, 0.8, 1)])
    assert once >= 2 and len(calls) == 2 * once and colorizer.temperature == 0.6
    with pytest.raises(SystemExit) as stopped:
        evaluate.parse_args(["-m", "effnet_unet", "--hints", "0,10", "--temperatures", "0.6,1"])
    assert stopped.value.code == 2 and "without hints: on --photos" in capsys.readouterr().err


# ---- training's simulated hints --------------------------------------------------------------------

def test_hint_batches_are_a_function_of_seed_epoch_and_batch(sample_val):
    from training.encoder_data import HintGenerator
    taps = [np.zeros((len(sample_val), 4, 4, 8), np.float16)]
    gen = HintGenerator(sample_val, 16, "features", shuffle=True, prior=taps, flip_prior=taps, seed=5)
    first = gen.epoch_batch(2, 1)
    (_x, _, local, glob), _ = first
    assert local.shape == (16, 32, 32, hints.NETWORK_CHANNELS) and glob.shape == (16, hints.n_bins() + 1)
    again = HintGenerator(sample_val, 16, "features", shuffle=True, prior=taps, flip_prior=taps,
                          seed=5).epoch_batch(2, 1)
    np.testing.assert_array_equal(again[0][2], local)
    other = gen.epoch_batch(3, 1)[0][2]
    assert not np.array_equal(other, local)
    # a hint's color is the served (possibly mirrored) image's own mean over a patch of 1-3 pixels around it
    order, mirrored = gen._epoch_plan(2)
    idx = order[16:32]
    served = gen.ab[idx].copy()
    served[mirrored[idx]] = served[mirrored[idx]][:, :, ::-1]
    mask = local[..., 2] > 0
    assert 0 < mask.mean() < 0.2 and np.abs(local[..., :2][~mask]).max() == 0
    for i, r, c in zip(*np.nonzero(mask)):
        window = served[i, max(0, r - 2):r + 3, max(0, c - 2):c + 3].reshape(-1, 2)
        value = local[i, r, c, :2] * hints.AB_SCALE
        assert np.all(value >= window.min(0) - 1e-3) and np.all(value <= window.max(0) + 1e-3)
    on = glob[:, -1] == 1
    np.testing.assert_allclose(glob[on, :-1], gen.distributions[idx[on]], atol=1e-6)


def test_unet_and_the_gan_take_a_working_size_and_the_others_say_they_cannot(tmp_path_factory):
    """Every fully convolutional model gets the working size (the U-Nets: multiples of 32, when asked)."""
    from inference import Colorizer
    rgb = np.random.default_rng(1).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    for model, color_space in (("unet", None), ("gan", "rgb")):
        colorizer = Colorizer.from_run(built_run(tmp_path_factory, model, color_space=color_space))
        assert colorizer.working_shape((300, 451)) == (32, 32)            # by default: as trained
        assert colorizer.working_shape((300, 451), 96) == (64, 96)
        assert "multiples of 32" in colorizer.fixed_size_note(48)
        out, _ = colorizer.colorize_photo(rgb, long_side=96)
        assert out.shape == rgb.shape and colorizer.network_for((64, 96)).input_shape[1:3] == (64, 96)
    fixed = Colorizer.from_run(built_run(tmp_path_factory, "autoencoder"))
    assert "training size only" in fixed.fixed_size_note(64) and fixed.working_shape((300, 451), 64) == (32, 32)
