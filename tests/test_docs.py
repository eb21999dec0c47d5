"""The documentation's links: every relative link, image and #anchor in README.md, docs/*.md and
BENCHMARKS.md resolves, and README.md stays a front page.

Pure Python, no Markdown library: links and images are found with regular expressions outside code
(fenced blocks, indented blocks, inline code spans), headings give anchors by GitHub's rules
(lowercase; characters that are not letters, digits, spaces, hyphens or underscores dropped; spaces
to hyphens; a repeated slug gets -1, -2, ...). http(s) and mailto links are not followed.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# [text](target) and ![alt](target); the text may hold one level of brackets, the target may be
# <in angle brackets> and be followed by a "title"
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REF_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ATTR = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
HTML_ID = re.compile(r"<[a-z][^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)   # http:, https:, mailto:, ...


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text (before duplicates get their -N)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)    # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text)                            # HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)                           # \w: letters, digits, underscore
    return text.replace(" ", "-")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text with code blocks blanked (fenced, and indented after a blank line)."""
    out, fence, previous_blank, in_indented = [], None, True, False
    for line in text.split("\n"):
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            out.append("")
            continue
        if opening:
            fence = opening.group(1)
            out.append("")
            continue
        blank = not line.strip()
        indented = line.startswith(("    ", "\t"))
        if indented and not blank and (previous_blank or in_indented):
            in_indented = True
            out.append("")
            continue
        if not blank:
            in_indented = False
        previous_blank = blank
        out.append(line)
    return out


def anchors(text: str) -> set[str]:
    """Every #anchor a Markdown text defines: its headings' slugs (GitHub's rules) and HTML ids."""
    found, seen = set(), {}
    lines = prose_lines(text)

    def add(heading: str) -> None:
        base = slug(heading)
        if not base:
            return
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")

    for i, line in enumerate(lines):
        atx = ATX.match(line)
        if atx:
            add(atx.group(2) or "")
        elif SETEXT.match(line) and i > 0 and lines[i - 1].strip() and not ATX.match(lines[i - 1]) \
                and not lines[i - 1].lstrip().startswith(("|", "-", "*", "+", ">")):
            add(lines[i - 1])
        found.update(m.group(1) for m in HTML_ID.finditer(line))
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link and image in a Markdown text, outside code."""
    found = []
    for number, line in enumerate(prose_lines(text), 1):
        line = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for m in INLINE_LINK.finditer(line):
            found.append((number, m.group(2)))
        definition = REF_DEFINITION.match(line)
        if definition:
            found.append((number, definition.group(1)))
        found.extend((number, m.group(1)) for m in HTML_ATTR.finditer(line))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in found]


def broken_links(md_file: Path, cache: dict | None = None) -> list[str]:
    """One line per relative link of md_file whose file or #anchor does not exist."""
    cache = {} if cache is None else cache

    def anchors_of(path: Path) -> set[str]:
        if path not in cache:
            cache[path] = anchors(path.read_text(encoding="utf-8"))
        return cache[path]

    problems = []
    for number, target in links(md_file.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        path_part, fragment = unquote(path_part.split("?")[0]), unquote(fragment)
        where = f"{md_file.name}:{number}: {target}"
        destination = (md_file.parent / path_part).resolve() if path_part else md_file
        if not destination.exists():
            problems.append(f"{where}: no such file {path_part}")
            continue
        if fragment and destination.suffix.lower() in (".md", ".markdown") \
                and fragment not in anchors_of(destination):
            problems.append(f"{where}: no heading #{fragment} in {destination.name}")
    return problems


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    benchmarks = ROOT / "BENCHMARKS.md"
    return files + ([benchmarks] if benchmarks.exists() else [])


# --- the project's documentation ---------------------------------------------------------------

def test_every_relative_link_and_anchor_resolves():
    cache: dict = {}
    problems = [p for f in markdown_files() for p in broken_links(f, cache)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_docs_have_links_to_check():
    """The checker sees the links (a parser that found none would pass anything)."""
    readme_targets = [t for _, t in links((ROOT / "README.md").read_text(encoding="utf-8"))]
    assert "docs/hints-photos.jpg" in readme_targets
    assert any("#" in t for t in readme_targets)
    assert len(readme_targets) >= 10


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, \
        f"README.md: keep it to {README_MAX_LINES} lines; move detail to docs/"
    assert "docs/README.md" in [t for _, t in links(text)], "README.md must link docs/README.md, the index"


def test_the_index_links_every_docs_page():
    docs = ROOT / "docs"
    linked = {t.partition("#")[0] for _, t in links((docs / "README.md").read_text(encoding="utf-8"))}
    pages = {p.name for p in docs.glob("*.md")} - {"README.md"}
    assert pages <= linked, f"docs/README.md does not link {sorted(pages - linked)}"


# --- the checker itself -------------------------------------------------------------------------

def test_slug_follows_githubs_rules():
    assert slug("Training: `train.py`") == "training-trainpy"
    assert slug("Tell it the colors: hints") == "tell-it-the-colors-hints"
    assert (slug("effnet_unet: an ImageNet encoder and a colorful head")
            == "effnet_unet-an-imagenet-encoder-and-a-colorful-head")
    assert slug("Speed: `bench.py`, `--jit`, `--mixed-precision`") == "speed-benchpy---jit---mixed-precision"
    assert slug("A second, square view (2026-12-07)") == "a-second-square-view-2026-12-07"
    assert slug("Several GPUs or machines: `--strategy` (TensorFlow backend)") == \
        "several-gpus-or-machines---strategy-tensorflow-backend"
    assert slug("See [the index](docs/README.md)") == "see-the-index"


def test_anchors_number_duplicates_and_skip_code():
    text = ("# Title\n\n## Runs\n\n```\n# not a heading\n```\n\n    # nor this\n\n"
            "## Runs\n\n### Runs\n\nSetext\n------\n")
    assert anchors(text) == {"title", "runs", "runs-1", "runs-2", "setext"}


def test_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Tell it the colors: hints\n", encoding="utf-8")
    (tmp_path / "figure.png").write_bytes(b"")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Front\n\n## Results\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#tell-it-the-colors-hints) [ok](#results) ![ok](figure.png)\n"
        "[ok](https://example.com/nowhere.md#x) [ok](mailto:a@b.c) `[in code](missing.md)`\n\n"
        "    [indented code](missing.md)\n\n"
        "[bad file](docs/missing.md)\n"
        "[bad anchor](docs/page.md#tell-it-the-colours)\n"
        "[bad local anchor](#result)\n"
        "![bad image](figure.jpg)\n",
        encoding="utf-8")
    problems = broken_links(readme)
    assert len(problems) == 4, problems
    assert problems[0] == "README.md:10: docs/missing.md: no such file docs/missing.md"
    assert "no heading #tell-it-the-colours in page.md" in problems[1]
    assert "no heading #result in README.md" in problems[2]
    assert "no such file figure.jpg" in problems[3]
    (tmp_path / "docs" / "back.md").write_text("[up](../README.md#front) [up](../README.md#nope)\n", encoding="utf-8")
    assert broken_links(tmp_path / "docs" / "back.md") == [
        "back.md:1: ../README.md#nope: no heading #nope in README.md"]
