"""The Azure side of the graph under Pulumi mocks: each resource and its key inputs."""

from __future__ import annotations

import re

import pulumi
import pytest

from components.azure.acr_auth import TOKEN_USERNAME
from components.azure.image import APP_DIR
from components.azure.platform import ACR_PULL_ROLE
from components.model.names import DAGS_FOLDER, WORKER_POOL_LABEL_KEY, WORKER_POOL_TAINT
from tests.conftest import config_for
from tests.harness import (
    ENTRA_TOKEN,
    KUBELET_OBJECT_ID,
    SUBSCRIPTION,
    TENANT,
    ProgramRun,
    shared_run,
    stack_file_config,
)

RG = "azure-native:resources:ResourceGroup"
ACR = "azure-native:containerregistry:Registry"
AKS = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"
ROLE = "azure-native:authorization:RoleAssignment"
IMAGE = "docker-build:index:Image"
K8S = "pulumi:providers:kubernetes"


def registry_id(run: ProgramRun) -> str:
    rg = run.outputs["resourceGroupName"]
    name = run.outputs["registryLoginServer"].split(".")[0]
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_one_resource_group_registry_cluster_and_worker_pool(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    for typ in (RG, ACR, AKS, POOL, IMAGE, K8S):
        run.one(typ)
    # AcrPull, the task-log identity's role (tests/test_task_log_storage.py),
    # the backup identity's (tests/test_backups.py) and in prod, with keyVault,
    # the vault's reader roles (tests/test_key_vault.py); the log reader's
    # (tests/test_task_log_storage.py).
    # The deploying identity's cluster-admin role (tests/test_aks_access.py).
    assert sorted(r.name for r in run.of_type(ROLE)) == sorted([
        "airflow-acr-pull", "airflow-cluster-admin", "airflow-task-logs-backup-blob-contributor",
        "airflow-task-logs-blob-contributor", "airflow-task-logs-reader-blob-reader",
        *(["airflow-kv-secrets-user", "airflow-kv-api-server-secrets-user"] if stack == "prod" else [])])


@pytest.mark.parametrize(("stack", "sku"), [("dev", "Basic"), ("prod", "Standard")])
def test_registry_sku_from_config_and_admin_user_off(runs: dict[str, ProgramRun], stack: str, sku: str) -> None:
    registry = runs[stack].one(ACR)
    assert registry.inputs["sku"] == {"name": sku}, f"{registry.name}: sku"
    assert registry.inputs["adminUserEnabled"] is False, f"{registry.name}: admin user must be off"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cluster_identity_rbac_version_and_system_pool(runs: dict[str, ProgramRun], stack: str) -> None:
    settings = config_for(stack).settings
    cluster = runs[stack].one(AKS)
    assert cluster.inputs["identity"] == {"type": "SystemAssigned"}, f"{cluster.name}: identity"
    assert cluster.inputs["enableRBAC"] is True, f"{cluster.name}: Kubernetes RBAC"
    assert cluster.inputs["kubernetesVersion"] == settings.kubernetes_version
    assert cluster.inputs["dnsPrefix"] == f"airflow-{stack}"
    [system] = cluster.inputs["agentPoolProfiles"]
    assert system["mode"] == "System"
    assert system["vmSize"] == settings.system_pool.vm_size
    assert system["count"] == settings.system_pool.min_count
    assert system["maxPods"] == settings.system_pool.max_pods


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cluster_enforces_network_policies_with_cilium(runs: dict[str, ProgramRun], stack: str) -> None:
    """Without a policy engine AKS stores NetworkPolicies and enforces none; the
    Cilium engine needs the Cilium dataplane, on Azure CNI overlay."""
    cluster = runs[stack].one(AKS)
    assert cluster.inputs["networkProfile"] == {
        "networkPlugin": "azure", "networkPluginMode": "overlay",
        "networkDataplane": "cilium", "networkPolicy": "cilium",
    }, f"{cluster.name}: networkProfile"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_worker_pool_is_sized_from_the_plan(runs: dict[str, ProgramRun], stack: str) -> None:
    nodes = config_for(stack).plan.worker_nodes
    pool = runs[stack].one(POOL)
    assert pool.inputs["mode"] == "User"
    assert pool.inputs["vmSize"] == nodes.vm_size
    # KEDA runs the workers, so the cluster autoscaler runs the nodes: from 0 to the peak's.
    assert pool.inputs["count"] == 0, f"{pool.name}: starts with no node"
    assert pool.inputs["enableAutoScaling"] is True
    assert (pool.inputs["minCount"], pool.inputs["maxCount"]) == (0, nodes.nodes_needed), pool.name
    assert pool.inputs["resourceName"] == runs[stack].outputs["clusterName"]
    assert pool.inputs["orchestratorVersion"] == config_for(stack).settings.kubernetes_version


def test_prod_worker_pool_autoscales_from_zero_to_three_e4s_v3() -> None:
    pool = shared_run("prod").one(POOL)
    assert (pool.inputs["vmSize"], pool.inputs["minCount"], pool.inputs["maxCount"]) == ("Standard_E4s_v3", 0, 3), \
        "the worker AgentPool: 28 workers at 10 per E4s_v3"


def test_a_fixed_worker_set_has_a_fixed_pool() -> None:
    config = stack_file_config("prod")
    config["airflow-aks:workerScaling"] = "fixed"
    pool = shared_run("prod", config).one(POOL)
    assert (pool.inputs["count"], pool.inputs["enableAutoScaling"]) == (3, False)
    assert "minCount" not in pool.inputs and "maxCount" not in pool.inputs


def test_worker_pool_is_labelled_and_tainted_for_workers_only(runs: dict[str, ProgramRun]) -> None:
    pool = runs["prod"].one(POOL)
    assert WORKER_POOL_LABEL_KEY in pool.inputs["nodeLabels"]
    assert pool.inputs["nodeTaints"] == [WORKER_POOL_TAINT]
    assert WORKER_POOL_TAINT.endswith(":NoSchedule")
    system = runs["prod"].one(AKS).inputs["agentPoolProfiles"][0]
    assert "nodeTaints" not in system, "the control plane runs on the system pool"


def test_autoscaler_bounds_reach_the_pool() -> None:
    config = stack_file_config("prod")
    config["airflow-aks:workerPool"] = {"vmSize": "Standard_E4s_v3", "minCount": 2, "maxCount": 8}
    run = shared_run("prod", config)
    assert run.error is None, run.error
    pool = run.one(POOL)
    assert (pool.inputs["enableAutoScaling"], pool.inputs["minCount"], pool.inputs["maxCount"]) == (True, 2, 8)
    assert pool.inputs["count"] == 2, "starts at the autoscaler's minimum"
    # ignoreChanges would make the engine send the count of the pool's
    # creation on every later update; the program sends the live one instead
    # (tests/test_day2.py, "The worker pool under the autoscaler").
    assert "count" not in run.options_of("airflow-workers-we4sv3").ignore_changes, "airflow-workers-we4sv3: count"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_acr_pull_for_the_kubelet_identity_scoped_to_the_registry(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    [role] = [r for r in run.of_type(ROLE) if r.name == "airflow-acr-pull"]
    assert role.inputs["scope"] == registry_id(run), f"{role.name}: scope must be the registry"
    assert role.inputs["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE}")
    assert role.inputs["principalId"] == KUBELET_OBJECT_ID, f"{role.name}: the kubelet identity"
    assert role.inputs["principalType"] == "ServicePrincipal"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_image_is_built_from_app_and_pushed_to_the_registry(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    login_server = run.outputs["registryLoginServer"]
    image = run.one(IMAGE)
    version = config_for(stack).settings.airflow_version
    assert image.inputs["push"] is True
    assert image.inputs["tags"] == [f"{login_server}/airflow:{version}"], f"{image.name}: tag"
    assert image.inputs["buildArgs"] == {"AIRFLOW_VERSION": version}
    # A copy of app/ with fixed file modes (components/azure/image_context.py).
    assert image.inputs["context"]["location"] == "build/image-context/app"
    assert image.inputs["dockerfile"]["location"] == "build/image-context/app/Dockerfile"
    assert image.inputs["buildOnPreview"] is False
    assert run.outputs["image"].startswith(f"{login_server}/airflow:{version}@sha256:"), "ref carries the digest"


def test_push_authenticates_with_an_exchanged_token_not_the_admin_user(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    login_server = run.outputs["registryLoginServer"]
    assert run.exchange.calls == [(login_server, TENANT, ENTRA_TOKEN)]
    registries = run.one(IMAGE).inputs["registries"]
    # The mock monitor receives secrets wrapped with Pulumi's secret signature.
    assert "value" in registries and len(registries) == 2, "registry credentials are a secret"
    [entry] = registries["value"]
    assert entry["address"] == login_server
    assert entry["username"] == TOKEN_USERNAME
    assert entry["password"] == f"acr-refresh-token-for-{login_server}"


def test_preview_pushes_nothing_and_asks_for_no_token() -> None:
    run = shared_run("prod", preview=True)
    assert run.error is None, run.error
    assert run.exchange.calls == []


def test_the_preview_leaves_the_registry_password_unknown_for_a_saved_plan() -> None:
    # deploy.yml applies `pulumi up --plan` with the plan `pulumi preview --save-plan` saved.
    # A known planned input must come back the same in the update, or the update fails
    # ("violates plan"); an unknown one accepts any value (pulumi/pulumi
    # pkg/resource/deploy/plan.go, checkDiff and DeepEqualsIncludeUnknowns). The update's
    # token is never a value the preview knew, so the preview must not claim one ("").
    run = shared_run("prod", preview=True)
    assert run.error is None, run.error
    registries = run.one(IMAGE).inputs["registries"]
    assert "value" in registries and len(registries) == 2, "still a secret"
    [entry] = registries["value"]
    assert entry["address"] == run.outputs["registryLoginServer"], "the rest is known"
    assert entry["username"] == TOKEN_USERNAME
    assert isinstance(entry["password"], pulumi.output.Unknown), entry["password"]


def test_kubernetes_provider_uses_the_cluster_from_the_user_credentials(runs: dict[str, ProgramRun]) -> None:
    # Its user runs kubelogin and holds nothing secret (tests/test_aks_access.py).
    kubeconfig = runs["prod"].one(K8S).inputs["kubeconfig"]
    assert isinstance(kubeconfig, str), "airflow-k8s: no secret to keep"
    assert 'server: https://aks.example.invalid:443' in kubeconfig, "airflow-k8s: the listed cluster's address"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_protect_follows_config(runs: dict[str, ProgramRun], stack: str) -> None:
    wanted = stack == "prod"
    run = runs[stack]
    for name in ("airflowacr", "airflow-aks"):
        assert run.options_of(name).protect is wanted, f"{name}: protect in {stack}"
    assert run.options_of("airflow-rg").protect is False


def test_components_follow_pulumi_conventions(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    components = [o for o in run.options if o.type.startswith("airflow-aks:")]
    top = {o.type for o in components if o.parent is None}
    assert top == {"airflow-aks:platform:Platform", "airflow-aks:image:AirflowImage",
                   "airflow-aks:task_log_storage:TaskLogStorage", "airflow-aks:workloads:Workloads",
                   "airflow-aks:key_vault:SecretsVault"}
    for o in components:
        # <module> is the component's module name (components/azure/task_log_storage.py).
        assert re.fullmatch(r"airflow-aks:[a-z_]+:[A-Z][A-Za-z]+", o.type), f"{o.name}: type token {o.type}"
    # Registry, storage account and vault names are alphanumeric: their logical names drop the dashes.
    undashed = (":Registry", ":StorageAccount", ":Vault")
    for o in run.options:
        if o.type == "pulumi:pulumi:StackReference":
            # A read of the stack's own last outputs (components/history.py): it manages nothing.
            assert o.parent is None and o.name == "last-deployment", f"{o.name}: the one StackReference"
            continue
        if o.parent is None:
            assert o.type.startswith("airflow-aks:"), f"{o.name}: every resource sits in a component"
            continue
        [owner] = [c for c in components if o.parent is c.resource]
        assert o.name.startswith(owner.name.replace("-", "") if o.type.endswith(undashed) else owner.name), \
            f"{o.name}: named from its component {owner.name}"


def test_stack_outputs_name_what_was_built(runs: dict[str, ProgramRun]) -> None:
    out = runs["prod"].outputs
    assert out["registryLoginServer"].endswith(".azurecr.io")
    assert out["getCredentialsCommand"] == (
        f"az aks get-credentials --resource-group {out['resourceGroupName']} --name {out['clusterName']}")
    assert not any("kubeconfig" in k.lower() for k in out), "the kubeconfig is never a stack output"


def test_dockerfile_takes_the_version_and_bakes_the_dags_where_the_cfg_looks() -> None:
    dockerfile = (APP_DIR / "Dockerfile").read_text()
    assert "FROM apache/airflow:${AIRFLOW_VERSION}" in dockerfile
    assert f"COPY --chown=airflow:root dags/ {DAGS_FOLDER}/" in dockerfile
    assert "requirements.txt" in dockerfile
