"""One run scored against the gray baseline: colorize a data set, compute every metric, tabulate.

What ``evaluate.py`` prints and writes (``results/<model>/eval.json``), and what the comparison
report (``evaluation.report``) builds on.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from core import colorspace
from evaluation import metrics
from inference import Colorizer
from inference.pretrained import load_run
from loaders.cifar import ImageSet, default_data

# (key in metrics.report, label, format): the rows of every table this tool and compare.py print.
METRIC_ROWS = (
    ("psnr_color", "PSNR per image, color originals (dB)", "{:.2f}"),
    ("psnr", "PSNR per image, all images (dB)", "{:.2f}"),
    ("psnr_pooled", "PSNR of pooled MSE (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("mae", "MAE (RGB in [0, 1])", "{:.4f}"),
    ("colorfulness", "colorfulness", "{:.2f}"),
    ("colorfulness_true", "colorfulness of originals", "{:.2f}"),
    ("colorfulness_delta", "delta colorfulness", "{:+.2f}"),
)


def gray_baseline(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 -> uint8 gray versions (L kept, a = b = 0): the score of not colorizing at all."""
    return colorspace.to_uint8(colorspace.gray_rgb(images))


def load_colorizer(model: str, run_dir: Path | None, runs_dir: Path | None = None,
                   runtime: str | None = None) -> Colorizer:
    """The model of ``run_dir`` (default: the latest run of ``model`` under ``runs_dir``, else the shipped
    run, inference.pretrained), checked to be ``model``; ``colorizer.note`` says when the shipped run is used.
    ``runtime``: inference.lean.choose's (None: $COLORIZE_RUNTIME, else auto)."""
    return load_run(model, run_dir, runs_dir, runtime=runtime)


def evaluate(colorizer: Colorizer, data: ImageSet, batch_size: int = 64) -> tuple[dict, np.ndarray]:
    """(metrics.report of the model on data, its predictions (N, S, S, 3) uint8).

    Raises inference.MissingLabelError for fusion_label on images without a class.
    """
    pred = metrics.as_uint8(colorizer.colorize(data.images, data.labels, batch_size=batch_size))
    return metrics.report(pred, data.images, data.labels), pred


DECODING_KEYS = ("temperature", "chroma_gain", "undo_rebalancing")   # what a sweep varies (Colorizer.set_decoding)


def sweep(colorizer: Colorizer, data: ImageSet, settings: list[dict], batch_size: int = 64) -> list[dict]:
    """metrics.report (without per-class figures) for each setting, a dict of some of DECODING_KEYS
    (None or absent: the colorizer's current value); the network runs once. The colorizer's own
    setting is restored afterwards.
    """
    raw = colorizer.network_output(data.images, data.labels, batch_size=batch_size)
    kept = {k: getattr(colorizer, k) for k in DECODING_KEYS}
    out = []
    for setting in settings:
        try:   # each setting starts from the colorizer's own, which is back after the last (or an error)
            colorizer.set_decoding(**{k: setting.get(k) for k in DECODING_KEYS})
            report = metrics.report(metrics.as_uint8(colorizer.decode(raw)), data.images)
            report.pop("per_class")
            out.append({**{k: getattr(colorizer, k) for k in DECODING_KEYS}, **report})
        finally:
            for k, v in kept.items():
                setattr(colorizer, k, v)
    return out


SWEEP_COLUMNS = (("psnr_pooled", "PSNR pooled", "{:.2f}"), ("psnr_color", "PSNR color", "{:.2f}"),
                 ("psnr", "PSNR all", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("colorfulness", "CF", "{:.2f}"))


def sweep_table(rows: list[dict], gray: dict) -> str:
    """One line per setting, and the gray baseline: pooled and per-image PSNR, SSIM, colorfulness."""
    head = ["T", "undo", "gain"] + [label for _, label, _ in SWEEP_COLUMNS]
    lines = [[_fmt("{:g}", r["temperature"]), _fmt("{:g}", r.get("undo_rebalancing")), f"{r['chroma_gain']:g}"] +
             [_fmt(f, r[k]) for k, _, f in SWEEP_COLUMNS] for r in rows]
    lines.append(["gray", "", ""] + [_fmt(f, gray[k]) for k, _, f in SWEEP_COLUMNS])
    widths = [max(len(x) for x in col) + 2 for col in zip(head, *lines)]
    return "\n".join("".join(c.rjust(w) for c, w in zip(line, widths)) for line in [head, *lines])


def data_info(data: ImageSet, path: Path | None, split: str, limit: int | None) -> dict:
    """What a result file says about its data (enough to recognise and reload it)."""
    return {"description": data.description, "path": None if path is None else str(path), "split": split,
            "limit": limit, "n_images": len(data), "image_size": int(data.images.shape[1]),
            "fingerprint": data.fingerprint()}


def data_source(path: Path | None, split: str) -> tuple[Path, str]:
    """(path, split) the data came from, the default resolved as loaders.cifar.load_data resolves it."""
    return (path, split) if path is not None else default_data("val")


def result_record(colorizer: Colorizer, data: ImageSet, data_source: dict, model_report: dict,
                  gray_report: dict) -> dict:
    """The JSON document of one evaluation."""
    return {
        "model": colorizer.spec.name,
        "run_dir": str(colorizer.run_dir),
        "image_size": colorizer.image_size,
        "decoding": colorizer.decoding_settings,
        "data": data_source,
        "n_images": len(data),
        "psnr_cap_db": metrics.PSNR_CAP_DB,
        "psnr_cap_note": metrics.PSNR_CAP_NOTE,
        "metrics": {"model": model_report, "gray_baseline": gray_report},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _fmt(fmt: str, value) -> str:
    return "-" if value is None else fmt.format(value)


def metrics_table(columns: dict[str, dict]) -> str:
    """Plain-text table, one row per metric, one column per report ({column name: metrics.report})."""
    names = list(columns)
    width = max(len(label) for _, label, _ in METRIC_ROWS)
    col_w = max(10, *(len(n) + 2 for n in names))
    lines = ["".ljust(width) + "".join(n.rjust(col_w) for n in names)]
    for key, label, fmt in METRIC_ROWS:
        lines.append(label.ljust(width) + "".join(_fmt(fmt, columns[n].get(key)).rjust(col_w) for n in names))
    return "\n".join(lines)


def per_class_table(model_report: dict, gray_report: dict) -> str:
    """Plain-text table, one row per class: n, PSNR (model, gray), SSIM (model), colorfulness (model, originals)."""
    rows = [("class", "n", "PSNR", "PSNR gray", "SSIM", "SSIM gray", "CF", "CF true")]
    for name, m in model_report["per_class"].items():
        g = gray_report["per_class"][name]
        rows.append((name, str(m["n_images"]), _fmt("{:.2f}", m["psnr"]), _fmt("{:.2f}", g["psnr"]),
                     _fmt("{:.4f}", m["ssim"]), _fmt("{:.4f}", g["ssim"]), _fmt("{:.2f}", m["colorfulness"]),
                     _fmt("{:.2f}", m["colorfulness_true"])))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    return "\n".join(r[0].ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(r[1:], widths[1:])) for r in rows)


def format_result(result: dict) -> str:
    """The human-readable report of one evaluation (what main prints)."""
    m, g = result["metrics"]["model"], result["metrics"]["gray_baseline"]
    lines = [f"{result['model']} ({result['run_dir']}) on {result['data']['description']}: "
             f"{result['n_images']} images, {result['image_size']} px", "",
             metrics_table({result["model"]: m, "gray baseline": g})]
    capped = m["psnr_n_capped"] + g["psnr_n_capped"]
    if capped:
        lines.append(f"({capped} image PSNR(s) capped at {metrics.PSNR_CAP_DB:g} dB: identical to the original)")
    if m["per_class"]:
        lines += ["", "per class (model unless marked gray):", per_class_table(m, g)]
    else:
        lines += ["", "per class: no class labels in this data"]
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    """JSON without NaN/Infinity tokens (allow_nan=False), which strict parsers reject."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
