"""Day 2 on a live cluster (issue 22): what AKS accepts, how long it waits, what the
cluster's controllers own, what the last deployment did, and the preview model's own rules.

Each test previews a change against a deployed prod stack whose cluster is
busy: the autoscaler runs nodes, KEDA's HPA owns the worker replicas. Where a
test relies on AKS, the rule and its source are in components/azure/pools.py;
on a provider or the engine, tests/preview.py says where.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from components.azure import pools
from components.kubernetes.keda import PAUSED_ANNOTATION
from components.model import capacity, names
from components.model.upgrades import deployed_airflow_version
from tests.conftest import config_for
from tests.harness import ProgramRun, plain, shared_run, stack_file_config
from tests.preview import Live, Preview, State, preview
from tests.upgrade.recorder import Registration

POOL = "azure-native:containerservice:AgentPool"
AKS = "azure-native:containerservice:ManagedCluster"
SO = "kubernetes:keda.sh/v1alpha1:ScaledObject"
STS = "kubernetes:apps/v1:StatefulSet"
WORKERS = "workloads-airflow-worker"
SCALER = "workloads-airflow-worker-scaler"
E4 = pools.worker_pool_name("Standard_E4s_v3")
LABELS = {"airflow-aks/pool": "celery-workers"}


def live_pool(count: int, *, name: str = E4, autoscale: bool = True, min_count: int = 0, max_count: int = 3,
              max_pods: int = 110, vm_size: str = "Standard_E4s_v3") -> dict[str, Any]:
    """A worker pool as getManagedCluster lists it."""
    pool = {"name": name, "count": count, "vmSize": vm_size, "mode": "User", "maxPods": max_pods,
            "enableAutoScaling": autoscale, "nodeLabels": dict(LABELS)}
    if autoscale:
        pool.update(minCount=min_count, maxCount=max_count)
    return pool


def deployed(pools_: list[dict[str, Any]], previous: dict[str, Any] | None = None, **keys: Any) -> ProgramRun:
    config = stack_file_config("prod")
    config.update({f"airflow-aks:{k}": v for k, v in keys.items()})
    return shared_run("prod", config, preview=True, updating=frozenset({"airflow-aks"}),
                       live_system_pool={"vmSize": "Standard_D8s_v5", "maxPods": 110}, live_worker_pools=pools_,
                       previous_outputs=previous)


def ok(run: ProgramRun) -> ProgramRun:
    assert run.error is None, run.error
    return run


def reg(run: ProgramRun | State, name: str) -> Registration:
    [found] = [r for r in run.registrations if r.name == name]
    return found


def shown(base: ProgramRun, after: ProgramRun, live: Live) -> Preview:
    return preview(base, after, live)


# 1. The worker pool under the autoscaler -----------------------------------------------------


def test_a_busy_autoscaled_pool_is_updated_with_the_count_it_runs() -> None:
    # prod runs 3 nodes under the autoscaler (0-3); parallelism 1200 needs 4.
    busy = [live_pool(3)]
    live = Live(pools=busy)
    base, after = ok(deployed(busy)), ok(deployed(busy, parallelism=1200))
    sent = plain(reg(after, "airflow-workers-we4sv3").inputs)
    assert (sent["count"], sent["minCount"], sent["maxCount"]) == (3, 0, 4), \
        "airflow-workers-we4sv3: the live count, the plan's bounds"
    result = shown(base, after, live)
    assert result.step("airflow-workers-we4sv3").op == "update"
    assert result.aks == [], "AKS refuses a PUT whose count is not the live one"


@pytest.mark.parametrize("change", [{"workerMemoryPerSlotMiB": 96}, {"workerCpuPerSlotMillicores": 20},
                                    {"longestTaskSeconds": 7200}, {"kubernetesVersion": "1.36"}])
def test_every_pool_update_on_a_busy_cluster_is_one_aks_accepts(change: dict[str, Any]) -> None:
    busy = [live_pool(2)]
    live = Live(pools=busy)
    result = shown(ok(deployed(busy)), ok(deployed(busy, **change)), live)
    step = result.step("airflow-workers-we4sv3")
    assert step is not None and step.op == "update", f"airflow-workers-we4sv3: {change} updates the pool"
    assert result.aks == [], f"{change}: {result.aks}"


def test_a_ceiling_below_the_running_nodes_waits_for_the_autoscaler() -> None:
    # 4 nodes run; parallelism 500 needs 2. AKS takes no count above maxCount
    # and no count but the live one: the ceiling stays at 4 for now.
    busy = [live_pool(4, max_count=4)]
    after = ok(deployed(busy, parallelism=500))
    sent = plain(reg(after, "airflow-workers-we4sv3").inputs)
    assert (sent["count"], sent["maxCount"]) == (4, 4), "airflow-workers-we4sv3: held at the live count"
    assert shown(ok(deployed(busy)), after, Live(pools=busy)).aks == []
    assert pools.worker_pool_size([live_pool(1, max_count=4)], config_for("prod", parallelism=500).plan
                                  .worker_nodes) == pools.PoolSize(count=1, min_count=0, max_count=2), \
        "once the autoscaler has scaled in, the plan's ceiling"


def test_a_new_pool_starts_at_its_minimum() -> None:
    after = ok(shared_run("prod", preview=True))
    sent = plain(reg(after, "airflow-workers-we4sv3").inputs)
    assert (sent["count"], sent["minCount"], sent["maxCount"]) == (0, 0, 3), "airflow-workers-we4sv3"


# 4. Drains: a node's workers stop together, within what AKS waits -----------------------------


def test_a_node_upgrade_drains_a_busy_nodes_workers_within_the_drain_timeout(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    plan = config_for("prod").plan
    per_node = plan.worker_nodes.workers_per_node
    upgrade = plain(reg(run, "airflow-workers-we4sv3").inputs)["upgradeSettings"]
    budget = run.manifest("PodDisruptionBudget", names.WORKER)["spec"]["maxUnavailable"]
    grace = run.manifest("StatefulSet", names.WORKER)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # AKS drains maxSurge nodes at once (learn.microsoft.com/azure/aks/
    # upgrade-aks-node-pools-rolling); the budget admits that many nodes'
    # workers at once, so they stop side by side, each after its tasks.
    surge = int(upgrade["maxSurge"])
    waves = math.ceil(per_node * surge / budget)
    assert waves == 1, f"PodDisruptionBudget/{names.WORKER}: {per_node} workers per node drain in {waves} waves"
    assert waves * grace <= upgrade["drainTimeoutInMinutes"] * 60, \
        "airflow-workers-we4sv3: a busy node's drain ends within drainTimeoutInMinutes (per node)"


def test_the_budget_follows_the_workers_per_node() -> None:
    for stack, keys in [("prod", {}), ("prod", {"workerPool": {"vmSize": "Standard_E8s_v5"}}), ("dev", {})]:
        plan = config_for(stack, **keys).plan
        assert capacity.worker_disruption_allowance(plan.worker_nodes.workers_per_node) == \
            plan.worker_nodes.workers_per_node * capacity.WORKER_MAX_SURGE_NODES, f"{stack} {keys}"


def test_a_worker_vm_size_change_is_refused_while_the_old_pool_runs_nodes() -> None:
    run = deployed([live_pool(3)], workerPool={"vmSize": "Standard_E8s_v5"})
    assert run.error is not None, "deleting a busy pool is drain-limited: the preview must stop"
    message = str(run.error)
    assert "airflow-aks:workerPool.vmSize" in message and "old pool we4sv3 still runs 3 nodes" in message
    assert "Azure/AKS#2090" in message and "scales to zero" in message


def test_a_worker_vm_size_change_goes_ahead_when_the_old_pool_is_empty() -> None:
    idle = [live_pool(0)]
    live = Live(pools=idle)
    result = shown(ok(deployed(idle)), ok(deployed(idle, workerPool={"vmSize": "Standard_E8s_v5"})), live)
    assert [s.name for s in result.of("create")] == ["airflow-workers-we8sv5"]
    assert [s.name for s in result.of("delete")] == ["airflow-workers-we4sv3"]
    assert result.aks == []


def test_a_fixed_pool_is_never_idle_so_the_refusal_says_how_to_rotate_it() -> None:
    fixed = [live_pool(4, autoscale=False)]
    run = deployed(fixed, workerScaling="fixed", workerPool={"vmSize": "Standard_E8s_v5"})
    assert run.error is not None and "az aks nodepool delete" in str(run.error)


# 5. maxPods is fixed at a pool's creation -----------------------------------------------------


@pytest.mark.parametrize(("key", "pool_name"), [("workerPool", E4), ("systemPool", pools.SYSTEM_POOL_NAME)])
def test_a_max_pods_change_on_an_existing_pool_is_refused(key: str, pool_name: str) -> None:
    base = stack_file_config("prod")[f"airflow-aks:{key}"]
    running = [live_pool(2)]
    run = deployed(running, **{key: {**base, "maxPods": 60}})
    assert run.error is not None, f"{key}.maxPods: AKS cannot change it on pool {pool_name}"
    assert f"airflow-aks:{key}.maxPods" in str(run.error) and "runs maxPods 110" in str(run.error)


def test_the_model_flags_a_max_pods_update_as_aks_would() -> None:
    running = [live_pool(2)]
    base = ok(deployed(running))
    after = State.of(base)
    reg(after, "airflow-workers-we4sv3").inputs["maxPods"] = 60
    assert any("maxPods 110 -> 60" in a for a in preview(base, after, Live(pools=running)).aks)


# 6. Airflow only moves forward ----------------------------------------------------------------


PREVIOUS = {"image": "airflowacr0001.azurecr.io/airflow:3.3.2@sha256:" + "0" * 64}


@pytest.mark.parametrize("previous", [PREVIOUS, {"airflowVersion": "3.3.2", **PREVIOUS}])
def test_an_older_airflow_version_is_refused_with_the_way_down(previous: dict[str, Any]) -> None:
    run = deployed([live_pool(1)], previous, airflowVersion="3.3.1")
    assert run.error is not None, "airflow db migrate cannot go back: the preview must stop"
    message = str(run.error)
    assert "airflow-aks:airflowVersion" in message and "Airflow 3.3.2's schema" in message
    assert "airflow db downgrade --to-version 3.3.1" in message


def test_the_same_or_a_first_version_goes_ahead() -> None:
    ok(deployed([live_pool(1)], PREVIOUS))
    ok(deployed([live_pool(1)], {}, airflowVersion="3.3.1"))
    assert deployed_airflow_version({"image": "airflow-aks/airflow:3.3.2-0a1b2c3d4e5f"}) == "3.3.2"


def test_the_version_the_database_was_migrated_to_is_an_output(runs: dict[str, ProgramRun]) -> None:
    assert runs["prod"].outputs["airflowVersion"] == config_for("prod").settings.airflow_version


# 7. workerScaling keda -> fixed takes the replicas back from KEDA's HPA -----------------------


def keda_owns_the_replicas() -> Live:
    # What the cluster has after KEDA scaled the workers: 17 replicas, set by
    # the HPA through the scale subresource (field manager kube-controller-manager).
    return Live(fields={WORKERS: {"spec.replicas": 17}},
                managers={WORKERS: {"spec.replicas": "kube-controller-manager"}}, pools=[live_pool(2)])


def test_keda_to_fixed_pauses_keda_first_and_takes_the_replicas() -> None:
    live = keda_owns_the_replicas()
    base, after = ok(deployed(live.pools)), ok(deployed(live.pools, workerScaling="fixed"))
    result = shown(base, after, live)
    assert result.conflicts == [], "a server-side apply of replicas KEDA's HPA owns must be forced"
    assert result.step(AKS) is None or "workloadAutoScalerProfile" not in str(result.step(AKS).paths)
    scaler = result.step(SCALER)
    assert scaler is not None and scaler.op == "update", f"{SCALER}: paused, not deleted last"
    assert reg(after, SCALER).inputs["metadata"]["annotations"][PAUSED_ANNOTATION] == "true"
    assert SCALER in after.options_of(WORKERS).waits_for(), f"{WORKERS}: after KEDA has let go"
    assert plain(reg(after, WORKERS).inputs)["spec"]["replicas"] == 28


def test_fixed_to_keda_unpauses_and_leaves_the_replicas_alone() -> None:
    pools_ = [live_pool(4, autoscale=False)]
    base, after = ok(deployed(pools_, workerScaling="fixed")), ok(deployed(pools_))
    result = shown(base, after, Live(pools=pools_))
    assert "metadata.annotations" in " ".join(result.step(SCALER).paths)
    assert after.options_of(WORKERS).ignore_changes == ["spec.replicas"]


def test_the_model_sees_the_conflict_without_patch_force() -> None:
    live = keda_owns_the_replicas()
    base, after = ok(deployed(live.pools)), State.of(ok(deployed(live.pools, workerScaling="fixed")))  # a copy
    annotations = reg(after, WORKERS).inputs["metadata"]["annotations"]
    del annotations["pulumi.com/patchForce"]
    assert preview(base, after, live).conflicts == [
        f"{WORKERS}: spec.replicas is owned by kube-controller-manager"]


# 10. The preview model's own rules -----------------------------------------------------------


def test_a_renamed_object_is_created_before_the_old_one_goes(runs: dict[str, ProgramRun]) -> None:
    # pulumi-kubernetes provider.go Diff: deleteBeforeReplace only when the
    # new name and namespace equal the old ones.
    base = runs["prod"]
    after = State.of(base)
    reg(after, "workloads-airflow-config").inputs["metadata"]["name"] = "airflow-config-2"
    step = preview(base, after).step("workloads-airflow-config")
    assert step.op == "replace" and not step.delete_first
    same = State.of(base)
    reg(same, "workloads-airflow-config").inputs["spec"] = {"x": 1}
    reg(same, "workloads-airflow-config").inputs["metadata"]["namespace"] = "elsewhere"
    assert not preview(base, same).step("workloads-airflow-config").delete_first, "a new namespace too"


def test_protect_refuses_a_replacement_only_when_old_and_new_are_protected(runs: dict[str, ProgramRun]) -> None:
    # step_generator.go: `if new.Protect && old.Protect`; step.go DeleteStep: old.Protect.
    base = runs["prod"]
    claim = "workloads-postgres-data"
    after = State.of(base)
    reg(after, claim).inputs["spec"]["storageClassName"] = "premium"
    assert preview(base, after).protected_refusals == [claim]
    reg(after, claim).protect = False
    assert preview(base, after).protected_refusals == [], "unprotect and replace in one update is allowed"
    gone = dataclasses.replace(after, registrations=[r for r in after.registrations if r.name != claim])
    assert preview(base, gone).protected_refusals == [claim], "a delete looks at the old state only"


def test_the_provider_diffs_against_the_live_object(runs: dict[str, ProgramRun]) -> None:
    base = runs["prod"]
    drift = Live(fields={"workloads-pgbouncer-deployment": {"spec.replicas": 5}})
    step = preview(base, base, drift).step("workloads-pgbouncer-deployment")
    assert step is not None and step.paths == ("spec.replicas",), "drift shows against the recorded live object"
    assert preview(base, base, Live(fields={WORKERS: {"spec.replicas": 9}})).step(WORKERS) is None, \
        f"{WORKERS}: ignoreChanges keeps KEDA's replicas"
