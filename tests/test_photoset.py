"""The real-photo evaluation set (evaluation/photoset.py, python dataset.py photos), offline: no network, no apt.

The Debian side runs on a small fake unpacked package of generated images; apt-get and dpkg-deb
are replaced by fakes (or taken off PATH) where a test needs them.
"""
from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dataset as script  # python dataset.py photos
from evaluation import photoset
from evaluation.photoset import DebPhoto, Entry, PhotoSetError

PKG = "lomiri-wallpapers-16.04"      # a name from PACKAGES, for the fake package
KDE_PKG = "plasma-workspace-wallpapers"

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake

Files: *
Copyright: 2014 Somebody Generic
License: GPL-2+

Files: 16.04/lake_by_Ann_Example.jpg
Copyright: Ann Example, 2018
License: CC-BY-4.0

Files: debian/*
Copyright: 2020 Packager
License: Expat

License: CC-BY-4.0
 Long license text
 .
 more of it
"""


def _image(path: Path, size: tuple[int, int], seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.fixture
def fake_package(tmp_path) -> Path:
    """An unpacked package: two backgrounds, a KDE wallpaper folder (one size a link), a copyright file."""
    root = tmp_path / "unpacked"
    _image(root / "usr/share/backgrounds/lake_by_Ann_Example.jpg", (64, 48), 1)
    _image(root / "usr/share/backgrounds/other.png", (40, 30), 2)
    kde = root / "usr/share/wallpapers/Pond/contents/images"
    _image(kde / "80x50.jpg", (80, 50), 3)
    (kde / "40x25.jpg").symlink_to("80x50.jpg")
    (root / "usr/share/wallpapers/Pond/metadata.json").write_text(json.dumps(
        {"KPlugin": {"Name": "Pond", "Authors": [{"Name": "Kim Photographer"}], "License": "LGPLv3"}}))
    doc = root / f"usr/share/doc/{PKG}"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    return root


SELECTION = [
    DebPhoto(PKG, "usr/share/backgrounds/lake_by_Ann_Example.jpg", "lake", (64, 48), "a lake"),
    DebPhoto(PKG, "usr/share/backgrounds/other.png", "other", (40, 30), "other"),
    DebPhoto(PKG, "usr/share/wallpapers/Pond/contents/images/80x50.jpg", "pond", (80, 50), "a pond"),
]


def _collect(root, out, selection=SELECTION, max_side=0):
    result, lines = photoset.Result(), []
    out.mkdir(exist_ok=True)
    photoset.collect_package(PKG, root, "1.0-1", selection, out, max_side, result, lines.append)
    return result, lines


def _entry(**changes) -> Entry:
    base = {"file": "src-a.jpg", "source": "src", "version": "1.0", "path": "usr/share/a.jpg", "width": 64,
            "height": 48, "description": "a thing", "author": "Ann | Example", "license": "CC-BY-4.0",
            "copyright": "Files: *\nCopyright: Ann\nLicense: CC-BY-4.0", "sha256": "00"}
    return Entry(**{**base, **changes})


# -- the manifest ----------------------------------------------------------------------------------

def test_manifest_round_trip(tmp_path):
    entries = [_entry(), _entry(file="skimage-b.png", source="skimage.data.b", width=10, height=20, copyright="")]
    photoset.write_manifest(tmp_path, entries)
    assert photoset.read_manifest(tmp_path) == sorted(entries, key=lambda e: e.file)
    doc = json.loads((tmp_path / photoset.MANIFEST).read_text())
    assert doc["count"] == 2 and {p["file"] for p in doc["photos"]} == {"src-a.jpg", "skimage-b.png"}
    assert not list(tmp_path.glob("*.tmp"))


def test_sources_markdown_lists_every_file(tmp_path):
    photoset.write_manifest(tmp_path, [_entry()])
    md = (tmp_path / photoset.SOURCES_MD).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| `src-a.jpg`"))
    assert "`usr/share/a.jpg`" in row and "64x48" in row and "1.0" in row and "CC-BY-4.0" in row
    assert "Ann \\| Example" in row                                  # a | in a cell does not break the table
    assert "    Copyright: Ann" in md                                 # the copyright lines, verbatim


def test_no_manifest_and_a_damaged_one(tmp_path):
    assert photoset.read_manifest(tmp_path) == []
    (tmp_path / photoset.MANIFEST).write_text("{not json")
    with pytest.raises(PhotoSetError, match=r"sources\.json: not a photo set manifest"):
        photoset.read_manifest(tmp_path)


# -- the selection on an unpacked package ----------------------------------------------------------

def test_selection_copies_the_original_bytes_with_their_sources(fake_package, tmp_path):
    out = tmp_path / "out"
    result, lines = _collect(fake_package, out)
    assert not result.failures
    assert sorted(p.name for p in out.iterdir()) == [f"{PKG}-lake.jpg", f"{PKG}-other.png", f"{PKG}-pond.jpg"]
    for photo in SELECTION:
        assert (out / photoset.output_name(PKG, photo.name, Path(photo.path))).read_bytes() == \
            (fake_package / photo.path).read_bytes()
    assert len(lines) == 3 and all(line.startswith("new") for line in lines)

    by_name = {e.file: e for e in result.entries}
    lake = by_name[f"{PKG}-lake.jpg"]
    assert (lake.source, lake.version, lake.size) == (PKG, "1.0-1", (64, 48))
    assert (lake.author, lake.license) == ("Ann Example, 2018", "CC-BY-4.0")   # the file's own paragraph
    assert "Files: 16.04/lake_by_Ann_Example.jpg\nCopyright: Ann Example, 2018\nLicense: CC-BY-4.0" in lake.copyright
    other = by_name[f"{PKG}-other.png"]
    assert (other.author, other.license) == ("2014 Somebody Generic", "GPL-2+")   # Files: *
    pond = by_name[f"{PKG}-pond.jpg"]
    assert (pond.author, pond.license) == ("Kim Photographer", "LGPLv3")        # KDE metadata.json wins
    assert "usr/share/wallpapers/Pond/metadata.json" in pond.copyright and "Files: *" in pond.copyright
    assert pond.sha256 == photoset.sha256(tmp_path / "out" / pond.file)


def test_no_copyright_file_points_at_where_it_would_be(fake_package, tmp_path):
    (fake_package / f"usr/share/doc/{PKG}/copyright").unlink()
    result, _ = _collect(fake_package, tmp_path / "out", SELECTION[:1])
    assert result.entries[0].copyright == f"see usr/share/doc/{PKG}/copyright"


def test_a_changed_package_is_one_line_per_photo(fake_package, tmp_path):
    selection = [DebPhoto(PKG, "usr/share/backgrounds/gone.jpg", "gone", (10, 10), "x"),
                 DebPhoto(PKG, SELECTION[0].path, "lake", (99, 99), "resized upstream"),
                 SELECTION[1]]
    result, _ = _collect(fake_package, tmp_path / "out", selection)
    assert [e.file for e in result.entries] == [f"{PKG}-other.png"]              # the rest is still built
    assert len(result.failures) == 2 and all("\n" not in f for f in result.failures)
    assert "usr/share/backgrounds/gone.jpg is not in the package" in result.failures[0]
    assert "is 64x48, expected 99x99" in result.failures[1]


def test_rerun_keeps_the_files(fake_package, tmp_path):
    out = tmp_path / "out"
    _collect(fake_package, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result, lines = _collect(fake_package, out)
    assert all(line.startswith("kept") for line in lines) and not result.new
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_max_side_shrinks_and_keeps_the_format(fake_package, tmp_path):
    out = tmp_path / "out"
    result, _ = _collect(fake_package, out, max_side=32)
    with Image.open(out / f"{PKG}-lake.jpg") as im:
        assert (im.format, im.size) == ("JPEG", (32, 24))
    with Image.open(out / f"{PKG}-other.png") as im:
        assert (im.format, im.size) == ("PNG", (32, 24))
    assert {e.file: e.size for e in result.entries}[f"{PKG}-pond.jpg"] == (32, 20)
    _, lines = _collect(fake_package, out)                 # back to full size: rewritten
    assert all(line.startswith("new") for line in lines)


def test_scaled_size():
    assert photoset.scaled_size((4000, 3000), 0) == (4000, 3000)
    assert photoset.scaled_size((4000, 3000), 1000) == (1000, 750)
    assert photoset.scaled_size((300, 600), 1000) == (300, 600)       # never enlarged


def test_copyright_patterns():
    assert photoset._pattern_matches("*", "usr/share/x.jpg")
    assert photoset._pattern_matches("16.04/x.jpg", "usr/share/backgrounds/x.jpg")   # upstream path
    assert not photoset._pattern_matches("debian/*", "usr/share/backgrounds/x.jpg")
    assert not photoset._pattern_matches("16.04/y.jpg", "usr/share/backgrounds/x.jpg")


# -- the selection lists themselves ----------------------------------------------------------------

def test_the_selection_is_consistent():
    names = [photoset.output_name(p.package, p.name, Path(p.path)) for p in photoset.DEB_PHOTOS] + \
            [photoset.output_name(p.library, p.name, Path(p.key)) for p in photoset.LIBRARY_PHOTOS]
    assert len(names) == len(set(names)), "two photos would get the same file name"
    assert {p.package for p in photoset.DEB_PHOTOS} <= set(photoset.PACKAGES)
    assert {p.library for p in photoset.LIBRARY_PHOTOS} == {"skimage", "sklearn", "matplotlib"}
    assert {source for source, _, _ in photoset.REJECTED} <= set(photoset.PACKAGES) | {"skimage", "matplotlib"}
    chosen = {(p.package, p.path) for p in photoset.DEB_PHOTOS} | {(p.library, p.key) for p in photoset.LIBRARY_PHOTOS}
    for source, pattern, reason in photoset.REJECTED:
        clash = [c for c in chosen if c[0] == source and fnmatch.fnmatchcase(c[1], pattern)
                 and not pattern.endswith("images/[0-9]*x*")]     # that one says: other sizes of chosen ones
        assert not clash, f"{pattern} is both chosen and rejected ({reason})"
        assert reason.split()[0] in {"render", "drawing", "grayscale", "duplicate", "abstract", "composite",
                                     "screenshot", "logo", "synthetic", "astronomy", "microscopy", "medical",
                                     "not"}
    assert 10 <= len(chosen) <= 40


def test_library_photos_are_their_files(tmp_path):
    """The skimage and matplotlib photos (offline, installed with the project) are copied byte for byte."""
    photos = [p for p in photoset.LIBRARY_PHOTOS if p.library in ("skimage", "matplotlib")]
    result, lines = photoset.Result(), []
    photoset.collect_library(photos, tmp_path, 0, result, lines.append)
    assert not result.failures and len(result.entries) == len(photos)
    for photo, entry in zip(photos, result.entries):
        original, source, _ = photoset.library_file(photo)
        assert (tmp_path / entry.file).read_bytes() == original.read_bytes()
        assert entry.size == photo.size and entry.source == source
    assert result.entries[0].source == "skimage.data.astronaut"


def test_a_missing_library_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)          # import sklearn -> ImportError
    photos = [p for p in photoset.LIBRARY_PHOTOS if p.library == "sklearn"]
    result = photoset.Result()
    photoset.collect_library(photos, tmp_path, 0, result, lambda line: None)
    assert result.failures == ["sklearn: cannot import sklearn (pip install scikit-learn)"]


# -- apt-get and dpkg-deb --------------------------------------------------------------------------

def _fake_run(returncode=0, stderr="", stdout=""):
    calls = []

    def run(cmd, cwd=None):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)
    return run, calls


def test_missing_apt_get_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PhotoSetError) as err:
        photoset.download_package(PKG, tmp_path / "debs")
    assert str(err.value).startswith(f"{PKG}: apt-get not found") and "\n" not in str(err.value)


def test_failed_download_names_the_package_and_apt_error(tmp_path):
    run, calls = _fake_run(100, stderr="Reading package lists...\nE: Failed to fetch http://deb/x.deb  Could not "
                                        "resolve 'deb.debian.org'\nE: Some files failed to download\n")
    with pytest.raises(PhotoSetError) as err:
        photoset.download_package(PKG, tmp_path / "debs", run, updated=[True])
    message = str(err.value)
    assert message.startswith(f"{PKG}: apt-get download failed: E: Failed to fetch") and "\n" not in message
    assert "E: Some files failed to download" in message
    assert calls[0][0] == "apt-get" and "download" in calls[0] and calls[0][-1] == PKG


def test_a_kept_deb_is_not_downloaded_again(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / f"{PKG}_1.0-1_all.deb").write_bytes(b"")
    run, calls = _fake_run(100)
    assert photoset.download_package(PKG, debs, run).name == f"{PKG}_1.0-1_all.deb" and not calls


def test_build_without_apt_builds_the_rest_and_reports_each_package(tmp_path, fake_package):
    run, _ = _fake_run(100, stderr="E: Unable to locate package x")
    selection = [DebPhoto(PKG, SELECTION[0].path, "lake", (64, 48), "a lake"),
                 DebPhoto(KDE_PKG, SELECTION[2].path, "pond", (80, 50), "a pond")]
    library = [p for p in photoset.LIBRARY_PHOTOS if p.name == "chelsea"]
    out = tmp_path / "set"
    result = photoset.build(out, report=lambda line: None, run=run, library_photos=library, deb_photos=selection)
    assert [e.file for e in result.entries] == ["skimage-chelsea.png"]
    assert [f.split(":")[0] for f in result.failures] == [PKG, KDE_PKG]
    assert all("E: Unable to locate package x" in f and "\n" not in f for f in result.failures)
    assert [e.file for e in photoset.read_manifest(out)] == ["skimage-chelsea.png"]
    assert "1 photos in" in photoset.summary(result, out) and "2 source(s) failed" in photoset.summary(result, out)


def test_build_unpacks_and_then_keeps_without_downloading(tmp_path, fake_package):
    """A fake apt-get/dpkg-deb around the fake package: the first build unpacks it, the second needs nothing."""
    calls = []

    def run(cmd, cwd=None):
        calls.append(cmd[:2])
        if cmd[:2] == ["dpkg-deb", "-x"]:
            shutil.copytree(fake_package, cmd[3], symlinks=True, dirs_exist_ok=True)
        elif cmd[0] == "dpkg-deb":
            return subprocess.CompletedProcess(cmd, 0, "1.0-1\n", "")
        else:
            (Path(cwd) / f"{PKG}_1.0-1_all.deb").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    out = tmp_path / "set"
    kwargs = {"report": lambda line: None, "run": run, "library_photos": (), "deb_photos": SELECTION[:2]}
    first = photoset.build(out, **kwargs)
    assert first.ok and sorted(first.new) == [f"{PKG}-lake.jpg", f"{PKG}-other.png"]
    assert [e.version for e in photoset.read_manifest(out)] == ["1.0-1", "1.0-1"]
    calls.clear()
    second = photoset.build(out, **kwargs)
    assert second.ok and not second.new and not calls                # nothing downloaded
    assert [e.author for e in second.entries] == [e.author for e in first.entries]

    failing, _ = _fake_run(100, stderr="E: no network")          # one more photo: a download, which fails
    third = photoset.build(out, **{**kwargs, "run": failing, "deb_photos": SELECTION})
    assert third.failures == [f"{PKG}: apt-get download failed: E: no network"]
    assert sorted(e.file for e in photoset.read_manifest(out)) == [f"{PKG}-lake.jpg", f"{PKG}-other.png"]


def test_a_package_outside_the_list_is_refused(tmp_path):
    with pytest.raises(PhotoSetError, match="not one of the set's packages"):
        photoset.build(tmp_path, report=lambda line: None, library_photos=(),
                       deb_photos=[DebPhoto("some-other-wallpapers", "a.jpg", "a", (1, 1), "")])


# -- the script ------------------------------------------------------------------------------------

def test_script_exit_code_and_one_line_errors(tmp_path, monkeypatch, capsys):
    def fake_build(out, max_side, keep_debs, report):
        report("new   skimage-a.png")
        return photoset.Result(entries=[_entry(file="skimage-a.png")], new=["skimage-a.png"],
                               failures=[f"{PKG}: apt-get download failed: E: no network"])
    monkeypatch.setattr(photoset, "build", fake_build)
    assert script.main(["photos", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: {PKG}: apt-get download failed: E: no network\n"
    assert "new   skimage-a.png" in captured.out and "1 photos in" in captured.out


def test_script_rejects_a_negative_max_side(capsys):
    with pytest.raises(SystemExit) as exit_:
        script.parse_args(["photos", "--max-side", "-1"])
    assert exit_.value.code == 2 and "--max-side" in capsys.readouterr().err
