"""Colorizing photo files of any size at full resolution, and video clips (what ``colorize.py`` and the demo do).

Each input is decoded once, colorized by :meth:`Colorizer.colorize_photo` (the network at a
working size, its chroma brought back to full size guided by the photo's own lightness:
``inference.fullres``) with its color hints if it has any, and written as a PNG. The output has
the input's exact size (after EXIF rotation) and its lightness and detail; only the color comes
from the model.

Hints (``attach_hints``): a hints file for one input, ``STEM.hints.json`` beside an image of a
folder, and one reference image for every input; all are read and checked before any work starts.

Clips (mp4, mkv, webm, mov, avi, animated GIF: ``inference.video.is_video``) among the inputs, alone or
found in folders, are colorized by :func:`process_clip` (``inference.video.colorize_video``: streamed
frame by frame, colors carried along the motion unless ``stabilize=False``) into the same container,
``<out>/<stem><suffix>``; their hints are given in the first frame's pixels. A damaged or truncated clip
is one :class:`InputError` line (the frames before the damage are written, playable); a stop request
ends a clip after the frame in progress, closed and playable (``Job.stats.stopped``).

Bad inputs (missing, not an image, truncated, above MAX_PIXELS, decompression bombs) raise
:class:`InputError` with one line naming the file; :func:`colorize_files` reports them and goes on.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core import faults
from core import hints as core_hints
from core.stopping import GracefulStop
from inference import hintsfile, png, video
from inference.colorizer import Colorizer, HintsError  # noqa: F401  (HintsError: raised by the tools for photos)
from loaders import cifar
from loaders.cifar import IMAGE_EXTENSIONS, MAX_PIXELS, DataError

# loaders.cifar.MAX_PIXELS: inputs above it are refused before decoding (40 MP: 120 MB as uint8 RGB)
COMPARE_GAP = 8             # white pixels between the halves of a --compare image


class InputError(Exception):
    """One input file cannot be colorized; the message is one line naming the file."""


@dataclass
class PhotoHints:
    """The color hints of one photo: points in its pixels, and a reference (its colors: core.hints.Reference)."""
    points: tuple = ()                          # core.hints.Point, photo pixels
    reference: core_hints.Reference | None = None
    sources: tuple = ()                         # the files they came from (for messages)

    def __bool__(self) -> bool:
        return bool(self.points) or self.reference is not None


@dataclass
class Job:
    source: Path                # the input file
    out: Path                   # <out>/<stem>.png; a clip: <out>/<stem><its suffix>
    hints: PhotoHints | None = None
    video: bool = False         # a clip (inference.video.is_video), colorized by process_clip
    stats: video.VideoStats | None = None   # a clip's, once colorized (frames, fps, stopped, ...)


# ---- inputs ---------------------------------------------------------------------

MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | set(video.VIDEO_SUFFIXES)   # what a folder contributes


def media_files(folder: Path) -> list[Path]:
    """Image and clip files under a folder, recursively, in loaders.cifar.image_files' order (img-2 before img-10)."""
    def natural(rel: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(rel))]
    return sorted((p for p in folder.rglob("*") if p.suffix.lower() in MEDIA_EXTENSIONS and p.is_file()),
                  key=lambda p: natural(p.relative_to(folder)))


def output_for(source: Path, out: Path, is_clip: bool) -> Path:
    """A photo's output is a PNG; a clip's keeps its container (inference.video.output_path): ``out`` with
    that suffix."""
    return out.with_suffix(source.suffix.lower() if is_clip else ".png")


def collect_jobs(inputs: list[Path], out_dir: Path) -> tuple[list[Job], list[str]]:
    """(jobs, errors): one job per input file, and one message per input that yields none.

    A file is taken whatever its extension (Pillow decides later whether it is an image; a video
    suffix or an animated GIF makes it a clip); a folder contributes its image and clip files,
    recursively, keeping their sub-folders below out_dir. Output names never repeat and never
    overwrite an input file.
    """
    errors: list[str] = []
    pairs: list[tuple[Path, Path]] = []   # (file, its output path with the input's name, before de-duplication)
    for path in inputs:
        if path.is_dir():
            files = media_files(path)
            if not files:
                errors.append(f"{path}: no image or video files ({', '.join(sorted(MEDIA_EXTENSIONS))}) "
                              "in this folder")
            pairs += [(f, out_dir / f.relative_to(path)) for f in files]
        elif path.is_file():
            pairs.append((path, out_dir / path.name))
        else:
            errors.append(f"{path}: no such file or folder")
    jobs: list[Job] = []
    sources = {f.resolve() for f, _ in pairs}
    taken: set[Path] = set()      # outputs already assigned (resolved)
    done: set[Path] = set()       # inputs already assigned (resolved)
    for f, out in pairs:
        if f.resolve() in done:
            continue   # the same file given twice (e.g. a file and its folder)
        done.add(f.resolve())
        is_clip = video.is_video(f)
        job = Job(f, _unique(output_for(f, out, is_clip), taken, sources), video=is_clip)
        taken.update((job.out.resolve(), compare_path(job.out).resolve()))
        jobs.append(job)
    return jobs, errors


def _unique(path: Path, taken: set[Path], sources: set[Path]) -> Path:
    """path, or path with -2, -3, ... before the suffix when it is already an output or is an input."""
    def free(p: Path) -> bool:
        return all(q.resolve() not in taken and q.resolve() not in sources for q in (p, compare_path(p)))

    candidate, n = path, 1
    while not free(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def compare_path(out: Path) -> Path:
    """Where --compare writes the side-by-side version of ``out``."""
    return out.with_name(f"{out.stem}-compare{out.suffix}")


def open_image(path: Path) -> Image.Image:
    """Open lazily (header only), refusing images above MAX_PIXELS before any pixel is decoded
    (loaders.cifar.open_image, the one image reader of the project)."""
    try:
        return cifar.open_image(path)
    except DataError as err:
        raise InputError(str(err)) from None


def _decode_rgb(img: Image.Image, path: Path) -> Image.Image:
    """Decode the pixels (any mode) into an 8-bit RGB image, EXIF orientation applied (loaders.cifar.decode_rgb)."""
    try:
        return cifar.decode_rgb(img, path)
    except DataError as err:
        raise InputError(str(err)) from None


def read_full(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB at full resolution (checked against MAX_PIXELS before decoding)."""
    with open_image(path) as img:
        rgb = _decode_rgb(img, path)
    return np.asarray(rgb, dtype=np.uint8)


def clip_size(path: Path) -> tuple[int, int] | None:
    """A clip's (width, height) from its container (nothing decoded); None when it cannot be read (its
    colorization reports that, as one error line among the other inputs)."""
    try:
        info = video.probe(path)
    except video.VideoError:
        return None
    return info.width, info.height


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF rotation, from the header where the format keeps EXIF there (a PNG's
    may follow the pixels: Pillow decodes them to reach it). Damaged EXIF or pixels: the stored size, as
    decoding keeps it (decoding then says what is wrong with the pixels)."""
    with open_image(path) as img:
        w, h = img.size
        try:
            orientation = img.getexif().get(0x0112, 1)
        except Exception:   # noqa: BLE001 -- Pillow's decoders, on a truncated or damaged file
            orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


# ---- hints ----------------------------------------------------------------------------

def read_reference(path: Path, source: str = "") -> core_hints.Reference:
    """A reference image -> its colors (core.hints.Reference); InputError naming it when unreadable."""
    try:
        rgb = read_full(path)
    except InputError as err:
        raise InputError(f"{source}{': ' if source else ''}reference {err}") from None
    return core_hints.reference(rgb)


def attach_hints(jobs: list[Job], hints_file: Path | None = None, reference: Path | None = None) -> list[str]:
    """Read and check every job's hints before any work: ``hints_file`` for a single job, else each
    image's or clip's ``STEM.hints.json`` beside it; ``reference`` for every job (where a hints file names
    none). A clip's points are in its first frame's pixels (checked against the size its container states).
    Returns one error line per problem (the caller stops on any: a bad hints file is a usage error)."""
    errors: list[str] = []
    references: dict[Path, core_hints.Reference] = {}

    def distribution(path: Path, source: str) -> core_hints.Reference:
        key = path.resolve()
        if key not in references:
            references[key] = read_reference(path, source)
        return references[key]

    if hints_file is not None and len(jobs) > 1:
        return [f"{hints_file}: --hints applies to one input, got {len(jobs)} files "
                "(for a folder, put STEM.hints.json beside each image or clip)"]
    for job in jobs:
        path = hints_file if hints_file is not None else hintsfile.hints_file_for(job.source)
        try:
            spec = hintsfile.load_hints(path) if path is not None else None
            if spec is not None:
                if not job.video:
                    hintsfile.check_inside(spec, *image_size(job.source), job.source.name)
                elif (size := clip_size(job.source)) is not None:
                    try:
                        hintsfile.check_inside(spec, *size, job.source.name)
                    except hintsfile.HintsFileError as err:
                        raise hintsfile.HintsFileError(str(err).replace(
                            f"outside the image {job.source.name} (", f"outside the first frame of {job.source.name} (",
                            1)) from None
            points = tuple(core_hints.point(p.x, p.y, p.rgb, p.radius) for p in (spec.points if spec else ()))
            ref_path = spec.reference if spec is not None and spec.reference is not None else reference
            dist = None
            if ref_path is not None:
                dist = distribution(ref_path, str(path) if spec is not None and spec.reference else "--reference")
            job.hints = PhotoHints(points, dist, tuple(p for p in (path, ref_path) if p is not None))
        except (hintsfile.HintsFileError, InputError) as err:
            errors.append(str(err))
    return errors


# ---- colorization ---------------------------------------------------------------------

def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = COMPARE_GAP) -> np.ndarray:
    """(H, W, 3) uint8 x 2 -> (H, 2W + gap, 3) uint8 with a white gap."""
    h = left.shape[0]
    return np.concatenate([left, np.full((h, gap, 3), 255, np.uint8), right], axis=1)


def save_png(image: np.ndarray, path: Path) -> None:
    """(H, W, 3) uint8 RGB -> a PNG file at ``path``, on every core (inference.png: speed over size; the
    same pixels), written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(png.encode_rgb(image))
    tmp.replace(path)   # no half-written PNG if interrupted


def process(colorizer: Colorizer, job: Job, label: int | None, compare: bool,
            long_side: int | None = None) -> list[Path]:
    """One file: decode at full size, colorize (with its hints), write; the paths written."""
    rgb = read_full(job.source)
    hints = job.hints or PhotoHints()
    colorized, gray = colorizer.colorize_photo(rgb, hints.points, hints.reference, label, long_side, with_gray=compare)
    del rgb
    try:
        save_png(colorized, job.out)
        written = [job.out]
        if compare:
            save_png(side_by_side(gray, colorized), compare_path(job.out))
            written.append(compare_path(job.out))
    except OSError as err:
        raise InputError(f"{job.source}: cannot write {job.out} ({err.strerror or err})") from None
    return written


def process_clip(colorizer: Colorizer, job: Job, label: int | None, long_side: int | None = None,
                 stabilize: bool = True, stop: GracefulStop | None = None, progress: bool = True) -> video.VideoStats:
    """One clip: colorized frame by frame into ``job.out`` (its container), with its hints (points in the
    first frame's pixels, a reference for every frame); ``progress``: a line on stderr (frames, fps, time
    left: inference.video.ProgressLine). With ``stop``, ends after the frame in progress (``stopped``).
    Sets and returns ``job.stats``. InputError (one line naming the file) when the clip cannot be read, is
    damaged or truncated (the frames before the damage are written, playable), or is too large."""
    try:
        info = video.probe(job.source)
        if info.width * info.height > MAX_PIXELS:
            raise InputError(f"{job.source}: {info.width}x{info.height} frames are "
                             f"{info.width * info.height / 1e6:.1f} megapixels, "
                             f"above the limit of {MAX_PIXELS / 1e6:.0f}")
        hints = job.hints or PhotoHints()
        line = video.ProgressLine(job.source.name) if progress else None

        def report(done, total, elapsed, final=False):
            if line is not None:
                line(done, total, elapsed, final)
            if not final:
                faults.pause("colorize-frame")   # tests: a signal here arrives between two frames

        job.stats = video.colorize_video(colorizer, job.source, job.out, hints.points, hints.reference, long_side,
                                         stabilize, label, progress=report, stop=stop)
    except video.VideoError as err:             # DamagedVideoError too: its message says what was written
        raise InputError(str(err)) from None
    except OSError as err:
        raise InputError(f"{job.source}: cannot write {job.out} ({err.strerror or err})") from None
    return job.stats


def colorize_files(colorizer: Colorizer, jobs: list[Job], label: int | None, compare: bool,
                   stop: GracefulStop | None = None, long_side: int | None = None, stabilize: bool = True,
                   progress: bool = True) -> tuple[int, list[str]]:
    """Colorize every job, one file at a time (each decoded once); returns (number colorized, error
    lines (already printed) of the files that failed).

    ``long_side``: the working size of a flexible network (inference.fullres). With ``stop`` (a
    core.stopping.GracefulStop), a stop signal ends the work after the file in progress (a clip: after
    its frame in progress, the clip closed and playable, ``job.stats.stopped``, not counted as done):
    every output written so far is complete (save_png), and ``stop.requested`` tells the caller.
    Clips (``job.video``): :func:`process_clip` with ``stabilize`` and ``progress``; ``compare`` is for photos.
    """
    errors: list[str] = []
    done = 0
    for job in jobs:
        if stop is not None and stop.requested:
            break
        try:
            if job.video:
                stats = process_clip(colorizer, job, label, long_side, stabilize, stop, progress)
                written = [job.out]
            else:
                written = process(colorizer, job, label, compare, long_side)
        except InputError as err:
            errors.append(str(err))
            print(f"error: {err}", file=sys.stderr)
            continue
        if job.video:
            for note in stats.notes:
                print(f"note: {job.source}: {note}")
            if stats.stopped:
                print(f"{job.source} -> {job.out}: stopped after {stats.frames} frame(s), the clip closed and "
                      "playable (the rest is not colorized)", flush=True)
                continue
            cuts = f", scene cuts at frames {', '.join(map(str, stats.cuts))}" if stats.cuts else ""
            print(f"{job.source} -> {job.out} ({stats.frames} frames, {stats.fps:.1f} fps{cuts})", flush=True)
        else:
            print(f"{job.source} -> {', '.join(map(str, written))}", flush=True)
        done += 1
        faults.pause("colorize-file")   # tests: a signal here arrives between two images
    return done, errors
