"""The image's Python packages (issue 25): app/requirements.txt (the team's), the platform's
and one constraints file per Airflow version, installed by one pip command in the image and in
./venv-airflow; an airflowVersion without constraints is refused; a version bump or a changed
set rebuilds the image; pip's own resolver (real, against the index) takes the set and refuses
a conflicting pin with its message."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from components.azure import image
from components.model import python_packages as pp
from components.model.settings import DEFAULTS, ConfigError, parse_settings
from tests import readme_tables
from tests.harness import ROOT, ProgramRun, shared_run, stack_file_config
from tests.preview import preview
from tests.real_airflow import airflow_python
from tests.test_image_context import docker_build_context_hash

APP_DIR = ROOT / "app"
VERSIONS = pp.constraints_versions()
DEFAULT = DEFAULTS["airflowVersion"]


def constraints_text(version: str) -> str:
    return pp.constraints_file(version).read_text()


# The files and the one pip command ---------------------------------------------------------------


def test_the_dockerfile_installs_the_three_files_with_one_pip_command() -> None:
    dockerfile = (APP_DIR / "Dockerfile").read_text()
    assert f"ARG PYTHON_VERSION={pp.PYTHON_VERSION}\n" in dockerfile
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}\n" in dockerfile
    assert "COPY platform-requirements.txt requirements.txt /tmp/requirements/\n" in dockerfile
    assert "COPY constraints/constraints-${AIRFLOW_VERSION}.txt /tmp/requirements/constraints.txt\n" in dockerfile
    # The RUN line, continuation lines joined, with the copied paths mapped back to app/'s.
    run = re.search(r"^RUN pip install --no-cache-dir (.*?[^\\])$", dockerfile, re.M | re.S)
    assert run is not None
    args = run.group(1).replace("\\\n", " ").replace('"', "").split()
    copied = {"/tmp/requirements/platform-requirements.txt": str(APP_DIR / pp.PLATFORM_REQUIREMENTS),
              "/tmp/requirements/requirements.txt": str(APP_DIR / pp.REQUIREMENTS),
              "/tmp/requirements/constraints.txt": str(pp.constraints_file("${AIRFLOW_VERSION}"))}
    assert [copied.get(a, a) for a in args] == pp.install_args("${AIRFLOW_VERSION}")


def test_scripts_install_builds_venv_airflow_from_the_same_arguments() -> None:
    install = (ROOT / "scripts" / "install").read_text()
    assert "install_args(sys.argv[1])" in install and '-m pip install --quiet "${pip_args[@]}"' in install
    assert "tests/airflow" not in install


def test_the_team_file_holds_no_platform_package() -> None:
    # The split: a team edits app/requirements.txt only, and what the platform needs is
    # not there to be removed by mistake.
    team = pp.requirement_names((APP_DIR / pp.REQUIREMENTS).read_text())
    platform = pp.requirement_names((APP_DIR / pp.PLATFORM_REQUIREMENTS).read_text())
    assert platform and not set(team) & set(platform)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_platform_package_is_pinned_by_each_constraints_file_at_its_own_pin(version: str) -> None:
    platform_text = (APP_DIR / pp.PLATFORM_REQUIREMENTS).read_text()
    constraints = pp.pins(constraints_text(version))
    for name in pp.requirement_names(platform_text):
        assert name in constraints, f"constraints-{version}.txt does not pin {name}"
    for name, pin in pp.pins(platform_text).items():
        assert constraints[name] == pin, f"{name}: platform {pin}, constraints-{version}.txt {constraints[name]}"
    assert constraints["apache-airflow"] == version


@pytest.mark.parametrize("version", VERSIONS)
def test_each_constraints_file_says_it_is_for_the_images_python(version: str) -> None:
    assert pp.header_python(constraints_text(version)) == pp.PYTHON_VERSION


def test_venv_airflow_runs_the_images_python_and_the_default_versions_set() -> None:
    python = airflow_python()
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True,
                            text=True, check=True).stdout
    installed = {pp.normalized(p["name"]): p["version"] for p in json.loads(listed)}
    wanted = pp.pins(constraints_text(DEFAULT))
    assert {n: installed.get(n) for n in wanted} == wanted, "scripts/install: venv-airflow is not the image's set"
    version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == pp.PYTHON_VERSION


# airflowVersion needs a constraints file -------------------------------------------------------


def test_the_default_airflow_version_has_constraints() -> None:
    assert DEFAULT in VERSIONS


def test_an_airflow_version_without_constraints_is_refused_naming_the_key_and_listing_those_with() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"airflowVersion": "3.2.2"}, stack="test", location="westeurope")
    problems = dict(err.value.problems)
    assert set(problems) == {"airflowVersion"}
    message = problems["airflowVersion"]
    assert "app/constraints/constraints-3.2.2.txt" in message and "scripts/constraints 3.2.2" in message
    assert f"versions with one: {', '.join(VERSIONS)}." in message


def test_the_program_stops_before_declaring_anything_without_constraints() -> None:
    run = shared_run("prod", {**stack_file_config("prod"), "airflow-aks:airflowVersion": "3.2.2"})
    assert run.error is not None and "airflowVersion" in str(run.error)
    assert not run.resources


def test_constraints_versions_reads_the_files_names(tmp_path: Path) -> None:
    (tmp_path / pp.CONSTRAINTS_DIR).mkdir()
    for name in ("constraints-3.10.0.txt", "constraints-3.9.1.txt", "constraints-x.txt", "notes.txt"):
        (tmp_path / pp.CONSTRAINTS_DIR / name).write_text("")
    assert pp.constraints_versions(tmp_path) == ["3.9.1", "3.10.0"]


# A bump or a changed set rebuilds the image ------------------------------------------------------


def prod_run(version: str) -> ProgramRun:
    run = shared_run("prod", {**stack_file_config("prod"), "airflow-aks:airflowVersion": version})
    assert run.error is None, run.error
    return run


@pytest.mark.skipif(len(VERSIONS) < 2, reason="needs two Airflow versions with constraints")
def test_an_airflow_version_bump_rebuilds_the_image_with_the_new_constraints() -> None:
    old, new = VERSIONS[-2], VERSIONS[-1]
    before, after = prod_run(old), prod_run(new)
    images = [r.one("docker-build:index:Image").inputs for r in (before, after)]
    assert [i["buildArgs"] for i in images] == [{"AIRFLOW_VERSION": old}, {"AIRFLOW_VERSION": new}]
    # A changed build is an update that rebuilds and pushes (pulumi-docker-build image.go, Diff).
    steps = preview(before, after)
    assert any(s.op == "update" and s.type == "docker-build:index:Image" for s in steps.steps), steps.steps
    # The Dockerfile COPYs constraints/constraints-${AIRFLOW_VERSION}.txt: the file is in the
    # context the program prepared for docker-build.
    context = ROOT / images[1]["context"]["location"]
    assert (context / pp.CONSTRAINTS_DIR / f"constraints-{new}.txt").read_bytes() == \
        pp.constraints_file(new).read_bytes()


def test_a_changed_package_set_changes_the_build_context_hash(tmp_path: Path) -> None:
    # docker-build rebuilds when its context hash changes (provider/internal/context.go);
    # the local target tags with the program's own hash of the context.
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    hashes, revisions = [], []
    for edit in (None, "requirements", "constraints"):
        if edit == "requirements":
            (app / pp.REQUIREMENTS).write_text((app / pp.REQUIREMENTS).read_text() + "pandas==2.3.3\n")
        elif edit == "constraints":
            path = pp.constraints_file(DEFAULT, app)
            path.write_text(path.read_text() + "pandas==2.3.3\n")
        hashes.append(docker_build_context_hash(app, app / "Dockerfile"))
        revisions.append(image.context_revision(app))
    assert len(set(hashes)) == 3 and len(set(revisions)) == 3


# pip's resolver on the real index ---------------------------------------------------------------

# Measured on the 2-core machine with pip's HTTP cache warm: the image's set in 14.5 s, each
# conflict under 1 s (pip stops at the first impossible pin). A cold cache fetches the index
# pages and metadata of about 220 packages first.
RESOLVE_TIMEOUT = 120


def resolve(version: str, requirements: Path | None = None, report: Path | None = None) -> \
        subprocess.CompletedProcess[str]:
    """pip's resolution of the image's set (app/Dockerfile's arguments), installing nothing:
    --ignore-installed so that ./venv-airflow's packages do not stand in for the resolution."""
    command = [str(airflow_python()), "-m", "pip", "install", "--dry-run", "--ignore-installed",
               *(["--quiet", "--report", str(report)] if report else []),
               *pp.install_args(version, requirements=requirements)]
    return subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT, cwd=ROOT)


@pytest.mark.real
def test_pip_resolves_the_images_set_to_exactly_the_constraints(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    started = time.monotonic()
    done = resolve(DEFAULT, report=report)
    print(f"resolved apache-airflow=={DEFAULT} with the platform's and the team's packages "
          f"in {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    resolved: dict[str, Any] = {pp.normalized(i["metadata"]["name"]): i["metadata"]["version"]
                                for i in json.loads(report.read_text())["install"]}
    # Every package the image installs is pinned (nothing floats), and the file holds
    # nothing the image does not install (scripts/constraints keeps it so).
    assert resolved == pp.pins(constraints_text(DEFAULT))


CONFLICTS = {
    # The platform's pin and the constraints both hold celery at 5.6.3.
    "an old celery": ("celery==5.3.6", "celery"),
    # Only the constraints hold requests: a team's pin below them is refused too.
    "an old requests": ("requests==2.31.0", "requests"),
}


@pytest.mark.real
@pytest.mark.parametrize("pin,package", CONFLICTS.values(), ids=CONFLICTS.keys())
def test_a_conflicting_pin_fails_with_pips_message_naming_the_package(tmp_path: Path, pin: str,
                                                                      package: str) -> None:
    team = tmp_path / "requirements.txt"
    team.write_text((APP_DIR / pp.REQUIREMENTS).read_text() + pin + "\n")
    done = resolve(DEFAULT, requirements=team)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "ResolutionImpossible" in out
    assert f"The user requested {pin}" in out
    assert f"The user requested (constraint) {package}=={pp.pins(constraints_text(DEFAULT))[package]}" in out


def test_the_user_guide_states_the_sets_size_and_the_versions_with_constraints() -> None:
    section = readme_tables.section("docs/user-guide.md", "## Add Python packages")
    assert f"every package of that set ({len(pp.pins(constraints_text(DEFAULT)))} for {DEFAULT})" in section
    listed = " and ".join([", ".join(VERSIONS[:-1]), VERSIONS[-1]] if len(VERSIONS) > 1 else VERSIONS)
    assert f"listing the versions that have one ({listed} today" in section
    assert f"apache/airflow:<airflowVersion>-python{pp.PYTHON_VERSION}" in section
