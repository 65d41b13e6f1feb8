"""The start-up timeline of a burst: from the moment the run's tasks are queued
until every slot of a full worker node runs them.

Three cases:

- from zero: the worker pool and the workers are at 0 when the run is queued
  (KEDA's scale to zero between hourly runs);
- pre-warmed: the workers came up before the schedule, so their pool children
  have never run a task;
- warm: workers that have just run tasks.

Each step is in sequence and at its worst (a poll or a sync waits a whole
period), so the totals are what a run should plan for, not the mean. A step is
measured here (components/model/sizing.py names the bench runs), documented
(an upstream figure with its source, not measured here), or follows from the
configuration (a polling interval). Pure: no Pulumi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.model.sizing import (
    MEASURED_FIRST_TASK_FRESH_S,
    MEASURED_FIRST_TASK_WARM_S,
    MEASURED_QUEUE_SECONDS_PER_1000,
    MEASURED_SLOT_START_FRESH_CORE_S,
    MEASURED_SLOT_START_WARM_CORE_S,
    MEASURED_WORKER_START_S,
    STARTUP_RUN,
)

if TYPE_CHECKING:
    from components.model.capacity import CapacityPlan
    from components.model.settings import Settings

MEASURED = "measured"
DOCUMENTED = "documented, not measured here"
CONFIGURED = "configured"

# How often KEDA runs the ScaledObject's query: its pollingInterval
# (components/kubernetes/keda.py; tests/test_startup.py checks they agree).
# When the query first returns more than 0, KEDA's own scale loop sets the
# replicas from 0 to 1 (kedacore/keda, pkg/scaling/executor/scale_scaledobjects.go,
# RequestScale); the HPA it created takes over from 1.
KEDA_POLLING_SECONDS = 5
# The HPA controller's sync period: kube-controller-manager's
# --horizontal-pod-autoscaler-sync-period, 15 s by default
# (https://kubernetes.io/docs/reference/command-line-tools-reference/kube-controller-manager/);
# AKS does not change it.
HPA_SYNC_SECONDS = 15
# The scale-up policy the timeline assumes: `Pods` = the plan's workers per
# period, so one sync takes 1 to the peak (issue 23). Percent 100 (the policy
# before) doubles per period: scale_up_periods counts either.
HPA_ASSUMED_POLICY_TYPE = "Pods"
# The cluster autoscaler looks for pods it cannot schedule every scan-interval:
# 10 s in AKS's default autoscaler profile
# (https://learn.microsoft.com/azure/aks/cluster-autoscaler-overview; the
# program does not set autoScalerProfile).
CLUSTER_AUTOSCALER_SCAN_SECONDS = 10
# A new VM Ready as a Kubernetes node, once the cluster autoscaler asks for it.
# Not measured here. Reports on AKS: about 5 minutes for a node added to a pool
# (https://github.com/Azure/AKS/issues/1898, which also saw 15 minutes for a
# pool's first node), 3 to 7 minutes of node autoscaling before a pod starts
# (https://github.com/ANZAzureDevs/New-Breakpoint/pull/37, an AKS Q&A);
# upstream, "measured in minutes" and up to the cloud provider
# (https://github.com/kubernetes/autoscaler/issues/1675). The timeline takes 5.
NODE_PROVISION_SECONDS = 300
# Pulling the Airflow image onto a new node. Not measured here. The official
# image is about 1.1 GB (apache/airflow docs, "Building the image": regular
# ~1.1 GB against ~500 MB slim, https://github.com/apache/airflow/pull/23391),
# and this project's adds the DAGs' requirements. AKS's own docs put the pull
# of images up to 10 GB at "minutes" without artifact streaming
# (https://learn.microsoft.com/azure/aks/artifact-streaming); a 2 GB pull has
# been reported at 15 minutes on a 2-vCPU node (https://github.com/Azure/acr/issues/252).
# The timeline takes 2 minutes for a 1-2 GB image on a fresh node.
IMAGE_PULL_SECONDS = 120


@dataclass(frozen=True)
class Step:
    label: str
    seconds: float
    # MEASURED, DOCUMENTED or CONFIGURED, and where the figure comes from.
    source: str
    reference: str


@dataclass(frozen=True)
class Timeline:
    name: str
    steps: tuple[Step, ...]

    @property
    def seconds(self) -> float:
        return round(sum(s.seconds for s in self.steps), 1)

    def until(self, label: str) -> float:
        """Seconds from the first step to the end of the step `label`."""
        total = 0.0
        for step in self.steps:
            total += step.seconds
            if step.label == label:
                return round(total, 1)
        raise KeyError(label)

    def line(self) -> str:
        """`name total: step seconds, ...`, documented steps starred."""
        parts = [f"{s.label}{'*' if s.source == DOCUMENTED else ''} {_seconds(s.seconds)}" for s in self.steps]
        return f"{self.name} {_seconds(self.seconds)} s: " + ", ".join(parts)


@dataclass(frozen=True)
class StartupPlan:
    from_zero: Timeline
    prewarmed: Timeline
    warm: Timeline
    # Whole minutes before a scheduled run that bring workers from zero to up
    # and ready (their process started, Celery consuming): the from-zero
    # timeline without the run's own steps (queueing, task starts).
    prewarm_lead_minutes: int
    # A full node's tasks, starting at once.
    tasks_per_node: int

    def to_output(self) -> dict[str, Any]:
        return {
            "prewarm_lead_minutes": self.prewarm_lead_minutes,
            "tasks_per_node": self.tasks_per_node,
            **{t.name: {"seconds": t.seconds,
                        "steps": [{"label": s.label, "seconds": s.seconds, "source": s.source,
                                   "reference": s.reference} for s in t.steps]}
               for t in (self.from_zero, self.prewarmed, self.warm)},
        }

    def lines(self) -> list[str]:
        return [
            f"start-up of a burst, {self.tasks_per_node} tasks on a full worker node "
            "(seconds; * documented, not measured here):",
            *(f"  {t.line()}" for t in (self.from_zero, self.prewarmed, self.warm)),
            f"  pre-warm lead {self.prewarm_lead_minutes} min: the workers from zero to up",
        ]


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def scale_up_periods(policy_type: str, value: int, peak: int, start: int = 1) -> int:
    """HPA periods from `start` replicas to `peak` under one scale-up policy:
    `Pods` adds `value` per period, `Percent` multiplies by 1 + value/100
    (kubernetes, pkg/controller/podautoscaler/horizontal.go,
    calculateScaleUpLimitWithScalingRules)."""
    if peak <= start:
        return 0
    periods, replicas = 0, start
    while replicas < peak:
        replicas = replicas + value if policy_type == "Pods" else math.ceil(replicas * (1 + value / 100))
        periods += 1
    return periods


def queue_seconds(tasks: int) -> float:
    """The scheduler queueing `tasks` task instances (max_tis_per_query 0)."""
    return round(tasks * MEASURED_QUEUE_SECONDS_PER_1000 / 1000, 1)


def slots_seconds(tasks: int, cores: float, core_s_per_task: float) -> float:
    """`tasks` starting at once on `cores`, as capacity.py's task start does."""
    return round(tasks * core_s_per_task / cores, 1)


def worker_start_seconds(tasks: int, cores: float) -> tuple[float, float]:
    """A fresh worker's start with its tasks already queued, and a warm
    worker's start of the same tasks: the figures the real-Airflow test
    compares (tests/test_real_airflow.py)."""
    fresh = (MEASURED_WORKER_START_S + MEASURED_FIRST_TASK_FRESH_S
             + slots_seconds(tasks, cores, MEASURED_SLOT_START_FRESH_CORE_S))
    warm = MEASURED_FIRST_TASK_WARM_S + slots_seconds(tasks, cores, MEASURED_SLOT_START_WARM_CORE_S)
    return round(fresh, 1), round(warm, 1)


def startup_plan(settings: Settings, plan: CapacityPlan, node_cores: float) -> StartupPlan:
    """The three timelines for a config: `node_cores` is what a worker node
    leaves for pods (capacity.py's _task_start), `plan` the workers and nodes."""
    n = plan.worker_nodes
    tasks = n.tasks_per_node or plan.worker.concurrency
    run = STARTUP_RUN
    queue = Step(f"queue {settings.parallelism} tasks", queue_seconds(settings.parallelism), MEASURED,
                 "README airflow.cfg: a 1,000-wide run queued in 1.5 s with max_tis_per_query 0")
    periods = scale_up_periods(HPA_ASSUMED_POLICY_TYPE, plan.worker.replicas, plan.worker.replicas)
    from_zero = Timeline("from zero", (
        queue,
        Step("KEDA 0 -> 1", KEDA_POLLING_SECONDS, CONFIGURED, "ScaledObject pollingInterval"),
        Step(f"HPA 1 -> {plan.worker.replicas}", periods * HPA_SYNC_SECONDS, CONFIGURED,
             f"{periods} HPA sync period(s) of {HPA_SYNC_SECONDS} s, {HPA_ASSUMED_POLICY_TYPE} scale-up policy"),
        Step("autoscaler scan", CLUSTER_AUTOSCALER_SCAN_SECONDS, CONFIGURED, "AKS autoscaler profile scan-interval"),
        Step("node Ready", NODE_PROVISION_SECONDS, DOCUMENTED, "https://github.com/Azure/AKS/issues/1898"),
        Step("image pull", IMAGE_PULL_SECONDS, DOCUMENTED, "https://learn.microsoft.com/azure/aks/artifact-streaming"),
        Step("worker up", MEASURED_WORKER_START_S, MEASURED, f"bench/worker {run!r}: worker_start_s"),
        Step("first task", MEASURED_FIRST_TASK_FRESH_S, MEASURED, f"bench/worker {run!r}: fresh run"),
        Step(f"all {tasks} running", slots_seconds(tasks, node_cores, MEASURED_SLOT_START_FRESH_CORE_S),
             MEASURED, f"bench/worker {run!r}: fresh run, scaled to {node_cores:.2f} cores"),
    ))
    prewarmed = Timeline("pre-warmed", (
        queue,
        Step("first task", MEASURED_FIRST_TASK_FRESH_S, MEASURED, f"bench/worker {run!r}: fresh run"),
        Step(f"all {tasks} running", slots_seconds(tasks, node_cores, MEASURED_SLOT_START_FRESH_CORE_S),
             MEASURED, f"bench/worker {run!r}: fresh run, scaled to {node_cores:.2f} cores"),
    ))
    warm = Timeline("warm", (
        queue,
        Step("first task", MEASURED_FIRST_TASK_WARM_S, MEASURED, f"bench/worker {run!r}: warm run"),
        Step(f"all {tasks} running", slots_seconds(tasks, node_cores, MEASURED_SLOT_START_WARM_CORE_S),
             MEASURED, f"bench/worker {run!r}: warm run, scaled to {node_cores:.2f} cores"),
    ))
    # The pre-warm trigger fires with no task queued: its lead is the
    # from-zero timeline from KEDA's poll until the worker is up.
    up = from_zero.until("worker up") - queue.seconds
    return StartupPlan(from_zero=from_zero, prewarmed=prewarmed, warm=warm,
                       prewarm_lead_minutes=math.ceil(up / 60), tasks_per_node=tasks)
