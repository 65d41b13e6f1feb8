"""The AKS API server has no standing admin credential (issue 28, item 4; docs/aks-access.md).

Entra ID with Azure RBAC and local accounts off on the cluster; the deploying identity's
cluster-admin role assignment; a provider kubeconfig whose user runs kubelogin and holds no
key, certificate or token; the API server's authorized ranges and private mode as stack keys,
refused where AKS would refuse them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from components.azure.platform import AKS_RBAC_CLUSTER_ADMIN_ROLE
from components.model import kubeconfig as kc
from components.model.settings import MAX_AUTHORIZED_IP_RANGES
from tests.harness import (
    DEPLOYER_OBJECT_ID,
    ENTRA_EXEC_KUBECONFIG,
    LOCAL_ACCOUNT_KUBECONFIG,
    SUBSCRIPTION,
    TENANT,
    ProgramRun,
    shared_run,
    stack_file_config,
)
from tests.preview import preview
from tests.test_settings import parse, problems_of
from tests.test_upgrade import CASES, upgrade

AKS = "azure-native:containerservice:ManagedCluster"
ROLE = "azure-native:authorization:RoleAssignment"
K8S = "pulumi:providers:kubernetes"
LIST_CREDENTIALS = "azure-native:containerservice:listManagedClusterUserCredentials"

# As AKS writes a user kubeconfig: the cluster's CA and address, and (local accounts on) a
# client certificate, key and token.
REAL_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n").decode()
LISTED_WITH_CA = f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {REAL_CA}
    server: https://airflow-prod-abc123.hcp.westeurope.azmk8s.io:443
  name: airflow-aks0001
contexts:
- context: {{cluster: airflow-aks0001, user: clusterUser_rg_airflow-aks0001}}
  name: airflow-aks0001
current-context: airflow-aks0001
users:
- name: clusterUser_rg_airflow-aks0001
  user: {{client-certificate-data: CERT, client-key-data: KEY, token: TOKEN}}
"""


def with_config(stack: str, **keys: Any) -> dict[str, Any]:
    config = stack_file_config(stack)
    config.update({f"airflow-aks:{k}": v for k, v in keys.items()})
    return config


def provider_kubeconfig(run: ProgramRun) -> dict[str, Any]:
    raw = run.one(K8S).inputs["kubeconfig"]
    return yaml.safe_load(raw["value"] if isinstance(raw, dict) else raw)


# --- the cluster ----------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_cluster_signs_in_with_entra_id_and_has_no_local_accounts(runs: dict[str, ProgramRun],
                                                                       stack: str) -> None:
    cluster = runs[stack].one(AKS)
    assert cluster.inputs["aadProfile"] == {"managed": True, "enableAzureRBAC": True, "tenantID": TENANT}, \
        f"{cluster.name}: managed Entra ID with Azure RBAC, in the deploying identity's tenant"
    assert cluster.inputs["disableLocalAccounts"] is True, f"{cluster.name}: local accounts must be off"
    assert cluster.inputs["apiServerAccessProfile"] == {"authorizedIPRanges": [], "enablePrivateCluster": False}, \
        f"{cluster.name}: public API server, no ranges, by default"


def test_the_authorized_ranges_and_private_mode_reach_the_cluster() -> None:
    ranges = ["203.0.113.0/24", "198.51.100.7/32"]
    run = shared_run("prod", with_config("prod", apiServerAuthorizedIpRanges=ranges))
    assert run.error is None, run.error
    profile = run.one(AKS).inputs["apiServerAccessProfile"]
    assert profile == {"authorizedIPRanges": ranges, "enablePrivateCluster": False}, f"airflow-aks: {profile}"
    run = shared_run("dev", with_config("dev", apiServerPrivate=True))
    assert run.error is None, run.error
    assert run.one(AKS).inputs["apiServerAccessProfile"]["enablePrivateCluster"] is True, "airflow-aks: private"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_deploying_identity_is_cluster_admin_and_the_provider_waits_for_it(runs: dict[str, ProgramRun],
                                                                               stack: str) -> None:
    run = runs[stack]
    [admin] = [r for r in run.of_type(ROLE) if r.name == "airflow-cluster-admin"]
    assert admin.inputs["principalId"] == DEPLOYER_OBJECT_ID, f"{admin.name}: the identity running `pulumi up`"
    assert admin.inputs["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
        f"{AKS_RBAC_CLUSTER_ADMIN_ROLE}"), f"{admin.name}: Azure Kubernetes Service RBAC Cluster Admin"
    cluster = run.one(AKS)
    assert admin.inputs["scope"].endswith(f"/managedClusters/{cluster.name}0001"), f"{admin.name}: on the cluster"
    assert "airflow-cluster-admin" in run.options_of("airflow-k8s").waits_for(), \
        "airflow-k8s: the first `pulumi up` is forbidden until the role is assigned"


# --- the provider's kubeconfig --------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_provider_signs_in_with_kubelogin_and_holds_no_credential(runs: dict[str, ProgramRun],
                                                                      stack: str) -> None:
    run = runs[stack]
    config = provider_kubeconfig(run)
    [user] = config["users"]
    assert set(user["user"]) == {"exec"}, f"airflow-k8s: the user only runs a plugin: {user}"
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "kubelogin" and exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_["args"] == ["get-token", "--login", "azurecli", "--server-id",
                             "6dae42f8-4368-4678-94ff-3960e28e3630"], "airflow-k8s: AKS's server app"
    assert kc.credentials_in(yaml.safe_dump(config)) == [], "airflow-k8s: no key, certificate or token"
    for secret in ("MOCKCERT", "MOCKKEY", "MOCKTOKEN", "devicecode"):
        assert secret not in json.dumps(config), f"airflow-k8s: {secret} from AKS's listing reached the state"
    [(_, args)] = [(t, a) for t, a in run.invokes if t == LIST_CREDENTIALS]
    assert args.get("format") == "exec", "the listing asked for the exec form, secret-free with Entra ID"


def test_the_provider_carries_the_cluster_id_as_its_identifier(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    ident = run.one(K8S).inputs.get("clusterIdentifier")
    assert isinstance(ident, str) and ident.endswith(f"/managedClusters/{run.one(AKS).name}0001"), \
        f"airflow-k8s: clusterIdentifier {ident!r}"


@pytest.mark.parametrize("listed", [LISTED_WITH_CA, LOCAL_ACCOUNT_KUBECONFIG, ENTRA_EXEC_KUBECONFIG])
def test_the_kubeconfig_keeps_the_cluster_entry_whole_and_drops_the_user(listed: str) -> None:
    built = kc.entra_kubeconfig(listed)
    name, cluster = kc.listed_cluster(listed)
    config = yaml.safe_load(built)
    assert config["clusters"] == [{"name": name, "cluster": cluster}]
    ctx = {c["name"]: c["context"] for c in config["contexts"]}[config["current-context"]]
    assert ctx["cluster"] == name and ctx["user"] == kc.USER
    assert kc.credentials_in(built) == []
    [user] = config["users"]
    assert user["user"]["exec"]["args"] == list(kc.KUBELOGIN_ARGS), "kubelogin as this program runs it"
    for secret in ("CERT", "KEY", "TOKEN", "80faf920"):
        assert secret not in built, f"{secret} from the listing"


def test_a_listing_without_a_server_is_refused() -> None:
    with pytest.raises(kc.KubeconfigError, match="server address"):
        kc.entra_kubeconfig("apiVersion: v1\nclusters: [{name: a, cluster: {}}]\ncontexts: []\n")
    with pytest.raises(kc.KubeconfigError, match="YAML mapping"):
        kc.entra_kubeconfig("- a list")


def test_credentials_are_found_in_a_local_account_kubeconfig() -> None:
    assert kc.credentials_in(LISTED_WITH_CA) == [
        "clusterUser_rg_airflow-aks0001.client-certificate-data", "clusterUser_rg_airflow-aks0001.client-key-data",
        "clusterUser_rg_airflow-aks0001.token"]


# --- settings -------------------------------------------------------------------------------

def test_the_api_server_keys_default_to_a_public_api_server() -> None:
    s = parse()
    assert (s.api_server_authorized_ip_ranges, s.api_server_private) == ((), False)


def test_authorized_ranges_parse_from_yaml_and_cli_json() -> None:
    ranges = ["203.0.113.0/24", "198.51.100.7/32"]
    assert parse(apiServerAuthorizedIpRanges=ranges).api_server_authorized_ip_ranges == tuple(ranges)
    assert parse(apiServerAuthorizedIpRanges=json.dumps(ranges)).api_server_authorized_ip_ranges == tuple(ranges)


@pytest.mark.parametrize(("value", "key", "says"), [
    ("203.0.113.0/24", "apiServerAuthorizedIpRanges", "must be a list of at most 200 CIDRs"),
    (["203.0.113.5/24"], "apiServerAuthorizedIpRanges[0]", "host bits zero, got '203.0.113.5/24'"),
    (["office"], "apiServerAuthorizedIpRanges[0]", "must be a CIDR such as 203.0.113.0/24"),
    ([""], "apiServerAuthorizedIpRanges[0]", "must be a CIDR"),
    ([24], "apiServerAuthorizedIpRanges[0]", "got 24"),
    (["203.0.113.0/24", "203.0.113.0/24"], "apiServerAuthorizedIpRanges[1]", "203.0.113.0/24 is listed twice"),
])
def test_a_bad_authorized_range_is_refused_naming_the_entry(value: Any, key: str, says: str) -> None:
    problems = problems_of(apiServerAuthorizedIpRanges=value)
    assert key in problems and says in problems[key], problems


def test_more_ranges_than_aks_takes_are_refused() -> None:
    ranges = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_AUTHORIZED_IP_RANGES + 1)]
    problems = problems_of(apiServerAuthorizedIpRanges=ranges)
    assert problems == {"apiServerAuthorizedIpRanges": (
        "must be a list of at most 200 CIDRs such as 203.0.113.0/24 (a single address as 203.0.113.7/32); "
        "empty: any address; got 201 ranges")}
    assert len(parse(apiServerAuthorizedIpRanges=ranges[:-1]).api_server_authorized_ip_ranges) == 200


def test_api_server_private_must_be_a_boolean() -> None:
    assert problems_of(apiServerPrivate="yes") == {"apiServerPrivate": "must be true or false, got 'yes'"}
    assert parse(apiServerPrivate="true").api_server_private is True


def test_ranges_with_a_private_api_server_are_refused() -> None:
    problems = problems_of(apiServerPrivate=True, apiServerAuthorizedIpRanges=["203.0.113.0/24"])
    assert list(problems) == ["apiServerAuthorizedIpRanges"]
    assert "public API server only" in problems["apiServerAuthorizedIpRanges"]


@pytest.mark.parametrize(("key", "value"), [("apiServerPrivate", True),
                                            ("apiServerAuthorizedIpRanges", ["203.0.113.0/24"])])
def test_the_api_server_keys_are_refused_on_a_local_cluster(key: str, value: Any) -> None:
    problems = problems_of(target="local", **{key: value})
    assert key in problems and "only applies to `target: aks`" in problems[key], problems


# --- day 2 ----------------------------------------------------------------------------------

def deployed_prod(live_cluster: dict[str, Any] | None = None, **keys: Any) -> ProgramRun:
    return shared_run("prod", with_config("prod", **keys), preview=True, updating=frozenset({"airflow-aks"}),
                       live_cluster=live_cluster)


@pytest.mark.parametrize(("live", "wanted"), [(False, True), (True, False)])
def test_switching_a_deployed_cluster_between_public_and_private_is_refused(live: bool, wanted: bool) -> None:
    run = deployed_prod({"apiServerAccessProfile": {"enablePrivateCluster": live}}, apiServerPrivate=wanted)
    assert run.error is not None, "airflow-aks: AKS would reject the update half way"
    text = str(run.error)
    assert "airflow-aks:apiServerPrivate" in text and f"set apiServerPrivate back to {str(live).lower()}" in text
    assert "docs/aks-access.md" in text


def test_private_mode_may_change_with_api_server_vnet_integration() -> None:
    run = deployed_prod({"apiServerAccessProfile": {"enablePrivateCluster": False, "enableVnetIntegration": True}},
                        apiServerPrivate=True)
    assert run.error is None, run.error


def test_a_cluster_from_before_this_release_reads_as_public() -> None:
    # AKS lists no apiServerAccessProfile for a cluster made without one.
    assert deployed_prod({"apiServerAccessProfile": None}).error is None
    assert "apiServerPrivate" in str(deployed_prod({"apiServerAccessProfile": None}, apiServerPrivate=True).error)


def test_changing_the_authorized_ranges_updates_the_cluster_in_place() -> None:
    before = deployed_prod()
    after = deployed_prod(apiServerAuthorizedIpRanges=["203.0.113.0/24"])
    step = preview(before, after).step("airflow-aks")
    assert step is not None and step.op == "update", f"airflow-aks: {step}"
    assert step.paths == ("apiServerAccessProfile.authorizedIPRanges",), step.paths


# 0.8.0 turned Entra ID on; the releases before it are the ones whose clusters this changes.
BEFORE_ENTRA = [(release, stack) for release, stack in CASES if release not in ("v0.8.0",)]


@pytest.mark.parametrize(("release", "stack"), BEFORE_ENTRA)
def test_an_upgrade_turns_entra_on_in_place_and_keeps_the_provider(release: str, stack: str) -> None:
    state, run, shown = upgrade(release, stack, busy=0)
    assert run.error is None, f"{release} {stack}: {run.error}"
    step = shown.step("airflow-aks")
    assert step is not None and step.op == "update", f"{release} {stack} airflow-aks: {step}"
    assert {"aadProfile", "disableLocalAccounts"} <= {p.split(".")[0] for p in step.paths}, step.paths
    created = shown.step("airflow-cluster-admin")
    assert created is not None and created.op == "create", f"{release} {stack}: {created}"
    # pulumi-kubernetes replaces the provider, and every object, when the active cluster entry
    # of its kubeconfig changes or the kubeconfig is unknown (provider.go, DiffConfig).
    [old] = [r for r in state.registrations if r.type == K8S]
    [new] = [r for r in run.registrations if r.type == K8S]
    assert isinstance(new.inputs["kubeconfig"], str), f"{release} {stack} airflow-k8s: known at preview"
    assert kc.listed_cluster(new.inputs["kubeconfig"])[1] == kc.listed_cluster(old.inputs["kubeconfig"])[1], \
        f"{release} {stack} airflow-k8s: the active cluster entry changed: the provider would be replaced"
    assert "clusterIdentifier" not in old.inputs, "an identifier added to a provider replaces nothing"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_from_0_7_0_azure_sees_the_cluster_update_and_the_role_only(stack: str) -> None:
    """Beside the task-log reader's new identity and grants (tests/test_task_log_storage.py),
    Azure sees the cluster updated in place and the deployer's role created, nothing else."""
    _, _, shown = upgrade("v0.7.0", stack, busy=0)
    azure = sorted((s.op, s.name, s.paths if s.name == "airflow-aks" else ()) for s in shown.steps
                   if s.type.startswith("azure-native:") and "-reader-" not in s.name
                   and s.name != "airflow-kv-api-server-secrets-user")
    assert azure == [("create", "airflow-cluster-admin", ()),
                     ("update", "airflow-aks", ("aadProfile", "apiServerAccessProfile", "disableLocalAccounts"))], \
        f"v0.7.0 {stack}: {azure}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_from_0_8_0_azure_sees_no_change(stack: str) -> None:
    """0.9.0 changed documentation and tests only: a stack 0.8.0 deployed has nothing to change in Azure."""
    _, run, shown = upgrade("v0.8.0", stack, busy=0)
    assert run.error is None, f"v0.8.0 {stack}: {run.error}"
    azure = [(s.op, s.name, s.paths) for s in shown.steps if s.type.startswith("azure-native:")]
    assert azure == [], f"v0.8.0 {stack}: {azure}"
