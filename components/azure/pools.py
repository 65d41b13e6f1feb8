"""What AKS accepts for node pools that already run, decided from a live read of the cluster.

pulumi-azure-native updates an AgentPool with one PUT built from the
program's inputs, and previews it by diffing inputs: it knows nothing of what
AKS refuses or of what the autoscaler did since. These rules fill that in,
each from AKS's own documentation or API, and turn what AKS would reject (or
could only do by interrupting running tasks) into a refusal at preview that
names the key. Pure functions: `profiles` are agentPoolProfiles as
getManagedCluster lists them (name, count, enableAutoScaling, minCount,
maxCount, maxPods, vmSize, mode, nodeLabels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.model.capacity import NodePoolPlan
from components.model.names import WORKER_POOL_LABEL_KEY, WORKER_POOL_LABEL_VALUE
from components.model.settings import ConfigError

SYSTEM_POOL_NAME = "system"
_POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
# How long AKS drains a node of a pool it deletes: the one figure AKS has
# published is its error, "Drain did not complete pods [...] within 10m0s"
# (PodDrainFailure, Azure/AKS#2090). The pool's drainTimeoutInMinutes is for
# upgrades (AgentPoolUpgradeSettings), and no delete parameter sets it.
POOL_DELETE_DRAIN_MINUTES = 10


def worker_pool_name(vm_size: str) -> str:
    """The worker AgentPool's name, derived from its VM size ("we4sv3").

    AKS cannot change a pool's VM size, so pulumi-azure-native replaces the
    pool when vmSize changes. Under a fixed name the replacement must delete
    the old pool first (the provider has to, as both would have the same Azure
    ID); with the size in the name, the new pool is created first and the old
    one is deleted after it, when its workers have somewhere to go.
    """
    compact = re.sub(r"[^a-z0-9]", "", vm_size.lower().removeprefix("standard_"))
    name = f"w{compact}"[:12]
    if not _POOL_NAME_RE.match(name):
        raise ValueError(f"cannot derive an AKS pool name from {vm_size!r}")
    return name


def _field(profile: Any, name: str) -> Any:
    return profile.get(name) if isinstance(profile, dict) else getattr(profile, name, None)


def live_pool(profiles: Sequence[Any] | None, name: str) -> Any | None:
    return next((p for p in profiles or [] if _field(p, "name") == name), None)


def pool_ceiling(profile: Any) -> int:
    """The most nodes a live pool may run: its autoscaler bound, else its count."""
    if _field(profile, "enable_auto_scaling") and _field(profile, "max_count") is not None:
        return int(_field(profile, "max_count"))
    return int(_field(profile, "count") or 0)


def workers_shrink_first(live_pools: Sequence[Any] | None, pool_name: str, wanted_ceiling: int) -> bool:
    """Whether this update lowers the worker pool's node ceiling.

    Then the worker StatefulSet must shrink first (its removed workers finish
    their tasks: warm shutdown within terminationGracePeriodSeconds) and the
    pool shrinks after, onto nodes with no worker left to interrupt. Otherwise
    (a new pool, more nodes, or a first deployment) the nodes come first.
    """
    if not isinstance(live_pools, (list, tuple)):  # not read yet (unknown in a first preview)
        return False
    profile = live_pool(live_pools, pool_name)
    return profile is not None and wanted_ceiling < pool_ceiling(profile)


@dataclass(frozen=True)
class PoolSize:
    """What the worker pool's PUT carries: count, and the autoscaler's bounds."""

    count: int
    min_count: int | None
    max_count: int | None
    # The plan's ceiling is below the nodes running: this update keeps the
    # ceiling at the live count and a later one lowers it.
    ceiling_kept: bool = False


def worker_pool_size(profiles: Sequence[Any] | None, nodes: NodePoolPlan) -> PoolSize:
    """The worker pool's count and bounds for this update.

    An autoscaled pool's PUT must carry the node count the autoscaler runs
    now: AKS takes any other count as a manual scale, which it refuses on an
    autoscaled pool ("Cannot manually scale AgentPool ... with cluster
    autoscaler enabled", quoted in terraform-provider-azurerm#4543; "its value
    has to be the current node count", Azure/AKS#1627). azure-cli's `az aks
    nodepool update` reads the pool and sends that count back, and
    terraform-provider-azurerm sends the live node_count unless it changed in
    the configuration. ignoreChanges cannot do it: the engine then sends the
    count recorded at creation (0 here), not the live one.

    AKS also checks count against the bounds ("must be greater or equal to
    minCount ... and less than or equal to maxCount", kubernetes-sigs/
    cluster-api-provider-azure#5947), so a ceiling lowered below the running
    nodes is held at their count until the autoscaler has removed them. A
    minCount above the count is allowed: the autoscaler then adds nodes
    (learn.microsoft.com/azure/aks/cluster-autoscaler, "enforces the minimum
    count ... changing the minimum count value from the AKS API").
    """
    name = worker_pool_name(nodes.vm_size)
    profile = live_pool(profiles, name)
    if not nodes.autoscale:
        return PoolSize(count=nodes.max_count, min_count=None, max_count=None)
    if profile is None or not _field(profile, "enable_auto_scaling"):
        # A new pool starts at its minimum; a fixed pool turned autoscaled
        # keeps its nodes (within the new bounds) and the autoscaler takes over.
        live = int(_field(profile, "count") or 0) if profile is not None else nodes.min_count
        return PoolSize(count=min(max(live, nodes.min_count), nodes.max_count), min_count=nodes.min_count,
                        max_count=nodes.max_count)
    live = int(_field(profile, "count") or 0)
    ceiling = max(nodes.max_count, live)
    return PoolSize(count=live, min_count=nodes.min_count, max_count=ceiling, ceiling_kept=ceiling > nodes.max_count)


def max_pods_refused(profiles: Sequence[Any] | None, pools: Sequence[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """Problems for pools whose maxPods differs from what they run.

    `pools`: (config key, AKS pool name, wanted maxPods). "You can't change
    the max pods setting of a node pool after you create it"
    (learn.microsoft.com/azure/aks/create-node-pools); azure-cli's pool
    update never sends it and terraform-provider-azurerm rotates the pool
    for it. pulumi-azure-native does not replace on it (replacement.go's
    AgentPool list: gpuInstanceProfile, vmSize, nodePublicIPTags), so the
    preview would show an update that AKS then rejects.
    """
    problems = []
    for key, name, wanted in pools:
        profile = live_pool(profiles, name)
        running = _field(profile, "max_pods") if profile is not None else None
        if running is not None and int(running) != wanted:
            problems.append((f"{key}.maxPods", (
                f"the cluster's pool {name} runs maxPods {int(running)} and AKS cannot change it on an existing "
                f"pool; keep {int(running)}, or give the pool new nodes with it: for the worker pool, change "
                f"workerPool.vmSize at the same time (a new pool is created), for the system pool rotate it as "
                f"for systemPool.vmSize")))
    return problems


def busy_pool_delete_refused(profiles: Sequence[Any] | None, keep: str,
                             longest_task_seconds: int) -> list[tuple[str, str]]:
    """Problems for worker pools this update would delete while they run nodes.

    AKS deletes a pool by cordoning and draining its nodes, honouring
    PodDisruptionBudgets, for a bounded time per node, and fails the delete
    with PodDrainFailure when a pod outlives it (Azure/AKS#2090, "Drain did
    not complete pods ... within 10m0s"). A busy worker stops only after its
    running tasks (up to longestTaskSeconds), so deleting a busy pool either
    fails midway or, with --ignore-pdb, interrupts tasks. An empty pool is
    deleted at once.
    """
    busy = [p for p in profiles or [] if _field(p, "name") != keep and _is_worker_pool(p)
            and int(_field(p, "count") or 0) > 0]
    return [("workerPool.vmSize", (
        f"the worker pool would move to new nodes, but the old pool {_field(p, 'name')} still runs "
        f"{int(_field(p, 'count'))} nodes. AKS drains a deleted pool's nodes for about "
        f"{POOL_DELETE_DRAIN_MINUTES} minutes each (Azure/AKS#2090), less than a running task may take "
        f"({longest_task_seconds} s), so the delete would fail midway or interrupt tasks; " + (
            "it scales to zero nodes once no task has run for the KEDA cooldown and the autoscaler's "
            "scale-down delay: change workerPool.vmSize then" if _field(p, "enable_auto_scaling") else
            "a fixed pool never empties by itself: once no task runs, delete it yourself (az aks nodepool "
            f"delete -g <group> --cluster-name <cluster> -n {_field(p, 'name')}), run `pulumi refresh`, then "
            "`pulumi up`"))) for p in busy]


def _is_worker_pool(profile: Any) -> bool:
    # Every worker pool this program has declared carries the label (since
    # its first release); a pool someone added by hand does not.
    labels = _field(profile, "node_labels") or {}
    return labels.get(WORKER_POOL_LABEL_KEY) == WORKER_POOL_LABEL_VALUE


def system_pool_change_refused(live_pools: Sequence[tuple[str, str]], wanted_vm_size: str) -> ConfigError | None:
    """The error for a systemPool.vmSize that differs from what the cluster runs.

    The system pool is declared inline in the ManagedCluster, which
    pulumi-azure-native updates in place with one PUT of the whole cluster; AKS
    rejects a changed agentPoolProfile vmSize (its API versions before
    2026-01-02-preview) and also adding a pool through the cluster. So the
    program refuses, at preview, and says how to rotate the pool by hand.
    """
    live = dict(live_pools).get(SYSTEM_POOL_NAME)
    if live is None or live == wanted_vm_size:
        return None
    tmp = "systemtmp"
    steps = "; ".join([
        f"az aks nodepool add -g <group> --cluster-name <cluster> -n {tmp} --mode System "
        f"--node-vm-size {live} --node-count 2",
        f"az aks nodepool delete -g <group> --cluster-name <cluster> -n {SYSTEM_POOL_NAME} (AKS drains it)",
        f"az aks nodepool add -g <group> --cluster-name <cluster> -n {SYSTEM_POOL_NAME} --mode System "
        f"--node-vm-size {wanted_vm_size} --node-count <systemPool.count>",
        f"az aks nodepool delete -g <group> --cluster-name <cluster> -n {tmp}",
        "then `pulumi refresh` and `pulumi up`",
    ])
    return ConfigError([("systemPool.vmSize", (
        f"the cluster's system pool runs {live} and AKS cannot change a pool's VM size in place; "
        f"keep {live} here, or rotate the pool to {wanted_vm_size} by hand first: {steps}"))])
