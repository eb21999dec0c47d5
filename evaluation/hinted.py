"""Colorization with hints scored against no-learning baselines (evaluate.py --hints, --reference).

For each number of points N (a curve: HINT_COUNTS), every image gets N points drawn from its
original by the training protocol (``core.hints.simulate_points``: a random pixel, the mean ab
over a patch of 1-3 pixels), seeded by (seed, image index): the points of a smaller N are the
first ones of a larger N, so the curve adds points instead of redrawing them. Scored on the same
images and the same points:

- the model with those points (and the reference, when given);
- **spread** (``evaluation.baselines.spread``): the points' colors spread by Gaussian weights in
  distance and lightness, no learning;
- **gray**: a = b = 0;
- with a reference: **histogram-matched**, the model's output without hints with its a and b
  each matched to the reference's histograms.

``--reference self`` uses each original as its own reference; a file, the same reference for
every image. CIFAR-10 data is scored at its 32 x 32; a folder of photos at each photo's full
resolution (``max_side`` shrinks larger ones first, by area), through ``Colorizer.colorize_photo``.
Per-image metrics of ``evaluation.metrics``; "pooled" PSNR is that of the mean MSE over images.
"""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np
from PIL import Image

from core import colorspace
from core import hints as core_hints
from evaluation import baselines, metrics
from inference import Colorizer, HintInputs
from inference.fullres import fit_gamut

HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50)
SUMMARY_KEYS = ("psnr_pooled", "psnr", "psnr_color", "ssim", "colorfulness", "colorfulness_true")


def draw_points(ab: np.ndarray, n: int, seed: int, index: int) -> list[core_hints.Point]:
    """The first ``n`` simulated points of image ``index`` (ab (H, W, 2) of its original)."""
    rng = np.random.default_rng([seed, index])
    return core_hints.simulate_points(ab, n, rng)


def _lab_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """L (..., H, W) and ab (..., H, W, 2) -> uint8 RGB, chroma reduced into the gamut (as photos are)."""
    lab = np.concatenate([L[..., None], ab], axis=-1).astype(np.float32)
    return colorspace.to_uint8(colorspace.lab_to_rgb(fit_gamut(lab)))


def _spread_rgb(L: np.ndarray, points: list) -> np.ndarray:
    """The spread baseline's colorization of one image (L (H, W)) from its points."""
    yx = np.array([[p.y, p.x] for p in points], np.float32).reshape(-1, 2)
    ab = np.array([[p.a, p.b] for p in points], np.float32).reshape(-1, 2)
    return _lab_rgb(L, baselines.spread(L, yx, ab))


def _histogram_matched_rgb(L: np.ndarray, ab: np.ndarray, reference_ab: np.ndarray) -> np.ndarray:
    return _lab_rgb(L, baselines.histogram_matched(ab, reference_ab))


class Scores:
    """Per-image metrics collected image by image (photos differ in size), summarized per method."""

    def __init__(self):
        self.rows: dict[str, list[dict]] = {}

    def add(self, method: str, pred: np.ndarray, true: np.ndarray) -> None:
        self.rows.setdefault(method, []).append(metrics.per_image_metrics(pred[None], true[None]))

    def summary(self) -> dict[str, dict]:
        out = {}
        for method, rows in self.rows.items():
            merged = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
            out[method] = metrics.summarize(merged)
        return out


def _reference_for(reference, original: np.ndarray) -> np.ndarray | None:
    """The reference image of ``original``: "self" (the original), an RGB image (the same for all), or None."""
    if reference is None:
        return None
    return original if isinstance(reference, str) and reference == "self" else reference


def score_images(colorizer: Colorizer, images, counts=HINT_COUNTS, seed: int = 0, reference=None,
                 long_side: int | None = None, progress=None) -> dict:
    """Score hinted colorization on ``images``: an iterable of (H, W, 3) uint8 originals (CIFAR-10
    images, or photos at full size). ``reference``: None, "self" or an RGB image. Returns
    {"counts", "seed", "reference", "methods": {method: {N: summary}}, "gray": summary,
     "histogram_matched": summary or None, "no_hints": summary}.
    """
    counts = sorted({int(n) for n in counts})
    per_n = {n: Scores() for n in counts}
    fixed = Scores()      # gray, no hints, histogram-matched
    for index, rgb in enumerate(images):
        rgb = np.asarray(rgb, np.uint8)
        lab = colorspace.rgb_to_lab(rgb)
        L, ab_true = lab[..., 0], lab[..., 1:]
        all_points = draw_points(ab_true, max(counts), seed, index)
        ref_rgb = _reference_for(reference, rgb)
        fixed.add("gray", colorspace.to_uint8(colorspace.gray_rgb(rgb)), rgb)
        plain, _ = colorizer.colorize_photo(rgb, long_side=long_side)
        fixed.add("no_hints", plain, rgb)
        if ref_rgb is not None:
            plain_ab = colorspace.rgb_to_lab(plain)[..., 1:]
            fixed.add("histogram_matched",
                      _histogram_matched_rgb(L, plain_ab, colorspace.rgb_to_lab(ref_rgb)[..., 1:]), rgb)
        for n in counts:
            points = all_points[:n]
            if n == 0 and ref_rgb is None:
                per_n[n].add("model", plain, rgb)
            else:
                pred, _ = colorizer.colorize_photo(rgb, points, ref_rgb, long_side=long_side)
                per_n[n].add("model", pred, rgb)
            per_n[n].add("spread", _spread_rgb(L, points) if n else colorspace.to_uint8(colorspace.gray_rgb(rgb)), rgb)
        if progress is not None:
            progress(index + 1)
    return _result(counts, seed, reference, per_n, fixed)


def sweep_photos(colorizer: Colorizer, images: list, settings: list[dict], long_side: int | None = None,
                 progress=None) -> list[dict]:
    """The no-hints summary of :func:`score_images` on ``images`` (a list of (H, W, 3) uint8 photos) for each
    setting (a dict of some of scoring.DECODING_KEYS, None or absent: the colorizer's own), each with the
    decoding it used; the network runs once per photo and view (its outputs are kept while the sweep
    runs: about 1 MB per 1,000 working pixels). The colorizer's own decoding is restored afterwards."""
    from evaluation.scoring import DECODING_KEYS
    kept = {k: getattr(colorizer, k) for k in DECODING_KEYS}
    out = []
    with _network_memo(colorizer):
        for i, setting in enumerate(settings):
            try:
                colorizer.set_decoding(**{k: setting.get(k) for k in DECODING_KEYS})
                result = score_images(colorizer, images, [0], 0, None, long_side)
                out.append({**{k: getattr(colorizer, k) for k in DECODING_KEYS}, **result["no_hints"]})
            finally:
                for k, v in kept.items():
                    setattr(colorizer, k, v)
            if progress is not None:
                progress(i + 1)
    return out


@contextlib.contextmanager
def _network_memo(colorizer: Colorizer):
    """While open, ``colorizer.network_output`` answers inputs it has seen (the same bytes) from memory."""
    run, memo = colorizer.network_output, {}

    def remembered(images, labels=None, prior=None, batch_size=64, hints=None, detail=None):
        key = hashlib.sha1()
        for part in (images, labels, prior, *(hints or ())[:2], detail):
            if part is not None and not isinstance(part, list):
                key.update(np.ascontiguousarray(part).tobytes())
        key = key.hexdigest()
        if key not in memo:
            memo[key] = run(images, labels, prior, batch_size, hints, detail)
        return memo[key]

    own = colorizer.__dict__.get("network_output")   # one set on this object before (else the method)
    colorizer.network_output = remembered
    try:
        yield
    finally:
        if own is None:
            del colorizer.network_output
        else:
            colorizer.network_output = own


def score_cifar(colorizer: Colorizer, images: np.ndarray, counts=HINT_COUNTS, seed: int = 0, reference=None,
                batch_size: int = 256) -> dict:
    """:func:`score_images` for small images of the network's own size, batched (much faster): the
    network sees each image at its size, and its output is the colorization (no upsampling)."""
    counts = sorted({int(n) for n in counts})
    x_lab = colorspace.rgb_to_lab(images)
    L, ab_true = x_lab[..., 0], x_lab[..., 1:]
    N, H, W = L.shape
    points = [draw_points(ab_true[i], max(counts), seed, i) for i in range(N)]
    dists = refs = ref_pixels = None
    if reference is not None:
        ref_rgbs = [_reference_for(reference, images[i]) for i in range(N)]
        references = [core_hints.reference(r) for r in ref_rgbs]
        dists = np.stack([core_hints.global_vector(r.distribution) for r in references])
        refs = [colorspace.rgb_to_lab(r)[..., 1:] for r in ref_rgbs]
        ref_pixels = [r.pixels for r in references]   # the colors are matched to them
    no_ref = np.tile(core_hints.empty_global(), (N, 1))
    plain = metrics.as_uint8(colorizer.colorize(images, batch_size=batch_size))
    fixed = Scores()
    per_n = {n: Scores() for n in counts}
    gray = colorspace.to_uint8(colorspace.gray_rgb(images))
    outputs = {}
    for n in counts:
        local = np.stack([core_hints.local_planes(points[i][:n], (H, W), (H, W)) for i in range(N)])
        glob = dists if dists is not None else no_ref
        outputs[n] = metrics.as_uint8(colorizer.colorize(images, batch_size=batch_size,   # matched without points only
                                                         hints=HintInputs(local, glob, None if n else ref_pixels)))
    for i in range(N):
        fixed.add("gray", gray[i], images[i])
        fixed.add("no_hints", plain[i], images[i])
        if refs is not None:
            fixed.add("histogram_matched",
                      _histogram_matched_rgb(L[i], colorspace.rgb_to_lab(plain[i])[..., 1:], refs[i]), images[i])
        for n in counts:
            per_n[n].add("model", outputs[n][i], images[i])
            per_n[n].add("spread", _spread_rgb(L[i], points[i][:n]) if n else gray[i], images[i])
    return _result(counts, seed, reference, per_n, fixed)


def _result(counts, seed: int, reference, per_n: dict, fixed: Scores) -> dict:
    """The document of score_images / score_cifar from the collected scores."""
    fixed_summary = fixed.summary()
    methods: dict[str, dict] = {}
    for n in counts:
        for method, summary in per_n[n].summary().items():
            methods.setdefault(method, {})[n] = {k: summary[k] for k in SUMMARY_KEYS}
    return {"counts": counts, "seed": seed, "reference": None if reference is None else
            ("self" if isinstance(reference, str) else "file"), "methods": methods,
            "gray": fixed_summary["gray"], "no_hints": fixed_summary["no_hints"],
            "histogram_matched": fixed_summary.get("histogram_matched")}


def shrink(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """A photo area-shrunk so that its long side is at most ``max_side`` (None: as it is)."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BOX), np.uint8)


FIGURE_GAP = 6   # white pixels between the cells of a figure


def _marked(gray: np.ndarray, original: np.ndarray, points: list) -> np.ndarray:
    """The gray input with each point drawn as a dot of its original's color, ringed black and white."""
    from PIL import ImageDraw
    image = Image.fromarray(gray)
    draw = ImageDraw.Draw(image)
    r = max(3, round(max(gray.shape[:2]) / 80))
    for p in points:
        x, y = int(p.x), int(p.y)
        color = tuple(int(c) for c in original[y, x])
        draw.ellipse((x - r - 1, y - r - 1, x + r + 1, y + r + 1), fill=(255, 255, 255))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color, outline=(0, 0, 0))
    return np.asarray(image)


def figure(colorizer: Colorizer, images, n: int, seed: int = 0, long_side: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8: one row per image, [gray with its ``n`` points marked | no hints | with the points |
    the original], the points those :func:`score_images` draws for the image at that position."""
    rows = []
    for index, rgb in enumerate(images):
        rgb = np.asarray(rgb, np.uint8)
        points = draw_points(colorspace.rgb_to_lab(rgb)[..., 1:], n, seed, index)
        plain, gray = colorizer.colorize_photo(rgb, long_side=long_side, with_gray=True)
        hinted_rgb, _ = colorizer.colorize_photo(rgb, points, long_side=long_side)
        gap = np.full((rgb.shape[0], FIGURE_GAP, 3), 255, np.uint8)
        cells = [_marked(gray, rgb, points), plain, hinted_rgb, rgb]
        rows.append(np.concatenate([c for cell in cells for c in (cell, gap)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, FIGURE_GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded)[:-FIGURE_GAP]


def table(result: dict) -> str:
    """Plain text: one row per N, pooled PSNR / per-image PSNR / colorfulness of the model and spread;
    then gray, no hints and histogram-matched."""
    head = ("N", "model pooled", "model per-image", "model SSIM", "model CF", "spread pooled", "spread per-image",
            "spread CF")
    rows = []
    for n in result["counts"]:
        m, s = result["methods"]["model"][n], result["methods"]["spread"][n]
        rows.append((str(n), f"{m['psnr_pooled']:.2f}", f"{m['psnr']:.2f}", _f4(m["ssim"]), f"{m['colorfulness']:.2f}",
                     f"{s['psnr_pooled']:.2f}", f"{s['psnr']:.2f}", f"{s['colorfulness']:.2f}"))
    widths = [max(len(r[i]) for r in [head, *rows]) + 2 for i in range(len(head))]
    lines = ["".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
    for key, label in (("gray", "gray"), ("no_hints", "no hints"), ("histogram_matched", "histogram-matched")):
        s = result.get(key)
        if s:
            lines.append(f"{label}: pooled {s['psnr_pooled']:.2f} dB, per image {s['psnr']:.2f} dB, SSIM "
                         f"{_f4(s['ssim'])}, colorfulness {s['colorfulness']:.2f} "
                         f"(originals {s['colorfulness_true']:.2f})")
    return "\n".join(lines)


def _f4(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def plot(result: dict, path, title: str = "") -> None:
    """PSNR (pooled) and colorfulness against N for the model and spread, gray and originals marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    counts = result["counts"]
    xs = [max(n, 0.5) for n in counts]   # N = 0 drawn at 0.5 on the log axis
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for method, style in (("model", "o-"), ("spread", "s--")):
        a1.plot(xs, [result["methods"][method][n]["psnr_pooled"] for n in counts], style, label=method)
        a2.plot(xs, [result["methods"][method][n]["colorfulness"] for n in counts], style, label=method)
    a1.axhline(result["gray"]["psnr_pooled"], color="gray", ls=":", label="gray")
    a2.axhline(result["gray"]["colorfulness_true"], color="k", ls=":", label="originals")
    if result.get("histogram_matched"):
        a1.axhline(result["histogram_matched"]["psnr_pooled"], color="C2", ls="-.", label="histogram-matched")
    for ax, label in ((a1, "pooled PSNR (dB)"), (a2, "colorfulness")):
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(n) for n in counts])
        ax.set_xlabel("points N (0 at the left)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
