"""The demo web page (Flask): upload photos, pick a run, see ``[gray | colorized]`` at full resolution, download.

Colorization goes through inference.photos, the code colorize.py runs: the model sees the gray
photo shrunk to its input size, and its chroma is recombined with the photo's own full-resolution
lightness, so a result has the upload's size and lightness. Uploads are checked as colorize.py
checks files (not an image, truncated, above loaders.cifar.MAX_PIXELS: refused before decoding); each
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

Clips (mp4, webm, mov, mkv, avi, animated GIF: inference.video): the form's second button sends one
clip to ``POST /video``, which checks it (a clip, readable, at most ``max_video_frames`` frames of at
most ``loaders.cifar.MAX_PIXELS``), queues a job and redirects to ``/?job=<id>``. One worker thread colorizes
the queued clips in turn with inference.video.colorize_video (stable colors, audio copied when the
output takes it), holding the same lock as photos (one colorization at a time: photos wait while a
clip is colorized). The page polls ``GET /api/job/<id>`` (JSON: :func:`create_app` documents it) for
the frames done, the speed and the time left, then plays the result in a ``<video>`` element. The
result is an mp4 (H.264 4:2:0, which every browser plays) when the clip's sides are even, else a
webm (VP9: 4:2:0 H.264 needs even sides, and browsers do not all play the 4:4:4 kind).

Limits: ``max_upload_mb`` for a whole request (Flask answers 413, shown as a message on the page),
``max_files`` per request, ``loaders.cifar.MAX_PIXELS`` per image or clip frame, ``max_video_frames`` per
clip. Results live in a temporary folder of the process; the most recent ``KEEP_RESULTS`` are kept.
"""
from __future__ import annotations

import json
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flask import Flask, abort, jsonify, redirect, render_template, request, send_file
from PIL import Image
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import secure_filename

from core import hints as core_hints
from inference import USER_ERRORS, Colorizer, hintsfile, photos, video
from loaders.cifar import CLASS_NAMES, MAX_PIXELS
from serving.catalog import RunChoice, set_faithful, set_temperature

KEEP_RESULTS = 64          # result folders kept on disk; older ones are deleted
RESULT_NAME = re.compile(r"^[0-9a-f]{32}$")
MAX_TEMPERATURE = 10.0     # a bound against typos: far above 1 the annealed mean tends to the plain mean
MAX_POINTS = 256           # color hints per re-colorization
SOURCE_NAME = "source"     # the original upload, kept in a result's folder when its run takes hints
REFERENCE_NAME = "reference.npz"   # the result's current reference: its core.hints.Reference arrays
MAX_VIDEO_FRAMES = 600     # frames per clip (demo.py --max-video-frames): 25 s at 24 fps, a minute or two of work
VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}   # what the page writes clips as


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
    # the run and decoding settings it was made with (the editor sends them back)
    settings: dict = field(default_factory=dict)


@dataclass
class VideoJob:
    """A clip to colorize (queued, then run by the demo's worker thread) and how far it got."""
    token: str           # its folder under the work folder, and its id in /api/job/<token>
    name: str            # the upload's file name (display only)
    choice: RunChoice
    label: int | None
    temperature: float | None
    faithful: bool
    source: Path         # the saved upload (deleted when the job ends)
    out: Path            # the result: colorized.mp4 or colorized.webm
    info: video.ClipInfo
    max_frames: int
    state: str = "queued"        # queued, running, done, failed
    done: int = 0                # frames written so far
    total: int | None = None     # frames expected (the container's count, else from its duration), when known
    elapsed: float = 0.0         # seconds since it started running
    error: str | None = None     # one line, when it failed
    notes: list = field(default_factory=list)   # what the page says besides (audio left out, stopped at the limit)
    finished: float | None = None  # time.time() when it ended
    order: int = 0               # its place in the queue (the demo numbers the jobs)
    first: float | None = None   # elapsed seconds at the first frame (loading the model comes before it)

    @property
    def fps(self) -> float:
        """Frames per second after the first frame (so that loading the model does not count); 0 until known."""
        if self.first is None or self.done < 2 or self.elapsed <= self.first:
            return 0.0
        return (self.done - 1) / (self.elapsed - self.first)

    def progress(self, done: int, total: int | None, elapsed: float, final: bool = False) -> None:
        """colorize_video's progress callback (after each frame)."""
        self.done, self.total, self.elapsed = done, total, elapsed
        if self.first is None and done >= 1:
            self.first = elapsed

    @property
    def requested(self) -> bool:
        """colorize_video's stop: a clip longer than it stated (or stating no length) ends at the frame limit."""
        return self.done >= self.max_frames and self.done != self.total

    @property
    def has_video(self) -> bool:
        return self.state in ("done", "failed") and self.out.is_file()

    def download_name(self) -> str:
        return f"{self.name.rsplit('.', 1)[0] or 'clip'}-colorized{self.out.suffix}"

    def as_json(self, waiting: int = 0) -> dict:
        fps = self.fps
        left = None
        if self.state == "running" and self.total and fps > 0:
            left = max(0.0, (self.total - self.done) / fps)
        if self.state == "queued":
            status = (f"waiting: {waiting} clip{'s' if waiting > 1 else ''} before it" if waiting
                      else "waiting for the colorizer")
        elif self.state == "running":
            count = f"{self.done} / {self.total} frames ({100 * self.done / self.total:.0f} %)" if self.total \
                else f"{self.done} frames"
            status = f"colorizing: {count}" + (f", {fps:.1f} fps" if fps
                                               else ", starting (loading the model)" if not self.done else "")
            if left is not None:
                status += f", {_clock(left)} left"
        elif self.state == "done":
            status = f"done: {self.done} frames in {self.elapsed:.1f} s" + (f" ({fps:.1f} fps)" if fps else "")
        else:
            status = f"stopped after {self.done} frames" if self.done else "failed"
        return {"id": self.token, "name": self.name, "state": self.state, "status": status, "waiting": waiting,
                "done": self.done, "total": self.total, "fps": round(fps, 2), "elapsed": round(self.elapsed, 2),
                "seconds_left": None if left is None else round(left, 1),
                "width": self.info.width, "height": self.info.height,
                "video": f"/results/{self.token}/{self.out.name}" if self.has_video else None,
                "type": VIDEO_TYPES[self.out.suffix], "download": self.download_name(),
                "error": self.error, "notes": list(self.notes)}


class Demo:
    """State of one demo server: the runs it offers, loaded colorizers, the result folder."""

    def __init__(self, choices: list[RunChoice], work_dir: Path, runtime: str | None = None):
        self.choices = {c.key: c for c in choices}
        self.runtime = runtime   # inference.lean.choose's: None is $COLORIZE_RUNTIME, else auto (ONNX Runtime)
        self.work_dir = Path(work_dir)
        self._colorizers: dict[str, Colorizer] = {}   # loaded on first use, kept
        # One colorization at a time: every request shares a run's Colorizer (and the temperature set on it).
        self._lock = threading.Lock()
        self.jobs: dict[str, VideoJob] = {}          # clips, by token
        self._queue: queue.Queue = queue.Queue()     # clips waiting for the worker
        self._worker: threading.Thread | None = None
        self._jobs_lock = threading.Lock()

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

    def submit_video(self, job: VideoJob) -> None:
        """Queue a clip; the worker thread (started on the first clip) colorizes the clips in turn."""
        with self._jobs_lock:
            job.order = max((j.order for j in self.jobs.values()), default=0) + 1
            self.jobs[job.token] = job
            self._queue.put(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="demo-video", daemon=True)
                self._worker.start()

    def waiting_before(self, job: VideoJob) -> int:
        """How many clips run or wait before this queued one."""
        with self._jobs_lock:
            return sum(1 for j in self.jobs.values() if j.state in ("queued", "running")
                       and j.order < job.order)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self.colorize_video(job)
            finally:
                self._queue.task_done()

    def colorize_video(self, job: VideoJob) -> None:
        """Run one clip's job (in the worker thread): never raises; a failure is one line in ``job.error``."""
        names = {str(job.source): job.name, str(job.out): "the result"}
        try:
            with self._lock:
                job.state = "running"
                colorizer = self._decoding(job.choice, job.temperature, job.faithful)
                stats = video.colorize_video(colorizer, job.source, job.out, label=job.label,
                                             progress=job.progress, stop=job)
            job.notes = [_one_line(_rename(n, names)) for n in stats.notes]
            if stats.stopped:
                said = "does not state its length" if job.total is None else "has more frames than it states"
                job.notes.append(f"{job.name} {said}: colorized its first {stats.frames} frames, the page's limit "
                                 "(--max-video-frames)")
            job.done = stats.frames
            job.state = "done"
        except video.DamagedVideoError as err:
            message = str(err).replace(f"to {job.out} (playable)", "below (playable)")
            job.error = _one_line(_rename(message, names))
            job.done = err.frames_written
            job.state = "failed"
        except USER_ERRORS as err:   # not a readable clip after all, the run folder is unusable...
            job.error = _one_line(_rename(str(err), names))
            job.state = "failed"
        except Exception as err:   # the traceback goes to the server's log, never to the page
            import logging
            logging.getLogger(__name__).exception("colorizing %s failed", job.name)
            job.error = _one_line(f"the server failed to colorize the clip: "
                                  f"{type(err).__name__}: {_rename(str(err), names)}")
            job.state = "failed"
        finally:
            job.finished = time.time()
            try:
                job.source.unlink(missing_ok=True)
                self._prune()
            except OSError:   # the work folder is going away (the server stops): nothing to tidy
                pass

    def _prune(self) -> None:
        with self._jobs_lock:
            busy = {t for t, j in self.jobs.items() if j.state in ("queued", "running")}
        folders = sorted((p for p in self.work_dir.iterdir() if RESULT_NAME.match(p.name) and p.name not in busy),
                         key=lambda p: p.stat().st_mtime)
        for old in folders[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)
        with self._jobs_lock:
            for token in [t for t in self.jobs if t not in busy and not (self.work_dir / t).is_dir()]:
                del self.jobs[token]


def _rename(message: str, names: dict[str, str]) -> str:
    """An error line names the saved upload's path; show the name the user uploaded instead."""
    for path, name in names.items():
        message = message.replace(path, name)
    return message


def _clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss past an hour)."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


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
        raise ApiError(400, _one_line(message[len("points: "):] if message.startswith("points: points")
                                      else message)) from None
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


class FormError(Exception):
    """A page request that cannot be served: one line for the page, its status, the run to keep selected."""

    def __init__(self, message: str, status: int = 400, selected: str | None = None):
        super().__init__(message)
        self.status, self.selected = status, selected


def create_app(choices: list[RunChoice], work_dir: Path, max_upload_mb: float = 64, max_files: int = 16,
               runtime: str | None = None, max_video_frames: int = MAX_VIDEO_FRAMES) -> Flask:
    """The demo's Flask app. Its JSON endpoints (``{"error": one line}`` with the status when refused):

    ``POST /api/recolorize``: a result colorized again with color hints (documented on the view).

    ``GET /api/job/<id>``: a clip's job, sent by ``POST /video`` (the page's form, which redirects to
    ``/?job=<id>``): ``{"id", "name", "state": "queued" | "running" | "done" | "failed", "waiting":
    clips before it, "done": frames written, "total": frames expected or null, "fps", "elapsed",
    "seconds_left" (null unless running with a known total), "width", "height", "video": the result's
    URL or null, "type": its MIME type, "download": a file name for it, "error": one line or null,
    "notes": [lines]}``. A damaged clip fails with its frames before the damage still in "video".
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2 ** 20)
    demo = Demo(choices, work_dir, runtime)
    example_files = examples()
    app.config["DEMO"] = demo

    def page(results=(), errors=(), status=200, selected=None, form=None, job=None):
        if job is not None and selected is None:
            selected = job.choice.key
        return render_template("index.html", choices=list(demo.choices.values()), classes=CLASS_NAMES,
                               examples=example_files, results=results, errors=errors, selected=selected,
                               form=form or {}, max_upload_mb=max_upload_mb, max_files=max_files,
                               max_megapixels=MAX_PIXELS / 1e6, gap=photos.COMPARE_GAP, job=job,
                               job_json=None if job is None else job.as_json(demo.waiting_before(job)),
                               max_video_frames=max_video_frames,
                               video_suffixes=", ".join(s.lstrip(".") for s in video.VIDEO_SUFFIXES)), status

    def settings(form, what: str = "photos") -> tuple[RunChoice, int | None, float | None, bool]:
        """The run and decoding settings the form asks for: (choice, label, temperature, faithful); FormError."""
        choice = demo.choices.get(form.get("run", ""))
        if choice is None:
            raise FormError("choose one of the runs listed")
        label = None
        if choice.needs_label:
            if form.get("label") not in CLASS_NAMES:
                raise FormError(f"{choice.model} needs the class of the {what}: choose one", selected=choice.key)
            label = CLASS_NAMES.index(form["label"])
        temperature = None
        if choice.temperature is not None:
            temperature = _temperature(form.get("temperature", ""), choice.temperature)
            if temperature is None:
                raise FormError(f"temperature: a number above 0 and at most {MAX_TEMPERATURE:g}, "
                                f"got '{form.get('temperature')}'", selected=choice.key)
        return choice, label, temperature, choice.faithful and form.get("faithful") == "on"

    def api_error(status: int, message: str):
        return jsonify(error=message), status

    def is_api() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_err):
        if is_api():
            return api_error(413, f"the upload is larger than {max_upload_mb:g} MB; choose a smaller reference image")
        return page(errors=[f"the upload is larger than {max_upload_mb:g} MB; send fewer or smaller images"],
                    status=413)

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

    @app.errorhandler(FormError)
    def form_refused(err: FormError):
        return page(errors=[str(err)], status=err.status, selected=err.selected, form=request.form)

    @app.get("/")
    def index():
        token = request.args.get("job")
        if token is None:
            return page()
        job = demo.jobs.get(token) if RESULT_NAME.match(token) else None
        if job is None:
            return page(errors=["no such clip (it may have been removed: send it again)"], status=404)
        return page(job=job)

    @app.post("/")
    def colorize():
        form = request.form
        choice, label, temperature, faithful = settings(form)
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
                results, errors = demo.colorize(choice, files, label, temperature, faithful=faithful)
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

    @app.post("/video")
    def colorize_clip():
        """One clip (the form's ``clip`` file, with its run and decoding settings): checked, queued, and a
        redirect to ``/?job=<id>``, where the page follows its progress; a refusal is the page with a message."""
        form = request.form
        choice, label, temperature, faithful = settings(form, "clip")
        upload = request.files.get("clip")
        if not upload or not upload.filename:
            raise FormError("choose a clip to colorize", selected=choice.key)
        name = upload.filename
        suffix = Path(name).suffix.lower()   # only used when it is one of VIDEO_SUFFIXES
        if suffix not in video.VIDEO_SUFFIXES:
            raise FormError(f"{name}: not a clip: a clip is one of {', '.join(video.VIDEO_SUFFIXES)} "
                            "(photos go through the Colorize button)", selected=choice.key)
        token = uuid.uuid4().hex
        folder = demo.work_dir / token
        folder.mkdir()
        source = folder / f"source{suffix}"
        try:
            upload.save(source)
            if suffix == ".gif" and not video.is_video(source):
                raise FormError(f"{name}: a still GIF is a photo: colorize it with the Colorize button",
                                selected=choice.key)
            try:
                info = video.probe(source)
            except video.VideoError as err:
                raise FormError(_one_line(str(err).replace(str(source), name)), selected=choice.key) from None
            if info.width * info.height > MAX_PIXELS:
                raise FormError(f"{name}: {info.width}x{info.height} frames are {info.width * info.height / 1e6:.1f} "
                                f"megapixels, above the limit of {MAX_PIXELS / 1e6:g}", selected=choice.key)
            if info.expected_frames and info.expected_frames > max_video_frames:
                raise FormError(f"{name}: {info.expected_frames} frames, above the limit of {max_video_frames} "
                                "(--max-video-frames): send a shorter clip", selected=choice.key)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # mp4 (H.264 4:2:0) plays in every browser but needs even sides; VP9 webm takes any size.
        out = folder / ("colorized.mp4" if info.width % 2 == 0 and info.height % 2 == 0 else "colorized.webm")
        job = VideoJob(token, name, choice, label, temperature, faithful, source, out, info, max_video_frames,
                       total=info.expected_frames)
        demo.submit_video(job)
        return redirect(f"/?job={token}", code=303)

    @app.get("/api/job/<token>")
    def job_status(token: str):
        """A clip's job as JSON (create_app's docstring); 404 when there is no such job."""
        job = demo.jobs.get(token) if RESULT_NAME.match(token) else None
        if job is None:
            raise ApiError(404, "no such clip (it may have been removed: send it again)")
        return jsonify(job.as_json(demo.waiting_before(job)))

    @app.get("/results/<token>/<kind>")
    def result_file(token: str, kind: str):
        files = {"colorized.png": ("colorized.png", "image/png"), "compare.png": ("colorized-compare.png", "image/png"),
                 **{f"colorized{s}": (f"colorized{s}", t) for s, t in VIDEO_TYPES.items()}}
        if not RESULT_NAME.match(token) or kind not in files:
            abort(404)
        job = demo.jobs.get(token)
        if job is not None and job.state in ("queued", "running"):
            abort(404)   # a clip being written: not playable yet
        name, mimetype = files[kind]
        path = demo.work_dir / token / name
        if not path.is_file():
            abort(404)
        return send_file(path, mimetype=mimetype, conditional=True)   # conditional: Range requests (seeking)

    @app.get("/examples/<key>")
    def example_file(key: str):
        if key not in example_files:
            abort(404)
        return send_file(example_files[key])

    return app
