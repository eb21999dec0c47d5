"""How good and how steady a colorized clip is: per-frame quality, flicker, warping error.

All figures compare a colorized clip with its original (color) clip, frame by frame, in one
streaming pass (two frames of each held at a time). Frames are (H, W, 3) uint8 RGB.

- **Per-frame quality**: PSNR, SSIM and colorfulness of each frame (evaluation.metrics, on 8-bit
  RGB), and the same for the gray baseline (the frame's L with a = b = 0, what the network is
  given); means over the clip, and over the frames before the first cut and from it on.
- **Known-motion flicker** (clips of evaluation/videoset.py, whose every frame's transform is
  known): for consecutive frames t, t+1 of one shot, frame t's ab (CIE LAB) is warped onto frame
  t+1 by the exact transform (bilinear), and the Euclidean ab difference sqrt(da^2 + db^2) is
  averaged over the pixels of t+1 whose place in t lies inside t; the clip's flicker is the mean
  over the pairs (LAB units). *Excess flicker* is the colorized clip's minus the original's (the
  resampling and compression of the original leave it above 0).
- **Warping error** (Lai et al. 2018, "Learning Blind Video Temporal Consistency", eq. 8): the
  optical flow between consecutive frames estimated on the ORIGINAL frames' L (OpenCV Farneback,
  full size; independent of the DIS flow the colorizer uses), the colorized frame t warped onto
  t+1, the occlusion mask from the forward-backward check of Ruder et al. 2016
  (|b + f(x + b)|^2 > 0.01 (|b|^2 + |f(x + b)|^2) + 0.5, plus pixels whose source leaves the
  frame), and the error the MEAN SQUARED RGB difference on [0, 1] (averaged over the three
  channels, so a third of Lai's sum over channels) over the non-occluded pixels, averaged over the
  pairs. Pairs across a known cut are left out. Reported for the original clip too (its floor).

``python evaluate.py --video CLIP ...`` (:func:`evaluate_clips`) colorizes original clips in memory
with a run, each frame alone ("frame") and with stable colors ("stable"), and writes these figures.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from core import colorspace
from evaluation import metrics


def ab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 2) float32 CIE a, b."""
    return colorspace.rgb_to_lab(rgb)[..., 1:]


def pair_transform(a_t: np.ndarray, a_next: np.ndarray) -> np.ndarray:
    """(2, 3) M taking pixel y of frame t+1 to its place in frame t: M = A_t^-1 A_{t+1} (videoset's affines)."""
    def full(a):
        return np.vstack([np.asarray(a, np.float64), [0.0, 0.0, 1.0]])
    return (np.linalg.inv(full(a_t)) @ full(a_next))[:2]


def known_motion_difference(prev: np.ndarray, cur: np.ndarray, M: np.ndarray) -> float:
    """Mean ab difference (LAB units) between frame t+1 (``cur``) and frame t (``prev``) warped onto it by M
    (pair_transform), over the pixels of t+1 whose place in t is inside t."""
    h, w = cur.shape[:2]
    warped = cv2.warpAffine(ab(prev), M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    ys, xs = np.mgrid[0:h, 0:w]
    u = M[0, 0] * xs + M[0, 1] * ys + M[0, 2]
    v = M[1, 0] * xs + M[1, 1] * ys + M[1, 2]
    valid = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    diff = np.linalg.norm(ab(cur) - warped, axis=-1)
    return float(diff[valid].mean()) if valid.any() else float("nan")


def _gray_l(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint8 lightness for the flow (L x 2.55)."""
    return np.clip(colorspace.rgb_to_lab(rgb)[..., 0] * 2.55 + 0.5, 0, 255).astype(np.uint8)


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow with a(x) ~ b(x + flow(x)) (Farneback, 5 levels, 15 px windows)."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 3, 5, 1.2, 0)


def flow_mask(gray_prev: np.ndarray, gray_cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map_x, map_y, non-occluded mask) to warp frame t onto frame t+1, from the two frames' gray (H, W) uint8."""
    h, w = gray_cur.shape
    back = _farneback(gray_cur, gray_prev)         # cur(x) ~ prev(x + back(x))
    fwd = _farneback(gray_prev, gray_cur)          # prev(x) ~ cur(x + fwd(x))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + back[..., 0], gy + back[..., 1]
    fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    total = back + fwd_at
    bound = 0.01 * ((back ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + 0.5
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return map_x, map_y, ((total ** 2).sum(-1) <= bound) & inside


def warp_error(prev: np.ndarray, cur: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared RGB difference on [0, 1] (mean over channels) of ``cur`` and ``prev`` warped onto it,
    over ``mask``."""
    warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    d = (cur.astype(np.float32) - warped.astype(np.float32)) / np.float32(255)
    return float((d[mask] ** 2).mean()) if mask.any() else float("nan")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(values)) if values else None


def evaluate_clip(output: Iterable[np.ndarray], original: Iterable[np.ndarray], meta: dict | None = None,
                  warping: bool = True) -> dict:
    """Every figure of a colorized clip against its original (module docstring), in one pass.

    ``meta``: a videoset clip's metadata (evaluation.videoset.load_meta): its affines give the
    known-motion flicker and its cuts split the per-frame means; without it, no known-motion figures.
    ``warping``: also the warping error (two Farneback flows per frame: the slow part).
    Returns plain floats (None where not measured) and per-frame lists.
    """
    cuts = list(meta["cuts"]) if meta else []
    affines = meta["affines"] if meta else None
    per = {k: [] for k in ("psnr", "ssim", "colorfulness", "colorfulness_true", "psnr_gray", "ssim_gray")}
    flicker_out, flicker_orig, warp_out, warp_orig = [], [], [], []
    prev = None
    n = 0
    for t, (out, orig) in enumerate(zip(output, original)):
        if out.shape != orig.shape:
            raise ValueError(f"frame {t}: colorized {out.shape} vs original {orig.shape}")
        gray = colorspace.to_uint8(colorspace.gray_rgb(orig))
        m = metrics.per_image_metrics(out[None], orig[None])
        g = metrics.per_image_metrics(gray[None], orig[None])
        for k, src, key in (("psnr", m, "psnr"), ("ssim", m, "ssim"), ("colorfulness", m, "colorfulness"),
                            ("colorfulness_true", m, "colorfulness_true"), ("psnr_gray", g, "psnr"),
                            ("ssim_gray", g, "ssim")):
            per[k].append(float(src[key][0]))
        if prev is not None and t not in cuts:
            if affines is not None:
                M = pair_transform(affines[t - 1], affines[t])
                flicker_out.append(known_motion_difference(prev[0], out, M))
                flicker_orig.append(known_motion_difference(prev[1], orig, M))
            if warping:
                cur_gray = _gray_l(orig)
                map_x, map_y, mask = flow_mask(prev[2], cur_gray)
                warp_out.append(warp_error(prev[0], out, map_x, map_y, mask))
                warp_orig.append(warp_error(prev[1], orig, map_x, map_y, mask))
        prev = (out, orig, _gray_l(orig) if warping else None)
        n += 1
    if n == 0:
        raise ValueError("no frames to evaluate")
    first_cut = cuts[0] if cuts else n
    result = {
        "frames": n, "cuts": cuts,
        "psnr": _mean(per["psnr"]), "ssim": _mean(per["ssim"]),
        "psnr_before_cut": _mean(per["psnr"][:first_cut]) if cuts else None,
        "psnr_after_cut": _mean(per["psnr"][first_cut:]) if cuts else None,
        "colorfulness": _mean(per["colorfulness"]), "colorfulness_true": _mean(per["colorfulness_true"]),
        "psnr_gray": _mean(per["psnr_gray"]), "ssim_gray": _mean(per["ssim_gray"]),
        "flicker": _mean(flicker_out), "flicker_original": _mean(flicker_orig),
        "excess_flicker": (_mean(flicker_out) - _mean(flicker_orig)) if flicker_out else None,
        "warp_error": _mean(warp_out), "warp_error_original": _mean(warp_orig),
        "per_frame": {**per, "flicker": flicker_out, "flicker_original": flicker_orig, "warp_error": warp_out},
    }
    return result


def evaluate_files(output: Path, original: Path, meta: Path | None = None, warping: bool = True) -> dict:
    """:func:`evaluate_clip` on two clip files; ``meta``: the original's videoset JSON (default: beside
    it, <stem>.json, when there)."""
    from evaluation.videoset import load_meta
    from inference.video import read_frames
    original = Path(original)
    meta_path = Path(meta) if meta is not None else original.with_suffix(".json")
    info = load_meta(meta_path) if meta_path.is_file() else None
    return evaluate_clip(read_frames(output), read_frames(original), info, warping)


def summary_line(result: dict) -> str:
    """One line of the headline figures."""
    def f(key, fmt="{:.2f}"):
        v = result.get(key)
        return "-" if v is None else fmt.format(v)
    return (f"PSNR {f('psnr')} dB (gray {f('psnr_gray')}), SSIM {f('ssim', '{:.3f}')}, colorfulness "
            f"{f('colorfulness', '{:.1f}')} (original {f('colorfulness_true', '{:.1f}')}), excess flicker "
            f"{f('excess_flicker', '{:.3f}')} (flicker {f('flicker', '{:.3f}')}, "
            f"original {f('flicker_original', '{:.3f}')}), "
            f"warping error {f('warp_error', '{:.5f}')} (original {f('warp_error_original', '{:.5f}')})")


def json_ready(value):
    """``value`` with every NaN or infinity (a pair with no pixel to compare) as None, for strict JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def save(result: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(json_ready(result), indent=1, allow_nan=False) + "\n")


# ---- measuring the colorizer on clips: python evaluate.py --video CLIP.mp4 ... ------------------------

MODES = ("frame", "stable", "photo")


def colorized_frames(colorizer, clip: Path, mode: str = "stable", long_side: int | None = None, settings=None):
    """The colorized frames of ``clip``, made in memory (no encoding: the codec's noise stays out of the figures).

    mode: "stable" (inference.video.FrameColorizer, colors carried along the flow), "frame" (the same,
    each frame alone) or "photo" (Colorizer.colorize_photo per frame: the photo path, no flow-size step)."""
    from inference.video import FrameColorizer, Stabilization, read_frames
    if mode == "photo":
        return (colorizer.colorize_photo(rgb, long_side=long_side)[0] for rgb in read_frames(clip))
    fc = FrameColorizer(colorizer, long_side=long_side, stabilize=mode == "stable",
                        settings=settings or Stabilization())
    return (fc(rgb) for rgb in read_frames(clip))


def meta_path(clip: Path) -> Path | None:
    """The videoset JSON beside a clip (<stem>.json), when there."""
    path = Path(clip).with_suffix(".json")
    return path if path.is_file() else None


def evaluate_clips(colorizer, clips: list[Path], modes=("frame", "stable"), long_side: int | None = None,
                   settings=None, warping: bool = True, report=print) -> dict:
    """Every clip colorized in memory in each mode and scored against itself (:func:`evaluate_clip`); the
    known-motion figures where a clip's videoset JSON is beside it. ``report``: called with one line per
    clip and mode (:func:`result_line`). Returns {"clips": {path: {"meta": JSON or None, "modes": {mode:
    result (with "seconds")}}}, "settings", "work_size", "modes", "warping"}."""
    import dataclasses
    import time

    from evaluation.videoset import load_meta
    from inference.video import Stabilization, read_frames
    settings = settings or Stabilization()
    doc = {"modes": list(modes), "work_size": colorizer.used_work_size(long_side), "warping": warping,
           "settings": dataclasses.asdict(settings), "clips": {}}
    for clip in map(Path, clips):
        json_path = meta_path(clip)
        meta = load_meta(json_path) if json_path is not None else None
        entry = doc["clips"][str(clip)] = {"meta": None if json_path is None else str(json_path), "modes": {}}
        for mode in modes:
            t0 = time.perf_counter()
            r = evaluate_clip(colorized_frames(colorizer, clip, mode, long_side, settings), read_frames(clip),
                              meta, warping=warping)
            r["seconds"] = time.perf_counter() - t0
            entry["modes"][mode] = r
            report(result_line(clip.name, mode, r))
        frame, stable = entry["modes"].get("frame"), entry["modes"].get("stable")
        if frame and stable:
            entry["psnr_stable_minus_frame"] = stable["psnr"] - frame["psnr"]
            line = f"{clip.name}: PSNR stable - frame {entry['psnr_stable_minus_frame']:+.2f} dB"
            fx, sx = frame["excess_flicker"], stable["excess_flicker"]
            if fx is not None and sx is not None and fx > 0:
                entry["excess_flicker_stable_over_frame"] = sx / fx
                line += (f", excess flicker stable / frame {sx / fx:.0%}" if sx > 0 else
                         ", stable's excess flicker below zero (under the original's own flicker)")
            report(line)
    return doc


def result_line(name: str, mode: str, r: dict) -> str:
    """One clip in one mode: :func:`summary_line`, the PSNR before and after a cut, the time."""
    cut = "" if r["psnr_before_cut"] is None else \
        f"; PSNR before / after the cut {r['psnr_before_cut']:.2f} / {r['psnr_after_cut']:.2f}"
    return f"{name} {mode}: {r['frames']} frames, {summary_line(r)}{cut} ({r['seconds']:.1f} s)"
