"""PostgreSQL for the metadata database and the Celery result backend."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as kubernetes

from components import k8s, names
from components.capacity import CapacityPlan
from components.k8s import resources, volume_claim
from components.secrets import PASSWORD_KEY

# The official image runs the server as the postgres user (uid 999).
POSTGRES_UID = 999
DATA_DIR = "/var/lib/postgresql/data"


class Postgres(pulumi.ComponentResource):
    """A one-replica StatefulSet with a persistent volume, and its Service."""

    service_name: pulumi.Output[str]
    stateful_set: kubernetes.apps.v1.StatefulSet

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        plan: CapacityPlan,
        password_secret: pulumi.Input[str],
        image: str = "postgres:17",
        storage_gib: int = 32,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:postgres:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/part-of": "airflow"}
        res = plan.control_plane.postgres
        ready = ["pg_isready", "--username", names.POSTGRES_USER, "--dbname", names.POSTGRES_DB]

        service = k8s.service(f"{name}-service", names.POSTGRES, namespace, labels, "postgres",
                              names.POSTGRES_PORT, headless=True, opts=child)

        self.stateful_set = kubernetes.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={"name": names.POSTGRES, "namespace": namespace, "labels": labels},
            spec={
                "service_name": service.metadata.name,
                "replicas": 1,
                "selector": {"match_labels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "security_context": {"fs_group": POSTGRES_UID},
                        "containers": [{
                            "name": "postgres",
                            "image": image,
                            "args": [
                                "-c", f"max_connections={plan.database.max_connections}",
                                "-c", f"shared_buffers={plan.control_plane.postgres_shared_buffers_mib}MB",
                            ],
                            "env": [
                                {"name": "POSTGRES_USER", "value": names.POSTGRES_USER},
                                {"name": "POSTGRES_DB", "value": names.POSTGRES_DB},
                                {"name": "POSTGRES_PASSWORD", "value_from": {"secret_key_ref": {
                                    "name": password_secret, "key": PASSWORD_KEY}}},
                                # A subdirectory: the volume's root holds lost+found.
                                {"name": "PGDATA", "value": f"{DATA_DIR}/pgdata"},
                            ],
                            "ports": [{"name": "postgres", "container_port": names.POSTGRES_PORT}],
                            "resources": resources(res),
                            "readiness_probe": {"exec_": {"command": ready}, "period_seconds": 5,
                                                "timeout_seconds": 5},
                            "liveness_probe": {"exec_": {"command": ready}, "period_seconds": 20,
                                               "timeout_seconds": 5, "failure_threshold": 6},
                            "volume_mounts": [{"name": "data", "mount_path": DATA_DIR},
                                              {"name": "shm", "mount_path": "/dev/shm"}],
                        }],
                        "volumes": [{"name": "shm", "empty_dir": {"medium": "Memory"}}],
                    },
                },
                "volume_claim_templates": [volume_claim("data", storage_gib)],
            },
            opts=child,
        )

        self.service_name = service.metadata.name
        self.register_outputs({"service_name": self.service_name})
