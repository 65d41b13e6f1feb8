"""Settings -> capacity plan: how many of everything the concurrency needs.

A pure function. Its result is exported as a stack output so that every
``pulumi preview`` shows what a concurrency change will cost, and the
components read their sizes from it and from nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from components.model import database_server as pg

# Re-exported: the drain arithmetic lives in drain.py so that settings can
# refuse what AKS cannot drain for without importing the plan.
from components.model.drain import (  # noqa: F401
    AKS_MAX_DRAIN_MINUTES,
    WORKER_SHUTDOWN_SLACK_SECONDS,
    worker_drain_minutes,
    worker_stop_seconds,
)
from components.model.prewarm import PrewarmPlan, prewarm_plan
from components.model.settings import ConfigError, NodePoolSettings, Settings
from components.model.sizing import (
    API_WORKER_HEADROOM,
    API_WORKER_MEMORY_MIB,
    MEASURED_API_BURST_START_CPU_S,
    MEASURED_API_HEARTBEAT_CPU_S,
    MEASURED_API_WORKER_SATURATION_MILLICORES,
    MEASURED_TASK_START_CPU_S,
    TASK_START_HEADROOM,
    WORKER_BASE_MEMORY_MIB,
)
from components.model.startup import StartupPlan, startup_plan
from components.model.vmsizes import VM_SIZES, Allocatable, allocatable

# AKS upgrades a pool by adding surge nodes, then cordons and drains "as many
# nodes at the same time as the number of buffer nodes specified"
# (learn.microsoft.com/azure/aks/upgrade-aks-node-pools-rolling); its default
# is documented both as 10% and as 1, so the program sets it.
WORKER_MAX_SURGE_NODES = 1


def worker_upgrade_settings(longest_task_seconds: int) -> dict[str, Any]:
    """AgentPoolUpgradeSettings for the worker pool: one surge node, one node
    drained at a time, each for as long as a worker's warm shutdown.

    drainTimeoutInMinutes is per node and counts both the waits on
    PodDisruptionBudgets and the pods' graceful termination ("If this time
    is exceeded, the upgrade fails", AKS REST API 2025-10-01,
    AgentPoolUpgradeSettings).
    """
    return {"max_surge": str(WORKER_MAX_SURGE_NODES),
            "drain_timeout_in_minutes": worker_drain_minutes(longest_task_seconds)}


def worker_disruption_allowance(workers_per_node: int) -> int:
    """Workers the PodDisruptionBudget lets go at once: every worker on the
    nodes AKS drains together. With fewer, a node's workers would stop one
    after another, each after its running tasks, and the node's drain would
    outlast its timeout; all at once, they finish within one grace period."""
    return max(1, workers_per_node * WORKER_MAX_SURGE_NODES)


# --- Worker memory ---------------------------------------------------------
# The measured base and per-slot figures are in components/model/sizing.py; requests
# add REQUEST_HEADROOM. (The threads pool would save the idle children, but
# Airflow's task supervisor installs signal handlers, which only the main
# thread may do: every task failed with it.)
# A task that outgrows its share should not take the whole worker (and every
# other task in it) down at once, so the limit leaves room above the request.
WORKER_MEMORY_LIMIT_FACTOR = 1.25

# --- Worker CPU --------------------------------------------------------------
# A running task that waits (sensors, sleeps, remote jobs) uses close to no CPU
# between heartbeats; the start of a task (forking, and parsing its DAG file) is
# a burst. Requests cover the steady state and no CPU limit is set, so start
# bursts borrow idle CPU on the node instead of being throttled.
WORKER_BASE_CPU_MILLICORES = 100
# Airflow's own [core] dagbag_import_timeout; the plan only ever raises it.
AIRFLOW_DAGBAG_IMPORT_TIMEOUT_SECONDS = 30

# --- Per-node overhead -----------------------------------------------------
# Allowance for the DaemonSets AKS runs on every node (kube-proxy, CNI, CSI
# disk and file drivers, cloud-node-manager); on a default cluster their
# requests come to about this.
NODE_DAEMONSET_CPU_MILLICORES = 350
NODE_DAEMONSET_MEMORY_MIB = 600
NODE_DAEMONSET_PODS = 12

# --- Metadata database -----------------------------------------------------
# Airflow's SQLAlchemy pool per process: [database] sql_alchemy_pool_size (5)
# plus sql_alchemy_max_overflow (10); the program pins both in airflow.cfg.
SQLALCHEMY_POOL_SIZE = 5
SQLALCHEMY_MAX_OVERFLOW = 10
CONNECTIONS_PER_ENGINE = SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW
# With the database result backend every busy pool child keeps a connection
# to store its result: about one per busy slot, plus a couple per worker
# (bench/fanout saw 141 connections with 128 busy slots and every component up).
CONNECTIONS_PER_WORKER_BASE = 2
# The scheduler has its own engine plus the Celery executor's result-backend
# reads.
SCHEDULER_RESULT_BACKEND_CONNECTIONS = 5
SCHEDULER_CONNECTIONS = CONNECTIONS_PER_ENGINE + SCHEDULER_RESULT_BACKEND_CONNECTIONS
MIGRATION_JOB_CONNECTIONS = 2
# KEDA's PostgreSQL scaler: one query every few seconds, straight to
# PostgreSQL (Go's database/sql keeps up to 2 idle connections).
KEDA_CONNECTIONS = 2
# pg_dump without --jobs reads through one connection, straight to
# PostgreSQL, for as long as the dump takes (components/kubernetes/backups.py).
BACKUP_CONNECTIONS = 1
# Rolling updates run old and new pods side by side for a while.
CONNECTION_HEADROOM = 1.10
POSTGRES_SUPERUSER_RESERVED = 3


# --- PgBouncer -------------------------------------------------------------
# In transaction mode PgBouncer lends a server connection for one transaction
# at a time. Metadata clients (the components' SQLAlchemy pools) get a server
# connection each by default: the scheduler nests sessions, and a pool smaller
# than its engine could leave it waiting on itself. The result backend's
# clients (a connection per busy Celery slot) each write one short row per
# task, so they share a much smaller pool.
RESULT_BACKEND_CLIENTS_PER_SERVER_CONNECTION = 32
MIN_RESULT_BACKEND_POOL = 5
# A rolling update of PgBouncer runs the old and the new pod at once, each
# with its full pools.
PGBOUNCER_ROLLING_PODS = 2
PGBOUNCER_ADMIN_CLIENTS = 10


# --- Control plane ---------------------------------------------------------
# Requests for the pods on the system pool. Limits are twice the request:
# enough for bursts (DAG parsing, a wide fan-out being queued) without letting
# one component starve the others.
@dataclass(frozen=True)
class PodResources:
    cpu_request_millicores: int
    memory_request_mib: int

    @property
    def cpu_limit_millicores(self) -> int:
        return self.cpu_request_millicores * 2

    @property
    def memory_limit_mib(self) -> int:
        return self.memory_request_mib * 2


# The api-server's pods are sized from the Execution API's measured cost
# (components/model/sizing.py): enough uvicorn workers ([api] workers) that
# each carries at most half of what saturates it, spread over pods of at most
# this many workers, so a drained or rolled pod takes a small share with it.
API_SERVER_MAX_WORKERS_PER_POD = 2
# Where the tasks' load is smaller, a pod still requests this for the UI and
# the public API (an allowance: the benchmark measured task traffic only).
API_SERVER_MIN_CPU_MILLICORES = 250
# A whole run queued at once reaches warm workers at once, and every task's
# supervisor calls start together. The api-server's CPU limits answer all of
# `parallelism` starts within this, and no uvicorn worker is asked for more
# than it does saturated: the workers' own start of their slots (bench/worker:
# ~29 s for 36 fresh slots) stays the slower side.
API_START_BURST_SECONDS = 20
# [workers] execution_api_timeout: a start queued behind the whole burst must
# be answered before the supervisor gives up on it; past its timeout the SDK
# retries, and each retry is one more start for the api-server to answer (the
# retry storm of bench/controlplane's "1000 burst": 996 of 1,000 failed with
# Airflow's 5 s). Twice the burst, never below Airflow's default.
API_CLIENT_TIMEOUT_HEADROOM = 2.0
AIRFLOW_EXECUTION_API_TIMEOUT_SECONDS = 5
# [scheduler] task_instance_heartbeat_timeout is twice the longest gap a live
# task's heartbeats leave while the api-server keeps to its plan: an
# interval, then a heartbeat queued behind a start burst and answered just
# within the client's timeout.
HEARTBEAT_TIMEOUT_MARGIN = 2
# Never below a minute: a live node that stalls for a few seconds (a
# CPU-starved kubelet, a long GC pause in a supervisor) must not cost its tasks.
HEARTBEAT_TIMEOUT_MIN_SECONDS = 60
# The scheduler looks for tasks past that timeout this often
# ([scheduler] task_instance_heartbeat_timeout_detection_interval, Airflow's 10 s).
HEARTBEAT_DETECTION_INTERVAL_SECONDS = 10

CONTROL_PLANE_REQUESTS: dict[str, PodResources] = {
    "scheduler": PodResources(500, 1024),
    "dag-processor": PodResources(250, 1024),
    "triggerer": PodResources(100, 512),
    "rabbitmq": PodResources(250, 1024),
    "migration": PodResources(250, 512),
    "flower": PodResources(100, 256),
    # Single-threaded; a few KiB per client connection.
    "pgbouncer": PodResources(250, 128),
    # statsd-exporter (Go): an allowance, not measured here (no build of it
    # installs from the registries this project's tests use).
    "statsd": PodResources(50, 128),
}
# The database backup's two steps (components/kubernetes/backups.py): pg_dump,
# then the uploader; tests/test_backups.py measures their peak memory. The
# dump is an init container, so the pod counts the larger of the two, not
# their sum (kubernetes.io/docs/concepts/workloads/pods/init-containers,
# "Resource sharing within containers").
# CPU: a floor of 25m, as both steps mostly wait on PostgreSQL, the disk and
# the network, and run at 01:15 by default when the control plane is quiet;
# pg_dump's compression borrows idle CPU up to its limit. More would not fit:
# prod's control plane leaves 38m of one Standard_D4s_v5 node, which the
# plan's "1 needed" and README's cost table count on.
BACKUP_DUMP_REQUESTS = PodResources(25, 128)
BACKUP_UPLOAD_REQUESTS = PodResources(25, 256)
BACKUP_POD_REQUESTS = PodResources(
    max(BACKUP_DUMP_REQUESTS.cpu_request_millicores, BACKUP_UPLOAD_REQUESTS.cpu_request_millicores),
    max(BACKUP_DUMP_REQUESTS.memory_request_mib, BACKUP_UPLOAD_REQUESTS.memory_request_mib))


def database_backups(settings: Settings) -> bool:
    """Whether the in-cluster database is dumped on a schedule (its CronJob's
    pod and connection count in the plan)."""
    return settings.database == "in-cluster" and settings.database_backup_schedule is not None
# PostgreSQL: a base plus a few MiB per allowed connection (each backend
# process has its own memory), and a quarter of that as shared_buffers.
POSTGRES_BASE_MEMORY_MIB = 512
POSTGRES_MEMORY_PER_CONNECTION_MIB = 4
POSTGRES_BASE_CPU_MILLICORES = 250


@dataclass(frozen=True)
class WorkerPlan:
    replicas: int
    concurrency: int
    task_slots: int
    spare_slots: int
    memory_request_mib: int
    memory_limit_mib: int
    cpu_request_millicores: int


@dataclass(frozen=True)
class NodePoolPlan:
    vm_size: str
    vcpus: int
    memory_gib: int
    allocatable_cpu_millicores: int
    allocatable_memory_mib: int
    max_pods: int
    workers_per_node: int
    nodes_needed: int
    min_count: int
    max_count: int
    # A full node's tasks all starting at once (a burst on fresh workers):
    # how many, and the seconds of the node's CPU their starts take.
    tasks_per_node: int = 0
    start_burst_seconds: float = 0.0

    @property
    def autoscale(self) -> bool:
        return self.min_count != self.max_count


@dataclass(frozen=True)
class PoolFootprint:
    """A node pool between runs (idle) and at the plan's peak."""

    pool: str
    vm_size: str
    vcpus: int
    memory_gib: int
    idle_nodes: int
    peak_nodes: int
    # USD per node-hour: the pool's pricePerHour, else the size's list price.
    price_per_hour: float
    list_price: bool = True

    def cost(self, nodes: float) -> float:
        return nodes * self.price_per_hour


@dataclass(frozen=True)
class PgBouncerPlan:
    """PgBouncer's side: what clients open to it, and what it opens to PostgreSQL."""

    metadata_pool: int
    result_backend_pool: int
    metadata_clients: int
    result_backend_clients: int
    max_client_conn: int

    @property
    def server_connections(self) -> int:
        """Server connections of one PgBouncer pod."""
        return self.metadata_pool + self.result_backend_pool


@dataclass(frozen=True)
class DatabasePlan:
    # Client connections the components open (to PgBouncer when it is on).
    connections: dict[str, int]
    budget: int
    # Connections PostgreSQL itself may see: PgBouncer's pools (during a
    # rolling update, twice) and the migration Job's direct ones; without
    # PgBouncer, the client budget.
    server_connections: int
    max_connections: int
    pgbouncer: PgBouncerPlan | None


@dataclass(frozen=True)
class DatabaseServerPlan:
    """The Azure Database for PostgreSQL flexible server (`database: azure`)."""

    sku: str
    tier: str
    vcores: int
    memory_gib: int
    # The server parameter: the plan's max_connections and Azure's reserve.
    max_connections: int
    # The SKU's default (and advised ceiling) max_connections.
    sku_max_connections: int
    storage_gib: int
    version: str
    backup_retention_days: int
    geo_redundant_backup: bool
    high_availability: bool
    # Server parameters the program sets (Configuration resources).
    parameters: dict[str, str]
    # USD per hour, eastus list prices: compute and storage of the primary,
    # and of the standby with high availability.
    compute_price_per_hour: float
    storage_price_per_hour: float
    # databaseSku named it; else the cheapest SKU that carries the plan.
    sku_set: bool = False

    @property
    def price_per_hour(self) -> float:
        servers = pg.HA_BILLED_SERVERS if self.high_availability else 1
        return servers * (self.compute_price_per_hour + self.storage_price_per_hour)


@dataclass(frozen=True)
class ApiServerPlan:
    """The api-server's pods and uvicorn workers, from the tasks' Execution API load."""

    replicas: int
    workers_per_pod: int
    # [workers] min_heartbeat_interval, and what one running task's
    # heartbeats cost at it, in millicores.
    heartbeat_interval_seconds: int
    millicores_per_running_task: float
    # What `parallelism` running tasks' heartbeats cost it, in millicores.
    heartbeat_millicores: int
    # Uvicorn workers the steady load and the start burst need, each at most
    # 1/API_WORKER_HEADROOM busy in the steady state.
    workers_needed: int
    pod: PodResources
    # Running tasks whose heartbeats take every pod to its CPU limit.
    max_running_tasks: int
    # `parallelism` tasks starting at once, on every pod's CPU limit.
    start_burst_seconds: float
    # [workers] execution_api_timeout and [scheduler] task_instance_heartbeat_timeout.
    client_timeout_seconds: int
    heartbeat_timeout_seconds: int

    @property
    def lost_task_noticed_seconds(self) -> int:
        """At most this long after a task's last heartbeat the scheduler fails it."""
        return self.heartbeat_timeout_seconds + HEARTBEAT_DETECTION_INTERVAL_SECONDS

    @property
    def workers(self) -> int:
        return self.replicas * self.workers_per_pod


@dataclass(frozen=True)
class ControlPlanePlan:
    pods: dict[str, PodResources]
    postgres: PodResources
    postgres_shared_buffers_mib: int
    api_server: ApiServerPlan
    cpu_request_millicores: int
    memory_request_mib: int
    system_nodes: int
    system_vm_size: str
    # The fewest nodes of system_vm_size whose room for pods holds the requests.
    system_nodes_needed: int


@dataclass(frozen=True)
class CapacityPlan:
    parallelism: int
    max_active_tasks_per_dag: int
    max_active_runs_per_dag: int
    default_pool_slots: int
    worker: WorkerPlan
    worker_nodes: NodePoolPlan
    database: DatabasePlan
    control_plane: ControlPlanePlan
    footprint: tuple[PoolFootprint, ...] = ()
    # [core] dagbag_import_timeout: a task process parses its DAG file within
    # this, or is rescheduled; the start burst of a full node must fit.
    dagbag_import_timeout_seconds: int = AIRFLOW_DAGBAG_IMPORT_TIMEOUT_SECONDS
    # The start-up timelines of a burst (components/model/startup.py).
    startup: StartupPlan | None = None
    # KEDA cron windows that bring the workers up before scheduled runs, from
    # prewarm_lead_minutes before each (components/model/prewarm.py).
    prewarm: PrewarmPlan | None = None
    # `database: azure`: the flexible server in place of the PostgreSQL pod.
    database_server: DatabaseServerPlan | None = None

    @property
    def prewarm_lead_minutes(self) -> int:
        """Whole minutes before a scheduled run that bring the workers from
        zero to up and ready: how early a pre-warm trigger fires."""
        assert self.startup is not None, "plan_capacity sets the start-up timelines"
        return self.startup.prewarm_lead_minutes

    def to_output(self) -> dict[str, Any]:
        """The plan as plain data, for the stack output and the render command."""
        out = asdict(self)
        out["worker_nodes"]["autoscale"] = self.worker_nodes.autoscale
        out["startup"] = None if self.startup is None else self.startup.to_output()
        if self.database_server is None:
            # An in-cluster stack's output stays as earlier releases exported it.
            del out["database_server"]
        else:
            out["database_server"]["price_per_hour"] = round(self.database_server.price_per_hour, 4)
        return out

    def summary(self) -> str:
        """A few lines a reviewer can read in a preview."""
        w, n, d = self.worker, self.worker_nodes, self.database
        count = f"{n.min_count}-{n.max_count} (autoscaler)" if n.autoscale else str(n.min_count)
        return "\n".join([
            f"parallelism {self.parallelism}: {w.replicas} workers x {w.concurrency} = "
            f"{w.task_slots} task slots ({w.spare_slots} spare)",
            f"worker pod: {w.memory_request_mib} MiB memory request ({w.memory_limit_mib} MiB limit), "
            f"{w.cpu_request_millicores}m CPU request",
            f"worker nodes: {count} x {n.vm_size} ({n.workers_per_node} workers per node, "
            f"{n.nodes_needed} needed)",
            f"task start: {n.tasks_per_node} tasks starting at once on a full node take about "
            f"{n.start_burst_seconds:.0f} s of its CPU; dagbag_import_timeout {self.dagbag_import_timeout_seconds} s",
            (f"metadata database: {d.budget} client connections to PgBouncer, at most "
             f"{d.server_connections} server connections, max_connections {d.max_connections}"
             if d.pgbouncer else
             f"metadata database: budget {d.budget} connections, max_connections {d.max_connections}"),
            *self.database_server_lines(),
            self.api_server_line(),
            f"control plane: {self.control_plane.memory_request_mib} MiB, "
            f"{self.control_plane.cpu_request_millicores}m CPU requested on "
            f"{self.control_plane.system_nodes} x {self.control_plane.system_vm_size} "
            f"({self.control_plane.system_nodes_needed} needed)",
            f"default_pool: {self.default_pool_slots} slots",
            *self.footprint_lines(),
            *self.prewarm_lines(),
            *(self.startup.lines() if self.startup else []),
        ])

    def api_server_line(self) -> str:
        a = self.control_plane.api_server
        pods = f"{a.replicas} pod{'s' if a.replicas > 1 else ''}"
        workers = f"{a.workers_per_pod} uvicorn worker{'s' if a.workers_per_pod > 1 else ''}"
        return (f"api-server: {pods} x {workers}, {a.pod.cpu_request_millicores}m "
                f"CPU ({a.pod.cpu_limit_millicores}m limit) and {a.pod.memory_request_mib} MiB each; "
                f"{self.parallelism} running tasks' heartbeats (every {a.heartbeat_interval_seconds} s) about "
                f"{a.heartbeat_millicores}m, saturating the limits at about {a.max_running_tasks}; "
                f"{self.parallelism} starts at once answered within about {a.start_burst_seconds:.0f} s "
                f"(execution_api_timeout {a.client_timeout_seconds} s); a lost task failed within "
                f"{a.lost_task_noticed_seconds} s of its last heartbeat")

    def database_server_lines(self) -> list[str]:
        s = self.database_server
        if s is None:
            return []
        tier = "Burstable" if s.tier == pg.BURSTABLE else "General Purpose"
        chosen = "databaseSku" if s.sku_set else "the cheapest that carries the plan"
        ha = ("zone-redundant HA (a standby billed like the primary)" if s.high_availability
              else "no HA standby")
        backup = "geo-redundant" if s.geo_redundant_backup else "locally redundant"
        return [
            f"database server: Azure Database for PostgreSQL {s.version}, {s.sku} ({tier}, {s.vcores} vCores, "
            f"{s.memory_gib} GiB; {chosen}), max_connections {s.max_connections} (the SKU's "
            f"{s.sku_max_connections}), {s.storage_gib} GiB storage with auto-grow",
            f"  backups {s.backup_retention_days} days, {backup}; {ha}; {s.price_per_hour:.2f} USD per hour "
            f"(eastus list prices: compute {s.compute_price_per_hour:.3f}, storage "
            f"{s.storage_price_per_hour:.3f}{' per server' if s.high_availability else ''})",
        ]

    def footprint_lines(self) -> list[str]:
        """Nodes, vCPU, GiB and the hourly cost between runs and at the peak
        (with `database: azure`, the flexible server's price added)."""
        listed = [f.list_price for f in self.footprint]
        source = (" (eastus list prices)" if all(listed) else
                  " (eastus list price where pricePerHour is unset)" if any(listed) else "")
        lines = []
        for label, nodes in (("idle", "idle_nodes"), ("peak", "peak_nodes")):
            parts = [f"{getattr(f, nodes)} x {f.vm_size}" for f in self.footprint]
            vcpus = sum(getattr(f, nodes) * f.vcpus for f in self.footprint)
            gib = sum(getattr(f, nodes) * f.memory_gib for f in self.footprint)
            usd = sum(f.cost(getattr(f, nodes)) for f in self.footprint)
            cost = f"{usd:.2f} USD per hour"
            if self.database_server is not None:
                server = self.database_server.price_per_hour
                cost = f"{usd:.2f} + database server {server:.2f} = {usd + server:.2f} USD per hour"
            lines.append(f"{label}: {' + '.join(parts)} = {vcpus} vCPU, {gib} GiB, {cost}{source}")
        return lines

    def peak_extra_usd_per_hour(self) -> float:
        """What the pools cost an hour at their peak beyond their idle size."""
        return sum(f.cost(f.peak_nodes - f.idle_nodes) for f in self.footprint)

    def prewarm_lines(self) -> list[str]:
        """Per pre-warmed schedule: the window, and what it costs if no run
        needed the pool in it (a run inside it would have)."""
        p = self.prewarm
        if p is None:
            return []
        lines = []
        per_run = self.peak_extra_usd_per_hour() * p.window_minutes / 60
        for s in p.schedules:
            windows = "; ".join(f"{w.start} to {w.end}" for w in s.windows)
            per_day = f"; {s.runs_per_day} runs a day, {per_run * s.runs_per_day:.2f} USD per day" \
                if s.runs_per_day else ""
            lines += [f"pre-warm `{s.schedule}` ({p.timezone}): {p.replicas} workers from {p.lead_minutes} min "
                      f"before each run to {p.hold_minutes} min after (KEDA cron {windows})",
                      f"  up to {p.window_minutes} min of the peak worker pool per run, {per_run:.2f} USD{per_day}"]
        return lines


def _worker_plan(settings: Settings) -> WorkerPlan:
    c = settings.worker_concurrency
    memory = WORKER_BASE_MEMORY_MIB + c * settings.worker_memory_per_slot_mib
    slots = settings.workers * c
    return WorkerPlan(
        replicas=settings.workers,
        concurrency=c,
        task_slots=slots,
        spare_slots=slots - settings.parallelism,
        memory_request_mib=memory,
        memory_limit_mib=math.ceil(memory * WORKER_MEMORY_LIMIT_FACTOR),
        cpu_request_millicores=WORKER_BASE_CPU_MILLICORES + c * settings.worker_cpu_per_slot_millicores,
    )


def _fit(alloc: Allocatable, max_pods: int, worker: WorkerPlan) -> int:
    cpu = alloc.cpu_millicores - NODE_DAEMONSET_CPU_MILLICORES
    mem = alloc.memory_mib - NODE_DAEMONSET_MEMORY_MIB
    return max(0, min(cpu // worker.cpu_request_millicores,
                      mem // worker.memory_request_mib,
                      max_pods - NODE_DAEMONSET_PODS))


def node_cores(alloc: Allocatable) -> float:
    """The cores a worker node leaves for pods."""
    return (alloc.cpu_millicores - NODE_DAEMONSET_CPU_MILLICORES) / 1000


def _task_start(alloc: Allocatable, per_node: int, worker: WorkerPlan) -> tuple[int, float, int]:
    """Tasks per full node, the seconds their starts take on its CPU, and the
    DAG import timeout that leaves them room (never below Airflow's own)."""
    tasks = min(per_node, worker.replicas) * worker.concurrency
    cores = node_cores(alloc)
    seconds = tasks * MEASURED_TASK_START_CPU_S / cores
    timeout = max(AIRFLOW_DAGBAG_IMPORT_TIMEOUT_SECONDS, math.ceil(seconds * TASK_START_HEADROOM / 10) * 10)
    return tasks, round(seconds, 1), timeout


def _pgbouncer_plan(settings: Settings, connections: dict[str, int],
                   problems: list[tuple[str, str]]) -> PgBouncerPlan:
    result_clients = connections["workers"] + SCHEDULER_RESULT_BACKEND_CONNECTIONS
    direct = connections["migration"] + connections.get("keda", 0) + connections.get("database-backup", 0)
    metadata_clients = sum(connections.values()) - result_clients - direct
    metadata_pool = settings.pgbouncer_metadata_pool_size or metadata_clients
    result_pool = settings.pgbouncer_result_backend_pool_size or max(
        MIN_RESULT_BACKEND_POOL, math.ceil(result_clients / RESULT_BACKEND_CLIENTS_PER_SERVER_CONNECTION))
    if metadata_pool < CONNECTIONS_PER_ENGINE:
        problems.append(("pgbouncerMetadataPoolSize", (
            f"{metadata_pool} server connections are fewer than the scheduler alone may hold at once "
            f"(its SQLAlchemy pool: {SQLALCHEMY_POOL_SIZE} + {SQLALCHEMY_MAX_OVERFLOW} overflow); "
            f"set at least {CONNECTIONS_PER_ENGINE}, or remove it to use {metadata_clients}")))
    clients = metadata_clients + result_clients
    return PgBouncerPlan(
        metadata_pool=metadata_pool,
        result_backend_pool=result_pool,
        metadata_clients=metadata_clients,
        result_backend_clients=result_clients,
        max_client_conn=math.ceil(clients * CONNECTION_HEADROOM) + PGBOUNCER_ADMIN_CLIENTS,
    )


def _api_server_plan(settings: Settings) -> ApiServerPlan:
    interval = settings.heartbeat_interval_seconds
    per_task = MEASURED_API_HEARTBEAT_CPU_S * 1000 / interval
    load = settings.parallelism * per_task
    # Every start at once, answered within API_START_BURST_SECONDS: that many
    # millicores across the pods' limits, and workers enough to use them.
    burst = settings.parallelism * MEASURED_API_BURST_START_CPU_S * 1000 / API_START_BURST_SECONDS
    needed = max(1, math.ceil(load * API_WORKER_HEADROOM / MEASURED_API_WORKER_SATURATION_MILLICORES),
                 math.ceil(burst / MEASURED_API_WORKER_SATURATION_MILLICORES))
    replicas = settings.api_server_replicas or (
        1 if needed == 1 else max(2, math.ceil(needed / API_SERVER_MAX_WORKERS_PER_POD)))
    per_pod = math.ceil(needed / replicas)
    # The request is the pod's share of the steady load; its limit (twice the
    # request) is the headroom that keeps heartbeats answered in time and
    # carries the pod's share of the start burst.
    pod = PodResources(max(API_SERVER_MIN_CPU_MILLICORES, math.ceil(load / replicas),
                           math.ceil(burst / replicas / 2)),
                       per_pod * API_WORKER_MEMORY_MIB)
    limits = replicas * pod.cpu_limit_millicores
    usable = min(limits, replicas * per_pod * MEASURED_API_WORKER_SATURATION_MILLICORES)
    burst_seconds = settings.parallelism * MEASURED_API_BURST_START_CPU_S * 1000 / usable
    client_timeout = max(AIRFLOW_EXECUTION_API_TIMEOUT_SECONDS,
                         math.ceil(burst_seconds * API_CLIENT_TIMEOUT_HEADROOM))
    gap = interval + client_timeout
    heartbeat_timeout = max(HEARTBEAT_TIMEOUT_MIN_SECONDS, math.ceil(gap * HEARTBEAT_TIMEOUT_MARGIN / 10) * 10)
    return ApiServerPlan(
        replicas=replicas,
        workers_per_pod=per_pod,
        heartbeat_interval_seconds=interval,
        millicores_per_running_task=round(per_task, 3),
        heartbeat_millicores=math.ceil(load),
        workers_needed=needed,
        pod=pod,
        max_running_tasks=int(limits / per_task),
        start_burst_seconds=round(burst_seconds, 1),
        client_timeout_seconds=client_timeout,
        heartbeat_timeout_seconds=heartbeat_timeout,
    )


def _database_plan(settings: Settings, worker: WorkerPlan, api: ApiServerPlan,
                   problems: list[tuple[str, str]]) -> DatabasePlan:
    connections = {
        "workers": worker.replicas * (worker.concurrency + CONNECTIONS_PER_WORKER_BASE),
        "scheduler": SCHEDULER_CONNECTIONS,
        # Every uvicorn worker is a process with its own SQLAlchemy pool.
        "api-server": api.workers * CONNECTIONS_PER_ENGINE,
        "dag-processor": CONNECTIONS_PER_ENGINE,
        "triggerer": CONNECTIONS_PER_ENGINE,
        "migration": MIGRATION_JOB_CONNECTIONS,
        **({"keda": KEDA_CONNECTIONS} if settings.worker_scaling == "keda" else {}),
        **({"database-backup": BACKUP_CONNECTIONS} if database_backups(settings) else {}),
    }
    budget = sum(connections.values())
    bouncer = _pgbouncer_plan(settings, connections, problems) if settings.pgbouncer else None
    if bouncer is None:
        server = budget
        needed = math.ceil(budget * CONNECTION_HEADROOM) + POSTGRES_SUPERUSER_RESERVED
    else:
        server = (PGBOUNCER_ROLLING_PODS * bouncer.server_connections + connections["migration"]
                  + connections.get("keda", 0) + connections.get("database-backup", 0))
        needed = server + POSTGRES_SUPERUSER_RESERVED
    return DatabasePlan(
        connections=connections,
        budget=budget,
        server_connections=server,
        max_connections=math.ceil(needed / 10) * 10,
        pgbouncer=bouncer,
    )


def _system_pods(settings: Settings, api: ApiServerPlan,
                 database: DatabasePlan) -> tuple[dict[str, PodResources], PodResources,
                                                  list[tuple[str, PodResources, int]]]:
    """The system pool's pods (and replicas), PostgreSQL's sized from the plan's max_connections."""
    pods = {"api-server": api.pod, **CONTROL_PLANE_REQUESTS}
    if not settings.flower:
        del pods["flower"]
    if not settings.pgbouncer:
        del pods["pgbouncer"]
    if not settings.metrics:
        del pods["statsd"]
    if database_backups(settings):
        pods["database-backup"] = BACKUP_POD_REQUESTS
    pg_memory = POSTGRES_BASE_MEMORY_MIB + POSTGRES_MEMORY_PER_CONNECTION_MIB * database.max_connections
    postgres = PodResources(POSTGRES_BASE_CPU_MILLICORES + database.max_connections // 4, pg_memory)
    replicas = {"api-server": api.replicas}
    every = [(name, res, replicas.get(name, 1)) for name, res in pods.items()]
    if settings.database == "in-cluster":
        # With `database: azure` the flexible server takes the pod's place,
        # sized from the same figures (_database_server_plan).
        every.append(("postgres", postgres, 1))
    return pods, postgres, every


def _system_room(pool: NodePoolSettings) -> tuple[int, int]:
    """CPU (millicores) and memory (MiB) one system node leaves for pods."""
    alloc = allocatable(pool.size, pool.max_pods)
    return alloc.cpu_millicores - NODE_DAEMONSET_CPU_MILLICORES, alloc.memory_mib - NODE_DAEMONSET_MEMORY_MIB


def _oversized_system_pod(settings: Settings, every: list[tuple[str, PodResources, int]]
                          ) -> tuple[str, PodResources] | None:
    """The largest system pod (by memory), if no system node holds it."""
    node_cpu, node_mem = _system_room(settings.system_pool)
    name, res, _ = max(every, key=lambda item: item[1].memory_request_mib)
    if res.memory_request_mib > node_mem or res.cpu_request_millicores > node_cpu:
        return name, res
    return None


def _control_plane(settings: Settings, api: ApiServerPlan, database: DatabasePlan,
                   problems: list[tuple[str, str]]) -> ControlPlanePlan:
    pods, postgres, every = _system_pods(settings, api, database)
    cpu = sum(r.cpu_request_millicores * n for _, r, n in every)
    memory = sum(r.memory_request_mib * n for _, r, n in every)

    pool = settings.system_pool
    node_cpu, node_mem = _system_room(pool)
    count = pool.min_count or 1
    needed = max(1, math.ceil(cpu / node_cpu), math.ceil(memory / node_mem))
    oversized = _oversized_system_pod(settings, every)
    if oversized is not None:
        problems.append(_oversized_system_pod_problem(settings, *oversized))
    elif cpu > count * node_cpu or memory > count * node_mem:
        problems.append(("systemPool.count", (
            f"the control plane requests {memory} MiB and {cpu}m CPU; {count} x {pool.vm_size} leave "
            f"{count * node_mem} MiB and {count * node_cpu}m for pods; set systemPool.count to {needed}, "
            "or choose a larger systemPool.vmSize")))
    return ControlPlanePlan(
        pods=pods,
        postgres=postgres,
        postgres_shared_buffers_mib=postgres.memory_request_mib // 4,
        api_server=api,
        cpu_request_millicores=cpu,
        memory_request_mib=memory,
        system_nodes=count,
        system_vm_size=pool.vm_size,
        system_nodes_needed=needed,
    )


# --- Fixes a refusal names ---------------------------------------------------
# Where a plan cannot fit, the message gives the number to set. Each is found
# by search over the plan's own functions, so no formula is written twice.

def _largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """The largest value in lo..hi that fits (fits holds up to some value
    and not beyond); None if not even lo does."""
    if hi < lo or not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cheapest_size(fits: Callable[[str], bool]) -> str | None:
    """The known VM size with the lowest list price that fits."""
    for size in sorted(VM_SIZES.values(), key=lambda v: (v.list_price_per_hour, v.name)):
        if fits(size.name):
            return size.name
    return None


def _with_parallelism(settings: Settings, parallelism: int) -> Settings:
    """The stack at another parallelism, with what the settings derive from it."""
    workers = settings.workers if settings.workers_set else math.ceil(parallelism / settings.worker_concurrency)
    return replace(settings, parallelism=parallelism, workers=workers)


def _system_pods_fit(settings: Settings) -> bool:
    worker = _worker_plan(settings)
    api = _api_server_plan(settings)
    database = _database_plan(settings, worker, api, [])
    return _oversized_system_pod(settings, _system_pods(settings, api, database)[2]) is None


def _oversized_system_pod_problem(settings: Settings, name: str, res: PodResources) -> tuple[str, str]:
    """A system pod larger than a system node: the largest parallelism that
    fits (where the stack set parallelism and lowering it helps), and the
    cheapest system node size that holds the pod."""
    pool = settings.system_pool
    node_cpu, node_mem = _system_room(pool)
    what = (f"{name} requests {res.memory_request_mib} MiB and {res.cpu_request_millicores}m CPU, more than a "
            f"{pool.vm_size} node leaves for pods ({node_mem} MiB, {node_cpu}m)")
    size = _cheapest_size(lambda v: _system_pods_fit(replace(settings, system_pool=replace(pool, vm_size=v))))
    larger = f"a systemPool.vmSize such as {size}" if size else "a larger systemPool.vmSize"
    most = None
    if "parallelism" in settings.keys_set:
        most = _largest(1, settings.parallelism - 1, lambda p: _system_pods_fit(_with_parallelism(settings, p)))
    if most is not None:
        return ("parallelism", f"{what}, as {name} is sized from parallelism; set parallelism to at most "
                               f"{most}, or choose {larger}")
    return ("systemPool.vmSize", f"{what}; choose {larger}")


def _worker_fits(settings: Settings) -> bool:
    pool = settings.worker_pool
    return _fit(allocatable(pool.size, pool.max_pods), pool.max_pods, _worker_plan(settings)) > 0


# The keys a worker's size comes from, in the order a refusal names them.
WORKER_SIZE_KEYS = ("workerMemoryPerSlotMiB", "workerCpuPerSlotMillicores", "workerConcurrency",
                    "workerPool.vmSize")


def _worker_too_large(settings: Settings, worker: WorkerPlan, alloc: Allocatable) -> tuple[str, str]:
    """One worker larger than a worker node: named under the key the stack
    set that the node lacks (memory or CPU per slot, else the concurrency,
    else the VM size), with the number each of them would need."""
    pool = settings.worker_pool
    node_cpu = alloc.cpu_millicores - NODE_DAEMONSET_CPU_MILLICORES
    node_mem = alloc.memory_mib - NODE_DAEMONSET_MEMORY_MIB
    c, mem, cpu = worker.concurrency, settings.worker_memory_per_slot_mib, settings.worker_cpu_per_slot_millicores
    what = (f"one worker with {c} slots requests {worker.memory_request_mib} MiB and "
            f"{worker.cpu_request_millicores}m CPU, more than a {pool.vm_size} node leaves for pods "
            f"({node_mem} MiB, {node_cpu}m)")
    fixes: dict[str, str] = {}
    if worker.memory_request_mib > node_mem:
        most = _largest(1, mem - 1, lambda v: _worker_fits(replace(settings, worker_memory_per_slot_mib=v)))
        if most is not None:
            fixes["workerMemoryPerSlotMiB"] = f"workerMemoryPerSlotMiB to at most {most} (at workerConcurrency {c})"
    if worker.cpu_request_millicores > node_cpu:
        most = _largest(1, cpu - 1, lambda v: _worker_fits(replace(settings, worker_cpu_per_slot_millicores=v)))
        if most is not None:
            fixes["workerCpuPerSlotMillicores"] = (f"workerCpuPerSlotMillicores to at most {most} "
                                                   f"(at workerConcurrency {c})")
    most = _largest(1, c - 1, lambda v: _worker_fits(replace(settings, worker_concurrency=v)))
    if most is not None:
        fixes["workerConcurrency"] = (f"workerConcurrency to at most {most} (at {mem} MiB and {cpu}m per slot; "
                                      "workers follow)")
    size = _cheapest_size(lambda v: _worker_fits(replace(settings, worker_pool=replace(pool, vm_size=v))))
    if size is not None:
        fixes["workerPool.vmSize"] = f"workerPool.vmSize to one that holds it, such as {size}"
    if not fixes:
        return "workerConcurrency", f"{what}; no worker size this program knows fits a node"
    named = [k for k in WORKER_SIZE_KEYS if k in settings.keys_set and k in fixes]
    key = named[0] if named else next(k for k in WORKER_SIZE_KEYS if k in fixes)
    ordered = [fixes[key]] + [fixes[k] for k in WORKER_SIZE_KEYS if k in fixes and k != key]
    return key, f"{what}; set " + ", or ".join(ordered)


def _database_server_plan(settings: Settings, database: DatabasePlan, control: ControlPlanePlan,
                          problems: list[tuple[str, str]]) -> DatabaseServerPlan | None:
    """The flexible server for the plan's database: the connections, memory
    and CPU the in-cluster PostgreSQL pod would get (its limits: what it may
    use at a burst, which a Burstable server must sustain on its baseline)."""
    connections = pg.needed_max_connections(database.max_connections)
    memory = control.postgres.memory_limit_mib
    cpu = control.postgres.cpu_limit_millicores
    ha = settings.database_high_availability
    version = pg.postgres_major(settings.postgres_image) or pg.DEFAULT_POSTGRES_VERSION
    if version not in pg.AZURE_POSTGRES_VERSIONS:
        problems.append(("postgresImage", (
            f"with `database: azure` the server runs the image's PostgreSQL major, {version}, which Azure "
            f"Database for PostgreSQL does not offer; use one of {', '.join(pg.AZURE_POSTGRES_VERSIONS)}")))
    if settings.database_sku is not None:
        sku = pg.SERVER_SKUS[settings.database_sku]
        short = pg.sku_shortfalls(sku, connections, 0, 0, ha)
        if short:
            key = "databaseSku" if sku.max_connections < connections else "databaseHighAvailability"
            problems.append((key, f"{sku.name} cannot carry this stack: {'; '.join(short)}"))
            return None
    else:
        found = pg.cheapest_sku(connections, memory, cpu, ha)
        if found is None:
            problems.append(("parallelism", (
                f"no flexible server size this program knows carries {connections} connections, "
                f"{memory} MiB and {cpu}m CPU; lower parallelism or set databaseSku")))
            return None
        sku = found
    storage = pg.storage_gib(settings.postgres_storage_gib)
    return DatabaseServerPlan(
        sku=sku.name,
        tier=sku.tier,
        vcores=sku.vcores,
        memory_gib=sku.memory_gib,
        max_connections=connections,
        sku_max_connections=sku.max_connections,
        storage_gib=storage,
        version=version,
        backup_retention_days=settings.database_backup_retention_days,
        geo_redundant_backup=settings.database_geo_redundant_backup,
        high_availability=ha,
        parameters=server_parameters(connections),
        compute_price_per_hour=sku.price_per_hour,
        storage_price_per_hour=round(pg.storage_price_per_hour(storage), 4),
        sku_set=settings.database_sku is not None,
    )


def server_parameters(max_connections: int) -> dict[str, str]:
    """The flexible server's parameters the program sets.

    max_connections from the plan, as the in-cluster server gets it (its
    `-c max_connections`); it is static, applied at the server's next
    restart, and until then the SKU's default, never lower, holds (the SKU
    is chosen so). require_secure_transport on: the server refuses every
    connection without TLS (its default is on; set so it stays on).
    shared_buffers is left to Azure, which sizes it from the SKU's memory,
    at least the memory the in-cluster pod would have had.
    """
    return {"max_connections": str(max_connections), "require_secure_transport": "on"}


def plan_capacity(settings: Settings) -> CapacityPlan:
    """Derive worker, node and database sizes; ConfigError if they cannot fit."""
    problems: list[tuple[str, str]] = []
    # Settings parsing refused every size the table lacks unless the pool
    # gave its figures, so each pool's size resolves.
    worker = _worker_plan(settings)
    pool = settings.worker_pool
    size = pool.size
    alloc = allocatable(size, pool.max_pods)
    per_node = _fit(alloc, pool.max_pods, worker)
    if per_node == 0:
        raise ConfigError([_worker_too_large(settings, worker, alloc)])
    needed = math.ceil(worker.replicas / per_node)
    # Under KEDA the workers come and go with the tasks, so by default the
    # cluster autoscaler runs the pool from 0 to the nodes the peak needs.
    keda = settings.worker_scaling == "keda"
    min_count = pool.min_count if pool.min_count is not None else (0 if keda else needed)
    max_count = pool.max_count if pool.max_count is not None else needed
    if pool.max_count is not None:
        if max_count < needed:
            key = "workerPool.count" if pool.fixed else "workerPool.maxCount"
            problems.append((
                key,
                f"{max_count} x {pool.vm_size} hold {max_count * per_node} workers "
                f"({per_node} per node) but the plan has {worker.replicas}; "
                f"set it to at least {needed}",
            ))
    if min_count > max_count:
        problems.append(("workerPool.minCount", f"must not exceed the {max_count} nodes the plan needs at peak "
                                                f"(or set maxCount), got {min_count}"))
    api = _api_server_plan(settings)
    database = _database_plan(settings, worker, api, problems)
    control_plane = _control_plane(settings, api, database, problems)
    server = (_database_server_plan(settings, database, control_plane, problems)
              if settings.database == "azure" else None)
    if problems:
        raise ConfigError(problems)
    tasks_per_node, start_seconds, import_timeout = _task_start(alloc, per_node, worker)

    plan = CapacityPlan(
        parallelism=settings.parallelism,
        max_active_tasks_per_dag=settings.max_active_tasks_per_dag,
        max_active_runs_per_dag=settings.max_active_runs_per_dag,
        default_pool_slots=settings.parallelism,
        worker=worker,
        worker_nodes=NodePoolPlan(
            vm_size=size.name,
            vcpus=size.vcpus,
            memory_gib=size.memory_gib,
            allocatable_cpu_millicores=alloc.cpu_millicores,
            allocatable_memory_mib=alloc.memory_mib,
            max_pods=pool.max_pods,
            workers_per_node=per_node,
            nodes_needed=needed,
            min_count=min_count,
            max_count=max_count,
            tasks_per_node=tasks_per_node,
            start_burst_seconds=start_seconds,
        ),
        database=database,
        control_plane=control_plane,
        footprint=_footprint(settings, min_count, max_count),
        dagbag_import_timeout_seconds=import_timeout,
        database_server=server,
    )
    plan = replace(plan, startup=startup_plan(settings, plan, node_cores(alloc)))
    return replace(plan, prewarm=prewarm_plan(settings, worker.replicas, plan.prewarm_lead_minutes))


def _footprint(settings: Settings, worker_min: int, worker_max: int) -> tuple[PoolFootprint, ...]:
    system, workers = settings.system_pool, settings.worker_pool
    system_nodes = system.min_count or 1
    return tuple(
        PoolFootprint(pool=name, vm_size=p.vm_size, vcpus=p.size.vcpus,
                      memory_gib=p.size.memory_gib, idle_nodes=idle, peak_nodes=peak,
                      price_per_hour=(p.size.list_price_per_hour
                                      if p.price_per_hour is None else p.price_per_hour),
                      list_price=p.price_per_hour is None)
        for name, p, idle, peak in (("systemPool", system, system_nodes, system_nodes),
                                     ("workerPool", workers, worker_min, worker_max))
    )


# --- A day of the reference workload ---------------------------------------
# The seed article's cluster: 6 x Standard_E4s_v3, always on.
SEED_NODES = 6
SEED_VM_SIZE = "Standard_E4s_v3"
# What keeps a worker node up after its last task ends: KEDA's cooldown before
# the last worker goes (components/kubernetes/keda.py, 300 s) and the cluster
# autoscaler's scale-down-unneeded-time, 10 minutes by AKS's default profile.
WORKER_NODE_TAIL_MINUTES = 5 + 10


@dataclass(frozen=True)
class DailyFootprint:
    node_hours: float
    vcpu_hours: float
    usd: float


def seed_day() -> DailyFootprint:
    """The seed's always-on cluster for 24 hours, at the size's list price."""
    size = VM_SIZES[SEED_VM_SIZE]
    return DailyFootprint(SEED_NODES * 24.0, SEED_NODES * size.vcpus * 24.0,
                          round(SEED_NODES * size.list_price_per_hour * 24, 2))


def reference_day(plan: CapacityPlan, worker_minutes_per_hour: float) -> DailyFootprint:
    """24 hourly runs with the worker pool at its peak for `worker_minutes_per_hour`
    each hour and at its idle size the rest, the system pool always on."""
    busy = min(60.0, worker_minutes_per_hour) / 60
    node_hours = vcpu_hours = usd = 0.0
    for f in plan.footprint:
        nodes = f.idle_nodes + (f.peak_nodes - f.idle_nodes) * busy
        node_hours += nodes * 24
        vcpu_hours += nodes * f.vcpus * 24
        usd += f.cost(nodes * 24)
    if plan.database_server is not None:
        usd += plan.database_server.price_per_hour * 24
    return DailyFootprint(round(node_hours, 1), round(vcpu_hours, 1), round(usd, 2))


def shortest_worker_minutes(task_seconds: int) -> float:
    """The least a worker node can be up per run: the tasks themselves, then the waits."""
    return task_seconds / 60 + WORKER_NODE_TAIL_MINUTES


def run_worker_minutes(plan: CapacityPlan, task_seconds: int) -> float:
    """Minutes the worker pool is at its peak per run of the reference DAG.

    Without pre-warm, the shortest: the tasks, then the waits (a cold start's
    own minutes are not counted). Pre-warmed (the plan's window taken to be
    the reference DAG's schedule), the pool is up from the window's start,
    `lead_minutes` before the run, until the later of the tasks' end and the
    window's, then the same waits: the lead is counted in full, although
    the nodes come up during it.
    """
    p = plan.prewarm
    if p is None:
        return shortest_worker_minutes(task_seconds)
    return p.lead_minutes + max(task_seconds / 60, p.hold_minutes) + WORKER_NODE_TAIL_MINUTES
