"""Read README.md and the pages under docs/, for the tests that keep their figures true."""

from __future__ import annotations

import re

from tests.harness import ROOT

README = (ROOT / "README.md").read_text()


def doc(page: str) -> str:
    """The text of README.md or of a page under docs/ (``"docs/operations.md"``)."""
    return (ROOT / page).read_text()


def section(page: str, heading: str) -> str:
    """From `heading` (a whole line of `page`) to the next heading of the same or a higher level,
    code blocks included: a shell comment in a fenced block (`# 1. ...`) is no heading."""
    text = doc(page)
    level = len(heading.split(" ", 1)[0])
    assert f"\n{heading}\n" in f"\n{text}", f"{page} has no heading {heading!r}"
    after = f"\n{text}".split(f"\n{heading}\n", 1)[1]
    kept, fenced = [], False
    for line in after.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        kept.append(line)
    return "\n".join(kept)


def table_after(heading: str, page: str = "README.md") -> dict[str, list[str]]:
    """The first table after `heading` in `page`: first cell -> the other cells (header row left out)."""
    text = README if page == "README.md" else doc(page)
    assert heading in text, f"{page} has no {heading!r}"
    lines = text.split(heading, 1)[1].splitlines()[1:]
    rows: dict[str, list[str]] = {}
    header_seen = False
    for line in lines:
        if line.startswith("|"):
            if not header_seen or line.startswith("| ---"):
                header_seen = True
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        elif rows:
            break
    return rows


def readme_ui_example(page: str = "docs/user-guide.md") -> dict:
    """The `ui` block a page shows for "Reach the UI" (after its ui-example marker): the user guide's."""
    import yaml

    block = doc(page).split("<!-- ui-example -->", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)["airflow-aks:ui"]
