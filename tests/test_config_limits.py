"""Issue 26: limits the deployment cannot honour, keys that would do nothing,
and capacity refusals that name the key the stack set with the number to set."""

from __future__ import annotations

from typing import Any

import pytest

from components.kubernetes.keda import keda_objects
from components.model import drain, sizing
from components.model.settings import ConfigError, Settings, parse_settings
from tests.conftest import config_for
from tests.test_settings import parse, problems_of


def local(**values: Any) -> Settings:
    return parse_settings({"target": "local", **values}, stack="local", location=None)


def local_problems(**values: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        local(**values)
    return dict(err.value.problems)


def prod_problems(**changes: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        config_for("prod", **changes)
    return dict(err.value.problems)


# --- (a) keys that would have no effect ----------------------------------------

def test_min_replicas_with_fixed_workers_is_refused() -> None:
    problems = problems_of(workerScaling="fixed", workerMinReplicas=2)
    assert list(problems) == ["workerMinReplicas"], "only the key that does nothing"
    assert "`workerScaling: keda`" in problems["workerMinReplicas"] and "got 2" in problems["workerMinReplicas"]
    assert "workerMinReplicas" in local_problems(workerMinReplicas=1), "a local stack's workers are fixed by default"
    assert parse(workerMinReplicas=2).worker_min_replicas == 2, "with KEDA it is kept"


@pytest.mark.parametrize(("key", "value"), [("pgbouncerMetadataPoolSize", 40),
                                            ("pgbouncerResultBackendPoolSize", 20),
                                            ("pgbouncerImage", "example/pgbouncer:1.23@sha256:" + "a" * 64)])
def test_pgbouncer_keys_without_pgbouncer_are_refused(key: str, value: Any) -> None:
    problems = problems_of(pgbouncer=False, **{key: value})
    assert list(problems) == [key], f"{key} with pgbouncer false"
    assert "`pgbouncer: true`" in problems[key] and repr(value) in problems[key]
    assert parse(**{key: value}).pgbouncer, f"{key} with pgbouncer on is kept"


def test_task_log_retention_without_remote_logs_is_refused() -> None:
    problems = problems_of(remoteTaskLogs=False, databaseBackupSchedule=None, taskLogRetentionDays=7)
    assert list(problems) == ["taskLogRetentionDays"]
    assert "remoteTaskLogs" in problems["taskLogRetentionDays"] and "got 7" in problems["taskLogRetentionDays"]
    assert "taskLogRetentionDays" in local_problems(taskLogRetentionDays=7), "a local cluster expires nothing"
    assert parse(taskLogRetentionDays=7).task_log_retention_days == 7, "AKS with remote logs keeps it"
    assert parse(remoteTaskLogs=False, databaseBackupSchedule=None).remote_task_logs is False, \
        "the default is never flagged"


def test_backup_retention_without_backups_is_refused() -> None:
    problems = problems_of(databaseBackupSchedule=None, databaseBackupRetentionDays=7)
    assert list(problems) == ["databaseBackupRetentionDays"], "no dumps to keep"
    assert "got 7" in problems["databaseBackupRetentionDays"]
    assert "databaseBackupRetentionDays" in local_problems(databaseBackupRetentionDays=7)
    assert parse(databaseBackupRetentionDays=7).database_backup_retention_days == 7
    assert parse(database="azure", databaseBackupRetentionDays=35).database_backup_retention_days == 35


@pytest.mark.parametrize(("key", "value"), [("acrSku", "Premium"), ("clusterTier", "Standard")])
def test_azure_only_keys_on_a_local_cluster_are_refused(key: str, value: str) -> None:
    problems = local_problems(**{key: value})
    assert list(problems) == [key] and "`target: aks`" in problems[key], f"{key} on a local cluster"


def test_the_shipped_stacks_set_nothing_that_does_nothing() -> None:
    for stack in ("dev", "prod", "local"):
        assert config_for(stack).settings.stack == stack, f"Pulumi.{stack}.yaml still parses and plans"


# --- (b) what AKS can drain for ------------------------------------------------

def test_a_task_longer_than_aks_can_drain_for_is_refused() -> None:
    most = drain.max_longest_task_seconds()
    assert drain.drain_minutes_needed(most) <= drain.AKS_MAX_DRAIN_MINUTES < drain.drain_minutes_needed(most + 1), \
        "the ceiling is the longest task whose drain timeout AKS can set"
    problem = problems_of(longestTaskSeconds=172800)["longestTaskSeconds"]
    assert f"at most {most}" in problem and "drainTimeoutInMinutes, 1 to 1440" in problem, problem
    assert parse(longestTaskSeconds=most).longest_task_seconds == most, "the ceiling itself is accepted"
    assert "longestTaskSeconds" in problems_of(longestTaskSeconds=most + 1)
    assert local(longestTaskSeconds=172800).longest_task_seconds == 172800, "no AKS drain on a local cluster"


# --- (c) the widest deployment measured ----------------------------------------

@pytest.mark.parametrize("key", ["parallelism", "fanoutTasks", "maxActiveTasksPerDag"])
def test_wider_than_the_widest_measured_run_is_refused(key: str) -> None:
    problem = problems_of(**{key: 100000})[key]
    assert f"at most {sizing.MAX_PARALLELISM}" in problem and "bench/controlplane" in problem, problem
    assert "got 100000" in problem
    assert getattr(parse(**{key: sizing.MAX_PARALLELISM}), {
        "parallelism": "parallelism", "fanoutTasks": "fanout_tasks",
        "maxActiveTasksPerDag": "max_active_tasks_per_dag"}[key]) == sizing.MAX_PARALLELISM


def test_the_ceiling_is_the_widest_run_in_the_benchmark() -> None:
    import json
    from pathlib import Path
    runs = json.loads((Path(__file__).parent.parent / "bench/results/controlplane.json").read_text())["runs"].values()
    widest = max(runs, key=lambda r: r["parallelism"])
    assert widest["parallelism"] == sizing.MAX_PARALLELISM, "the ceiling is the widest measured parallelism"
    assert widest["measured_at"] in sizing.MEASURED_WIDEST_RUN, "the figure names its run"
    assert widest["all_queued_after_s"] is not None, "the scheduler queued the whole run"


# --- (d) capacity refusals name the key and the number -------------------------

def test_a_worker_too_large_for_its_node_names_the_per_slot_size() -> None:
    problem = prod_problems(workerMemoryPerSlotMiB=2048)
    assert list(problem) == ["workerMemoryPerSlotMiB"], "the key the stack changed, not workerConcurrency"
    message = problem["workerMemoryPerSlotMiB"]
    assert "workerMemoryPerSlotMiB to at most 819 (at workerConcurrency 36)" in message, message
    assert "workerConcurrency to at most 14" in message, message
    assert config_for("prod", workerMemoryPerSlotMiB=819).plan.worker_nodes.workers_per_node >= 1, "819 fits"
    assert "workerMemoryPerSlotMiB" in prod_problems(workerMemoryPerSlotMiB=820), "820 does not"
    assert config_for("prod", workerMemoryPerSlotMiB=2048, workerConcurrency=14).plan.worker.concurrency == 14
    vm = message.split("such as ")[1]
    assert config_for("prod", workerMemoryPerSlotMiB=2048, workerPool={"vmSize": vm}).plan, f"{vm} holds one"


def test_a_worker_with_too_many_slots_names_the_concurrency() -> None:
    message = prod_problems(workerConcurrency=512)["workerConcurrency"]
    assert "workerConcurrency to at most 409" in message, message
    assert config_for("prod", workerConcurrency=409).plan.worker_nodes.workers_per_node == 1, "409 fits"
    assert "workerConcurrency" in prod_problems(workerConcurrency=410), "410 does not"


def test_a_database_too_large_for_a_system_node_names_parallelism() -> None:
    changes = {"pgbouncer": False, "systemPool": {"vmSize": "Standard_D4s_v5", "count": 4}}
    message = prod_problems(parallelism=3000, **changes)["parallelism"]
    assert "postgres requests" in message and "set parallelism to at most 2556" in message, message
    assert config_for("prod", parallelism=2556, **changes).plan.parallelism == 2556, "2556 fits"
    assert "parallelism" in prod_problems(parallelism=2557, **changes), "2557 does not"
    vm = message.split("such as ")[1]
    assert config_for("prod", parallelism=3000, pgbouncer=False, systemPool={"vmSize": vm, "count": 4}).plan


def test_a_short_system_pool_says_how_many_nodes() -> None:
    pool = {"vmSize": "Standard_D4s_v5", "count": 1}
    message = prod_problems(apiServerReplicas=8, systemPool=pool)["systemPool.count"]
    assert "set systemPool.count to 2" in message, message
    assert config_for("prod", apiServerReplicas=8, systemPool={**pool, "count": 2}).plan


# --- (e) every part reads the queue ----------------------------------------------

def test_keda_counts_the_queue_airflow_sends_tasks_to() -> None:
    def query(**changes: Any) -> str:
        cfg = config_for("prod", **changes)
        scaled = next(o for o in keda_objects(cfg.settings, cfg.plan) if o.kind == "ScaledObject")
        return next(t["metadata"]["query"] for t in scaled.fields["spec"]["triggers"] if t["type"] == "postgresql")
    assert "queue = 'default'" in query(), "Airflow's default queue"
    assert "queue = 'bulk'" in query(airflowConfig={"operators": {"default_queue": "bulk"}}), \
        "[operators] default_queue, which the workers consume"
    assert "queue = 'it''s'" in query(airflowConfig={"operators": {"default_queue": "it's"}}), "quoted as SQL"
