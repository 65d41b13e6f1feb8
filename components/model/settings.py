"""Stack config -> validated, typed settings.

Pure Python: nothing here declares a Pulumi resource, so every rule can be
tested on plain dictionaries. The Pulumi CLI hands config to the program as
strings (numbers and booleans too) and objects as JSON text; the parser accepts
both that form and native YAML values, so tests can feed it either.

Every problem found is collected and raised together as one ``ConfigError``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.model import catalogues, images, names, vnet
from components.model.airflow_options import (  # noqa: F401  (re-exported: where the tables were)
    MANAGED_AIRFLOW_OPTIONS,
    REMOVED_AIRFLOW_OPTIONS,
    USER_AIRFLOW_OPTIONS,
    parse_airflow_config,
)
from components.model.database_server import SERVER_SKUS
from components.model.drain import (
    AKS_MAX_DRAIN_MINUTES,
    DRAIN_SLACK_MINUTES,
    WORKER_SHUTDOWN_SLACK_SECONDS,
    max_longest_task_seconds,
)
from components.model.egress import EgressRule, Reserved, parse_task_egress
from components.model.parsing import Problems, bool_value, cli_list, int_value, object_value, str_value, unknown_key
from components.model.python_packages import APP_DIR, constraints_file, constraints_versions
from components.model.schedules import ALLOWED as ALLOWED_SCHEDULES
from components.model.schedules import parse_cron
from components.model.sizing import (
    DEFAULT_WORKER_CPU_PER_SLOT_MILLICORES,
    DEFAULT_WORKER_MEMORY_PER_SLOT_MIB,
    MAX_PARALLELISM,
    MEASURED_WIDEST_RUN,
)
from components.model.ui import UiSettings, parse_ui
from components.model.vmsizes import (
    MIN_MEMORY_GIB,
    MIN_VCPUS,
    VM_SIZES,
    VmSize,
    closest_size,
    resolve_size,
    table_source,
)

PROJECT = "airflow-aks"

ACR_SKUS = ("Basic", "Standard", "Premium")
# AKS pricing tiers (ManagedCluster sku.tier): Free has no uptime SLA,
# Standard has the financially backed one, Premium adds long-term support.
CLUSTER_TIERS = ("Free", "Standard", "Premium")
TARGETS = ("aks", "local")
# How the worker replicas are set: by KEDA from the queued and running tasks, or always `workers`.
WORKER_SCALINGS = ("keda", "fixed")
# Where Airflow's metadata database runs: a PostgreSQL StatefulSet in the
# cluster, or an Azure Database for PostgreSQL flexible server.
DATABASES = ("in-cluster", "azure")

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_AIRFLOW_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_K8S_VERSION_RE = re.compile(r"^1\.(\d+)(\.\d+)?$")

# Oldest Kubernetes minor the manifests are written for; older clusters lack
# fields we rely on.
MIN_KUBERNETES_MINOR = 30
# AKS's release calendar (AKS docs, "Supported Kubernetes versions", dated
# 2026-08-05): minors in standard (community) support, with the month their
# support ends, and minors AKS keeps only under long-term support, which needs
# the Premium tier and the AKSLongTermSupport plan. Update with the calendar.
AKS_STANDARD_SUPPORT = {34: "2026-11", 35: "2027-03", 36: "2027-06", 37: "2027-10"}
AKS_LTS_ONLY = {31: "2026-11", 32: "2027-03", 33: "2027-07"}


class ConfigError(ValueError):
    """One or more stack config problems, each naming its key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = sorted(problems)
        # The project's keys are named with its prefix; others (azure-native:location,
        # a stray key as the stack file spells it) as they are.
        lines = [f"  - {key}: {msg}" if ":" in key or " " in key else f"  - {PROJECT}:{key}: {msg}"
                 for key, msg in self.problems]
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"stack config has {len(self.problems)} {noun}:\n" + "\n".join(lines)
        )


@dataclass(frozen=True)
class NodePoolSettings:
    """A node pool as the user asked for it (counts may be left to the plan)."""

    vm_size: str
    min_count: int | None
    max_count: int | None
    max_pods: int
    # What one node costs an hour, in the user's currency; None: not given.
    price_per_hour: float | None = None
    # The VM's vCPU and memory as the user gave them: needed for a size the
    # program's table lacks (components/model/vm_sizes.json); None: not given.
    vcpus: int | None = None
    memory_gib: int | None = None

    @property
    def fixed(self) -> bool:
        return self.min_count is not None and self.min_count == self.max_count

    @property
    def size(self) -> VmSize:
        """The VM size the plan counts with: the table's row, else the user's figures."""
        return resolve_size(self.vm_size, self.vcpus, self.memory_gib, self.price_per_hour)


DAG_BUNDLE_KINDS = ("image", "git", "blob")


@dataclass(frozen=True)
class DagBundle:
    """One entry of dagBundles: where a set of DAG files comes from.

    kind "image": the DAG folder baked into the image (Airflow's
    LocalDagBundle); "git": a Git repository over HTTPS (the git provider's
    GitDagBundle, versioned); "blob": a container of the deployment's storage
    account (app/config/airflow_aks_bundles.py, not versioned).
    """

    name: str
    kind: str
    # git: the repository's https URL, the branch or tag tracked, a folder in it.
    url: str | None = None
    ref: str | None = None
    subdir: str | None = None
    # git: whether the repository needs a token (from dagBundleTokens).
    credentials: bool = False
    # blob: the container and a prefix of blob names in it.
    container: str | None = None
    prefix: str | None = None
    # How often the dag-processor looks for a new version; None: Airflow's
    # [dag_processor] refresh_interval (the image bundle: its files never change).
    refresh_seconds: int | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the program reads from stack config, validated."""

    stack: str
    target: str
    kube_context: str | None
    location: str | None
    airflow_version: str
    kubernetes_version: str
    namespace: str
    parallelism: int
    worker_concurrency: int
    # "keda": KEDA sets the worker replicas from the queued and running tasks,
    # between worker_min_replicas and `workers`; "fixed": always `workers`.
    worker_scaling: str
    worker_min_replicas: int
    workers: int
    workers_set: bool
    max_active_tasks_per_dag: int
    max_active_runs_per_dag: int
    task_queued_timeout_seconds: int
    # None: derived from parallelism by the capacity plan.
    api_server_replicas: int | None
    worker_memory_per_slot_mib: int
    worker_cpu_per_slot_millicores: int
    fanout_tasks: int
    fanout_sleep_seconds: int
    longest_task_seconds: int
    flower: bool
    pgbouncer: bool
    # Images run by digest, the tag kept for readers (images.py); a stack's own
    # value must name its digest (_check_pinned_image).
    pgbouncer_image: str
    # Server connections PgBouncer keeps per database alias; None: derived.
    pgbouncer_metadata_pool_size: int | None
    pgbouncer_result_backend_pool_size: int | None
    postgres_storage_gib: int
    rabbitmq_storage_gib: int
    postgres_image: str
    rabbitmq_image: str
    acr_sku: str
    cluster_tier: str
    protect: bool
    system_pool: NodePoolSettings
    worker_pool: NodePoolSettings
    airflow_config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Task logs in Azure Blob Storage (on AKS through workload identity; on a
    # local cluster only to a storage emulator the user names).
    remote_task_logs: bool = False
    task_log_retention_days: int = 30
    task_log_emulator_endpoint: str | None = None
    # Airflow's StatsD metrics to a statsd-exporter that Prometheus scrapes.
    metrics: bool = True
    # [workers] min_heartbeat_interval: how often each running task's
    # supervisor heartbeats to the Execution API.
    heartbeat_interval_seconds: int = 15
    # [core] default_task_retries and default_task_retry_delay: what a task
    # that sets no retries of its own gets, so a task lost with its worker
    # (SIGKILL, node loss) runs again instead of failing (README "Faults").
    task_retries: int = 2
    task_retry_delay_seconds: int = 60
    # The reference DAG's schedule as written (cron or an Airflow preset); None: triggered by hand.
    fanout_schedule: str | None = None
    # Schedules whose runs KEDA brings the workers up for ahead of time, and
    # whether the stack set the list (else it was derived from fanoutSchedule).
    prewarm_schedules: tuple[str, ...] = ()
    prewarm_schedules_set: bool = False
    # The IANA zone those schedules are in: Airflow's [core] default_timezone.
    schedule_timezone: str = "UTC"
    # "in-cluster" or "azure" (DATABASES).
    database: str = "in-cluster"
    # Days of database backups kept: the flexible server's point-in-time
    # window, or the in-cluster database's scheduled dumps.
    database_backup_retention_days: int = 14
    # When the in-cluster database is dumped to blob storage (five cron
    # fields, UTC); None: no dumps (`database: azure`, or no storage to put them in).
    database_backup_schedule: str | None = None
    # `database: azure` only: zone-redundant high availability, geo-redundant
    # backups, and a flexible server SKU chosen by hand (None: the plan's).
    database_high_availability: bool = False
    database_geo_redundant_backup: bool = False
    database_sku: str | None = None
    # taskEgress: destinations outside the cluster the workers and the
    # triggerer may reach (components/model/egress.py); empty: none beyond
    # what the deployment itself needs.
    task_egress: tuple[EgressRule, ...] = ()
    # dagBundles: where the DAGs come from (DagBundle); the image's own folder by default.
    dag_bundles: tuple[DagBundle, ...] = ()
    # The git bundles dagBundleTokens holds a token for: names only, never a token.
    dag_bundle_tokens: frozenset[str] = frozenset()
    # Azure Key Vault as Airflow's secrets backend (connections and variables),
    # read with the Airflow pods' workload identity: AKS with remoteTaskLogs only.
    key_vault: bool = False
    # ui: how a team reaches the UI and signs in (components/model/ui.py).
    ui: UiSettings = field(default_factory=UiSettings)
    # The AKS API server: the CIDRs it accepts connections from (empty: any
    # address, each caller still signing in with Entra ID), or reachable only
    # from the cluster's VNet (docs/aks-access.md).
    api_server_authorized_ip_ranges: tuple[str, ...] = ()
    api_server_private: bool = False
    # The keys the stack set (pool keys also as "systemPool.vmSize" etc.), so
    # that a problem found later names what the user changed, not a default.
    keys_set: frozenset[str] = frozenset()



# Every key the program reads, with its default (None: derived from other keys).
# components/model/key_docs.py documents each, for docs/configuration.md.
DEFAULTS: dict[str, Any] = {
    "target": "aks",
    "kubeContext": None,
    "parallelism": 32,
    "workerConcurrency": 16,
    "workers": None,
    "workerScaling": None,
    "workerMinReplicas": 0,
    "maxActiveTasksPerDag": None,
    "maxActiveRunsPerDag": 16,
    "taskQueuedTimeoutSeconds": 1800,
    "apiServerReplicas": None,
    "workerMemoryPerSlotMiB": DEFAULT_WORKER_MEMORY_PER_SLOT_MIB,
    "workerCpuPerSlotMillicores": DEFAULT_WORKER_CPU_PER_SLOT_MILLICORES,
    "fanoutTasks": None,
    "fanoutSleepSeconds": 100,
    "longestTaskSeconds": 3600,
    "heartbeatIntervalSeconds": 15,
    "taskRetries": 2,
    "taskRetryDelaySeconds": 60,
    "flower": False,
    "pgbouncer": True,
    # The pinned references of components/model/images.json.
    "pgbouncerImage": images.image("pgbouncer"),
    "pgbouncerMetadataPoolSize": None,
    "pgbouncerResultBackendPoolSize": None,
    "postgresStorageGiB": 32,
    "rabbitmqStorageGiB": 8,
    "postgresImage": images.image("postgres"),
    "rabbitmqImage": images.image("rabbitmq"),
    "airflowVersion": "3.3.2",
    "kubernetesVersion": "1.35",
    "namespace": "airflow",
    "acrSku": "Basic",
    "clusterTier": "Free",
    "protect": False,
    "systemPool": {"vmSize": "Standard_D4s_v5", "count": 2, "maxPods": 110},
    "workerPool": {"vmSize": "Standard_E4s_v3", "maxPods": 110},
    "airflowConfig": {},
    "remoteTaskLogs": None,
    "taskLogRetentionDays": 30,
    "taskLogEmulatorEndpoint": None,
    "metrics": True,
    # The seed article's DAG ran hourly (schedule_interval "0 * * * *").
    "fanoutSchedule": "0 * * * *",
    "prewarmSchedules": None,
    "database": "in-cluster",
    # Azure Database for PostgreSQL keeps 7 to 35 days of point-in-time backups.
    "databaseBackupRetentionDays": 14,
    # Derived: nightly at 01:15 UTC wherever the dumps have a storage account
    # (AKS with remoteTaskLogs, a local cluster with the emulator).
    "databaseBackupSchedule": None,
    "databaseHighAvailability": False,
    "databaseGeoRedundantBackup": False,
    "databaseSku": None,
    # Destinations tasks may reach ({cidr, port} or {service}); empty: the
    # NetworkPolicies stay as the deployment alone needs them.
    "taskEgress": [],
    # Derived: the image's own DAG folder alone (DEFAULT_DAG_BUNDLES), as
    # Airflow's own default list has it.
    "dagBundles": None,
    # A secret: bundle name -> access token, set with
    # `pulumi config set --secret --path 'dagBundleTokens.<bundle>' <token>`.
    "dagBundleTokens": None,
    # Connections and variables from an Azure Key Vault the program declares.
    "keyVault": False,
    # How the UI is reached and signed in to: port-forward and the generated
    # admin by default; a gateway with Entra ID sign-in (components/model/ui.py).
    "ui": {},
    # Who may reach the AKS API server: CIDRs (empty: any address; callers
    # still need Entra ID and an Azure RBAC role), or a private cluster.
    "apiServerAuthorizedIpRanges": [],
    "apiServerPrivate": False,
}
# The derived backup schedule: once a night, off the hour the reference DAG
# and most users' schedules start at.
DEFAULT_BACKUP_SCHEDULE = "15 1 * * *"
KEY_NAMES = tuple(DEFAULTS)

POOL_KEYS = ("vmSize", "count", "minCount", "maxCount", "maxPods", "pricePerHour", "vcpus", "memoryGiB")
# The cluster autoscaler's bounds: the worker pool's only (the system pool has a fixed count).
AUTOSCALE_POOL_KEYS = ("minCount", "maxCount")
SYSTEM_POOL_KEYS = tuple(k for k in POOL_KEYS if k not in AUTOSCALE_POOL_KEYS)

# The whole numbers each key accepts, bounds included. parse_settings checks
# them and docs/configuration.md prints them (components/model/key_docs.py).
INT_RANGES: dict[str, tuple[int, int]] = {
    # Task counts stop at the widest run measured (_int_widest says why).
    "parallelism": (1, MAX_PARALLELISM),
    "maxActiveTasksPerDag": (1, MAX_PARALLELISM),
    "fanoutTasks": (1, MAX_PARALLELISM),
    "workerConcurrency": (1, 512),
    "workers": (1, 2_000),
    "workerMinReplicas": (0, 1000),
    "maxActiveRunsPerDag": (1, 10_000),
    "taskQueuedTimeoutSeconds": (300, 86_400),
    "apiServerReplicas": (1, 20),
    "workerMemoryPerSlotMiB": (32, 65_536),
    "workerCpuPerSlotMillicores": (1, 16_000),
    "fanoutSleepSeconds": (0, 86_400),
    # On AKS also at most max_longest_task_seconds() (_limits_and_conflicts).
    "longestTaskSeconds": (60, 7 * 86_400),
    "heartbeatIntervalSeconds": (5, 60),
    "taskRetries": (0, 10),
    "taskRetryDelaySeconds": (0, 86_400),
    "pgbouncerMetadataPoolSize": (1, 10_000),
    "pgbouncerResultBackendPoolSize": (1, 10_000),
    "postgresStorageGiB": (1, 16_384),
    "rabbitmqStorageGiB": (1, 16_384),
    "databaseBackupRetentionDays": (7, 35),
    "taskLogRetentionDays": (1, 36_500),
}
POOL_INT_RANGES: dict[str, tuple[int, int]] = {
    "count": (1, 1000),
    "minCount": (0, 1000),
    "maxCount": (1, 1000),
    "maxPods": (30, 250),
    # Azure's largest sizes have a few hundred vCPU and some TiB of memory.
    "vcpus": (MIN_VCPUS, 1024),
    "memoryGiB": (MIN_MEMORY_GIB, 32_768),
}
# What one node may cost an hour, in the user's currency.
POOL_PRICE_RANGE = (0, 1000)


def _int(raw: Any, key: str, problems: Problems) -> int | None:
    return int_value(raw, key, *INT_RANGES[key], problems)


def _pool_int(raw: Any, pool: str, field: str, problems: Problems) -> int | None:
    return int_value(raw, f"{pool}.{field}", *POOL_INT_RANGES[field], problems)


def deployable_airflow_versions() -> tuple[str, ...]:
    """The airflowVersion values parse_settings accepts: releases with a constraints file and an
    airflow.cfg catalogue."""
    releases = catalogues.airflow_releases()
    return tuple(v for v in constraints_versions()
                 if v in releases and catalogues.airflow_config(v) is not None)


def _check_airflow_version(v: str) -> str | None:
    m = _AIRFLOW_VERSION_RE.match(v)
    if not m:
        return f"must be an Airflow release such as '3.3.2' (major.minor.patch), got {v!r}"
    if int(m.group(1)) != 3:
        return f"must be an Airflow 3.x release (this program renders Airflow 3 options), got {v!r}"
    releases = catalogues.airflow_releases()
    if v not in releases:
        # Not a release at all (a typo, or one newer than the pinned catalogue): say so before
        # the constraints check, which would only say that no pinned set exists.
        deployable = [r for r in releases if r in constraints_versions()]
        close = catalogues.closest(v, deployable) or catalogues.closest(v, releases)
        hint = f"did you mean '{close}'? " if close else ""
        return (f"{v!r} is not an apache-airflow release ({hint}the newest is {releases[-1]}, per "
                f"components/model/catalogues/{catalogues.RELEASES_FILE}); this program can deploy "
                f"{', '.join(deployable) or 'none'} (the releases with a constraints file). A release newer than "
                "the catalogue: `scripts/catalogues airflow-releases`, then `scripts/constraints <version>`")
    return None


def _check_k8s_version(v: str) -> str | None:
    m = _K8S_VERSION_RE.match(v)
    if not m:
        return f"must be a Kubernetes version such as '1.35' or '1.35.2', got {v!r}"
    if int(m.group(1)) < MIN_KUBERNETES_MINOR:
        return f"must be 1.{MIN_KUBERNETES_MINOR} or newer, got {v!r}"
    return None


def _aks_support(v: str) -> str | None:
    minor = int(_K8S_VERSION_RE.match(v).group(1))  # type: ignore[union-attr]
    offered = ", ".join(f"1.{m} (until {end})" for m, end in sorted(AKS_STANDARD_SUPPORT.items()))
    if minor in AKS_STANDARD_SUPPORT:
        return None
    if minor in AKS_LTS_ONLY:
        return (f"AKS offers 1.{minor} only under long-term support (Premium tier and the AKSLongTermSupport "
                f"plan, which this program does not set up); standard support covers {offered}, got {v!r}")
    return f"AKS standard support covers {offered}, got {v!r}"


def _check_namespace(v: str) -> str | None:
    if len(v) > 63 or not _NAME_RE.match(v):
        return ("must be a Kubernetes name: lowercase letters, digits and '-', "
                f"at most 63 characters, got {v!r}")
    return None


def _check_scaling(v: str) -> str | None:
    if v not in WORKER_SCALINGS:
        return f"must be 'keda' (workers follow the queued and running tasks) or 'fixed', got {v!r}"
    return None


def _check_image(v: str) -> str | None:
    if re.search(r"\s", v) or not re.fullmatch(r"[\w.\-/:@]+", v):
        return f"must be a container image reference such as 'postgres:17', got {v!r}"
    return None


def _check_pinned_image(v: str) -> str | None:
    """A stack's own image names its digest, as the defaults do: a tag alone is
    pulled once per node (IfNotPresent) and can be moved by the registry to another
    build, so the nodes could run different builds under one name."""
    bad = _check_image(v)
    if bad or images.has_digest(v):
        return bad
    return (f"must name the image by tag and digest, `<repository>:<tag>@sha256:<64 hex>` (e.g. "
            f"{images.image('postgres')!r}), got {v!r}: a tag alone can be moved to another build. "
            "`scripts/image-digests --resolve <repository>:<tag>` prints the reference with its digest; to keep "
            "the image a pod runs now, take the digest of its `kubectl get pod <pod> -o "
            "jsonpath='{.status.containerStatuses[0].imageID}'`")


# RabbitMQ: 3.13 or newer (older releases lack the deprecated-features
# framework whose 4.3 defaults the Celery settings are written for), pinned to
# a minor release: a floating tag (latest, 4, management) can jump a pod to a
# release RabbitMQ cannot upgrade to directly, on any restart.
RABBITMQ_OLDEST = (3, 13)
_IMAGE_TAG_RE = re.compile(r":(\d+)\.(\d+)(?:\.\d+)?(?:-[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$")


def _check_rabbitmq_image(v: str) -> str | None:
    bad = _check_image(v)
    if bad:
        return bad
    allowed = (f"RabbitMQ {RABBITMQ_OLDEST[0]}.{RABBITMQ_OLDEST[1]} or newer, pinned to a minor release "
               "such as 'rabbitmq:4.1' or 'rabbitmq:4.2.3-management'")
    m = _IMAGE_TAG_RE.search(v.rsplit("/", 1)[-1])
    if not m:
        return (f"must be {allowed}, got {v!r}: a tag without major.minor (latest, 4, management) can move a "
                "restarted pod to a release RabbitMQ cannot upgrade to directly")
    if (int(m.group(1)), int(m.group(2))) < RABBITMQ_OLDEST:
        return f"must be {allowed}, got {v!r}"
    return None


def _check_target(v: str) -> str | None:
    return None if v in TARGETS else f"must be one of {', '.join(TARGETS)}, got {v!r}"


def _check_database(v: str) -> str | None:
    return None if v in DATABASES else f"must be one of {', '.join(DATABASES)}, got {v!r}"


def _check_acr_sku(v: str) -> str | None:
    return None if v in ACR_SKUS else f"must be one of {', '.join(ACR_SKUS)}, got {v!r}"


def _check_cluster_tier(v: str) -> str | None:
    return None if v in CLUSTER_TIERS else f"must be one of {', '.join(CLUSTER_TIERS)}, got {v!r}"


# AKS: "You can specify up to 200 authorized IP ranges" (azure-aks-docs
# articles/aks/api-server-authorized-ip-ranges.md, "Limitations and considerations").
MAX_AUTHORIZED_IP_RANGES = 200
AUTHORIZED_RANGES_ALLOWED = (f"a list of at most {MAX_AUTHORIZED_IP_RANGES} CIDRs such as 203.0.113.0/24 "
                             "(a single address as 203.0.113.7/32); empty: any address")


def _authorized_ranges(raw: Any, problems: Problems) -> tuple[str, ...] | None:
    """apiServerAuthorizedIpRanges: YAML list or the CLI's JSON text, each a network address."""
    key = "apiServerAuthorizedIpRanges"
    raw = cli_list(raw)
    if not isinstance(raw, list):
        problems.append((key, f"must be {AUTHORIZED_RANGES_ALLOWED}; got {raw!r}"))
        return None
    found: list[str] = []
    for i, item in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(item, str) or not item.strip():
            problems.append((where, f"must be a CIDR such as 203.0.113.0/24, got {item!r}"))
            continue
        try:
            network = ipaddress.ip_network(item.strip())
        except ValueError:
            problems.append((where, f"must be a CIDR such as 203.0.113.0/24 with its host bits zero, got {item!r}"))
            continue
        if str(network) in found:
            problems.append((where, f"{network} is listed twice"))
            continue
        found.append(str(network))
    if len(raw) > MAX_AUTHORIZED_IP_RANGES:
        problems.append((key, f"must be {AUTHORIZED_RANGES_ALLOWED}; got {len(raw)} ranges"))
        return None
    return tuple(found) if len(found) == len(raw) else None


def _api_server_access(values: Mapping[str, Any], target: str | None,
                       problems: Problems) -> tuple[tuple[str, ...] | None, bool | None]:
    """The AKS API server's authorized ranges and private mode (docs/aks-access.md)."""
    ranges = _authorized_ranges(values.get("apiServerAuthorizedIpRanges", DEFAULTS["apiServerAuthorizedIpRanges"]),
                                problems)
    private = bool_value(values.get("apiServerPrivate", DEFAULTS["apiServerPrivate"]), "apiServerPrivate", problems)
    if target == "local":
        for key in ("apiServerAuthorizedIpRanges", "apiServerPrivate"):
            if key in values and values[key] not in (None, "", [], "[]", False, "false"):
                problems.append((key, "only applies to `target: aks` (the API server of the cluster the program "
                                 f"creates); a local cluster has none: remove it; got {values[key]!r}"))
    if private and ranges:
        # api-server-authorized-ip-ranges.md: "You can't use this feature with private clusters".
        problems.append(("apiServerAuthorizedIpRanges", "AKS applies authorized IP ranges to a public API server "
                         "only; with `apiServerPrivate: true` the API server has no public address: remove the "
                         f"ranges, or set apiServerPrivate to false; got {list(ranges)}"))
    return ranges, private


def _check_vm_size(v: str) -> str | None:
    if not re.fullmatch(r"Standard_[A-Za-z0-9_]+", v):
        return f"must be an Azure VM size such as 'Standard_E4s_v3', got {v!r}"
    return None


def _pool(raw: Any, key: str, default: Mapping[str, Any], problems: Problems,
          *, allow_autoscale: bool) -> NodePoolSettings | None:
    obj = object_value(raw, key, problems) if raw is not None else {}
    if obj is None:
        return None
    known = POOL_KEYS if allow_autoscale else SYSTEM_POOL_KEYS
    before = len(problems)
    for k in sorted(obj):
        if k not in known:
            problems.append((f"{key}.{k}", unknown_key(k, known)))
    merged = {**default, **obj}
    vm_size = str_value(merged.get("vmSize"), f"{key}.vmSize", problems, _check_vm_size)
    max_pods = _pool_int(merged.get("maxPods"), key, "maxPods", problems)
    count = min_count = max_count = None
    if "count" in merged:
        count = _pool_int(merged["count"], key, "count", problems)
    if "minCount" in obj:
        min_count = _pool_int(obj["minCount"], key, "minCount", problems)
    if "maxCount" in obj:
        max_count = _pool_int(obj["maxCount"], key, "maxCount", problems)
    if "count" in obj and ("minCount" in obj or "maxCount" in obj):
        problems.append((f"{key}.count", "set either count (a fixed size) or minCount/maxCount "
                         "(cluster autoscaler), not both"))
    elif "maxCount" in obj and "minCount" not in obj:
        problems.append((f"{key}.minCount", "set minCount with maxCount (maxCount alone defaults to the "
                         "nodes the plan needs at peak)"))
    elif min_count is not None and max_count is not None and min_count > max_count:
        problems.append((f"{key}.minCount", f"must not exceed maxCount ({max_count}), got {min_count}"))
    price = _price(obj["pricePerHour"], f"{key}.pricePerHour", problems) if "pricePerHour" in obj else None
    vcpus = _pool_int(obj["vcpus"], key, "vcpus", problems) if "vcpus" in obj else None
    memory = _pool_int(obj["memoryGiB"], key, "memoryGiB", problems) if "memoryGiB" in obj else None
    if vm_size is not None:
        _pool_size(key, vm_size, obj, vcpus, memory, problems)
    if len(problems) > before or vm_size is None or max_pods is None:
        return None
    if count is not None:
        min_count = max_count = count
    return NodePoolSettings(vm_size=vm_size, min_count=min_count, max_count=max_count,
                            max_pods=max_pods, price_per_hour=price, vcpus=vcpus, memory_gib=memory)


def _pool_size(key: str, vm_size: str, obj: Mapping[str, Any], vcpus: int | None, memory: int | None,
               problems: Problems) -> None:
    """A size in the table needs nothing more, and figures given for it must
    match the table's; a size outside it needs vcpus, memoryGiB and
    pricePerHour, the figures the plan sizes and prices the pool with."""
    listed = VM_SIZES.get(vm_size)
    if listed is not None:
        for field, given, table in (("vcpus", vcpus, listed.vcpus), ("memoryGiB", memory, listed.memory_gib)):
            if given is not None and given != table:
                problems.append((f"{key}.{field}", (
                    f"{vm_size} has {table} {'vCPU' if field == 'vcpus' else 'GiB'} in the program's table "
                    f"({table_source()}), not {given}; set {key}.{field} to {table} or remove it")))
        return
    missing = [f"{key}.{k}" for k in ("vcpus", "memoryGiB", "pricePerHour") if k not in obj]
    if not missing:
        return
    guess = closest_size(vm_size)
    these = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
    fix = (f"did you mean '{guess}'? To use {vm_size!r} itself, set {these}" if guess
           else f"set {these} to use it")
    problems.append((f"{key}.vmSize", (
        f"{vm_size!r} is not in the program's table of {len(VM_SIZES)} sizes ({table_source()}); {fix} "
        "(the plan needs the size's vCPU count, its memory in GiB and what one node costs per hour)")))


def _price(raw: Any, key: str, problems: Problems) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        problems.append((key, f"must be a number of currency units per node-hour, got {raw!r}"))
        return None
    try:
        value = float(raw)
    except ValueError:
        problems.append((key, f"must be a number of currency units per node-hour, got {raw!r}"))
        return None
    lo, hi = POOL_PRICE_RANGE
    if not lo <= value <= hi:
        problems.append((key, f"must be from {lo} to {hi} per node-hour, got {value}"))
        return None
    return value


def _task_logs(values: Mapping[str, Any], target: str | None,
               problems: Problems) -> tuple[bool | None, int | None, str | None]:
    """remoteTaskLogs (default: on for AKS, off locally), taskLogRetentionDays,
    taskLogEmulatorEndpoint (local clusters only: a blob endpoint of the
    Azure Storage emulator, e.g. http://azurite.azurite:10000/devstoreaccount1)."""
    emulator_raw = values.get("taskLogEmulatorEndpoint")
    emulator = None
    if emulator_raw is not None:
        emulator = str_value(emulator_raw, "taskLogEmulatorEndpoint", problems, _check_emulator_endpoint)
        if target == "aks":
            problems.append(("taskLogEmulatorEndpoint", "only applies to `target: local`; on AKS task logs go "
                             "to the storage account the program creates"))
    remote_raw = values.get("remoteTaskLogs")
    remote = (bool_value(remote_raw, "remoteTaskLogs", problems) if remote_raw is not None
              else target == "aks" or emulator is not None)
    if remote and target == "local" and emulator_raw is None:
        problems.append(("remoteTaskLogs", "on a local cluster task logs can only go to a storage emulator: "
                         "set taskLogEmulatorEndpoint too, or leave remoteTaskLogs off"))
    retention = _int(values.get("taskLogRetentionDays", DEFAULTS["taskLogRetentionDays"]), "taskLogRetentionDays",
                     problems)
    return remote, retention, emulator


def _schedule(raw: Any, key: str, problems: Problems) -> str | None:
    """A cron schedule or Airflow preset, its whitespace normalised."""
    if not isinstance(raw, str) or not raw.strip():
        problems.append((key, f"must be {ALLOWED_SCHEDULES}, got {raw!r}"))
        return None
    try:
        return parse_cron(raw).text
    except ValueError as err:
        problems.append((key, f"{err}; must be {ALLOWED_SCHEDULES}"))
        return None


def _fanout_schedule(values: Mapping[str, Any], problems: Problems) -> str | None:
    """fanoutSchedule: absent, the seed's hourly run; null or "" (what the
    Pulumi CLI hands over for a YAML null, pulumi/pulumi#19483), none."""
    raw = values["fanoutSchedule"] if "fanoutSchedule" in values else DEFAULTS["fanoutSchedule"]
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return _schedule(raw, "fanoutSchedule", problems)


def _prewarm_schedules(values: Mapping[str, Any], scaling: str | None, fanout_schedule: str | None,
                       problems: Problems) -> tuple[str, ...] | None:
    """prewarmSchedules: a list of schedules (YAML, or the JSON text the CLI
    passes); unset, the reference DAG's schedule wherever KEDA scales."""
    key = "prewarmSchedules"
    raw = values.get(key)
    if raw is None:
        return (fanout_schedule,) if scaling == "keda" and fanout_schedule else ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            pass
    if not isinstance(raw, list):
        problems.append((key, f"must be a list of cron schedules such as ['0 * * * *'], got {raw!r}"))
        return None
    before = len(problems)
    schedules: list[str] = []
    for item in raw:
        schedule = _schedule(item, key, problems)
        if schedule is None:
            continue
        if parse_cron(schedule).expression in {parse_cron(s).expression for s in schedules}:
            problems.append((key, f"lists {schedule!r} twice"))
            continue
        schedules.append(schedule)
    if schedules and scaling == "fixed":
        problems.append((key, "only applies with `workerScaling: keda`: fixed workers are always up; "
                         "remove it or set it to []"))
    return None if len(problems) > before else tuple(schedules)


def _backup_schedule(values: Mapping[str, Any], target: str | None, database: str | None,
                     remote_logs: bool | None, problems: Problems) -> str | None:
    """databaseBackupSchedule: when the in-cluster database is dumped to the
    task-log storage account (on a local cluster, the storage emulator).

    Unset: nightly where that storage exists; `database: azure`, and a local
    cluster without the emulator, have none. null or "": no dumps. Where
    the dumps would have nowhere to go it is refused rather than skipped:
    on AKS `remoteTaskLogs: false` with the in-cluster database needs an
    explicit null, so a stack never loses its backups unnoticed. Dumps on a
    volume in the cluster instead were rejected: they would share the
    database's failure domain (the cluster, its namespace's claims, `pulumi
    destroy`), which is what a backup is for.
    """
    key = "databaseBackupSchedule"
    raw = values.get(key)
    explicit_off = key in values and (raw is None or (isinstance(raw, str) and not raw.strip()))
    if explicit_off or remote_logs is None or database is None:
        return None
    if database == "azure":
        if raw is not None:
            problems.append((key, "only applies to `database: in-cluster`; the flexible server keeps its own "
                             "backups (databaseBackupRetentionDays)"))
        return None
    if not remote_logs:
        if target == "aks":
            problems.append((key, "the in-cluster database's dumps go to the task-log storage account, which "
                             "`remoteTaskLogs: false` removes: turn remoteTaskLogs on, or set "
                             "databaseBackupSchedule to null to run without backups"))
        elif raw is not None:
            problems.append((key, "on a local cluster the dumps go to the storage emulator: set "
                             "taskLogEmulatorEndpoint too, or leave databaseBackupSchedule unset"))
        return None
    schedule = _schedule(raw if raw is not None else DEFAULT_BACKUP_SCHEDULE, key, problems)
    return None if schedule is None else parse_cron(schedule).expression


def _schedule_timezone(overrides: Mapping[str, Mapping[str, str]], problems: Problems) -> str | None:
    """The IANA zone Airflow reads the schedules in ([core] default_timezone,
    "utc" unless airflowConfig sets it), as KEDA's cron trigger names it."""
    name = overrides.get("core", {}).get("default_timezone", "utc")
    if name.lower() == "utc":
        return "UTC"
    known = zoneinfo.available_timezones()
    if name == "system" or (known and name not in known):
        problems.append(("airflowConfig.core.default_timezone", (
            f"pre-warming the workers (prewarmSchedules) needs the schedules' time zone as an IANA name such as "
            f"'Europe/Amsterdam' (KEDA's cron trigger takes no other), got {name!r}")))
        return None
    return name


def _check_emulator_endpoint(value: str) -> str | None:
    if not re.fullmatch(r"https?://[^\s/]+(:\d+)?/[a-z0-9]{3,24}/?", value):
        return ("must be the emulator's blob endpoint with its account, "
                "e.g. http://azurite.azurite:10000/devstoreaccount1")
    return None


def _database_server(values: Mapping[str, Any], database: str | None,
                     problems: Problems) -> tuple[bool | None, bool | None, str | None]:
    """databaseHighAvailability, databaseGeoRedundantBackup, databaseSku: the
    flexible server's options, refused with `database: in-cluster`."""
    ha = bool_value(values.get("databaseHighAvailability", DEFAULTS["databaseHighAvailability"]),
               "databaseHighAvailability", problems)
    geo = bool_value(values.get("databaseGeoRedundantBackup", DEFAULTS["databaseGeoRedundantBackup"]),
                "databaseGeoRedundantBackup", problems)
    sku_raw = values.get("databaseSku")
    sku = None
    if sku_raw is not None and sku_raw != "":
        sku = str_value(sku_raw, "databaseSku", problems, _check_server_sku)
    if database is not None and database != "azure":
        for key, set_ in (("databaseHighAvailability", ha), ("databaseGeoRedundantBackup", geo),
                          ("databaseSku", sku is not None)):
            if set_:
                problems.append((key, "only applies with `database: azure` (the flexible server)"))
    return ha, geo, sku


# Airflow takes one secrets-backend argument from its own environment variable
# (AIRFLOW__SECRETS__BACKEND_KWARG__<KEY>) since 3.2.0
# (airflow/_shared/configuration/parser.py, _collect_kwarg_env_vars): the
# vault URL, known only once Azure has made the vault, reaches the pods so.
KEY_VAULT_OLDEST_AIRFLOW = (3, 2, 0)


def _key_vault(values: Mapping[str, Any], target: str | None, remote_logs: bool | None,
               airflow_version: str | None, problems: Problems) -> bool | None:
    """keyVault: refused where the pods have no Azure identity to read a vault with.

    The Airflow pods' identity (the federated one of TaskLogStorage) exists on
    AKS only with remoteTaskLogs; a local cluster has no Azure identity at all.
    """
    key = "keyVault"
    on = bool_value(values.get(key, DEFAULTS[key]), key, problems)
    if not on:
        return on
    if target == "local":
        problems.append((key, "needs `target: aks`: a local cluster has no Azure identity to read a vault with"))
    elif target == "aks" and remote_logs is False:
        problems.append((key, "the Airflow pods read the vault with their workload identity, which exists only "
                         "with remoteTaskLogs (the task-log storage's identity): turn remoteTaskLogs on, or "
                         "keyVault off"))
    if airflow_version is not None:
        found = _AIRFLOW_VERSION_RE.match(airflow_version)
        if found and tuple(int(g) for g in found.groups()) < KEY_VAULT_OLDEST_AIRFLOW:
            oldest = ".".join(map(str, KEY_VAULT_OLDEST_AIRFLOW))
            problems.append((key, f"needs airflowVersion {oldest} or newer (the pods get the vault URL through "
                             f"AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL, which Airflow reads since {oldest}), "
                             f"got {airflow_version}"))
    return on


def _check_server_sku(value: str) -> str | None:
    if value not in SERVER_SKUS:
        return f"unknown flexible server SKU {value!r}; known: {', '.join(SERVER_SKUS)}"
    return None


def _task_egress(raw: Any, target: str | None, database: str | None,
                 problems: Problems) -> tuple[EgressRule, ...] | None:
    """taskEgress (components/model/egress.py). On AKS an entry may not lie
    inside the cluster's pod or Service range (a NetworkPolicy ipBlock is for
    addresses outside the cluster: Azure's Cilium does not select pods by
    it, and a Service address is translated to a pod's before policy
    applies), and with `database: azure` it may not reach into the flexible
    server's subnet at all: only PgBouncer and the migration Job connect to
    the metadata database directly (README, "Network policies")."""
    reserved = []
    if target == "aks":
        reserved += [Reserved(vnet.AKS_POD_CIDR, "the cluster's pod range, which an ipBlock does not select", False),
                     Reserved(vnet.AKS_SERVICE_CIDR, "the cluster's Service range, which an ipBlock does not select",
                              False)]
        if database == "azure":
            reserved.append(Reserved(vnet.DATABASE_SUBNET_CIDR, "the metadata database's subnet, which the "
                                     "policies open only to the pods that connect to the server (README, \"Network "
                                     "policies\")", True))
    rules, found = parse_task_egress(raw, reserved=reserved)
    problems += found
    return rules


# --------------------------------------------------------------------------
# dagBundles and dagBundleTokens
# --------------------------------------------------------------------------

DAG_BUNDLE_KEYS = {
    "image": ("name", "kind"),
    "git": ("name", "kind", "url", "ref", "subdir", "credentials", "refreshSeconds"),
    "blob": ("name", "kind", "container", "prefix", "refreshSeconds"),
}
# Short enough to stay readable in a connection ID and an environment
# variable name (git credentials), and a valid Kubernetes-style name.
DAG_BUNDLE_NAME_MAX = 40
# A git fetch or a blob listing each refresh: no more often than the
# dag-processor checks its bundles ([dag_processor] bundle_refresh_check_interval,
# 5 s), at least daily.
DAG_BUNDLE_REFRESH_RANGE = (5, 86_400)
DEFAULT_DAG_BUNDLE_REFRESH_SECONDS = 60
DEFAULT_GIT_REF = "main"
DEFAULT_DAG_BUNDLES = ({"name": "dags-folder", "kind": "image"},)
# No '%': airflow.cfg values go through configparser's interpolation.
_GIT_URL_RE = re.compile(r"^https://([A-Za-z0-9.-]+)(:\d{1,5})?/[A-Za-z0-9._~/+-]+$")
# Blob container names (Azure "Naming and referencing containers"): 3-63
# lowercase letters, digits and single hyphens, starting and ending with a
# letter or digit.
_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_REL_PATH_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")


def _check_git_url(v: str) -> str | None:
    m = _GIT_URL_RE.match(v)
    if m is None or "@" in v:
        return ("must be the repository's https URL without credentials, e.g. "
                f"'https://github.com/team/dags.git' (the token goes in dagBundleTokens), got {v!r}")
    return None


def _check_git_ref(v: str) -> str | None:
    """A branch or tag name as `git check-ref-format --branch` allows it (the
    common subset): no '..', '@{', '//', control characters or space, no
    leading '-' or '/', no trailing '/', '.' or '.lock'."""
    bad = (not re.fullmatch(r"[A-Za-z0-9._/+-]+", v) or ".." in v or "//" in v or v.startswith(("-", "/", "."))
           or v.endswith(("/", ".", ".lock")) or "/." in v)
    return f"must be a branch or tag name such as 'main' or 'v1.2', got {v!r}" if bad else None


def _check_rel_path(v: str) -> str | None:
    if not _REL_PATH_RE.match(v) or any(part in (".", "..") for part in v.split("/")):
        return f"must be a relative path without '..' (letters, digits, '.', '_', '-', '/'), got {v!r}"
    return None


def _check_container(v: str) -> str | None:
    if not _CONTAINER_RE.match(v):
        return ("must be a blob container name: 3 to 63 lowercase letters, digits and single hyphens, "
                f"starting and ending with a letter or digit, got {v!r}")
    if v in (names.TASK_LOG_CONTAINER, names.BACKUP_CONTAINER):
        return f"{v!r} is the program's own container (task logs, database dumps); name another"
    return None


def _check_bundle_name(v: str) -> str | None:
    if len(v) > DAG_BUNDLE_NAME_MAX or not _NAME_RE.match(v):
        return (f"must be lowercase letters, digits and '-' (at most {DAG_BUNDLE_NAME_MAX} characters, "
                f"starting and ending with a letter or digit), got {v!r}")
    return None


def _dag_bundle(raw: Any, where: str, problems: Problems) -> DagBundle | None:
    obj = object_value(raw, where, problems)
    if obj is None:
        return None
    before = len(problems)
    kind = str_value(obj.get("kind"), f"{where}.kind", problems,
                lambda v: None if v in DAG_BUNDLE_KINDS else f"must be one of {', '.join(DAG_BUNDLE_KINDS)}, "
                                                              f"got {v!r}")
    name = str_value(obj.get("name"), f"{where}.name", problems, _check_bundle_name)
    if kind is None:
        return None
    for k in sorted(obj):
        if k not in DAG_BUNDLE_KEYS[kind]:
            problems.append((f"{where}.{k}", f"a `{kind}` bundle takes no such key; " +
                             unknown_key(k, DAG_BUNDLE_KEYS[kind]).removeprefix("unknown key; ")))
    refresh = None
    if kind != "image":
        lo, hi = DAG_BUNDLE_REFRESH_RANGE
        refresh = int_value(obj.get("refreshSeconds", DEFAULT_DAG_BUNDLE_REFRESH_SECONDS), f"{where}.refreshSeconds",
                       lo, hi, problems)
    fields: dict[str, Any] = {}
    if kind == "git":
        fields["url"] = str_value(obj.get("url"), f"{where}.url", problems, _check_git_url)
        fields["ref"] = str_value(obj.get("ref", DEFAULT_GIT_REF), f"{where}.ref", problems, _check_git_ref)
        if obj.get("subdir") not in (None, ""):
            fields["subdir"] = str_value(obj["subdir"], f"{where}.subdir", problems, _check_rel_path)
        fields["credentials"] = bool_value(obj.get("credentials", False), f"{where}.credentials", problems)
    elif kind == "blob":
        fields["container"] = str_value(obj.get("container"), f"{where}.container", problems, _check_container)
        if obj.get("prefix") not in (None, ""):
            fields["prefix"] = str_value(obj["prefix"], f"{where}.prefix", problems, _check_rel_path)
    if len(problems) > before or name is None:
        return None
    return DagBundle(name=name, kind=kind, refresh_seconds=refresh, **fields)


def _dag_bundles(values: Mapping[str, Any], target: str | None, remote_logs: bool | None,
                 problems: Problems) -> tuple[DagBundle, ...] | None:
    """dagBundles: a list of bundles, names unique, at most one `image`
    bundle (the image has one DAG folder). A `blob` bundle reads with the
    Airflow pods' Azure identity, which exists with remoteTaskLogs only (on a
    local cluster: the storage emulator of taskLogEmulatorEndpoint)."""
    key = "dagBundles"
    raw = values.get(key)
    if raw is None or raw == "":
        raw = list(DEFAULT_DAG_BUNDLES)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = None
    if not isinstance(raw, list) or not raw:
        problems.append((key, "must be a non-empty list of bundles, e.g. [{name: dags-folder, kind: image}]"))
        return None
    before = len(problems)
    bundles = [_dag_bundle(item, f"{key}[{i}]", problems) for i, item in enumerate(raw)]
    seen: dict[str, int] = {}
    images = 0
    for i, b in enumerate(bundles):
        if b is None:
            continue
        if b.name in seen:
            problems.append((f"{key}[{i}].name", f"{b.name!r} is already the name of {key}[{seen[b.name]}]; "
                             "bundle names must be unique"))
        seen.setdefault(b.name, i)
        if b.kind == "image":
            images += 1
            if images > 1:
                problems.append((f"{key}[{i}].kind", "the image has one DAG folder: at most one `image` bundle"))
        if b.kind == "blob" and remote_logs is False:
            why = ("on AKS a `blob` bundle is read with the Airflow pods' workload identity and the task-log "
                   "storage account, which exist only with remoteTaskLogs: turn remoteTaskLogs on"
                   if target == "aks" else
                   "on a local cluster a `blob` bundle is read from the storage emulator: set "
                   "taskLogEmulatorEndpoint (and create the container there)")
            problems.append((f"{key}[{i}]", why))
    if len(problems) > before:
        return None
    return tuple(b for b in bundles if b is not None)


def _dag_bundle_tokens(values: Mapping[str, Any], bundles: tuple[DagBundle, ...] | None,
                       secret_keys: frozenset[str] | None, problems: Problems) -> frozenset[str] | None:
    """dagBundleTokens: which git bundles have a token. Only the names are
    kept; the tokens are read again as Pulumi secrets where the Secret is
    built (components/kubernetes/dag_bundles.py). In a stack file a token is
    `{secure: ...}`; what the CLI hands the program is the decrypted text,
    with the key listed among the secret ones (secret_keys; None: not known,
    as for plain dictionaries in tests)."""
    key = "dagBundleTokens"
    raw = values.get(key)
    if raw is None or raw == "":
        raw = {}
    obj = object_value(raw, key, problems)
    if obj is None or bundles is None:
        return None
    before = len(problems)
    if obj and secret_keys is not None and key not in secret_keys:
        problems.append((key, "must be a secret: set each token with `pulumi config set --secret --path "
                         "'dagBundleTokens.<bundle>' <token>`"))
    by_name = {b.name: b for b in bundles}
    for name in sorted(obj):
        value = obj[name]
        if not ((isinstance(value, str) and value) or (isinstance(value, Mapping) and "secure" in value)):
            problems.append((f"{key}.{name}", "must be the bundle's access token (a non-empty string)"))
        bundle = by_name.get(name)
        if bundle is None or bundle.kind != "git" or not bundle.credentials:
            problems.append((f"{key}.{name}", "names no `git` bundle of dagBundles with `credentials: true`"))
    for i, b in enumerate(bundles):
        if b.kind == "git" and b.credentials and b.name not in obj:
            problems.append((f"dagBundles[{i}].credentials", (
                f"needs a token: `pulumi config set --secret --path 'dagBundleTokens.{b.name}' <token>`")))
    return None if len(problems) > before else frozenset(obj)


# --------------------------------------------------------------------------
# Limits the design stands behind, and keys that would have no effect
# --------------------------------------------------------------------------

WIDEST_WHY = (f"the widest run measured with one scheduler and one PostgreSQL ({MEASURED_WIDEST_RUN}: the "
              "scheduler queued every task in 5.0 s); this design does not scale either out")


def _image_value(values: Mapping[str, Any], key: str, problems: Problems,
                 check: Callable[[str], str | None]) -> str | None:
    """An image key: the default from images.json, or the stack's own, which must also name its digest."""
    raw = values.get(key)
    if raw is None:
        return str_value(DEFAULTS[key], key, problems, check)
    return str_value(raw, key, problems, lambda v: check(v) or _check_pinned_image(v))


def _int_widest(raw: Any, key: str, problems: Problems) -> int | None:
    """A task count (parallelism, a DAG's width or its active tasks): a whole
    number from 1 to MAX_PARALLELISM, the ceiling given with its reason."""
    scratch: Problems = []
    value = int_value(raw, key, 1, 2**63, scratch)
    if value is not None and value > MAX_PARALLELISM:
        problems.append((key, f"must be at most {MAX_PARALLELISM}: {WIDEST_WHY}; got {value}"))
        return None
    return _int(raw, key, problems)


def _keys_set(values: Mapping[str, Any]) -> frozenset[str]:
    """The keys present in the stack's values, and each pool's own keys
    ("workerPool.vmSize"), from YAML objects or the CLI's JSON text."""
    found = {key for key in values if key in KEY_NAMES}
    for pool in ("systemPool", "workerPool"):
        raw = values.get(pool)
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raw = None
        if isinstance(raw, Mapping):
            found |= {f"{pool}.{k}" for k in raw}
    return frozenset(found)


# A key that only matters with another is refused where the stack set it and
# the other makes it do nothing (a default is never flagged), so no setting
# silently stops mattering; and limits that depend on other keys (the target).
def _limits_and_conflicts(values: Mapping[str, Any], *, target: str | None, worker_scaling: str | None,
                          pgbouncer: bool | None, remote_logs: bool | None, database: str | None,
                          backup_schedule: str | None, longest_task: int | None) -> Problems:
    problems: Problems = []

    def set_(key: str) -> bool:
        return key in values and values[key] is not None and values[key] != ""

    def got(key: str) -> str:
        return f"; got {values[key]!r}"

    if set_("workerMinReplicas") and worker_scaling == "fixed":
        problems.append(("workerMinReplicas", "only applies with `workerScaling: keda` (the fewest workers KEDA "
                         "keeps); with `workerScaling: fixed` the workers are always `workers`: remove it"
                         + got("workerMinReplicas")))
    if pgbouncer is False:
        for key in ("pgbouncerImage", "pgbouncerMetadataPoolSize", "pgbouncerResultBackendPoolSize"):
            if set_(key):
                problems.append((key, "only applies with `pgbouncer: true`; with `pgbouncer: false` every component "
                                 "connects to PostgreSQL directly: remove it, or turn pgbouncer on" + got(key)))
    if set_("taskLogRetentionDays") and target is not None and remote_logs is not None \
            and not (target == "aks" and remote_logs):
        where = ("`remoteTaskLogs: false` keeps task logs on the workers, with no storage account"
                 if target == "aks" else "a local cluster's task logs have no storage account to expire them in")
        problems.append(("taskLogRetentionDays", f"only applies to task logs in the storage account (`target: aks` "
                         f"with remoteTaskLogs); {where}: remove it" + got("taskLogRetentionDays")))
    if set_("databaseBackupRetentionDays") and target is not None and database is not None \
            and database != "azure" and not (target == "aks" and backup_schedule is not None):
        where = ("a local cluster's dumps go to the storage emulator, which expires nothing"
                 if target == "local" else "databaseBackupSchedule is null, so there are no dumps to keep")
        problems.append(("databaseBackupRetentionDays", "only applies to the flexible server's backups "
                         "(`database: azure`) or to the in-cluster database's dumps in the storage account "
                         f"(databaseBackupSchedule); {where}: remove it" + got("databaseBackupRetentionDays")))
    if target == "local":
        for key in ("acrSku", "clusterTier"):
            if set_(key):
                problems.append((key, "only applies to `target: aks` (the registry and the cluster the program "
                                 "creates); a local cluster has neither: remove it" + got(key)))
    if target == "aks" and longest_task is not None:
        most = max_longest_task_seconds()
        if longest_task > most:
            problems.append(("longestTaskSeconds", (
                f"must be at most {most} on AKS: a worker node's drain must outlast a worker's warm "
                f"shutdown (the longest task plus {WORKER_SHUTDOWN_SLACK_SECONDS} s, and {DRAIN_SLACK_MINUTES} "
                f"minutes' margin), and AKS drains a node for at most {AKS_MAX_DRAIN_MINUTES} minutes "
                f"(AgentPoolUpgradeSettings drainTimeoutInMinutes, 1 to "
                f"{AKS_MAX_DRAIN_MINUTES}); got {longest_task}")))
    return problems


def parse_settings(values: Mapping[str, Any], *, stack: str,
                   location: str | None = None, secret_keys: frozenset[str] | None = None) -> Settings:
    """Validate the project's stack config (keys without the project prefix).

    secret_keys: the keys Pulumi holds as secrets (None: not known).

    Raises ConfigError listing every problem at once.
    """
    problems: Problems = []
    for key in sorted(values):
        if key not in KEY_NAMES:
            problems.append((key, unknown_key(key, KEY_NAMES)))

    def get(name: str) -> Any:
        return values.get(name, DEFAULTS[name])

    target = str_value(get("target"), "target", problems, _check_target)
    context_raw = values.get("kubeContext")
    kube_context = (str_value(context_raw, "kubeContext", problems, lambda _: None)
                    if context_raw is not None else None)
    if kube_context is not None and target != "local":
        problems.append(("kubeContext", "only applies to `target: local` (AKS stacks use the cluster they create)"))
    parallelism = _int_widest(get("parallelism"), "parallelism", problems)
    concurrency = _int(get("workerConcurrency"), "workerConcurrency", problems)
    workers_raw = values.get("workers")
    workers = _int(workers_raw, "workers", problems) if workers_raw is not None else None
    mat_raw = values.get("maxActiveTasksPerDag")
    max_tasks = (_int_widest(mat_raw, "maxActiveTasksPerDag", problems)
                 if mat_raw is not None else parallelism)
    max_runs = _int(get("maxActiveRunsPerDag"), "maxActiveRunsPerDag", problems)
    queued_timeout = _int(get("taskQueuedTimeoutSeconds"), "taskQueuedTimeoutSeconds", problems)
    api_raw = values.get("apiServerReplicas")
    api_replicas = _int(api_raw, "apiServerReplicas", problems) if api_raw is not None else None
    mem_slot = _int(get("workerMemoryPerSlotMiB"), "workerMemoryPerSlotMiB", problems)
    cpu_slot = _int(get("workerCpuPerSlotMillicores"), "workerCpuPerSlotMillicores", problems)
    fanout_raw = values.get("fanoutTasks")
    fanout_tasks = (_int_widest(fanout_raw, "fanoutTasks", problems)
                    if fanout_raw is not None else parallelism)
    fanout_sleep = _int(get("fanoutSleepSeconds"), "fanoutSleepSeconds", problems)
    longest_task = _int(get("longestTaskSeconds"), "longestTaskSeconds", problems)
    heartbeat = _int(get("heartbeatIntervalSeconds"), "heartbeatIntervalSeconds", problems)
    retries = _int(get("taskRetries"), "taskRetries", problems)
    retry_delay = _int(get("taskRetryDelaySeconds"), "taskRetryDelaySeconds", problems)
    flower = bool_value(get("flower"), "flower", problems)
    scaling_raw = values.get("workerScaling")
    worker_scaling = (str_value(scaling_raw, "workerScaling", problems, _check_scaling) if scaling_raw is not None
                      else ("fixed" if target == "local" else "keda"))
    min_replicas = _int(get("workerMinReplicas"), "workerMinReplicas", problems)
    pgbouncer = bool_value(get("pgbouncer"), "pgbouncer", problems)
    pgbouncer_image = _image_value(values, "pgbouncerImage", problems, _check_image)
    meta_pool_raw, result_pool_raw = values.get("pgbouncerMetadataPoolSize"), values.get(
        "pgbouncerResultBackendPoolSize")
    meta_pool = (_int(meta_pool_raw, "pgbouncerMetadataPoolSize", problems)
                 if meta_pool_raw is not None else None)
    result_pool = (_int(result_pool_raw, "pgbouncerResultBackendPoolSize", problems)
                   if result_pool_raw is not None else None)
    pg_storage = _int(get("postgresStorageGiB"), "postgresStorageGiB", problems)
    mq_storage = _int(get("rabbitmqStorageGiB"), "rabbitmqStorageGiB", problems)
    pg_image = _image_value(values, "postgresImage", problems, _check_image)
    mq_image = _image_value(values, "rabbitmqImage", problems, _check_rabbitmq_image)
    airflow_version = str_value(get("airflowVersion"), "airflowVersion", problems, _check_airflow_version)
    if airflow_version is not None:
        # The image installs this version's pinned set (app/Dockerfile); without one the
        # build would fail at its COPY, or install unpinned packages, long after the preview.
        known = constraints_versions()
        if airflow_version not in known:
            problems.append(("airflowVersion", (
                f"has no constraints file ({constraints_file(airflow_version).relative_to(APP_DIR.parent)}), the "
                f"pinned package set the image installs; versions with one: {', '.join(known) or 'none'}. "
                f"`scripts/constraints {airflow_version}` writes one (README, \"Add Python packages\")")))
        elif catalogues.airflow_config(airflow_version) is None:
            # airflowConfig is checked against this catalogue (tests/test_catalogues.py keeps one
            # for every version with constraints).
            problems.append(("airflowVersion", (
                f"has no airflow.cfg catalogue ({catalogues.config_file(airflow_version).name}) to check "
                f"airflowConfig against; `scripts/catalogues airflow-config --core-version {airflow_version}` "
                "writes one")))
    k8s_version = str_value(get("kubernetesVersion"), "kubernetesVersion", problems, _check_k8s_version)
    namespace = str_value(get("namespace"), "namespace", problems, _check_namespace)
    acr_sku = str_value(get("acrSku"), "acrSku", problems, _check_acr_sku)
    cluster_tier = str_value(get("clusterTier"), "clusterTier", problems, _check_cluster_tier)
    protect = bool_value(get("protect"), "protect", problems)
    system_pool = _pool(values.get("systemPool"), "systemPool", DEFAULTS["systemPool"], problems,
                        allow_autoscale=False)
    worker_pool = _pool(values.get("workerPool"), "workerPool", DEFAULTS["workerPool"], problems,
                        allow_autoscale=True)
    overrides = parse_airflow_config(get("airflowConfig"), airflow_version, problems)
    remote_logs, retention, emulator = _task_logs(values, target, problems)
    metrics = bool_value(get("metrics"), "metrics", problems)
    fanout_schedule = _fanout_schedule(values, problems)
    prewarm = _prewarm_schedules(values, worker_scaling, fanout_schedule, problems)
    timezone = _schedule_timezone(overrides, problems) if prewarm and overrides is not None else "UTC"
    database = str_value(get("database"), "database", problems, _check_database)
    if database == "azure" and target == "local":
        problems.append(("database", "`azure` needs `target: aks`; a local cluster keeps `in-cluster`"))
    backup_days = _int(get("databaseBackupRetentionDays"), "databaseBackupRetentionDays", problems)
    backup_schedule = _backup_schedule(values, target, database, remote_logs, problems)
    db_ha, db_geo, db_sku = _database_server(values, database, problems)
    task_egress = _task_egress(values.get("taskEgress"), target, database, problems)
    dag_bundles = _dag_bundles(values, target, remote_logs, problems)
    bundle_tokens = _dag_bundle_tokens(values, dag_bundles, secret_keys, problems)
    key_vault = _key_vault(values, target, remote_logs, airflow_version, problems)
    ui = parse_ui(get("ui"), target=target, key_vault=key_vault, problems=problems)
    api_ranges, api_private = _api_server_access(values, target, problems)
    if ui is not None and ui.gateway and namespace is not None:
        gateway_ns = names.ui_gateway_namespace(namespace)
        if len(gateway_ns) > 63:
            problems.append(("namespace", f"must be at most {63 - len(gateway_ns) + len(namespace)} characters with "
                             f"`ui.exposure: gateway`: the gateway's namespace {gateway_ns!r} is a DNS label "
                             "(63 at most)"))

    if k8s_version is not None and target == "aks":
        why = _aks_support(k8s_version)
        if why:
            problems.append(("kubernetesVersion", why))

    if not location and target != "local":
        problems.append(("azure-native:location", "required: the Azure region to deploy to, "
                         "e.g. `pulumi config set azure-native:location westeurope`"))
    elif location and target == "aks":
        why = catalogues.region_problem(location)
        if why:
            problems.append(("azure-native:location", why))

    if parallelism is not None and concurrency is not None and workers is not None:
        if workers * concurrency < parallelism:
            need = math.ceil(parallelism / concurrency)
            problems.append((
                "workers",
                f"{workers} workers x workerConcurrency {concurrency} = {workers * concurrency} task slots, "
                f"fewer than parallelism {parallelism}; set workers to at least {need} or remove it "
                "to let the program derive it",
            ))

    if (min_replicas is not None and workers is not None and parallelism is not None
            and min_replicas > workers):
        problems.append(("workerMinReplicas", f"must not exceed workers ({workers}), got {min_replicas}"))
    problems += _limits_and_conflicts(values, target=target, worker_scaling=worker_scaling,
                                      pgbouncer=pgbouncer, remote_logs=remote_logs, database=database,
                                      backup_schedule=backup_schedule, longest_task=longest_task)
    if problems:
        raise ConfigError(problems)

    # Every value below was checked above; the asserts document it for mypy.
    assert parallelism is not None and concurrency is not None and max_tasks is not None
    assert max_runs is not None and queued_timeout is not None
    assert mem_slot is not None and cpu_slot is not None and airflow_version is not None
    assert k8s_version is not None and namespace is not None and acr_sku is not None
    assert protect is not None and system_pool is not None and worker_pool is not None
    assert target is not None and cluster_tier is not None
    assert overrides is not None and fanout_tasks is not None and fanout_sleep is not None
    assert longest_task is not None and flower is not None and pg_storage is not None
    assert mq_storage is not None and pg_image is not None and mq_image is not None
    assert pgbouncer is not None and pgbouncer_image is not None
    assert worker_scaling is not None and min_replicas is not None
    assert remote_logs is not None and retention is not None and metrics is not None
    assert heartbeat is not None and retries is not None and retry_delay is not None
    assert prewarm is not None and timezone is not None
    assert database is not None and backup_days is not None
    assert dag_bundles is not None and bundle_tokens is not None and ui is not None
    assert api_ranges is not None and api_private is not None
    return Settings(
        stack=stack,
        target=target,
        kube_context=kube_context,
        location=location,
        airflow_version=airflow_version,
        kubernetes_version=k8s_version,
        namespace=namespace,
        parallelism=parallelism,
        worker_concurrency=concurrency,
        worker_scaling=worker_scaling,
        worker_min_replicas=min_replicas,
        workers=workers if workers is not None else math.ceil(parallelism / concurrency),
        workers_set=workers is not None,
        max_active_tasks_per_dag=max_tasks,
        max_active_runs_per_dag=max_runs,
        task_queued_timeout_seconds=queued_timeout,
        api_server_replicas=api_replicas,
        worker_memory_per_slot_mib=mem_slot,
        worker_cpu_per_slot_millicores=cpu_slot,
        fanout_tasks=fanout_tasks,
        fanout_sleep_seconds=fanout_sleep,
        longest_task_seconds=longest_task,
        flower=flower,
        pgbouncer=pgbouncer,
        pgbouncer_image=pgbouncer_image,
        pgbouncer_metadata_pool_size=meta_pool,
        pgbouncer_result_backend_pool_size=result_pool,
        postgres_storage_gib=pg_storage,
        rabbitmq_storage_gib=mq_storage,
        postgres_image=pg_image,
        rabbitmq_image=mq_image,
        acr_sku=acr_sku,
        cluster_tier=cluster_tier,
        protect=protect,
        system_pool=system_pool,
        worker_pool=worker_pool,
        airflow_config=overrides,
        remote_task_logs=remote_logs,
        task_log_retention_days=retention,
        task_log_emulator_endpoint=emulator,
        metrics=metrics,
        heartbeat_interval_seconds=heartbeat,
        task_retries=retries,
        task_retry_delay_seconds=retry_delay,
        fanout_schedule=fanout_schedule,
        prewarm_schedules=prewarm,
        prewarm_schedules_set=values.get("prewarmSchedules") is not None,
        schedule_timezone=timezone,
        database=database,
        database_backup_retention_days=backup_days,
        database_backup_schedule=backup_schedule,
        database_high_availability=bool(db_ha),
        database_geo_redundant_backup=bool(db_geo),
        database_sku=db_sku,
        task_egress=task_egress or (),
        dag_bundles=dag_bundles,
        dag_bundle_tokens=bundle_tokens,
        key_vault=bool(key_vault),
        ui=ui,
        api_server_authorized_ip_ranges=api_ranges,
        api_server_private=api_private,
        keys_set=_keys_set(values),
    )
