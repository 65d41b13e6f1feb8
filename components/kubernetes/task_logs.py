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
# The components that upload task logs in Airflow 3.3.2: the worker (its task
# supervisor after each attempt, airflow/sdk/execution_time/supervisor.py
# _upload_logs, and the executor callbacks Celery runs there,
# callback_supervisor.py _upload_logs) and the triggerer for deferred tasks
# (airflow/jobs/triggerer_job_runner.py, upload_to_remote). They run as the
# writers' identity.
LOG_WRITERS = ("worker", "triggerer")
# The api-server only reads them, for the UI and the REST API: it runs as an
# identity of its own that may read and list blobs, nothing more
# (components/azure/task_log_storage.py, and components/kubernetes/ui_auth.py
# for its ServiceAccount).
LOG_READER = "api-server"
# Every component that reaches the log container. Nothing else gets an identity for it.
LOG_COMPONENTS = (*LOG_WRITERS, LOG_READER)
# The key of the connection in each task-log Secret. On AKS the api-server's
# (the same account, the reader's client ID) is a Secret of its own: the
# Kubernetes provider replaces a Secret whose data changes (no
# enableSecretMutable, components/kubernetes/k8s.py), so the writers' stays as deployed.
CONNECTION_KEY = "connection"
LOG_LABELS = {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "task-logs"}
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
    # The api-server's identity: Storage Blob Data Reader on the log container
    # (and the vault's reader role with keyVault), federated with its own
    # ServiceAccount. Required on AKS; a default only for the flows' tests.
    reader_client_id: pulumi.Input[str] | None = None


def reader_client_id(store: TaskLogStore) -> pulumi.Input[str]:
    """The log reader's client ID, which remote task logs on AKS cannot do without."""
    if store.reader_client_id is None:
        raise ValueError("remote task logs on AKS need the api-server's log reader identity (TaskLogStorage)")
    return store.reader_client_id


def identity_connection(store: TaskLogStore, client_id: pulumi.Input[str] | None = None) -> pulumi.Input[str]:
    """The wasb_default connection on AKS: no key, the pod's workload identity
    (the provider's DefaultAzureCredential reads the token file the webhook
    mounts, for this client ID: by default the writers').

    The client ID must be the pod's own identity's: DefaultAzureCredential
    exchanges the pod's token for managed_identity_client_id's identity
    (azure-identity _credentials/default.py: workload_identity_client_id
    defaults to it), which Entra ID refuses unless that identity trusts the
    pod's ServiceAccount."""
    def text(url: str, client_id: str, tenant_id: str) -> str:
        return json.dumps({"conn_type": "wasb", "host": url,
                           "extra": {"managed_identity_client_id": client_id,
                                     "workload_identity_tenant_id": tenant_id}})

    values = (store.account_url, store.client_id if client_id is None else client_id, store.tenant_id)
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
    ServiceAccount federated with the writers' identity and the api-server's
    Secret, whose connection names the reader's."""
    if not settings.remote_task_logs:
        return []
    if settings.target == "aks":
        if store is None:
            return []
        return [
            KubeObject("ServiceAccount", "task-logs-account", {
                "metadata": {"name": names.TASK_LOG_SERVICE_ACCOUNT, "namespace": settings.namespace,
                             "labels": LOG_LABELS,
                             "annotations": {"azure.workload.identity/client-id": store.client_id}},
                # The pods mount only the token workload identity projects for Azure.
                "automount_service_account_token": False,
            }),
            _connection_secret("task-logs-secret", names.TASK_LOG_SECRET, settings, identity_connection(store)),
            _connection_secret("task-logs-reader-secret", names.TASK_LOG_READER_SECRET, settings,
                               identity_connection(store, reader_client_id(store))),
        ]
    assert settings.task_log_emulator_endpoint is not None
    # The emulator takes its key and has no roles: one connection for all.
    return [_connection_secret("task-logs-secret", names.TASK_LOG_SECRET, settings,
                               emulator_connection(settings.task_log_emulator_endpoint))]


def _connection_secret(suffix: str, name: str, settings: Settings, connection: pulumi.Input[str]) -> KubeObject:
    return KubeObject("Secret", suffix, {
        "metadata": {"name": name, "namespace": settings.namespace, "labels": LOG_LABELS},
        "type": "Opaque",
        # A Pulumi secret like every Secret's data: on a local cluster it holds
        # the emulator's (public) key.
        "string_data": {CONNECTION_KEY: pulumi.Output.secret(connection)},
    })


def task_logs_on(settings: Settings, store: TaskLogStore | None) -> bool:
    """Remote task logs, with what they need: on AKS, the Azure side."""
    return settings.remote_task_logs and (settings.target != "aks" or store is not None)


def log_identity(component: str, components: tuple[str, ...] = LOG_WRITERS) -> tuple[dict[str, str],
                                                                                   dict[str, Any]]:
    """Pod labels and spec fields that give a component the writers' identity
    (the workload identity webhook acts on the label), if it is one of
    `components` (by default those that write task logs)."""
    if component not in components:
        return {}, {}
    return ({"azure.workload.identity/use": "true"},
            {"service_account_name": names.TASK_LOG_SERVICE_ACCOUNT})


def task_log_env(component: str, settings: Settings) -> list[dict[str, Any]]:
    """Every Airflow container reads a connection (the triggerer and the
    workers write logs, the api-server reads them; the rest never use it):
    on AKS the api-server the one naming its own identity."""
    reader = component == LOG_READER and settings.target == "aks"
    secret = names.TASK_LOG_READER_SECRET if reader else names.TASK_LOG_SECRET
    return [{"name": CONNECTION_ENV,
             "value_from": {"secret_key_ref": {"name": secret, "key": CONNECTION_KEY}}}]
