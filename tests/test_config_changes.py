"""docs/operations.md's "What a config change does" table, kept true: for each row, the
program runs under mocks for the prod stack and for the changed config, and
tests/preview.py says what the preview would show (providers' diff rules)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.azure.key_vault import PURGE_PROTECTION_OUTPUT
from components.azure.pools import worker_pool_name
from components.model import names
from components.model.capacity import worker_drain_minutes, worker_stop_seconds
from tests.conftest import config_for
from tests.harness import ProgramRun, plain, shared_run, stack_file_config
from tests.preview import Live, Preview, State, forces_replacement, preview, summary
from tests.readme_tables import readme_ui_example, table_after

HEADING = "## What a config change does"
PAGE = "docs/operations.md"
# The deployed prod stack, busy: the autoscaler runs 3 worker nodes, KEDA's HPA
# has set the worker replicas, the database was migrated by Airflow 3.3.2.
BUSY_NODES = 3
PROD_POOL = {"name": worker_pool_name("Standard_E4s_v3"), "count": BUSY_NODES, "vmSize": "Standard_E4s_v3",
             "mode": "User", "enableAutoScaling": True, "minCount": 0, "maxCount": 3, "maxPods": 110,
             "nodeLabels": {"airflow-aks/pool": "celery-workers"}}
SYSTEM_POOL = {"vmSize": "Standard_D8s_v5", "maxPods": 110}
# The deployed prod stack has its Key Vault with purge protection on (keyVault, protect).
PREVIOUS = {"airflowVersion": "3.3.2", "image": "airflowacr0001.azurecr.io/airflow:3.3.2@sha256:" + "0" * 64,
            PURGE_PROTECTION_OUTPUT: True}
BUSY = Live(fields={"workloads-airflow-worker": {"spec.replicas": 28}},
            managers={"workloads-airflow-worker": {"spec.replicas": "kube-controller-manager"}}, pools=[PROD_POOL])

# Row label (the table's first cell) -> the keys it changes on the prod stack.
CHANGES: dict[str, dict[str, Any]] = {
    "`parallelism` 1000 → 500": {"parallelism": 500},
    "`parallelism` 1000 → 1200": {"parallelism": 1200},
    "`workerConcurrency` 36 → 24": {"workerConcurrency": 24},
    "`workers` (derived 28) → 30": {"workers": 30},
    "`workerScaling` keda → fixed": {"workerScaling": "fixed"},
    "`maxActiveTasksPerDag` → 500": {"maxActiveTasksPerDag": 500},
    "`maxActiveRunsPerDag` 16 → 4": {"maxActiveRunsPerDag": 4},
    "`taskQueuedTimeoutSeconds` → 3600": {"taskQueuedTimeoutSeconds": 3600},
    "`apiServerReplicas` (derived 2) → 5": {"apiServerReplicas": 5},
    "`workerMemoryPerSlotMiB` 72 → 96": {"workerMemoryPerSlotMiB": 96},
    "`workerCpuPerSlotMillicores` 1 → 20": {"workerCpuPerSlotMillicores": 20},
    "`fanoutTasks` → 500": {"fanoutTasks": 500},
    "`fanoutSleepSeconds` 100 → 30": {"fanoutSleepSeconds": 30},
    "`fanoutSchedule` 0 * * * * → 30 6 * * *": {"fanoutSchedule": "30 6 * * *"},
    "`prewarmSchedules` (derived) → []": {"prewarmSchedules": []},
    "`longestTaskSeconds` 3600 → 7200": {"longestTaskSeconds": 7200},
    "`flower` false → true": {"flower": True},
    "`postgresStorageGiB` 32 → 64": {"postgresStorageGiB": 64},
    "`rabbitmqStorageGiB` 8 → 16": {"rabbitmqStorageGiB": 16},
    # Another release by its digest (a stand-in digest: the mocks pull nothing).
    "`postgresImage` postgres:17.11 → postgres:17.12": {"postgresImage": "postgres:17.12@sha256:" + "1" * 64},
    "`rabbitmqImage` rabbitmq:4.1.8 → rabbitmq:4.2.9": {"rabbitmqImage": "rabbitmq:4.2.9@sha256:" + "2" * 64},
    "`airflowVersion` 3.3.2 → 3.3.1": {"airflowVersion": "3.3.1"},
    "`kubernetesVersion` 1.35 → 1.36": {"kubernetesVersion": "1.36"},
    "`namespace` airflow → airflow-prod": {"namespace": "airflow-prod"},
    "`ui` port-forward → gateway (the user guide's example)": {"ui": readme_ui_example()},
    "`database` in-cluster → azure": {"database": "azure"},
    "`taskLogRetentionDays` 30 → 7": {"taskLogRetentionDays": 7},
    "`remoteTaskLogs` true → false": {"remoteTaskLogs": False},
    "`databaseBackupSchedule` (derived) → 0 3 * * *": {"databaseBackupSchedule": "0 3 * * *"},
    "`databaseBackupRetentionDays` 14 → 7": {"databaseBackupRetentionDays": 7},
    "`acrSku` Standard → Premium": {"acrSku": "Premium"},
    "`clusterTier` Standard → Premium": {"clusterTier": "Premium"},
    "`protect` true → false": {"protect": False},
    "`systemPool.count` 2 → 3": {"systemPool": {"vmSize": "Standard_D8s_v5", "count": 3}},
    "`systemPool.vmSize` D8s_v5 → D16s_v5": {"systemPool": {"vmSize": "Standard_D16s_v5", "count": 2}},
    "`workerPool.vmSize` E4s_v3 → E8s_v5": {"workerPool": {"vmSize": "Standard_E8s_v5"}},
    "`workerPool.maxPods` 110 → 60": {"workerPool": {"vmSize": "Standard_E4s_v3", "maxPods": 60}},
    "`workerPool` `maxCount` (derived 3) → 6": {"workerPool": {"vmSize": "Standard_E4s_v3", "minCount": 0,
                                                                      "maxCount": 6}},
    "`airflowConfig` adds an option": {"airflowConfig": {"core": {"dagbag_import_timeout": "60"}}},
    "`taskEgress` adds an entry": {"taskEgress": [{"cidr": "10.20.0.0/16", "port": 5432}]},
    "`keyVault` true → false": {"keyVault": False},
    "`apiServerAuthorizedIpRanges` [] → [203.0.113.0/24]": {"apiServerAuthorizedIpRanges": ["203.0.113.0/24"]},
}


def deployed(config: dict[str, Any]) -> ProgramRun:
    """The program against the deployed, busy prod stack (its cluster and pools as Azure lists them)."""
    return shared_run("prod", config, preview=True, updating=frozenset({"airflow-aks"}),
                       live_system_pool=SYSTEM_POOL, live_worker_pools=[PROD_POOL], previous_outputs=PREVIOUS)


def workers_cell(before: ProgramRun, after: ProgramRun) -> str:
    shown = preview(before, after, BUSY)
    if shown.stopped:
        return "unchanged"
    old = before.manifest("StatefulSet", names.WORKER)["spec"]
    new = after.manifest("StatefulSet", names.WORKER)["spec"]
    parts = []
    # Under KEDA the replicas follow the tasks, up to the ScaledObject's maximum.
    most = [r.manifest("ScaledObject", names.WORKER)["spec"]["maxReplicaCount"] for r in (before, after)]
    paused = "autoscaling.keda.sh/paused" in after.manifest("ScaledObject", names.WORKER)["metadata"].get(
        "annotations", {})
    if paused:
        parts.append(f"{new['replicas']}, fixed")
    elif most[0] != most[1]:
        parts.append(f"up to {most[0]} → {most[1]}")
    elif old["replicas"] != new["replicas"]:
        parts.append(f"{old['replicas']} → {new['replicas']}")
    if plain(old["template"]) != plain(new["template"]):
        parts.append("roll")
    return ", ".join(parts) or "unchanged"


def _template_changed(shown: Preview, name: str) -> bool:
    step = shown.step(name)
    return step is not None and any(p.startswith("spec.template") for p in step.paths)


def busy_cell(before: ProgramRun, after: ProgramRun, settings_after: Any) -> str:
    """What `pulumi up` does to a busy prod: running tasks, restarts, drains, and how long."""
    shown = preview(before, after, BUSY)
    if shown.stopped:
        return "nothing changes: the preview stops"
    grace = worker_stop_seconds(settings_after.longest_task_seconds) // 60
    clauses = []
    most = [r.manifest("ScaledObject", names.WORKER)["spec"]["maxReplicaCount"] for r in (before, after)]
    workers = max(most)  # a roll goes through every worker the StatefulSet has
    if _template_changed(shown, "workloads-airflow-worker"):
        clauses.append(f"workers roll one at a time, each after its running tasks: up to {workers} x {grace} min")
    elif most[1] < most[0]:
        clauses.append(f"surplus workers stop after their running tasks: up to {grace} min")
    pools = [s for s in shown.steps if s.type.endswith(":AgentPool")]
    cluster = shown.step("airflow-aks")
    if cluster is not None and "kubernetesVersion" in cluster.paths:
        clauses.append("the control plane upgrades first")
    if any(s.op == "update" and "orchestratorVersion" in s.paths for s in pools):
        per_node = config_for("prod").plan.worker_nodes.workers_per_node
        drain = worker_drain_minutes(settings_after.longest_task_seconds)
        clauses.append(f"worker nodes upgrade one at a time, each node's {per_node} workers drained together "
                       f"within {drain} min")
    if any(s.op == "create" for s in pools):
        clauses.append("the new pool comes first")
    rolled = sorted(names_.removeprefix("airflow-") for step_name, names_ in DEPLOYMENTS.items()
                    if _template_changed(shown, step_name))
    if rolled:
        clauses.append(f"{', '.join(rolled)} roll, new pods before old ones go")
    if _template_changed(shown, "workloads-airflow-triggerer"):
        clauses.append("triggerer restarts, deferred tasks resume")
    if _template_changed(shown, "workloads-postgres-statefulset"):
        clauses.append("PostgreSQL restarts: seconds without a database")
    if _template_changed(shown, "workloads-rabbitmq-statefulset"):
        clauses.append("RabbitMQ restarts: seconds without a broker")
    if any(s.type.endswith(":PersistentVolumeClaim") and s.op == "update" for s in shown.steps):
        clauses.append("the disk grows online")
    return "; ".join(clauses) or "nothing restarts"


# The Deployments' Pulumi names and the objects they declare.
DEPLOYMENTS = {
    "workloads-airflow-api-server": names.API_SERVER, "workloads-airflow-scheduler": names.SCHEDULER,
    "workloads-airflow-dag-processor": names.DAG_PROCESSOR, "workloads-pgbouncer-deployment": names.PGBOUNCER,
    "workloads-metrics-deployment": names.STATSD, "workloads-airflow-flower": names.FLOWER,
}


def readme_rows() -> dict[str, list[str]]:
    return table_after(HEADING, page=PAGE)


@pytest.fixture(scope="module")
def base() -> ProgramRun:
    run = deployed(stack_file_config("prod"))
    assert run.error is None, run.error
    return run


def changed_config(label: str) -> dict[str, Any]:
    config = stack_file_config("prod")
    config.update({f"airflow-aks:{k}": v for k, v in CHANGES[label].items()})
    return config


def test_the_table_has_a_row_for_every_change_tested() -> None:
    assert set(readme_rows()) == set(CHANGES)


@pytest.mark.parametrize("label", list(CHANGES))
def test_the_readme_says_what_the_preview_shows(base: ProgramRun, label: str) -> None:
    after = deployed(changed_config(label))
    shown, workers, busy, _notes = readme_rows()[label]
    assert re.sub(r"`", "", shown) == summary(preview(base, after, BUSY)), label
    assert workers == workers_cell(base, after), label
    try:
        settings = config_for("prod", **CHANGES[label]).settings
    except ValueError:
        settings = config_for("prod").settings
    assert busy == busy_cell(base, after, settings), label


# The rules the table rests on, each from its provider's source (tests/preview.py).

@pytest.mark.parametrize(("typ", "path", "mutable", "replaces"), [
    # pulumi-kubernetes provider.go: ConfigMap data is immutable without enableConfigMapMutable.
    ("kubernetes:core/v1:ConfigMap", "data.airflow.cfg", False, True),
    ("kubernetes:core/v1:ConfigMap", "data.airflow.cfg", True, False),
    # diff.go: a claim's size is not force-new; volumeClaimTemplates are.
    ("kubernetes:core/v1:PersistentVolumeClaim", "spec.resources.requests.storage", True, False),
    ("kubernetes:apps/v1:StatefulSet", "spec.volumeClaimTemplates", True, True),
    ("kubernetes:apps/v1:StatefulSet", "spec.template.spec.containers", True, False),
    ("kubernetes:batch/v1:Job", "spec.template.metadata.annotations", True, True),
    # replacement.go: an AgentPool's vmSize; a RoleAssignment's principalId.
    ("azure-native:containerservice:AgentPool", "vmSize", True, True),
    ("azure-native:containerservice:AgentPool", "count", True, False),
    ("azure-native:authorization:RoleAssignment", "principalId", True, True),
    ("azure-native:authorization:RoleAssignment", "scope", True, True),
    # Not in replacement.go: workload identity is turned on in place, and a
    # federated credential's subject or a lifecycle rule change in place.
    ("azure-native:containerservice:ManagedCluster", "oidcIssuerProfile.enabled", True, False),
    ("azure-native:containerservice:ManagedCluster", "securityProfile.workloadIdentity.enabled", True, False),
    ("azure-native:managedidentity:FederatedIdentityCredential", "subject", True, False),
    ("azure-native:storage:ManagementPolicy", "policy.rules", True, False),
    # diff.go lists no networking.k8s.io kind: a NetworkPolicy's rules change in place (taskEgress).
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spec.egress", True, False),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "metadata.name", True, True),
    # replacement.go: a StorageAccount's location.
    ("azure-native:storage:StorageAccount", "location", True, True),
])
def test_provider_replacement_rules(typ: str, path: str, mutable: bool, replaces: bool) -> None:
    assert forces_replacement(typ, [path], k8s_config_maps_mutable=mutable) is replaces


def test_the_model_flags_a_config_map_replacement_without_the_mutable_flag(base: ProgramRun) -> None:
    config = stack_file_config("prod")
    config["airflow-aks:maxActiveRunsPerDag"] = 4
    run = deployed(config)
    assert run.error is None, run.error
    after = State.of(run)  # a copy: the run is shared
    for r in after.registrations:
        if r.type == "pulumi:providers:kubernetes":
            r.inputs.pop("enableConfigMapMutable", None)
    step = preview(base, after).step("workloads-airflow-config")
    assert step is not None and step.op == "replace" and step.delete_first, "a fixed-name ConfigMap, deleted first"
