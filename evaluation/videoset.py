"""Test clips with known camera motion, made from real photos: python dataset.py clips (the entry script's
command; into results/videoset).

Each clip is a window (640 x 360 by default) moved over a photo, rendered frame by frame with
OpenCV (bicubic), and saved as an mp4 (h264, crf 18, through inference.video's writer) beside a
JSON file holding, for every frame, the photo it shows and the affine transform from the frame's
pixels to the photo's, so that flicker can be measured with the motion compensated exactly
(evaluation/video.py). The clips (24 fps, 48 frames by default):

- ``pan``: a pan to the right over ``coffee``, 8 px per frame at 640 wide (scaled with the width);
- ``zoom``: a zoom into the center of ``astronaut``, by 1.67 x over the clip;
- ``cut``: a pan over ``chelsea``, then a cut to a pan over ``rocket`` at the middle frame;
- ``pan_photoset`` (only when the project's photo set is built, ``python dataset.py photos``, and holds
  it): a pan over ``lomiri-wallpapers-16.04-seeding.jpg`` (Clemens Engelhardt, CC0), shrunk to
  1280 px wide first.

The photos are scikit-image's samples (``skimage.data``, offline; sources in their docstrings and
in skimage's docs): ``coffee`` (Rachel Michetti, courtesy of Pikolo Espresso Bar, CC0), ``astronaut``
(Eileen Collins, NASA, public domain), ``chelsea`` (Stefan van der Walt, CC0), ``rocket`` (SpaceX,
public domain). Each JSON names its photos' sources.

Transforms: ``affine`` is a 2 x 3 matrix A with (u, v) = A (x, y, 1): pixel (x, y) of the frame (0-based,
integers at pixel centers) shows point (u, v) of the photo (same convention), as
``cv2.warpAffine(photo, A, (W, H), flags=WARP_INVERSE_MAP)`` renders it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "videoset"     # results/ is git-ignored: the clips are rebuilt, not committed
PHOTOSET = ROOT / "data" / "photos"
SIZE = (640, 360)           # width, height
FRAMES = 48
FPS = 24
PAN_SPEED = 8.0             # frame pixels per frame at 640 wide (scaled with the width)
ZOOM = 1.0 / 0.6            # how much the zoom clip magnifies from its first frame to its last

SKIMAGE_SOURCES = {
    "coffee": ("skimage.data.coffee()", "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    "astronaut": ("skimage.data.astronaut()", "Eileen Collins, NASA (Great Images database)", "public domain"),
    "chelsea": ("skimage.data.chelsea()", "Stefan van der Walt", "CC0"),
    "rocket": ("skimage.data.rocket()", "SpaceX (Flickr, public domain)", "public domain"),
}
PHOTOSET_PAN = "lomiri-wallpapers-16.04-seeding.jpg"


@dataclass
class Photo:
    name: str
    rgb: np.ndarray              # (h, w, 3) uint8
    source: dict                 # {"source", "author", "license"}


def skimage_photo(name: str) -> Photo:
    import skimage.data
    source, author, license_ = SKIMAGE_SOURCES[name]
    return Photo(name, np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]),
                 {"source": source, "author": author, "license": license_})


def photoset_photo(folder: Path = PHOTOSET, file: str = PHOTOSET_PAN, max_width: int = 1280) -> Photo | None:
    """The photo-set photo of the ``pan_photoset`` clip, shrunk to ``max_width``; None when the set lacks it."""
    manifest = folder / "sources.json"
    if not (folder / file).is_file() or not manifest.is_file():
        return None
    from PIL import Image
    entry = next((e for e in json.loads(manifest.read_text())["photos"] if e["file"] == file), None)
    if entry is None:
        return None
    with Image.open(folder / file) as img:
        img = img.convert("RGB")
        if img.width > max_width:
            img = img.resize((max_width, round(img.height * max_width / img.width)), Image.LANCZOS)
        rgb = np.asarray(img)
    return Photo(Path(file).stem, rgb, {"source": f"{entry['source']}: {entry['path']} (dataset.py photos)",
                                        "author": entry["author"], "license": entry["license"]})


def affine(scale: float, ox: float, oy: float) -> np.ndarray:
    """(2, 3) A for a window whose top-left pixel edge is at photo point (ox, oy), ``scale`` photo px per frame px."""
    # pixel centers: frame pixel x covers photo [ox + s x, ox + s (x + 1)], center ox + s (x + 0.5) - 0.5 in index units
    return np.array([[scale, 0.0, ox + 0.5 * scale - 0.5], [0.0, scale, oy + 0.5 * scale - 0.5]])


def pan_transforms(photo_hw: tuple[int, int], size: tuple[int, int], frames: int, speed: float) -> list[np.ndarray]:
    """A pan to the right at ``speed`` frame px per frame, the window as large as the photo allows, centered
    vertically."""
    (ph, pw), (W, H) = photo_hw, size
    travel = speed * (frames - 1)
    scale = min(pw / (W + travel), ph / H) * 0.98
    oy = (ph - scale * H) / 2
    ox0 = (pw - scale * (W + travel)) / 2
    return [affine(scale, ox0 + scale * speed * t, oy) for t in range(frames)]


def zoom_transforms(photo_hw: tuple[int, int], size: tuple[int, int], frames: int, zoom: float) -> list[np.ndarray]:
    """A zoom into the photo's center by ``zoom`` over the clip (geometric: the same rate every frame)."""
    (ph, pw), (W, H) = photo_hw, size
    s0 = min(pw / W, ph / H) * 0.98
    out = []
    for t in range(frames):
        s = s0 * zoom ** (-t / max(1, frames - 1))
        out.append(affine(s, (pw - s * W) / 2, (ph - s * H) / 2))
    return out


def render(photo: np.ndarray, A: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame (H, W, 3) uint8 that transform A shows of the photo."""
    return cv2.warpAffine(photo, A, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def clip_plan(size=SIZE, frames: int = FRAMES,
              photoset: Path | None = PHOTOSET) -> dict[str, list[tuple[Photo, np.ndarray]]]:
    """{clip name: [(photo, transform) per frame]}."""
    speed = PAN_SPEED * size[0] / 640
    coffee, astronaut = skimage_photo("coffee"), skimage_photo("astronaut")
    chelsea, rocket = skimage_photo("chelsea"), skimage_photo("rocket")
    half = frames // 2
    plan = {
        "pan": [(coffee, A) for A in pan_transforms(coffee.rgb.shape[:2], size, frames, speed)],
        "zoom": [(astronaut, A) for A in zoom_transforms(astronaut.rgb.shape[:2], size, frames, ZOOM)],
        "cut": [(chelsea, A) for A in pan_transforms(chelsea.rgb.shape[:2], size, half, speed)]
               + [(rocket, A) for A in pan_transforms(rocket.rgb.shape[:2], size, frames - half, speed)],
    }
    extra = photoset_photo(photoset) if photoset is not None else None
    if extra is not None:
        plan["pan_photoset"] = [(extra, A) for A in pan_transforms(extra.rgb.shape[:2], size, frames, speed)]
    return plan


def write_clip(name: str, frames: list[tuple[Photo, np.ndarray]], out: Path, size=SIZE, fps: int = FPS) -> Path:
    """<out>/<name>.mp4 and <out>/<name>.json (module docstring); returns the mp4's path."""
    from inference.video import ClipWriter
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.mp4"
    with ClipWriter(path, size[0], size[1], Fraction(fps)) as writer:
        for photo, A in frames:
            writer.write(render(photo.rgb, A, size))
    cuts = [t for t in range(1, len(frames)) if frames[t][0].name != frames[t - 1][0].name]
    meta = {
        "clip": path.name, "width": size[0], "height": size[1], "fps": fps, "frames": len(frames), "cuts": cuts,
        "transform": "affine: 2 x 3 A, (u, v) = A (x, y, 1): frame pixel (x, y) shows photo point (u, v), "
                     "0-based, integers at pixel centers (cv2.warpAffine with WARP_INVERSE_MAP)",
        "photos": {p.name: {**p.source, "width": int(p.rgb.shape[1]), "height": int(p.rgb.shape[0])}
                   for p, _ in frames},
        "per_frame": [{"photo": p.name, "affine": np.round(A, 6).tolist()} for p, A in frames],
    }
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def build(out: Path = DEFAULT_OUT, size=SIZE, frames: int = FRAMES, fps: int = FPS, photoset: Path | None = PHOTOSET,
          only: list[str] | None = None, report=print) -> list[Path]:
    """Write every clip of :func:`clip_plan` (or those named in ``only``); returns their paths."""
    paths = []
    for name, plan in clip_plan(size, frames, photoset).items():
        if only and name not in only:
            continue
        paths.append(write_clip(name, plan, out, size, fps))
        report(f"{paths[-1]}: {len(plan)} frames, {size[0]} x {size[1]}, {fps} fps, "
               f"{', '.join(sorted({p.name for p, _ in plan}))}")
    return paths


def load_meta(clip: Path) -> dict:
    """The JSON of a videoset clip (the clip's path or the JSON's: <stem>.json), with the affines as (2, 3)
    arrays under "affines" and the photo of each frame under "photo_of"."""
    meta = json.loads(Path(clip).with_suffix(".json").read_text())
    meta["affines"] = [np.asarray(f["affine"], np.float64) for f in meta["per_frame"]]
    meta["photo_of"] = [f["photo"] for f in meta["per_frame"]]
    return meta
