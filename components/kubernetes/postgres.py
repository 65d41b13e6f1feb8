"""PostgreSQL for the metadata database and the Celery result backend."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.kubernetes import k8s
from components.kubernetes.k8s import KubeObject, persistent_volume_claim, pod_security, resources
from components.kubernetes.secrets import PASSWORD_KEY
from components.model import names
from components.model.capacity import CapacityPlan
from components.model.settings import Settings

# The official image runs the server as the postgres user (uid 999).
POSTGRES_UID = 999
DATA_DIR = "/var/lib/postgresql/data"
# The image's socket directory (docker-library/postgres Dockerfile: installed
# for the postgres user as /var/run/postgresql, the Debian build's default).
SOCKET_DIR = "/var/run/postgresql"
DATA_CLAIM = f"{names.POSTGRES}-data"
LABELS = {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/part-of": "airflow"}
SKIPS = {
    "CKV_K8S_35": "the image reads its initial password from POSTGRES_PASSWORD; the value comes from a Secret "
                  "through secretKeyRef",
    "CKV_K8S_40": "the image's own postgres user (uid 999) owns the data on the claim",
}


def postgres_objects(settings: Settings, plan: CapacityPlan) -> list[KubeObject]:
    """A one-replica StatefulSet on its own volume claim, and its headless Service."""
    ns = settings.namespace
    res = plan.control_plane.postgres
    ready = ["pg_isready", "--username", names.POSTGRES_USER, "--dbname", names.POSTGRES_DB]
    container = {
        "name": "postgres",
        "image": settings.postgres_image,
        "args": [
            "-c", f"max_connections={plan.database.max_connections}",
            "-c", f"shared_buffers={plan.control_plane.postgres_shared_buffers_mib}MB",
        ],
        "env": [
            {"name": "POSTGRES_USER", "value": names.POSTGRES_USER},
            {"name": "POSTGRES_DB", "value": names.POSTGRES_DB},
            {"name": "POSTGRES_PASSWORD", "value_from": {"secret_key_ref": {
                "name": names.POSTGRES_SECRET, "key": PASSWORD_KEY}}},
            # A subdirectory: the volume's root holds lost+found.
            {"name": "PGDATA", "value": f"{DATA_DIR}/pgdata"},
        ],
        "ports": [{"name": "postgres", "container_port": names.POSTGRES_PORT}],
        "resources": resources(res),
        "readiness_probe": {"exec_": {"command": ready}, "period_seconds": 5, "timeout_seconds": 5},
        "liveness_probe": {"exec_": {"command": ready}, "period_seconds": 20, "timeout_seconds": 5,
                           "failure_threshold": 6},
        "volume_mounts": [
            {"name": "data", "mount_path": DATA_DIR},
            {"name": "shm", "mount_path": "/dev/shm"},
            # The server's Unix socket and its lock file (the image's socket directory).
            {"name": "run", "mount_path": SOCKET_DIR},
        ],
        # Read-only root: PGDATA, the socket directory and /dev/shm are all
        # the server writes (tests/test_written_paths.py).
        "security_context": k8s.container_security(),
    }
    return [
        persistent_volume_claim(DATA_CLAIM, ns, LABELS, settings.postgres_storage_gib),
        k8s.service("service", names.POSTGRES, ns, LABELS, "postgres", names.POSTGRES_PORT, headless=True),
        KubeObject("StatefulSet", "statefulset", {
            "metadata": {"name": names.POSTGRES, "namespace": ns, "labels": LABELS,
                         "annotations": k8s.checkov_skips({**k8s.image_skips(settings.postgres_image), **SKIPS})},
            "spec": {
                "service_name": names.POSTGRES,
                "replicas": 1,
                "selector": {"match_labels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        # The postgres user from the start: the image's entrypoint
                        # runs as it without the root step (it only needs PGDATA
                        # writable, which fsGroup makes it); OnRootMismatch spares
                        # a large data directory the kubelet's recursive chown on
                        # every start.
                        "security_context": pod_security(POSTGRES_UID, POSTGRES_UID),
                        # Nothing in the pod talks to the Kubernetes API.
                        "automount_service_account_token": False,
                        "containers": [container],
                        "volumes": [
                            {"name": "data", "persistent_volume_claim": {"claim_name": DATA_CLAIM}},
                            {"name": "shm", "empty_dir": {"medium": "Memory"}},
                            {"name": "run", "empty_dir": {}},
                        ],
                    },
                },
            },
        }),
    ]


class Postgres(k8s.ObjectsComponent):
    """PostgreSQL's objects, declared after `after` (the namespace and its Secret)."""

    stateful_set: kubernetes.apps.v1.StatefulSet

    def __init__(
        self,
        name: str,
        settings: Settings,
        plan: CapacityPlan,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        objects = [k8s.keeping_claim_templates(o) if o.kind == "StatefulSet" else o
                   for o in postgres_objects(settings, plan)]
        super().__init__("airflow-aks:postgres:Postgres", name, objects, after, protect=settings.protect, opts=opts)
        self.stateful_set = self.declared[("StatefulSet", "statefulset")]  # type: ignore[assignment]
