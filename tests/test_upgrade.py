"""Upgrading this program is a day-2 change too: the current program previewed against the
state a stack deployed by an earlier version holds, on a busy cluster.

The states are what each earlier commit's program declares, recorded from git
history by tests/upgrade/capture.py with that commit's own harness, and kept
in tests/upgrade/states/ (a test checks they are what git history gives).
Nothing that holds data may be replaced or deleted, and each data
StatefulSet's pod must mount the claim it mounted before.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.model import names
from tests.harness import ROOT, ProgramRun, shared_run, stack_file_config
from tests.preview import Live, Preview, State, get_path, preview
from tests.upgrade.capture import capture_commits
from tests.upgrade.recorder import Registration

STATES = ROOT / "tests" / "upgrade" / "states"
# The releases, and the last commit before the data StatefulSets moved
# from volumeClaimTemplates to claims of their own (8a2887f).
RELEASES = {
    "v0.8.0": "9594b2b52d84153c32130365f01350e0f7f0e253",
    "v0.7.0": "098ba944582a67732b5cf14b41827363a9b5d5bb",
    "v0.6.0": "7b0e6e5846c843a1d8adcc7fcab3fc552b3a21b1",
    "v0.5.0": "7ee9d99c06411ceffc13c041b51b419763210fe9",
    "v0.4.0": "e99d3929b85810213861171d71308ebaff1dccb4",
    "v0.3.0": "0ed8bd342f9378ff9e4c7219b05382f8a6a54f68",
    "v0.2.0": "bd8e8c03ac979070229f9761c7178f9307133808",
    "v0.1.0": "68baacefa30eee7e73fa3c31cea2e2665a620b5f",
    "before-8a2887f": "0187cea0e464dd324f9b32b4473d094b69954235",
}
STACKS = ("dev", "prod")
CASES = [(release, stack) for release in RELEASES for stack in STACKS]

# What holds data: these may change in place, never be replaced or deleted.
DATA_TYPES = {
    "kubernetes:core/v1:PersistentVolumeClaim",
    "azure-native:storage:StorageAccount", "azure-native:storage:BlobContainer",
    "azure-native:containerregistry:Registry", "azure-native:containerservice:ManagedCluster",
    "azure-native:resources:ResourceGroup",
    # The generated secrets: a new value locks Airflow out of its own database.
    "random:index/randomPassword:RandomPassword", "random:index/randomBytes:RandomBytes",
    "kubernetes:core/v1:Namespace",
}
DATA_STATEFULSETS = {names.POSTGRES, names.RABBITMQ}


def state_file(release: str, stack: str) -> Path:
    return STATES / f"{release}-{stack}.json"


def load(release: str, stack: str) -> State:
    return State.load(state_file(release, stack))


def pools_of(state: State, busy: int) -> list[dict[str, Any]]:
    """The worker pools the state declares, as AKS lists them with `busy` nodes each."""
    found = []
    for r in state.registrations:
        if r.type == "azure-native:containerservice:AgentPool":
            i = r.inputs
            pool = {"name": i["agentPoolName"], "vmSize": i["vmSize"], "mode": i.get("mode", "User"),
                    "maxPods": i.get("maxPods"), "nodeLabels": i.get("nodeLabels", {}),
                    "enableAutoScaling": bool(i.get("enableAutoScaling")), "count": busy}
            if pool["enableAutoScaling"]:
                pool.update(minCount=i.get("minCount"), maxCount=i.get("maxCount"))
            found.append(pool)
    return found


def claim_templates(state: State) -> set[tuple[str, str, str]]:
    """The claims the state's StatefulSets made from their templates: in the cluster, in no resource."""
    made = set()
    for r in state.registrations:
        if r.type == "kubernetes:apps/v1:StatefulSet":
            meta = r.inputs["metadata"]
            for t in r.inputs["spec"].get("volumeClaimTemplates", []):
                made.add(("PersistentVolumeClaim", meta["namespace"], f"{t['metadata']['name']}-{meta['name']}-0"))
    return made


CILIUM = {"networkDataplane": "cilium", "networkPolicy": "cilium"}


def live_network(state: State, migrated: bool) -> dict[str, Any]:
    """The cluster's networkProfile as AKS has it: the state's, after the documented
    `az aks update --network-dataplane cilium --network-policy cilium` if `migrated`."""
    [cluster] = [r for r in state.registrations if r.type == "azure-native:containerservice:ManagedCluster"]
    profile = dict(cluster.inputs.get("networkProfile", {}))
    return {**profile, **CILIUM} if migrated else profile


def upgrade(release: str, stack: str, busy: int, migrated: bool = True) -> tuple[State, ProgramRun, Preview]:
    """The state `release` left, the current program's preview run against it, and what the preview shows.

    The run is shared (tests here and in test_aks_access.py ask for the same 18): read it, or copy it
    with State.of before changing it.
    """
    state = load(release, stack)
    pools = pools_of(state, busy)
    run = shared_run(stack, stack_file_config(stack), preview=True, updating=frozenset({"airflow-aks"}),
                     live_worker_pools=pools, previous_outputs=state.outputs,
                     live_cluster={"networkProfile": live_network(state, migrated)})
    live = Live(pools=pools, objects=claim_templates(state))
    return state, run, preview(state, run, live)


def mounted_claim(reg: Registration, sent: dict[str, Any]) -> str:
    """The claim a data StatefulSet's pod mounts as `data`: a template's claim wins over a
    pod volume of the same name (kubernetes stateful_set_utils.go, updateStorage)."""
    spec = sent["spec"]
    for t in spec.get("volumeClaimTemplates", []):
        if t["metadata"]["name"] == "data":
            return f"data-{sent['metadata']['name']}-0"
    [volume] = [v for v in spec["template"]["spec"]["volumes"] if v["name"] == "data"]
    return volume["persistentVolumeClaim"]["claimName"]


def effective(old: Registration, new: Registration) -> dict[str, Any]:
    """The StatefulSet as the engine sends it: ignoreChanges paths keep their deployed values."""
    sent = {**new.inputs, "spec": dict(new.inputs["spec"])}
    if "spec.volumeClaimTemplates" in new.ignore_changes:
        templates = get_path(old.inputs, "spec.volumeClaimTemplates")
        sent["spec"].pop("volumeClaimTemplates", None)
        if isinstance(templates, list):
            sent["spec"]["volumeClaimTemplates"] = templates
    return sent


@pytest.mark.parametrize(("release", "stack"), CASES)
def test_an_upgrade_keeps_everything_that_holds_data(release: str, stack: str) -> None:
    _, run, shown = upgrade(release, stack, busy=0)
    assert run.error is None, f"{release} {stack}: {run.error}"
    assert not shown.stopped, f"{release} {stack}: {shown}"
    touched = [s for s in shown.steps if s.op in ("replace", "delete") and
               (s.type in DATA_TYPES or (s.type.endswith(":StatefulSet") and s.name.startswith("workloads-")
                                         and any(n in s.name for n in ("postgres", "rabbitmq"))))]
    assert touched == [], f"{release} {stack}: would replace or delete what holds data: {touched}"
    assert shown.exists == [], f"{release} {stack}: creates meeting existing objects: {shown.exists}"
    assert shown.aks == [], f"{release} {stack}: {shown.aks}"


@pytest.mark.parametrize(("release", "stack"), CASES)
def test_the_data_statefulsets_mount_the_claims_they_mounted(release: str, stack: str) -> None:
    state, run, _ = upgrade(release, stack, busy=0)
    old = {r.inputs["metadata"]["name"]: r for r in state.registrations if r.type == "kubernetes:apps/v1:StatefulSet"}
    new = {r.inputs["metadata"]["name"]: r for r in run.registrations if r.type == "kubernetes:apps/v1:StatefulSet"}
    for name in DATA_STATEFULSETS:
        before = mounted_claim(old[name], old[name].inputs)
        after = mounted_claim(new[name], effective(old[name], new[name]))
        assert after == before, f"{release} {stack} StatefulSet/{name}: mounts {after}, had {before}"


def test_a_stack_from_before_8a2887f_keeps_its_claim_templates() -> None:
    """The negative control: without ignoreChanges the templates would go and the StatefulSets be replaced."""
    state, run, _ = upgrade("before-8a2887f", "prod", busy=0)
    assert run.error is None, run.error
    without = State.of(run)  # a copy: the run is shared
    for r in without.registrations:
        if r.type == "kubernetes:apps/v1:StatefulSet" and r.inputs["metadata"]["name"] in DATA_STATEFULSETS:
            assert r.ignore_changes == ["spec.volumeClaimTemplates"], r.name
            r.ignore_changes = []
    replaced = {s.name for s in preview(state, without, Live(objects=claim_templates(state))).of("replace")}
    assert {"workloads-postgres-statefulset", "workloads-rabbitmq-statefulset"} <= replaced


def test_a_cluster_from_before_the_policy_engine_is_refused_until_aks_has_migrated_it() -> None:
    # pulumi-azure-native replaces a ManagedCluster whose networkDataplane or
    # networkPolicy changes (replacement.go); the program leaves both as
    # deployed and refuses until the cluster runs Cilium.
    _, run, _ = upgrade("before-8a2887f", "dev", busy=0, migrated=False)
    assert run.error is not None and "live cluster: networkProfile" in str(run.error)
    assert "az aks update -g <group> -n <cluster> --network-dataplane cilium --network-policy cilium" in \
        str(run.error)
    _, _, shown = upgrade("before-8a2887f", "dev", busy=0)
    step = shown.step("airflow-aks")
    assert step is not None and step.op == "update", "airflow-aks: after the migration, updated in place"


def test_a_busy_pool_from_before_8a2887f_is_refused_with_the_way_to_move_it() -> None:
    # That release's worker pool is named `workers` and fixed: the current
    # one is named after its VM size, so the upgrade moves the workers.
    _, run, _ = upgrade("before-8a2887f", "prod", busy=4)
    assert run.error is not None and "airflow-aks:workerPool.vmSize" in str(run.error)
    assert "old pool workers still runs 4 nodes" in str(run.error) and "az aks nodepool delete" in str(run.error)


def test_a_busy_autoscaled_pool_from_the_latest_release_is_updated_as_aks_accepts() -> None:
    _, run, shown = upgrade("v0.1.0", "prod", busy=2)
    assert run.error is None, run.error
    assert shown.aks == [], shown.aks


@functools.cache
def captured() -> dict[str, dict[str, str]]:
    """What each release's commit declares for each stack, all captured by one interpreter."""
    return capture_commits(list(RELEASES.values()), STACKS)


@pytest.mark.parametrize(("release", "stack"), CASES)
def test_the_recorded_states_are_what_git_history_declares(release: str, stack: str) -> None:
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{RELEASES[release]}^{{commit}}"],
                      capture_output=True, check=False).returncode != 0:
        pytest.fail(f"{RELEASES[release]} is not in this clone's history: clone with history (no --depth)")
    assert captured()[RELEASES[release]][stack] == state_file(release, stack).read_text(), \
        f"{state_file(release, stack)}: regenerate with `venv/bin/python -m tests.upgrade.capture "\
        f"{RELEASES[release]} {stack}`"
