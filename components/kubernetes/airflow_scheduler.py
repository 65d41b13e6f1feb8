"""The scheduler: one Deployment, with its health port probed, and its disruption budget."""

from __future__ import annotations

from components.kubernetes.airflow_pod import PodParts, http_checks
from components.kubernetes.k8s import KubeObject
from components.model import names

COMPONENT = "scheduler"


def scheduler_objects(parts: PodParts) -> list[KubeObject]:
    container = parts.container(
        COMPONENT, [COMPONENT], parts.control(COMPONENT),
        ports=[{"name": "health", "container_port": names.SCHEDULER_HEALTH_PORT}],
        **http_checks("/health", names.SCHEDULER_HEALTH_PORT, ready_every=15, ready_timeout=10, live_every=30),
    )
    return [parts.deployment(COMPONENT, 1, parts.pod(COMPONENT, [container])),
            parts.disruption_budget(COMPONENT)]
