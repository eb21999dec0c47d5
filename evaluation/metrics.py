"""Image-quality metrics of a colorization against the original, in NumPy (SSIM from scikit-image).

Every metric is computed on **8-bit RGB** images, i.e. on what is saved and looked at: float
predictions in [0, 1] are rounded to uint8 first (:func:`as_uint8`), so a model and the gray
baseline are scored on the same footing and the figures match those of saved PNGs.

Formulas (images (N, H, W, 3); p = prediction, t = ground truth, both 0..255; M = H * W * 3)
------------------------------------------------------------------------------------------
===================  =========================================================  ===============
metric               definition                                                 range
===================  =========================================================  ===============
MSE_i                sum((p_i - t_i)^2) / M                                     0 .. 65025
PSNR_i               10 log10(255^2 / MSE_i), capped at ``PSNR_CAP_DB``         0 .. 100 dB
PSNR (color)         mean_i PSNR_i over the originals that have color: the      0 .. 100 dB
                     headline, as the colorization papers' test sets exclude
                     gray images (see "Originals without color" below)
PSNR (mean)          mean_i PSNR_i over all images                              0 .. 100 dB
PSNR (pooled)        10 log10(255^2 / mean_i MSE_i), capped                     0 .. 100 dB
SSIM                 mean_i SSIM_i; SSIM_i = skimage ``structural_similarity``  -1 .. 1
                     (channel_axis=-1, data_range=255, 7x7 uniform window,
                     no Gaussian weighting: the defaults), averaged over
                     channels; needs H, W >= 7 (None in a report otherwise)
MAE                  mean_i sum(|p_i - t_i|) / (255 M), i.e. on [0, 1] RGB      0 .. 1
colorfulness CF_i    Hasler & Suesstrunk (2003): rg = R - G,                    0 (gray) .. ~300
                     yb = (R + G) / 2 - B on 0..255 values,
                     CF = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)
                     (population std, ddof = 0, over the pixels of one image)
CF, CF_true          mean_i CF_i of the predictions, of the ground truth
delta CF             CF - CF_true (negative: duller than the originals)         about -300 .. 300
===================  =========================================================  ===============

Colorfulness for scale: 0 for any gray image, 42.4 for a uniform (200, 100, 50), 272.6 for an
image half pure red, half pure blue; the bundled CIFAR-10 sample averages 34 (train) and 37 (val).

Originals without color: an original whose every pixel has chroma sqrt(a^2 + b^2) below
``NO_COLOR_CHROMA`` = 2.3 (one just-noticeable difference, CIE76) has no color to recover, and
the gray baseline reproduces it exactly (100 dB), which would dominate a mean of per-image PSNR.
The headline "PSNR (color)" leaves them out and the report says how many (``n_no_color``; 12
of the 1,017 images of batch 5 of the shared subset, the 12 with R = G = B everywhere).

PSNR cap: identical images have MSE 0 and an infinite PSNR. Such values (and any above the
cap) are replaced by ``PSNR_CAP_DB`` = 100 dB, and the number of capped images is reported,
so a mean is never ``inf``/``NaN``. For reference, a single 8-bit step in one channel of one
pixel of a 32 x 32 image is already 83.0 dB, so the cap only bites for (near-)identical images.
"""
from __future__ import annotations

import numpy as np

from core import colorspace

PSNR_CAP_DB = 100.0
NO_COLOR_CHROMA = 2.3   # CIE76 delta E of one just-noticeable difference: below it everywhere = no color
PSNR_CAP_NOTE = (f"PSNR is capped at {PSNR_CAP_DB:g} dB: identical images (MSE 0, PSNR infinite) and any "
                 f"image above {PSNR_CAP_DB:g} dB count as {PSNR_CAP_DB:g} dB; 'psnr_n_capped' says how many")
_PEAK = 255.0
SSIM_WINDOW = 7   # skimage's default window side: images need at least this many pixels per side


def as_uint8(images) -> np.ndarray:
    """uint8 images unchanged; float RGB in [0, 1] rounded to uint8 (:func:`colorspace.to_uint8`)."""
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else colorspace.to_uint8(images)


def _as_255(images) -> np.ndarray:
    """uint8 or float images on the 0..255 scale -> float64 0..255 (float64: exact sums of squares)."""
    return np.asarray(images, dtype=np.float64)


def _check_pair(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {pred.shape} vs {true.shape}")
    if pred.ndim != 4 or pred.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {pred.shape}")


# ---- PSNR ----------------------------------------------------------------------

def mse_per_image(pred, true) -> np.ndarray:
    """(N, H, W, 3) 0..255 values -> (N,) mean squared error of each image, in 0 .. 65025."""
    pred, true = _as_255(pred), _as_255(true)
    _check_pair(pred, true)
    return np.mean((pred - true) ** 2, axis=(1, 2, 3))


def mse_to_psnr(mse, cap: float = PSNR_CAP_DB) -> np.ndarray:
    """PSNR in dB of 8-bit images, 10 log10(255^2 / MSE), with MSE 0 (and anything above cap) -> cap."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):   # MSE 0 -> inf, replaced by the cap below
        psnr = 10.0 * np.log10(_PEAK ** 2 / mse)
    return np.minimum(psnr, cap)


def psnr_per_image(pred, true, cap: float = PSNR_CAP_DB) -> np.ndarray:
    """(N,) PSNR_i in dB of (N, H, W, 3) images with 0..255 values, capped at ``cap``."""
    return mse_to_psnr(mse_per_image(pred, true), cap)


def psnr_pooled(pred, true, cap: float = PSNR_CAP_DB) -> float:
    """PSNR of the MSE pooled over all images (not the mean of per-image PSNRs); capped."""
    return float(mse_to_psnr(mse_per_image(pred, true).mean(), cap))


def n_capped(mse, cap: float = PSNR_CAP_DB) -> int:
    """How many images had their PSNR replaced by the cap (MSE 0, or PSNR above the cap)."""
    mse = np.asarray(mse, dtype=np.float64)
    return int(np.sum(mse <= _PEAK ** 2 / 10.0 ** (cap / 10.0)))


# ---- SSIM, MAE -----------------------------------------------------------------

def ssim_per_image(pred, true) -> np.ndarray:
    """(N,) SSIM of (N, H, W, 3) 0..255 images: skimage defaults (7x7 uniform window), data range 255.

    Images need H, W >= 7 (the window size); :func:`report` gives SSIM None for smaller ones.
    """
    from skimage.metrics import structural_similarity

    pred, true = _as_255(pred), _as_255(true)
    _check_pair(pred, true)
    return np.array([structural_similarity(p, t, channel_axis=-1, data_range=_PEAK)
                     for p, t in zip(pred, true)], dtype=np.float64)


def mae_per_image(pred, true) -> np.ndarray:
    """(N,) mean absolute error of each image on the [0, 1] RGB scale (0..255 inputs / 255)."""
    pred, true = _as_255(pred), _as_255(true)
    _check_pair(pred, true)
    return np.mean(np.abs(pred - true), axis=(1, 2, 3)) / _PEAK


# ---- colorfulness --------------------------------------------------------------

def colorfulness_per_image(images) -> np.ndarray:
    """(N,) Hasler & Suesstrunk colorfulness of (N, H, W, 3) images with 0..255 values (gray -> 0)."""
    x = _as_255(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {x.shape}")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg = r - g                    # (N, H, W) red-green opponent
    yb = 0.5 * (r + g) - b        # (N, H, W) yellow-blue opponent
    axes = (1, 2)
    std = np.sqrt(rg.std(axis=axes) ** 2 + yb.std(axis=axes) ** 2)
    mean = np.sqrt(rg.mean(axis=axes) ** 2 + yb.mean(axis=axes) ** 2)
    return std + 0.3 * mean


# ---- the report ----------------------------------------------------------------

def has_color(images) -> np.ndarray:
    """(N,) bool: the image has a pixel of chroma sqrt(a^2 + b^2) >= NO_COLOR_CHROMA (uint8 or [0, 1] RGB)."""
    lab = colorspace.rgb_to_lab(as_uint8(images))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return chroma.reshape(len(chroma), -1).max(axis=1) >= NO_COLOR_CHROMA


def per_image_metrics(pred, true) -> dict[str, np.ndarray]:
    """Every per-image figure of (pred, true), each (N,). pred, true: uint8 or float [0, 1] RGB."""
    pred, true = as_uint8(pred), as_uint8(true)
    _check_pair(pred, true)
    mse = mse_per_image(pred, true)
    # SSIM's 7x7 window does not fit smaller images: NaN here, None (JSON null) in the summary
    ssim = ssim_per_image(pred, true) if min(pred.shape[1:3]) >= SSIM_WINDOW else np.full(len(pred), np.nan)
    return {"mse": mse, "psnr": mse_to_psnr(mse), "ssim": ssim,
            "mae": mae_per_image(pred, true), "colorfulness": colorfulness_per_image(pred),
            "colorfulness_true": colorfulness_per_image(true), "has_color": has_color(true)}


def summarize(per_image: dict[str, np.ndarray], index=None) -> dict:
    """Mean figures over the images selected by ``index`` (all by default); plain floats for JSON."""
    sel = {k: (v if index is None else v[index]) for k, v in per_image.items()}
    n = len(sel["mse"])
    if n == 0:
        raise ValueError("no images to summarize")
    cf, cf_true = float(sel["colorfulness"].mean()), float(sel["colorfulness_true"].mean())
    color = sel["has_color"]
    return {
        "n_images": int(n),
        "psnr_color": float(sel["psnr"][color].mean()) if color.any() else None,
        "n_no_color": int((~color).sum()),
        "psnr": float(sel["psnr"].mean()),
        "psnr_pooled": float(mse_to_psnr(sel["mse"].mean())),
        "psnr_n_capped": n_capped(sel["mse"]),
        "ssim": None if np.isnan(sel["ssim"]).any() else float(sel["ssim"].mean()),
        "mae": float(sel["mae"].mean()),
        "colorfulness": cf,
        "colorfulness_true": cf_true,
        "colorfulness_delta": cf - cf_true,
    }


def report(pred, true, labels=None, class_names=None) -> dict:
    """All figures of a colorization: overall, and per class where ``labels`` >= 0.

    pred, true: (N, H, W, 3) uint8 or float [0, 1] RGB; labels: (N,) int, -1 = unknown, or None.
    Returns {"n_images", "psnr_color", "n_no_color", "psnr", "psnr_pooled", "psnr_n_capped", "ssim", "mae",
    "colorfulness", "colorfulness_true", "colorfulness_delta", "per_class": {class name: the same keys}}; classes
    without images are left out, and "per_class" is empty when no label is known.
    """
    per_image = per_image_metrics(pred, true)
    out = summarize(per_image)
    out["per_class"] = {}
    if labels is not None:
        if class_names is None:
            from loaders.cifar import CLASS_NAMES as class_names  # lazily: metrics alone needs no image reader
        labels = np.asarray(labels)
        if labels.shape != (out["n_images"],):
            raise ValueError(f"labels must have shape ({out['n_images']},), got {labels.shape}")
        for c, name in enumerate(class_names):
            index = np.flatnonzero(labels == c)
            if len(index):
                out["per_class"][name] = summarize(per_image, index)
    return out
