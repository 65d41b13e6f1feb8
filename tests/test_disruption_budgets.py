"""PodDisruptionBudgets under Pulumi mocks: which pods each covers and how many may go at once."""

from __future__ import annotations

from typing import Any

import pytest

from components.kubernetes.airflow_worker import SAFE_TO_EVICT_ANNOTATION
from components.model import names
from components.model.capacity import worker_stop_seconds
from tests.conftest import config_for
from tests.harness import ProgramRun

# Each budget and the workload whose pods it covers.
COVERED = {
    names.API_SERVER: ("Deployment", names.API_SERVER),
    names.SCHEDULER: ("Deployment", names.SCHEDULER),
    names.PGBOUNCER: ("Deployment", names.PGBOUNCER),
    names.WORKER: ("StatefulSet", names.WORKER),
}


def budgets(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in run.manifests() if m["kind"] == "PodDisruptionBudget"}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels are used"
    return selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_budget_selects_exactly_its_workloads_pods(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    found = budgets(run)
    assert set(found) == set(COVERED), f"{stack}: PodDisruptionBudgets"
    workloads = [m for m in run.manifests() if m["kind"] in ("Deployment", "StatefulSet", "Job")]
    for name, (kind, workload) in COVERED.items():
        selector = found[name]["spec"]["selector"]
        selected = {(m["kind"], m["metadata"].get("name")) for m in workloads
                    if selects(selector, m["spec"]["template"]["metadata"]["labels"])}
        assert selected == {(kind, workload)}, f"{stack} PodDisruptionBudget/{name} selects {selected}"
        # The workload's own selector picks the same pods.
        own = run.manifest(kind, workload)["spec"]["selector"]["matchLabels"]
        assert own == selector["matchLabels"], f"{stack} PodDisruptionBudget/{name}: selector"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_evictions_take_one_pod_or_one_nodes_workers_and_never_block_on_an_unready_pod(
        runs: dict[str, ProgramRun], stack: str) -> None:
    per_node = config_for(stack).plan.worker_nodes.workers_per_node
    for name, budget in budgets(runs[stack]).items():
        spec = budget["spec"]
        # Workers: every worker of a node AKS drains goes at once, so a busy
        # node drains within one grace period (tests/test_day2_live.py).
        most = per_node if name == names.WORKER else 1
        assert spec.get("maxUnavailable") == most and "minAvailable" not in spec, \
            f"{stack} PodDisruptionBudget/{name}: {most} at a time, and a single replica can still be drained"
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow", f"{stack} PodDisruptionBudget/{name}"


def test_an_evicted_worker_gets_the_longest_task_and_the_autoscaler_never_evicts_one(
        runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    template = run.manifest("StatefulSet", names.WORKER)["spec"]["template"]
    longest = config_for("prod").settings.longest_task_seconds
    assert template["spec"]["terminationGracePeriodSeconds"] == worker_stop_seconds(longest) > longest, \
        "StatefulSet/airflow-worker: an evicted worker's grace period covers its longest task"
    assert template["metadata"]["annotations"][SAFE_TO_EVICT_ANNOTATION] == "false", \
        "StatefulSet/airflow-worker: the cluster autoscaler must not evict a worker to empty a node"
