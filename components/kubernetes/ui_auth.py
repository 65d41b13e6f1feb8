"""The api-server's own ServiceAccount and workload identity label, for Entra
ID sign-in (`ui.auth: entra`) and for its Azure identity: the log reader.

The api-server proves itself to Entra ID with the token the workload identity
webhook projects into pods labelled azure.workload.identity/use=true. The
webhook projects it for any ServiceAccount, with or without the client-id
annotation: it reads the annotation only to fill AZURE_CLIENT_ID, and sets a
variable only when its value is non-empty, while the token volume, its mount
and AZURE_FEDERATED_TOKEN_FILE are added unconditionally
(Azure/azure-workload-identity v1.6.0, pkg/webhook/webhook.go: podMutator.Handle,
addEnvironmentVariables, addProjectedVolume). The webhook refuses a pod whose
ServiceAccount does not exist yet, so the account is declared before the pods.

The account is the api-server's alone: the app registration trusts its tokens,
and no other pod (a worker running DAG code, say) can present one. With remote
task logs on AKS the api-server has it with or without Entra ID, and it
carries the client ID of the log reader identity, which trusts this account
alone and may read the log container, not write it (and read the vault with
keyVault; components/azure/task_log_storage.py). The log writers' identity
does not trust it: the api-server, the one Airflow component reachable from
outside the cluster, cannot overwrite or delete a task's log.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.kubernetes.k8s import KubeObject
from components.kubernetes.task_logs import TaskLogStore, reader_client_id, task_logs_on
from components.model import names
from components.model.settings import Settings

WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
API_SERVER_COMPONENT = "api-server"


def entra_on(settings: Settings) -> bool:
    return settings.ui.auth == "entra"


def azure_identity_client_id(settings: Settings, store: TaskLogStore | None) -> pulumi.Input[str] | None:
    """The client ID of the Azure identity the api-server runs as, if any: the
    log reader's, with remote task logs on AKS."""
    if store is None or settings.target != "aks" or not task_logs_on(settings, store):
        return None
    return reader_client_id(store)


def own_account(settings: Settings, store: TaskLogStore | None) -> bool:
    """Whether the api-server runs as its own ServiceAccount: for Entra ID
    sign-in, or for its Azure identity."""
    return entra_on(settings) or azure_identity_client_id(settings, store) is not None


def api_server_account(settings: Settings, store: TaskLogStore | None) -> list[KubeObject]:
    """The api-server's ServiceAccount, with the log reader's client ID if it has that identity."""
    if not own_account(settings, store):
        return []
    client_id = azure_identity_client_id(settings, store)
    annotations = {CLIENT_ID_ANNOTATION: client_id} if client_id is not None else {}
    return [KubeObject("ServiceAccount", "api-server-account", {
        "metadata": {"name": names.API_SERVER_SERVICE_ACCOUNT, "namespace": settings.namespace,
                     "labels": {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "api-server"},
                     "annotations": annotations},
        # The pod mounts only the token the webhook projects for Entra ID.
        "automount_service_account_token": False,
    })]


def api_server_identity(settings: Settings, store: TaskLogStore | None) -> tuple[dict[str, str], dict[str, Any]]:
    """Pod labels and spec fields of the api-server when it has its own account."""
    if not own_account(settings, store):
        return {}, {}
    return {WORKLOAD_IDENTITY_LABEL: "true"}, {"service_account_name": names.API_SERVER_SERVICE_ACCOUNT}
