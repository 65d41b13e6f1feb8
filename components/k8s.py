"""Small builders shared by the Kubernetes components."""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components.capacity import PodResources

# Pod-template annotation whose value changes whenever the configuration a pod
# reads from a file or ConfigMap changes, so Kubernetes rolls the pods.
CHECKSUM_ANNOTATION = "airflow-aks/config-checksum"


def checksum(*texts: str) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def resources(res: PodResources) -> dict[str, Any]:
    return {
        "requests": {"cpu": f"{res.cpu_request_millicores}m", "memory": f"{res.memory_request_mib}Mi"},
        "limits": {"cpu": f"{res.cpu_limit_millicores}m", "memory": f"{res.memory_limit_mib}Mi"},
    }


def volume_claim(name: str, storage_gib: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{storage_gib}Gi"}}},
    }


def service(
    resource_name: str,
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    port_name: str,
    port: int,
    headless: bool = False,
    opts: pulumi.ResourceOptions | None = None,
) -> kubernetes.core.v1.Service:
    """A Service selecting the pods labelled `labels`, one named port.

    Headless Services give each pod of a StatefulSet its own DNS name (and are
    the StatefulSet's governing Service).
    """
    return kubernetes.core.v1.Service(
        resource_name,
        metadata={"name": name, "namespace": namespace, "labels": labels},
        spec={
            **({"cluster_ip": "None"} if headless else {}),
            "selector": labels,
            "ports": [{"name": port_name, "port": port, "target_port": port_name}],
        },
        opts=opts,
    )
