"""The triggerer, which runs deferred tasks' triggers: a StatefulSet and its headless Service."""

from __future__ import annotations

from components.kubernetes import k8s
from components.kubernetes.airflow_pod import PodParts, component_labels, jobs_check
from components.kubernetes.k8s import KubeObject
from components.model import names

COMPONENT = "triggerer"


def triggerer_objects(parts: PodParts) -> list[KubeObject]:
    """The triggerer records its pod's FQDN as the hostname deferred tasks'
    logs are fetched from; a StatefulSet with a headless Service makes that
    name resolvable (airflow-triggerer-0.airflow-triggerer...), as for workers."""
    labels = component_labels(COMPONENT)
    container = parts.container(
        COMPONENT, [COMPONENT], parts.control(COMPONENT),
        ports=[{"name": "triggerer-logs", "container_port": names.TRIGGERER_LOG_PORT}],
        readiness_probe=jobs_check("TriggererJob"), liveness_probe=jobs_check("TriggererJob"),
    )
    return [
        parts.service(COMPONENT, "triggerer-logs", names.TRIGGERER_LOG_PORT, headless=True),
        KubeObject("StatefulSet", COMPONENT, {
            "metadata": {"name": names.TRIGGERER, "namespace": parts.namespace, "labels": labels,
                         "annotations": k8s.checkov_skips(parts.skips)},
            "spec": {
                "service_name": names.TRIGGERER,
                "replicas": 1,
                "selector": {"match_labels": labels},
                "template": parts.pod(COMPONENT, [container]),
            },
        }, stage="component"),
    ]
