"""The hints file of user-guided colorization: colors the user knows, as JSON.

    {"points": [{"x": 120, "y": 45, "color": "#3a7d2c", "radius": 3}], "reference": "beach.jpg"}

- ``points`` (optional): a list of objects. ``x``, ``y``: the pixel's column and row in the input
  image, 0-based from the top-left corner (numbers, ints or floats); ``color``: an sRGB hex color,
  ``#rrggbb`` or ``#rgb`` (case-insensitive; only its chroma is used, its lightness is ignored);
  ``radius`` (optional): pixels, a number >= 0 (0: the single pixel; absent: the tool's default).
- ``reference`` (optional): a color image whose color distribution is the global hint; a path
  relative to the JSON file's folder (or absolute). It must exist and be readable as an image (only
  its header is read here).

``{}`` is a valid file (no hints). Unknown or duplicate keys are errors. Every problem raises
:class:`HintsFileError`, one line naming the JSON file, where the problem is and what it is.
The image size is not known while parsing: :func:`check_inside` checks the points against it.

May import: ``core``, ``loaders``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from loaders import cifar
from loaders.cifar import DataError

TOP_KEYS = ("points", "reference")
POINT_KEYS = ("x", "y", "color", "radius")
SUFFIX = ".hints.json"              # photo.jpg -> photo.hints.json beside it (folders of photos)
_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_SHOW_CHARS = 40                    # user values quoted in messages are cut to about this length


class HintsFileError(ValueError):
    """One line: '<file>: <problem>' (what is wrong and where, e.g. 'points[2].color')."""


@dataclass(frozen=True)
class PointHint:
    x: float                        # photo pixel column, 0-based from the left
    y: float                        # photo pixel row, 0-based from the top
    rgb: tuple[int, int, int]       # sRGB 0-255 from the hex color
    radius: float | None = None     # pixels in the photo; None: the tool's default


@dataclass(frozen=True)
class HintSpec:
    points: tuple[PointHint, ...] = ()
    reference: Path | None = None   # resolved path of the reference image
    source: Path | None = None      # the JSON file it came from (for messages)


class _JSONObject(dict):
    """A JSON object as read by :func:`load_hints`, remembering keys that appeared twice."""
    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, object]]) -> _JSONObject:
    obj = _JSONObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in duplicates:
                duplicates.append(key)
            seen.add(key)
        obj.duplicates = tuple(duplicates)
    return obj


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _error(source: Path | None, problem: str) -> HintsFileError:
    name = str(source) if source is not None else "hints"
    return HintsFileError(_one_line(f"{name}: {problem}"))


def _show(value: object) -> str:
    """A user's value, short and on one line, as JSON would write it (for messages)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS - 4] + "...'"
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:            # beyond Python's digit limit for int -> str
            return "a huge integer"
        return text if len(text) <= _SHOW_CHARS else f"a {len(text)}-digit integer"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _number(value: object) -> str:
    """A coordinate for messages: 120 rather than 120.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _show(value)


def parse_color(text: object) -> tuple[int, int, int]:
    """sRGB (0-255 each) from '#rrggbb' or '#rgb' (case-insensitive, '#' required).

    Raises ValueError with a short reason, e.g. "'#12345' is not a #rrggbb or #rgb color".
    """
    if not isinstance(text, str):
        raise ValueError(f"{_show(text)} is not a #rrggbb or #rgb color (a string)")
    match = _HEX.fullmatch(text)
    if match is None:
        raise ValueError(f"{_show(text)} is not a #rrggbb or #rgb color")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d + d for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _check_keys(obj: dict, valid: tuple[str, ...], where: str, source: Path) -> None:
    in_where = f" in {where}" if where else ""
    duplicates = getattr(obj, "duplicates", ())
    if duplicates:
        raise _error(source, f"duplicate key {_show(duplicates[0])}{in_where}")
    for key in obj:
        if key not in valid:
            raise _error(source, f"unknown key {_show(key)}{in_where} (valid: {', '.join(valid)})")


def _coordinate(value: object, where: str, source: Path) -> float:
    """A finite number >= 0 (not a boolean, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(source, f"{where}: {_show(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise _error(source, f"{where}: {_show(value)} is too large") from None
    if not math.isfinite(number):
        raise _error(source, f"{where}: {_show(value)} is not a finite number")
    if number < 0:
        raise _error(source, f"{where}: {_show(value)} is negative (pixels count from 0)")
    return number


def _point(obj: object, index: int, source: Path) -> PointHint:
    where = f"points[{index}]"
    if not isinstance(obj, dict):
        raise _error(source, f"{where}: {_show(obj)} is not an object like "
                             '{"x": 120, "y": 45, "color": "#3a7d2c"}')
    _check_keys(obj, POINT_KEYS, where, source)
    for key in ("x", "y", "color"):
        if key not in obj:
            raise _error(source, f"{where}: missing {_show(key)} (required: x, y, color)")
    x = _coordinate(obj["x"], f"{where}.x", source)
    y = _coordinate(obj["y"], f"{where}.y", source)
    try:
        rgb = parse_color(obj["color"])
    except ValueError as err:
        raise _error(source, f"{where}.color: {err}") from None
    radius = None
    if "radius" in obj:
        radius = _coordinate(obj["radius"], f"{where}.radius", source)
    return PointHint(x, y, rgb, radius)


def _reference(value: object, source: Path, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _error(source, f"reference: {_show(value)} is not a path (a non-empty string) to an image")
    shown = _show(value)
    if "\0" in value:
        raise _error(source, f"reference {shown}: not a valid path (contains a NUL character)")
    try:
        path = (Path(base_dir) / value).resolve()
    except (OSError, RuntimeError, ValueError) as err:   # a symlink loop, a name the OS refuses
        raise _error(source, f"reference {shown}: not a valid path ({err})") from None
    try:
        exists, is_dir, is_file = path.exists(), path.is_dir(), path.is_file()
    except (OSError, ValueError) as err:
        raise _error(source, f"reference {shown} ({path}): cannot be read ({err})") from None
    if not exists:
        raise _error(source, f"reference {shown} ({path}): no such file")
    if is_dir:
        raise _error(source, f"reference {shown} ({path}): is a folder, not an image file")
    if not is_file:                    # a device or a pipe: reading it could block
        raise _error(source, f"reference {shown} ({path}): not a regular file")
    try:
        cifar.open_image(path).close()   # the header only: no pixel is decoded here
    except DataError as err:
        problem = str(err)
        if problem.startswith(f"{path}: "):
            problem = problem[len(f"{path}: "):]
        raise _error(source, f"reference {shown} ({path}): {problem}") from None
    return path


def parse_hints(obj: object, source: Path, base_dir: Path) -> HintSpec:
    """A parsed JSON value -> HintSpec; HintsFileError (naming ``source``) for anything invalid.

    A relative ``reference`` is taken relative to ``base_dir`` (the JSON file's folder).
    """
    if not isinstance(obj, dict):
        raise _error(source, f"not a JSON object (found {_show(obj)}); expected "
                             '{"points": [...], "reference": "image.jpg"}')
    _check_keys(obj, TOP_KEYS, "", source)
    points: tuple[PointHint, ...] = ()
    if "points" in obj:
        raw = obj["points"]
        if not isinstance(raw, list):
            raise _error(source, f"points: {_show(raw)} is not a list of points")
        points = tuple(_point(p, i, source) for i, p in enumerate(raw))
    reference = _reference(obj["reference"], source, base_dir) if "reference" in obj else None
    return HintSpec(points, reference, source)


def load_hints(path: Path) -> HintSpec:
    """Read a hints file; HintsFileError for an unreadable file, not UTF-8, not JSON, bad content."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise _error(path, "is a folder, not a hints file") from None
    except FileNotFoundError:
        raise _error(path, "no such file") from None
    except OSError as err:
        raise _error(path, f"cannot read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8-sig")       # a byte order mark (Windows editors) is fine
    except UnicodeDecodeError as err:
        raise _error(path, f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as err:
        raise _error(path, f"not JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except RecursionError:
        raise _error(path, "not usable JSON (nested too deeply)") from None
    except ValueError as err:                 # e.g. an integer beyond Python's digit limit
        raise _error(path, f"not usable JSON ({err})") from None
    return parse_hints(obj, path, path.parent)


def check_inside(spec: HintSpec, width: int, height: int, image_name: str = "") -> None:
    """Every point lies on the image: 0 <= x <= width - 1 and 0 <= y <= height - 1.

    HintsFileError names the hints file, the point's index, its x and y and the image's size.
    """
    for i, p in enumerate(spec.points):
        if not (0 <= p.x <= width - 1 and 0 <= p.y <= height - 1):
            image = f"the image {image_name}" if image_name else "the image"
            raise _error(spec.source, f"point {i} (x {_number(p.x)}, y {_number(p.y)}) is outside "
                                      f"{image} ({width} x {height} pixels)")


def hints_file_for(image: Path) -> Path | None:
    """``STEM.hints.json`` beside ``image`` if that file exists (for folders of photos), else None."""
    image = Path(image)
    try:
        candidate = image.with_name(image.stem + SUFFIX)
        return candidate if candidate.is_file() else None
    except (OSError, ValueError):
        return None
