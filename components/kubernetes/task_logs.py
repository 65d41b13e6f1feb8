"""Task logs in Azure Blob Storage: what Airflow's Azure provider needs to write
and read them, and which pods get the Azure identity that allows it.

Pure: the values Azure only knows after a deploy (the storage account's URL,
the identity's client and tenant IDs) arrive as Pulumi inputs in a
TaskLogStore; the offline render passes placeholders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi

from components.kubernetes.k8s import KubeObject
from components.model import names
from components.model.settings import Settings

# The Azure provider's WasbHook reads connection `wasb_default` unless
# [logging] remote_log_conn_id names another.
CONNECTION_ENV = "AIRFLOW_CONN_WASB_DEFAULT"
# The components that write task logs (workers, the triggerer for deferred
# tasks) or read them for the UI (the api-server). Nothing else gets the
# identity.
LOG_COMPONENTS = ("worker", "triggerer", "api-server")
# Azure Storage emulator's development account: public, the same in every
# emulator (Microsoft documents it), and used only with taskLogEmulatorEndpoint.
EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


@dataclass(frozen=True)
class TaskLogStore:
    """The storage account and the identity allowed on its log container."""

    # https://<account>.blob.core.windows.net
    account_url: pulumi.Input[str]
    # The user-assigned identity the pods' ServiceAccount is federated with.
    client_id: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    # The identity the database backup's ServiceAccount is federated with,
    # allowed on the backup container only (components/kubernetes/backups.py);
    # None when the in-cluster database is not backed up.
    backup_client_id: pulumi.Input[str] | None = None
    # With keyVault, the URI of the vault the same identity reads connections
    # and variables from (components/kubernetes/key_vault.py); None without.
    key_vault_url: pulumi.Input[str] | None = None


def identity_connection(store: TaskLogStore) -> pulumi.Input[str]:
    """The wasb_default connection on AKS: no key, the pod's workload identity
    (the provider's DefaultAzureCredential reads the token file the webhook
    mounts, for this client ID)."""
    def text(url: str, client_id: str, tenant_id: str) -> str:
        return json.dumps({"conn_type": "wasb", "host": url,
                           "extra": {"managed_identity_client_id": client_id,
                                     "workload_identity_tenant_id": tenant_id}})

    values = (store.account_url, store.client_id, store.tenant_id)
    if all(isinstance(v, str) for v in values):  # the offline render's placeholders
        return text(*values)  # type: ignore[arg-type]
    return pulumi.Output.all(*values).apply(lambda v: text(*v))


def emulator_connection(endpoint: str) -> str:
    """The wasb_default connection for the storage emulator (its public development key)."""
    conn = (f"DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};"
            f"BlobEndpoint={endpoint.rstrip('/')};")
    return json.dumps({"conn_type": "wasb", "extra": {"connection_string": conn}})


def task_log_objects(settings: Settings, store: TaskLogStore | None) -> list[KubeObject]:
    """The Secret holding the wasb_default connection and, on AKS, the
    ServiceAccount federated with the log identity."""
    if not settings.remote_task_logs:
        return []
    labels = {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "task-logs"}
    objects = []
    if settings.target == "aks":
        if store is None:
            return []
        objects.append(KubeObject("ServiceAccount", "task-logs-account", {
            "metadata": {"name": names.TASK_LOG_SERVICE_ACCOUNT, "namespace": settings.namespace, "labels": labels,
                         "annotations": {"azure.workload.identity/client-id": store.client_id}},
            # The pods mount only the token workload identity projects for Azure.
            "automount_service_account_token": False,
        }))
        connection = identity_connection(store)
    else:
        assert settings.task_log_emulator_endpoint is not None
        connection = emulator_connection(settings.task_log_emulator_endpoint)
    objects.append(KubeObject("Secret", "task-logs-secret", {
        "metadata": {"name": names.TASK_LOG_SECRET, "namespace": settings.namespace, "labels": labels},
        "type": "Opaque",
        # A Pulumi secret like every Secret's data: on a local cluster it holds
        # the emulator's (public) key.
        "string_data": {"connection": pulumi.Output.secret(connection)},
    }))
    return objects


def task_logs_on(settings: Settings, store: TaskLogStore | None) -> bool:
    """Remote task logs, with what they need: on AKS, the Azure side."""
    return settings.remote_task_logs and (settings.target != "aks" or store is not None)


def log_identity(component: str, components: tuple[str, ...] = LOG_COMPONENTS) -> tuple[dict[str, str],
                                                                                      dict[str, Any]]:
    """Pod labels and spec fields that give a component the log identity
    (the workload identity webhook acts on the label), if it is one of
    `components` (by default those that write or read task logs)."""
    if component not in components:
        return {}, {}
    return ({"azure.workload.identity/use": "true"},
            {"service_account_name": names.TASK_LOG_SERVICE_ACCOUNT})


def task_log_env() -> list[dict[str, Any]]:
    """Every Airflow container reads the connection (the triggerer and the
    workers write logs, the api-server reads them; the rest never use it)."""
    return [{"name": CONNECTION_ENV,
             "value_from": {"secret_key_ref": {"name": names.TASK_LOG_SECRET, "key": "connection"}}}]
