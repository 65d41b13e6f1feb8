"""KEDA scales the Celery workers on the tasks Airflow has handed to Celery.

The ScaledObject's PostgreSQL trigger counts queued and running task instances
and divides by the tasks one worker runs: KEDA sets the worker StatefulSet's
replicas to that (between the configured minimum and the plan's workers).
A cron trigger per pre-warmed schedule (components/model/prewarm.py) asks for
the plan's workers from a few minutes before each run until just after it.

KEDA itself takes the workers from 0 to 1 when a trigger becomes active and
back to 0 `cooldownPeriod` after the last one was; between 1 and the maximum
the HPA it creates decides, on the triggers' metrics and the `behavior` below
(https://keda.sh/docs/2.18/concepts/scaling-deployments/#activating-and-scaling-thresholds;
kedacore/keda pkg/scaling/executor/scale_scaledobjects.go, RequestScale).
"""

from __future__ import annotations

from typing import Any

from components.kubernetes.external_database import DIRECT_SSLMODE, ExternalDatabase
from components.kubernetes.k8s import KubeObject
from components.kubernetes.secrets import ROLE_PASSWORD_KEYS
from components.model import names
from components.model.capacity import CapacityPlan
from components.model.prewarm import PrewarmPlan
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
# The Celery queue Airflow sends every task to unless a task names another:
# [operators] default_queue, Airflow's "default" unless airflowConfig sets it.
CELERY_QUEUE = "default"


def celery_queue(settings: Settings) -> str:
    """The queue the tasks go to and the workers consume: [operators]
    default_queue. The workers follow it by themselves (the Celery
    provider's `celery worker` takes its --queues default from that option,
    apache-airflow-providers-celery cli definitions, read 2026-12-02); the
    KEDA query must count the same queue, or a stack that renames it would
    never scale its workers up."""
    return settings.airflow_config.get("operators", {}).get("default_queue", CELERY_QUEUE)
# The HPA's scale-up period. A `Pods` policy of the plan's workers per period
# takes 1 to the peak in one step: the HPA limits a scale-up to the current
# replicas plus the policy's value per period (kubernetes
# pkg/controller/podautoscaler/horizontal.go, calculateScaleUpLimitWithScalingRules),
# where `Percent 100` doubled (1, 2, 4, ... 28 took five periods).
SCALE_UP_PERIOD_SECONDS = 15
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


# What worker_query reads, and all KEDA's role may read
# (components/model/database_roles.py, after_migration_sql).
QUERY_TABLE = "task_instance"
QUERY_COLUMNS = ("state", "queue")


def worker_query(worker_concurrency: int, queue: str = CELERY_QUEUE) -> str:
    """Workers needed now: queued + running task instances / tasks per worker, rounded up."""
    # The queue name comes from airflowConfig: quoted as an SQL literal.
    quoted = queue.replace("'", "''")
    return (f"SELECT ceil(count(*)::decimal / {worker_concurrency}) FROM {QUERY_TABLE} "
            f"WHERE state IN ('queued', 'running') AND queue = '{quoted}'")


def cron_triggers(prewarm: PrewarmPlan | None) -> list[dict[str, Any]]:
    """One KEDA cron trigger per window: `desiredReplicas` from `start` until
    the next `end`, in the schedules' zone (kedacore/keda
    pkg/scalers/cron_scaler.go: every field required, start and end five-field
    cron that must differ, desiredReplicas not 0)."""
    if prewarm is None:
        return []
    return [{"type": "cron", "metadata": {"timezone": prewarm.timezone, "start": w.start, "end": w.end,
                                          "desiredReplicas": str(prewarm.replicas)}}
            for s in prewarm.schedules for w in s.windows]


def scale_behavior(max_replicas: int) -> dict[str, Any]:
    """The HPA's behavior: up to the peak in one period, down slowly."""
    return {
        "scaleUp": {"stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": max_replicas,
                                  "periodSeconds": SCALE_UP_PERIOD_SECONDS}]},
        "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS,
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
    }


def keda_objects(settings: Settings, plan: CapacityPlan,
                 external_database: ExternalDatabase | None = None) -> list[KubeObject]:
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
    # every few seconds; the plan counts its connections. KEDA builds a
    # libpq-style connection string from these fields, sslmode included
    # (kedacore/keda pkg/scalers/postgresql_scaler.go, buildConnArray): to the
    # flexible server over TLS, to the in-cluster server without. As KEDA's
    # own role, which may read only the query's columns.
    server = {"host": names.service_host(names.POSTGRES, ns), "sslmode": "disable"}
    if external_database is not None:
        server = {"host": external_database.host, "sslmode": DIRECT_SSLMODE}  # type: ignore[dict-item]
    trigger: dict[str, Any] = {
        "type": "postgresql",
        "metadata": {
            "host": server["host"],
            "port": str(names.POSTGRES_PORT),
            "userName": names.DATABASE_KEDA_ROLE,
            "dbName": names.POSTGRES_DB,
            "sslmode": server["sslmode"],
            "query": worker_query(settings.worker_concurrency, celery_queue(settings)),
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
                {"parameter": "password", "name": names.POSTGRES_SECRET,
                 "key": ROLE_PASSWORD_KEYS[names.DATABASE_KEDA_ROLE]}]},
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
                "advanced": {"horizontalPodAutoscalerConfig": {
                    "behavior": scale_behavior(plan.worker.replicas)}},
                "triggers": [trigger, *cron_triggers(plan.prewarm)],
            },
        }, stage="worker-scaler"),
    ]
