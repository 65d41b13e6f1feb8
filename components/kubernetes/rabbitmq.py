"""RabbitMQ, the Celery broker."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components.kubernetes import k8s
from components.kubernetes.k8s import (
    CHECKSUM_ANNOTATION,
    KubeObject,
    checksum,
    persistent_volume_claim,
    pod_security,
    resources,
)
from components.kubernetes.secrets import PASSWORD_KEY
from components.model import names
from components.model.capacity import CapacityPlan
from components.model.settings import Settings

RABBITMQ_UID = 999
# Slack above the longest task before RabbitMQ gives up on an unacknowledged
# delivery: Celery acknowledges late (after the task), so a delivery stays
# unacknowledged for as long as the task runs.
CONSUMER_TIMEOUT_SLACK_SECONDS = 600
CONF_FILE = "20-airflow-aks.conf"
# The official image's HOME: the Erlang cookie (mode 0400) is written there.
HOME_DIR = "/var/lib/rabbitmq"
# The node's data (mnesia base: schema, queues, feature flags). Only this is on
# the persistent volume, so the cookie never is: with fsGroup the kubelet adds
# group rw to every file of a volume it changes ownership of, and Erlang refuses
# a cookie readable by anyone but its owner, so a cookie on the volume would
# stop the broker on its next mount.
DATA_DIR = f"{HOME_DIR}/mnesia"
DATA_CLAIM = f"{names.RABBITMQ}-data"
# The image's log directory: with the main log on the console only, the node
# still writes its upgrade log (<node>_upgrade.log) and any Erlang crash dump
# here (rabbit_env's RABBITMQ_UPGRADE_LOG and rabbit_prelaunch_logging's
# ERL_CRASH_DUMP default to RABBITMQ_LOG_BASE), so it is an emptyDir.
LOG_DIR = "/var/log/rabbitmq"
# What the official image runs (docker-library/rabbitmq's Dockerfile: ENTRYPOINT
# ["docker-entrypoint.sh"], CMD ["rabbitmq-server"]). A container that declares
# a command replaces both, so the one below passes them on as its args.
IMAGE_ENTRYPOINT = ["docker-entrypoint.sh"]
IMAGE_COMMAND = ["rabbitmq-server"]
# A stack deployed before commit 8a2887f mounted its claim at HOME, so on that
# claim the mnesia base is <claim>/mnesia; mounted at DATA_DIR, that is
# DATA_DIR/mnesia. RabbitMQ names everything it puts in a mnesia base after the
# node (<node>, <node>.pid, <node>-feature_flags, <node>-plugins-expand:
# rabbit_env.erl), and a node name has an @ in it, so a directory named mnesia
# there is the old base: the node starts on it, where its queues and messages
# are, instead of on an empty one beside it. Nothing is moved, so the claim can
# still go back to a pod of the old layout. RABBITMQ_MNESIA_BASE is DATA_DIR
# (the container's env); the script writes nothing, on a read-only root.
ADOPT_OLD_DATA_LAYOUT = (
    'if [ -d "$RABBITMQ_MNESIA_BASE/mnesia" ]; then export RABBITMQ_MNESIA_BASE="$RABBITMQ_MNESIA_BASE/mnesia"; fi\n'
    'exec "$@"\n'
)
# How long the postStart hook waits for the node to boot before it gives up.
FEATURE_FLAGS_WAIT_SECONDS = 300
# A node upgraded to a new release leaves that release's new feature flags
# disabled, and the next minor release refuses to start while a flag it
# requires is still disabled ("required feature flag not enabled",
# rabbit_ff_registry_factory.erl); no config key enables them on a node that has
# booted before (RABBITMQ_FEATURE_FLAGS applies to a first boot only). So once
# the node has booted, the postStart hook enables every stable flag, as the
# RabbitMQ cluster operator does (autoEnableAllFeatureFlags); experimental
# flags stay off, and a flag already enabled is left as it is. On 4.2 this
# includes khepri_db, which moves the metadata from Mnesia to Khepri: what the
# upgrade to 4.3 requires.
#
# The hook starts with the container, before the node can be reached, and
# await_startup fails at once until the node's distribution is up: hence the
# retries, up to a deadline, because the kubelet holds the probes back until
# postStart returns.
#
# A failed postStart hook kills the container, and the one broker with it. So
# the hook never fails: if the node has not booted by the deadline (the
# liveness probe judges it from then on) or a flag cannot be enabled, the broker
# keeps running as it is and the reason goes to the container's log (PID 1's
# stdout, where the broker logs too). The next start tries again, and a flag
# left disabled stops only the next minor upgrade, which RabbitMQ refuses with
# the flag's name.
ENABLE_FEATURE_FLAGS = (
    f"deadline=$(($(date +%s) + {FEATURE_FLAGS_WAIT_SECONDS}))\n"
    "until rabbitmqctl --quiet await_startup --timeout 60; do\n"
    '  [ "$(date +%s)" -lt "$deadline" ] || break\n'
    "  sleep 5\n"
    "done\n"
    "rabbitmqctl --quiet enable_feature_flag all >>/proc/1/fd/1 2>&1 ||\n"
    '  echo "airflow-aks: the stable feature flags are not all enabled, and the next RabbitMQ minor release may'
    ' refuse to start until they are: rabbitmqctl enable_feature_flag all" >>/proc/1/fd/1\n'
    "exit 0\n"
)
LABELS = {"app.kubernetes.io/name": "rabbitmq", "app.kubernetes.io/part-of": "airflow"}
SKIPS = {
    "CKV_K8S_35": "the image reads its default user's password from RABBITMQ_DEFAULT_PASS; the value comes "
                  "from a Secret through secretKeyRef",
    "CKV_K8S_40": "the image's own rabbitmq user (uid 999) owns the data on the claim",
}


def consumer_timeout_ms(longest_task_seconds: int) -> int:
    return (longest_task_seconds + CONSUMER_TIMEOUT_SLACK_SECONDS) * 1000


def rabbitmq_conf(longest_task_seconds: int) -> str:
    return (
        "# Generated by airflow-aks.\n"
        f"consumer_timeout = {consumer_timeout_ms(longest_task_seconds)}\n"
        # The image already logs to the console (its 10-defaults.conf); this
        # keeps the node from writing the same log to a file as well.
        "log.file = false\n"
    )


def rabbitmq_objects(settings: Settings, plan: CapacityPlan) -> list[KubeObject]:
    """A one-replica StatefulSet on its own volume claim, its config and headless Service."""
    ns = settings.namespace
    res = plan.control_plane.pods["rabbitmq"]
    conf_text = rabbitmq_conf(settings.longest_task_seconds)
    container = {
        "name": "rabbitmq",
        "image": settings.rabbitmq_image,
        "command": ["sh", "-c", ADOPT_OLD_DATA_LAYOUT, "sh"],
        "args": [*IMAGE_ENTRYPOINT, *IMAGE_COMMAND],
        "env": [
            {"name": "RABBITMQ_DEFAULT_USER", "value": names.RABBITMQ_USER},
            {"name": "RABBITMQ_DEFAULT_VHOST", "value": names.RABBITMQ_VHOST},
            {"name": "RABBITMQ_DEFAULT_PASS", "value_from": {"secret_key_ref": {
                "name": names.RABBITMQ_SECRET, "key": PASSWORD_KEY}}},
            {"name": "RABBITMQ_MNESIA_BASE", "value": DATA_DIR},
        ],
        "ports": [{"name": "amqp", "container_port": names.RABBITMQ_PORT}],
        "resources": resources(res),
        "readiness_probe": {
            "exec_": {"command": ["rabbitmq-diagnostics", "-q", "check_port_connectivity"]},
            "initial_delay_seconds": 10, "period_seconds": 15, "timeout_seconds": 10},
        "liveness_probe": {
            "exec_": {"command": ["rabbitmq-diagnostics", "-q", "ping"]},
            "initial_delay_seconds": 30, "period_seconds": 30, "timeout_seconds": 15, "failure_threshold": 6},
        "lifecycle": {"post_start": {"exec_": {"command": ["sh", "-c", ENABLE_FEATURE_FLAGS]}}},
        "volume_mounts": [
            # HOME (with the cookie) on an emptyDir that starts empty in every
            # pod; the data volume inside it.
            {"name": "home", "mount_path": HOME_DIR},
            {"name": "data", "mount_path": DATA_DIR},
            {"name": "logs", "mount_path": LOG_DIR},
            {"name": "config", "mount_path": f"/etc/rabbitmq/conf.d/{CONF_FILE}", "sub_path": CONF_FILE,
             "read_only": True},
        ],
        # Read-only root: HOME, the data volume and the log directory are all
        # the node writes (tests/test_written_paths.py).
        "security_context": k8s.container_security(),
    }
    return [
        persistent_volume_claim(DATA_CLAIM, ns, LABELS, settings.rabbitmq_storage_gib),
        KubeObject("ConfigMap", "config", {
            "metadata": {"name": names.RABBITMQ, "namespace": ns, "labels": LABELS},
            "data": {CONF_FILE: conf_text},
        }),
        k8s.service("service", names.RABBITMQ, ns, LABELS, "amqp", names.RABBITMQ_PORT, headless=True),
        KubeObject("StatefulSet", "statefulset", {
            "metadata": {"name": names.RABBITMQ, "namespace": ns, "labels": LABELS,
                         "annotations": k8s.checkov_skips({**k8s.image_skips(settings.rabbitmq_image), **SKIPS})},
            "spec": {
                "service_name": names.RABBITMQ,
                "replicas": 1,
                "selector": {"match_labels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS, "annotations": {CHECKSUM_ANNOTATION: checksum(conf_text)}},
                    "spec": {
                        "security_context": pod_security(RABBITMQ_UID, RABBITMQ_UID),
                        # Nothing in the pod talks to the Kubernetes API.
                        "automount_service_account_token": False,
                        "containers": [container],
                        "volumes": [
                            {"name": "home", "empty_dir": {}},
                            {"name": "data", "persistent_volume_claim": {"claim_name": DATA_CLAIM}},
                            {"name": "logs", "empty_dir": {}},
                            {"name": "config", "config_map": {"name": names.RABBITMQ}},
                        ],
                    },
                },
            },
        }),
    ]


class RabbitMQ(k8s.ObjectsComponent):
    """RabbitMQ's objects, declared after `after` (the namespace and its Secret)."""

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
                   for o in rabbitmq_objects(settings, plan)]
        super().__init__("airflow-aks:rabbitmq:RabbitMQ", name, objects, after, protect=settings.protect, opts=opts)
        self.stateful_set = self.declared[("StatefulSet", "statefulset")]  # type: ignore[assignment]
