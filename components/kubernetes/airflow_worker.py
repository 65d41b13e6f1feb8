"""The Celery workers: a StatefulSet on the worker pool, its headless Service
and its disruption budget."""

from __future__ import annotations

from typing import Any

from components.kubernetes import k8s
from components.kubernetes.airflow_pod import PodParts, component_labels, exec_probe
from components.kubernetes.k8s import KubeObject
from components.model import component_secrets, names
from components.model.airflow_cfg import worker_cfg_env
from components.model.capacity import worker_disruption_allowance, worker_stop_seconds
from components.model.names import WORKER_POOL_LABEL_KEY, WORKER_POOL_LABEL_VALUE
from components.model.settings import Settings

COMPONENT = "worker"
# How long `pulumi up` gives the worker StatefulSet to reach its replica
# count beyond the warm shutdown of the workers it removes.
WORKER_AWAIT_SLACK_SECONDS = 300
SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


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


def _statefulset_annotations(parts: PodParts) -> dict[str, str]:
    keda = parts.settings.worker_scaling == "keda"
    return {
        # Under KEDA the replicas are KEDA's: nothing to wait for.
        **(worker_await_annotations(parts.plan.worker.replicas, parts.settings.longest_task_seconds) if not keda
           else {"pulumi.com/skipAwait": "true"}),
        # Once KEDA's HPA has set .spec.replicas, it owns the field
        # (field manager kube-controller-manager, subresource scale)
        # and a server-side apply of another value conflicts, already
        # in the preview's dry run (pulumi-kubernetes
        # provider/pkg/await/await.go handleSSAErr; pulumi-kubernetes
        # #2491). Forcing takes the field back (provider.go patchForce).
        **({} if keda else {"pulumi.com/patchForce": "true"}),
        **k8s.checkov_skips({
            **parts.skips,
            "CKV_K8S_11": "no CPU limit on purpose: task start-up bursts borrow idle CPU; the plan "
                          "requests what each slot needs",
            "CKV_K8S_9": "a worker takes its tasks from RabbitMQ, not through a Service; the liveness "
                         "probe pings Celery",
        }),
    }


def _container(parts: PodParts) -> dict[str, Any]:
    w = parts.plan.worker
    ping = exec_probe(
        ["bash", "-c", f"celery --app {CELERY_APP} inspect ping --timeout 20 -d celery@$(hostname)"],
        initial_delay_seconds=60, period_seconds=60, timeout_seconds=30, failure_threshold=5)
    return parts.container(
        COMPONENT, ["celery", "worker"],
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
             *({"name": k, "value": v} for k, v in worker_cfg_env(parts.settings, parts.plan).items())],
        ports=[{"name": "worker-logs", "container_port": names.WORKER_LOG_PORT}],
        liveness_probe=ping,
    )


def _placement(settings: Settings) -> dict[str, Any]:
    """Only AKS has the labelled, tainted worker pool."""
    if settings.target != "aks":
        return {}
    return {
        "node_selector": {WORKER_POOL_LABEL_KEY: WORKER_POOL_LABEL_VALUE},
        "tolerations": [{"key": WORKER_POOL_LABEL_KEY, "operator": "Equal", "value": WORKER_POOL_LABEL_VALUE,
                         "effect": "NoSchedule"}],
    }


def _statefulset(parts: PodParts) -> KubeObject:
    s = parts.settings
    labels = component_labels(COMPONENT)
    return KubeObject("StatefulSet", COMPONENT, {
        "metadata": {"name": names.WORKER, "namespace": parts.namespace, "labels": labels,
                     "annotations": _statefulset_annotations(parts)},
        "spec": {
            "service_name": names.WORKER,
            # Under KEDA, the count it starts from; later updates leave it to KEDA.
            "replicas": s.worker_min_replicas if s.worker_scaling == "keda" else parts.plan.worker.replicas,
            "pod_management_policy": "Parallel",
            "selector": {"match_labels": labels},
            "template": parts.pod(
                COMPONENT, [_container(parts)],
                # The cluster autoscaler never empties a node to move a busy
                # worker: it would interrupt the worker's tasks.
                annotations={SAFE_TO_EVICT_ANNOTATION: "false"},
                termination_grace_period_seconds=worker_stop_seconds(s.longest_task_seconds),
                **_placement(s),
            ),
        },
    }, stage="worker")


def worker_objects(parts: PodParts) -> list[KubeObject]:
    """The headless Service gives each pod a DNS name
    (airflow-worker-0.airflow-worker...), which is the hostname a task
    records and the api-server uses to fetch its log from that worker.

    Workers and node drains (AKS node upgrades, `kubectl drain`): the
    budget lets every worker of the nodes AKS drains together go at once
    (capacity.worker_disruption_allowance), so a node's workers stop side by
    side, each after its running tasks (terminationGracePeriodSeconds: the
    longest task + 60 s), within the pool's per-node drain timeout; the
    next node waits for their replacements. The cluster autoscaler does
    not evict workers at all to empty a node (safe-to-evict "false"):
    under-used worker nodes go away when KEDA or the plan removes their
    workers, each again with its grace period.
    """
    return [
        parts.service(COMPONENT, "worker-logs", names.WORKER_LOG_PORT, headless=True),
        _statefulset(parts),
        parts.disruption_budget(COMPONENT, max_unavailable=worker_disruption_allowance(
            parts.plan.worker_nodes.workers_per_node)),
    ]
