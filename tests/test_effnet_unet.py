"""effnet_unet: cached encoder taps, flips, training through train.py, --init, decoding options."""
import json

import numpy as np
import pytest

from cli.errors import run_main
from core import runs, tblog
from inference.colorizer import Colorizer
from loaders.cifar import CifarGenerator
from priors import features

TINY = ["--encoder-size", "32"]   # the encoder at 32 px: taps 8x8 .. 1x1, seconds instead of minutes


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-epoch effnet_unet run (classification head) on 16 sample images, tiny encoder, with logs."""
    base = tmp_path_factory.mktemp("effnet")
    run_dir = base / "run"
    script("train", "-m", "effnet_unet", *TINY, "--epochs", "2", "--limit", "16", "--batch-size", "8",
           "--seed", "1", "--run-dir", run_dir, "--log-dir", base / "logs")
    return run_dir


def script(name: str, *args, expect: int = 0) -> None:
    """Run an entry script's main in this process (no interpreter start-up and TensorFlow import per call)."""
    module = __import__(name)
    assert run_main(module.main, [str(a) for a in args]) == expect


def test_taps_are_computed_once_and_cached_by_content(tmp_path, sample_val, monkeypatch):
    calls = []
    real = features._run_encoder
    monkeypatch.setattr(features, "_run_encoder", lambda *a, **k: calls.append(a) or real(*a, **k))
    images = sample_val.images[:4].copy()
    first = features.compute_features(images, 32, ["s4", "s32"], cache_dir=tmp_path, verbose=False)
    assert [t.shape for t in first] == [(4, 8, 8, 24), (4, 1, 1, 320)] and first[0].dtype == np.float16
    again = features.compute_features(images, 32, ["s4", "s32"], cache_dir=tmp_path, verbose=False)
    assert len(calls) == 1 and all(np.array_equal(a, b) for a, b in zip(first, again))
    mirrored = features.compute_features(images, 32, ["s4", "s32"], flip=True, cache_dir=tmp_path, verbose=False)
    assert len(calls) == 2 and not np.array_equal(mirrored[0], first[0])
    direct = features.compute_features(images[:, :, ::-1].copy(), 32, ["s4", "s32"], cache=False, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(mirrored, direct))
    with pytest.raises(features.FeatureError, match="multiple of 32"):
        features.compute_features(images, 48, ["s32"], cache=False)


def test_generator_mirrors_images_with_their_own_taps(sample_val):
    data = sample_val.subset(16)
    rng = np.random.default_rng(0)
    taps = [rng.normal(size=(16, 4, 4, 3)).astype(np.float16)]
    mirrored = [rng.normal(size=(16, 4, 4, 3)).astype(np.float16)]
    gen = CifarGenerator(data, 16, "features", shuffle=False, prior=taps, flip_prior=mirrored, seed=1)
    plain = CifarGenerator(data, 16, "features", shuffle=False, prior=taps, is_training=False)
    (x, tap), y = gen[0]
    (x0, tap0), y0, _ = plain[0]
    flip = gen.mirrored
    assert 0 < flip.sum() < 16 and tap.dtype == np.float32
    np.testing.assert_array_equal(x[flip], x0[flip][:, :, ::-1])
    np.testing.assert_array_equal(y[flip], y0[flip][:, :, ::-1])
    np.testing.assert_array_equal(tap[flip], mirrored[0][flip].astype(np.float32))
    np.testing.assert_array_equal(x[~flip], x0[~flip])
    np.testing.assert_array_equal(tap[~flip], tap0[~flip])
    gen.on_epoch_end()
    assert not np.array_equal(gen.mirrored, flip)          # drawn again each epoch ...
    (x_again, _), y_again = gen.epoch_batch(0, 0)           # ... from (seed, epoch) alone: a resume sees epoch 0 again
    np.testing.assert_array_equal(x_again, x)
    np.testing.assert_array_equal(y_again, y)


def test_train_records_the_head_and_rebalancing_and_the_loss_falls(tiny_run):
    config = runs.load_config(tiny_run)
    options = config["model_options"]
    assert options["head"] == "classification" and options["encoder_size"] == 32 and options["temperature"] == 0.6
    assert options["decay_steps"] == 2 * 2                  # cosine decay over the whole run: 2 epochs of 2 steps
    weights = np.array(config["class_rebalancing"]["weights"])
    assert len(weights) == 261 and weights.min() > 0 and config["class_rebalancing"]["lambda"] == 0.5
    assert runs.current_checkpoint(tiny_run).state["epoch"] == 2 and (tiny_run / "samples" / "epoch-002.jpg").is_file()
    losses = [v for _, v in tblog.read_scalars(config["log_dir"])["train"]["epoch_loss"]]
    assert len(losses) == 2 and np.all(np.isfinite(losses)) and losses[1] < losses[0]


def test_evaluate_sweeps_temperatures_and_chroma_gains(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    script("evaluate", "-m", "effnet_unet", "--run-dir", tiny_run, "--limit", "20", "--out", out,
           "--temperatures", "1,0.38", "--chroma-gains", "1,1.5")
    sweep = json.loads(out.read_text())["sweep"]
    assert [(p["temperature"], p["chroma_gain"]) for p in sweep] == [(1, 1), (1, 1.5), (0.38, 1), (0.38, 1.5)]
    # more gain, more color; a lower temperature, more color
    assert sweep[1]["colorfulness"] > sweep[0]["colorfulness"] and sweep[2]["colorfulness"] > sweep[0]["colorfulness"]
    assert "sweep (T: temperature" in capsys.readouterr().out


def test_train_records_the_regression_loss(sample_val):
    import train
    from training import encoder_data
    args = train.parse_args(["-m", "effnet_unet", "--head", "regression", "--loss", "l1", "--epochs", "3"])
    options = encoder_data.model_options(args, sample_val, None)
    assert options["head"] == "regression" and options["loss"] == "l1"
    assert encoder_data.model_options(train.parse_args(["-m", "effnet_unet"]), sample_val, None)["loss"] == "huber"


def test_a_new_hints_run_gets_the_shipped_runs_head_and_an_init_run_keeps_its_own(sample_val):
    import train
    from training import encoder_data
    shipped = runs.load_config(runs.ROOT / "pretrained" / "effnet_unet")
    fresh = encoder_data.model_options(train.parse_args(["-m", "effnet_unet", "--hints"]), sample_val, None)
    assert fresh["hint_head"] == shipped["model_options"]["hint_head"] == "attention_taps"
    gates = {**shipped, "model_options": {**shipped["model_options"], "hint_head": "gates"}}
    inherited = encoder_data.model_options(train.parse_args(["-m", "effnet_unet", "--hints", "--init", "x"]),
                                           sample_val, gates)
    assert inherited["hint_head"] == "gates"


def test_a_fine_tuning_network_starts_from_the_imagenet_encoder(sample_val):
    """--fine-tune-from s16: the stride-32 stages are inside the network, and before training it computes
    what the frozen encoder computes (its s32 tap) from the cached s16 tap."""
    import keras

    from models import build_model, effnet_unet
    from training import encoder_data
    options = effnet_unet.options(32, encoder_size=64, fine_tune="s16")
    assert effnet_unet.encoder_taps(options) == ["s4", "s8", "s16"]
    model = build_model("effnet_unet", image_size=32, **options)
    encoder_data.start_encoder(model, {"model_options": options})
    images = sample_val.images[:4]
    frozen = features.compute_features(images, 64, ["s4", "s8", "s16", "s32"], cache=False, verbose=False)
    x = np.zeros((4, 32, 32, 1), np.float32)
    inner = keras.Model(model.inputs, model.get_layer("blocks_15__bn2").output)
    s32 = np.asarray(inner.predict_on_batch([x, *(t.astype(np.float32) for t in frozen[:3])]))
    expected = frozen[3].astype(np.float32)                               # (4, 2, 2, 320)
    assert s32.shape == expected.shape
    assert np.abs(s32 - expected).max() < 0.02 * np.abs(expected).max()  # float16 taps in between
    blocks = effnet_unet.encoder_layers(model)
    assert {layer.name.split("__")[0] for layer in blocks} == {f"blocks_{i}" for i in range(11, 16)}
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization)
               for layer in blocks if layer.weights)
    with pytest.raises(ValueError, match="needs that tap among the taps"):
        effnet_unet.options(32, taps=("s4", "s32"), fine_tune="s16")


def test_fine_tuning_trains_the_encoder_blocks_from_a_frozen_run(tiny_run, tmp_path):
    """--init from a frozen run with --fine-tune-from s16: the decoder starts from that run, the encoder
    blocks from ImageNet, and both change while the loss falls."""
    import keras

    from models import build_model
    from priors.features import imagenet_encoder
    run_dir = tmp_path / "ft"
    script("train", "-m", "effnet_unet", "--init", tiny_run, "--fine-tune-from", "s16", "--learning-rate", "1e-3",
           "--epochs", "3", "--limit", "16", "--batch-size", "8", "--seed", "1", "--run-dir", run_dir,
           "--log-dir", tmp_path / "logs")
    config = runs.load_config(run_dir)
    assert config["model_options"]["fine_tune"] == "s16" and config["init"]["run_dir"] == str(tiny_run)
    tuned = build_model("effnet_unet", **config["model_options"])
    runs.load_weights(tuned, run_dir, "model")
    start = keras.ops.convert_to_numpy(imagenet_encoder(32).get_layer("blocks_12__expand_conv").kernel)
    after = keras.ops.convert_to_numpy(tuned.get_layer("blocks_12__expand_conv").kernel)
    assert after.shape == start.shape and 0 < np.abs(after - start).max() < 0.1   # trained, near ImageNet's
    losses = [v for _, v in tblog.read_scalars(tmp_path / "logs")["train"]["epoch_loss"]]
    # one step per epoch, each with other simulated hints (the hinted half of the loss is noisy): it starts
    # at the shipped run's level (an untrained network: about 2 ln 261 = 11.1) and goes below it
    assert len(losses) == 3 and losses[0] < 7.0 and min(losses[1:]) < losses[0], losses


def test_temperature_needs_a_classification_head(unet_run, capsys):
    import predict
    from cli.errors import run_main
    assert run_main(predict.main, ["-m", "unet", "--run-dir", str(unet_run), "--temperature", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--temperature applies to a classification head" in err


def test_init_from_the_shipped_run_fine_tunes_on_photos(tmp_path, sample_val):
    """--init pretrained/effnet_unet on four photos of another size: a new run that starts there and learns."""
    from PIL import Image
    shipped = runs.ROOT / "pretrained" / "effnet_unet"
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, image in enumerate(sample_val.images[:4]):     # any names: labels unknown
        Image.fromarray(image).resize((48, 48), Image.BICUBIC).save(photos / f"photo{i}.jpg")
    run_dir = tmp_path / "tuned"
    script("train", "-m", "effnet_unet", "--init", shipped, "--data", photos, "--image-size", "48",
           "--epochs", "3", "--batch-size", "4", "--seed", "2", "--run-dir", run_dir, "--log-dir", tmp_path / "logs")
    config, shipped_config = runs.load_config(run_dir), runs.load_config(shipped)
    assert config["init"]["run_dir"] == str(shipped)
    options = config["model_options"]
    assert options["image_size"] == 48 and options["learning_rate"] == 1e-4
    assert options["encoder_size"] == shipped_config["model_options"]["encoder_size"] * 48 // 32   # same scale
    assert options["widths"] == shipped_config["model_options"]["widths"]
    # the shipped run's test-time views come along (both true there), and the tools work at the run's size
    assert config["flip_average"] is config["square_view"] is True
    colorizer = Colorizer(config, run_dir=run_dir)
    assert colorizer.flip_average and colorizer.square_view and colorizer.work_size == 48
    assert colorizer.working_shape((300, 451)) == (32, 48) and colorizer.working_shape((300, 451), 96) == (64, 96)
    losses = [v for _, v in tblog.read_scalars(tmp_path / "logs")["train"]["epoch_loss"]]
    # one step per epoch, each with other simulated hints (the hinted half of the loss is noisy): it starts
    # at the shipped run's level (an untrained network: about 2 ln 261 = 11.1) and goes below it
    assert len(losses) == 3 and losses[0] < 7.0 and min(losses[1:]) < losses[0], losses


def test_init_refuses_another_model_or_architecture_in_one_line(tiny_run, unet_run, tmp_path, capsys):
    for args, message in ((["--init", unet_run], "is a run of 'unet', not 'effnet_unet'"),
                          (["--init", tiny_run, "--head", "regression"], "same architecture"),
                          (["--init", tiny_run, "--hint-head", "attention"], "was trained without hints"),
                          (["--init", tiny_run, "--decoder-points", "off"], "was trained without hints")):
        script("train", "-m", "effnet_unet", *args, "--limit", "8", "--run-dir", tmp_path / "x", expect=2)
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err
        assert not (tmp_path / "x").exists()


def test_train_new_only_trains_the_attention_head_alone_from_a_gates_run(tmp_path_factory, tmp_path, capsys):
    """--init a run with the gates head, --train-new-only: the new run's layers that the
    gates run has keep its weights exactly (it colorizes without points as that run), the attention head
    (train.py's default, attention_own) learns; a resume freezes the same layers (encoder_data.train_new_only,
    before the checkpoint is restored).
    Without --init, or with nothing new, one line."""
    from conftest import built_run
    from models import build_model
    gates = built_run(tmp_path_factory, "effnet_unet", hints=True, hint_head="gates")
    run_dir = tmp_path / "attention"
    common = ("--limit", "16", "--batch-size", "8", "--seed", "1", "--no-logs", "--learning-rate", "1e-2")
    script("train", "-m", "effnet_unet", "--init", gates, "--hint-head", "attention_own", "--train-new-only",
           "--decoder-points", "off", "--epochs", "2", *common, "--run-dir", run_dir)
    assert "training only the layers" in capsys.readouterr().out
    config = runs.load_config(run_dir)
    assert config["model_options"]["hint_head"] == "attention_own" and config["init"]["train_new_only"] is True
    assert config["model_options"]["decoder_local_hints"] is False                # the points reach the head alone
    source, tuned = (build_model("effnet_unet", **runs.load_config(d)["model_options"]) for d in (gates, run_dir))
    runs.load_weights(source, gates, "model")
    runs.load_weights(tuned, run_dir, "model")
    kept = [layer.name for layer in tuned.layers if layer.weights and layer.name in {x.name for x in source.layers}]
    assert "out_mix" in kept and "hint_logits" in kept and "level0_bn" in kept
    for name in kept:
        for a, b in zip(source.get_layer(name).get_weights(), tuned.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    fresh = build_model("effnet_unet", **config["model_options"])
    start = fresh.get_layer("hint_attention")
    assert any(np.abs(a - b).max() > 1e-4
               for a, b in zip(start.get_weights(), tuned.get_layer("hint_attention").get_weights()))
    from training import encoder_data
    assert sorted(encoder_data.train_new_only(fresh, gates)) == ["hint_attention", "hint_context", "hint_embed",
                                                                 "hint_own_key", "own_color"]
    assert len(fresh.trainable_weights) == 11 and fresh.get_layer("out_mix").trainable is False
    script("train", "-m", "effnet_unet", "--hints", "--init", gates, "--train-new-only", *common,
           "--run-dir", tmp_path / "x", expect=2)                           # the usage errors: test_startup
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no layer that" in err
