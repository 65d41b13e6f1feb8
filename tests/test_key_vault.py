"""Connections and variables from Azure Key Vault (`keyVault`).

Under Pulumi mocks: the vault (RBAC only, no access policy, soft delete, purge
protection with `protect` and kept once on), its single role assignment (Key
Vault Secrets User, scope the vault, principal the Airflow pods' identity),
the backend in airflow.cfg and the vault's URL on exactly the pods that read
it. Then real Airflow 3.3.2 with the real provider reads a connection and a
variable through the configuration the program generates, with only Azure's
SecretClient replaced by an in-memory one (no Azure here).
"""

from __future__ import annotations

import configparser
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from components.azure.key_vault import (
    LOGICAL_NAME_MAX,
    PURGE_PROTECTION_OUTPUT,
    SECRETS_USER_ROLE,
    VAULT_NAME_MAX,
    purge_protection,
    vault_logical_name,
)
from components.kubernetes.key_vault import VAULT_COMPONENTS
from components.model import names
from components.model.airflow_cfg import (
    CONNECTIONS_PREFIX,
    KEY_VAULT_BACKEND,
    VARIABLES_PREFIX,
    VAULT_URL_ENV,
    key_vault_secret_name,
)
from components.model.settings import ConfigError, parse_settings
from tests.harness import (
    LOG_READER_PRINCIPAL_ID,
    SUBSCRIPTION,
    TASK_LOG_PRINCIPAL_ID,
    TENANT,
    ProgramRun,
    plain,
    shared_run,
)
from tests.real_airflow import run_airflow_python
from tests.test_task_log_storage import changed as config
from tests.test_task_log_storage import ok

VAULT = "azure-native:keyvault:Vault"
ROLE = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
POD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")




@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return ok(shared_run("prod", config(keyVault=True)))


def vault_id(run: ProgramRun) -> str:
    vault = run.one(VAULT)
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{vault.inputs['resourceGroupName']}"
            f"/providers/Microsoft.KeyVault/vaults/{run.outputs['keyVaultName']}")


def pod_specs(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Each Airflow workload's pod template, by its component label."""
    found = {}
    for m in run.manifests():
        if m["kind"] not in POD_KINDS:
            continue
        template = m["spec"]["template"] if m["kind"] != "CronJob" else m["spec"]["jobTemplate"]["spec"]["template"]
        labels = template["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") == "airflow":
            found[labels["app.kubernetes.io/component"]] = template
    return found


def env_of(template: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for c in template["spec"]["containers"]
            for e in c.get("env", [])}


# ---- settings -----------------------------------------------------------------------------

def test_key_vault_is_off_by_default() -> None:
    assert parse_settings({}, stack="dev", location="westeurope").key_vault is False


@pytest.mark.parametrize(("values", "why", "keys"), [
    ({"target": "local", "keyVault": True}, "needs `target: aks`", ["keyVault"]),
    ({"keyVault": True, "remoteTaskLogs": False, "databaseBackupSchedule": None}, "remoteTaskLogs", ["keyVault"]),
    # 3.1.8 has no constraints file either (app/constraints), refused under its own key.
    ({"keyVault": True, "airflowVersion": "3.1.8"}, "3.2.0 or newer", ["airflowVersion", "keyVault"]),
    ({"keyVault": "yes"}, "true or false", ["keyVault"]),
])
def test_key_vault_is_refused_where_the_pods_cannot_read_a_vault(values: dict[str, Any], why: str,
                                                                 keys: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(values, stack="dev", location="westeurope")
    assert [key for key, _ in err.value.problems] == keys
    assert why in str(err.value)


@pytest.mark.parametrize(("section", "option"), [
    ("secrets", "backend"), ("secrets", "backend_kwargs"),
    ("workers", "secrets_backend"), ("workers", "secrets_backend_kwargs"),
])
def test_the_secrets_backend_is_not_an_airflow_config_override(section: str, option: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"airflowConfig": {section: {option: "x"}}}, stack="dev", location="westeurope")
    assert err.value.problems[0][0] == f"airflowConfig.{section}.{option}"
    assert "`keyVault`" in err.value.problems[0][1]


# ---- the vault's name and purge protection ------------------------------------------------

@pytest.mark.parametrize("stack", ["prod", "dev", "Team_Data-Platform.Staging-2026", "x"])
def test_the_vault_name_is_valid_with_the_providers_random_suffix(stack: str) -> None:
    logical = vault_logical_name("airflow-kv", stack)
    assert len(logical) <= LOGICAL_NAME_MAX
    # Key Vault's rule: 3-24 letters, digits and dashes, a letter first, no "--".
    assert re.fullmatch(r"[a-z][a-z0-9]{2,}", logical)
    assert len(logical) + 8 <= VAULT_NAME_MAX
    assert logical.startswith("airflowkv")
    assert re.sub(r"[^a-z0-9]", "", stack.lower())[:4] in logical


def test_purge_protection_follows_protect_and_stays_on_once_on() -> None:
    assert purge_protection(True, None) is True
    assert purge_protection(False, None) is False
    assert purge_protection(False, {PURGE_PROTECTION_OUTPUT: False}) is False
    # Azure takes no `false` once it was on (Microsoft.KeyVault spec, enablePurgeProtection).
    assert purge_protection(False, {PURGE_PROTECTION_OUTPUT: True}) is True


# ---- prod with keyVault, under mocks ------------------------------------------------------

def test_the_vault_uses_rbac_only_with_soft_delete_and_purge_protection(prod: ProgramRun) -> None:
    vault = prod.one(VAULT)
    props = plain(vault.inputs["properties"])
    assert props["enableRbacAuthorization"] is True
    assert props["accessPolicies"] == []
    assert props["enableSoftDelete"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["enablePurgeProtection"] is True, "prod has `protect`"
    assert props["tenantId"] == TENANT
    assert props["sku"] == {"family": "A", "name": "standard"}
    # In the platform's resource group, protected like the other data in prod.
    assert vault.inputs["resourceGroupName"] == prod.one("azure-native:resources:ResourceGroup").name + "-rg0001"
    assert prod.options_of(vault.name).protect is True
    assert prod.outputs[PURGE_PROTECTION_OUTPUT] is True
    assert prod.outputs["keyVaultUri"] == f"https://{prod.outputs['keyVaultName']}.vault.azure.net/"


def test_the_vault_roles_are_secrets_user_for_the_airflow_identity_and_the_api_servers(prod: ProgramRun) -> None:
    on_vault = [r for r in prod.of_type(ROLE) if r.inputs["scope"].startswith(vault_id(prod))]
    readers = [r for r in prod.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(SECRETS_USER_ROLE)]
    assert sorted(r.name for r in on_vault) == ["airflow-kv-api-server-secrets-user", "airflow-kv-secrets-user"], \
        "one role for the Airflow pods' identity, one for the api-server's"
    assert readers == on_vault, "Key Vault Secrets User is granted on the vault only"
    # The Airflow pods' identity (the task-log writers') and the api-server's (the log
    # reader), not the backup identity or the deployer.
    principals = {}
    for role in on_vault:
        assert role.inputs["scope"] == vault_id(prod), f"{role.name}: the vault itself"
        assert role.inputs["roleDefinitionId"] == (
            f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER_ROLE}"
        ), f"{role.name}: Key Vault Secrets User"
        assert role.inputs["principalType"] == "ServicePrincipal", role.name
        principals[role.name] = role.inputs["principalId"]
    assert principals == {"airflow-kv-secrets-user": TASK_LOG_PRINCIPAL_ID,
                          "airflow-kv-api-server-secrets-user": LOG_READER_PRINCIPAL_ID}, principals


def test_existing_resources_keep_their_names_and_parents(prod: ProgramRun) -> None:
    without = ok(shared_run("prod", config(keyVault=False)))
    before = {(o.type, o.name, getattr(o.parent, "_name", None)) for o in without.options}
    after = {(o.type, o.name, getattr(o.parent, "_name", None)) for o in prod.options}
    assert before <= after
    added = {(t, n) for t, n, _ in after - before}
    assert added == {("airflow-aks:key_vault:SecretsVault", "airflow-kv"),
                     (VAULT, vault_logical_name("airflow-kv", "prod")), (ROLE, "airflow-kv-secrets-user"),
                     (ROLE, "airflow-kv-api-server-secrets-user")}


def test_the_backend_is_in_airflow_cfg_with_no_secret(prod: ProgramRun) -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(prod.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"])
    assert cfg["secrets"]["backend"] == KEY_VAULT_BACKEND
    kwargs = json.loads(cfg["secrets"]["backend_kwargs"])
    assert kwargs == {"connections_prefix": CONNECTIONS_PREFIX, "variables_prefix": VARIABLES_PREFIX, "sep": "-"}
    assert not cfg.has_section("workers") or "secrets_backend" not in cfg["workers"]


def test_the_readers_get_the_vault_url_and_the_identity(prod: ProgramRun) -> None:
    pods = pod_specs(prod)
    assert set(VAULT_COMPONENTS) <= set(pods)
    for component, template in pods.items():
        env = env_of(template)
        identity = template["metadata"]["labels"].get("azure.workload.identity/use") == "true"
        if component in VAULT_COMPONENTS:
            assert env.get(VAULT_URL_ENV) == prod.outputs["keyVaultUri"], component
            # The api-server reads it with its own identity, the others with the Airflow pods'.
            account = (names.API_SERVER_SERVICE_ACCOUNT if component == "api-server"
                       else names.TASK_LOG_SERVICE_ACCOUNT)
            assert identity and template["spec"]["serviceAccountName"] == account, component
        else:
            # The scheduler, the migration Job, the database backup: no vault.
            assert VAULT_URL_ENV not in env, component
    for component in ("scheduler", "migrate"):
        assert "azure.workload.identity/use" not in pods[component]["metadata"]["labels"], component


def test_the_airflow_pods_wait_for_the_vault_role(prod: ProgramRun) -> None:
    role = prod.options_of("airflow-kv-secrets-user").resource
    pods = [o for o in prod.options if o.type in (
        "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:batch/v1:Job")
        and o.name.startswith("workloads-airflow")]
    assert pods
    for o in pods:
        assert role in o.depends_on, f"{o.name} must wait for the Key Vault role"


def test_no_generated_secret_in_a_config_map_or_plain_output(prod: ProgramRun) -> None:
    assert prod.generated
    maps = [json.dumps(m.get("data", {})) for m in prod.manifests() if m["kind"] == "ConfigMap"]
    plain_outputs = json.dumps({k: v for k, v in prod.outputs.items() if k not in prod.secret_outputs}, default=str)
    for secret in prod.generated:
        assert all(secret not in text for text in maps)
        assert secret not in plain_outputs
    # The backend takes no credential from the config: the pod's workload identity.
    cfg = prod.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    assert not re.search(r"client_secret|client_id|tenant_id", cfg)


def test_the_dag_processor_may_reach_the_vault(prod: ProgramRun) -> None:
    def egress_ports(run: ProgramRun) -> set[int]:
        policy = run.manifest("NetworkPolicy", "airflow-dag-processor")
        return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule["ports"]}

    assert 443 in egress_ports(prod)
    assert 443 not in egress_ports(ok(shared_run("prod", config(keyVault=False))))


def test_without_the_key_nothing_changes() -> None:
    run = ok(shared_run("prod", config(keyVault=False)))
    assert not run.of_type(VAULT)
    assert not {"keyVaultName", "keyVaultUri", PURGE_PROTECTION_OUTPUT} & set(run.outputs)
    assert "[secrets]" not in run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    pods = pod_specs(run)
    assert all(VAULT_URL_ENV not in env_of(t) for t in pods.values())
    assert "azure.workload.identity/use" not in pods["dag-processor"]["metadata"]["labels"]


def test_day_two_keeps_purge_protection_once_on() -> None:
    # A stack without `protect`: off on a new vault, kept on where the last update had it on.
    fresh = ok(shared_run("prod", config(keyVault=True, protect=False)))
    assert "enablePurgeProtection" not in plain(fresh.one(VAULT).inputs["properties"])
    assert fresh.outputs[PURGE_PROTECTION_OUTPUT] is False
    kept = ok(shared_run("prod", config(keyVault=True, protect=False),
                          previous_outputs={PURGE_PROTECTION_OUTPUT: True}))
    assert plain(kept.one(VAULT).inputs["properties"])["enablePurgeProtection"] is True
    assert kept.outputs[PURGE_PROTECTION_OUTPUT] is True


# ---- real Airflow, real provider, an in-memory Key Vault client ---------------------------

READ_THROUGH_THE_BACKEND = textwrap.dedent('''
    import json, sys
    # The one stand-in: Azure's SecretClient, which would call the vault over
    # HTTPS. Everything else is Airflow's and the provider's own code.
    import airflow.providers.microsoft.azure.secrets.key_vault as key_vault

    SECRETS = json.loads(sys.argv[1])
    CLIENTS = []

    class NotFound(key_vault.ResourceNotFoundError):
        pass

    class InMemorySecretClient:
        def __init__(self, vault_url, credential, **kwargs):
            self.vault_url, self.credential = vault_url, credential
            CLIENTS.append(self)

        def get_secret(self, name):
            if name not in SECRETS:
                raise NotFound(f"{name} not found")
            return type("KeyVaultSecret", (), {"value": SECRETS[name]})()

    key_vault.SecretClient = InMemorySecretClient

    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

    conn = Connection.get_connection_from_secrets("my_postgres")
    uri_conn = Connection.get_connection_from_secrets("warehouse_api")
    # The worker's chain (no [workers] secrets_backend: Airflow falls back to [secrets]).
    worker_backends = ensure_secrets_backend_loaded()
    print(json.dumps({
        "conn": [conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema],
        "uri_conn": [uri_conn.conn_type, uri_conn.host, uri_conn.password],
        "variable": Variable.get("report_recipients"),
        "missing": Variable.get("not_there", default_var="fallback"),
        "vault_urls": sorted({c.vault_url for c in CLIENTS}),
        "credential": type(CLIENTS[0].credential).__name__,
        "worker_backend": [type(worker_backends[0]).__name__, worker_backends[0].vault_url],
    }))
''')


@pytest.mark.real
def test_real_airflow_reads_a_connection_and_a_variable_from_the_vault(prod: ProgramRun, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    cfg = prod.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    # The generated file; only the metadata database is this test's own (never reached: the vault answers).
    (home / "airflow.cfg").write_text(cfg)
    worker_env = env_of(pod_specs(prod)["worker"])
    vault_url = worker_env[VAULT_URL_ENV]
    # The secret names the user guide's `az keyvault secret set` commands use.
    secrets = {
        key_vault_secret_name(CONNECTIONS_PREFIX, "my_postgres"): json.dumps({
            "conn_type": "postgres", "host": "db.example.com", "port": 5432, "login": "etl",
            "password": "s3cret", "schema": "sales"}),
        key_vault_secret_name(CONNECTIONS_PREFIX, "warehouse_api"): "http://svc:t0ken@api.example.com",
        key_vault_secret_name(VARIABLES_PREFIX, "report_recipients"): "data@example.com",
    }
    assert set(secrets) == {"airflow-connections-my-postgres", "airflow-connections-warehouse-api",
                            "airflow-variables-report-recipients"}
    result = run_airflow_python(
        f"import sys; sys.argv[1:] = [{json.dumps(json.dumps(secrets))}]\n" + READ_THROUGH_THE_BACKEND,
        home=home, timeout=60,
        env={VAULT_URL_ENV: vault_url, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
             "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "app" / "config")})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["conn"] == ["postgres", "db.example.com", 5432, "etl", "s3cret", "sales"]
    assert found["uri_conn"] == ["http", "api.example.com", "t0ken"]
    assert found["variable"] == "data@example.com"
    assert found["missing"] == "fallback"
    assert found["vault_urls"] == [vault_url] == [prod.outputs["keyVaultUri"]]
    # No secret configured: the pod's workload identity through DefaultAzureCredential.
    assert found["credential"] == "DefaultAzureCredential"
    assert found["worker_backend"] == ["AzureKeyVaultBackend", vault_url]
