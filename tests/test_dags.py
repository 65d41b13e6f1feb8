"""The DAGs in app/dags under real Airflow (./venv-airflow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.model.airflow_cfg import FANOUT_SCHEDULE_ENV, FANOUT_SLEEP_ENV, FANOUT_TASKS_ENV, workload_env
from components.model.settings import DEFAULTS
from tests.conftest import config_for
from tests.real_airflow import airflow_python, run_airflow_python

# Real components (scripts/test --fast leaves these out for a quick run).
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

# The schedule as the scheduler reads it: the serialized DAG's timetable, and
# the first run it would create for a DAG that has had none (catchup=False).
FANOUT_SCHEDULE = """
import json
import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.decoders import decode_timetable
from airflow.serialization.encoders import encode_timetable
from airflow.timetables.base import TimeRestriction

dag = DagBag(dag_folder="app/dags").dags["fanout"]
timetable = decode_timetable(encode_timetable(dag.timetable))
first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=TimeRestriction(
    earliest=dag.start_date, latest=None, catchup=dag.catchup))
print(json.dumps({
    "timetable": type(timetable).__name__,
    "expression": getattr(timetable, "_expression", None),
    "timezone": str(getattr(timetable, "_timezone", "")),
    "catchup": dag.catchup,
    "first_run_due": first is not None and first.run_after <= pendulum.now("UTC"),
}))
"""


def fanout_schedule(home: Path, env: dict[str, str]) -> dict:
    done = run_airflow_python(FANOUT_SCHEDULE, home=home, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def test_fanout_runs_on_the_schedule_the_deployment_sets(tmp_path: Path) -> None:
    hourly = fanout_schedule(tmp_path, workload_env(config_for("prod").settings))
    assert (hourly["timetable"], hourly["expression"], hourly["timezone"]) == ("CronTriggerTimetable", "0 * * * *",
                                                                              "UTC")
    daily = fanout_schedule(tmp_path, {FANOUT_SCHEDULE_ENV: "@daily"})
    assert daily["expression"] == "0 0 * * *", "Airflow's preset, as the program translates it for KEDA"
    assert fanout_schedule(tmp_path, {FANOUT_SCHEDULE_ENV: ""})["timetable"] == "NullTimetable"


def test_without_the_environment_the_dag_runs_hourly_as_the_seed(tmp_path: Path) -> None:
    assert fanout_schedule(tmp_path, {})["expression"] == DEFAULTS["fanoutSchedule"] == "0 * * * *"


def test_unpausing_a_scheduled_fanout_would_start_a_run_at_once(tmp_path: Path) -> None:
    """Why tests/local_airflow.py stack_config() leaves fanout unscheduled: the
    first run of a cron DAG without catchup is the latest past cron time,
    already due when the tests unpause it."""
    hourly = fanout_schedule(tmp_path, {FANOUT_SCHEDULE_ENV: "0 * * * *"})
    assert hourly["catchup"] is False
    assert hourly["first_run_due"] is True
