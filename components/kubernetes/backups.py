"""Scheduled dumps of the in-cluster PostgreSQL to blob storage.

A CronJob whose pod runs two steps: `pg_dump --format=custom` in the
PostgreSQL image (the server's own major version, straight to the server:
PgBouncer's transaction pooling is for Airflow's short transactions, and a
dump is one long read-only transaction), into an emptyDir; then the uploader
(backup_upload.py, from a ConfigMap) in the Airflow image, which writes the
file to the `airflow-backups` container of the task-log storage account.

On AKS the upload authenticates through workload identity as an identity of
its own (components/azure/task_log_storage.py), allowed on the backup
container only: the Airflow pods' log identity, which task code can use,
cannot read or delete the dumps, and the backup identity cannot touch the
logs. Nothing in the cluster deletes a dump: the account's lifecycle rule
does, `databaseBackupRetentionDays` after it was written. On a local cluster
the dumps go to the storage emulator with its public development key, as task
logs do.

Pure: the account URL and the identity's client ID arrive in the
TaskLogStore as Pulumi inputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi

from components.kubernetes import k8s
from components.kubernetes.airflow_pod import component_labels
from components.kubernetes.k8s import KubeObject
from components.kubernetes.postgres import POSTGRES_UID
from components.kubernetes.secrets import PASSWORD_KEY
from components.kubernetes.task_logs import TaskLogStore, emulator_connection
from components.model import names
from components.model.capacity import BACKUP_DUMP_REQUESTS, BACKUP_UPLOAD_REQUESTS, PodResources
from components.model.settings import Settings

COMPONENT = "database-backup"
LABELS = component_labels(COMPONENT)
UPLOADER = Path(__file__).with_name("backup_upload.py")
UPLOADER_KEY = "backup_upload.py"
SCRIPT_DIR = "/opt/airflow-backup"
DUMP_DIR = "/backup"
DUMP_FILE = f"{DUMP_DIR}/airflow.dump"
# The kube-controller-manager's own zone is the default; the schedule is UTC.
TIME_ZONE = "Etc/UTC"
# A start the controller missed (it was down, or the previous run still
# went on) still runs within this window, then waits for the next.
STARTING_DEADLINE_SECONDS = 3600
# A failed pod is retried twice; a run that hangs is stopped after this long.
BACKOFF_LIMIT = 2
ACTIVE_DEADLINE_SECONDS = 4 * 3600
HISTORY_LIMIT = 3
# Requests (the plan's, components/model/capacity.py) and limits of the two
# steps. pg_dump streams table by table and the uploader sends the file in
# blocks: neither grows with the database. tests/test_backups.py measures
# both peaks on a real dump and holds them under these limits.
DUMP_RESOURCES = BACKUP_DUMP_REQUESTS
UPLOAD_RESOURCES = BACKUP_UPLOAD_REQUESTS
DUMP_LIMITS = {"cpu": "1000m", "memory": "512Mi"}
UPLOAD_LIMITS = {"cpu": "500m", "memory": "512Mi"}
STORAGE_ENV = "BACKUP_STORAGE"
CONTAINER_ENV = "BACKUP_CONTAINER"
# On a local stack the upload step runs the Airflow image loaded into the
# cluster under a content tag (components/azure/image.py), never pulled.
LOCAL_UPLOAD_SKIPS = {
    "CKV_K8S_15": "local stack: the upload step's Airflow image is loaded into the local cluster, not pushed to "
                  "a registry, so it must not be pulled",
    "CKV_K8S_43": "local stack: the upload step's Airflow image is loaded into the local cluster under a content "
                  "tag; there is no registry digest",
}
SKIPS = {
    "CKV_K8S_35": "pg_dump reads the database password from PGPASSWORD; the value comes from a Secret "
                  "through secretKeyRef",
}


def _skips(settings: Settings) -> dict[str, str]:
    local = LOCAL_UPLOAD_SKIPS if settings.target == "local" else {}
    return {**k8s.image_skips(settings.postgres_image), **local, **SKIPS}


def backups_on(settings: Settings, store: TaskLogStore | None) -> bool:
    """Dumps are declared: a schedule, and on AKS the backup identity."""
    if settings.database != "in-cluster" or settings.database_backup_schedule is None:
        return False
    return settings.target != "aks" or (store is not None and store.backup_client_id is not None)


def _resources(res: PodResources, limits: dict[str, str]) -> dict[str, Any]:
    return {"requests": {"cpu": f"{res.cpu_request_millicores}m", "memory": f"{res.memory_request_mib}Mi"},
            "limits": limits}


def backup_objects(settings: Settings, image: pulumi.Input[str], store: TaskLogStore | None) -> list[KubeObject]:
    """The uploader's ConfigMap, the identity's ServiceAccount (AKS) or the
    emulator's Secret (local), and the CronJob; nothing when backups are off."""
    if not backups_on(settings, store):
        return []
    ns = settings.namespace
    aks = settings.target == "aks"
    objects = [KubeObject("ConfigMap", "backup-script", {
        "metadata": {"name": names.BACKUP_CONFIG_MAP, "namespace": ns, "labels": LABELS},
        "data": {UPLOADER_KEY: UPLOADER.read_text()},
    })]
    if aks:
        assert store is not None and store.backup_client_id is not None
        objects.append(KubeObject("ServiceAccount", "backup-account", {
            "metadata": {"name": names.BACKUP_SERVICE_ACCOUNT, "namespace": ns, "labels": LABELS,
                         "annotations": {"azure.workload.identity/client-id": store.backup_client_id}},
            # The pod mounts only the token workload identity projects for Azure.
            "automount_service_account_token": False,
        }))
        storage_env: dict[str, Any] = {"name": STORAGE_ENV, "value": store.account_url}
        identity_labels = {"azure.workload.identity/use": "true"}
        identity_spec = {"service_account_name": names.BACKUP_SERVICE_ACCOUNT}
    else:
        assert settings.task_log_emulator_endpoint is not None
        # The emulator's public development key, in a Secret like every key.
        conn = json.loads(emulator_connection(settings.task_log_emulator_endpoint))["extra"]["connection_string"]
        objects.append(KubeObject("Secret", "backup-secret", {
            "metadata": {"name": names.BACKUP_SECRET, "namespace": ns, "labels": LABELS},
            "type": "Opaque",
            "string_data": {"connection": pulumi.Output.secret(conn)},
        }))
        storage_env = {"name": STORAGE_ENV,
                       "value_from": {"secret_key_ref": {"name": names.BACKUP_SECRET, "key": "connection"}}}
        identity_labels, identity_spec = {}, {}

    dump = {
        "name": "dump",
        "image": settings.postgres_image,
        "command": ["pg_dump", "--format=custom", "--no-password", f"--file={DUMP_FILE}"],
        # libpq's environment (PostgreSQL docs, "Environment Variables"):
        # the server's Service directly, as the migration Job connects. As
        # the superuser, not a least-privilege role: pg_dump must read every
        # table, sequence and role-owned object (the app role lacks sequences'
        # ownership and KEDA's reads two columns), and the pod runs no DAG
        # code, only pg_dump and the uploader.
        "env": [
            {"name": "PGHOST", "value": names.service_host(names.POSTGRES, ns)},
            {"name": "PGPORT", "value": str(names.POSTGRES_PORT)},
            {"name": "PGUSER", "value": names.POSTGRES_USER},
            {"name": "PGDATABASE", "value": names.POSTGRES_DB},
            {"name": "PGPASSWORD", "value_from": {"secret_key_ref": {
                "name": names.POSTGRES_SECRET, "key": PASSWORD_KEY}}},
        ],
        "resources": _resources(DUMP_RESOURCES, DUMP_LIMITS),
        "volume_mounts": [{"name": "dump", "mount_path": DUMP_DIR}],
        # The image's postgres user; pg_dump writes the dump file only.
        "security_context": {**k8s.container_security(), "run_as_user": POSTGRES_UID,
                             "run_as_group": POSTGRES_UID},
    }
    upload = {
        "name": "upload",
        "image": image,
        # A command, not args: the image's entrypoint would first wait for
        # Airflow's database, which this step does not use.
        "command": ["python", f"{SCRIPT_DIR}/{UPLOADER_KEY}", DUMP_FILE],
        "env": [storage_env, {"name": CONTAINER_ENV, "value": names.BACKUP_CONTAINER}],
        "resources": _resources(UPLOAD_RESOURCES, UPLOAD_LIMITS),
        "volume_mounts": [{"name": "dump", "mount_path": DUMP_DIR, "read_only": True},
                          {"name": "script", "mount_path": SCRIPT_DIR, "read_only": True}],
        "security_context": k8s.container_security(),
    }
    pod = {
        "metadata": {"labels": {**LABELS, **identity_labels}},
        "spec": {
            **identity_spec,
            # The Airflow image's user for the upload; the dump runs as postgres.
            "security_context": {"run_as_user": names.AIRFLOW_UID, "run_as_group": 0, "fs_group": 0,
                                 "run_as_non_root": True, "seccomp_profile": k8s.RUNTIME_DEFAULT_SECCOMP},
            "automount_service_account_token": False,
            # The dump first; the upload starts only once it has succeeded.
            "init_containers": [dump],
            "containers": [upload],
            "restart_policy": "Never",
            "volumes": [
                # A dump is smaller than the data directory it reads.
                {"name": "dump", "empty_dir": {"size_limit": f"{settings.postgres_storage_gib}Gi"}},
                {"name": "script", "config_map": {"name": names.BACKUP_CONFIG_MAP}},
            ],
        },
    }
    objects.append(KubeObject("CronJob", "backup", {
        "metadata": {"name": names.DATABASE_BACKUP, "namespace": ns, "labels": LABELS,
                     "annotations": k8s.checkov_skips(_skips(settings))},
        "spec": {
            "schedule": settings.database_backup_schedule,
            "time_zone": TIME_ZONE,
            # Never two dumps at once: a slow one is not raced by the next.
            "concurrency_policy": "Forbid",
            "starting_deadline_seconds": STARTING_DEADLINE_SECONDS,
            "successful_jobs_history_limit": HISTORY_LIMIT,
            "failed_jobs_history_limit": HISTORY_LIMIT,
            "job_template": {
                "metadata": {"labels": LABELS},
                "spec": {"backoff_limit": BACKOFF_LIMIT, "active_deadline_seconds": ACTIVE_DEADLINE_SECONDS,
                         "template": pod},
            },
        },
    }))
    return objects


class DatabaseBackup(k8s.ObjectsComponent):
    """The backup objects, declared after `after` (the namespace, its Secrets, PostgreSQL)."""

    def __init__(self, name: str, settings: Settings, image: pulumi.Input[str], store: TaskLogStore | None,
                 after: Sequence[pulumi.Resource] = (), opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:backups:DatabaseBackup", name, backup_objects(settings, image, store), after,
                         opts=opts)
