"""The Azure side of task logs under Pulumi mocks: a storage account that takes
no key, the log container and its retention, and the workload identity that
may write there (its role on the container, its federation with the cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.azure.platform import issuer_url, required_issuer_url
from components.azure.task_log_storage import (
    BLOB_DATA_CONTRIBUTOR_ROLE,
    BLOB_DATA_READER_ROLE,
    blob_endpoint_url,
    retention_rule,
    service_account_subject,
)
from components.model import names
from tests import harness
from tests.harness import (
    LOG_READER_CLIENT_ID,
    LOG_READER_PRINCIPAL_ID,
    OIDC_ISSUER_URL,
    SUBSCRIPTION,
    TASK_LOG_CLIENT_ID,
    TASK_LOG_PRINCIPAL_ID,
    TENANT,
    DeclaredResource,
    ProgramRun,
    plain,
    shared_run,
    stack_file_config,
)

AKS = "azure-native:containerservice:ManagedCluster"
ACCOUNT = "azure-native:storage:StorageAccount"
CONTAINER = "azure-native:storage:BlobContainer"
POLICY = "azure-native:storage:ManagementPolicy"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE = "azure-native:authorization:RoleAssignment"
STORAGE_TYPES = (ACCOUNT, CONTAINER, POLICY, IDENTITY, FEDERATION)
COMPONENT = "airflow-task-logs"
ROLE_NAME = f"{COMPONENT}-blob-contributor"
# The api-server's identity: it reads task logs, never writes one.
READER = f"{COMPONENT}-reader"
READER_ROLE_NAME = f"{READER}-blob-reader"
API_SERVER_SUBJECT = f"system:serviceaccount:airflow:{names.API_SERVER_SERVICE_ACCOUNT}"
ENTRA_UI = {"exposure": "gateway", "host": "airflow.example.com", "tls": {"secretName": "airflow-ui-tls"},
            "auth": "entra", "entra": {"tenantId": "11111111-2222-3333-4444-555555555555",
                                       "clientId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                       "roleGroups": {"Admin": ["99999999-8888-7777-6666-555555555555"]}}}


def changed(**keys: Any) -> dict[str, Any]:
    config = stack_file_config("prod")
    config.update({f"airflow-aks:{k}": v for k, v in keys.items()})
    return config


def ok(run: ProgramRun) -> ProgramRun:
    assert run.error is None, run.error
    return run


def resolved(output: Any) -> Any:
    """An Output's value after the run (the run's event loop has settled it)."""
    return output._data.result().value


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return ok(shared_run("prod"))


def account_id(run: ProgramRun) -> str:
    account = run.one(ACCOUNT)
    name = run.outputs["taskLogStorageAccount"]
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{account.inputs['resourceGroupName']}"
            f"/providers/Microsoft.Storage/storageAccounts/{name}")


def test_the_storage_account_takes_no_key_and_serves_nothing_publicly(prod: ProgramRun) -> None:
    account = prod.one(ACCOUNT)
    assert account.inputs["allowSharedKeyAccess"] is False, f"{account.name}: shared key access must be off"
    assert account.inputs["allowBlobPublicAccess"] is False, f"{account.name}: no public blob access"
    assert account.inputs["minimumTlsVersion"] == "TLS1_2", f"{account.name}: TLS 1.2 at least"
    assert account.inputs["enableHttpsTrafficOnly"] is True, f"{account.name}: HTTPS only"
    assert (account.inputs["kind"], account.inputs["sku"]) == ("StorageV2", {"name": "Standard_LRS"}), account.name
    assert account.inputs["location"] == "westeurope", f"{account.name}: the stack's region"
    assert prod.outputs["taskLogStorageAccount"] == "airflowtasklogs0001", "the account's name is a stack output"


def named(run: ProgramRun, typ: str, name: str) -> DeclaredResource:
    """The one resource of a type with that logical name (the backups add a second of some types)."""
    [found] = [r for r in run.of_type(typ) if r.name == name]
    return found


def test_the_log_container_is_private_and_in_that_account(prod: ProgramRun) -> None:
    container = named(prod, CONTAINER, f"{COMPONENT}-container")
    assert container.inputs["containerName"] == names.TASK_LOG_CONTAINER, container.name
    assert container.inputs["publicAccess"] == "None", f"{container.name}: no public access"
    assert container.inputs["accountName"] == prod.outputs["taskLogStorageAccount"], container.name


def lifecycle_rule(run: ProgramRun) -> dict[str, Any]:
    policy = run.one(POLICY)
    assert policy.inputs["managementPolicyName"] == "default", f"{policy.name}: Azure's one policy name"
    assert policy.inputs["accountName"] == run.outputs["taskLogStorageAccount"], policy.name
    [rule] = [r for r in plain(policy.inputs["policy"])["rules"] if r["name"] == "delete-old-task-logs"]
    return rule


def test_a_lifecycle_rule_deletes_task_logs_after_the_retention(prod: ProgramRun) -> None:
    rule = lifecycle_rule(prod)
    assert (rule["type"], rule["enabled"]) == ("Lifecycle", True), f"{POLICY}: {rule['name']}"
    assert rule["definition"]["filters"] == {"blobTypes": ["blockBlob"],
                                             "prefixMatch": [f"{names.TASK_LOG_CONTAINER}/"]}, \
        f"{POLICY}: block blobs in the log container only"
    assert rule["definition"]["actions"] == {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": 30}}}, \
        f"{POLICY}: deleted 30 days (the default retention) after their last modification"


def test_a_changed_retention_reaches_the_rule() -> None:
    rule = lifecycle_rule(ok(shared_run("prod", changed(taskLogRetentionDays=7))))
    assert rule["definition"]["actions"]["baseBlob"]["delete"] == {"daysAfterModificationGreaterThan": 7}, POLICY


def test_the_cluster_runs_workload_identity_with_an_oidc_issuer(prod: ProgramRun) -> None:
    cluster = prod.one(AKS)
    assert cluster.inputs["oidcIssuerProfile"] == {"enabled": True}, f"{cluster.name}: OIDC issuer"
    assert cluster.inputs["securityProfile"] == {"workloadIdentity": {"enabled": True}}, \
        f"{cluster.name}: workload identity webhook"


def test_one_identity_has_blob_data_contributor_on_the_container_only(prod: ProgramRun) -> None:
    identity = named(prod, IDENTITY, f"{COMPONENT}-identity")
    assert identity.inputs["location"] == "westeurope", identity.name
    [role] = [r for r in prod.of_type(ROLE) if r.name == ROLE_NAME]
    container_id = f"{account_id(prod)}/blobServices/default/containers/{names.TASK_LOG_CONTAINER}"
    assert role.inputs["scope"] == container_id, f"{role.name}: scope must be the log container"
    assert role.inputs["scope"] != account_id(prod), f"{role.name}: not the whole account"
    assert role.inputs["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{BLOB_DATA_CONTRIBUTOR_ROLE}"
    ), f"{role.name}: Storage Blob Data Contributor"
    assert role.inputs["principalId"] == TASK_LOG_PRINCIPAL_ID, f"{role.name}: the task-log identity"
    assert role.inputs["principalType"] == "ServicePrincipal", role.name


def test_the_identity_trusts_the_task_log_service_account_of_this_cluster(prod: ProgramRun) -> None:
    credential = named(prod, FEDERATION, f"{COMPONENT}-federation")
    assert credential.inputs["issuer"] == OIDC_ISSUER_URL, \
        f"{credential.name}: the cluster's OIDC issuer, as AKS has it (trailing slash too)"
    assert credential.inputs["subject"] == "system:serviceaccount:airflow:airflow-task-logs", credential.name
    assert credential.inputs["audiences"] == ["api://AzureADTokenExchange"], credential.name
    assert credential.inputs["resourceName"] == f"{COMPONENT}-identity0001", f"{credential.name}: on the identity"


def test_the_subject_follows_the_namespace() -> None:
    credential = named(ok(shared_run("prod", changed(namespace="airflow-prod"))), FEDERATION,
                       f"{COMPONENT}-federation")
    assert credential.inputs["subject"] == f"system:serviceaccount:airflow-prod:{names.TASK_LOG_SERVICE_ACCOUNT}", \
        credential.name


def test_the_store_hands_the_kubernetes_side_url_client_and_tenant(prod: ProgramRun) -> None:
    store = prod.options_of(COMPONENT).resource.store  # type: ignore[attr-defined]
    assert resolved(store.account_url) == "https://airflowtasklogs0001.blob.core.windows.net", \
        f"{COMPONENT}: the account's blob endpoint, no trailing slash"
    assert (resolved(store.client_id), resolved(store.tenant_id)) == (TASK_LOG_CLIENT_ID, TENANT), COMPONENT


def test_the_issuer_stays_known_in_the_preview_of_a_cluster_update() -> None:
    # In such a preview the cluster's outputs are its new inputs only
    # (pulumi-azure-native provider.go, Update with preview), so the issuer
    # comes from the live read; otherwise the credential would show a change.
    run = ok(shared_run("prod", changed(kubernetesVersion="1.36"), preview=True,
                         updating=frozenset({"airflow-aks"})))
    assert "oidcIssuerProfile" in run.one(AKS).inputs
    for credential in run.of_type(FEDERATION):
        assert credential.inputs["issuer"] == OIDC_ISSUER_URL, f"{credential.name}: issuer must stay known"


def test_the_airflow_pods_start_after_the_role_and_the_federation(prod: ProgramRun) -> None:
    grants = [prod.options_of(name).resource for name in (
        ROLE_NAME, f"{COMPONENT}-federation", READER_ROLE_NAME, f"{READER}-federation")]
    pods = [o for o in prod.options if o.type in (
        "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:batch/v1:Job")
        and o.name.startswith("workloads-airflow")]
    assert pods, "the Airflow workloads"
    for o in pods:
        for grant in grants:
            assert grant in o.depends_on, f"{o.name} must wait for {grant._name}"  # type: ignore[attr-defined]


# The log reader: the api-server's own identity ---------------------------------------------------

def role_definition(role: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def log_container_id(run: ProgramRun) -> str:
    return f"{account_id(run)}/blobServices/default/containers/{names.TASK_LOG_CONTAINER}"


@pytest.mark.parametrize("key_vault", [True, False], ids=["keyVault", "no keyVault"])
def test_the_log_reader_may_read_the_log_container_and_nothing_else_of_the_account(
        prod: ProgramRun, key_vault: bool) -> None:
    run = prod if key_vault else ok(shared_run("prod", changed(keyVault=False)))
    identity = named(run, IDENTITY, f"{READER}-identity")
    assert identity.inputs["location"] == "westeurope", identity.name
    roles = {r.name: r.inputs for r in run.of_type(ROLE) if r.inputs["principalId"] == LOG_READER_PRINCIPAL_ID}
    blob = roles.pop(READER_ROLE_NAME, None)
    assert blob is not None, f"{READER_ROLE_NAME}: the log reader's role on the log container"
    assert blob["roleDefinitionId"] == role_definition(BLOB_DATA_READER_ROLE), \
        f"{READER_ROLE_NAME}: Storage Blob Data Reader, which cannot write or delete a blob"
    assert blob["scope"] == log_container_id(run), f"{READER_ROLE_NAME}: the log container only"
    assert blob["principalType"] == "ServicePrincipal", READER_ROLE_NAME
    # With keyVault the api-server reads the vault too (tests/test_key_vault.py); nothing else.
    assert set(roles) == ({"airflow-kv-api-server-secrets-user"} if key_vault else set()), \
        f"{identity.name}: roles beyond reading the logs: {sorted(roles)}"


@pytest.mark.parametrize("ui", ["simple", "entra"])
def test_the_log_reader_trusts_the_api_servers_account_alone(ui: str) -> None:
    run = ok(shared_run("prod", changed(ui=ENTRA_UI) if ui == "entra" else None))
    credential = named(run, FEDERATION, f"{READER}-federation")
    assert credential.inputs["subject"] == API_SERVER_SUBJECT, credential.name
    assert credential.inputs["issuer"] == OIDC_ISSUER_URL, f"{credential.name}: the cluster's OIDC issuer"
    assert credential.inputs["audiences"] == ["api://AzureADTokenExchange"], credential.name
    assert credential.inputs["resourceName"] == f"{READER}-identity0001", f"{credential.name}: on the reader"
    on_reader = [r.name for r in run.of_type(FEDERATION) if r.inputs["resourceName"] == f"{READER}-identity0001"]
    assert on_reader == [credential.name], f"{READER}-identity: trusts no other account: {on_reader}"


@pytest.mark.parametrize(("stack", "ui"), [("dev", "simple"), ("prod", "simple"), ("prod", "entra")])
def test_no_identity_that_may_write_trusts_the_api_servers_account(stack: str, ui: str) -> None:
    run = ok(shared_run(stack, {**stack_file_config(stack), "airflow-aks:ui": ENTRA_UI} if ui == "entra" else None))
    identities = {f"{r.name}0001": r.name for r in run.of_type(IDENTITY)}
    trusting = [identities[r.inputs["resourceName"]] for r in run.of_type(FEDERATION)
                if r.inputs["subject"] == API_SERVER_SUBJECT]
    assert trusting == [f"{READER}-identity"], f"{stack} {ui}: identities trusting the api-server: {trusting}"
    readers_roles = [r for r in run.of_type(ROLE) if r.inputs["principalId"] == LOG_READER_PRINCIPAL_ID]
    writes = [r.name for r in readers_roles if r.inputs["roleDefinitionId"] == role_definition(
        BLOB_DATA_CONTRIBUTOR_ROLE)]
    assert writes == [], f"{stack} {ui}: the api-server's identity may write blobs: {writes}"


def pod_of(run: ProgramRun, kind: str, name: str) -> dict[str, Any]:
    return run.manifest(kind, name)["spec"]["template"]


def log_connection(run: ProgramRun, template: dict[str, Any]) -> dict[str, Any]:
    """The wasb_default connection a pod reads, from the Secret and key its container names."""
    [ref] = [e["valueFrom"]["secretKeyRef"] for c in template["spec"]["containers"] for e in c["env"]
             if e["name"] == "AIRFLOW_CONN_WASB_DEFAULT"]
    [secret] = [r for r in run.resources if r.type == "kubernetes:core/v1:Secret"
                and plain(r.inputs)["metadata"]["name"] == ref["name"]]
    return json.loads(plain(secret.inputs["stringData"])[ref["key"]])


def identity_of(run: ProgramRun, template: dict[str, Any]) -> tuple[str, str | None]:
    """The ServiceAccount a pod runs as, and the client ID that account names."""
    assert template["metadata"]["labels"].get("azure.workload.identity/use") == "true", \
        "the workload identity webhook acts on the label"
    account = template["spec"]["serviceAccountName"]
    annotations = run.manifest("ServiceAccount", account)["metadata"].get("annotations", {})
    return account, annotations.get("azure.workload.identity/client-id")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_api_server_runs_as_the_log_reader_the_workers_and_the_triggerer_as_the_writers(stack: str) -> None:
    run = ok(shared_run(stack))
    api = pod_of(run, "Deployment", names.API_SERVER)
    assert identity_of(run, api) == (names.API_SERVER_SERVICE_ACCOUNT, LOG_READER_CLIENT_ID), \
        f"{stack} {names.API_SERVER}: its own account, naming the log reader's client ID"
    assert log_connection(run, api)["extra"]["managed_identity_client_id"] == LOG_READER_CLIENT_ID, \
        f"{stack} {names.API_SERVER}: wasb_default exchanges its token for the reader's identity"
    for kind, name in (("StatefulSet", names.WORKER), ("StatefulSet", names.TRIGGERER)):
        template = pod_of(run, kind, name)
        assert identity_of(run, template) == (names.TASK_LOG_SERVICE_ACCOUNT, TASK_LOG_CLIENT_ID), \
            f"{stack} {name}: the writers' account and identity"
        assert log_connection(run, template)["extra"]["managed_identity_client_id"] == TASK_LOG_CLIENT_ID, \
            f"{stack} {name}: wasb_default names the writers' identity"
    writer = named(run, FEDERATION, f"{COMPONENT}-federation")
    assert writer.inputs["subject"] == f"system:serviceaccount:airflow:{names.TASK_LOG_SERVICE_ACCOUNT}", \
        f"{writer.name}: the writers' account"


@pytest.fixture(scope="module")
def outputs_of_prod() -> tuple[ProgramRun, list[dict[str, Any]]]:
    """prod, with every resource's outputs as the mocks answered them."""
    states: list[dict[str, Any]] = []
    original = harness.Mocks.new_resource

    def recording(self: harness.Mocks, args: Any) -> tuple[str | None, dict]:
        rid, state = original(self, args)
        if args.typ != "pulumi:pulumi:StackReference":  # a read of the stack's own outputs, checked below
            states.append(state)
        return rid, state

    harness.Mocks.new_resource = recording  # type: ignore[method-assign]
    try:
        run = ok(harness.run_program("prod"))  # a run of its own: the mocks are patched
    finally:
        harness.Mocks.new_resource = original  # type: ignore[method-assign]
    return run, states


def test_no_storage_key_anywhere(outputs_of_prod: tuple[ProgramRun, list[dict[str, Any]]]) -> None:
    run, states = outputs_of_prod
    assert not [t for t, _ in run.invokes if "keys" in t.lower() or "sas" in t.lower()], \
        "no invoke lists storage account keys or SAS tokens"

    def leaks(value: Any) -> bool:
        text = json.dumps(plain(value), default=str).lower()
        return "accountkey=" in text or "account_key" in text or "accountkey\"" in text

    for r in run.resources:
        assert not leaks(r.inputs), f"{r.type} {r.name}: an input carries a storage key"
    assert len(states) == len(run.resources)
    for r, state in zip(run.resources, states, strict=True):
        assert not leaks(state), f"{r.type} {r.name}: an output carries a storage key"
    for key, value in run.outputs.items():
        assert not leaks(value), f"stack output {key} carries a storage key"


def test_the_account_and_container_are_protected_in_prod_only(prod: ProgramRun) -> None:
    dev = ok(shared_run("dev"))
    for name in ("airflowtasklogs", f"{COMPONENT}-container"):
        assert prod.options_of(name).protect is True, f"{name}: holds the logs, protected in prod"
        assert dev.options_of(name).protect is False, f"{name}: not protected in dev"


def test_without_remote_task_logs_no_storage_is_declared() -> None:
    # Without the account the in-cluster database has no backups: said explicitly.
    run = ok(shared_run("prod", changed(remoteTaskLogs=False, databaseBackupSchedule=None, keyVault=False)))
    for typ in STORAGE_TYPES:
        assert run.of_type(typ) == [], f"{typ}: declared with remoteTaskLogs false"
    assert sorted(r.name for r in run.of_type(ROLE)) == ["airflow-acr-pull", "airflow-cluster-admin"], \
        f"{ROLE}: only AcrPull and the deployer's RBAC Cluster Admin"
    assert "taskLogStorageAccount" not in run.outputs
    assert run.one(AKS).inputs["oidcIssuerProfile"] == {"enabled": True}, "the cluster keeps its issuer"


def test_the_local_target_declares_no_storage() -> None:
    run = ok(shared_run("local"))
    assert not [r for r in run.resources if r.type in STORAGE_TYPES or r.type == ROLE]


# Pure parts.

def test_subject_names_the_task_log_service_account() -> None:
    assert service_account_subject("ns") == f"system:serviceaccount:ns:{names.TASK_LOG_SERVICE_ACCOUNT}"


def test_retention_rule_counts_days_after_modification() -> None:
    delete = retention_rule(90)["definition"]["actions"]["base_blob"]["delete"]
    assert delete == {"days_after_modification_greater_than": 90}


def test_blob_endpoint_loses_its_trailing_slash_and_must_exist() -> None:
    assert blob_endpoint_url("https://a.blob.core.windows.net/") == "https://a.blob.core.windows.net"
    with pytest.raises(ValueError, match="no blob endpoint"):
        blob_endpoint_url(None)


def test_issuer_url_of_a_cluster_without_one() -> None:
    class Profile:
        issuer_url = "https://issuer/"

    assert issuer_url(Profile()) == "https://issuer/"
    assert issuer_url(None) is None, "a cluster that has not enabled its issuer yet"
    with pytest.raises(ValueError, match="no OIDC issuer URL"):
        required_issuer_url(None)


def test_declared_resource_types_are_the_ones_checked(prod: ProgramRun) -> None:
    found: list[DeclaredResource] = [r for r in prod.resources if r.type in STORAGE_TYPES]
    # With the in-cluster database's backups (tests/test_backups.py): a
    # second container, identity and federation, and the same one policy;
    # and the log reader's identity and federation.
    assert sorted(r.type for r in found) == sorted([*STORAGE_TYPES, CONTAINER, IDENTITY, FEDERATION,
                                                    IDENTITY, FEDERATION]), \
        "one of each storage resource, the backups' container, identity and federation, the log reader's"
