"""Colorizing photos of any size at full resolution (what ``colorize.py`` does).

The models work at a small size (32 px for CIFAR-10 runs). For each input, the model sees the
gray version of the input shrunk to its size; its prediction's chroma (a, b of CIE LAB; for the
RGB GAN, the a, b of its RGB output) is upsampled bilinearly to the input's size and recombined
with the input's own full-resolution lightness L. The output therefore has the input's exact
size (after EXIF rotation) and its lightness and detail; only the color comes from the model.
Where the predicted chroma does not exist at the pixel's lightness (outside sRGB), the chroma is
reduced until it fits, keeping L and the hue, instead of clipping RGB (which would change L).

Bad inputs (missing, not an image, truncated, above MAX_PIXELS, decompression bombs) raise
:class:`InputError` with one line naming the file; :func:`colorize_files` reports them and goes on.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import dataset
from core import colorspace, faults
from core.stopping import GracefulStop
from dataset import IMAGE_EXTENSIONS, MAX_PIXELS, DataError, image_files
from inference.colorizer import Colorizer

# dataset.MAX_PIXELS: inputs above it are refused before decoding (40 MP: 120 MB as uint8 RGB)
STRIP_PIXELS = 1 << 20      # full-size work is done in strips of about this many pixels (~12 MB float32 LAB)
BATCH = 64                  # small model inputs colorized per call
COMPARE_GAP = 8             # white pixels between the halves of a --compare image


class InputError(Exception):
    """One input file cannot be colorized; the message is one line naming the file."""


@dataclass
class Job:
    source: Path                # the input file
    out: Path                   # <out>/<stem>.png
    ab: np.ndarray | None = None   # (S, S, 2) float32 predicted chroma, set after pass 1


# ---- inputs ---------------------------------------------------------------------

def collect_jobs(inputs: list[Path], out_dir: Path) -> tuple[list[Job], list[str]]:
    """(jobs, errors): one job per input file, and one message per input that yields none.

    A file is taken whatever its extension (Pillow decides later whether it is an image); a
    folder contributes its image files, recursively, keeping their sub-folders below out_dir.
    Output names never repeat and never overwrite an input file.
    """
    errors: list[str] = []
    pairs: list[tuple[Path, Path]] = []   # (file, output path before de-duplication)
    for path in inputs:
        if path.is_dir():
            files = image_files(path)
            if not files:
                errors.append(f"{path}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder")
            pairs += [(f, out_dir / f.relative_to(path).with_suffix(".png")) for f in files]
        elif path.is_file():
            pairs.append((path, out_dir / f"{path.stem}.png"))
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
        job = Job(f, _unique(out, taken, sources))
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
    (dataset.open_image, the one image reader of the project)."""
    try:
        return dataset.open_image(path)
    except DataError as err:
        raise InputError(str(err)) from None


def _decode_rgb(img: Image.Image, path: Path) -> Image.Image:
    """Decode the pixels (any mode) into an 8-bit RGB image, EXIF orientation applied (dataset.decode_rgb)."""
    try:
        return dataset.decode_rgb(img, path)
    except DataError as err:
        raise InputError(str(err)) from None


def read_small_gray(path: Path, size: int) -> np.ndarray:
    """The model's input: (size, size, 3) uint8, the gray (L only) version of the image, area-averaged."""
    with open_image(path) as img:
        try:
            img.draft("RGB", (size, size))   # JPEG: decode at 1/2..1/8 scale, much faster
        except Exception:   # noqa: BLE001 -- draft is only an optimization
            pass
        rgb = _decode_rgb(img, path)
    shrink = Image.BOX if min(rgb.size) >= size else Image.BILINEAR
    small = np.asarray(rgb.resize((size, size), shrink), dtype=np.uint8)
    # the stretch to a square is undone when the chroma is upsampled back to the input's shape
    return colorspace.to_uint8(colorspace.gray_rgb(small))


def read_full(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB at full resolution (checked against MAX_PIXELS before decoding)."""
    with open_image(path) as img:
        rgb = _decode_rgb(img, path)
    return np.asarray(rgb, dtype=np.uint8)


# ---- colorization ---------------------------------------------------------------------

def predict_ab(colorizer: Colorizer, small: np.ndarray, label: int | None) -> np.ndarray:
    """(N, S, S, 3) uint8 gray inputs -> (N, S, S, 2) float32 predicted a, b (LAB units).

    Taking a, b of the predicted RGB treats LAB models and the RGB GAN alike.
    """
    labels = None if label is None else np.full(len(small), label, np.int64)
    out = np.empty(small.shape[:3] + (2,), np.float32)
    for start in range(0, len(small), BATCH):
        stop = start + BATCH
        rgb = colorizer.colorize(small[start:stop], None if labels is None else labels[start:stop])
        out[start:stop] = colorspace.rgb_to_lab(rgb)[..., 1:]
    return out


@functools.cache
def _xyzn_to_linear() -> np.ndarray:
    """(3, 3) matrix, row-vector form: white-normalized XYZ -> linear sRGB, as colorspace uses it.

    Derived from the public colorspace.rgb_to_lab (the XYZ of each primary is a row of the
    forward matrix), so it follows that module without reaching into its private constants.
    """
    lab = colorspace.rgb_to_lab(np.eye(3, dtype=np.float32)).astype(np.float64)   # pure R, G, B
    return np.linalg.inv(_lab_to_xyzn(lab)).astype(np.float32)


def _lab_to_xyzn(lab: np.ndarray) -> np.ndarray:
    """(..., 3) LAB -> (..., 3) XYZ / white (the CIE inverse, constants as colorspace's)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    return np.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / 7.787)   # f*f*f: 7x faster than f**3


def in_gamut(lab: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """(..., 3) LAB -> (...) bool: the color exists in sRGB (its linear RGB lies in [0, 1])."""
    xyz = _lab_to_xyzn(lab)
    m = _xyzn_to_linear()
    inside = np.ones(lab.shape[:-1], bool)
    for c in range(3):   # three multiply-adds: NumPy's matmul is slow for an inner size of 3
        lin = xyz[..., 0] * m[0, c] + xyz[..., 1] * m[1, c] + xyz[..., 2] * m[2, c]
        inside &= (lin >= -tol) & (lin <= 1.0 + tol)
    return inside


def fit_gamut(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """(..., 3) LAB -> the same with a, b scaled toward 0 where the color is outside sRGB.

    lab_to_rgb clips such colors in RGB, which changes their lightness; shrinking the chroma
    instead keeps L and the hue. The largest in-gamut scale is found by bisection, to 2**-steps.
    Gray (a = b = 0) with L in [0, 100] is always inside, so the search always succeeds.
    """
    flat = lab.reshape(-1, 3)
    idx = np.flatnonzero(~in_gamut(flat))
    if len(idx) == 0:
        return lab
    sub = flat[idx]                        # (K, 3) the colors outside
    lo = np.zeros(len(idx), np.float32)    # a scale known to be inside
    hi = np.ones(len(idx), np.float32)     # a scale known to be outside
    trial = sub.copy()
    for _ in range(steps):
        mid = (lo + hi) * np.float32(0.5)
        trial[:, 1:] = sub[:, 1:] * mid[:, None]
        inside = in_gamut(trial)
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    flat = flat.copy()
    flat[idx, 1:] = sub[:, 1:] * lo[:, None]
    return flat.reshape(lab.shape)


def recombine(rgb: np.ndarray, ab_small: np.ndarray, with_gray: bool = False):
    """Full-resolution colorization: (H, W, 3) uint8 input + (S, S, 2) predicted ab -> (H, W, 3) uint8.

    Works in horizontal strips of about STRIP_PIXELS pixels, so the only full-size arrays are
    uint8 (the input, the output, and the gray version when ``with_gray``). Each strip's ab is
    Pillow's bilinear resize of the matching band of ab_small (``box`` = the band in source
    coordinates), which equals a strip of one full-size resize to float rounding.
    Returns (colorized, gray or None).
    """
    h, w = rgb.shape[:2]
    s_h, s_w = ab_small.shape[:2]
    planes = [Image.fromarray(np.ascontiguousarray(ab_small[..., c], dtype=np.float32)) for c in (0, 1)]  # mode "F"
    out = np.empty_like(rgb)
    gray = np.empty_like(rgb) if with_gray else None
    rows = max(1, STRIP_PIXELS // w)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        box = (0.0, y0 * s_h / h, float(s_w), y1 * s_h / h)
        lab = colorspace.rgb_to_lab(rgb[y0:y1])                     # (r, W, 3) float32; L kept
        for c, plane in enumerate(planes):
            lab[..., 1 + c] = np.asarray(plane.resize((w, y1 - y0), Image.BILINEAR, box=box))
        out[y0:y1] = colorspace.to_uint8(colorspace.lab_to_rgb(fit_gamut(lab)))
        if gray is not None:
            gray[y0:y1] = colorspace.to_uint8(colorspace.gray_rgb(rgb[y0:y1]))
    return out, gray


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = COMPARE_GAP) -> np.ndarray:
    """(H, W, 3) uint8 x 2 -> (H, 2W + gap, 3) uint8 with a white gap."""
    h = left.shape[0]
    return np.concatenate([left, np.full((h, gap, 3), 255, np.uint8), right], axis=1)


def save_png(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    tmp.replace(path)   # no half-written PNG if interrupted


def process(job: Job, compare: bool) -> list[Path]:
    """Pass 2 of one file: decode at full size, recombine with the predicted chroma, write; the paths written."""
    rgb = read_full(job.source)
    colorized, gray = recombine(rgb, job.ab, with_gray=compare)
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


def colorize_files(colorizer: Colorizer, jobs: list[Job], label: int | None, compare: bool,
                   stop: GracefulStop | None = None) -> tuple[int, list[str]]:
    """Colorize every job; returns (number colorized, error lines (already printed) of the files that failed).

    Pass 1 reads only the small gray inputs, so the model (and fusion_resnet's classifier) runs
    once over all of them; pass 2 decodes one full-size image at a time. With ``stop`` (a
    core.stopping.GracefulStop), a stop signal ends the work after the file in progress: every
    output written so far is complete (save_png), and ``stop.requested`` tells the caller.
    """
    errors: list[str] = []

    def fail(err: InputError) -> None:
        errors.append(str(err))
        print(f"error: {err}", file=sys.stderr)

    def stopping() -> bool:
        return stop is not None and stop.requested

    ok: list[Job] = []
    small: list[np.ndarray] = []
    for job in jobs:
        if stopping():
            return 0, errors
        try:
            small.append(read_small_gray(job.source, colorizer.image_size))
            ok.append(job)
        except InputError as err:
            fail(err)
    if ok:
        for job, ab in zip(ok, predict_ab(colorizer, np.stack(small), label)):
            job.ab = ab
    done = 0
    for job in ok:
        if stopping():
            break
        try:
            written = process(job, compare)
        except InputError as err:
            fail(err)
            continue
        done += 1
        print(f"{job.source} -> {', '.join(map(str, written))}", flush=True)
        faults.pause("colorize-file")   # tests: a signal here arrives between two images
    return done, errors
