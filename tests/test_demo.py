"""demo.py and serving/webapp.py: the page's form, its refusals, and a real browser using it.

The Flask tests call the app in-process (its test client); the browser test starts ``python demo.py``
on a free port and drives a headless Chromium through Selenium, as a person would: pick a run,
upload photos, wait for the results, download one. Without a browser (Debian's chromium and
chromium-driver) or Selenium the browser test is skipped with the reason, unless REQUIRE_BROWSER
(set by .ci/run) is set: then it fails. With DEMO_SCREENSHOT=FILE it also saves a screenshot of
the page with its results (docs/demo.png, shown in docs/export-and-demo.md), using the run DEMO_RUN_DIR when given.

Color hints (runs whose Colorizer ``takes_hints``): the editor's endpoint ``POST /api/recolorize``
is tested in-process with a run written here that follows hints exactly (``copying_hint_run``: a
network whose weights are set by hand so that its color is the hints', gray elsewhere), and the
editor in the browser with a run that follows hints: DEMO_RUN_DIR when it takes hints, else the
shipped pretrained/effnet_unet when it does, else ``copying_hint_run``. With
DEMO_HINTS_SCREENSHOT=FILE that test saves a screenshot of the page with a point placed.

Clips: ``POST /video`` queues a job colorized in the background, ``GET /api/job/<id>`` reports its
progress; tested in-process with small clips written here (a pan over a scikit-image photo, 64 x 48),
and in the browser: a clip uploaded, its result played by the page's ``<video>`` and downloaded
(DEMO_CLIP_SCREENSHOT=FILE: a screenshot of the page with the result).
"""
from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_colorize import png_header_only

from conftest import ROOT, SAMPLE, built_run
from core import colorspace, runs
from evaluation import metrics
from inference import Colorizer, photos, video
from serving.catalog import find_runs
from serving.webapp import create_app


def lightness(rgb) -> np.ndarray:
    return colorspace.rgb_to_lab(np.asarray(rgb))[..., 0]


def mean_ab(rgb, x: int, y: int, half: int = 2) -> np.ndarray:
    """Mean LAB (a*, b*) over the (2 half + 1)^2 window around pixel (x, y) of an RGB image."""
    window = np.asarray(rgb)[max(0, y - half):y + half + 1, max(0, x - half):x + half + 1]
    return colorspace.rgb_to_lab(window.astype(np.float32) / 255)[..., 1:].reshape(-1, 2).mean(0)


def copying_hint_run(tmp_path_factory) -> Path:
    """An effnet_unet run that takes color hints and follows them exactly, written in-process once per session
    (built_run's way): a regression head whose last two convolutions are set by hand so that its color
    is the local hints' over the 3 x 3 working pixels around each point, and gray (a = b = 0) elsewhere.
    For tests that need a network that follows hints, which an untrained one does not.
    """
    import keras

    from models import build_model
    from models.effnet_unet import options as effnet_options

    run_dir = tmp_path_factory.getbasetemp() / "built-runs" / "effnet_unet-copies-hints"
    if (run_dir / "config.json").exists():
        return run_dir
    options = {"image_size": 32, "precision": "float32", **effnet_options(32, hints=True, head="regression")}
    keras.utils.set_random_seed(1)
    network = build_model("effnet_unet", **options)
    from core.hints import NETWORK_CHANNELS
    mix = network.get_layer("out_mix")     # 3 x 3 conv + ReLU over [features, L, hint a, hint b, mask, spread...]
    kernel, bias = (np.zeros_like(w) for w in mix.get_weights())
    a = kernel.shape[2] - NETWORK_CHANNELS           # the hint channels: a / 128, b / 128, mask, then the spread fields
    for f, (channel, sign) in enumerate([(a, 1), (a, -1), (a + 1, 1), (a + 1, -1)]):
        kernel[:, :, channel, f] = sign              # +a, -a, +b, -b (ReLU keeps each sign's part)
    mix.set_weights([kernel, bias])
    head = network.get_layer("ab")                   # 1 x 1 conv to (ab + 128) / 255; hint planes hold ab / 128
    kernel, bias = (np.zeros_like(w) for w in head.get_weights())
    scale = 128 / 255
    kernel[0, 0, 0, 0], kernel[0, 0, 1, 0], kernel[0, 0, 2, 1], kernel[0, 0, 3, 1] = scale, -scale, scale, -scale
    bias[:] = scale
    head.set_weights([kernel, bias])
    run_dir.mkdir(parents=True)
    network.optimizer.build(network.trainable_variables)
    network.save_weights(runs.weights_file(run_dir, "model"))
    runs.save_json(run_dir / "state.json", {"epoch": 1, "step": 1})
    runs.save_json(run_dir / "config.json",
                   {"model": "effnet_unet", "model_options": options, "seed": 1, "log_dir": None})
    return run_dir


def takes_hints(run_dir) -> bool:
    """Asked of the run's Colorizer (built from config.json alone)."""
    return Colorizer(runs.load_config(Path(run_dir)), network=None).takes_hints


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 97x203 color photo (a CIFAR image enlarged: any size works)."""
    return Image.open(SAMPLE / "val" / "img-10-horse.png").convert("RGB").resize((97, 203), Image.BICUBIC)


@pytest.fixture
def client(tmp_path_factory, tmp_path):
    runs_dir = tmp_path / "runs"   # empty, and no shipped runs: only the runs given by path are offered
    choices = find_runs(runs_dir, [built_run(tmp_path_factory, "unet"), built_run(tmp_path_factory, "fusion_label")],
                        pretrained_dir=tmp_path / "no-pretrained")
    (tmp_path / "work").mkdir()
    app = create_app(choices, tmp_path / "work", max_upload_mb=1, max_files=3)
    return app.test_client(), {c.model: c.key for c in choices}


def post(client, run: str, files=(), **fields):
    data = {"run": run, **fields, "images": [(io.BytesIO(content), name) for name, content in files]}
    return client.post("/", data=data, content_type="multipart/form-data")


def results_of(html: str) -> list[tuple[str, int, int]]:
    """(token, width, height) of each result figure of the page."""
    found = re.findall(r'data-width="(\d+)" data-height="(\d+)">\s*<a href="/results/([0-9a-f]{32})/compare.png"', html)
    return [(token, int(w), int(h)) for w, h, token in found]


def errors_of(html: str) -> list[str]:
    import html as html_lib
    return [html_lib.unescape(e) for e in re.findall(r'<li class="error">(.*?)</li>', html)]


# ---- the page, in-process -------------------------------------------------------------------

def test_page_offers_the_runs_and_their_options(client):
    client, keys = client
    page = client.get("/").get_data(as_text=True)
    assert 'id="images" name="images" type="file" accept="image/*" multiple' in page
    for model, key in keys.items():
        option = re.search(rf'<option value="{re.escape(key)}" data-label="(\d)"\s+data-temperature="([^"]*)"', page)
        assert option, model
        assert option.group(1) == ("1" if model == "fusion_label" else "0")   # the class field, for fusion_label only
        assert option.group(2) == ""                                           # neither takes a temperature


def test_the_shipped_run_is_offered_with_its_temperature(tmp_path):
    """pretrained/effnet_unet (a classification head): offered as "pretrained", with its default temperature."""
    shipped = runs.ROOT / "pretrained" / "effnet_unet"
    choices = find_runs(tmp_path / "runs")
    offered = [c for c in choices if c.run_dir == shipped]
    assert len(offered) == 1 and offered[0].origin == "pretrained"
    assert offered[0].temperature == runs.load_config(shipped)["model_options"]["temperature"]


def test_temperature_control_for_runs_that_take_one(tmp_path_factory, tmp_path, photo):
    """Read from the run: one whose config records a temperature gets the field, and the value reaches its Colorizer.

    effnet_unet's classification head has one (its default recorded in config.json); the autoencoder none.
    """
    effnet_run = built_run(tmp_path_factory, "effnet_unet")
    default = runs.load_config(effnet_run)["model_options"]["temperature"]
    choices = find_runs(tmp_path / "runs", [effnet_run, built_run(tmp_path_factory, "autoencoder")],
                        pretrained_dir=tmp_path / "no-pretrained")
    (tmp_path / "work").mkdir()
    app = create_app(choices, tmp_path / "work")
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert re.findall(r'data-temperature="([^"]*)"', page) == [f"{default:g}", ""]   # effnet_unet, autoencoder
    effnet, autoencoder = (c.key for c in choices)
    html = post(client, effnet, [("a.png", png_bytes(photo))], temperature="0.5").get_data(as_text=True)
    assert len(results_of(html)) == 1
    demo = app.config["DEMO"]
    assert demo.colorizer(choices[0]).temperature == 0.5
    for bad in ("0", "-1", "hot", "11"):
        response = post(client, effnet, [("a.png", png_bytes(photo))], temperature=bad)
        assert (response.status_code == 400
                and "temperature: a number above 0" in errors_of(response.get_data(as_text=True))[0])
    post(client, autoencoder, [("a.png", png_bytes(photo))], temperature="hot")   # ignored: it takes none
    assert getattr(demo.colorizer(choices[1]), "temperature", None) is None
    post(client, effnet, [("a.png", png_bytes(photo))], temperature="")          # empty: the run's default
    assert demo.colorizer(choices[0]).temperature == default


def test_faithful_colors_for_runs_that_record_class_rebalancing(tmp_path_factory, tmp_path, photo):
    """The shipped run (class rebalancing in its config) offers "faithful colors": T = 1 with the
    rebalancing undone, set on its Colorizer per request; a run without rebalancing weights does not."""
    shipped = runs.ROOT / "pretrained" / "effnet_unet"
    choices = find_runs(tmp_path / "runs", [shipped, built_run(tmp_path_factory, "effnet_unet")],
                        pretrained_dir=tmp_path / "no-pretrained")
    assert [c.faithful for c in choices] == [True, False]
    (tmp_path / "work").mkdir()
    app = create_app(choices, tmp_path / "work")
    client = app.test_client()
    assert re.findall(r'data-faithful="([^"]*)"', client.get("/").get_data(as_text=True)) == ["1", "0"]
    key, demo = choices[0].key, app.config["DEMO"]
    faint = post(client, key, [("a.png", png_bytes(photo))], temperature="0.5", faithful="on").get_data(as_text=True)
    colorizer = demo.colorizer(choices[0])
    assert (colorizer.temperature, colorizer.undo_rebalancing) == (1.0, 1.0)
    bold = post(client, key, [("a.png", png_bytes(photo))], temperature="0.5").get_data(as_text=True)
    assert (colorizer.temperature, colorizer.undo_rebalancing) == (0.5, 0.0)
    colorfulness = []
    for html in (faint, bold):
        (token, _, _), = results_of(html)
        image = Image.open(io.BytesIO(client.get(f"/results/{token}/colorized.png").get_data())).convert("RGB")
        colorfulness.append(metrics.colorfulness_per_image(np.asarray(image)[None])[0])
    assert colorfulness[0] < colorfulness[1], colorfulness             # faithful: fainter
    post(client, choices[1].key, [("a.png", png_bytes(photo))], faithful="on")   # ignored: nothing to undo
    assert demo.colorizer(choices[1]).undo_rebalancing == 0.0


def test_upload_is_colorized_at_full_size_with_its_own_lightness(client, photo):
    client, keys = client
    gray_jpeg = png_bytes(Image.open(SAMPLE / "val" / "img-1-ship.png").convert("L").resize((150, 64)), "JPEG")
    response = post(client, keys["unet"], [("horse.png", png_bytes(photo)), ("ship.jpg", gray_jpeg)])
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and not errors_of(html)
    found = results_of(html)
    assert [(w, h) for _, w, h in found] == [(97, 203), (150, 64)]
    for (token, w, h), source in zip(found, (photo, Image.open(io.BytesIO(gray_jpeg)).convert("RGB"))):
        colored = Image.open(io.BytesIO(client.get(f"/results/{token}/colorized.png").get_data()))
        assert colored.size == (w, h) and colored.mode == "RGB"
        assert np.abs(lightness(colored) - lightness(source)).max() < 1.0     # the upload's own L, 8-bit rounding
        pair = Image.open(io.BytesIO(client.get(f"/results/{token}/compare.png").get_data()))
        assert pair.size == (2 * w + photos.COMPARE_GAP, h)                    # [gray | colorized] at full size
    assert 'download="horse-colorized.png"' in html


def test_bundled_examples_can_be_picked(client):
    client, keys = client
    html = post(client, keys["fusion_label"], example="cat", label="cat").get_data(as_text=True)
    assert [(w, h) for _, w, h in results_of(html)] == [(451, 300)]          # scikit-image's chelsea.png


def test_bad_uploads_are_refused_with_a_message_on_the_page(client, photo):
    client, keys = client
    good = png_bytes(photo)
    truncated = good[: len(good) // 2]
    html = post(client, keys["unet"], [("cut.png", truncated), ("notes.png", b"just text"),
                                       ("huge.png", png_header_only(8000, 6000))]).get_data(as_text=True)
    errors = errors_of(html)
    assert len(errors) == 3 and not results_of(html)
    assert errors[0].startswith("cut.png: cannot decode") and errors[1].startswith("notes.png: not an image")
    assert errors[2].startswith("huge.png: 8000x6000 is 48.0 megapixels, above the limit")
    assert "upload-" not in html                                           # the server's paths are not shown

    cases = [
        (post(client, keys["unet"]), 400, "choose at least one image"),
        (post(client, keys["unet"], [("a.png", good)] * 4), 400, "4 images: at most 3 at a time"),
        (post(client, "/etc/passwd", [("a.png", good)]), 400, "choose one of the runs listed"),
        (post(client, keys["fusion_label"], [("a.png", good)]), 400, "fusion_label needs the class"),
        (post(client, keys["unet"], [("big.png", os.urandom(1_200_000))]), 413, "larger than 1 MB"),
    ]
    for response, status, message in cases:
        page = response.get_data(as_text=True)
        assert response.status_code == status and message in " ".join(errors_of(page)), (message, errors_of(page))
    assert client.get("/results/" + "0" * 32 + "/colorized.png").status_code == 404
    assert client.get("/results/..%2f..%2fetc/colorized.png").status_code == 404


# ---- color hints, in-process -----------------------------------------------------------------

@pytest.fixture
def hints_client(tmp_path_factory, tmp_path):
    """A page offering a run that follows hints exactly (copying_hint_run) and one without hints."""
    choices = find_runs(tmp_path / "runs", [copying_hint_run(tmp_path_factory), built_run(tmp_path_factory, "unet")],
                        pretrained_dir=tmp_path / "no-pretrained")
    (tmp_path / "work").mkdir()
    app = create_app(choices, tmp_path / "work", max_upload_mb=1, max_files=3)
    return app.test_client(), {c.model: c.key for c in choices}


def recolorize(client, token: str, run: str, points=None, reference: bytes | None = None, **fields):
    data = {"token": token, "run": run, **fields}
    if points is not None:
        data["points"] = points if isinstance(points, str) else json.dumps(points)
    if reference is not None:
        data["reference"] = (io.BytesIO(reference), "ref.png")
    return client.post("/api/recolorize", data=data, content_type="multipart/form-data")


def image_at(client, url: str) -> np.ndarray:
    response = client.get(url)
    assert response.status_code == 200, url
    return np.asarray(Image.open(io.BytesIO(response.get_data())).convert("RGB"))


def test_hint_runs_get_an_editor_that_recolorizes_with_points(hints_client, photo):
    client, keys = hints_client
    html = post(client, keys["effnet_unet"], [("horse.png", png_bytes(photo))]).get_data(as_text=True)
    (token, w, h), = results_of(html)
    assert 'data-hints="1"' in html and 'class="reference" type="file"' in html and 'class="pick"' in html
    no_hints = post(client, keys["unet"], [("horse.png", png_bytes(photo))]).get_data(as_text=True)
    assert (len(results_of(no_hints)) == 1 and 'data-hints="1" data-token' not in no_hints
            and 'class="pick"' not in no_hints)

    before = image_at(client, f"/results/{token}/colorized.png")
    x, y = 30, 150
    response = recolorize(client, token, keys["effnet_unet"], [{"x": x, "y": y, "color": "#ff0000"}])
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["points"], answer["reference"], answer["width"], answer["height"]) == (1, False, w, h)
    assert re.fullmatch(rf"/results/{token}/colorized.png\?v=[0-9a-f]+", answer["colorized"])
    after = image_at(client, answer["colorized"])
    assert after.shape == (h, w, 3) and np.abs(lightness(after) - lightness(photo)).max() < 1.0
    a_before, a_after = mean_ab(before, x, y)[0], mean_ab(after, x, y)[0]
    assert a_after > a_before + 20, (a_before, a_after)                    # red where the point is
    assert abs(mean_ab(after, 80, 20)[0] - mean_ab(before, 80, 20)[0]) < 2   # and not far from it
    compare = image_at(client, answer["compare"])
    assert compare.shape == (h, 2 * w + photos.COMPARE_GAP, 3) and np.array_equal(compare[:, -w:], after)

    # a reference: kept while the page says so, cleared when it does not
    red = png_bytes(Image.new("RGB", (40, 30), (220, 20, 20)))
    assert recolorize(client, token, keys["effnet_unet"], [], reference=red).get_json()["reference"] is True
    assert recolorize(client, token, keys["effnet_unet"], [], keep_reference="1").get_json()["reference"] is True
    answer = recolorize(client, token, keys["effnet_unet"], []).get_json()
    assert answer["reference"] is False and answer["points"] == 0
    assert np.abs(image_at(client, answer["colorized"]).astype(int) - before).max() <= 1   # no hints: as at first


def test_recolorize_refuses_bad_requests_with_one_line_of_json(hints_client, photo):
    client, keys = hints_client
    (token, w, h), = results_of(post(client, keys["effnet_unet"], [("a.png", png_bytes(photo))]).get_data(as_text=True))
    (plain, _, _), = results_of(post(client, keys["unet"], [("a.png", png_bytes(photo))]).get_data(as_text=True))
    hint_run_key, red = keys["effnet_unet"], "#ff0000"
    cases = [
        (recolorize(client, "0" * 32, hint_run_key, []), 404, "no such result"),
        (recolorize(client, "../../etc", hint_run_key, []), 404, "no such result"),
        (recolorize(client, token, "/etc/passwd", []), 400, "choose one of the runs listed"),
        (recolorize(client, token, hint_run_key, '{"x": 1}'), 400, "not a list of points"),
        (recolorize(client, token, hint_run_key, "[{"), 400, "points: not JSON"),
        (recolorize(client, token, hint_run_key, [{"x": w, "y": 0, "color": red}]), 400,
         f"is outside the image ({w} x {h} pixels)"),
        (recolorize(client, token, hint_run_key, [{"x": 1, "y": -2, "color": red}]), 400,
         "points[0].y: -2 is negative"),
        (recolorize(client, token, hint_run_key, [{"x": 1, "y": 2, "color": "red"}]), 400,
         "points[0].color: 'red' is not a #rrggbb or #rgb color"),
        (recolorize(client, token, hint_run_key, [{"x": 1, "y": 2}]), 400, "points[0]: missing 'color'"),
        (recolorize(client, token, hint_run_key, [], reference=b"not an image"), 400, "ref.png: not an image"),
        (recolorize(client, token, hint_run_key, [], reference=png_bytes(photo)[:300]), 400, "reference ref.png: "),
        (recolorize(client, token, keys["unet"], [{"x": 1, "y": 2, "color": red}]), 400,
         "was not trained with color hints"),
        (recolorize(client, plain, keys["unet"], [{"x": 1, "y": 2, "color": red}]), 400,
         "not made by a run that takes color hints"),
        (recolorize(client, token, hint_run_key, [], reference=os.urandom(1_200_000)), 413, "larger than 1 MB"),
        (client.get("/api/recolorize"), 405, "not allowed"),
    ]
    for response, status, message in cases:
        answer = response.get_json(silent=True)
        assert response.status_code == status and response.is_json, (message, response.status_code, response.data[:200])
        assert message in answer["error"] and "\n" not in answer["error"] and "Traceback" not in answer["error"], \
            (message, answer)
    answer = recolorize(client, token, hint_run_key, [{"x": 1, "y": 2, "color": red}]).get_json()
    assert answer["points"] == 1   # the refusals changed nothing


# ---- clips, in-process ------------------------------------------------------------------------

def write_clip(path: Path, width: int = 64, height: int = 48, frames: int = 6, rate: int = 24) -> Path:
    """A pan over scikit-image's coffee photo (evaluation.videoset's test clips, small), container by suffix."""
    from evaluation import videoset
    photo = videoset.skimage_photo("coffee")
    with video.ClipWriter(path, width, height, Fraction(rate)) as writer:
        for A in videoset.pan_transforms(photo.rgb.shape[:2], (width, height), frames, 3.0):
            writer.write(videoset.render(photo.rgb, A, (width, height)))
    return path


def count_frames(path: Path) -> int:
    """Frames decoded (webm states no count, only a duration)."""
    return sum(1 for _ in video.read_frames(path))


@pytest.fixture
def clip_client(tmp_path_factory, tmp_path):
    """A page offering an untrained U-Net and fusion_label, with a limit of 30 frames per clip."""
    choices = find_runs(tmp_path / "runs",
                        [built_run(tmp_path_factory, "unet"), built_run(tmp_path_factory, "fusion_label")],
                        pretrained_dir=tmp_path / "no-pretrained")
    (tmp_path / "work").mkdir()
    app = create_app(choices, tmp_path / "work", max_upload_mb=1, max_video_frames=30)
    return app.test_client(), {c.model: c.key for c in choices}, app.config["DEMO"]


def post_clip(client, run: str, name: str, content: bytes, **fields):
    data = {"run": run, **fields, "clip": (io.BytesIO(content), name)}
    return client.post("/video", data=data, content_type="multipart/form-data")


def finished_job(client, response, timeout: float = 180) -> dict:
    """Follow POST /video's redirect to its job and poll /api/job/<id> until it ends; its last answer."""
    assert response.status_code == 303, (response.status_code, errors_of(response.get_data(as_text=True)))
    token = re.fullmatch(r"/\?job=([0-9a-f]{32})", response.headers["Location"]).group(1)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'id="job" data-job="{token}"' in page
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/api/job/{token}")
        assert answer.status_code == 200 and answer.is_json
        job = answer.get_json()
        if job["state"] in ("done", "failed"):
            return job
        assert job["state"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.2)


def download_clip(client, job: dict, path: Path) -> Path:
    response = client.get(job["video"])
    assert response.status_code == 200 and response.mimetype == job["type"]
    path.write_bytes(response.get_data())
    return path


def test_a_clip_is_colorized_in_the_background_and_played_in_the_page(clip_client, tmp_path):
    client, keys, demo = clip_client
    page = client.get("/").get_data(as_text=True)
    assert 'id="clip" name="clip" type="file"' in page and 'formaction="/video"' in page
    assert 'id="images" name="images" type="file" accept="image/*" multiple' in page   # the photos' input as before

    clip = write_clip(tmp_path / "pan.mp4")
    job = finished_job(client, post_clip(client, keys["unet"], "pan.mp4", clip.read_bytes()))
    assert job["state"] == "done" and job["error"] is None, job
    assert (job["done"], job["total"], job["width"], job["height"]) == (6, 6, 64, 48)
    assert job["type"] == "video/mp4" and job["download"] == "pan-colorized.mp4"   # even sides: H.264 4:2:0 in mp4
    assert job["status"].startswith("done: 6 frames in")
    out = download_clip(client, job, tmp_path / "out.mp4")
    info = video.probe(out)
    assert (info.width, info.height, info.frames) == (64, 48, 6) and count_frames(out) == 6
    colorized = next(iter(video.read_frames(out)))
    assert np.ptp(colorized.astype(int), axis=2).max() > 0                       # not gray
    ranged = client.get(job["video"], headers={"Range": "bytes=0-99"})        # seeking in the page
    assert ranged.status_code == 206 and len(ranged.get_data()) == 100
    page = client.get(f"/?job={job['id']}").get_data(as_text=True)            # the page after it: the player
    assert re.search(rf'<video class="clip-video" controls[^>]*\ssrc="{re.escape(job["video"])}"', page)
    assert 'download="pan-colorized.mp4"' in page and "done: 6 frames" in page

    # the progress line while it runs, from the progress colorize_video reports
    running = demo.jobs[job["id"]]
    running.state, running.first = "running", None
    running.progress(1, 6, 2.0)
    running.progress(3, 6, 3.0)
    assert running.as_json()["status"] == "colorizing: 3 / 6 frames (50 %), 2.0 fps, 0:02 left"
    assert running.as_json()["video"] is None                                  # not shown before it is finished
    running.state = "done"

    # odd sides: VP9 in webm (4:2:0 H.264 needs even sides); an animated GIF in
    for name, width, height, kind in (("odd.mkv", 45, 33, "video/webm"), ("animé.gif", 48, 32, "video/mp4")):
        clip = write_clip(tmp_path / name, width, height)
        job = finished_job(client, post_clip(client, keys["unet"], name, clip.read_bytes()))
        assert job["state"] == "done" and job["type"] == kind, job
        out = download_clip(client, job, tmp_path / ("out" + Path(job["video"]).suffix))
        info = video.probe(out)
        assert (info.width, info.height, count_frames(out)) == (width, height, 6), (name, info)

    # audio: copied into an mp4; an odd-sided clip's AAC cannot go into webm: left out, and the page says so
    from test_video import write_with_audio
    for width, height, audio in ((64, 48, "aac"), (45, 33, None)):
        frames = [next(iter(video.read_frames(tmp_path / "pan.mp4")))[:height, :width]] * 6
        clip = write_with_audio(tmp_path / f"sound{width}.mp4", frames, "mpeg4", "aac")
        job = finished_job(client, post_clip(client, keys["unet"], "sound.mp4", clip.read_bytes()))
        assert job["state"] == "done", job
        assert video.probe(download_clip(client, job, tmp_path / ("sound" + Path(job["video"]).suffix))).audio == audio
        assert [n[:46] for n in job["notes"]] == ([] if audio else ["the audio (aac) cannot go into .webm: left out"])
        if not audio:
            assert "the audio (aac) cannot go into .webm" in client.get(f"/?job={job['id']}").get_data(as_text=True)

    # fusion_label: the class, as for photos
    job = finished_job(client, post_clip(client, keys["fusion_label"], "pan.mp4", (tmp_path / "pan.mp4").read_bytes(),
                                         label="cat"))
    assert job["state"] == "done", job


def test_bad_clips_are_refused_with_a_message(clip_client, tmp_path):
    client, keys, demo = clip_client
    good = write_clip(tmp_path / "pan.mp4").read_bytes()
    gif = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(gif, format="GIF")
    long = write_clip(tmp_path / "long.mp4", 48, 32, frames=31).read_bytes()
    cases = [
        (post_clip(client, keys["unet"], "notes.mp4", b"just text, not a clip"), 400,
         "notes.mp4: not a readable video"),
        (post_clip(client, keys["unet"], "notes.txt", b"just text"), 400, "notes.txt: not a clip"),
        (post_clip(client, keys["unet"], "still.gif", gif.getvalue()), 400, "still.gif: a still GIF is a photo"),
        (post_clip(client, keys["unet"], "long.mp4", long), 400, "long.mp4: 31 frames, above the limit of 30"),
        (post_clip(client, keys["unet"], "", b""), 400, "choose a clip"),
        (post_clip(client, "/etc/passwd", "pan.mp4", good), 400, "choose one of the runs listed"),
        (post_clip(client, keys["fusion_label"], "pan.mp4", good), 400, "fusion_label needs the class of the clip"),
        (post_clip(client, keys["unet"], "big.mp4", os.urandom(1_200_000)), 413, "larger than 1 MB"),
        (client.get("/?job=" + "0" * 32), 404, "no such clip"),
    ]
    for response, status, message in cases:
        html = response.get_data(as_text=True)
        assert response.status_code == status and message in " ".join(errors_of(html)), (message, errors_of(html))
        assert str(demo.work_dir) not in html and "Traceback" not in html
    response = client.get("/api/job/" + "0" * 32)
    assert response.status_code == 404 and "no such clip" in response.get_json()["error"]
    response = client.get("/api/job/..%2f..%2fetc")
    assert response.status_code == 404 and response.is_json
    assert not list(demo.work_dir.iterdir())          # every refused upload removed

    # damaged: cut before its first whole frame, then after a few (those are kept, playable)
    cut = good[: len(good) // 2]
    job = finished_job(client, post_clip(client, keys["unet"], "cut.mp4", cut))
    assert job["state"] == "failed" and job["video"] is None, job
    assert job["error"].startswith("cut.mp4: damaged") and "nothing written" in job["error"]
    longer = write_clip(tmp_path / "longer.mp4", frames=24).read_bytes()
    job = finished_job(client, post_clip(client, keys["unet"], "longer.mp4", longer[: int(len(longer) * 0.85)]))
    assert job["state"] == "failed" and job["video"], job
    assert job["error"].startswith("longer.mp4: damaged") and "below (playable)" in job["error"], job["error"]
    for error in (job["error"], job["status"]):
        assert "\n" not in error and str(demo.work_dir) not in error and "Traceback" not in error
    partial = download_clip(client, job, tmp_path / "partial.mp4")
    assert 0 < job["done"] < 24 and count_frames(partial) == job["done"]
    page = client.get(f"/?job={job['id']}").get_data(as_text=True)
    assert "longer.mp4: damaged" in page and 'class="clip-video"' in page


# ---- a real browser -------------------------------------------------------------------------

@pytest.fixture
def browser() -> tuple[str, str]:
    """(browser, driver) executables, or skip (fail under REQUIRE_BROWSER) saying what is missing."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -r requirements-serving.txt)")
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing.append("a Chromium and its driver (apt-get install chromium chromium-driver)")
    if missing:
        why = "no browser to test the page with: " + "; ".join(missing)
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(why + "; REQUIRE_BROWSER asks for it")
        pytest.skip(why)
    return browser, driver


@pytest.fixture
def demo_server(tmp_path_factory, tmp_path):
    """``python demo.py`` on a free port (1 MB upload limit); yields its address; stopped after the test."""
    run_dir = os.environ.get("DEMO_RUN_DIR") or built_run(tmp_path_factory, "unet")
    yield from serve(run_dir, tmp_path)


def serve(run_dir, tmp_path):
    """Start ``python demo.py`` offering ``run_dir`` only; yield its address; stop it."""
    proc = subprocess.Popen([sys.executable, "demo.py", "--port", "0", "--runs-dir", str(tmp_path / "none"),
                             "--run-dir", str(run_dir), "--max-upload-mb", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    output = []
    try:
        while True:
            line = lines.get(timeout=180)
            output.append(line)
            match = re.search(r"serving on (http://\S+)", line)
            if match:
                break
            assert proc.poll() is None or not lines.empty(), "".join(output)
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def chromium(browser):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser_path, driver_path = browser
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)   # the system driver: nothing downloaded


def test_the_page_in_a_real_browser(browser, demo_server, photo, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    files = {"horse.png": photo,
             "ship.jpg": Image.open(SAMPLE / "val" / "img-1-ship.png").convert("L").resize((150, 64))}
    for name, image in files.items():
        image.save(tmp_path / name)
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), np.uint8)).save(
        tmp_path / "noise.png")  # ~1.5 MB

    driver = chromium(browser)
    try:
        driver.get(demo_server)
        assert driver.title == "Colorize photos and clips"
        assert not driver.find_element(By.ID, "temperature").is_displayed()     # the U-Net takes no temperature
        assert not driver.find_element(By.ID, "label").is_displayed()           # nor a class

        # above the upload limit: refused in the page before sending
        driver.find_element(By.ID, "images").send_keys(str(tmp_path / "noise.png"))
        driver.find_element(By.ID, "submit").click()
        assert "above the limit of 1 MB" in driver.find_element(By.ID, "errors").text

        # two photos and a file that is no image
        driver.get(demo_server)
        upload = driver.find_element(By.ID, "images")
        upload.send_keys("\n".join(str(tmp_path / n) for n in ("horse.png", "notes.png", "ship.jpg")))
        driver.find_element(By.ID, "submit").click()
        WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, "figure.result"))
        figures = driver.find_elements(By.CSS_SELECTOR, "figure.result")
        assert "notes.png: not an image" in driver.find_element(By.ID, "errors").text
        assert len(figures) == 2
        for figure, name in zip(figures, files):
            source = Image.open(tmp_path / name).convert("RGB")   # as the browser sent it (the JPEG decoded)
            img = figure.find_element(By.CSS_SELECTOR, "img.compare")
            WebDriverWait(driver, 60).until(lambda d, img=img: d.execute_script("return arguments[0].complete", img))
            natural = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
            assert natural == [2 * source.width + photos.COMPARE_GAP, source.height]   # shown at full resolution
            link = figure.find_element(By.CSS_SELECTOR, "a.download")
            assert link.get_attribute("download") == name.rsplit(".", 1)[0] + "-colorized.png"
            with urllib.request.urlopen(link.get_attribute("href"), timeout=60) as response:
                colored = Image.open(io.BytesIO(response.read()))
            assert colored.size == source.size
            assert np.abs(lightness(colored) - lightness(source)).max() < 1.0
        screenshot = os.environ.get("DEMO_SCREENSHOT")
        if screenshot:   # docs/demo.png: a bundled example photo, colorized
            driver.get(demo_server)
            driver.find_element(By.CSS_SELECTOR, 'input[name="example"][value="cat"]').click()
            driver.find_element(By.ID, "submit").click()
            WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, "figure.result"))
            driver.set_window_size(1200, 1000)   # the window, not the page: the viewport is a little smaller
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(screenshot)
    finally:
        driver.quit()


def hints_run_for_the_browser(tmp_path_factory) -> Path:
    """A run that has learned to follow hints: DEMO_RUN_DIR when it takes hints, else the shipped run when it
    does, else one that copies them (copying_hint_run): an untrained network would not follow them."""
    for candidate in (os.environ.get("DEMO_RUN_DIR"), runs.ROOT / "pretrained" / "effnet_unet"):
        if candidate and (Path(candidate) / "config.json").is_file() and takes_hints(candidate):
            return Path(candidate)
    return copying_hint_run(tmp_path_factory)


@pytest.fixture
def hints_server(tmp_path_factory, tmp_path):
    yield from serve(hints_run_for_the_browser(tmp_path_factory), tmp_path)


def test_color_hints_in_a_real_browser(browser, hints_server, photo, tmp_path):
    """Click a point on the colorized image, make it red: the image is colorized again in place, and the
    downloaded result is redder there than before; then a reference image, and the point removed."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    source = photo.resize((600, 420), Image.BICUBIC)   # [gray | colorized] is 1208 px wide: shown scaled down
    source.save(tmp_path / "horse.jpg", quality=95)
    source = Image.open(tmp_path / "horse.jpg").convert("RGB")   # as the browser sends it, decoded
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "reference.png")

    def download(figure) -> np.ndarray:
        with urllib.request.urlopen(figure.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href"),
                                    timeout=60) as r:
            return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))

    def colorized_again(figure, version: int) -> None:
        WebDriverWait(driver, 120).until(lambda d: int(figure.get_attribute("data-version")) >= version
                                         and figure.get_attribute("data-busy") is None)
        assert figure.find_element(By.CSS_SELECTOR, ".editor-error").text == ""

    driver = chromium(browser)
    try:
        driver.get(hints_server)
        driver.find_element(By.ID, "images").send_keys(str(tmp_path / "horse.jpg"))
        driver.find_element(By.ID, "submit").click()
        WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'figure.result[data-hints="1"]'))
        figure = driver.find_element(By.CSS_SELECTOR, "figure.result")
        img = figure.find_element(By.CSS_SELECTOR, "img.compare")
        WebDriverWait(driver, 60).until(lambda d: d.execute_script("return arguments[0].complete", img))
        before = download(figure)
        assert before.shape == (source.height, source.width, 3)

        # click the photo pixel (x, y) on the colorized half, shown scaled down
        x, y = int(source.width * 0.35), int(source.height * 0.6)
        pick = figure.find_element(By.CSS_SELECTOR, ".pick")
        # whole: the click's origin is its center
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", pick)
        box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", pick)
        assert box[0] < source.width - 50, box                 # scaled: CSS pixels are not photo pixels
        dx, dy = round(((x + 0.5) / source.width - 0.5) * box[0]), round(((y + 0.5) / source.height - 0.5) * box[1])
        ActionChains(driver).move_to_element_with_offset(pick, dx, dy).click().perform()
        colorized_again(figure, 1)
        item, = figure.find_elements(By.CSS_SELECTOR, "li.point")
        px, py = int(item.get_attribute("data-x")), int(item.get_attribute("data-y"))
        assert abs(px - x) <= 2 and abs(py - y) <= 2, ((px, py), (x, y))          # the photo's own pixel
        picker = item.find_element(By.CSS_SELECTOR, "input.point-color")
        predicted = tuple(int(picker.get_attribute("value")[i:i + 2], 16) for i in (1, 3, 5))
        # starts as predicted
        assert np.abs(np.array(predicted) - before[py, px]).max() <= 2, (predicted, before[py, px])
        assert len(figure.find_elements(By.CSS_SELECTOR, ".pick .marker")) == 1

        # make it red, as a person choosing in the color picker
        driver.execute_script("arguments[0].value = '#ff0000';"
                              "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
                              "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", picker)
        colorized_again(figure, 2)
        assert "?v=" in img.get_attribute("src")
        after = download(figure)
        assert np.abs(lightness(after) - lightness(source)).max() < 1.0
        screenshot = os.environ.get("DEMO_HINTS_SCREENSHOT")
        if screenshot:   # the page with a point placed
            driver.execute_script("arguments[0].scrollIntoView()", figure)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(screenshot)
        a_before, a_after = mean_ab(before, px, py)[0], mean_ab(after, px, py)[0]
        assert a_after > a_before + 5, (a_before, a_after)                        # redder where the point is

        # a reference image, then the point removed
        figure.find_element(By.CSS_SELECTOR, "input.reference").send_keys(str(tmp_path / "reference.png"))
        colorized_again(figure, 3)
        assert figure.find_element(By.CSS_SELECTOR, "button.clear-reference").is_displayed()
        item.find_element(By.CSS_SELECTOR, "button.remove-point").click()
        colorized_again(figure, 4)
        assert not figure.find_elements(By.CSS_SELECTOR, "li.point, .pick .marker")
    finally:
        driver.quit()


def test_a_clip_in_a_real_browser(browser, demo_server, tmp_path):
    """Upload a clip with the form's second button: the page follows its progress, then plays the result
    to its end (the browser decodes it: mp4 for even sides, webm for odd ones) and links to it; a file that
    is not a clip gets a message."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def new_job(d, before: str | None):
        """The page's clip figure once the page after the click shows one other than ``before``'s."""
        figures = d.find_elements(By.CSS_SELECTOR, "figure.clip")
        return figures[0] if figures and figures[0].get_attribute("data-job") != before else None

    (tmp_path / "notes.mp4").write_text("not a clip")
    driver = chromium(browser)
    try:
        driver.get(demo_server)
        driver.find_element(By.ID, "clip").send_keys(str(tmp_path / "notes.mp4"))
        driver.find_element(By.ID, "submit-clip").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "errors"))
        assert "notes.mp4: not a readable video" in driver.find_element(By.ID, "errors").text

        for name, width, height, kind in (("pan.mp4", 64, 48, "mp4"), ("odd.mov", 45, 33, "webm")):
            clip = write_clip(tmp_path / name, width, height, frames=12)
            shown = driver.find_elements(By.CSS_SELECTOR, "figure.clip")   # the previous clip's, until the next page
            before = shown[0].get_attribute("data-job") if shown else None
            driver.find_element(By.ID, "clip").send_keys(str(clip))
            driver.find_element(By.ID, "submit-clip").click()
            figure = WebDriverWait(driver, 60, ignored_exceptions=[StaleElementReferenceException]).until(
                lambda d, before=before: new_job(d, before))
            WebDriverWait(driver, 300).until(
                lambda d, figure=figure: figure.get_attribute("data-state") in ("done", "failed"))
            assert figure.get_attribute("data-state") == "done", figure.text
            assert f"{name}: done: 12 frames" in figure.find_element(By.CSS_SELECTOR, ".clip-status").text
            player = figure.find_element(By.CSS_SELECTOR, "video")
            assert player.is_displayed() and player.get_attribute("controls") is not None
            WebDriverWait(driver, 60).until(
                lambda d, player=player: d.execute_script("return arguments[0].readyState >= 1", player))
            shown = driver.execute_script(
                "const v = arguments[0]; return [v.videoWidth, v.videoHeight, v.duration]", player)
            assert shown[:2] == [width, height] and shown[2] > 0, shown
            played = driver.execute_async_script("""
                const [v, done] = [arguments[0], arguments[arguments.length - 1]];
                v.muted = true;
                v.addEventListener("ended", () => done(["ended", v.currentTime]));
                v.addEventListener("error", () => done(["error", v.error && v.error.message]));
                setTimeout(() => done(["timeout", v.currentTime, v.readyState]), 30000);
                v.play().catch(err => done(["refused", String(err)]));""", player)
            assert played[0] == "ended" and played[1] > 0, played            # decoded and played to its end
            link = figure.find_element(By.CSS_SELECTOR, "a.download")
            assert link.get_attribute("download") == f"{Path(name).stem}-colorized.{kind}"
            assert link.get_attribute("href") == player.get_attribute("src")
            with urllib.request.urlopen(player.get_attribute("src"), timeout=60) as response:
                assert response.headers["Content-Type"] == f"video/{kind}"
                (tmp_path / f"out.{kind}").write_bytes(response.read())
            info = video.probe(tmp_path / f"out.{kind}")
            assert (info.width, info.height, count_frames(tmp_path / f"out.{kind}")) == (width, height, 12)
            screenshot = os.environ.get("DEMO_CLIP_SCREENSHOT")
            if screenshot and kind == "mp4":   # the page playing a colorized clip
                driver.execute_script("arguments[0].scrollIntoView()", figure)
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(screenshot)
    finally:
        driver.quit()
