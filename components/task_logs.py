"""Task logs in Azure Blob Storage: what Airflow's Azure provider needs to write
and read them, and which pods get the Azure identity that allows it.

Pure: the values Azure only knows after a deploy (the storage account's URL,
the identity's client and tenant IDs) arrive as Pulumi inputs in a
TaskLogStore; the offline render passes placeholders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components import names
from components.settings import Settings

# The Azure provider's WasbHook reads connection `wasb_default` unless
# [logging] remote_log_conn_id names another.
CONNECTION_ENV = "AIRFLOW_CONN_WASB_DEFAULT"
# Blob names start with this, inside names.TASK_LOG_CONTAINER (Airflow's
# airflow_local_settings.py takes [logging] remote_base_log_folder as the
# prefix and [azure_remote_logging] remote_wasb_log_container as the container).
REMOTE_BASE_LOG_FOLDER = "wasb://task-logs"
# The components that write task logs (workers, the triggerer for deferred
# tasks) or read them for the UI (the api-server). Nothing else gets the
# identity.
LOG_COMPONENTS = ("worker", "triggerer", "api-server")
# Storage Blob Data Contributor, a built-in Azure role.
BLOB_DATA_CONTRIBUTOR_ROLE = "ba92f5b4-2d11-453d-a403-e96b0b4c6fe3"
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


def remote_logging_options(settings: Settings) -> dict[str, dict[str, str]]:
    """airflow.cfg options for remote task logs (none when they are off)."""
    if not settings.remote_task_logs:
        return {}
    return {
        "logging": {
            "remote_logging": "True",
            "remote_base_log_folder": REMOTE_BASE_LOG_FOLDER,
            "remote_log_conn_id": "wasb_default",
        },
        "azure_remote_logging": {"remote_wasb_log_container": names.TASK_LOG_CONTAINER},
    }


def identity_connection(store: TaskLogStore) -> pulumi.Output[str]:
    """The wasb_default connection on AKS: no key, the pod's workload identity
    (DefaultAzureCredential reads the token file the webhook mounts)."""
    return pulumi.Output.all(store.account_url, store.client_id, store.tenant_id).apply(
        lambda v: json.dumps({"conn_type": "wasb", "host": v[0],
                              "extra": {"managed_identity_client_id": v[1], "workload_identity_tenant_id": v[2]}}))


def emulator_connection(endpoint: str) -> str:
    """The wasb_default connection for the storage emulator (its public development key)."""
    conn = (f"DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};"
            f"BlobEndpoint={endpoint.rstrip('/')};")
    return json.dumps({"conn_type": "wasb", "extra": {"connection_string": conn}})
