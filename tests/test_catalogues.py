"""Stack config is checked against pinned catalogues (components/model/catalogues): Azure
regions, apache-airflow releases, airflow.cfg options. Each mistake is refused with its key
and the fix; each catalogue names its source and date; the script reproduces them."""

from __future__ import annotations

import configparser
import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.config import stack_config_from_file
from components.model import catalogues
from components.model.airflow_cfg import SECRET_ENV, worker_cfg_env
from components.model.python_packages import constraints_versions
from components.model.settings import ConfigError, parse_settings
from tests.test_settings import parse, problems_of

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_PYTHON = ROOT / "venv-airflow" / "bin" / "python"


def aks_problems(location: str, **values: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse_settings(values, stack="test", location=location)
    return dict(err.value.problems)


# --- 1. azure-native:location ------------------------------------------------------------

def test_misspelt_region_is_refused_with_the_region_meant() -> None:
    why = aks_problems("westeurpoe")["azure-native:location"]
    assert "not an Azure region where AKS runs" in why, why
    assert "did you mean 'westeurope'?" in why, "the message names the region meant"
    assert "pulumi config set azure-native:location westeurope" in why, "the message gives the command"


def test_display_name_is_refused_with_the_region_name_to_set() -> None:
    why = aks_problems("West Europe")["azure-native:location"]
    assert "display name" in why and "'westeurope'" in why, why


def test_known_regions_are_accepted_and_local_stacks_have_none() -> None:
    for region in ("westeurope", "eastus", "swedencentral", "italynorth"):
        assert parse_settings({}, stack="t", location=region).location == region
    assert parse_settings({"target": "local"}, stack="t", location=None).location is None


# --- 2. airflowVersion --------------------------------------------------------------------

def test_a_version_that_is_no_airflow_release_says_so() -> None:
    why = problems_of(airflowVersion="3.9.9")["airflowVersion"]
    assert "'3.9.9' is not an apache-airflow release" in why, why
    newest = catalogues.airflow_releases()[-1]
    assert f"the newest is {newest}" in why, "the message names the newest release"
    assert "can deploy 3.3.1, 3.3.2" in why, "the message lists the releases with a constraints file"
    assert "no constraints file" not in why, "not the message for a real release without constraints"


def test_a_real_release_without_constraints_keeps_its_message() -> None:
    why = problems_of(airflowVersion="3.2.2")["airflowVersion"]
    assert "has no constraints file" in why and "scripts/constraints 3.2.2" in why, why


# --- 3-5. airflowConfig -------------------------------------------------------------------

def test_misspelt_section_is_refused_with_the_section_meant() -> None:
    problems = problems_of(airflowConfig={"schedular": {"parsing_cleanup_interval": 60}})
    assert list(problems) == ["airflowConfig.schedular"], "one problem, for the section"
    assert "unknown section" in problems["airflowConfig.schedular"]
    assert "did you mean 'scheduler'?" in problems["airflowConfig.schedular"]


def test_misspelt_managed_option_names_it_then_its_key() -> None:
    why = problems_of(airflowConfig={"celery": {"worker_concurency": 8}})["airflowConfig.celery.worker_concurency"]
    assert "did you mean 'worker_concurrency'?" in why, why
    assert "set by the program" in why and "`workerConcurrency`" in why, "the option meant is managed: say so"


def test_misspelt_option_suggests_the_option_meant() -> None:
    why = problems_of(airflowConfig={"core": {"dagbag_import_timout": 60}})["airflowConfig.core.dagbag_import_timout"]
    assert "did you mean 'dagbag_import_timeout'?" in why and "set by the program" not in why, why


@pytest.mark.parametrize(("section", "option", "replacement"), [
    ("scheduler", "dag_dir_list_interval", "[dag_processor] refresh_interval"),
    ("webserver", "base_url", "[api] base_url"),
    ("webserver", "web_server_port", "[api] port"),
    ("scheduler", "running_metrics_interval", "[scheduler] ti_metrics_interval"),
])
def test_option_airflow_moved_names_its_replacement(section: str, option: str, replacement: str) -> None:
    why = problems_of(airflowConfig={section: {option: "1"}})[f"airflowConfig.{section}.{option}"]
    assert f"replaced it with {replacement}" in why, why


def test_moved_option_whose_replacement_is_managed_says_so() -> None:
    why = problems_of(airflowConfig={"webserver": {"workers": 4}})["airflowConfig.webserver.workers"]
    assert "[api] workers" in why and "set by the program" in why, why


def test_real_options_still_pass_through() -> None:
    s = parse(airflowConfig={"scheduler": {"parsing_cleanup_interval": 120},
                             "celery_broker_transport_options": {"visibility_timeout": 7200}})
    assert s.airflow_config["scheduler"] == {"parsing_cleanup_interval": "120"}
    assert "celery_broker_transport_options" in s.airflow_config, "a provider's section is in the catalogue"


def test_every_problem_is_still_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"airflowVersion": "3.9.9", "airflowConfig": {"schedular": {"x": 1}}},
                       stack="t", location="westeurpoe")
    keys = [k for k, _ in err.value.problems]
    # Without a version there is no catalogue: the section is not checked against one.
    assert keys == ["airflowVersion", "azure-native:location"], keys


# --- the catalogues themselves ------------------------------------------------------------

@pytest.mark.parametrize("name", [catalogues.REGIONS_FILE, catalogues.RELEASES_FILE,
                                  *(catalogues.config_file(v).name for v in catalogues.config_versions())])
def test_each_catalogue_names_its_source_date_and_generator(name: str) -> None:
    data = catalogues.load(name)
    assert data["source"], f"{name} names its source"
    assert datetime.date.fromisoformat(data["retrieved"]) <= datetime.date.today(), \
        f"{name} says when it was retrieved"
    assert "scripts/catalogues" in data["generated_by"], f"{name} names the command that regenerates it"
    path = catalogues.CATALOGUE_DIR / name
    assert path.read_text() == json.dumps(data, indent=1, sort_keys=True) + "\n", f"{name} is sorted"


def test_region_catalogue_holds_the_usual_regions() -> None:
    regions = catalogues.aks_regions()
    assert len(regions) > 50
    assert regions["westeurope"] == "West Europe" and regions["eastus"] == "East US"
    assert all(catalogues.normalized_region(d) == n for n, d in regions.items()), "names are normalized display names"


def test_release_catalogue_holds_the_3x_releases() -> None:
    releases = catalogues.airflow_releases()
    assert {"3.0.0", "3.3.1", "3.3.2"} <= set(releases)
    assert all(r.startswith("3.") for r in releases), "3.x only"


def test_every_version_with_constraints_has_a_config_catalogue() -> None:
    for version in constraints_versions():
        catalogue = catalogues.airflow_config(version)
        assert catalogue is not None, f"no {catalogues.config_file(version).name} for constraints-{version}.txt"
        assert catalogue.airflow_version == version
        assert catalogue.has("core", "parallelism") and catalogue.has("celery", "worker_concurrency")
        assert len(catalogue.sections) > 20
        assert ("webserver", "base_url") in catalogue.deprecated_options


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_option_the_program_writes_is_in_the_catalogue(stack: str) -> None:
    config = stack_config_from_file(stack)
    catalogue = catalogues.airflow_config(config.settings.airflow_version)
    assert catalogue is not None
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(config.airflow_cfg)
    written = [(s, o) for s in cfg.sections() for o in cfg[s]]
    env = [*SECRET_ENV, *worker_cfg_env(config.settings, config.plan)]
    written += [tuple(name.lower().split("__")[1:3]) for name in env]  # type: ignore[misc]
    assert len(written) > 30
    missing = [f"[{s}] {o}" for s, o in written if not catalogue.has(s, o)]
    assert not missing, f"{stack} writes options Airflow {catalogue.airflow_version} does not have: {missing}"


@pytest.mark.real  # Airflow 3.3.2 itself, from ./venv-airflow, lists its options
def test_the_script_reproduces_the_pinned_config_catalogue() -> None:
    """scripts/catalogues run against ./venv-airflow (Airflow 3.3.2 with the image's
    providers) writes exactly the pinned file: a provider added or upgraded without
    regenerating it fails here."""
    installed = subprocess.run([str(AIRFLOW_PYTHON), "-c", "import airflow; print(airflow.__version__)"],
                               capture_output=True, text=True, check=True).stdout.strip()
    pinned = catalogues.config_file(installed)
    retrieved = json.loads(pinned.read_text())["retrieved"]
    out = subprocess.run([str(ROOT / "venv" / "bin" / "python"), str(ROOT / "scripts" / "catalogues"),
                          "airflow-config", "--print", "--retrieved", retrieved],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out == pinned.read_text(), f"{pinned.name} differs from what scripts/catalogues generates"


@pytest.mark.real
def test_the_script_reproduces_the_older_release_catalogue() -> None:
    """3.3.1's catalogue: its own apache-airflow-core (from the package index) with the venv's providers."""
    pinned = catalogues.config_file("3.3.1")
    retrieved = json.loads(pinned.read_text())["retrieved"]
    out = subprocess.run([str(ROOT / "venv" / "bin" / "python"), str(ROOT / "scripts" / "catalogues"),
                          "airflow-config", "--core-version", "3.3.1", "--print", "--retrieved", retrieved],
                         capture_output=True, text=True, check=True, timeout=600).stdout
    assert out == pinned.read_text(), f"{pinned.name} differs from what scripts/catalogues generates"


def test_script_help_names_its_sources() -> None:
    out = subprocess.run([str(ROOT / "venv" / "bin" / "python"), str(ROOT / "scripts" / "catalogues"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for words in ("az provider show", "az login", "pip index versions", "retrieve_configuration_description"):
        assert words in out, f"--help mentions {words!r}"
