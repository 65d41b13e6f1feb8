"""The migration Job: the schema, Celery's result tables, KEDA's grants and
default_pool's size, before any other Airflow component starts."""

from __future__ import annotations

import shlex

from components.kubernetes import k8s
from components.kubernetes.airflow_pod import PodParts, component_labels
from components.kubernetes.k8s import KubeObject
from components.kubernetes.keda import QUERY_COLUMNS, QUERY_TABLE
from components.model.database_roles import after_migration_sql

COMPONENT = "migrate"
# Run by the migration Job as the owner role, after the migration (app/config).
AFTER_MIGRATE_SCRIPT = "airflow_aks_after_migrate.py"
AFTER_MIGRATE_SQL_ENV = "AIRFLOW_AKS_AFTER_MIGRATE_SQL"


def migration_command(default_pool_slots: int) -> str:
    """Migrate the schema, make what the components' role cannot (the Celery
    result backend's tables) and grant KEDA's role its columns, then size
    default_pool: [core] default_pool_task_slot_count only applies when the
    pool is first created, so an existing pool is resized here. The script
    is where the image copies app/config ($AIRFLOW_HOME/config)."""
    return (f"airflow db migrate && python \"$AIRFLOW_HOME/config/{AFTER_MIGRATE_SCRIPT}\" && "
            f"airflow pools set default_pool {default_pool_slots} {shlex.quote('Default pool')}")


def migration_objects(parts: PodParts) -> list[KubeObject]:
    """The Job, stage "migration": it waits for the databases, the components wait for it."""
    return [KubeObject("Job", COMPONENT, {
        # No fixed name: a Job's pod template cannot change, so a new image
        # or cfg replaces the Job (new name first), which runs the migration
        # again before anything that depends on it is updated.
        "metadata": {"namespace": parts.namespace, "labels": component_labels(COMPONENT),
                     "annotations": k8s.checkov_skips(parts.skips)},
        "spec": {
            "backoff_limit": 6,
            "template": parts.pod(COMPONENT, [parts.container(
                COMPONENT, ["bash", "-c", migration_command(parts.plan.default_pool_slots)],
                parts.control("migration"),
                # Its database URL is the direct one (component_secrets.DIRECT_CONN):
                # `airflow db migrate` holds a session-level advisory lock
                # (pg_advisory_lock and SET LOCK_TIMEOUT, airflow/utils/db.py
                # _create_global_lock_postgresql) across transactions, which
                # transaction pooling would hand to other clients.
                env=[{"name": AFTER_MIGRATE_SQL_ENV, "value": after_migration_sql(QUERY_TABLE, QUERY_COLUMNS)}],
            )], restart_policy="OnFailure"),
        },
    }, stage="migration")]
