"""The hints file of user-guided colorization (inference/hintsfile.py): parsed, validated, and every
problem one HintsFileError line that starts with the JSON file's name; never another exception.

Property tests (hypothesis, derandomized as in test_fuzz.py): a valid spec written as JSON reads back
as the same HintSpec; arbitrary JSON values and arbitrary bytes parse or raise HintsFileError;
parse_color accepts exactly '#rgb' and '#rrggbb'.
"""
from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from inference.hintsfile import (
    HintsFileError,
    HintSpec,
    PointHint,
    check_inside,
    hints_file_for,
    load_hints,
    parse_color,
    parse_hints,
)

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def write(folder: Path, content: str | bytes | object, name: str = "hints.json") -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def png(path: Path, size: tuple[int, int] = (6, 4)) -> Path:
    Image.new("RGB", size, (200, 120, 40)).save(path)
    return path


def fails(path: Path, *parts: str) -> str:
    """load_hints(path) raises HintsFileError: one line, starting with the file, containing ``parts``."""
    with pytest.raises(HintsFileError) as info:
        load_hints(path)
    return assert_message(info.value, path, *parts)


def assert_message(err: BaseException, path: Path | None, *parts: str) -> str:
    message = str(err)
    assert isinstance(err, HintsFileError), repr(err)
    assert "\n" not in message and "\r" not in message, message
    if path is not None:
        assert message.startswith(f"{path}: "), message
    for part in parts:
        assert part in message, message
    return message


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder with a small PNG reference (ref.png) and a text file (notes.txt), shared by the property tests."""
    path = tmp_path_factory.mktemp("hints")
    png(path / "ref.png")
    (path / "notes.txt").write_text("not an image")
    return path


# ---- valid files --------------------------------------------------------------------------------

def test_a_valid_file_reads_back(tmp_path):
    (tmp_path / "refs").mkdir()
    ref = png(tmp_path / "refs" / "beach.png")
    path = write(tmp_path, {"points": [{"x": 120, "y": 45, "color": "#3a7d2c"},
                                       {"x": 0.5, "y": 7, "color": "#FfF", "radius": 0},
                                       {"x": 3, "y": 4.25, "color": "#000000", "radius": 2.5}],
                            "reference": "refs/beach.png"})
    spec = load_hints(path)
    assert spec == HintSpec(points=(PointHint(120.0, 45.0, (0x3a, 0x7d, 0x2c)),
                                    PointHint(0.5, 7.0, (255, 255, 255), 0.0),
                                    PointHint(3.0, 4.25, (0, 0, 0), 2.5)),
                            reference=ref.resolve(), source=path)
    assert spec.points[0].radius is None and spec.reference.is_absolute()


def test_empty_object_means_no_hints(tmp_path):
    path = write(tmp_path, "{}")
    assert load_hints(path) == HintSpec(source=path)
    assert load_hints(write(tmp_path, {"points": []})) == HintSpec(source=tmp_path / "hints.json")


def test_an_absolute_reference_and_a_byte_order_mark(tmp_path):
    ref = png(tmp_path / "elsewhere.png")
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", b"\xef\xbb\xbf" + json.dumps({"reference": str(ref)}).encode())
    assert load_hints(path).reference == ref.resolve()


def test_parse_hints_takes_a_plain_dict(tmp_path):
    png(tmp_path / "r.png")
    spec = parse_hints({"reference": "r.png", "points": [{"x": 1, "y": 2, "color": "#abc"}]},
                       Path("hints.json"), tmp_path)
    assert spec.reference == (tmp_path / "r.png").resolve() and spec.source == Path("hints.json")
    assert spec.points == (PointHint(1.0, 2.0, (0xaa, 0xbb, 0xcc)),)


# ---- errors: one line, starting with the file ----------------------------------------------------

def test_the_messages_of_the_brief(tmp_path):
    path = write(tmp_path, {"points": [{"x": 1, "y": 1, "color": "#fff"}, {"x": 1, "y": 1, "color": "#12345"}]})
    assert fails(path) == f"{path}: points[1].color: '#12345' is not a #rrggbb or #rgb color"
    path = write(tmp_path, '{"points": [\n  {"x": 1, "y": 2, "color": "#fff"}\n  {"x": 3}]}')
    assert fails(path) == f"{path}: not JSON (line 3, column 3: Expecting ',' delimiter)"
    path = write(tmp_path, {"points": [{"x": 1, "y": 2, "colour": "#fff"}]})
    assert fails(path) == f"{path}: unknown key 'colour' in points[0] (valid: x, y, color, radius)"
    path = write(tmp_path, {"reference": "beach.jpg"})
    assert fails(path) == f"{path}: reference 'beach.jpg' ({(tmp_path / 'beach.jpg').resolve()}): no such file"
    spec = load_hints(write(tmp_path, {"points": [{"x": 120, "y": 45, "color": "#3a7d2c"}]}))
    with pytest.raises(HintsFileError) as info:
        check_inside(spec, 100, 80, "photo.jpg")
    assert str(info.value) == f"{path}: point 0 (x 120, y 45) is outside the image photo.jpg (100 x 80 pixels)"


def test_unreadable_files(tmp_path):
    fails(tmp_path / "missing.json", "no such file")
    (tmp_path / "dir.json").mkdir()
    fails(tmp_path / "dir.json", "folder")
    fails(write(tmp_path, b"\xff\xfe{\x00}\x00"), "not UTF-8")
    fails(write(tmp_path, b'{"points": []'), "not JSON (line 1")
    fails(write(tmp_path, b""), "not JSON")
    fails(write(tmp_path, b"[" * 100_000), "JSON")                  # nested too deeply: no RecursionError
    fails(write(tmp_path, b'{"points": ' + b"1" * 5000 + b"}"), "JSON")   # beyond Python's int digit limit


@pytest.mark.parametrize("document, parts", [
    ("[]", ["not a JSON object (found a list)"]),
    ('"hints"', ["not a JSON object"]),
    ("null", ["not a JSON object (found null)"]),
    ('{"point": []}', ["unknown key 'point' (valid: points, reference)"]),
    ('{"points": [], "points": []}', ["duplicate key 'points'"]),
    ('{"points": [{"x": 1, "x": 2, "y": 1, "color": "#fff"}]}', ["duplicate key 'x' in points[0]"]),
    ('{"points": {"x": 1}}', ["points: an object is not a list"]),
    ('{"points": [[1, 2]]}', ["points[0]: a list is not an object"]),
    ('{"points": [{"x": 1, "color": "#fff"}]}', ["points[0]: missing 'y'"]),
    ('{"points": [{"x": 1, "y": 2}]}', ["points[0]: missing 'color'"]),
    ('{"points": [{"x": true, "y": 2, "color": "#fff"}]}', ["points[0].x: true is not a number"]),
    ('{"points": [{"x": "1", "y": 2, "color": "#fff"}]}', ["points[0].x: '1' is not a number"]),
    ('{"points": [{"x": 1, "y": NaN, "color": "#fff"}]}', ["points[0].y: NaN is not a finite number"]),
    ('{"points": [{"x": 1, "y": 1e999, "color": "#fff"}]}', ["points[0].y: inf is not a finite number"]),
    ('{"points": [{"x": -1, "y": 2, "color": "#fff"}]}', ["points[0].x: -1 is negative"]),
    ('{"points": [{"x": 1, "y": 2, "color": "fff"}]}', ["points[0].color: 'fff' is not a #rrggbb"]),
    ('{"points": [{"x": 1, "y": 2, "color": 16777215}]}', ["points[0].color: 16777215 is not a #rrggbb"]),
    ('{"points": [{"x": 1, "y": 2, "color": "#fff", "radius": -0.5}]}', ["points[0].radius: -0.5 is negative"]),
    ('{"points": [{"x": 1, "y": 2, "color": "#fff", "radius": null}]}', ["points[0].radius: null is not a number"]),
    ('{"reference": 3}', ["reference: 3 is not a path"]),
    ('{"reference": ""}', ["reference: '' is not a path"]),
    ('{"reference": "a\\u0000b"}', ["reference 'a\\x00b': not a valid path"]),
    ('{"reference": "line\\nbreak.png"}', ["reference 'line\\nbreak.png'", "no such file"]),
])
def test_each_problem_is_one_line_naming_the_file(tmp_path, document, parts):
    fails(write(tmp_path, document), *parts)


def test_a_reference_that_is_not_an_image(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture\n")
    fails(write(tmp_path, {"reference": "notes.txt"}), "reference 'notes.txt'", "not an image")
    (tmp_path / "photos").mkdir()
    fails(write(tmp_path, {"reference": "photos"}), "reference 'photos'", "folder")
    png(tmp_path / "ok.png")
    path = write(tmp_path, {"reference": "ok.png", "points": [{"x": 1, "y": 1, "color": "#fff", "radius": "big"}]})
    fails(path, "points[0].radius: 'big' is not a number")


def test_a_reference_is_relative_to_the_json_files_folder(tmp_path, monkeypatch):
    (tmp_path / "hints").mkdir()
    png(tmp_path / "ref.png")                                   # beside the working directory, not the file
    monkeypatch.chdir(tmp_path)
    fails(write(tmp_path / "hints", {"reference": "ref.png"}), "no such file")
    assert load_hints(write(tmp_path / "hints", {"reference": "../ref.png"})).reference == tmp_path / "ref.png"


# ---- points against the image ------------------------------------------------------------------

def test_check_inside(tmp_path):
    path = write(tmp_path, {"points": [{"x": 0, "y": 0, "color": "#fff"}, {"x": 99, "y": 79, "color": "#fff"}]})
    spec = load_hints(path)
    check_inside(spec, 100, 80, "photo.jpg")                   # the corner pixels are inside
    check_inside(HintSpec(), 1, 1)
    with pytest.raises(HintsFileError) as info:
        check_inside(spec, 99, 80, "photo.jpg")
    assert str(info.value) == f"{path}: point 1 (x 99, y 79) is outside the image photo.jpg (99 x 80 pixels)"
    with pytest.raises(HintsFileError) as info:
        check_inside(HintSpec((PointHint(2.5, 80.5, (0, 0, 0)),), source=path), 100, 80)
    assert str(info.value) == f"{path}: point 0 (x 2.5, y 80.5) is outside the image (100 x 80 pixels)"


def test_hints_file_for(tmp_path):
    photo = png(tmp_path / "cat.png")
    assert hints_file_for(photo) is None
    write(tmp_path, "{}", "cat.hints.json")
    assert hints_file_for(photo) == tmp_path / "cat.hints.json"
    assert hints_file_for(tmp_path / "dog.jpg") is None


# ---- properties ----------------------------------------------------------------------------------

def coordinates() -> st.SearchStrategy[float]:
    return st.one_of(st.integers(0, 100_000), st.floats(0, 1e9, allow_nan=False, allow_infinity=False))


@st.composite
def colors(draw) -> tuple[str, tuple[int, int, int]]:
    """(hex text, its rgb): '#rgb' or '#rrggbb', in any mix of cases."""
    if draw(st.booleans()):
        digits = draw(st.lists(st.integers(0, 15), min_size=3, max_size=3))
        rgb = tuple(d * 17 for d in digits)
        text = "".join(f"{d:x}" for d in digits)
    else:
        rgb = tuple(draw(st.lists(st.integers(0, 255), min_size=3, max_size=3)))
        text = "".join(f"{c:02x}" for c in rgb)
    cases = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "#" + "".join(c.upper() if up else c for c, up in zip(text, cases)), rgb


@st.composite
def documents(draw) -> tuple[dict, list[PointHint], bool]:
    """A valid hints document, its points, and whether it names the reference (ref.png)."""
    doc: dict = {}
    points = []
    if draw(st.booleans()):
        doc["points"] = []
        for _ in range(draw(st.integers(0, 5))):
            x, y = draw(coordinates()), draw(coordinates())
            text, rgb = draw(colors())
            point = {"x": x, "y": y, "color": text}
            radius = draw(st.none() | coordinates())
            if radius is not None:
                point["radius"] = radius
            keys = draw(st.permutations(list(point)))
            doc["points"].append({k: point[k] for k in keys})
            points.append(PointHint(float(x), float(y), rgb, None if radius is None else float(radius)))
    with_reference = draw(st.booleans())
    if with_reference:
        doc["reference"] = "ref.png"
    return doc, points, with_reference


@PROPERTY
@given(documents())
def test_a_valid_spec_reads_back_the_same(folder, case):
    doc, points, with_reference = case
    path = write(folder, doc, "valid.json")
    expected = HintSpec(tuple(points), (folder / "ref.png").resolve() if with_reference else None, path)
    assert load_hints(path) == expected
    assert parse_hints(json.loads(json.dumps(doc)), path, folder) == expected
    for p in expected.points:                                   # the exact numbers survive the trip
        assert isinstance(p.x, float) and isinstance(p.y, float) and math.isfinite(p.x)


JSON_LEAVES = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
               | st.sampled_from(["#fff", "#3a7d2c", "ref.png", "missing.png", "x", "points", "/", "."]))
ANY_JSON = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` three times in four, else ``bad`` (``good | bad`` would weigh each of bad's branches alike)."""
    return st.integers(0, 3).flatmap(lambda i: bad if i == 0 else good)


NUMBERISH = mostly(coordinates(), st.integers(-3, 3) | JSON_LEAVES)
COLORISH = mostly(colors().map(lambda c: c[0]), JSON_LEAVES)
ALMOST_POINT = mostly(
    st.fixed_dictionaries({"x": NUMBERISH, "y": NUMBERISH, "color": COLORISH}, optional={"radius": NUMBERISH}),
    st.fixed_dictionaries({}, optional={"x": NUMBERISH, "y": NUMBERISH, "color": COLORISH, "radius": NUMBERISH,
                                        "colour": COLORISH}) | JSON_LEAVES)
ALMOST_VALID = mostly(   # mostly near-valid documents, to reach every check of a point and of the reference
    st.fixed_dictionaries({}, optional={
        "points": mostly(st.lists(ALMOST_POINT, max_size=4), JSON_LEAVES),
        "reference": mostly(st.sampled_from(["ref.png", "./ref.png", "missing.png", "notes.txt", "..", "ref.png/x"]),
                            JSON_LEAVES)}),
    st.dictionaries(st.sampled_from(["points", "reference", "Points"]), JSON_LEAVES, max_size=3))


def check_any_value(folder: Path, value: object) -> None:
    """parse_hints(value), and load_hints of it written as JSON: a HintSpec or HintsFileError."""
    source = folder / "any.json"
    try:
        spec = parse_hints(value, source, folder)
    except HintsFileError as err:
        assert_message(err, source)
    else:
        assert isinstance(spec, HintSpec) and spec.source == source
    path = write(folder, json.dumps(value), "any.json")           # the same value, read from a file
    try:
        assert isinstance(load_hints(path), HintSpec)
    except HintsFileError as err:
        assert_message(err, path)


@PROPERTY
@given(ALMOST_VALID)
@example({"points": [{"x": 1.5, "y": 0, "color": "#ABC", "radius": 0}], "reference": "ref.png"})
def test_near_valid_documents_parse_or_raise_hints_file_error(folder, value):
    check_any_value(folder, value)


@PROPERTY
@given(ANY_JSON)
@example({"reference": "/"})
def test_any_json_value_parses_or_raises_hints_file_error(folder, value):
    check_any_value(folder, value)


@PROPERTY
@given(st.one_of(st.binary(max_size=64),
                 st.text(alphabet='{}[]":,0123456789.-eE tnrufalsNI#xyp\\', max_size=48).map(str.encode),
                 ALMOST_VALID.map(lambda v: json.dumps(v).encode())))
@example(b'{"points": [{"x": 1, "y": 2, "color": "#fff"}]}')
def test_any_bytes_parse_or_raise_hints_file_error(folder, data):
    path = write(folder, data, "bytes.json")
    try:
        assert isinstance(load_hints(path), HintSpec)
    except HintsFileError as err:
        assert_message(err, path)


def is_hex_color(text: str) -> bool:
    """The oracle, written independently of the parser's regular expression."""
    return len(text) in (4, 7) and text[0] == "#" and all(c in string.hexdigits for c in text[1:])


@PROPERTY
@given(st.one_of(st.text(max_size=9),
                 st.text(alphabet="#0123456789abcdefABCDEFgGxX \n\u0663\uff10", max_size=8),
                 colors().map(lambda c: c[0]),
                 colors().map(lambda c: " " + c[0]), colors().map(lambda c: c[0] + "\n"),
                 st.none(), st.booleans(), st.integers(), st.floats(), st.lists(st.text(max_size=3), max_size=3)))
@example("#fff")
@example("#FFFFFF")
@example("#0000000")
@example("#ggg")
def test_parse_color_accepts_exactly_the_hex_forms(text):
    if isinstance(text, str) and is_hex_color(text):
        digits = text[1:] if len(text) == 7 else "".join(c + c for c in text[1:])
        assert parse_color(text) == tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
    else:
        with pytest.raises(ValueError) as info:
            parse_color(text)
        assert "\n" not in str(info.value) and "is not a #rrggbb or #rgb color" in str(info.value)


@PROPERTY
@given(colors())
def test_parse_color_reads_the_components(case):
    text, rgb = case
    assert parse_color(text) == rgb and all(isinstance(c, int) and 0 <= c <= 255 for c in rgb)
