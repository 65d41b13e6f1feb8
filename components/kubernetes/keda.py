"""KEDA scales the Celery workers on the tasks Airflow has handed to Celery.

The ScaledObject's PostgreSQL trigger counts queued and running task instances
and divides by the tasks one worker runs: KEDA sets the worker StatefulSet's
replicas to that (between the configured minimum and the plan's workers).
"""

from __future__ import annotations

from typing import Any

from components.kubernetes.k8s import KubeObject
from components.kubernetes.secrets import PASSWORD_KEY
from components.model import names
from components.model.capacity import CapacityPlan
from components.model.settings import Settings

# How often KEDA runs the query: a burst is seen within seconds of being queued.
POLLING_INTERVAL_SECONDS = 5
# KEDA scales a worker set that has reached 1 down to 0 only after this long
# without queued or running tasks (the next hourly run may be close).
COOLDOWN_SECONDS = 300
# Below 1, the HPA KEDA drives lowers replicas no faster than this, and only
# when the lower count has held for the window: a worker that has just taken
# tasks is not stopped while the scheduler is still queueing the rest.
SCALE_DOWN_WINDOW_SECONDS = 120
TRIGGER_AUTH = "airflow-keda"
# The Celery queue Airflow sends every task to unless a task names another.
CELERY_QUEUE = "default"
# KEDA stops its scale loop and deletes its HPA for a ScaledObject with this
# annotation, leaving the replicas as they are (kedacore/keda,
# controllers/keda/scaledobject_controller.go, reconcileScaledObject).
PAUSED_ANNOTATION = "autoscaling.keda.sh/paused"


def keda_declared(settings: Settings) -> bool:
    """Whether the ScaledObject is declared: with KEDA scaling, and on AKS
    always (paused under `workerScaling: fixed`, see keda_objects)."""
    return settings.worker_scaling == "keda" or settings.target == "aks"


def keda_paused(settings: Settings) -> bool:
    return settings.worker_scaling != "keda"


def worker_query(worker_concurrency: int, queue: str = CELERY_QUEUE) -> str:
    """Workers needed now: queued + running task instances / tasks per worker, rounded up."""
    return (f"SELECT ceil(count(*)::decimal / {worker_concurrency}) FROM task_instance "
            f"WHERE state IN ('queued', 'running') AND queue = '{queue}'")


def keda_objects(settings: Settings, plan: CapacityPlan) -> list[KubeObject]:
    """TriggerAuthentication and ScaledObject, with camelCase keys (custom
    resources go to the API as written).

    With `workerScaling: fixed` on AKS the ScaledObject stays, paused, and
    `pulumi up` sets the replicas: a switch from keda to fixed then pauses
    KEDA (which deletes its HPA) before the StatefulSet takes its replicas
    back, and a switch back unpauses it. Deleting the ScaledObject instead
    would come last in the update, after the StatefulSet, with KEDA's HPA
    still resetting the replicas in between. A local cluster may have no
    KEDA: nothing there unless workerScaling is keda.
    """
    if not keda_declared(settings):
        return []
    ns = settings.namespace
    labels = {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "worker-scaler"}
    # Straight to PostgreSQL, not through PgBouncer: KEDA's PostgreSQL scaler
    # (pgx) prepares its statement, which transaction pooling without
    # PgBouncer's prepared-statement support cannot carry. One small query
    # every few seconds; the plan counts its connections.
    trigger: dict[str, Any] = {
        "type": "postgresql",
        "metadata": {
            "host": names.service_host(names.POSTGRES, ns),
            "port": str(names.POSTGRES_PORT),
            "userName": names.POSTGRES_USER,
            "dbName": names.POSTGRES_DB,
            "sslmode": "disable",
            "query": worker_query(settings.worker_concurrency),
            # The query returns workers, so one per unit.
            "targetQueryValue": "1",
            "activationTargetQueryValue": "0",
        },
        "authenticationRef": {"name": TRIGGER_AUTH},
    }
    return [
        KubeObject("TriggerAuthentication", "keda-auth", {
            "metadata": {"name": TRIGGER_AUTH, "namespace": ns, "labels": labels},
            "spec": {"secretTargetRef": [
                {"parameter": "password", "name": names.POSTGRES_SECRET, "key": PASSWORD_KEY}]},
        }, stage="worker-scaler"),
        KubeObject("ScaledObject", "worker-scaler", {
            "metadata": {"name": names.WORKER, "namespace": ns, "labels": labels,
                         **({"annotations": {PAUSED_ANNOTATION: "true"}} if keda_paused(settings) else {})},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": names.WORKER},
                "pollingInterval": POLLING_INTERVAL_SECONDS,
                "cooldownPeriod": COOLDOWN_SECONDS,
                "minReplicaCount": settings.worker_min_replicas,
                "maxReplicaCount": plan.worker.replicas,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0,
                                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS,
                                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                }}},
                "triggers": [trigger],
            },
        }, stage="worker-scaler"),
    ]
