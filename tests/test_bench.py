"""bench.py's pure parts: the FLOP counter and the BENCHMARKS.md writer (no timing here)."""
import keras
import pytest

import bench
from benchmarks import backends, flops, report
from benchmarks.settings import Row


def tiny_model():
    """Conv2D 3x3, 1 -> 2 channels, on a 4x4 input ('valid': 2x2 out), then Dense 8 -> 3."""
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)   # (2, 2, 2)
    x = keras.layers.Flatten()(x)                        # 8
    outputs = keras.layers.Dense(3, name="dense")(x)
    return keras.Model(inputs, outputs)


# By hand: conv 2 FLOPs x (3*3 kernel x 1 in x 2 out) per output position x (2*2) positions = 144;
# dense 2 x 8 inputs x 3 outputs = 48; biases not counted.
CONV_FLOPS = 2 * (3 * 3 * 1 * 2) * (2 * 2)
DENSE_FLOPS = 2 * 8 * 3
TINY_FLOPS = CONV_FLOPS + DENSE_FLOPS


def test_layer_flops_by_hand():
    model = tiny_model()
    assert CONV_FLOPS == 144 and DENSE_FLOPS == 48
    assert flops.layer_flops(model.get_layer("conv")) == CONV_FLOPS
    assert flops.layer_flops(model.get_layer("dense")) == DENSE_FLOPS
    assert flops.forward_flops(model) == TINY_FLOPS == 192


def test_same_padding_counts_every_output_position():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))
    assert flops.forward_flops(model) == 2 * (3 * 3 * 1 * 2) * (4 * 4)


def test_nested_models_are_counted_once_through_their_layers():
    inner = tiny_model()
    inputs = keras.Input((4, 4, 1))
    outer = keras.Model(inputs, inner(inputs))
    assert flops.forward_flops(outer) == TINY_FLOPS


def test_training_and_gan_conventions():
    assert flops.training_flops(TINY_FLOPS) == 3 * 192
    # G fakes + 2 D steps of 3D + combined 3G + 2D = 4G + 8D
    assert flops.gan_training_flops(generator=10, discriminator=1) == 10 + 6 + 30 + 2 == 4 * 10 + 8 * 1


def test_real_model_flops_match_the_unet_levels():
    from models import build_model
    model = build_model("unet")
    # first level: 4x4 conv, 1 -> 64 channels, stride 2 on 32x32 -> 16x16 positions
    assert flops.layer_flops(model.get_layer("down1_conv")) == 2 * 4 * 4 * 1 * 64 * 16 * 16
    assert flops.forward_flops(model) > 0


def test_parse_cpu_model():
    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
            "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
    assert report.parse_cpu_model(text) == "AMD EPYC 7B13"
    assert report.parse_cpu_model("processor : 0\n") == "unknown"


def test_parse_cpu_isa_names_the_vector_extensions_that_matter():
    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
    assert report.parse_cpu_isa(avx2) == "avx2 fma"
    zen5 = "flags\t: avx2 fma avx512f avx512dq avx512_vnni avx512_bf16 avx512_vp2intersect\n"
    assert report.parse_cpu_isa(zen5) == "avx2 fma avx512f avx512_vnni avx512_bf16"
    assert report.parse_cpu_isa("flags\t: sse2\n") == "no AVX2"
    assert report.parse_cpu_isa("processor : 0\n") == "unknown"


INFO = {"cpu": "Test CPU", "isa": "avx2 fma", "onednn": "1", "cores": 2, "usable_cores": 2, "tensorflow": "2.0",
        "keras": "3.0", "numpy": "2.0", "python": "3.11", "backend": "tensorflow", "date": "2024-01-02 03:04:05 UTC",
        "load": 0.1}


def rows(n=2):
    return [Row("train", f"model{i}", "batch 32, XLA off", f"{i + 1}.0 img/s", 12.5, 40.0, "a | b")
            for i in range(n)]


def test_table_format():
    table = report.render_table(rows(3)).splitlines()
    assert table[0] == "| section | item | setting | result | GFLOP/s | % peak | notes |"
    assert len(table) == 2 + 3
    # the same number of cells in every line; a '|' inside a cell is escaped
    assert len({line.replace("\\|", "").count("|") for line in table}) == 1
    assert table[2] == "| train | model0 | batch 32, XLA off | 1.0 img/s | 12.5 | 40.0 | a \\| b |"


def test_section_header():
    text = report.render_section(INFO, "python bench.py --quick", "quick", rows())
    assert text.startswith("## 2024-01-02 03:04:05 UTC: quick run, tensorflow backend\n")
    for needle in ("`python bench.py --quick`", "Test CPU (avx2 fma), 2 cores (2 usable); TF_ENABLE_ONEDNN_OPTS=1",
                   "TensorFlow 2.0, Keras 3.0, NumPy 2.0", "backend tensorflow", "random weights"):
        assert needle in text
    assert "busy" not in text and "incomplete" not in text
    busy = report.render_section({**INFO, "load": 3.0}, "c", "quick", rows(), done=False)
    assert "busy machine" in busy and "incomplete" in busy


def test_writer_creates_updates_and_appends(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    first = report.render_section(INFO, "python bench.py", "full", rows(1), done=False)
    report.update_benchmarks(out, "run-1", first)
    text = out.read_text()
    assert text.startswith(report.PREAMBLE)
    assert text.count("<!-- bench run run-1 -->") == 1 and "model0" in text

    # the same run, more rows: its section is replaced, not repeated
    second = report.render_section(INFO, "python bench.py", "full", rows(2))
    report.update_benchmarks(out, "run-1", second)
    text = out.read_text()
    assert text.count("<!-- bench run run-1 -->") == 1 and text.count("## ") == 1
    assert "model1" in text and "incomplete" not in text

    # another run: a new section after the first, the preamble once
    report.update_benchmarks(out, "run-2", report.render_section(INFO, "python bench.py --quick", "quick", rows(1)))
    text = out.read_text()
    assert text.count(report.PREAMBLE) == 1
    assert text.index("<!-- bench run run-1 -->") < text.index("<!-- bench run run-2 -->")
    assert text.count("## ") == 2


def test_writer_is_idempotent(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    report.update_benchmarks(out, "a", "## A\n\nfirst\n")
    report.update_benchmarks(out, "b", "## B\n\nsecond\n")
    snapshot = out.read_text()
    for _ in range(2):
        report.update_benchmarks(out, "a", "## A\n\nfirst\n")
        report.update_benchmarks(out, "b", "## B\n\nsecond\n")
        assert out.read_text() == snapshot
    # updating the first section leaves the second one as it was
    report.update_benchmarks(out, "a", "## A\n\nchanged\n")
    assert out.read_text() == snapshot.replace("first", "changed")


def test_writer_keeps_existing_text(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# My notes\n\nhand-written\n")
    report.update_benchmarks(out, "x", "## X\n")
    text = out.read_text()
    assert text.startswith("# My notes\n\nhand-written\n\n<!-- bench run x -->\n## X\n")


@pytest.mark.parametrize("value, expected", [("tensorflow,jax", ("tensorflow", "jax")), ("torch", ("torch",))])
def test_backend_list(value, expected):
    assert bench._csv(backends.BACKENDS)(value) == expected


def test_backend_list_rejects_unknown():
    import argparse
    with pytest.raises(argparse.ArgumentTypeError, match="unknown mxnet"):
        bench._csv(backends.BACKENDS)("tensorflow,mxnet")


def test_sections_are_listed_with_their_functions():
    assert "photos" in bench.SECTIONS and bench.parse_args(["--sections", "photos"]).sections == ("photos",)
    assert all(callable(bench.section_function(name)) for name in bench.SECTIONS)


def test_bench_photos_section_runs_with_the_smoke_settings(tmp_path):
    from benchmarks import photos
    from benchmarks.settings import SMOKE, Context

    ctx = Context(SMOKE, (), (), ["--smoke"], tmp_path)
    rows = photos.bench_photos(ctx)
    assert all(r.section == "photos" and r.result != "FAILED" for r in rows), [r.notes for r in rows]
    s = SMOKE
    loader = [f"{size} px, {w} worker{'s' if w > 1 else ''}, batch {s.default_batch}"
              for size in s.photos_crop_sizes for w in s.photos_workers]
    n = s.photos_generated * s.photos_bank_k
    epoch = f"epoch of {n} crops at {s.photos_epoch_size} px ({s.photos_generated} photos x {s.photos_bank_k})"
    assert [r.item.split(":")[0] for r in rows] == (["loader"] * len(loader) + ["crop bank"]
                                                   + ["encoder"] * len(s.photos_encoder_sizes)
                                                   + ["decoder"] * len(s.photos_decoder_sizes) + [epoch] * 2)
    assert [r.setting for r in rows[:len(loader)]] == loader
    first = len(loader) + 1                               # after the loader and crop bank rows
    encoder = rows[first:first + len(s.photos_encoder_sizes)]
    decoder = rows[first + len(encoder):-2]
    assert rows[len(loader)].setting.startswith(f"K {s.photos_bank_k} at {s.photos_epoch_size} px, ")
    assert [r.setting for r in encoder] == [f"{e} px, batch {s.photos_encoder_batch}" for e in s.photos_encoder_sizes]
    assert [r.setting for r in decoder] == [f"{d} px, batch {s.photos_decoder_batch}" for d in s.photos_decoder_sizes]
    assert [r.setting for r in rows[-2:]] == ["cached crop bank", "streaming crops"]
    units = ["crops/s"] * len(loader) + ["s"] + ["img/s"] * (len(encoder) + len(decoder)) + ["s/epoch"] * 2
    for row, unit in zip(rows, units, strict=True):
        value, got = row.result.split(" ", 1)
        assert got == unit and float(value) > 0, row
    assert all("CPU" in r.notes and "ms/crop" in r.notes and "generated" in r.notes for r in rows[:len(loader)])
    assert f"{n}/decoder{s.photos_epoch_size}" in rows[-2].notes
    assert f"{n}/loader{s.photos_epoch_size} + {n}/encoder{4 * s.photos_epoch_size}" in rows[-1].notes
    # streaming = the three rates' sum, cached = the decoder alone: streaming is the longer epoch
    assert float(rows[-1].result.split()[0]) > float(rows[-2].result.split()[0])
    assert [line.split(":")[0].split(", ")[-1] for line in ctx.summary] == ["cached crop bank", "streaming crops"]
    assert len(list((tmp_path / "photos-96x64").glob("*.jpg"))) == s.photos_generated
