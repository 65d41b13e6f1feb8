"""The Job that makes the database's least-privilege roles, before the migration.

It connects as the superuser (in-cluster) or the flexible server's admin,
the only pod besides the server itself and the backups that holds that
password, and runs components/model/database_roles.py's psql script with
the PostgreSQL image's psql. Like the migration Job it has no fixed name: a
Job's pod template cannot change, so a new script or image replaces it and
the script runs again (it is idempotent) before PgBouncer and the migration
are updated.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.kubernetes import k8s
from components.kubernetes.external_database import DIRECT_SSLMODE, ExternalDatabase
from components.kubernetes.k8s import KubeObject, resources
from components.kubernetes.secrets import PASSWORD_KEY, ROLE_PASSWORD_KEYS
from components.model import names
from components.model.capacity import CapacityPlan
from components.model.database_roles import ROLE_PASSWORD_ENVS, roles_sql
from components.model.settings import Settings

# Not the Airflow components' labels: nothing of Airflow's runs here.
LABELS = {"app.kubernetes.io/name": "database-roles", "app.kubernetes.io/component": "database-roles",
          "app.kubernetes.io/part-of": "airflow"}
SQL_ENV = "DATABASE_ROLES_SQL"
# psql is only a client here and owns no file: any unprivileged user, above
# the host's range (checkov CKV_K8S_40), not the image's postgres (999).
# libpq asks the system for the user's name only when PGUSER is unset.
ROLES_JOB_UID = 10001
SKIPS = {
    "CKV_K8S_35": "psql reads the passwords from PGPASSWORD and the DATABASE_*_PASSWORD variables; the "
                  "values come from a Secret through secretKeyRef",
}


def _server_env(settings: Settings, external_database: ExternalDatabase | None) -> list[dict[str, object]]:
    """libpq's environment (PostgreSQL docs, "Environment Variables"): straight
    to the server, as its superuser or admin."""
    host: pulumi.Input[str] = names.service_host(names.POSTGRES, settings.namespace)
    user, sslmode = names.POSTGRES_USER, "disable"
    if external_database is not None:
        host, user, sslmode = external_database.host, external_database.admin_user, DIRECT_SSLMODE
    return [
        {"name": "PGHOST", "value": host},
        {"name": "PGPORT", "value": str(names.POSTGRES_PORT)},
        {"name": "PGUSER", "value": user},
        {"name": "PGDATABASE", "value": names.POSTGRES_DB},
        {"name": "PGSSLMODE", "value": sslmode},
        {"name": "PGPASSWORD", "value_from": {"secret_key_ref": {
            "name": names.POSTGRES_SECRET, "key": PASSWORD_KEY}}},
    ]


def database_roles_objects(settings: Settings, plan: CapacityPlan,
                           external_database: ExternalDatabase | None = None) -> list[KubeObject]:
    """The roles Job, on either server."""
    passwords = [{"name": env, "value_from": {"secret_key_ref": {
        "name": names.POSTGRES_SECRET, "key": ROLE_PASSWORD_KEYS[role]}}} for role, env in ROLE_PASSWORD_ENVS.items()]
    container = {
        "name": "roles",
        "image": settings.postgres_image,
        # The script in the template (it holds no secret): a changed script replaces the Job.
        "command": ["bash", "-c", f'printf "%s" "${SQL_ENV}" | psql --no-psqlrc --quiet --file=-'],
        "env": [*_server_env(settings, external_database), *passwords, {"name": SQL_ENV, "value": roles_sql()}],
        # It runs alone, just before the migration Job: the plan's room for that one.
        "resources": resources(plan.control_plane.pods["migration"]),
        "security_context": {**k8s.container_security(), "run_as_user": ROLES_JOB_UID, "run_as_group": ROLES_JOB_UID},
    }
    return [KubeObject("Job", "database-roles", {
        "metadata": {"namespace": settings.namespace, "labels": LABELS, "annotations": k8s.checkov_skips(
            {**k8s.image_skips(settings.postgres_image), **SKIPS})},
        "spec": {
            "backoff_limit": 6,
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "security_context": {"run_as_user": ROLES_JOB_UID, "run_as_group": ROLES_JOB_UID,
                                         "run_as_non_root": True, "seccomp_profile": k8s.RUNTIME_DEFAULT_SECCOMP},
                    "automount_service_account_token": False,
                    "containers": [container],
                    "restart_policy": "OnFailure",
                },
            },
        },
    }, stage="roles")]


class DatabaseRoles(k8s.ObjectsComponent):
    """The roles Job, declared after `after` (the Secrets and the server)."""

    job: kubernetes.batch.v1.Job

    def __init__(self, name: str, settings: Settings, plan: CapacityPlan, after: Sequence[pulumi.Resource] = (),
                 external_database: ExternalDatabase | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:database:DatabaseRoles", name,
                         database_roles_objects(settings, plan, external_database), after, opts=opts)
        self.job = self.declared[("Job", "database-roles")]  # type: ignore[assignment]
