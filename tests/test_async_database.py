"""The async metadata engine: psycopg 3 on the sync engine's route, its URL from the Secret."""

from __future__ import annotations

import configparser
import importlib.util
from typing import Any

import pytest

from components.config import stack_file_config
from components.model import names
from components.model.airflow_cfg import CONNECT_ARGS_ASYNC
from components.model.component_secrets import COMPONENT_SECRETS
from components.model.settings import DEFAULTS
from tests.conftest import config_for
from tests.harness import ProgramRun, component_secret_values, shared_run
from tests.real_airflow import ROOT

ASYNC_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"
ASYNC_KEY = "sql-alchemy-conn-async"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def env_secret(run: ProgramRun) -> dict[str, str]:
    return component_secret_values(run)


def database_options(run: ProgramRun) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"])
    return dict(parser["database"])


def airflow_containers(run: ProgramRun) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{m['kind']}/{c['name']}", c) for m in run.manifests() if m["kind"] in WORKLOAD_KINDS
            and m["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "airflow"
            for c in m["spec"]["template"]["spec"]["containers"]]


@pytest.fixture(scope="module")
def direct_run() -> ProgramRun:
    run = shared_run("dev", {**stack_file_config("dev"), "airflow-aks:pgbouncer": False})
    assert run.error is None, run.error
    return run


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_async_url_is_psycopg_through_the_pgbouncer_alias(runs: dict[str, ProgramRun], stack: str) -> None:
    env = env_secret(runs[stack])
    bouncer = f"@{names.service_host(names.PGBOUNCER, 'airflow')}:{names.PGBOUNCER_PORT}/{names.PGBOUNCER_METADATA_DB}"
    assert env[ASYNC_KEY].startswith("postgresql+psycopg_async://"), "not the asyncpg URL Airflow would derive"
    assert env[ASYNC_KEY].endswith(bouncer), "the metadata pool, as the sync engine"
    assert env[ASYNC_KEY].split("://")[1] == env["sql-alchemy-conn"].split("://")[1], "same user, password, route"


def test_without_pgbouncer_the_async_url_goes_straight_to_postgres(direct_run: ProgramRun) -> None:
    env = env_secret(direct_run)
    assert env[ASYNC_KEY] == env["sql-alchemy-conn"].replace("postgresql+psycopg2://",
                                                             "postgresql+psycopg_async://")
    assert env["sql-alchemy-conn"].split("@")[1] == env["sql-alchemy-conn-direct"].split("@")[1], \
        "the server the migration reaches directly"
    assert f"@{names.service_host(names.POSTGRES, 'airflow')}:{names.POSTGRES_PORT}/" in env[ASYNC_KEY]


def test_the_cfg_turns_off_prepared_statements_only_behind_pgbouncer(runs: dict[str, ProgramRun],
                                                                     direct_run: ProgramRun) -> None:
    for stack in ("dev", "prod"):
        assert database_options(runs[stack])["sql_alchemy_connect_args_async"] == CONNECT_ARGS_ASYNC, stack
    assert "sql_alchemy_connect_args_async" not in database_options(direct_run), "psycopg's defaults, direct"
    assert "sql_alchemy_conn_async" not in database_options(runs["prod"]), "the URL comes from the Secret"


def test_the_connect_args_path_names_a_dict_in_the_image_config_folder() -> None:
    module, _, attr = CONNECT_ARGS_ASYNC.rpartition(".")
    path = ROOT / "app" / "config" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None, path
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    assert getattr(loaded, attr) == {"prepare_threshold": None}
    assert "COPY --chown=airflow:root config/ /opt/airflow/config/" in (ROOT / "app" / "Dockerfile").read_text()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_airflow_container_reads_the_async_url_from_the_secret(runs: dict[str, ProgramRun],
                                                                     stack: str) -> None:
    run = runs[stack]
    password = env_secret(run)[ASYNC_KEY].split("://")[1].split("@")[0].split(":")[1]
    assert password in run.generated, "the generated PostgreSQL password"
    containers = airflow_containers(run)
    assert containers
    with_async = set()
    for where, c in containers:
        items = [e for e in c["env"] if e["name"] == ASYNC_ENV]
        # The components on the pooled metadata database (not the migration, workers or Flower).
        if ASYNC_KEY in COMPONENT_SECRETS[c["name"]]:
            with_async.add(c["name"])
            assert items == [{"name": ASYNC_ENV, "valueFrom": {"secretKeyRef": {
                "name": names.env_secret(c["name"]), "key": ASYNC_KEY}}}], where
        else:
            assert not items, f"{where}: an async database URL it does not use"
        assert not any(password in e.get("value", "") for e in c["env"]), f"{where}: a literal password"
    assert with_async == {"api-server", "scheduler", "dag-processor", "triggerer"}, with_async
    for m in run.manifests():
        if m["kind"] == "ConfigMap":
            assert not any(password in v for v in m["data"].values()), m["metadata"]["name"]
    assert "psycopg" not in config_for(stack).airflow_cfg, "no connection URL in airflow.cfg"


def test_the_image_pins_the_psycopg_the_tests_run() -> None:
    def pins(text: str, wanted: tuple[str, ...]) -> dict[str, str]:
        found = {}
        for line in text.splitlines():
            name, sep, version = line.partition("==")
            if sep and name.strip().lower() in wanted:
                found[name.strip().lower()] = version.strip()
        return found

    constraints = ROOT / "app" / "constraints" / f"constraints-{DEFAULTS['airflowVersion']}.txt"
    ours = pins((ROOT / "app" / "platform-requirements.txt").read_text(), ("psycopg[binary]",))
    theirs = pins(constraints.read_text(), ("psycopg", "psycopg-binary"))
    assert ours == {"psycopg[binary]": theirs["psycopg"]} and theirs["psycopg-binary"] == theirs["psycopg"]
