"""Airflow's StatsD metrics, served for Prometheus by a statsd-exporter.

Every Airflow component sends StatsD over UDP ([metrics] statsd_on) to the
exporter's Service; the exporter turns them into Prometheus metrics on its
HTTP port, which Azure Monitor's managed Prometheus (or any Prometheus)
scrapes through the pod's prometheus.io annotations.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.kubernetes import k8s
from components.kubernetes.k8s import KubeObject, resources
from components.model import images, names
from components.model.airflow_cfg import STATSD_PREFIX
from components.model.capacity import CapacityPlan
from components.model.settings import Settings

# The exporter Airflow's Helm chart runs; images.json names its release and digest.
STATSD_EXPORTER_IMAGE = images.image("statsd-exporter")
MAPPING_KEY = "mappings.yml"
LABELS = {"app.kubernetes.io/name": "statsd-exporter", "app.kubernetes.io/part-of": "airflow"}
# Runs as nobody; it writes nothing.
STATSD_UID = 65534

# The metrics a user alerts on, with the names Airflow 3.3 sends (dots) and
# the Prometheus names the mapping below gives them. README lists them.
ALERT_METRICS = {
    f"{STATSD_PREFIX}.executor.open_slots": "airflow_executor_open_slots",
    f"{STATSD_PREFIX}.executor.queued_tasks": "airflow_executor_queued_tasks",
    f"{STATSD_PREFIX}.executor.running_tasks": "airflow_executor_running_tasks",
    f"{STATSD_PREFIX}.pool.open_slots.default_pool": "airflow_pool_open_slots{pool=\"default_pool\"}",
    f"{STATSD_PREFIX}.pool.queued_slots.default_pool": "airflow_pool_queued_slots{pool=\"default_pool\"}",
    f"{STATSD_PREFIX}.pool.running_slots.default_pool": "airflow_pool_running_slots{pool=\"default_pool\"}",
    f"{STATSD_PREFIX}.scheduler_heartbeat": "airflow_scheduler_heartbeat",
}

# Pool metrics carry the pool's name as the last part; a label is easier to
# query. Everything else keeps its dotted name with underscores.
MAPPINGS = f"""mappings:
  - match: "{STATSD_PREFIX}.pool.*.*"
    name: "{STATSD_PREFIX}_pool_${{1}}"
    labels:
      pool: "$2"
"""



def metrics_objects(settings: Settings, plan: CapacityPlan) -> list[KubeObject]:
    """The exporter's mapping ConfigMap, Deployment and Service."""
    if not settings.metrics:
        return []
    ns = settings.namespace
    container = {
        "name": "statsd-exporter",
        "image": STATSD_EXPORTER_IMAGE,
        "args": [f"--statsd.mapping-config=/etc/statsd-exporter/{MAPPING_KEY}",
                 f"--statsd.listen-udp=:{names.STATSD_PORT}", "--statsd.listen-tcp=",
                 f"--web.listen-address=:{names.STATSD_METRICS_PORT}"],
        "ports": [{"name": "statsd", "container_port": names.STATSD_PORT, "protocol": "UDP"},
                  {"name": "metrics", "container_port": names.STATSD_METRICS_PORT}],
        "resources": resources(plan.control_plane.pods["statsd"]),
        "readiness_probe": {"http_get": {"path": "/metrics", "port": names.STATSD_METRICS_PORT},
                            "period_seconds": 15},
        "liveness_probe": {"http_get": {"path": "/metrics", "port": names.STATSD_METRICS_PORT},
                           "period_seconds": 30},
        "volume_mounts": [{"name": "config", "mount_path": "/etc/statsd-exporter", "read_only": True}],
        "security_context": k8s.container_security(),
    }
    return [
        KubeObject("ConfigMap", "mappings", {
            "metadata": {"name": names.STATSD, "namespace": ns, "labels": LABELS},
            "data": {MAPPING_KEY: MAPPINGS},
        }),
        KubeObject("Service", "service", {
            "metadata": {"name": names.STATSD, "namespace": ns, "labels": LABELS},
            "spec": {"selector": LABELS, "ports": [
                {"name": "statsd", "port": names.STATSD_PORT, "target_port": "statsd", "protocol": "UDP"},
                {"name": "metrics", "port": names.STATSD_METRICS_PORT, "target_port": "metrics"},
            ]},
        }),
        KubeObject("Deployment", "deployment", {
            "metadata": {"name": names.STATSD, "namespace": ns, "labels": LABELS,
                         **k8s.skip_annotations(k8s.image_skips(STATSD_EXPORTER_IMAGE))},
            "spec": {
                "replicas": 1,
                "selector": {"match_labels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS, "annotations": {
                        k8s.CHECKSUM_ANNOTATION: k8s.checksum(MAPPINGS),
                        # Azure Monitor's managed Prometheus scrapes annotated
                        # pods in the namespaces its settings ConfigMap names
                        # (podannotationnamespaceregex); so do most Prometheus setups.
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(names.STATSD_METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    }},
                    "spec": {
                        "security_context": {"run_as_user": STATSD_UID, "run_as_group": STATSD_UID,
                                             "run_as_non_root": True,
                                             "seccomp_profile": k8s.RUNTIME_DEFAULT_SECCOMP},
                        "automount_service_account_token": False,
                        "containers": [container],
                        "volumes": [{"name": "config", "config_map": {"name": names.STATSD}}],
                    },
                },
            },
        }),
    ]


class Metrics(k8s.ObjectsComponent):
    """The statsd-exporter's objects."""

    def __init__(self, name: str, settings: Settings, plan: CapacityPlan, after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:metrics:Metrics", name, metrics_objects(settings, plan), after=after,
                         opts=opts)
