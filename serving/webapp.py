"""The demo web page (Flask): upload photos, pick a run, see ``[gray | colorized]`` at full resolution, download.

Colorization goes through inference.photos, the code colorize.py runs: the model sees the gray
photo shrunk to its input size, and its chroma is recombined with the photo's own full-resolution
lightness, so a result has the upload's size and lightness. Uploads are checked as colorize.py
checks files (not an image, truncated, above dataset.MAX_PIXELS: refused before decoding); each
refusal is one line on the page, and the other images of the same upload are still colorized.

Why Flask and not Gradio: the page is one form and a list of images; Flask adds four small
packages (its Werkzeug and Jinja2 come with TensorBoard already), while Gradio 6.31 would add
about thirty (pandas, huggingface_hub, FastAPI, uvicorn...) and replace this project's Pillow 13
with 12.3 (pip's plan, checked). A plain HTML form also works without JavaScript and is simple to
drive from a real browser in the tests.

Limits: ``max_upload_mb`` for a whole request (Flask answers 413, shown as a message on the page),
``max_files`` per request, ``dataset.MAX_PIXELS`` per image. Results live in a temporary folder of
the process; the most recent ``KEEP_RESULTS`` are kept.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, abort, render_template, request, send_file
from PIL import Image
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from dataset import CLASS_NAMES, MAX_PIXELS
from inference import USER_ERRORS, Colorizer, photos
from serving.catalog import RunChoice, set_faithful, set_temperature

KEEP_RESULTS = 64          # result folders kept on disk; older ones are deleted
RESULT_NAME = re.compile(r"^[0-9a-f]{32}$")
MAX_TEMPERATURE = 10.0     # a bound against typos: far above 1 the annealed mean tends to the plain mean


def examples() -> dict[str, Path]:
    """Bundled example photos: scikit-image's sample images (installed with it, public domain)."""
    import skimage.data
    folder = Path(skimage.data.__file__).parent
    names = {"cat": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg", "astronaut": "astronaut.png"}
    return {k: folder / v for k, v in names.items() if (folder / v).is_file()}


@dataclass
class Result:
    name: str            # the upload's file name, as the user's browser sent it (display only)
    token: str           # its folder under the work folder
    width: int
    height: int


class Demo:
    """State of one demo server: the runs it offers, loaded colorizers, the result folder."""

    def __init__(self, choices: list[RunChoice], work_dir: Path):
        self.choices = {c.key: c for c in choices}
        self.work_dir = Path(work_dir)
        self._colorizers: dict[str, Colorizer] = {}   # loaded on first use, kept
        # One colorization at a time: every request shares a run's Colorizer (and the temperature set on it).
        self._lock = threading.Lock()

    def colorizer(self, choice: RunChoice) -> Colorizer:
        if choice.key not in self._colorizers:
            self._colorizers[choice.key] = Colorizer.from_run(choice.run_dir)
        return self._colorizers[choice.key]

    def colorize(self, choice: RunChoice, files: list[tuple[str, Path]], label: int | None,
                 temperature: float | None = None, faithful: bool = False) -> tuple[list[Result], list[str]]:
        """files: (display name, saved upload); returns the results and one message per refused file."""
        jobs, names = [], {}
        for name, source in files:
            token = uuid.uuid4().hex
            out = self.work_dir / token / "colorized.png"
            jobs.append(photos.Job(source, out))
            names[str(source)] = name
        with self._lock:
            colorizer = self.colorizer(choice)
            set_temperature(colorizer, temperature)
            if choice.faithful:   # every request says, since requests share the Colorizer
                set_faithful(colorizer, faithful)
            _, errors = photos.colorize_files(colorizer, jobs, label, compare=True)
        messages = [_rename(e, names) for e in errors]
        results = []
        for job, (name, _) in zip(jobs, files):
            if job.out.exists():
                with Image.open(job.out) as img:
                    results.append(Result(name, job.out.parent.name, *img.size))
        self._prune()
        return results, messages

    def _prune(self) -> None:
        folders = sorted((p for p in self.work_dir.iterdir() if RESULT_NAME.match(p.name)), key=lambda p: p.stat().st_mtime)
        for old in folders[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)


def _rename(message: str, names: dict[str, str]) -> str:
    """An error line names the saved upload's path; show the name the user uploaded instead."""
    for path, name in names.items():
        message = message.replace(path, name)
    return message


def _temperature(text: str, default: float) -> float | None:
    """The form's temperature (empty: the model's default); None when it is not a usable number."""
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= MAX_TEMPERATURE else None


def create_app(choices: list[RunChoice], work_dir: Path, max_upload_mb: float = 64, max_files: int = 16) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2 ** 20)
    demo = Demo(choices, work_dir)
    example_files = examples()
    app.config["DEMO"] = demo

    def page(results=(), errors=(), status=200, selected=None, form=None):
        return render_template("index.html", choices=list(demo.choices.values()), classes=CLASS_NAMES,
                               examples=example_files, results=results, errors=errors, selected=selected,
                               form=form or {}, max_upload_mb=max_upload_mb, max_files=max_files,
                               max_megapixels=MAX_PIXELS / 1e6), status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_err):
        return page(errors=[f"the upload is larger than {max_upload_mb:g} MB; send fewer or smaller images"], status=413)

    @app.get("/")
    def index():
        return page()

    @app.post("/")
    def colorize():
        form = request.form
        choice = demo.choices.get(form.get("run", ""))
        if choice is None:
            return page(errors=["choose one of the runs listed"], status=400)
        label = None
        if choice.needs_label:
            if form.get("label") not in CLASS_NAMES:
                return page(errors=[f"{choice.model} needs the class of the photos: choose one"], status=400,
                            selected=choice.key)
            label = CLASS_NAMES.index(form["label"])
        temperature = None
        if choice.temperature is not None:
            temperature = _temperature(form.get("temperature", ""), choice.temperature)
            if temperature is None:
                return page(errors=[f"temperature: a number above 0 and at most {MAX_TEMPERATURE:g}, "
                                    f"got '{form.get('temperature')}'"], status=400, selected=choice.key)
        uploads = [f for f in request.files.getlist("images") if f and f.filename]
        picked = [k for k in form.getlist("example") if k in example_files]
        if not uploads and not picked:
            return page(errors=["choose at least one image (or an example)"], status=400, selected=choice.key)
        if len(uploads) + len(picked) > max_files:
            return page(errors=[f"{len(uploads) + len(picked)} images: at most {max_files} at a time"], status=400,
                        selected=choice.key)
        request_dir = Path(tempfile.mkdtemp(prefix="upload-", dir=demo.work_dir))
        try:
            files = []
            for i, upload in enumerate(uploads):
                path = request_dir / f"{i}-{secure_filename(upload.filename) or 'image'}"
                upload.save(path)
                files.append((upload.filename, path))
            files += [(example_files[k].name, example_files[k]) for k in picked]
            try:
                results, errors = demo.colorize(choice, files, label, temperature,
                                                faithful=choice.faithful and form.get("faithful") == "on")
            except USER_ERRORS as err:   # the run folder is unusable, a prior's weights are missing...
                return page(errors=[str(err)], status=400, selected=choice.key)
        finally:
            shutil.rmtree(request_dir, ignore_errors=True)
        return page(results, errors, selected=choice.key, form=form)

    @app.get("/results/<token>/<kind>")
    def result_file(token: str, kind: str):
        files = {"colorized.png": "colorized.png", "compare.png": "colorized-compare.png"}
        if not RESULT_NAME.match(token) or kind not in files:
            abort(404)
        path = demo.work_dir / token / files[kind]
        if not path.is_file():
            abort(404)
        return send_file(path, mimetype="image/png")

    @app.get("/examples/<key>")
    def example_file(key: str):
        if key not in example_files:
            abort(404)
        return send_file(example_files[key])

    return app
