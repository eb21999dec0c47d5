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

Color hints: when the run's Colorizer ``takes_hints``, each result also gets an editor (points
clicked on the colorized image, a reference image) that re-colorizes through ``POST
/api/recolorize`` (JSON; :func:`create_app` documents it) from the original upload, kept in the
result's folder for that. Runs without hints get no editor: the page asks the Colorizer.

Limits: ``max_upload_mb`` for a whole request (Flask answers 413, shown as a message on the page),
``max_files`` per request, ``dataset.MAX_PIXELS`` per image. Results live in a temporary folder of
the process; the most recent ``KEEP_RESULTS`` are kept.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flask import Flask, abort, jsonify, render_template, request, send_file
from PIL import Image
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import secure_filename

from core import hints as core_hints
from dataset import CLASS_NAMES, MAX_PIXELS
from inference import USER_ERRORS, Colorizer, hintsfile, photos
from serving.catalog import RunChoice, set_faithful, set_temperature

KEEP_RESULTS = 64          # result folders kept on disk; older ones are deleted
RESULT_NAME = re.compile(r"^[0-9a-f]{32}$")
MAX_TEMPERATURE = 10.0     # a bound against typos: far above 1 the annealed mean tends to the plain mean
MAX_POINTS = 256           # color hints per re-colorization
SOURCE_NAME = "source"     # the original upload, kept in a result's folder when its run takes hints
REFERENCE_NAME = "reference.npz"   # the result's current reference: its core.hints.Reference arrays


class ApiError(Exception):
    """A request to the JSON API that cannot be served: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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
    hints: bool = False  # its run takes color hints: the page shows the editor
    settings: dict = field(default_factory=dict)   # the run and decoding settings it was made with (the editor sends them back)


class Demo:
    """State of one demo server: the runs it offers, loaded colorizers, the result folder."""

    def __init__(self, choices: list[RunChoice], work_dir: Path, runtime: str | None = None):
        self.choices = {c.key: c for c in choices}
        self.runtime = runtime   # inference.lean.choose's: None is $COLORIZE_RUNTIME, else auto (ONNX Runtime)
        self.work_dir = Path(work_dir)
        self._colorizers: dict[str, Colorizer] = {}   # loaded on first use, kept
        # One colorization at a time: every request shares a run's Colorizer (and the temperature set on it).
        self._lock = threading.Lock()

    def colorizer(self, choice: RunChoice) -> Colorizer:
        if choice.key not in self._colorizers:
            self._colorizers[choice.key] = Colorizer.from_run(choice.run_dir, runtime=self.runtime)
        return self._colorizers[choice.key]

    def _decoding(self, choice: RunChoice, temperature: float | None, faithful: bool) -> Colorizer:
        """The run's Colorizer, set to decode as this request asks (call with the lock held)."""
        colorizer = self.colorizer(choice)
        set_temperature(colorizer, temperature)
        if choice.faithful:   # every request says, since requests share the Colorizer
            set_faithful(colorizer, faithful)
        return colorizer

    def colorize(self, choice: RunChoice, files: list[tuple[str, Path]], label: int | None,
                 temperature: float | None = None, faithful: bool = False) -> tuple[list[Result], list[str]]:
        """files: (display name, saved upload); returns the results and one message per refused file.

        For a run that takes hints, each upload is kept in its result's folder (re-colorized with hints later)."""
        jobs, names = [], {}
        for name, source in files:
            token = uuid.uuid4().hex
            out = self.work_dir / token / "colorized.png"
            jobs.append(photos.Job(source, out))
            names[str(source)] = name
        with self._lock:
            colorizer = self._decoding(choice, temperature, faithful)
            _, errors = photos.colorize_files(colorizer, jobs, label, compare=True)
            takes_hints = bool(getattr(colorizer, "takes_hints", False))
        messages = [_rename(e, names) for e in errors]
        settings = {"run": choice.key, "label": "" if label is None else CLASS_NAMES[label],
                    "temperature": "" if temperature is None else f"{temperature:g}",
                    "faithful": "on" if choice.faithful and faithful else ""}
        results = []
        for job, (name, source) in zip(jobs, files):
            if job.out.exists():
                if takes_hints:
                    shutil.copyfile(source, job.out.parent / SOURCE_NAME)
                with Image.open(job.out) as img:
                    results.append(Result(name, job.out.parent.name, *img.size, hints=takes_hints, settings=settings))
        self._prune()
        return results, messages

    def recolorize(self, choice: RunChoice, token: str, points_json: str, label: int | None,
                   temperature: float | None, faithful: bool, reference: tuple[str, Path] | None,
                   keep_reference: bool) -> dict:
        """Colorize a result's original upload again with color hints; rewrites its images in place.

        ``points_json``: a JSON list of points as in a hints file (inference.hintsfile: x, y in the
        photo's pixels, color "#rrggbb"); ``reference``: (its name, the saved file) of a newly uploaded
        reference image (it becomes the result's reference), else the one kept from before when
        ``keep_reference``, else none.
        Raises ApiError (status, one line) for anything the request got wrong.
        """
        if not RESULT_NAME.match(token) or not (self.work_dir / token / "colorized.png").is_file():
            raise ApiError(404, "no such result (it may have been removed: colorize the photo again)")
        folder = self.work_dir / token
        source = folder / SOURCE_NAME
        if not source.is_file():
            raise ApiError(400, "this result was not made by a run that takes color hints: colorize it again with one")
        width, height = photos.image_size(source)
        points = parse_points(points_json, width, height)
        dist = None
        if reference is not None:
            name, path = reference
            try:
                dist = photos.read_reference(path)
            except photos.InputError as err:
                raise ApiError(400, _one_line(str(err).replace(str(path), name))) from None
        elif keep_reference and (folder / REFERENCE_NAME).is_file():
            with np.load(folder / REFERENCE_NAME, allow_pickle=False) as stored:
                dist = core_hints.Reference(stored["distribution"], stored["pixels"])
        with self._lock:
            colorizer = self._decoding(choice, temperature, faithful)
            if not getattr(colorizer, "takes_hints", False):
                raise ApiError(400, f"{choice.title} was not trained with color hints: choose a run that takes them")
            rgb = photos.read_full(source)
            colorized, gray = colorizer.colorize_photo(rgb, points, reference=dist, label=label, with_gray=True)
            del rgb
            photos.save_png(colorized, folder / "colorized.png")
            photos.save_png(photos.side_by_side(gray, colorized), photos.compare_path(folder / "colorized.png"))
            if dist is not None:
                np.savez(folder / REFERENCE_NAME, **dist._asdict())
            else:
                (folder / REFERENCE_NAME).unlink(missing_ok=True)
        version = uuid.uuid4().hex[:12]   # a new address per version: the browser does not show a cached image
        return {"colorized": f"/results/{token}/colorized.png?v={version}",
                "compare": f"/results/{token}/compare.png?v={version}",
                "points": len(points), "reference": dist is not None, "width": width, "height": height}

    def _prune(self) -> None:
        folders = sorted((p for p in self.work_dir.iterdir() if RESULT_NAME.match(p.name)), key=lambda p: p.stat().st_mtime)
        for old in folders[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)


def _rename(message: str, names: dict[str, str]) -> str:
    """An error line names the saved upload's path; show the name the user uploaded instead."""
    for path, name in names.items():
        message = message.replace(path, name)
    return message


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_points(text: str, width: int, height: int) -> list:
    """The editor's points, JSON ``[{"x": .., "y": .., "color": "#rrggbb"}, ...]`` (a hints file's points:
    inference.hintsfile), each on the photo of width x height -> core.hints points; ApiError 400 otherwise."""
    try:
        raw = json.loads(text or "[]")
    except (ValueError, RecursionError) as err:
        raise ApiError(400, _one_line(f"points: not JSON ({err})")) from None
    if not isinstance(raw, list):
        raise ApiError(400, 'points: not a list of points like [{"x": 12, "y": 30, "color": "#ff0000"}]')
    if len(raw) > MAX_POINTS:
        raise ApiError(400, f"points: {len(raw)} points, at most {MAX_POINTS}")
    try:
        spec = hintsfile.parse_hints({"points": raw}, Path("points"), Path("."))
        hintsfile.check_inside(spec, width, height)
    except hintsfile.HintsFileError as err:
        message = str(err)
        raise ApiError(400, _one_line(message[len("points: "):] if message.startswith("points: points") else message)) from None
    return [core_hints.point(p.x, p.y, p.rgb, p.radius) for p in spec.points]


def _temperature(text: str, default: float) -> float | None:
    """The form's temperature (empty: the model's default); None when it is not a usable number."""
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= MAX_TEMPERATURE else None


def create_app(choices: list[RunChoice], work_dir: Path, max_upload_mb: float = 64, max_files: int = 16,
               runtime: str | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2 ** 20)
    demo = Demo(choices, work_dir, runtime)
    example_files = examples()
    app.config["DEMO"] = demo

    def page(results=(), errors=(), status=200, selected=None, form=None):
        return render_template("index.html", choices=list(demo.choices.values()), classes=CLASS_NAMES,
                               examples=example_files, results=results, errors=errors, selected=selected,
                               form=form or {}, max_upload_mb=max_upload_mb, max_files=max_files,
                               max_megapixels=MAX_PIXELS / 1e6, gap=photos.COMPARE_GAP), status

    def api_error(status: int, message: str):
        return jsonify(error=message), status

    def is_api() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_err):
        if is_api():
            return api_error(413, f"the upload is larger than {max_upload_mb:g} MB; choose a smaller reference image")
        return page(errors=[f"the upload is larger than {max_upload_mb:g} MB; send fewer or smaller images"], status=413)

    @app.errorhandler(ApiError)
    def api_refused(err: ApiError):
        return api_error(err.status, str(err))

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if is_api():   # JSON for the page's script (404, 405...), not an HTML page
            return api_error(err.code or 500, _one_line(err.description or err.name))
        return err

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        if isinstance(err, HTTPException):
            return http_error(err)
        if not is_api():
            raise err   # the page: as before (Flask's plain 500 page)
        app.logger.exception("unexpected error")   # the traceback goes to the server's log, never to the page
        return api_error(500, _one_line(f"the server failed to colorize: {type(err).__name__}: {err}"))

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

    @app.post("/api/recolorize")
    def recolorize():
        """Colorize a result again with color hints (the page's editor); JSON in and out.

        Form fields (multipart): ``token`` (the result's), ``run`` (a run offered, which takes hints),
        the result's decoding settings as the page's form sends them (``temperature``, ``faithful``,
        ``label``), ``points`` (JSON: ``[{"x": 12, "y": 30, "color": "#ff0000"}, ...]``, the photo's
        pixels, 0-based), ``reference`` (optional file: a new reference image) and ``keep_reference``
        ("1": keep the result's current reference when no new one is sent; otherwise it is cleared).
        200: ``{"colorized": URL, "compare": URL, "points": N, "reference": bool, "width": W, "height": H}``,
        new addresses for the rewritten images; else ``{"error": one line}`` with 400 (a bad request),
        404 (no such result), 413 (too large) or 500.
        """
        form = request.form
        token = form.get("token", "")
        if not RESULT_NAME.match(token) or not (demo.work_dir / token).is_dir():
            raise ApiError(404, "no such result (it may have been removed: colorize the photo again)")
        choice = demo.choices.get(form.get("run", ""))
        if choice is None:
            raise ApiError(400, "choose one of the runs listed")
        label = None
        if choice.needs_label:
            if form.get("label") not in CLASS_NAMES:
                raise ApiError(400, f"{choice.model} needs the class of the photo")
            label = CLASS_NAMES.index(form["label"])
        temperature = None
        if choice.temperature is not None:
            temperature = _temperature(form.get("temperature", ""), choice.temperature)
            if temperature is None:
                raise ApiError(400, f"temperature: a number above 0 and at most {MAX_TEMPERATURE:g}, "
                                    f"got '{_one_line(form.get('temperature', ''))[:40]}'")
        upload = request.files.get("reference")
        request_dir = Path(tempfile.mkdtemp(prefix="upload-", dir=demo.work_dir))
        try:
            reference = None
            if upload and upload.filename:
                path = request_dir / "reference"
                upload.save(path)
                reference = (upload.filename, path)
            try:
                answer = demo.recolorize(choice, token, form.get("points", "[]"), label, temperature,
                                         faithful=choice.faithful and form.get("faithful") == "on",
                                         reference=reference, keep_reference=form.get("keep_reference") == "1")
            except photos.InputError as err:   # the kept upload cannot be read any more
                raise ApiError(400, _one_line(str(err))) from None
            except USER_ERRORS as err:   # the run folder is unusable, hints it cannot take...
                raise ApiError(400, _one_line(str(err))) from None
        finally:
            shutil.rmtree(request_dir, ignore_errors=True)
        return jsonify(answer)

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
