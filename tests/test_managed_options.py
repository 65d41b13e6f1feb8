"""Every airflow.cfg option the program writes is either managed (refused as
an override, naming the key to use) or listed as safe to override with why:
a new option is a decision, not an accident."""

from __future__ import annotations

import configparser
from typing import Any

import pytest

from components.model.airflow_cfg import worker_cfg_env
from components.model.airflow_options import MANAGED_AIRFLOW_OPTIONS, USER_AIRFLOW_OPTIONS
from tests.conftest import config_for
from tests.test_settings import problems_of
from tests.test_ui_auth import ENTRA_UI

# The shipped stacks, and the switches that add options: metrics off drops
# [metrics], remote task logs and keyVault add theirs, a local cluster with
# the storage emulator has remote logs too.
RENDERED: list[tuple[str, dict[str, Any]]] = [
    ("dev", {}), ("prod", {}), ("local", {}),
    ("prod", {"pgbouncer": False, "metrics": False}),
    ("local", {"taskLogEmulatorEndpoint": "http://azurite.azurite:10000/devstoreaccount1"}),
    # Entra ID sign-in: the FAB auth manager's options instead of the SimpleAuthManager's.
    ("prod", {"ui": ENTRA_UI}),
]


def written_options(stack: str, changes: dict[str, Any]) -> set[tuple[str, str]]:
    cfg = config_for(stack, **changes)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg.airflow_cfg)
    found = {(section, option) for section in parser.sections() for option in parser[section]}
    # Options the workers get as AIRFLOW__SECTION__OPTION variables.
    for env in worker_cfg_env(cfg.settings, cfg.plan):
        _, section, option = env.lower().split("__")
        found.add((section, option))
    return found


@pytest.mark.parametrize(("stack", "changes"), RENDERED)
def test_every_written_option_is_managed_or_open_to_override(stack: str, changes: dict[str, Any]) -> None:
    undecided = written_options(stack, changes) - set(MANAGED_AIRFLOW_OPTIONS) - set(USER_AIRFLOW_OPTIONS)
    assert not undecided, (f"{stack} {changes}: options the program writes that are neither in "
                           f"MANAGED_AIRFLOW_OPTIONS nor in USER_AIRFLOW_OPTIONS: {sorted(undecided)}")


def test_an_option_is_managed_or_open_never_both() -> None:
    both = set(MANAGED_AIRFLOW_OPTIONS) & set(USER_AIRFLOW_OPTIONS)
    assert not both, f"in both tables: {sorted(both)}"
    assert all(why.strip() for why in USER_AIRFLOW_OPTIONS.values()), "every open option says why"


@pytest.mark.parametrize(("section", "option"), sorted(MANAGED_AIRFLOW_OPTIONS))
def test_a_managed_option_is_refused_with_the_key_to_use(section: str, option: str) -> None:
    problems = problems_of(airflowConfig={section: {option: "x"}})
    here = f"airflowConfig.{section}.{option}"
    assert problems.get(here, "").startswith("is set by the program: "), f"{here}: {problems}"


@pytest.mark.parametrize(("section", "option"), sorted(USER_AIRFLOW_OPTIONS))
def test_an_open_option_reaches_airflow_cfg(section: str, option: str) -> None:
    value = {"default_timezone": "Europe/Amsterdam", "dagbag_import_timeout": "60", "load_examples": "True",
             "default_queue": "bulk"}[option]
    cfg = config_for("prod", airflowConfig={section: {option: value}})
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg.airflow_cfg)
    assert parser.get(section, option, fallback=None) == value, f"[{section}] {option} as the stack set it"
