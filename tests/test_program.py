"""__main__.py under Pulumi mocks, for each stack file."""

from __future__ import annotations

import pulumi
import pytest

from components.config import stack_file_config
from tests.conftest import config_for
from tests.harness import shared_run


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_program_exports_the_plan(stack: str) -> None:
    run = shared_run(stack)
    assert run.error is None, f"{stack}: {run.error}"
    assert run.outputs["capacityPlan"] == config_for(stack).plan.to_output()
    assert run.outputs["capacitySummary"] == config_for(stack).plan.summary()


def test_prod_plan_output_is_the_reference_workload() -> None:
    plan = shared_run("prod").outputs["capacityPlan"]
    assert plan["parallelism"] == 1000
    assert (plan["worker"]["replicas"], plan["worker"]["concurrency"]) == (28, 36)
    assert plan["worker_nodes"]["nodes_needed"] == 3


def test_bad_config_stops_the_program_before_any_resource() -> None:
    config = stack_file_config("prod")
    config["airflow-aks:paralelism"] = 2000
    config["airflow-aks:workerConcurrency"] = "thirty-six"
    run = shared_run("prod", config)
    assert isinstance(run.error, pulumi.RunError), "a clean error, without a traceback"
    message = str(run.error)
    assert "airflow-aks:paralelism: unknown key; did you mean 'parallelism'?" in message
    assert "airflow-aks:workerConcurrency: must be a whole number" in message
    assert run.resources == [], "nothing is declared when the config is bad"
    assert "capacityPlan" not in run.outputs


def test_plan_errors_also_stop_the_program() -> None:
    config = stack_file_config("prod")
    config["airflow-aks:workerPool"] = {"vmSize": "Standard_E4s_v3", "count": 2}
    run = shared_run("prod", config)
    assert isinstance(run.error, pulumi.RunError)
    assert "airflow-aks:workerPool.count" in str(run.error)
    assert run.resources == []


def test_missing_location_is_reported() -> None:
    config = stack_file_config("dev")
    del config["azure-native:location"]
    run = shared_run("dev", config)
    assert isinstance(run.error, pulumi.RunError)
    assert "azure-native:location: required" in str(run.error)
