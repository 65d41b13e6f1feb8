"""Airflow itself: airflow.cfg, the migration Job, api-server, scheduler, dag-processor,
triggerer, Celery workers and (optionally) Flower."""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components.kubernetes import k8s, ui_auth
from components.kubernetes.dag_bundles import bundle_env, bundle_mounts, bundle_volumes
from components.kubernetes.dag_bundles import identity_components as bundle_identity_components
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.k8s import CHECKSUM_ANNOTATION, KubeObject, checksum, resources
from components.kubernetes.keda import QUERY_COLUMNS, QUERY_TABLE, keda_objects
from components.kubernetes.key_vault import identity_components, vault_env
from components.kubernetes.secrets import AUTH_PASSWORDS_KEY
from components.kubernetes.task_logs import TaskLogStore, log_identity, task_log_env, task_logs_on
from components.model import component_secrets, names
from components.model.airflow_cfg import AUTH_PASSWORDS_FILE, worker_cfg_env, workload_env
from components.model.capacity import CapacityPlan, worker_disruption_allowance, worker_stop_seconds
from components.model.database_roles import after_migration_sql
from components.model.names import WORKER_POOL_LABEL_KEY, WORKER_POOL_LABEL_VALUE
from components.model.settings import Settings
from components.model.ui_auth import WEBSERVER_CONFIG_KEY, WEBSERVER_CONFIG_PATH, webserver_config

# How long `pulumi up` gives the worker StatefulSet to reach its replica
# count beyond the warm shutdown of the workers it removes.
WORKER_AWAIT_SLACK_SECONDS = 300
SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"
AUTH_SECRET_DIR = "/secrets/auth"
# The api-server's pod template: changes with its webserver_config.py only.
WEBSERVER_CONFIG_CHECKSUM = "airflow-aks/webserver-config-checksum"
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
# Run by the migration Job as the owner role, after the migration (app/config).
AFTER_MIGRATE_SCRIPT = "airflow_aks_after_migrate.py"
AFTER_MIGRATE_SQL_ENV = "AIRFLOW_AKS_AFTER_MIGRATE_SQL"


def worker_await_annotations(replicas: int, longest_task_seconds: int) -> dict[str, str]:
    """What `pulumi up` waits for on the worker StatefulSet: its pod count, not a finished rollout.

    The provider's default StatefulSet await would wait for a whole rollout,
    each worker stopping only after its tasks end. pulumi.com/waitFor replaces
    that await on create and update (pulumi-kubernetes
    provider/pkg/metadata/readiness.go, ReadyCondition): .status.replicas
    counts every pod the StatefulSet still has, terminating ones included, so
    a scale-down completes only when the removed workers have finished their
    tasks and exited, and a rollout or scale-up completes once the pods exist.
    What waits on the StatefulSet (a shrinking worker pool) waits for that.
    """
    return {
        "pulumi.com/waitFor": f"jsonpath={{.status.replicas}}={replicas}",
        "pulumi.com/timeoutSeconds": str(worker_stop_seconds(longest_task_seconds) + WORKER_AWAIT_SLACK_SECONDS),
    }


def migration_command(default_pool_slots: int) -> str:
    """Migrate the schema, make what the components' role cannot (the Celery
    result backend's tables) and grant KEDA's role its columns, then size
    default_pool: [core] default_pool_task_slot_count only applies when the
    pool is first created, so an existing pool is resized here. The script
    is where the image copies app/config ($AIRFLOW_HOME/config)."""
    return (f"airflow db migrate && python \"$AIRFLOW_HOME/config/{AFTER_MIGRATE_SCRIPT}\" && "
            f"airflow pools set default_pool {default_pool_slots} {shlex.quote('Default pool')}")


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "airflow"}


def component_labels(component: str) -> dict[str, str]:
    """The labels of a component's pods, which its Services, budgets and NetworkPolicies select."""
    return _labels(component)


def _http_probe(path: str, port: int, **timing: int) -> dict[str, Any]:
    return {"http_get": {"path": path, "port": port}, **timing}


def _exec_probe(command: list[str], **timing: int) -> dict[str, Any]:
    return {"exec_": {"command": command}, **timing}


def _jobs_check(job_type: str) -> dict[str, Any]:
    return _exec_probe(["airflow", "jobs", "check", "--job-type", job_type, "--local"],
                       initial_delay_seconds=60, period_seconds=60, timeout_seconds=60, failure_threshold=5)


def airflow_objects(settings: Settings, plan: CapacityPlan, airflow_cfg: str,
                    image: pulumi.Input[str], task_log_store: TaskLogStore | None = None,
                    external_database: ExternalDatabase | None = None) -> list[KubeObject]:
    """Every Airflow object, all reading the same airflow.cfg, each component its own Secret.

    Stages order them: "migration" waits for the databases, "component" and
    "worker" wait for the migration.
    """
    ns = settings.namespace
    env_data = workload_env(settings)
    # A changed airflow.cfg or environment rolls every Airflow pod.
    config_checksum = checksum(airflow_cfg, json.dumps(env_data, sort_keys=True))
    def secret_env(component: str) -> list[dict[str, Any]]:
        # Only the keys the component uses, from its own Secret (component_secrets.py says why each).
        return [{"name": env, "value_from": {"secret_key_ref": {"name": names.env_secret(component), "key": key}}}
                for env, key in component_secrets.component_env(component).items()]
    # A read-only root: what the components write goes to emptyDirs (/tmp,
    # logs, the api-server's auth), shown by tests/test_written_paths.py.
    hardened = k8s.container_security()
    skips = {
        "CKV_K8S_35": "Airflow reads its database and broker URLs and keys from AIRFLOW__ environment "
                      "variables by design; the values come from a Secret through secretKeyRef",
    }
    if settings.target == "local":
        # On AKS the image is the pushed reference with its digest.
        skips.update({
            "CKV_K8S_15": "local stack: the image is loaded into the local cluster, not pushed to a registry, "
                          "so it must not be pulled",
            "CKV_K8S_43": "local stack: the image is loaded into the local cluster under a content tag; "
                          "there is no registry digest",
        })
    logs_on = task_logs_on(settings, task_log_store)
    identity = logs_on and settings.target == "aks"
    # One Azure identity, several grants: the task-log components, the vault's
    # readers with keyVault (key_vault.py) and the blob bundles' fetchers (dag_bundles.py).
    vault_readers = identity_components(settings, task_log_store)
    with_identity = vault_readers + tuple(c for c in bundle_identity_components(settings) if c not in vault_readers)

    def container(component: str, args: list[str], res: dict[str, Any], **extra: Any) -> dict[str, Any]:
        mounts = [
            {"name": "config", "mount_path": f"{names.AIRFLOW_HOME}/airflow.cfg", "sub_path": "airflow.cfg",
             "read_only": True},
            {"name": "logs", "mount_path": f"{names.AIRFLOW_HOME}/logs"},
            # Temporary files of Airflow, Celery's pool (multiprocessing) and Python's tempfile.
            {"name": "tmp", "mount_path": "/tmp"},
            # DAG bundles' clones and downloads, where they are fetched.
            *bundle_mounts(component),
            *extra.pop("volume_mounts", []),
        ]
        return {
            "name": component,
            "image": image,
            "args": args,
            "env": [*secret_env(component), *(task_log_env(component, settings) if logs_on else []),
                    *bundle_env(settings, component), *vault_env(component, settings, task_log_store),
                    *extra.pop("env", [])],
            "env_from": [{"config_map_ref": {"name": names.ENV_CONFIG_MAP}}],
            "resources": res,
            "volume_mounts": mounts,
            "security_context": hardened,
            **extra,
        }

    def pod(component: str, containers: list[dict[str, Any]], annotations: dict[str, str] | None = None,
            **extra: Any) -> dict[str, Any]:
        volumes = [
            {"name": "config", "config_map": {"name": names.CONFIG_MAP}},
            {"name": "logs", "empty_dir": {}},
            {"name": "tmp", "empty_dir": {}},
            *bundle_volumes(component),
            *extra.pop("volumes", []),
        ]
        id_labels, id_spec = log_identity(component, with_identity) if identity else ({}, {})
        if component == ui_auth.API_SERVER_COMPONENT:
            # Never the writers' identity: its own account, with the log reader's.
            id_labels, id_spec = ui_auth.api_server_identity(settings, task_log_store)
        return {
            "metadata": {"labels": {**_labels(component), **id_labels},
                         "annotations": {CHECKSUM_ANNOTATION: config_checksum, **(annotations or {})}},
            "spec": {
                **id_spec,
                # The official image's airflow user; its files belong to group root.
                "security_context": {"run_as_user": names.AIRFLOW_UID, "run_as_group": 0, "fs_group": 0,
                                     "run_as_non_root": True, "seccomp_profile": k8s.RUNTIME_DEFAULT_SECCOMP},
                "automount_service_account_token": False,
                "containers": containers,
                "volumes": volumes,
                **extra,
            },
        }

    def control(component: str) -> dict[str, Any]:
        return resources(plan.control_plane.pods[component])

    def deployment(component: str, replicas: int, template: dict[str, Any]) -> KubeObject:
        return KubeObject("Deployment", component, {
            "metadata": {"name": f"airflow-{component}", "namespace": ns, "labels": _labels(component),
                         "annotations": k8s.checkov_skips(skips)},
            "spec": {"replicas": replicas, "selector": {"match_labels": _labels(component)}, "template": template},
        }, stage="component")

    def service(component: str, port_name: str, port: int, headless: bool = False) -> KubeObject:
        return k8s.service(f"{component}-service", f"airflow-{component}", ns, _labels(component), port_name,
                           port, headless=headless)

    # Entra ID sign-in: FAB's webserver_config.py, read by the api-server only.
    web_config = {WEBSERVER_CONFIG_KEY: webserver_config(settings.ui)} if ui_auth.entra_on(settings) else {}
    objects = [
        KubeObject("ConfigMap", "config", {
            "metadata": {"name": names.CONFIG_MAP, "namespace": ns, "labels": _labels("config")},
            "data": {"airflow.cfg": airflow_cfg, **web_config},
        }),
        KubeObject("ConfigMap", "env", {
            "metadata": {"name": names.ENV_CONFIG_MAP, "namespace": ns, "labels": _labels("config")},
            "data": env_data,
        }),
        KubeObject("Job", "migrate", {
            # No fixed name: a Job's pod template cannot change, so a new image
            # or cfg replaces the Job (new name first), which runs the migration
            # again before anything that depends on it is updated.
            "metadata": {"namespace": ns, "labels": _labels("migrate"), "annotations": k8s.checkov_skips(skips)},
            "spec": {
                "backoff_limit": 6,
                "template": pod("migrate", [container(
                    "migrate", ["bash", "-c", migration_command(plan.default_pool_slots)], control("migration"),
                    # Its database URL is the direct one (component_secrets.DIRECT_CONN):
                    # `airflow db migrate` holds a session-level advisory lock
                    # (pg_advisory_lock and SET LOCK_TIMEOUT, airflow/utils/db.py
                    # _create_global_lock_postgresql) across transactions, which
                    # transaction pooling would hand to other clients.
                    env=[{"name": AFTER_MIGRATE_SQL_ENV,
                          "value": after_migration_sql(QUERY_TABLE, QUERY_COLUMNS)}],
                )], restart_policy="OnFailure"),
            },
        }, stage="migration"),
    ]

    # api-server: UI, REST API and the Execution API every running task talks to.
    api_health = _http_probe("/api/v2/monitor/health", names.API_SERVER_PORT)
    if web_config:
        sign_in: dict[str, Any] = {
            "mounts": [{"name": "config", "mount_path": WEBSERVER_CONFIG_PATH, "sub_path": WEBSERVER_CONFIG_KEY,
                        "read_only": True}],
            # A subPath mount never sees a changed ConfigMap: the api-server
            # alone rolls when only its sign-in settings change.
            "pod": {"annotations": {WEBSERVER_CONFIG_CHECKSUM: checksum(web_config[WEBSERVER_CONFIG_KEY])}},
        }
    else:
        sign_in = {
            "mounts": [{"name": "auth", "mount_path": f"{names.AIRFLOW_HOME}/auth"}],
            # SimpleAuthManager opens its passwords file for writing, so it gets
            # a copy of the Secret in a writable emptyDir.
            "pod": {"init_containers": [{
                "name": "auth-passwords",
                "image": image,
                "command": ["cp", f"{AUTH_SECRET_DIR}/{AUTH_PASSWORDS_KEY}", AUTH_PASSWORDS_FILE],
                "volume_mounts": [{"name": "auth", "mount_path": f"{names.AIRFLOW_HOME}/auth"},
                                  {"name": "auth-secret", "mount_path": AUTH_SECRET_DIR, "read_only": True}],
                "resources": control("api-server"),
                "security_context": hardened,
            }], "volumes": [{"name": "auth", "empty_dir": {}},
                            {"name": "auth-secret", "secret": {"secret_name": names.AUTH_SECRET}}]},
        }
    objects.append(deployment("api-server", plan.control_plane.api_server.replicas, pod(
        "api-server",
        [container(
            "api-server", ["api-server"], control("api-server"),
            ports=[{"name": "http", "container_port": names.API_SERVER_PORT}],
            readiness_probe={**api_health, "period_seconds": 10, "timeout_seconds": 5},
            liveness_probe={**api_health, "initial_delay_seconds": 30, "period_seconds": 15,
                            "timeout_seconds": 10, "failure_threshold": 5},
            volume_mounts=sign_in["mounts"],
        )],
        **sign_in["pod"],
    )))
    objects.append(service("api-server", "http", names.API_SERVER_PORT))
    # Drains and upgrades take one api-server at a time: with two replicas the
    # UI and the Execution API stay up.
    objects.append(k8s.disruption_budget("api-server-disruption-budget", names.API_SERVER, ns,
                                         _labels("api-server")))

    scheduler_health = _http_probe("/health", names.SCHEDULER_HEALTH_PORT)
    objects.append(deployment("scheduler", 1, pod("scheduler", [container(
        "scheduler", ["scheduler"], control("scheduler"),
        ports=[{"name": "health", "container_port": names.SCHEDULER_HEALTH_PORT}],
        readiness_probe={**scheduler_health, "period_seconds": 15, "timeout_seconds": 10},
        liveness_probe={**scheduler_health, "initial_delay_seconds": 30, "period_seconds": 30,
                        "timeout_seconds": 10, "failure_threshold": 5},
    )])))
    objects.append(k8s.disruption_budget("scheduler-disruption-budget", names.SCHEDULER, ns, _labels("scheduler")))
    objects.append(deployment("dag-processor", 1, pod("dag-processor", [container(
        "dag-processor", ["dag-processor"], control("dag-processor"),
        readiness_probe=_jobs_check("DagProcessorJob"), liveness_probe=_jobs_check("DagProcessorJob"),
    )])))
    # The triggerer records its pod's FQDN as the hostname deferred tasks'
    # logs are fetched from; a StatefulSet with a headless Service makes that
    # name resolvable (airflow-triggerer-0.airflow-triggerer...), as for workers.
    objects.append(service("triggerer", "triggerer-logs", names.TRIGGERER_LOG_PORT, headless=True))
    objects.append(KubeObject("StatefulSet", "triggerer", {
        "metadata": {"name": names.TRIGGERER, "namespace": ns, "labels": _labels("triggerer"),
                     "annotations": k8s.checkov_skips(skips)},
        "spec": {
            "service_name": names.TRIGGERER,
            "replicas": 1,
            "selector": {"match_labels": _labels("triggerer")},
            "template": pod("triggerer", [container(
                "triggerer", ["triggerer"], control("triggerer"),
                ports=[{"name": "triggerer-logs", "container_port": names.TRIGGERER_LOG_PORT}],
                readiness_probe=_jobs_check("TriggererJob"), liveness_probe=_jobs_check("TriggererJob"),
            )]),
        },
    }, stage="component"))

    # Celery workers. The headless Service gives each pod a DNS name
    # (airflow-worker-0.airflow-worker...), which is the hostname a task
    # records and the api-server uses to fetch its log from that worker.
    objects.append(service("worker", "worker-logs", names.WORKER_LOG_PORT, headless=True))
    w = plan.worker
    keda = settings.worker_scaling == "keda"
    worker_ping = _exec_probe(
        ["bash", "-c", f"celery --app {CELERY_APP} inspect ping --timeout 20 -d celery@$(hostname)"],
        initial_delay_seconds=60, period_seconds=60, timeout_seconds=30, failure_threshold=5)
    # Only AKS has the labelled, tainted worker pool.
    placement = {
        "node_selector": {WORKER_POOL_LABEL_KEY: WORKER_POOL_LABEL_VALUE},
        "tolerations": [{"key": WORKER_POOL_LABEL_KEY, "operator": "Equal", "value": WORKER_POOL_LABEL_VALUE,
                         "effect": "NoSchedule"}],
    } if settings.target == "aks" else {}
    objects.append(KubeObject("StatefulSet", "worker", {
        "metadata": {
            "name": names.WORKER, "namespace": ns, "labels": _labels("worker"),
            # Under KEDA the replicas are KEDA's: nothing to wait for.
            "annotations": {
                **(worker_await_annotations(w.replicas, settings.longest_task_seconds) if not keda
                   else {"pulumi.com/skipAwait": "true"}),
                # Once KEDA's HPA has set .spec.replicas, it owns the field
                # (field manager kube-controller-manager, subresource scale)
                # and a server-side apply of another value conflicts, already
                # in the preview's dry run (pulumi-kubernetes
                # provider/pkg/await/await.go handleSSAErr; pulumi-kubernetes
                # #2491). Forcing takes the field back (provider.go patchForce).
                **({} if keda else {"pulumi.com/patchForce": "true"}),
                **k8s.checkov_skips({
                    **skips,
                    "CKV_K8S_11": "no CPU limit on purpose: task start-up bursts borrow idle CPU; the plan "
                                  "requests what each slot needs",
                    "CKV_K8S_9": "a worker takes its tasks from RabbitMQ, not through a Service; the liveness "
                                 "probe pings Celery",
                }),
            },
        },
        "spec": {
            "service_name": names.WORKER,
            # Under KEDA, the count it starts from; later updates leave it to KEDA.
            "replicas": settings.worker_min_replicas if keda else w.replicas,
            "pod_management_policy": "Parallel",
            "selector": {"match_labels": _labels("worker")},
            "template": pod(
                "worker",
                [container(
                    "worker", ["celery", "worker"],
                    # No CPU limit: task start-up bursts borrow idle CPU.
                    {"requests": {"cpu": f"{w.cpu_request_millicores}m", "memory": f"{w.memory_request_mib}Mi"},
                     "limits": {"memory": f"{w.memory_limit_mib}Mi"}},
                    # SIGTERM reaches only the Celery main process, which then
                    # stops taking tasks and waits for the running ones (warm
                    # shutdown) instead of the whole process group being killed.
                    env=[{"name": "DUMB_INIT_SETSID", "value": "0"},
                         # No metadata database URL (component_secrets.py): unset,
                         # Airflow's default is a SQLite file in AIRFLOW_HOME, which
                         # the worker opens at start-up, on a read-only root. An
                         # in-memory SQLite writes nothing (tests/test_written_paths.py).
                         {"name": component_secrets.DB_CONN_ENV, "value": "sqlite://"},
                         *({"name": k, "value": v} for k, v in worker_cfg_env(settings, plan).items())],
                    ports=[{"name": "worker-logs", "container_port": names.WORKER_LOG_PORT}],
                    liveness_probe=worker_ping,
                )],
                # The cluster autoscaler never empties a node to move a busy
                # worker: it would interrupt the worker's tasks.
                annotations={SAFE_TO_EVICT_ANNOTATION: "false"},
                termination_grace_period_seconds=worker_stop_seconds(settings.longest_task_seconds),
                **placement,
            ),
        },
    }, stage="worker"))
    # Workers and node drains (AKS node upgrades, `kubectl drain`): the
    # budget lets every worker of the nodes AKS drains together go at once
    # (capacity.worker_disruption_allowance), so a node's workers stop side by
    # side, each after its running tasks (terminationGracePeriodSeconds: the
    # longest task + 60 s), within the pool's per-node drain timeout; the
    # next node waits for their replacements. The cluster autoscaler does
    # not evict workers at all to empty a node (safe-to-evict "false" above):
    # under-used worker nodes go away when KEDA or the plan removes their
    # workers, each again with its grace period.
    objects.append(k8s.disruption_budget("worker-disruption-budget", names.WORKER, ns, _labels("worker"),
                                         max_unavailable=worker_disruption_allowance(
                                             plan.worker_nodes.workers_per_node)))

    if settings.flower:
        objects.append(deployment("flower", 1, pod("flower", [container(
            "flower", ["celery", "flower"], control("flower"),
            ports=[{"name": "http", "container_port": names.FLOWER_PORT}],
            readiness_probe={"tcp_socket": {"port": names.FLOWER_PORT}, "period_seconds": 10},
            liveness_probe={"tcp_socket": {"port": names.FLOWER_PORT}, "period_seconds": 30},
        )])))
        objects.append(service("flower", "http", names.FLOWER_PORT))
    objects += keda_objects(settings, plan, external_database)
    return objects


def gated_replicas(obj: KubeObject, gate: pulumi.Input[Any]) -> KubeObject:
    """The object with spec.replicas sent only once `gate` resolves, and
    depending on whatever the gate depends on (Output resources travel with
    the value): on AKS, the worker pool when it grows first."""
    replicas = obj.fields["spec"]["replicas"]
    spec = {**obj.fields["spec"], "replicas": pulumi.Output.from_input(gate).apply(lambda _: replicas)}
    return dataclasses.replace(obj, fields={**obj.fields, "spec": spec})


class Airflow(pulumi.ComponentResource):
    """Declares airflow_objects in order: the ConfigMaps, then the migration Job
    after the databases and the image, then every component after the migration.

    Pods read the ConfigMaps by name, so everything that mounts them depends on
    them explicitly: a changed airflow.cfg is updated in place first (the
    provider has enableConfigMapMutable on), then the pods roll through the
    checksum annotation in their template.
    """

    api_server_service: pulumi.Output[str]
    migration: kubernetes.batch.v1.Job
    workers: kubernetes.apps.v1.StatefulSet
    config_maps: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        settings: Settings,
        plan: CapacityPlan,
        airflow_cfg: str,
        image: pulumi.Input[str],
        after: Sequence[pulumi.Resource] = (),
        backends: Sequence[pulumi.Resource] = (),
        image_dependencies: Sequence[pulumi.Resource] = (),
        worker_gate: pulumi.Input[Any] | None = None,
        task_log_store: TaskLogStore | None = None,
        external_database: ExternalDatabase | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:airflow:Airflow", name, None, opts)
        objects = airflow_objects(settings, plan, airflow_cfg, image, task_log_store, external_database)
        first = pulumi.ResourceOptions(parent=self, depends_on=list(after))
        self.config_maps = [k8s.declare(o, name, first) for o in objects if o.kind == "ConfigMap"]
        [job_obj] = [o for o in objects if o.stage == "migration"]
        self.migration = k8s.declare(job_obj, name, pulumi.ResourceOptions(
            parent=self,
            depends_on=[*after, *self.config_maps, *backends, *image_dependencies]))  # type: ignore[assignment]
        stage_deps = {
            "component": [*after, *self.config_maps, self.migration, *image_dependencies],
            "worker": [*after, *self.config_maps, self.migration, *image_dependencies],
        }
        keda = settings.worker_scaling == "keda"
        declared: dict[tuple[str, str], pulumi.CustomResource] = {}
        scaler_objects = [o for o in objects if o.stage == "worker-scaler"]
        if not keda:
            # Paused first, so KEDA has let go of the replicas before the
            # StatefulSet takes them (keda.keda_objects).
            paused_opts = pulumi.ResourceOptions(parent=self, depends_on=[*after, *backends])
            declared.update({(o.kind, o.suffix): k8s.declare(o, name, paused_opts) for o in scaler_objects})
            stage_deps["worker"] = [*stage_deps["worker"], *declared.values()]
        for obj in objects:
            if obj.kind == "ConfigMap" or obj.stage in ("migration", "worker-scaler"):
                continue
            opts_ = pulumi.ResourceOptions(parent=self, depends_on=stage_deps[obj.stage]) if obj.stage else first
            if obj.kind == "StatefulSet" and obj.stage == "worker" and keda:
                # KEDA owns spec.replicas after the first create; a later
                # `pulumi up` leaves it alone instead of resetting it.
                opts_ = pulumi.ResourceOptions.merge(opts_, pulumi.ResourceOptions(ignore_changes=["spec.replicas"]))
            if obj.kind == "StatefulSet" and obj.stage == "worker" and worker_gate is not None:
                obj = gated_replicas(obj, worker_gate)
            declared[(obj.kind, obj.suffix)] = k8s.declare(obj, name, opts_)
        self.workers = declared[("StatefulSet", "worker")]  # type: ignore[assignment]
        if keda:
            # The scaler after what it scales and reads.
            scaler_opts = pulumi.ResourceOptions(parent=self, depends_on=[*after, self.workers, *backends])
            declared.update({(o.kind, o.suffix): k8s.declare(o, name, scaler_opts) for o in scaler_objects})
        self.api_server_service = declared[("Service", "api-server-service")].metadata.name  # type: ignore[attr-defined]
        self.register_outputs({"api_server_service": self.api_server_service})
