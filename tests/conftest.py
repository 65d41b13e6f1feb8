from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from components.azure import image
from components.config import StackConfig, build_stack_config, project_values, stack_file_config
from tests.harness import ProgramRun, changed_shared_runs, shared_run
from tests.local_airflow import Services, local_services, stack_config


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, prepare the image's build context (build/image-context) once, before the
    workers start: each program run prepares it, and two runs preparing it at once in the same
    checkout could delete each other's half-written files. Prepared, it is left as it is."""
    if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", None):
        image.prepare_build_context()


# What this session collected before `-m` deselected any: the test files, and how many tests
# are marked real (tests/test_readme.py reads it instead of collecting the suite again).
COLLECTED = pytest.StashKey[tuple[frozenset[str], int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    real = sum(1 for item in items if item.get_closest_marker("real") is not None)
    config.stash[COLLECTED] = (frozenset(item.path.name for item in items), real)


def config_for(stack: str, **changes: Any) -> StackConfig:
    """Settings, plan and cfg of a stack file, with some project keys changed (None deletes)."""
    values = project_values(stack_file_config(stack))
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return build_stack_config(values, stack=stack, location="westeurope")


@pytest.fixture
def prod() -> StackConfig:
    return config_for("prod")


@pytest.fixture
def dev() -> StackConfig:
    return config_for("dev")


@pytest.fixture(scope="session")
def runs() -> dict[str, ProgramRun]:
    """The program run under mocks for each shipped stack file."""
    result = {stack: shared_run(stack) for stack in ("dev", "prod")}
    for stack, run in result.items():
        assert run.error is None, f"{stack}: {run.error}"
    return result


@pytest.fixture(scope="session", autouse=True)
def _shared_runs_stay_as_made() -> Iterator[None]:
    """The runs tests share (shared_run) are checked when handed out; this checks them once more
    after the last test, so a change made by the last test to read one fails the session too."""
    yield
    changed = changed_shared_runs()
    assert changed == {}, f"tests changed these shared program runs: {changed}"


# Large enough for every real-component test: PostgreSQL starts with the
# max_connections the program declares for the widest one without PgBouncer
# (every client straight to PostgreSQL), so a test may also run with PgBouncer
# off. The deployments themselves go through PgBouncer, the default.
WIDEST = stack_config("dev", parallelism=160, workerConcurrency=160, fanoutTasks=160, pgbouncer=False,
                      workerPool={"vmSize": "Standard_E32s_v5"}, systemPool={"vmSize": "Standard_D8s_v5", "count": 1})


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """PostgreSQL, RabbitMQ and Azurite as the dev stack declares them, for every
    real-component test of the session: each deployment gets its own database,
    vhost and PgBouncer on them, so they need not start again per test file
    (about 20 s each time on 2 cores)."""
    with local_services("dev", WIDEST) as s:
        yield s
