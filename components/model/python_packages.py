"""The Airflow image's Python packages: the files that hold them and the pip command that installs them.

Three files in app/, the image's build context:

- ``requirements.txt``: the team's packages, the one file a team edits;
- ``platform-requirements.txt``: what the platform itself runs (Celery, the providers
  airflow.cfg names);
- ``constraints/constraints-<airflowVersion>.txt``: the pinned set for that Airflow version
  on ``PYTHON_VERSION``, one file per version the program can deploy.

app/Dockerfile installs them with ``pip install <install_args(version)>``; scripts/install
installs ./venv-airflow, which the real-Airflow tests run, with the same arguments, and
scripts/constraints writes a constraints file by resolving them. Airflow publishes its own
constraints per release, but on GitHub (raw.githubusercontent.com), which this project's
machines cannot reach, and for a wider set (every provider); the files here hold exactly the
set the image installs, resolved by pip.
"""

from __future__ import annotations

import re
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[2] / "app"
PLATFORM_REQUIREMENTS = "platform-requirements.txt"
REQUIREMENTS = "requirements.txt"
CONSTRAINTS_DIR = "constraints"
# The Python the constraints are resolved on and the image runs (app/Dockerfile's
# PYTHON_VERSION; a test keeps the two, each file's header and ./venv-airflow in step).
PYTHON_VERSION = "3.11"

_CONSTRAINTS_RE = re.compile(r"^constraints-(\d+\.\d+\.\d+)\.txt$")
# A requirement line's name, extras aside: "psycopg[binary]==3.3.9" -> "psycopg".
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def constraints_file(airflow_version: str, app_dir: Path = APP_DIR) -> Path:
    """The constraints file for an Airflow version (which may not exist)."""
    return app_dir / CONSTRAINTS_DIR / f"constraints-{airflow_version}.txt"


def constraints_versions(app_dir: Path = APP_DIR) -> list[str]:
    """The Airflow versions with a constraints file in app_dir, oldest first."""
    found = [m.group(1) for p in (app_dir / CONSTRAINTS_DIR).glob("constraints-*.txt")
             if (m := _CONSTRAINTS_RE.match(p.name))]
    return sorted(found, key=lambda v: tuple(int(n) for n in v.split(".")))


def install_args(airflow_version: str, app_dir: Path = APP_DIR, requirements: Path | None = None) -> list[str]:
    """pip install's arguments for the image's set: Airflow, the platform's and the team's packages,
    held by the version's constraints. ``requirements`` stands in for the team's file (tests)."""
    return [f"apache-airflow=={airflow_version}",
            "-r", str(app_dir / PLATFORM_REQUIREMENTS),
            "-r", str(requirements or app_dir / REQUIREMENTS),
            "-c", str(constraints_file(airflow_version, app_dir))]


def normalized(name: str) -> str:
    """A distribution name as pip compares it (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """The ``name==version`` lines of a requirements or constraints text, by normalized name."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        spec, sep, version = line.partition("==")
        m = _NAME_RE.match(spec)
        if sep and m:
            found[normalized(m.group(1))] = version.strip()
    return found


def requirement_names(text: str) -> list[str]:
    """The normalized names a requirements text asks for, pinned or not."""
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and (m := _NAME_RE.match(line)):
            names.append(normalized(m.group(1)))
    return names


def header_python(text: str) -> str | None:
    """The Python a constraints file says it was resolved on ("... on Python 3.11 ..." in its first line)."""
    first = text.splitlines()[0] if text else ""
    m = re.search(r"on Python (\d+\.\d+)\b", first)
    return m.group(1) if m else None
