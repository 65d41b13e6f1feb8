"""Releases: the version, CHANGELOG.md with an upgrade note per release, and the tags."""

from __future__ import annotations

import re
import subprocess

from components import __version__
from tests.harness import ROOT
from tests.test_upgrade import RELEASES

CHANGELOG = (ROOT / "CHANGELOG.md").read_text()
RELEASE_HEADING = re.compile(r"^## (\d+\.\d+\.\d+) \((\d{4}-\d{2}-\d{2})\)$", re.MULTILINE)


def releases() -> list[tuple[str, str, str]]:
    """(version, date, text) of each release, newest first."""
    found = list(RELEASE_HEADING.finditer(CHANGELOG))
    return [(m.group(1), m.group(2), CHANGELOG[m.end():found[i + 1].start() if i + 1 < len(found) else None])
            for i, m in enumerate(found)]


def test_the_newest_release_is_this_version() -> None:
    assert releases(), "CHANGELOG.md names no release"
    assert releases()[0][0] == __version__, "components.__version__ and CHANGELOG.md's newest release"


def test_releases_are_newest_first_and_each_says_how_to_upgrade_to_it() -> None:
    versions = [tuple(int(p) for p in v.split(".")) for v, _, _ in releases()]
    assert versions == sorted(versions, reverse=True), "newest first"
    for version, _, text in releases()[:-1]:  # the first release had nothing to upgrade from
        assert "### Upgrade from" in text, f"{version}: no upgrade note"


def test_the_previous_release_is_the_state_the_upgrade_test_previews() -> None:
    previous = releases()[1][0]
    assert f"v{previous}" in RELEASES, f"tests/test_upgrade.py previews against v{previous}"
    commit = RELEASES[f"v{previous}"]
    assert f"commit {commit[:7]}" in releases()[1][2], f"CHANGELOG.md names v{previous}'s commit"
    tag = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"v{previous}^{{commit}}"],
                         capture_output=True, text=True, check=False).stdout.strip()
    # A clone may come without tags; where the tag is there it must be that commit.
    assert tag in ("", commit), f"tag v{previous} is {tag}, CHANGELOG.md and the upgrade test say {commit}"


def test_the_stack_exports_the_version(runs: dict) -> None:
    assert runs["prod"].outputs["programVersion"] == __version__
