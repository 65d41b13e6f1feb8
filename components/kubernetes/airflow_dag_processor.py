"""The dag-processor: one Deployment, parsing the DAG bundles."""

from __future__ import annotations

from components.kubernetes.airflow_pod import PodParts, jobs_check
from components.kubernetes.k8s import KubeObject

COMPONENT = "dag-processor"


def dag_processor_objects(parts: PodParts) -> list[KubeObject]:
    container = parts.container(COMPONENT, [COMPONENT], parts.control(COMPONENT),
                                readiness_probe=jobs_check("DagProcessorJob"),
                                liveness_probe=jobs_check("DagProcessorJob"))
    return [parts.deployment(COMPONENT, 1, parts.pod(COMPONENT, [container]))]
