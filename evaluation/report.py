"""The comparison report: every model's latest run scored on the same images.

Writes (what ``compare.py`` and ``evaluate.py --compare`` produce)::

    comparison.md                 Markdown: metrics table, run folders, links to the figures
    comparison.json               every figure (with per-class results)
    comparison/grid.png           the first images: [gray | each model | original]
    comparison/curves-<model>.png training curves from the run's TensorBoard logs

Models without a run, or that cannot run on this data (fusion_label without class labels,
fusion_resnet without its classifier weights), are listed as skipped with the reason.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core import runs
from core.grids import make_grid, save_image
from evaluation import metrics, scoring
from inference import USER_ERRORS, pretrained
from loaders.cifar import ImageSet, load_data
from models import MODEL_NAMES, get_spec

GRID_IMAGES = 12        # rows of the comparison grid
GRID_CELL_PX = 96       # cells are enlarged (nearest) to about this size: 32 px CIFAR images are tiny
# The PSNR-colorfulness trade-off: every model at these chroma gains (the trivial way to more color),
# classification heads also at these temperatures. A colorful method is worth its name only where its
# curve lies above the chroma-gain curves.
SWEEP_GAINS = (1.0, 1.2, 1.4, 1.6)
SWEEP_TEMPERATURES = (1.0, 0.6, 0.38, 0.25)
# ... and at T = 1 with their class rebalancing undone this much (1: the expected color, most faithful).
SWEEP_UNDO = (0.25, 0.5, 0.75, 1.0)


def model_list(spec: str | None) -> list[str]:
    """--models value -> validated model names (UnknownModelError for a wrong one)."""
    if spec is None:
        return list(MODEL_NAMES)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        get_spec(n)
    return list(dict.fromkeys(names))   # keep the order, drop repeats


# ---- evaluation ---------------------------------------------------------------------

def evaluate_models(models: list[str], runs_dir: Path, load, batch_size: int = 64):
    """Evaluate the latest run of each model.

    ``load(image_size) -> ImageSet`` gives the data at a model's input size (cached by the caller).
    Returns (results {model: {"run_dir", "image_size", "config", "metrics", "pred"}},
    skipped {model: reason}); only user errors (no run, missing labels or weights) skip a model.
    """
    results, skipped = {}, {}

    def skip(name: str, reason: str) -> None:
        skipped[name] = reason
        print(f"{name}: skipped ({reason})")

    for name in models:
        try:
            colorizer = scoring.load_colorizer(name, None, runs_dir)
        except USER_ERRORS as err:   # no run of this model
            skip(name, str(err))
            continue
        except (ValueError, OSError) as err:   # weights of another architecture, damaged file: skip that run only
            message = " ".join(str(err).split())   # one line
            skip(name, f"cannot load {pretrained.find_run(name, None, runs_dir)[0]} ({type(err).__name__}: {message})")
            continue
        data = load(colorizer.image_size)   # outside the try: bad data is an error for every model
        print(f"{name}: evaluating {colorizer.run_dir}" + (f" ({colorizer.note})" if colorizer.note else ""))
        try:
            report, pred = scoring.evaluate(colorizer, data, batch_size)
        except USER_ERRORS as err:   # fusion_label without labels, fusion_resnet without weights
            skip(name, str(err))
            continue
        results[name] = {"run_dir": str(colorizer.run_dir), "image_size": colorizer.image_size,
                         "config": colorizer.config, "metrics": report, "pred": pred,
                         "sweep": tradeoff_sweep(colorizer, data, batch_size)}
    return results, skipped


def sweep_settings(colorizer) -> list[tuple[str, dict]]:
    """(curve, decoding setting) points of the trade-off plot: the gains at the run's own decoding and,
    for a classification head, each temperature, and each undoing of its rebalancing at T = 1."""
    points = [("gain", {"chroma_gain": g}) for g in SWEEP_GAINS]
    if colorizer.config["model_options"].get("head") == "classification":
        points += [("temperature", {"temperature": t, "chroma_gain": 1.0}) for t in SWEEP_TEMPERATURES]
        points += [("undo", {"temperature": 1.0, "undo_rebalancing": u, "chroma_gain": 1.0}) for u in SWEEP_UNDO]
    return points


def tradeoff_sweep(colorizer, data, batch_size: int = 64) -> list[dict]:
    """scoring.sweep over sweep_settings, each point labeled with its curve."""
    points = sweep_settings(colorizer)
    rows = scoring.sweep(colorizer, data, [setting for _, setting in points], batch_size)
    return [{"curve": curve, **row} for (curve, _), row in zip(points, rows)]


# ---- figures ------------------------------------------------------------------------

def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, s, s, 3) uint8 -> (N, size, size, 3): a model trained at another size, shown in the same grid."""
    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


def header_row(names: list[str], cell: int, gap: int, height: int = 24) -> np.ndarray:
    """(height, K*cell + (K-1)*gap, 3) uint8 white strip with each column's name centered over it."""
    width = len(names) * cell + (len(names) - 1) * gap
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=max(9, min(14, cell // 7)))
    except (OSError, ImportError, TypeError):   # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    for k, name in enumerate(names):
        x0 = k * (cell + gap)
        text_w = draw.textlength(name, font=font)
        draw.text((x0 + max(0, (cell - text_w) / 2), height / 2), name, fill="black", font=font, anchor="lm")
    return np.asarray(img)


def comparison_grid(gray: np.ndarray, preds: dict[str, np.ndarray], original: np.ndarray,
                    n: int = GRID_IMAGES, gap: int = 4) -> np.ndarray:
    """uint8 grid, one row per image: [gray | each model | original], under a header row of column names.

    gray, original and each prediction: (N, S, S, 3) uint8 of the same images; the first n are shown.
    """
    size = original.shape[1]
    columns = [gray[:n]] + [_resize(p[:n], size) for p in preds.values()] + [original[:n]]
    scale = max(1, round(GRID_CELL_PX / size))
    body = make_grid(columns, scale=scale, gap=gap)   # gap counts before scaling
    header = header_row(["gray"] + list(preds) + ["original"], size * scale, gap * scale)
    return np.concatenate([header, body], axis=0)


def curve_series(model: str, config: dict) -> list[tuple[str, list[tuple[str, list]]]]:
    """The curves to plot for a run: [(axes title, [(legend, [(step, value), ...]), ...]), ...].

    Fit models: loss (and MAE) per epoch, train and validation. The GAN: g_loss, d_loss and
    d_acc per step. Empty when the run wrote no logs.
    """
    if not config.get("logs", True) or not Path(config.get("log_dir", "")).is_dir():
        return []
    from core import tblog

    scalars = tblog.read_scalars(config["log_dir"])
    train, val = scalars.get("train", {}), scalars.get("validation", {})
    if get_spec(model).trainer == "gan":
        # separate axes: g_loss includes the weighted L1 term and is ~100x d_loss
        panels = [(title, [(tag, train[tag])] if tag in train else [])
                  for title, tag in (("generator loss per step", "g_loss"),
                                     ("discriminator loss per step", "d_loss"),
                                     ("discriminator accuracy per step", "d_acc"))]
    else:
        panels = [(f"{what} per epoch", [(f"{part} {what}", s[f"epoch_{what}"])
                                         for part, s in (("train", train), ("validation", val))
                                         if f"epoch_{what}" in s])
                  for what in ("loss", "mae")]
    return [(title, series) for title, series in panels if series]


def plot_curves(model: str, panels, path: Path) -> None:
    """Write the panels of :func:`curve_series` side by side as a PNG (matplotlib, no display needed)."""
    from matplotlib.figure import Figure  # the object API needs no pyplot state nor GUI backend
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5 * len(panels), 3.5), layout="constrained")
    for ax, (title, series) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for label, points in series:
            steps, values = zip(*points)
            # markers: runs of one or two epochs would otherwise draw nothing visible
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, label=label)
        ax.set_title(f"{model}: {title}")
        ax.set_xlabel("step" if "step" in title else "epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # no epoch 1.2
        if len({s for _, points in series for s, _ in points}) == 1:   # a single step: center it
            only = series[0][1][0][0]
            ax.set_xlim(only - 1, only + 1)
        ax.legend()
        ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def plot_tradeoff(doc: dict, path: Path) -> None:
    """Pooled PSNR against colorfulness: per model a chroma-gain curve (dashed) and, for classification
    heads, a temperature curve (solid) and an undo-rebalancing curve at T = 1 (dotted); the gray
    baseline's PSNR and the originals' colorfulness marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    gray = doc["gray_baseline"]
    for i, (name, r) in enumerate(doc["models"].items()):
        color = f"C{i}"
        for curve, style, key, short in (("gain", "--o", "chroma_gain", "gain"),
                                         ("temperature", "-s", "temperature", "T"),
                                         ("undo", ":^", "undo_rebalancing", "T 1, undo")):
            points = [p for p in r["sweep"] if p.get("curve", "gain") == curve]
            if points:
                ax.plot([p["colorfulness"] for p in points], [p["psnr_pooled"] for p in points], style, color=color,
                        markersize=3 if curve == "gain" else 5,
                        label=f"{name}, {short} " + ",".join(f"{p[key]:g}" for p in points))
    ax.axhline(gray["psnr_pooled"], color="gray", linestyle=":", label=f"gray baseline ({gray['psnr_pooled']:.2f} dB)")
    ax.axvline(gray["colorfulness_true"], color="black", linestyle=":",
               label=f"originals' colorfulness ({gray['colorfulness_true']:.1f})")
    ax.scatter([0], [gray["psnr_pooled"]], color="gray", zorder=3)
    ax.set_xlabel("colorfulness (Hasler-Suesstrunk), mean over images")
    ax.set_ylabel("PSNR of pooled MSE (dB)")
    ax.set_title("fidelity against colorfulness (up and right is better)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


# ---- the page -----------------------------------------------------------------------

def _rel(path: str | Path, start: Path) -> str:
    """path relative to start when it lies below it (links and readable run folders), else absolute."""
    try:
        return Path(path).resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return str(path)


def _g(value) -> str:
    return "-" if value is None else format(value, "g")


def _cell(key: str, value) -> str:
    fmt = {k: f for k, _, f in scoring.METRIC_ROWS}[key]
    return "-" if value is None else fmt.format(value)


def markdown(doc: dict, out_dir: Path) -> str:
    """comparison.md from the comparison.json document; links are relative to out_dir."""
    keys = [k for k, _, _ in scoring.METRIC_ROWS]
    labels = [label for _, label, _ in scoring.METRIC_ROWS]
    rows = {**{name: r["metrics"] for name, r in doc["models"].items()}, "gray baseline": doc["gray_baseline"]}
    lines = [
        "# Model comparison", "",
        f"Data: {doc['data']['description']}, {doc['n_images']} images "
        f"({doc['data']['image_size']} px). Written {doc['created']}.", "",
        "| model | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(k, m[k]) for k in keys) + " |")
    capped = ", ".join(f"{name} {m['psnr_n_capped']}" for name, m in rows.items())
    lines += ["", f"{metrics.PSNR_CAP_NOTE} (here: {capped}). Formulas in `evaluation/metrics.py`. The gray baseline "
              "keeps the lightness L and sets a = b = 0, i.e. does not colorize at all.", ""]

    classes = list(doc["gray_baseline"]["per_class"])
    if classes:
        lines += ["## PSNR per class (dB)", "", "| class | " + " | ".join(rows) + " |",
                  "|---|" + "---:|" * len(rows)]
        for c in classes:
            lines.append(f"| {c} | " + " | ".join(_cell("psnr", m["per_class"][c]["psnr"]) if c in m["per_class"]
                                                  else "-" for m in rows.values()) + " |")
        lines.append("")

    lines += ["## Fidelity against colorfulness", "",
              "Each model at chroma gains " + ", ".join(f"{g:g}" for g in SWEEP_GAINS) + " (a, b multiplied: the "
              "trivial way to more color) and, for classification heads, at temperatures " +
              ", ".join(f"{t:g}" for t in SWEEP_TEMPERATURES) + " and, at T = 1, with their class rebalancing "
              "undone by " + ", ".join(f"{u:g}" for u in SWEEP_UNDO) + " (1: the expected color):", "",
              f"![PSNR against colorfulness]({_rel(doc['files']['tradeoff'], out_dir)})", "",
              "| model | T | undo | gain | PSNR pooled | PSNR color originals | SSIM | colorfulness |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in doc["models"].items():
        for p in r["sweep"]:
            lines.append(f"| {name} | {_g(p['temperature'])} | {_g(p.get('undo_rebalancing'))} | "
                         f"{p['chroma_gain']:g} | {_cell('psnr_pooled', p['psnr_pooled'])} | "
                         f"{_cell('psnr_color', p['psnr_color'])} | {_cell('ssim', p['ssim'])} | "
                         f"{_cell('colorfulness', p['colorfulness'])} |")
    lines += ["", "## Runs", ""]
    for name, r in doc["models"].items():
        lines.append(f"- {name}: `{_rel(r['run_dir'], runs.ROOT)}` ({r['image_size']} px)")
    for name, reason in doc["skipped"].items():
        lines.append(f"- {name}: skipped: {reason}")
    lines += ["", "## Samples", "",
              f"The first {doc['grid_images']} images, columns gray, " + ", ".join(doc["models"]) +
              (", " if doc["models"] else "") + "original:", "",
              f"![comparison grid]({_rel(doc['files']['grid'], out_dir)})", ""]
    lines += ["## Training curves", ""]
    for name in doc["models"]:
        curve = doc["files"]["curves"].get(name)
        lines.append(f"![{name} training curves]({_rel(curve, out_dir)})" if curve
                     else f"- {name}: no training logs (run trained with --no-logs, or its log folder is gone)")
    return "\n".join(lines) + "\n"


def compare(models: list[str], load, runs_dir: Path, out_dir: Path, data_source: dict,
            batch_size: int = 64) -> dict:
    """Evaluate, draw and write everything; returns the comparison.json document."""
    results, skipped = evaluate_models(models, runs_dir, load, batch_size)
    # The baseline, the originals and the grid are at the first model's size (all 32 px in practice).
    base: ImageSet = load(next(iter(results.values()))["image_size"] if results else 32)
    gray = scoring.gray_baseline(base.images)
    fig_dir = out_dir / "comparison"
    grid_path = fig_dir / "grid.png"
    save_image(comparison_grid(gray, {n: r["pred"] for n, r in results.items()}, base.images), grid_path)

    tradeoff_path = fig_dir / "tradeoff.png"
    curves = {}
    for name, r in results.items():
        panels = curve_series(name, r["config"])
        if panels:
            curves[name] = str(fig_dir / f"curves-{name}.png")
            plot_curves(name, panels, Path(curves[name]))

    doc = {
        "data": {**data_source, "description": base.description, "image_size": int(base.images.shape[1])},
        "n_images": len(base),
        "psnr_cap_db": metrics.PSNR_CAP_DB,
        "psnr_cap_note": metrics.PSNR_CAP_NOTE,
        "models": {n: {"run_dir": r["run_dir"], "image_size": r["image_size"], "metrics": r["metrics"],
                       "sweep": r["sweep"]} for n, r in results.items()},
        "gray_baseline": metrics.report(gray, base.images, base.labels),
        "skipped": skipped,
        "grid_images": min(GRID_IMAGES, len(base)),
        "files": {"grid": str(grid_path), "curves": curves, "tradeoff": str(tradeoff_path)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    plot_tradeoff(doc, tradeoff_path)
    scoring.write_json(out_dir / "comparison.json", doc)
    (out_dir / "comparison.md").write_text(markdown(doc, out_dir))
    return doc


def run(models: str | None, data: Path | None, split: str, limit: int | None, runs_dir: Path, out_dir: Path,
        batch_size: int = 64) -> dict:
    """The comparison as the scripts ask for it: ``models`` as given to --models (None: all), the data
    as --data/--split/--limit give it (loaded once per input size). Returns the comparison.json document."""
    names = model_list(models)
    cache: dict[int, ImageSet] = {}

    def load(size: int) -> ImageSet:
        if size not in cache:
            cache[size] = load_data(data, split, size, limit, kind="val", announce=not cache)
        return cache[size]

    path, split = scoring.data_source(data, split)
    return compare(names, load, Path(runs_dir), Path(out_dir), {"path": str(path), "split": split, "limit": limit},
                   batch_size)


def summary(doc: dict, runs_dir: Path, out_dir: Path) -> str:
    """What the scripts print after a comparison: the metrics table and where everything went."""
    lines = ["", scoring.metrics_table({**{n: r["metrics"] for n, r in doc["models"].items()},
                                        "gray baseline": doc["gray_baseline"]})]
    if not doc["models"]:
        lines.append(f"\nno model has a run under {runs_dir}: only the gray baseline was scored")
    lines.append(f"\nwrote {Path(out_dir) / 'comparison.md'} and {Path(out_dir) / 'comparison.json'}")
    return "\n".join(lines)
