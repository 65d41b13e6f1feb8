"""Which Airflow pods read connections and variables from the Key Vault (`keyVault`), and how.

The vault's URI reaches those pods as an environment variable (the Azure side
only knows it once the vault exists), and each of them runs as the
ServiceAccount federated with the Airflow identity, the one Key Vault Secrets
User is granted to (components/azure/key_vault.py), but the api-server, which
runs as its own, federated with the log reader identity, granted the same role.
airflow.cfg holds the rest
of the backend's configuration (components/model/airflow_cfg.py, secrets_options).
"""

from __future__ import annotations

from typing import Any

from components.kubernetes.task_logs import LOG_READER, LOG_WRITERS, TaskLogStore
from components.model.airflow_cfg import VAULT_URL_ENV
from components.model.settings import Settings

# The components that look connections and variables up:
# - worker: task code (the task SDK tries the [secrets] backend first, then
#   the Execution API; airflow/sdk/execution_time/context.py, _get_connection);
# - triggerer: triggers' hooks, the same way;
# - dag-processor: DAG files that read a variable or connection at parse time,
#   and callbacks, which Airflow 3 runs there;
# - api-server: the Execution API's connection and variable routes look them
#   up on the server for a task whose own lookup found nothing
#   (airflow/api_fastapi/execution_api/routes/connections.py, get_connection:
#   Connection.get_connection_from_secrets; routes/variables.py, get_variable),
#   the vault first: without the identity each of those would first fail there.
# Not the scheduler, the migration Job or Flower: none runs user code or
# hooks. They read the same airflow.cfg, but without the variable or the
# identity; a lookup there would fail over to the metastore, logged.
VAULT_COMPONENTS = ("worker", "triggerer", "dag-processor", "api-server")


def key_vault_on(settings: Settings, store: TaskLogStore | None) -> bool:
    """keyVault with what it needs on AKS: the identity's store and the vault's URL."""
    return settings.key_vault and store is not None and store.key_vault_url is not None


def identity_components(settings: Settings, store: TaskLogStore | None) -> tuple[str, ...]:
    """Every component that runs as the Airflow (log writers') identity: the
    log writers, and with keyVault those that read the vault (one identity,
    two grants) but the api-server, which reads it with its own identity, the
    log reader (components/kubernetes/ui_auth.py)."""
    if not key_vault_on(settings, store):
        return LOG_WRITERS
    return LOG_WRITERS + tuple(c for c in VAULT_COMPONENTS if c not in LOG_WRITERS and c != LOG_READER)


def vault_env(component: str, settings: Settings, store: TaskLogStore | None) -> list[dict[str, Any]]:
    """The vault's URL for a component that reads it (not a secret: a URL
    that only the identity's role makes usable)."""
    if component not in VAULT_COMPONENTS or not key_vault_on(settings, store):
        return []
    assert store is not None
    return [{"name": VAULT_URL_ENV, "value": store.key_vault_url}]
