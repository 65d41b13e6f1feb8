"""Every relative link in README.md and docs/*.md reaches a file that exists and, with an anchor,
a heading of that file, as GitHub renders it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness import ROOT

FENCE = re.compile(r"^ *(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: the rendered text lower-cased, every character but
    letters, digits, `_`, `-` and spaces dropped, spaces made `-` (github-slugger, which GitHub's
    renderer follows: github.com/Flet/github-slugger, index.js and regex.js)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML renders no text of its own
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page has: its headings' (a repeated one gets -1, -2, ...) and explicit <a id>."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(text):
        heading = HEADING.match(line)
        if heading:
            base = slug(re.sub(r"`([^`]*)`", r"\1", heading.group(2)))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def links(text: str) -> list[str]:
    """The targets of a page's Markdown links outside code."""
    targets: list[str] = []
    for line in prose_lines(text):
        targets += LINK.findall(re.sub(r"`[^`]*`", "", line))
    return targets


def broken(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of `page` that reach no file, or no heading of the file they reach."""
    problems = []
    for target in links(page.read_text()):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no file {file.relative_to(root) if file.is_relative_to(root) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    assert broken(page) == [], f"{page.relative_to(ROOT)}: broken links"


@pytest.mark.parametrize(("heading", "anchor"), [
    ("airflow.cfg", "airflowcfg"),
    ("A task's start since remote task logs, StatsD and PgBouncer (bench/attribute, issue 23)",
     "a-tasks-start-since-remote-task-logs-statsd-and-pgbouncer-benchattribute-issue-23"),
    ("The control plane at 1,000 tasks and beyond", "the-control-plane-at-1000-tasks-and-beyond"),
    ("`ui` and the `[api]` section", "ui-and-the-api-section"),
    ("Start-up of a burst", "start-up-of-a-burst"),
    ("What `workerPool.vmSize` does", "what-workerpoolvmsize-does"),
    ("Some_key here", "some_key-here"),
])
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(re.sub(r"`([^`]*)`", r"\1", heading)) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor() -> None:
    assert anchors("# Page\n## Notes\n## Notes\n## Notes\n") == {"page", "notes", "notes-1", "notes-2"}


def test_headings_and_links_in_code_do_not_count() -> None:
    text = "## Real\n```sh\n# 1. a comment\n[x](nowhere.md)\n```\n`[y](nowhere.md)`\n"
    assert anchors(text) == {"real"} and links(text) == []


def test_the_check_catches_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n## Here\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Page\n## Mine\n[a](other.md#here) [b](other.md#gone) [c](missing.md) [d](#mine) [e](#nope) "
                    "[f](https://example.com/x#y) [g](../docs/other.md)\n")
    assert broken(page, tmp_path) == ["other.md#gone: no heading with anchor #gone in other.md",
                                      "missing.md: no file docs/missing.md",
                                      "#nope: no heading with anchor #nope in page.md"]
