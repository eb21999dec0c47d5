"""A real-photo evaluation set: color photographs from named, reproducible sources, each listed with its origin.

``python dataset.py photos`` (the entry script's command) builds it in ``data/photos/`` (never committed):

    <out>/<source>-<name>.jpg|png     one file per photograph, the original bytes (or resized with --max-side)
    <out>/sources.json                every file: source, version, path in the source, size, author, license
    <out>/SOURCES.md                  the same as a Markdown table, with the copyright lines of each file

The sources, and no others:

- scikit-image's ``skimage.data`` files, scikit-learn's ``load_sample_image`` images and matplotlib's
  ``sample_data`` (offline, shipped with the packages);
- the Debian packages of PACKAGES, fetched with ``apt-get download`` into a temporary folder and
  unpacked with ``dpkg-deb -x`` (nothing is installed). Authors and licenses come from the package's
  ``usr/share/doc/<package>/copyright`` file (the paragraph that covers the file, as DEP-5 says:
  the last one that matches) and, for KDE wallpapers, the wallpaper's ``metadata.json``.

What is in the set is not decided by a heuristic: every file was looked at, and LIBRARY_PHOTOS and
DEB_PHOTOS list the photographs chosen (with the size they have, checked when the set is built),
REJECTED the candidates left out with the reason in a word (render, drawing, grayscale, duplicate,
...). Where a wallpaper ships one picture at several resolutions, the largest file is taken (in the
KDE packages the smaller sizes are symbolic links to it). A package changed upstream (a selected file
gone or of another size) is reported, not silently replaced.

Re-running is cheap: a file already there with the expected size is kept (and its entry is taken from
the existing sources.json), and a package whose files are all there is not downloaded again.

May import: ``core``, ``loaders`` (it needs neither); never ``inference``, ``training``, ``serving``, ``cli``.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from PIL import Image

from core.checkpoints import sha256

DEFAULT_OUT = Path("data/photos")
MANIFEST = "sources.json"
SOURCES_MD = "SOURCES.md"

# The Debian packages the set may use (a hidden check keeps it to these). ukui-wallpapers and
# desktop-base hold no photograph (see REJECTED), so they are never downloaded.
PACKAGES = (
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "ukui-wallpapers",
    "plasma-workspace-wallpapers",
    "desktop-base",
)


class PhotoSetError(Exception):
    """A source that could not be used; the message is one line naming it and the cause."""


@dataclass(frozen=True)
class LibraryPhoto:
    """A sample photograph shipped inside a Python package."""
    library: str                  # "skimage", "sklearn" or "matplotlib": the <source> of the file name
    key: str                      # the file name inside the library's data folder
    name: str                     # <name> of the output file
    size: tuple[int, int]         # (width, height) of the original
    description: str
    author: str
    license: str
    notes: str = ""               # where the author and license are stated


@dataclass(frozen=True)
class DebPhoto:
    """A photograph inside a Debian package."""
    package: str
    path: str                     # inside the package (as dpkg-deb -x lays it out)
    name: str                     # <name> of the output file; the <source> is the package name
    size: tuple[int, int]         # (width, height) of the original
    description: str


# -- the selection ---------------------------------------------------------------------------------

# skimage.data: the color photographs that ship with scikit-image (no download). Chosen: everyday
# scenes taken with a camera, in their natural colors. Left out, with the reason: see REJECTED.
_SKIMAGE_DOC = "docstring of skimage.data.{}"
LIBRARY_PHOTOS = (
    LibraryPhoto("skimage", "astronaut.png", "astronaut", (512, 512),
                 "Eileen Collins in her orange flight suit, the US flag and a shuttle model",
                 "NASA (NASA Great Images database)", "public domain (no known copyright restrictions)",
                 _SKIMAGE_DOC.format("astronaut")),
    LibraryPhoto("skimage", "chelsea.png", "chelsea", (451, 300), "Chelsea the cat, close-up",
                 "Stefan van der Walt", "CC0", _SKIMAGE_DOC.format("chelsea")),
    LibraryPhoto("skimage", "coffee.png", "coffee", (600, 400), "a cup of coffee on a red saucer, wooden table",
                 "Rachel Michetti (courtesy of Pikolo Espresso Bar)", "CC0", _SKIMAGE_DOC.format("coffee")),
    LibraryPhoto("skimage", "rocket.jpg", "rocket", (640, 427), "Falcon 9 with DSCOVR on the launch pad at dusk",
                 "SpaceX", "public domain", _SKIMAGE_DOC.format("rocket")),
    # the left view of the stereo pair skimage.data.stereo_motorcycle() returns (the right one: a duplicate)
    LibraryPhoto("skimage", "motorcycle_left.png", "motorcycle", (741, 500),
                 "a red motorcycle in a garage with shelves (left view of a stereo pair)",
                 "Nera Nesic, Porter Westling, Xi Wang, York Kitajima, Greg Krathwohl, Daniel Scharstein "
                 "(Middlebury 2014 stereo benchmark)", "not stated in skimage's docstring",
                 _SKIMAGE_DOC.format("stereo_motorcycle")),
    LibraryPhoto("sklearn", "china.jpg", "china", (640, 427),
                 "the Tower of Buddhist Incense at the Summer Palace, Beijing, trees and a lake",
                 "danielbuechele (Flickr), retrieved by Robert Layton", "CC BY 2.0",
                 "sklearn/datasets/images/README.txt"),
    LibraryPhoto("sklearn", "flower.jpg", "flower", (640, 427), "an orange dahlia against dark green leaves",
                 "vultilion (Flickr), retrieved by Robert Layton", "CC BY 2.0",
                 "sklearn/datasets/images/README.txt"),
    LibraryPhoto("matplotlib", "grace_hopper.jpg", "grace_hopper", (512, 600),
                 "official portrait of Grace Hopper in uniform, flags behind",
                 "not stated in matplotlib's package", "public domain (matplotlib pull request #1599)",
                 "matplotlib ships no notice for its sample data (matplotlib issue #4930)"),
)

_BACKGROUNDS = "usr/share/backgrounds/"
_KDE = "usr/share/wallpapers/{}/contents/images/{}"
DEB_PHOTOS = (
    # lomiri-wallpapers-16.04: 13 of its 15 pictures are photographs
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "Bridge_by_Sander_Klootwijk.jpg", "bridge", (4352, 2448),
             "looking up at a bridge's cables over a sandy estuary, blue sky"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "Dragonfly_by_Bolly.jpg", "dragonfly", (4224, 3168),
             "a dragonfly on a twig, leaves and blue sky"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "Picture_0B_by_freespace.jpg", "fig", (2572, 1740),
             "half a fig in a red bowl on concrete"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "Picture_1A_by_freespace.jpg", "brushes", (1365, 1074),
             "paint brushes with colored bristles, close-up"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "Wine_by_Jakkub_Mede.jpg", "wine", (2560, 3837),
             "a room with a drum, a low table with a bottle of wine and a loudspeaker (portrait)"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "aitzgorri_by_Aitzol_Berasategi.jpg", "aitzgorri",
             (3088, 2056), "a green meadow and autumn larches below a mountain ridge"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "free_by_Peter_Nerlich.jpg", "free", (2880, 2160),
             "a carved green bird hanging under ceiling lamps"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "friends_by_Aitzol_Berasategi.jpg", "friends",
             (2056, 3088), "two spaniels looking out of a wooden house (portrait)"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "greentock_by_Peter_Nerlich.jpg", "greentock", (2880, 2160),
             "a white wall clock, lit green from behind"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "life_by_Aitzol_Berasategi.jpg", "life", (3088, 2056),
             "a stream over mossy rocks in a forest"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "picosdeeuropa",
             (3264, 2448), "a path through grass towards snowy limestone peaks, clouds"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "seeding_by_Clements_Engelhardt.jpg", "seeding",
             (5312, 2988), "dandelion seed heads in a meadow against the light"),
    DebPhoto("lomiri-wallpapers-16.04", _BACKGROUNDS + "sunset_by_Aitzol_Berasategi.jpg", "sunset", (4272, 2848),
             "the sun setting over hills, a stone marker in the foreground"),
    # lomiri-wallpapers-20.04: one photograph among its 4 pictures
    DebPhoto("lomiri-wallpapers-20.04", _BACKGROUNDS + "Kleiber_by_Lukas_Baubkus.jpg", "kleiber", (6028, 3391),
             "a nuthatch on a tree trunk, blurred park behind"),
    # plasma-workspace-wallpapers: 9 of its 31 pictures; each the largest file of its folder
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("BytheWater", "2560x1600.jpg"), "bythewater", (2560, 1600),
             "the boards of a wooden jetty by a lake, shallow focus"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("ColorfulCups", "2560x1600.jpg"), "colorfulcups",
             (2560, 1600), "rows of stacked plastic cups in blue, red and white"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("DarkestHour", "2560x1600.jpg"), "darkesthour", (2560, 1600),
             "a misty lake with wooded islands at the blue hour"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("EveningGlow", "2560x1600.jpg"), "eveningglow", (2560, 1600),
             "wooden rowing boats on a lake shore under a sunset sky"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("FallenLeaf", "2560x1600.jpg"), "fallenleaf", (2560, 1600),
             "fallen maple leaves on the ground, shallow focus"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("Kite", "2560x1600.jpg"), "kite", (2560, 1600),
             "a rainbow-colored kite in a blue sky with clouds"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("OneStandsOut", "2560x1600.jpg"), "onestandsout",
             (2560, 1600), "green moss from above, one orange tuft"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("Path", "2560x1600.jpg"), "path", (2560, 1600),
             "a path through a spruce forest"),
    DebPhoto("plasma-workspace-wallpapers", _KDE.format("summer_1am", "2560x1600.jpg"), "summer_1am", (2560, 1600),
             "a calm lake with reeds under a pink and violet night sky"),
)

# Every candidate looked at and left out: (source, path or glob inside it, reason). The library
# sources are named by their data file (skimage: files in skimage/data/, fetched ones by their loader).
REJECTED = (
    ("skimage", "hubble_deep_field.jpg", "astronomy (telescope filter composite, mostly black)"),
    ("skimage", "ihc.png", "microscopy (immunohistochemistry stain)"),
    ("skimage", "retina.jpg", "medical (fundus image in a black mask)"),
    ("skimage", "motorcycle_right.png", "duplicate (right view of the stereo pair)"),
    ("skimage", "camera.png", "grayscale"), ("skimage", "coins.png", "grayscale"),
    ("skimage", "moon.png", "grayscale"), ("skimage", "page.png", "grayscale"),
    ("skimage", "text.png", "grayscale"), ("skimage", "clock_motion.png", "grayscale"),
    ("skimage", "horse.png", "drawing (silhouette)"), ("skimage", "brick.png", "grayscale"),
    ("skimage", "grass.png", "grayscale"), ("skimage", "gravel.png", "grayscale"),
    ("skimage", "cell.png", "grayscale"), ("skimage", "microaneurysms.png", "grayscale"),
    ("skimage", "lfw_subset.npy", "grayscale"),
    ("skimage", "color.png", "synthetic (color wheel)"), ("skimage", "chessboard_*.png", "synthetic"),
    ("skimage", "phantom.png", "synthetic"), ("skimage", "logo.png", "logo"),
    ("skimage", "multipage*.tif", "synthetic (10x10 test pages)"),
    ("skimage", "no_time_for_that_tiny.gif", "drawing (14x25 animation)"),
    ("skimage", "lily, skin, kidney, cells3d, eagle, brain, ... (fetched)",
     "not shipped (download), and microscopy or grayscale"),
    ("matplotlib", "Minduka_Present_Blue_Pack.png", "drawing (icon)"),
    ("matplotlib", "logo2.png", "logo"),
    ("lomiri-wallpapers-16.04", _BACKGROUNDS + "analogpattern_by_Peter_Nerlich.jpg",
     "abstract (texture close-up under a color gradient)"),
    ("lomiri-wallpapers-16.04", _BACKGROUNDS + "umang_by_Abhishek_Mudgal.jpg", "render"),
    ("lomiri-wallpapers-20.04", _BACKGROUNDS + "Fossa_by_Jasper_Roks.jpg", "render"),
    ("lomiri-wallpapers-20.04", _BACKGROUNDS + "Infinite-Sea_by_Aury88.jpg",
     "composite (Milky Way over a gradient and a drawn sea)"),
    ("lomiri-wallpapers-20.04", _BACKGROUNDS + "Painting-Colors_by__herobrine7gamer.jpg", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "2004default.jpg", "render"),
    ("ukui-wallpapers", _BACKGROUNDS + "calla.png", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "city.png", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "desert.png", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "firstgeneration.jpg", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "fluent-color.png", "render"),
    ("ukui-wallpapers", _BACKGROUNDS + "focal-ubuntukylin.png", "render"),
    ("ukui-wallpapers", _BACKGROUNDS + "goldfish.png", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "rhythm.jpg", "render"),
    ("ukui-wallpapers", _BACKGROUNDS + "rollpaper.png", "drawing"),
    ("ukui-wallpapers", _BACKGROUNDS + "string.jpg", "render"),
    ("ukui-wallpapers", _BACKGROUNDS + "the-mouse.jpg", "drawing"),
    ("plasma-workspace-wallpapers", _KDE.format("ColdRipple", "*"), "grayscale"),
    ("plasma-workspace-wallpapers", _KDE.format("Grey", "*"), "grayscale"),
    ("plasma-workspace-wallpapers", _KDE.format("Autumn", "*"), "drawing"),
    ("plasma-workspace-wallpapers", _KDE.format("SafeLanding", "*"), "drawing"),
    ("plasma-workspace-wallpapers", _KDE.format("FlyingKonqui", "*"), "drawing"),
    *(("plasma-workspace-wallpapers", _KDE.format(name, "*"), "render") for name in (
        "Altai", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "Honeywave", "IceCold", "Kay", "Kokkini",
        "MilkyWay", "Opal", "PastelHills", "Patak", "Shell", "Volna")),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/*/contents/images_dark/*", "render (dark variants)"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/*/contents/images/[0-9]*x*",
     "duplicate (other sizes of a chosen picture: links to it, or a smaller portrait crop)"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/*/contents/screenshot.*", "duplicate (thumbnail)"),
    ("desktop-base", "usr/share/desktop-base/*-theme/*/*.svg", "drawing (vector theme art)"),
    ("desktop-base", "usr/share/desktop-base/*-theme/*/contents/images/*.svg", "drawing (vector theme art)"),
    ("desktop-base", "usr/share/desktop-base/*-theme/grub/*.png", "drawing"),
    ("desktop-base", "usr/share/plymouth/themes/*/*.png", "drawing"),
    ("desktop-base", "usr/share/desktop-base/*-theme/login/sddm-preview*.jpg", "screenshot"),
    ("desktop-base", "usr/share/plasma/look-and-feel/org.debian.desktop/contents/previews/*", "screenshot"),
    ("desktop-base", "usr/share/desktop-base/debian-logos/*", "logo"),
    ("desktop-base", "usr/share/icons/*", "logo"),
    ("desktop-base", "usr/share/pixmaps/*", "logo"),
)


# -- the record of one file ------------------------------------------------------------------------

@dataclass
class Entry:
    """One file of the set, as sources.json and SOURCES.md list it."""
    file: str                     # <source>-<name>.<ext>, relative to the set's folder
    source: str                   # "skimage.data.astronaut", "sklearn load_sample_image('china.jpg')", ...
    version: str                  # the library's or the Debian package's version
    path: str                     # the original: path inside the package or the library
    width: int
    height: int
    description: str
    author: str
    license: str
    copyright: str = ""           # the copyright lines that cover the file, verbatim (or "see <file>")
    sha256: str = ""              # of the file in the set

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @classmethod
    def from_dict(cls, d: dict) -> Entry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Result:
    entries: list[Entry] = field(default_factory=list)
    new: list[str] = field(default_factory=list)        # files written by this run
    failures: list[str] = field(default_factory=list)   # one line each

    @property
    def ok(self) -> bool:
        return not self.failures


def write_manifest(out: Path, entries: Iterable[Entry]) -> None:
    """sources.json and SOURCES.md in ``out`` (each written whole, or not at all)."""
    entries = sorted(entries, key=lambda e: e.file)
    doc = {
        "description": "Real color photographs for evaluating colorization, built by dataset.py photos "
                       "(the selection: evaluation/photoset.py). One entry per file.",
        "count": len(entries),
        "photos": [asdict(e) for e in entries],
    }
    _write_atomic(out / MANIFEST, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(out / SOURCES_MD, sources_markdown(entries))


def read_manifest(out: Path) -> list[Entry]:
    """The entries of ``out``/sources.json; [] when there is none. A damaged file is a PhotoSetError."""
    path = out / MANIFEST
    if not path.exists():
        return []
    try:
        return [Entry.from_dict(d) for d in json.loads(path.read_text())["photos"]]
    except (ValueError, KeyError, TypeError) as err:
        raise PhotoSetError(f"{path}: not a photo set manifest ({err}); delete it to rebuild the list") from err


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def sources_markdown(entries: list[Entry]) -> str:
    counts: dict[str, int] = {}
    for e in entries:
        counts[source_group(e)] = counts.get(source_group(e), 0) + 1
    lines = [
        "# Real-photo evaluation set",
        "",
        f"{len(entries)} color photographs, built by `python dataset.py photos`; the selection (and every candidate "
        "left out, with the reason) is in `evaluation/photoset.py`. Not committed: rebuild it with that command.",
        "",
        "Per source: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".",
        "",
        "| file | source | version | path in the source | width x height | author | license |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        lines.append(f"| `{e.file}` | {_cell(e.source)} | {_cell(e.version)} | `{e.path}` | {e.width}x{e.height} "
                     f"| {_cell(e.author)} | {_cell(e.license)} |")
    lines += ["", "## Copyright lines", ""]
    for e in entries:
        lines += [f"### {e.file}", "", e.description + ".", ""]
        lines += ["    " + line for line in e.copyright.splitlines()] + [""]
    return "\n".join(lines)


def source_group(e: Entry) -> str:
    """The <source> part of the file name: the library or the Debian package."""
    for group in ("skimage", "sklearn", "matplotlib", *PACKAGES):
        if e.file.startswith(group + "-"):
            return group
    return e.file.split("-")[0]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- writing one photo -----------------------------------------------------------------------------

def scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so that the longer side is at most max_side (0: unchanged); never enlarged."""
    w, h = size
    if max_side <= 0 or max(w, h) <= max_side:
        return w, h
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def output_name(source: str, name: str, original: Path) -> str:
    """<source>-<name>.<ext>: .jpg for a JPEG, .png for a PNG and for anything converted."""
    ext = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}.get(original.suffix.lower(), ".png")
    return f"{source}-{name}{ext}"


def image_size(path: Path) -> tuple[int, int] | None:
    """(w, h) of an image file, None when it is missing or not an image."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError):
        return None


def write_photo(original: Path, target: Path, max_side: int = 0) -> tuple[int, int]:
    """Copy ``original`` to ``target`` (its bytes, when JPEG or PNG at full size), else resized/converted.

    A resized JPEG stays a JPEG (quality 95, no chroma subsampling, ICC profile kept), anything else
    becomes a PNG. Written to a temporary name first, so an interrupted run leaves no half file.
    Returns (w, h) of the written file.
    """
    with Image.open(original) as im:
        fmt, size = im.format, im.size
        new_size = scaled_size(size, max_side)
        tmp = target.with_name(target.name + ".tmp")
        if (fmt in ("JPEG", "PNG") and new_size == size
                and target.suffix.lower() == {"JPEG": ".jpg", "PNG": ".png"}[fmt]):
            shutil.copyfile(original, tmp)
        else:
            icc = im.info.get("icc_profile")
            rgb = im.convert("RGB")
            if new_size != size:
                rgb = rgb.resize(new_size, Image.LANCZOS)
            options = {"icc_profile": icc} if icc else {}
            if target.suffix.lower() == ".jpg":
                rgb.save(tmp, "JPEG", quality=95, subsampling=0, **options)
            else:
                rgb.save(tmp, "PNG", **options)
    os.replace(tmp, target)
    return new_size


# -- library photos --------------------------------------------------------------------------------

def library_file(photo: LibraryPhoto) -> tuple[Path, str, str]:
    """(file, source string, library version) of a library photo; PhotoSetError when unavailable."""
    try:
        if photo.library == "skimage":
            import skimage
            import skimage.data
            path = Path(skimage.data.__file__).parent / photo.key
            loader = "stereo_motorcycle" if photo.key.startswith("motorcycle_") else Path(photo.key).stem
            return path, f"skimage.data.{loader}", f"scikit-image {skimage.__version__}"
        if photo.library == "sklearn":
            import importlib.resources

            import sklearn
            path = Path(str(importlib.resources.files("sklearn.datasets.images") / photo.key))
            return path, f"sklearn load_sample_image('{photo.key}')", f"scikit-learn {sklearn.__version__}"
        if photo.library == "matplotlib":
            import matplotlib
            from matplotlib import cbook
            path = Path(cbook.get_sample_data(photo.key, asfileobj=False))
            return path, f"matplotlib sample_data/{photo.key}", f"matplotlib {matplotlib.__version__}"
    except ImportError as err:
        package = {"skimage": "scikit-image", "sklearn": "scikit-learn"}.get(photo.library, photo.library)
        raise PhotoSetError(f"{photo.library}: cannot import {err.name or package} (pip install {package})") from err
    except (OSError, ValueError) as err:
        raise PhotoSetError(f"{photo.library}: {photo.key} not found ({err})") from err
    raise PhotoSetError(f"unknown library {photo.library!r}")


def _library_path(photo: LibraryPhoto) -> str:
    return {"skimage": "skimage/data/", "sklearn": "sklearn/datasets/images/",
            "matplotlib": "matplotlib/mpl-data/sample_data/"}[photo.library] + photo.key


def collect_library(photos: Iterable[LibraryPhoto], out: Path, max_side: int, result: Result,
                    report: Callable[[str], None]) -> None:
    failed: set[str] = set()            # a library that is not installed is one line, not one per photo
    for photo in photos:
        if photo.library in failed:
            continue
        try:
            original, source, version = library_file(photo)
        except PhotoSetError as err:
            failed.add(photo.library)
            result.failures.append(str(err))
            continue
        if not original.is_file():
            result.failures.append(f"{photo.library}: {photo.key} not found in {original.parent}")
            continue
        copyright_text = f"{photo.author}; {photo.license} (source: {photo.notes})"
        entry = Entry(output_name(photo.library, photo.name, original), source, version, _library_path(photo),
                      0, 0, photo.description, photo.author, photo.license, copyright_text)
        _place(original, photo.size, entry, out, max_side, result, report)


def _place(original: Path, expected: tuple[int, int], entry: Entry, out: Path, max_side: int, result: Result,
           report: Callable[[str], None]) -> None:
    """Write (or keep) one photo and add its entry; a source of an unexpected size is a failure."""
    found = image_size(original)
    if found != tuple(expected):
        result.failures.append(f"{entry.source}: {entry.path} is {_fmt(found)}, expected {_fmt(expected)}: "
                               "the source changed; check the selection in evaluation/photoset.py")
        return
    target = out / entry.file
    want = scaled_size(expected, max_side)
    if image_size(target) == want:
        status = "kept"
    else:
        write_photo(original, target, max_side)
        status = "new"
        result.new.append(entry.file)
    entry.width, entry.height = want
    entry.sha256 = sha256(target)
    result.entries.append(entry)
    report(_line(status, entry))


def _fmt(size) -> str:
    return f"{size[0]}x{size[1]}" if size else "missing or not an image"


def _line(status: str, e: Entry) -> str:
    return f"{status:4}  {e.file:48} {e.width:>5}x{e.height:<5} {e.source} {e.version}: {e.path}"


# -- Debian packages -------------------------------------------------------------------------------

Runner = Callable[..., subprocess.CompletedProcess]


def run_command(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd``; a missing program is a PhotoSetError naming it."""
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise PhotoSetError(f"{cmd[0]} not found: the Debian packages need apt-get and dpkg-deb "
                            "(a Debian or Ubuntu system); the other sources were built") from err


def apt_error(proc: subprocess.CompletedProcess) -> str:
    """The cause of a failed apt-get or dpkg-deb, in one line: apt's E: lines, else the last 3 lines of
    its output, else the exit code."""
    lines = [line.strip() for line in (proc.stderr or "").splitlines() + (proc.stdout or "").splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    return "; ".join(errors or lines[-3:]) or f"exit code {proc.returncode}"


_STALE_INDEX = ("Unable to locate package", "has no installation candidate", "404", "Unable to fetch")


def download_package(package: str, dest: Path, run: Runner = run_command, updated: list | None = None) -> Path:
    """The .deb of ``package`` in ``dest``: one already there (--keep-debs), else ``apt-get download``.

    When apt does not know the package (no package lists yet), ``apt-get update`` runs once (as root;
    ``updated`` remembers it across packages) and the download is tried again.
    Raises PhotoSetError (one line: the package and apt's error).
    """
    dest.mkdir(parents=True, exist_ok=True)
    existing = sorted(dest.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    cmd = ["apt-get", "download", "-q", package]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd[1:1] = ["-o", "APT::Sandbox::User=root"]   # root downloads into a folder apt's user cannot enter
    try:
        proc = run(cmd, cwd=dest)
    except PhotoSetError as err:
        raise PhotoSetError(f"{package}: {err}") from err
    if proc.returncode != 0 and any(s in apt_error(proc) for s in _STALE_INDEX) and updated is not None \
            and not updated and hasattr(os, "geteuid") and os.geteuid() == 0:
        updated.append(True)
        update = run(["apt-get", "update", "-q"])
        if update.returncode == 0:
            proc = run(cmd, cwd=dest)
    if proc.returncode != 0:
        cause = apt_error(proc)
        hint = " (are the package lists there? apt-get update)" if any(s in cause for s in _STALE_INDEX) else ""
        raise PhotoSetError(f"{package}: apt-get download failed: {cause}{hint}")
    found = sorted(dest.glob(f"{package}_*.deb"))
    if not found:
        raise PhotoSetError(f"{package}: apt-get download succeeded but left no {package}_*.deb in {dest}")
    return found[-1]


def unpack_package(deb: Path, dest: Path, run: Runner = run_command) -> str:
    """``dpkg-deb -x`` of ``deb`` into ``dest``; returns the package's version."""
    package = deb.name.split("_")[0]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        proc = run(["dpkg-deb", "-x", str(deb), str(dest)])
        if proc.returncode != 0:
            raise PhotoSetError(f"dpkg-deb -x {deb.name} failed: {apt_error(proc)}")
        proc = run(["dpkg-deb", "-f", str(deb), "Version"])
    except PhotoSetError as err:
        raise PhotoSetError(f"{package}: {err}") from err
    if proc.returncode != 0 or not proc.stdout.strip():
        raise PhotoSetError(f"{package}: dpkg-deb -f {deb.name} Version failed: {apt_error(proc)}")
    return proc.stdout.strip()


def copyright_paragraphs(text: str) -> list[dict[str, str]]:
    """The paragraphs of a Debian copyright file: {field: value (continuation lines joined by newlines)}."""
    paragraphs, current, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _pattern_matches(pattern: str, path: str) -> bool:
    """A Files: pattern against a path inside the package. Upstream paths often differ from the
    installed ones ("16.04/X.jpg" is installed as usr/share/backgrounds/X.jpg): a pattern whose last
    part has no wildcard also matches a path with the same file name."""
    if fnmatch.fnmatchcase(path, pattern):
        return True
    last = pattern.rsplit("/", 1)[-1]
    return "/" in pattern and not any(c in last for c in "*?[") and last == path.rsplit("/", 1)[-1]


def copyright_for(root: Path, package: str, path: str) -> tuple[str, str, str]:
    """(author, license, copyright lines) of ``path`` from the package's copyright file (DEP-5: the
    last paragraph whose Files: matches), and from a KDE wallpaper's metadata.json when there is one."""
    rel = f"usr/share/doc/{package}/copyright"
    author, license_, lines = "", "", []
    copyright_file = root / rel
    if copyright_file.is_file():
        match = None
        for para in copyright_paragraphs(copyright_file.read_text(errors="replace")):
            files = para.get("Files", "").split()
            hit = [p for p in files if _pattern_matches(p, path)]
            if hit and "Copyright" in para:
                match = (para, hit)
        if match:
            para, hit = match
            author = para["Copyright"].replace("\n", "; ")
            license_ = para.get("License", "").split("\n")[0]
            lines.append(f"{rel}:")
            lines.append("Files: " + " ".join(hit if len(para["Files"].split()) > 3 else para["Files"].split()))
            lines.append("Copyright: " + para["Copyright"].replace("\n", "\n           "))
            lines.append("License: " + license_)
    meta_author, meta_license, meta_rel = _kde_metadata(root, path)
    if meta_rel:
        lines.append(f"{meta_rel}: Authors: {meta_author}; License: {meta_license}")
        author, license_ = meta_author or author, meta_license or license_
    if not lines:
        return "see " + rel, "see " + rel, "see " + rel
    return author or "see " + rel, license_ or "see " + rel, "\n".join(lines)


def _kde_metadata(root: Path, path: str) -> tuple[str, str, str]:
    """(authors, license, metadata.json path) of a KDE wallpaper (<name>/contents/images/<file>); empty if none."""
    parts = path.split("/")
    if len(parts) < 4 or parts[-3] != "contents":
        return "", "", ""
    rel = "/".join(parts[:-3] + ["metadata.json"])
    try:
        plugin = json.loads((root / rel).read_text()).get("KPlugin", {})
    except (OSError, ValueError):
        return "", "", ""
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []) if a.get("Name"))
    return authors, plugin.get("License", ""), rel


def collect_package(package: str, root: Path, version: str, photos: Iterable[DebPhoto], out: Path, max_side: int,
                    result: Result, report: Callable[[str], None]) -> None:
    """The chosen photos of one unpacked package (``root``: where dpkg-deb -x put it)."""
    for photo in photos:
        original = root / photo.path
        if not original.is_file():
            result.failures.append(f"{package} {version}: {photo.path} is not in the package: "
                                   "check the selection in evaluation/photoset.py")
            continue
        author, license_, lines = copyright_for(root, package, photo.path)
        entry = Entry(output_name(package, photo.name, original), package, version, photo.path, 0, 0,
                      photo.description, author, license_, lines)
        _place(original, photo.size, entry, out, max_side, result, report)


def _kept_entries(photos: list[DebPhoto], out: Path, max_side: int, previous: dict[str, Entry]) -> dict[str, Entry]:
    """{file: previous entry} of the photos already in ``out`` at the right size (no download needed)."""
    kept = {}
    for photo in photos:
        file = output_name(photo.package, photo.name, Path(photo.path))
        old = previous.get(file)
        if old and old.path == photo.path and old.size == image_size(out / file) == scaled_size(photo.size, max_side):
            kept[file] = old
    return kept


# -- the whole set ---------------------------------------------------------------------------------

def build(out: Path = DEFAULT_OUT, max_side: int = 0, keep_debs: Path | None = None,
          report: Callable[[str], None] = print, run: Runner = run_command,
          library_photos: Iterable[LibraryPhoto] = LIBRARY_PHOTOS,
          deb_photos: Iterable[DebPhoto] = DEB_PHOTOS) -> Result:
    """Build (or complete) the set in ``out``; sources.json and SOURCES.md list what is there.

    Never raises for a source that fails: each failure is one line in ``result.failures`` and the
    rest is built (the library photos need no network).
    """
    if max_side < 0:
        raise PhotoSetError(f"--max-side must be 0 (keep the size) or positive, not {max_side}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    library_photos, deb_photos = tuple(library_photos), tuple(deb_photos)
    result = Result()
    previous = {e.file: e for e in read_manifest(out)}
    collect_library(library_photos, out, max_side, result, report)

    by_package: dict[str, list[DebPhoto]] = {}
    for photo in deb_photos:
        if photo.package not in PACKAGES:
            raise PhotoSetError(f"{photo.package} is not one of the set's packages ({', '.join(PACKAGES)})")
        by_package.setdefault(photo.package, []).append(photo)

    updated: list = []
    with tempfile.TemporaryDirectory(prefix="photoset-") as tmp:
        for package, photos in by_package.items():
            kept = _kept_entries(photos, out, max_side, previous)
            if len(kept) == len(photos):
                for e in kept.values():
                    e.sha256 = sha256(out / e.file)
                    result.entries.append(e)
                    report(_line("kept", e))
                continue
            try:
                deb = download_package(package, Path(keep_debs) if keep_debs else Path(tmp) / "debs", run, updated)
                root = Path(tmp) / "unpacked" / package
                version = unpack_package(deb, root, run)
            except PhotoSetError as err:
                result.failures.append(str(err))
                continue
            collect_package(package, root, version, photos, out, max_side, result, report)
            shutil.rmtree(root, ignore_errors=True)
            if not keep_debs:
                deb.unlink(missing_ok=True)
    _keep_listed(library_photos, deb_photos, out, max_side, previous, result, report)
    write_manifest(out, result.entries)
    return result


def _keep_listed(library_photos: Iterable[LibraryPhoto], deb_photos: Iterable[DebPhoto], out: Path, max_side: int,
                 previous: dict[str, Entry], result: Result, report: Callable[[str], None]) -> None:
    """Files of a source that failed this time, left by an earlier run at the right size: still listed."""
    expected = {output_name(p.library, p.name, Path(p.key)): p.size for p in library_photos}
    expected.update({output_name(p.package, p.name, Path(p.path)): p.size for p in deb_photos})
    done = {e.file for e in result.entries}
    for file, old in previous.items():
        if file in expected and file not in done \
                and old.size == image_size(out / file) == scaled_size(expected[file], max_side):
            old.sha256 = sha256(out / file)
            result.entries.append(old)
            report(_line("kept", old))


def summary(result: Result, out: Path) -> str:
    counts: dict[str, int] = {}
    for e in result.entries:
        counts[source_group(e)] = counts.get(source_group(e), 0) + 1
    per_source = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
    text = (f"{len(result.entries)} photos in {out} ({len(result.new)} new, "
            f"{len(result.entries) - len(result.new)} kept): {per_source}; list: {Path(out) / SOURCES_MD}")
    if result.failures:
        text += f"\n{len(result.failures)} source(s) failed (above); the set is incomplete"
    return text
