"""evaluate.py and its --compare mode on tiny trained runs and the bundled sample."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import run_script as run
from conftest import trained_run

METRIC_KEYS = {"n_images", "psnr_color", "n_no_color", "psnr", "psnr_pooled", "psnr_n_capped", "ssim", "mae",
               "colorfulness", "colorfulness_true", "colorfulness_delta", "per_class"}


@pytest.fixture(scope="session")
def autoencoder_run(tmp_path_factory):
    return trained_run(tmp_path_factory, "autoencoder", logs=True)   # with logs: compare plots its curves


def test_evaluate_writes_every_figure_and_prints_the_table(unet_run, tmp_path):
    out = tmp_path / "eval.json"
    result = run("evaluate.py", "-m", "unet", "--run-dir", str(unet_run), "--limit", "30", "--out", str(out))
    doc = json.loads(out.read_text())
    assert doc["model"] == "unet" and doc["run_dir"] == str(unet_run)
    assert doc["n_images"] == 30 and doc["data"]["n_images"] == 30 and doc["image_size"] == 32
    assert "sample" in doc["data"]["description"] and "100 dB" in doc["psnr_cap_note"]
    model, gray = doc["metrics"]["model"], doc["metrics"]["gray_baseline"]
    for report in (model, gray):
        assert set(report) == METRIC_KEYS and report["n_images"] == 30
        assert math.isfinite(report["psnr"]) and 0 < report["psnr"] < 100
        assert report["psnr_n_capped"] == 0 and -1 <= report["ssim"] <= 1 and 0 <= report["mae"] <= 1
        # every sample image is named img-<index>-<class>.png, so each one counts in its class
        assert sum(c["n_images"] for c in report["per_class"].values()) == 30
    assert gray["colorfulness"] == 0.0                         # R = G = B
    assert gray["colorfulness_true"] == model["colorfulness_true"] > 0
    assert gray["colorfulness_delta"] == -gray["colorfulness_true"]
    assert gray["psnr"] > 15                                   # gray is a strong baseline on CIFAR
    # the printed table: model vs gray, then per class
    assert "gray baseline" in result.stdout and "PSNR per image, color originals (dB)" in result.stdout
    # the headline leaves out originals without color; the sample's first 30 all have color
    assert model["n_no_color"] == 0 and model["psnr_color"] == pytest.approx(model["psnr"])
    assert "per class" in result.stdout and "airplane" in result.stdout
    assert f"{model['psnr']:.2f}" in result.stdout and f"{gray['psnr']:.2f}" in result.stdout


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    import evaluate
    from cli import errors as cli

    assert cli.run_main(evaluate.main, ["-m", "unet", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no run of 'unet'" in err
    assert cli.run_main(evaluate.main, ["-m", "nosuchmodel"]) == 2
    assert "valid names" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:                # neither -m nor --compare: usage error
        evaluate.parse_args([])
    assert exit_info.value.code == 2


def test_gray_baseline_keeps_lightness_and_drops_color(sample_val):
    from core import colorspace
    from evaluation import scoring

    gray = scoring.gray_baseline(sample_val.images[:4])
    assert gray.dtype == np.uint8 and gray.shape == (4, 32, 32, 3)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    diff = colorspace.rgb_to_lab(gray)[..., 0] - colorspace.rgb_to_lab(sample_val.images[:4])[..., 0]
    assert np.abs(diff).max() < 0.5                            # L kept up to 8-bit rounding


def test_compare_writes_markdown_json_grid_and_curves(unet_run, autoencoder_run, tmp_path):
    runs_dir = unet_run.parent.parent
    out = tmp_path / "results"
    # effnet_unet left out: without a local run it is scored from its shipped run (tests/test_pretrained.py)
    result = run("evaluate.py", "--compare", "--runs-dir", str(runs_dir), "--out-dir", str(out), "--limit", "20",
                 "--models", "autoencoder,unet,fusion_label,fusion_resnet,gan")
    page = (out / "comparison.md").read_text()
    table_rows = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    metrics_rows = table_rows[1:4]                             # header, then one row per model + gray
    assert [r.split("|")[1].strip() for r in metrics_rows] == ["autoencoder", "unet", "gray baseline"]
    assert not any(r.startswith("| fusion_label ") for r in table_rows)
    for name in ("fusion_label", "fusion_resnet", "gan"):
        assert f"- {name}: skipped: no run of '{name}'" in page
    assert str(unet_run) in page and str(autoencoder_run) in page
    assert "](comparison/grid.png)" in page and "](comparison/curves-autoencoder.png)" in page
    assert "- unet: no training logs" in page                  # trained with --no-logs

    doc = json.loads((out / "comparison.json").read_text())
    assert set(doc["models"]) == {"unet", "autoencoder"} and set(doc["skipped"]) == {"fusion_label",
                                                                                      "fusion_resnet", "gan"}
    assert doc["n_images"] == 20 and doc["gray_baseline"]["colorfulness"] == 0.0
    for name in ("unet", "autoencoder"):
        assert set(doc["models"][name]["metrics"]) == METRIC_KEYS
        assert math.isfinite(doc["models"][name]["metrics"]["psnr"])
        # the trade-off sweep: chroma gains 1 .. 1.6 (no temperatures: regression models); gain 1 is the
        # evaluation itself (these one-step runs are already so colorful that more gain mostly clips)
        sweep = doc["models"][name]["sweep"]
        assert [(p["temperature"], p["chroma_gain"]) for p in sweep] == [(None, 1.0), (None, 1.2), (None, 1.4),
                                                                         (None, 1.6)]
        assert sweep[0]["psnr_pooled"] == pytest.approx(doc["models"][name]["metrics"]["psnr_pooled"])
        assert sweep[0]["colorfulness"] == pytest.approx(doc["models"][name]["metrics"]["colorfulness"])
        assert len({round(p["psnr_pooled"], 6) for p in sweep}) == 4          # each gain changes the colors
    assert Image.open(out / "comparison" / "tradeoff.png").size[0] > 300
    assert "](comparison/tradeoff.png)" in page

    grid = np.asarray(Image.open(out / "comparison" / "grid.png"))
    # 12 rows of 32 px cells enlarged 3x, under a header; columns gray, autoencoder, unet, original
    cell, gap = 96, 12
    assert grid.shape[0] > 12 * cell and grid.shape[1] == 4 * cell + 3 * gap
    body = grid[grid.shape[0] - 12 * cell:]
    gray_col = body[:, :cell].astype(int)
    assert (gray_col[..., 0] == gray_col[..., 1]).all()          # the gray column is gray
    header = grid[:grid.shape[0] - 12 * cell]
    assert (header < 128).any()                                # column names are drawn
    assert Image.open(out / "comparison" / "curves-autoencoder.png").size[0] > 100
    assert "gray baseline" in result.stdout and "comparison.md" in result.stdout


def test_compare_with_no_runs_lists_all_as_skipped(tmp_path, capsys):
    import compare

    out = tmp_path / "results"
    assert compare.main(["--runs-dir", str(tmp_path / "none"), "--out-dir", str(out), "--limit", "12",
                         "--models", "unet,autoencoder"]) == 0
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["models"] == {} and set(doc["skipped"]) == {"unet", "autoencoder"}
    page = (out / "comparison.md").read_text()
    assert "| gray baseline |" in page and "only the gray baseline" in capsys.readouterr().out


def test_evaluate_video_writes_flicker_figures_for_a_videoset_clip(tmp_path):
    pytest.importorskip("av")
    from conftest import ROOT
    from evaluation import videoset

    plan = videoset.clip_plan((64, 36), 6, photoset=None)
    pan = videoset.write_clip("pan", plan["pan"], tmp_path, (64, 36), 24)
    cut = videoset.write_clip("cut", plan["cut"], tmp_path, (64, 36), 24)
    plain = tmp_path / "plain" / "pan.mp4"                       # the same clip without its JSON: no known motion
    plain.parent.mkdir()
    plain.write_bytes(pan.read_bytes())
    out = tmp_path / "video.json"
    result = run("evaluate.py", "--video", str(pan), str(cut), str(plain),
                 "--run-dir", str(ROOT / "pretrained" / "effnet_unet"), "--out", str(out))
    doc = json.loads(out.read_text())                           # strict JSON (no NaN)
    assert doc["model"] == "effnet_unet" and doc["modes"] == ["frame", "stable"] and doc["settings"]["carry"] == 0.9
    clips = doc["clips"]
    assert set(clips) == {str(pan), str(cut), str(plain)} and clips[str(pan)]["meta"] == str(pan.with_suffix(".json"))
    for mode in ("frame", "stable"):
        r = clips[str(pan)]["modes"][mode]
        assert r["frames"] == 6 and len(r["per_frame"]["psnr"]) == 6 and len(r["per_frame"]["flicker"]) == 5
        assert r["flicker"] > 0 and r["excess_flicker"] == pytest.approx(r["flicker"] - r["flicker_original"])
        assert 0 < r["warp_error"] < 0.1 and 5 < r["psnr"] < 60 and r["psnr_gray"] > 5
    assert clips[str(cut)]["modes"]["stable"]["cuts"] == [3] and clips[str(cut)]["modes"]["stable"]["psnr_after_cut"]
    unknown = clips[str(plain)]["modes"]["stable"]
    assert clips[str(plain)]["meta"] is None and unknown["flicker"] is None and unknown["warp_error"] > 0
    assert "excess flicker" in result.stdout and "PSNR stable - frame" in result.stdout and str(out) in result.stdout
    # --no-stabilize: frame by frame only
    run("evaluate.py", "--video", str(pan), "--no-stabilize", "--no-warping", "--run-dir",
        str(ROOT / "pretrained" / "effnet_unet"), "--out", str(out))
    doc = json.loads(out.read_text())
    assert (list(doc["clips"][str(pan)]["modes"]) == ["frame"]
            and doc["clips"][str(pan)]["modes"]["frame"]["warp_error"] is None)
