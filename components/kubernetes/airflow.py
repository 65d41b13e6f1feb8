"""Airflow itself: airflow.cfg, the migration Job, api-server, scheduler, dag-processor,
triggerer, Celery workers and (optionally) Flower.

Each workload is built in its own module (airflow_migration.py,
airflow_api_server.py, airflow_scheduler.py, airflow_dag_processor.py,
airflow_triggerer.py, airflow_worker.py, airflow_flower.py) from the pod
pieces they share (airflow_pod.py); this module assembles them and declares
them in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components.kubernetes import k8s
from components.kubernetes.airflow_api_server import api_server_objects, web_config
from components.kubernetes.airflow_dag_processor import dag_processor_objects
from components.kubernetes.airflow_flower import flower_objects
from components.kubernetes.airflow_migration import migration_objects
from components.kubernetes.airflow_pod import PodParts, component_labels, pod_parts
from components.kubernetes.airflow_scheduler import scheduler_objects
from components.kubernetes.airflow_triggerer import triggerer_objects
from components.kubernetes.airflow_worker import worker_objects
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.k8s import KubeObject
from components.kubernetes.keda import keda_objects
from components.kubernetes.task_logs import TaskLogStore
from components.model import names
from components.model.airflow_cfg import workload_env
from components.model.capacity import CapacityPlan
from components.model.settings import Settings

# Each workload's builder, in the order its objects are declared; every one
# builds from the same PodParts (airflow_pod.py).
WORKLOAD_BUILDERS: tuple[Callable[[PodParts], list[KubeObject]], ...] = (
    migration_objects, api_server_objects, scheduler_objects, dag_processor_objects, triggerer_objects,
    worker_objects, flower_objects,
)


def config_map_objects(settings: Settings, airflow_cfg: str) -> list[KubeObject]:
    """airflow-config (airflow.cfg, and the api-server's webserver_config.py
    with Entra ID) and airflow-env (the plain environment of every pod)."""
    labels = component_labels("config")
    return [
        KubeObject("ConfigMap", "config", {
            "metadata": {"name": names.CONFIG_MAP, "namespace": settings.namespace, "labels": labels},
            "data": {"airflow.cfg": airflow_cfg, **web_config(settings)},
        }),
        KubeObject("ConfigMap", "env", {
            "metadata": {"name": names.ENV_CONFIG_MAP, "namespace": settings.namespace, "labels": labels},
            "data": workload_env(settings),
        }),
    ]


def airflow_objects(settings: Settings, plan: CapacityPlan, airflow_cfg: str,
                    image: pulumi.Input[str], task_log_store: TaskLogStore | None = None,
                    external_database: ExternalDatabase | None = None) -> list[KubeObject]:
    """Every Airflow object: the ConfigMaps, each workload's objects
    (WORKLOAD_BUILDERS) and KEDA's, all pods reading the same airflow.cfg,
    each component its own Secret.

    Stages order them: "migration" waits for the databases, "component" and
    "worker" wait for the migration.
    """
    parts = pod_parts(settings, plan, airflow_cfg, image, task_log_store)
    return [
        *config_map_objects(settings, airflow_cfg),
        *(obj for build in WORKLOAD_BUILDERS for obj in build(parts)),
        *keda_objects(settings, plan, external_database),
    ]


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
