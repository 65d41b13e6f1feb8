"""Every Kubernetes object of the deployment, through the cluster's provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components.config import StackConfig
from components.kubernetes import k8s
from components.kubernetes.airflow import Airflow, airflow_objects
from components.kubernetes.backups import DatabaseBackup, backup_objects, backups_on
from components.kubernetes.dag_bundles import dag_bundle_objects, read_tokens
from components.kubernetes.database_roles import DatabaseRoles, database_roles_objects
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.k8s import KubeObject
from components.kubernetes.metrics import Metrics, metrics_objects
from components.kubernetes.network_policies import NetworkPolicies, network_policy_objects
from components.kubernetes.pgbouncer import PgBouncer, pgbouncer_objects
from components.kubernetes.postgres import Postgres, postgres_objects
from components.kubernetes.rabbitmq import RabbitMQ, rabbitmq_objects
from components.kubernetes.secrets import AirflowSecrets, secret_objects
from components.kubernetes.task_logs import TaskLogStore, task_log_objects
from components.kubernetes.ui_auth import api_server_account
from components.kubernetes.ui_gateway import ui_gateway_objects
from components.model import names
from components.model.settings import Settings


def namespace_object(settings: Settings) -> KubeObject:
    return KubeObject("Namespace", "namespace", {
        "metadata": {"name": settings.namespace,
                     "labels": {"app.kubernetes.io/part-of": "airflow", **k8s.POD_SECURITY_LABELS}},
    })


def kube_objects(config: StackConfig, image: pulumi.Input[str],
                 secret_values: Mapping[str, pulumi.Input[str]],
                 task_log_store: TaskLogStore | None = None,
                 external_database: ExternalDatabase | None = None,
                 dag_bundle_tokens: Mapping[str, pulumi.Input[str]] | None = None,
                 ui_tls_identity_client_id: pulumi.Input[str] | None = None) -> list[KubeObject]:
    """Every object Workloads declares, from the same builders, for the offline render
    (dag_bundle_tokens None: placeholders for the git bundles' tokens)."""
    s, plan = config.settings, config.plan
    _check_external_database(s, external_database)
    return [
        namespace_object(s),
        *secret_objects(s, secret_values),
        *task_log_objects(s, task_log_store),
        *api_server_account(s, task_log_store),
        *dag_bundle_objects(s, dag_bundle_tokens),
        *(postgres_objects(s, plan) if external_database is None else []),
        *database_roles_objects(s, plan, external_database),
        *pgbouncer_objects(s, plan, external_database),
        *rabbitmq_objects(s, plan),
        *metrics_objects(s, plan),
        *airflow_objects(s, plan, config.airflow_cfg, image, task_log_store, external_database),
        *backup_objects(s, image, task_log_store),
        *ui_gateway_objects(s, ui_tls_identity_client_id, _key_vault_uri(task_log_store)),
        *network_policy_objects(s, task_log_store, external_database),
    ]


def _key_vault_uri(task_log_store: TaskLogStore | None) -> pulumi.Input[str] | None:
    return task_log_store.key_vault_url if task_log_store is not None else None


def _check_external_database(settings: Settings, external_database: ExternalDatabase | None) -> None:
    if (settings.database == "azure") != (external_database is not None):
        raise ValueError("`database: azure` and only it takes the external database (components/azure)")


class Workloads(pulumi.ComponentResource):
    """Namespace, secrets, PostgreSQL, RabbitMQ and Airflow."""

    namespace: pulumi.Output[str]
    api_server_service: pulumi.Output[str]
    admin_password: pulumi.Output[str]
    workers: kubernetes.apps.v1.StatefulSet
    # The Airflow version the database's schema was migrated to: known once
    # the migration Job has completed (pulumi-kubernetes awaits a Job).
    migrated_airflow_version: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: kubernetes.Provider,
        image: pulumi.Input[str],
        image_dependencies: Sequence[pulumi.Resource] = (),
        worker_gate: pulumi.Input[Any] | None = None,
        task_log_store: TaskLogStore | None = None,
        external_database: ExternalDatabase | None = None,
        opts: pulumi.ResourceOptions | None = None,
        ui_tls_identity_client_id: pulumi.Input[str] | None = None,
    ) -> None:
        """task_log_store: on AKS with remote task logs, the storage account
        and identity the Airflow pods write task logs with. external_database:
        with `database: azure`, the flexible server the pods connect to.
        ui_tls_identity_client_id: with `ui.tls.keyVaultCertificate`, the
        identity the gateway's certificate is read from Key Vault with."""
        super().__init__("airflow-aks:workloads:Workloads", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        settings, plan = config.settings, config.plan
        if settings.remote_task_logs and settings.target == "aks" and task_log_store is None:
            raise ValueError("remote task logs on AKS need the task-log store (TaskLogStorage)")
        if settings.key_vault and (task_log_store is None or task_log_store.key_vault_url is None):
            raise ValueError("keyVault needs the vault's URL in the task-log store (SecretsVault)")
        if (settings.target == "aks" and settings.database == "in-cluster"
                and settings.database_backup_schedule is not None
                and (task_log_store is None or task_log_store.backup_client_id is None)):
            raise ValueError("backups of the in-cluster database on AKS need the backup identity (TaskLogStorage)")
        _check_external_database(settings, external_database)
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.declare(namespace_object(settings), name, child)
        secrets = AirflowSecrets(f"{name}-secrets", settings=settings, after=[namespace],
                                 external_database=external_database, opts=child)
        after_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        task_logs = [k8s.declare(o, name, after_namespace) for o in task_log_objects(settings, task_log_store)]
        # The workload identity webhook refuses a pod whose ServiceAccount is missing.
        task_logs += [k8s.declare(o, name, after_namespace)
                      for o in api_server_account(settings, task_log_store)]
        # The git bundles' tokens: Pulumi secrets from the stack's config, into a Secret only.
        bundle_secrets = [k8s.declare(o, name, after_namespace)
                          for o in dag_bundle_objects(settings, read_tokens(settings))]
        # Objects refer to each other by fixed names; `after` makes the order explicit.
        ready = [namespace, *secrets.secrets, *task_logs, *bundle_secrets]
        # With `database: azure` there is no PostgreSQL in the cluster. The
        # Secrets carry the flexible server's host and password (Outputs of
        # components/azure), so whatever waits for them waits for the server;
        # its database and parameters (`ready`) take the StatefulSet's place.
        database: list[pulumi.Resource] = []
        if external_database is None:
            postgres = Postgres(f"{name}-postgres", settings=settings, plan=plan, after=ready, opts=child)
            database = [postgres.stateful_set]
        else:
            database = list(external_database.ready)
        # The least-privilege roles before anything logs in as them: PgBouncer
        # (its userlist is the app role's), the migration (the owner) and KEDA.
        roles = DatabaseRoles(f"{name}-database-roles", settings=settings, plan=plan, after=[*ready, *database],
                              external_database=external_database, opts=child)
        database = [*database, roles.job]
        rabbitmq = RabbitMQ(f"{name}-rabbitmq", settings=settings, plan=plan, after=ready, opts=child)
        # Airflow reaches the database through PgBouncer when it is on; the
        # migration Job, which waits for every backend, goes direct.
        pgbouncer = PgBouncer(f"{name}-pgbouncer", settings=settings, plan=plan,
                              after=[*ready, *database], external_database=external_database, opts=child)
        Metrics(f"{name}-metrics", settings=settings, plan=plan, after=[namespace], opts=child)
        NetworkPolicies(f"{name}-network", settings=settings, task_log_store=task_log_store, after=[namespace],
                        external_database=external_database, opts=child)
        _declare_ui_gateway(ui_gateway_objects(settings, ui_tls_identity_client_id, _key_vault_uri(task_log_store)),
                            name, self, namespace)
        backends = [*database, rabbitmq.stateful_set]
        if pgbouncer.deployment is not None:
            backends.append(pgbouncer.deployment)
        airflow = Airflow(
            f"{name}-airflow", settings=settings, plan=plan, airflow_cfg=config.airflow_cfg, image=image,
            after=ready, backends=backends,
            image_dependencies=image_dependencies, worker_gate=worker_gate, task_log_store=task_log_store,
            external_database=external_database, opts=child,
        )

        # In-cluster database only: it dumps PostgreSQL itself, once it runs;
        # on AKS the image and the backup identity's grants come first.
        if backups_on(settings, task_log_store):
            DatabaseBackup(f"{name}-backup", settings=settings, image=image, store=task_log_store,
                           after=[*ready, postgres.stateful_set, *image_dependencies], opts=child)

        self.workers = airflow.workers
        self.migrated_airflow_version = airflow.migration.id.apply(lambda _: settings.airflow_version)
        self.namespace = namespace.metadata.name  # type: ignore[attr-defined]
        self.api_server_service = airflow.api_server_service
        self.admin_password = secrets.admin_password
        self.register_outputs({"namespace": self.namespace, "api_server_service": self.api_server_service})


def _declare_ui_gateway(objects: list[KubeObject], name: str, parent: pulumi.Resource,
                        namespace: pulumi.Resource) -> None:
    """The gateway's Namespace first, what lives in it after; the HTTPRoute after the Airflow namespace."""
    gateway_ns = [k8s.declare(o, name, pulumi.ResourceOptions(parent=parent)) for o in objects
                  if o.kind == "Namespace"]
    for o in objects:
        if o.kind != "Namespace":
            after = [namespace] if o.kind == "HTTPRoute" else gateway_ns
            k8s.declare(o, name, pulumi.ResourceOptions(parent=parent, depends_on=after))


def port_forward_command(namespace: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "kubectl --namespace ", namespace, f" port-forward svc/{names.API_SERVER} "
        f"{names.API_SERVER_PORT}:{names.API_SERVER_PORT}",
    )
