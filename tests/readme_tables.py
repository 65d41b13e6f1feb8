"""Read a table of README.md, for the tests that keep README's tables true."""

from __future__ import annotations

from tests.harness import ROOT

README = (ROOT / "README.md").read_text()


def table_after(heading: str) -> dict[str, list[str]]:
    """The first table after `heading`: first cell -> the other cells (header row left out)."""
    lines = README.split(heading, 1)[1].splitlines()[1:]
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


def readme_ui_example() -> dict:
    """The `ui` block README's "Reach the UI" shows (after its ui-example marker)."""
    import yaml

    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- ui-example -->", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)["airflow-aks:ui"]
