"""Catalogues pinned in the repository: what stack config is checked against.

Each is a JSON file next to this module with a header naming its source, the
date it was retrieved and the command that regenerates it (scripts/catalogues):

- ``aks-regions.json``: Azure region names (and their display names) for
  ``azure-native:location``;
- ``airflow-releases.json``: every apache-airflow 3.x release on the package index;
- ``airflow-config-<version>.json``: every section and option of airflow.cfg for
  that Airflow version with the providers the image installs, and Airflow's own
  maps of deprecated (renamed or moved) options and sections.

Pure Python and read-only: the loaders cache what they read.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATALOGUE_DIR = Path(__file__).resolve().parent
REGIONS_FILE = "aks-regions.json"
RELEASES_FILE = "airflow-releases.json"
_CONFIG_RE = re.compile(r"^airflow-config-(\d+\.\d+\.\d+)\.json$")


def config_file(airflow_version: str, directory: Path = CATALOGUE_DIR) -> Path:
    """The airflow.cfg catalogue of an Airflow version (which may not exist)."""
    return directory / f"airflow-config-{airflow_version}.json"


def version_key(version: str) -> tuple[int, ...]:
    """'3.10.1' sorts after '3.9.9'."""
    return tuple(int(n) for n in version.split("."))


def load(name: str, directory: Path = CATALOGUE_DIR) -> dict[str, Any]:
    """A catalogue file as written, header included."""
    data: dict[str, Any] = json.loads((directory / name).read_text())
    return data


@functools.cache
def aks_regions() -> dict[str, str]:
    """Region name -> display name, e.g. 'westeurope' -> 'West Europe'."""
    return dict(load(REGIONS_FILE)["regions"])


@functools.cache
def airflow_releases() -> tuple[str, ...]:
    """apache-airflow 3.x releases on the package index, oldest first."""
    return tuple(sorted(load(RELEASES_FILE)["releases"], key=version_key))


@functools.cache
def config_versions() -> tuple[str, ...]:
    """The Airflow versions with an airflow.cfg catalogue, oldest first."""
    found = [m.group(1) for p in CATALOGUE_DIR.glob("airflow-config-*.json") if (m := _CONFIG_RE.match(p.name))]
    return tuple(sorted(found, key=version_key))


@dataclass(frozen=True)
class AirflowConfigCatalogue:
    """airflow.cfg as one Airflow version (with the image's providers) describes it."""

    airflow_version: str
    sections: dict[str, frozenset[str]]
    # (old section, old option) -> (new section, new option, the Airflow version that moved it)
    deprecated_options: dict[tuple[str, str], tuple[str, str, str]]
    # old section -> (new section, the Airflow version that moved it)
    deprecated_sections: dict[str, tuple[str, str]]

    def has(self, section: str, option: str) -> bool:
        return option in self.sections.get(section, frozenset())


@functools.cache
def airflow_config(airflow_version: str) -> AirflowConfigCatalogue | None:
    """The catalogue of an Airflow version; None: there is none."""
    path = config_file(airflow_version)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    deprecated: dict[tuple[str, str], tuple[str, str, str]] = {}
    for old, (new_section, new_option, since) in data["deprecated_options"].items():
        section, option = old.split(".", 1)
        deprecated[(section, option)] = (new_section, new_option, since)
    return AirflowConfigCatalogue(
        airflow_version=data["airflow_version"],
        sections={s: frozenset(opts) for s, opts in data["sections"].items()},
        deprecated_options=deprecated,
        deprecated_sections={old: (new, since) for old, (new, since) in data["deprecated_sections"].items()},
    )


def closest(word: str, candidates: object, cutoff: float = 0.6) -> str | None:
    """The candidate a typo most likely meant, if any is close enough."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)  # type: ignore[call-overload]
    return found[0] if found else None


def normalized_region(name: str) -> str:
    """A display name as Azure's region name: 'West Europe' -> 'westeurope'."""
    return re.sub(r"\s+", "", name).lower()


def region_problem(location: str) -> str | None:
    """Why azure-native:location is not a region name of the catalogue (None: it is)."""
    regions = aks_regions()
    if location in regions:
        return None
    fix = "`pulumi config set azure-native:location {}`"
    name = normalized_region(location)
    if name in regions:
        return (f"{location!r} is a display name; Azure's region name is '{name}': "
                + fix.format(name))
    by_display = {normalized_region(d): n for n, d in regions.items()}
    close = closest(name, regions) or by_display.get(closest(name, by_display) or "")
    hint = f"did you mean '{close}'? {fix.format(close)}. " if close else ""
    return (f"{location!r} is not an Azure region where AKS runs; {hint}The regions are those of "
            f"components/model/catalogues/{REGIONS_FILE} (retrieved {load(REGIONS_FILE)['retrieved']}); "
            "a region added since: `scripts/catalogues regions`")
