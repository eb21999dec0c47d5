"""The card written next to an exported model: what goes in and out, and where the model comes from.

For an artifact ``OUT`` (a file, or the SavedModel folder) two files are written beside it:
``OUT.card.json`` (for programs) and ``OUT.card.md`` (the same, for people). Fields:

=============  ==================================================================================
field          content
=============  ==================================================================================
model          registry name and description; ``run_dir`` it was exported from
format         savedmodel / onnx / tflite, the runtime that runs it, the fixed batch (tflite: 1)
baked_color    false: the network's own encoding; true: gray image in, RGB out (serving.colorgraph)
inputs         per input: name (as the runtime names it), shape (null = any), dtype, value range,
               encoding (how to make it from an image; for a run trained with color hints also
               how to make its two hint inputs, zeros meaning no hints)
outputs        the same for the output, with how to turn it into RGB
parity         largest |exported - Keras| on the check batch, the batch's description
config         the run's config.json as is
metrics        the run's progress (state.json), the last value of each training scalar from its
               TensorBoard logs, and ``results/<model>/eval.json`` if evaluate.py scored this run
exported       time, versions of Keras, TensorFlow and the converters
=============  ==================================================================================
"""
from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

from core import hints as core_hints
from core import runs, tblog
from loaders.cifar import CLASS_NAMES

CARD_VERSION = 1

GRAY_IMAGE = ("the gray image, one channel: its sRGB gray value / 255 (for a color photo, any gray "
              "conversion; the model only uses its CIE lightness)")
RESIZE = ("the model works at {s}x{s}: shrink the image to {s}x{s} first (area averaging); for a "
          "full-resolution result, upsample the predicted a*, b* and combine them with the photo's own "
          "L* (what colorize.py does)")


def encodings(color_space: str, baked: bool) -> tuple[dict, dict]:
    """(image input, output) descriptions: value range and encoding, for a run's color space."""
    if baked:
        return ({"range": [0.0, 1.0], "encoding": GRAY_IMAGE},
                {"range": [0.0, 1.0], "encoding": "sRGB, channels R, G, B, ready to save (x 255, round)"})
    if color_space == "RGB":
        return ({"range": [-1.0, 1.0], "encoding": "gray image x 2 - 1 (sRGB gray value in [0, 1]), the same "
                 "value in all 3 channels"},
                {"range": [-1.0, 1.0], "encoding": "sRGB x 2 - 1 (tanh): RGB = clip((y + 1) / 2, 0, 1)"})
    if color_space == "LAB_SYM":
        return ({"range": [-1.0, 1.0], "encoding": "CIE L* / 50 - 1 (D65 white, L* in [0, 100])"},
                {"range": [-1.0, 1.0], "encoding": "a*, b* / 128 (tanh): clip to [-1, 1], a*, b* = 128 y; "
                 "with the input's L* = 50 (x + 1), CIE LAB (D65) -> sRGB"})
    lightness = {"range": [0.0, 1.0], "encoding": "CIE L* / 100 (D65 white, L* in [0, 100])"}
    if color_space not in ("LAB", "fusion"):   # a model whose output this card does not describe
        return (lightness, {"range": None, "encoding": f"the network's raw output ('{color_space}' encoding of "
                            "the run: see its model file in models/)"})
    return (lightness,
            {"range": [0.0, 1.0], "encoding": "(a*, b* + 128) / 255: clip to [0, 1] (the U-Net's tanh can "
             "leave it), a*, b* = 255 y - 128; with the input's L* = 100 x, CIE LAB (D65) -> sRGB"})


def prior_encoding(colorizer) -> dict:
    """The fusion models' second input."""
    if colorizer.spec.prior == "label":
        return {"range": [0.0, 1.0], "encoding": "one-hot CIFAR-10 class, in this order: " + ", ".join(CLASS_NAMES)}
    if colorizer.spec.prior != "classifier":
        return {"range": None, "encoding": f"the model's '{colorizer.spec.prior}' prior (see Colorizer.prior)"}
    prior = colorizer.config.get("prior", {})
    return {"range": [0.0, 1.0],
            "encoding": f"the 1000 ImageNet softmax outputs of {prior.get('backbone', 'the backbone')} "
                        "on the gray image (see priors/ for its preprocessing)"}


def hint_encodings() -> tuple[dict, dict]:
    """(local hints, reference) input descriptions of a run trained with color hints (core/hints.py)."""
    s = f"{core_hints.AB_SCALE:g}"
    local = {"range": [-1.0, 1.0], "encoding": (
        f"local color hints at the model's size, {core_hints.NETWORK_CHANNELS} channels. Channels 0-2: at a hinted "
        f"pixel its wanted CIE a*, b* (D65) / {s} (about [-0.9, 0.9]) and 1 (the mask); 0 in all three elsewhere, so "
        "a hinted gray (a* = b* = 0) differs from no hint. A point of the photo goes to the pixel its center falls "
        "in after shrinking; overlapping points are averaged (core/hints.py local_planes). Then, computed from "
        "those and the gray input, per spread field of core/hints.py SPREAD_FIELDS (sigma x the long side, "
        f"lightness variance v: {', '.join(f'({a:g}, {b:g})' for a, b in core_hints.SPREAD_FIELDS)}): the hints "
        f"spread over the image (a*, b* / {s}: their mean weighted by exp(-d^2 / 2 sigma^2) exp(-dL*^2 / v)) and "
        "its confidence (the largest weight, [1e-6, 1]) (core/hints.py network_local); zeros: no hints")}
    reference = {"range": [0.0, 1.0], "encoding": (
        f"global hint: a reference image's color distribution over the {core_hints.n_bins()} in-gamut ab bins of "
        "core/ab_bins.py (the fraction of its pixels whose a*, b* are nearest each bin, sum 1; core/hints.py "
        "reference_distribution), then a final 1; zeros: no hints (no reference)")}
    return local, reference


def io_fields(colorizer, runner, names: list[str], baked: bool) -> tuple[list[dict], list[dict]]:
    """Inputs in the Keras model's order (``names``: the image first, then a fusion model's prior or
    effnet_unet's taps, then, for a run trained with color hints, its local hints and reference), and outputs."""
    image_in, out = encodings(colorizer.color_space, baked)
    described = [image_in] + [prior_encoding(colorizer)] * (len(names) - 1)
    if getattr(colorizer, "takes_hints", False):   # the last two inputs (models/effnet_unet.py build)
        described[-2:] = hint_encodings()
    by_name = {t.name: t for t in runner.inputs}
    inputs = [{"name": name, "shape": by_name[name].shape, "dtype": by_name[name].dtype, **about}
              for name, about in zip(names, described)]
    outputs = [{"name": t.name, "shape": t.shape, "dtype": t.dtype, **out} for t in runner.outputs]
    return inputs, outputs


def metrics(colorizer) -> dict:
    """What is known about how good the run is (see the module doc)."""
    out: dict = {}
    if colorizer.run_dir is not None:
        out["progress"] = runs.load_state(Path(colorizer.run_dir))
    log_dir = colorizer.config.get("log_dir")
    if log_dir and Path(log_dir).exists():
        last = {}
        for subdir, tags in tblog.read_scalars(log_dir).items():
            for tag, points in tags.items():
                if points:
                    last[f"{subdir}/{tag}"] = points[-1][1]
        out["training_last"] = last
    eval_file = runs.ROOT / "results" / colorizer.spec.name / "eval.json"
    if colorizer.run_dir is not None and eval_file.exists():
        result = json.loads(eval_file.read_text())
        if Path(result.get("run_dir", "")).resolve() == Path(colorizer.run_dir).resolve():
            out["evaluation"] = {"file": str(eval_file), "data": result.get("data"), "n_images": result.get("n_images"),
                                 "model": _summary(result["metrics"]["model"]),
                                 "gray_baseline": _summary(result["metrics"]["gray_baseline"])}
    return out


def _summary(report: dict) -> dict:
    return {k: v for k, v in report.items() if not isinstance(v, (dict, list))}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def build(colorizer, fmt, out: Path, baked: bool, runner, names: list[str], diff: float, n_check: int,
          check_hints: str | None = None) -> dict:
    """The card (module doc); ``check_hints``: how the check batch's color hints were made, if it had any."""
    inputs, outputs = io_fields(colorizer, runner, names, baked)
    batch = f"the first {n_check} images of data/sample/val, encoded as the run encodes them"
    return {
        "card_version": CARD_VERSION,
        "model": colorizer.spec.name,
        "description": colorizer.spec.description,
        "run_dir": None if colorizer.run_dir is None else str(colorizer.run_dir),
        "artifact": out.name,
        "format": fmt.name,
        "runtime": fmt.runtime,
        "batch": fmt.batch,
        "baked_color": baked,
        "image_size": colorizer.image_size,
        "inputs": inputs,
        "outputs": outputs,
        "resize": RESIZE.format(s=colorizer.image_size),
        "parity": {"max_abs_diff": diff, "against": "the Keras model (model.predict_on_batch)",
                   "batch": batch + (f"; {check_hints}" if check_hints else "")},
        "config": colorizer.config,
        "metrics": metrics(colorizer),
        "exported": {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "versions": {p: _version(p) for p in ("keras", "tensorflow-cpu", "tensorflow", "tf2onnx",
                                                           "onnx", "onnxruntime", "ai-edge-litert")
                                  if _version(p)}},
    }


def paths(out: Path) -> tuple[Path, Path]:
    """(json, markdown) card files of the artifact ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".card.json"), out.with_name(out.name + ".card.md")


def write(out: Path, card: dict) -> tuple[Path, Path]:
    json_path, md_path = paths(out)
    runs.save_json(json_path, card)
    md_path.write_text(markdown(card))
    return json_path, md_path


def _shape(shape: list) -> str:
    return "(" + ", ".join("any" if d is None else str(d) for d in shape) + ")"


def markdown(card: dict) -> str:
    lines = [f"# {card['model']} ({card['format']}{', color baked in' if card['baked_color'] else ''})", "",
             f"{card['description']}. Exported from `{card['run_dir']}` as `{card['artifact']}`, "
             f"run by {card['runtime']}" + (f", batch fixed at {card['batch']}" if card["batch"] else "") + ".", "",
             "| tensor | name | shape | dtype | range | encoding |", "| --- | --- | --- | --- | --- | --- |"]
    for role, tensors in (("input", card["inputs"]), ("output", card["outputs"])):
        for t in tensors:
            value_range = "-" if t["range"] is None else f"[{t['range'][0]:g}, {t['range'][1]:g}]"
            lines.append(f"| {role} | `{t['name']}` | {_shape(t['shape'])} | {t['dtype']} | {value_range} "
                         f"| {t['encoding']} |")
    p = card["parity"]
    lines += ["", f"Size: {card['resize']}.", "",
              f"Parity: largest difference to {p['against']} {p['max_abs_diff']:.1e} on {p['batch']}.", ""]
    if card["config"].get("flip_average"):
        lines += ["Test-time flips: the run's tools colorize the mirror image too and average the two colorings "
                  "(config.json `flip_average`); this file is one pass. To match them, run it on the mirrored "
                  "input as well, mirror that output back and average the two outputs.", ""]
    if card["config"].get("square_view"):
        lines += ["Square view: for a photo whose working shape is not square, the run's tools also colorize the "
                  "photo squashed to a square of the long side (config.json `square_view`), resize that chroma "
                  "to the working shape and average the two chromas; this file is one view.", ""]
    if card["config"].get("model_options", {}).get("encoder_detail"):
        lines += ["Encoder detail: the run was trained with the encoder seeing the photo itself (config.json "
                  "`model_options.encoder_detail`): compute the encoder taps from the photo's lightness "
                  "area-averaged to the encoder's size for the working shape, not from the working image "
                  "enlarged.", ""]
    if card["config"].get("undo_rebalancing"):
        lines += [f"Decoding: the run's tools divide {card['config']['undo_rebalancing']:g} of the class "
                  "rebalancing back out of the logits before the annealed mean (config.json `undo_rebalancing`, "
                  "with its `class_rebalancing` weights: logits - u log w).", ""]
    m = card["metrics"]
    if "progress" in m:
        lines.append(f"Training: {m['progress'].get('epoch', 0)} epoch(s), {m['progress'].get('step', 0)} step(s).")
    if m.get("training_last"):
        lines.append("Last logged values: "
                     + ", ".join(f"{k} {v:.4g}" for k, v in sorted(m["training_last"].items())) + ".")
    if "evaluation" in m:
        e = m["evaluation"]
        lines.append(f"Evaluation ({e['n_images']} images): " + ", ".join(
            f"{k} {v:.4g} (gray {e['gray_baseline'].get(k, float('nan')):.4g})"
            for k, v in e["model"].items() if isinstance(v, (int, float))) + ".")
    else:
        lines.append("Evaluation: none for this run (`python evaluate.py -m "
                     f"{card['model']} --run-dir {card['run_dir']}` writes one).")
    lines += ["", "The run's full config and the versions used are in the JSON card beside this file.", ""]
    return "\n".join(lines)
