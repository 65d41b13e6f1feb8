"""The DAGs in app/dags under real Airflow (./venv-airflow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.model.airflow_cfg import FANOUT_SLEEP_ENV, FANOUT_TASKS_ENV, workload_env
from components.model.settings import DEFAULTS
from tests.conftest import config_for
from tests.real_airflow import airflow_python, run_airflow_python

# Real components (scripts/test -m "not real" leaves these out for a quick run).
pytestmark = pytest.mark.real

LOAD_FANOUT = """
import json
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder="app/dags")
dag = bag.dags.get("fanout")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "task_ids": dag.task_ids if dag else [],
    "sleep_args": sorted({t.op_args[0] for t in dag.tasks}) if dag else [],
    "upstream": sum(len(t.upstream_task_ids) for t in dag.tasks) if dag else -1,
}))
"""


def load_fanout(home: Path, env: dict[str, str]) -> dict:
    done = run_airflow_python(LOAD_FANOUT, home=home, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_test_tooling_runs_the_stacks_airflow_version(tmp_path: Path) -> None:
    done = run_airflow_python("import airflow; print(airflow.__version__)", home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == DEFAULTS["airflowVersion"]
    assert airflow_python().exists()


def test_fanout_builds_the_width_and_sleep_the_deployment_sets(tmp_path: Path) -> None:
    result = load_fanout(tmp_path, {FANOUT_TASKS_ENV: "12", FANOUT_SLEEP_ENV: "7"})
    assert result["errors"] == {}
    assert result["dags"] == ["fanout"]
    assert result["task_ids"] == [f"sleep_{i:02d}" for i in range(12)]
    assert result["sleep_args"] == [7.0]
    assert result["upstream"] == 0, "the tasks are independent: all may run at once"


@pytest.mark.parametrize(("width", "first", "last"), [(1, "sleep_0", "sleep_0"), (1000, "sleep_000", "sleep_999")])
def test_fanout_task_ids_are_sortable(tmp_path: Path, width: int, first: str, last: str) -> None:
    result = load_fanout(tmp_path, {FANOUT_TASKS_ENV: str(width)})
    assert len(result["task_ids"]) == width
    assert (result["task_ids"][0], result["task_ids"][-1]) == (first, last)


def test_without_the_environment_the_dag_is_the_seed_workload(tmp_path: Path) -> None:
    result = load_fanout(tmp_path, {})
    assert len(result["task_ids"]) == 1000
    assert result["sleep_args"] == [100.0]


def test_prod_environment_gives_the_reference_workload(tmp_path: Path) -> None:
    env = workload_env(config_for("prod").settings)
    result = load_fanout(tmp_path, env)
    assert len(result["task_ids"]) == 1000
    assert result["sleep_args"] == [100.0]
