"""Flower, Celery's monitoring UI, when `flower` is true: a Deployment and its Service."""

from __future__ import annotations

from components.kubernetes.airflow_pod import PodParts
from components.kubernetes.k8s import KubeObject
from components.model import names

COMPONENT = "flower"


def flower_objects(parts: PodParts) -> list[KubeObject]:
    if not parts.settings.flower:
        return []
    container = parts.container(
        COMPONENT, ["celery", "flower"], parts.control(COMPONENT),
        ports=[{"name": "http", "container_port": names.FLOWER_PORT}],
        readiness_probe={"tcp_socket": {"port": names.FLOWER_PORT}, "period_seconds": 10},
        liveness_probe={"tcp_socket": {"port": names.FLOWER_PORT}, "period_seconds": 30},
    )
    return [parts.deployment(COMPONENT, 1, parts.pod(COMPONENT, [container])),
            parts.service(COMPONENT, "http", names.FLOWER_PORT)]
