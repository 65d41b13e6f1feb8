"""What every Airflow pod shares: its labels, probes, the container and pod
around a component's command (airflow.cfg, environment, volumes, security
context, Azure identity) and the Deployment and Service shapes.

Each workload's module (airflow_migration.py, airflow_api_server.py,
airflow_scheduler.py, airflow_dag_processor.py, airflow_triggerer.py,
airflow_worker.py, airflow_flower.py) builds its objects from a PodParts;
airflow.py assembles them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi

from components.kubernetes import k8s, ui_auth
from components.kubernetes.dag_bundles import bundle_env, bundle_mounts, bundle_volumes
from components.kubernetes.dag_bundles import identity_components as bundle_identity_components
from components.kubernetes.k8s import CHECKSUM_ANNOTATION, KubeObject, checksum, resources
from components.kubernetes.key_vault import identity_components, vault_env
from components.kubernetes.task_logs import TaskLogStore, log_identity, task_log_env, task_logs_on
from components.model import component_secrets, names
from components.model.airflow_cfg import workload_env
from components.model.capacity import CapacityPlan
from components.model.settings import Settings


def component_labels(component: str) -> dict[str, str]:
    """The labels of a component's pods, which its Services, budgets and NetworkPolicies select."""
    return {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "airflow"}


def http_checks(path: str, port: int, *, ready_every: int, ready_timeout: int,
                live_every: int) -> dict[str, dict[str, Any]]:
    """Readiness and liveness probes on one HTTP endpoint; liveness gives a
    starting component 30 s and restarts it after 5 failures in a row."""
    probe = {"http_get": {"path": path, "port": port}}
    return {"readiness_probe": {**probe, "period_seconds": ready_every, "timeout_seconds": ready_timeout},
            "liveness_probe": {**probe, "initial_delay_seconds": 30, "period_seconds": live_every,
                               "timeout_seconds": 10, "failure_threshold": 5}}


def exec_probe(command: list[str], **timing: int) -> dict[str, Any]:
    return {"exec_": {"command": command}, **timing}


def jobs_check(job_type: str) -> dict[str, Any]:
    """A probe asking the metadata database whether this pod's job heartbeats."""
    return exec_probe(["airflow", "jobs", "check", "--job-type", job_type, "--local"],
                      initial_delay_seconds=60, period_seconds=60, timeout_seconds=60, failure_threshold=5)


def workload_skips(settings: Settings) -> dict[str, str]:
    """The checkov skips every Airflow workload carries, each with its reason."""
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
    return skips


@dataclass(frozen=True)
class PodParts:
    """One stack's shared pieces of the Airflow pods, all reading the same
    airflow.cfg, each component its own Secret."""

    settings: Settings
    plan: CapacityPlan
    image: pulumi.Input[str]
    task_log_store: TaskLogStore | None
    # A changed airflow.cfg or environment rolls every Airflow pod.
    config_checksum: str
    skips: dict[str, str]

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def control(self, component: str) -> dict[str, Any]:
        """The plan's requests and limits of a control-plane pod."""
        return resources(self.plan.control_plane.pods[component])

    def container(self, component: str, args: list[str], res: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The image running `args` with airflow.cfg, the component's environment and volumes;
        `env` and `volume_mounts` in `extra` come after the shared ones."""
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
            "image": self.image,
            "args": args,
            "env": [*self._env(component), *extra.pop("env", [])],
            "env_from": [{"config_map_ref": {"name": names.ENV_CONFIG_MAP}}],
            "resources": res,
            "volume_mounts": mounts,
            # A read-only root: what the components write goes to emptyDirs (/tmp,
            # logs, the api-server's auth), shown by tests/test_written_paths.py.
            "security_context": k8s.container_security(),
            **extra,
        }

    def _env(self, component: str) -> list[dict[str, Any]]:
        s, store = self.settings, self.task_log_store
        # Only the keys the component uses, from its own Secret (component_secrets.py says why each).
        secret_env = [{"name": env, "value_from": {"secret_key_ref": {"name": names.env_secret(component),
                                                                       "key": key}}}
                      for env, key in component_secrets.component_env(component).items()]
        return [*secret_env, *(task_log_env(component, s) if task_logs_on(s, store) else []),
                *bundle_env(s, component), *vault_env(component, s, store)]

    def pod(self, component: str, containers: list[dict[str, Any]], annotations: dict[str, str] | None = None,
            **extra: Any) -> dict[str, Any]:
        """A pod template of `containers`; `volumes` in `extra` come after the shared ones."""
        volumes = [
            {"name": "config", "config_map": {"name": names.CONFIG_MAP}},
            {"name": "logs", "empty_dir": {}},
            {"name": "tmp", "empty_dir": {}},
            *bundle_volumes(component),
            *extra.pop("volumes", []),
        ]
        id_labels, id_spec = self._identity(component)
        return {
            "metadata": {"labels": {**component_labels(component), **id_labels},
                         "annotations": {CHECKSUM_ANNOTATION: self.config_checksum, **(annotations or {})}},
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

    def _identity(self, component: str) -> tuple[dict[str, str], dict[str, Any]]:
        """The pod's Azure identity: pod labels and spec fields."""
        s, store = self.settings, self.task_log_store
        if component == ui_auth.API_SERVER_COMPONENT:
            # Never the writers' identity: its own account, with the log reader's.
            return ui_auth.api_server_identity(s, store)
        if not (task_logs_on(s, store) and s.target == "aks"):
            return {}, {}
        # One Azure identity, several grants: the task-log components, the vault's
        # readers with keyVault (key_vault.py) and the blob bundles' fetchers (dag_bundles.py).
        vault_readers = identity_components(s, store)
        with_identity = vault_readers + tuple(c for c in bundle_identity_components(s) if c not in vault_readers)
        return log_identity(component, with_identity)

    def deployment(self, component: str, replicas: int, template: dict[str, Any]) -> KubeObject:
        labels = component_labels(component)
        return KubeObject("Deployment", component, {
            "metadata": {"name": f"airflow-{component}", "namespace": self.namespace, "labels": labels,
                         "annotations": k8s.checkov_skips(self.skips)},
            "spec": {"replicas": replicas, "selector": {"match_labels": labels}, "template": template},
        }, stage="component")

    def service(self, component: str, port_name: str, port: int, headless: bool = False) -> KubeObject:
        return k8s.service(f"{component}-service", f"airflow-{component}", self.namespace,
                           component_labels(component), port_name, port, headless=headless)

    def disruption_budget(self, component: str, **budget: int) -> KubeObject:
        return k8s.disruption_budget(f"{component}-disruption-budget", f"airflow-{component}", self.namespace,
                                     component_labels(component), **budget)


def pod_parts(settings: Settings, plan: CapacityPlan, airflow_cfg: str, image: pulumi.Input[str],
              task_log_store: TaskLogStore | None = None) -> PodParts:
    env_data = workload_env(settings)
    return PodParts(settings=settings, plan=plan, image=image, task_log_store=task_log_store,
                    config_checksum=checksum(airflow_cfg, json.dumps(env_data, sort_keys=True)),
                    skips=workload_skips(settings))
