"""Pre-warm: the workers brought up before each scheduled run, by a KEDA cron
trigger per schedule (components/kubernetes/keda.py declares them).

KEDA's cron scaler reports `desiredReplicas` while it is active and 0
otherwise, and it is active from a `start` until the next `end` (kedacore/keda
pkg/scalers/cron_scaler.go, GetMetricsAndActivity: active when the next end
comes before the next start). The HPA follows the largest of the triggers'
metrics, so inside the window the workers stay at least at `desiredReplicas`
and the PostgreSQL trigger can only ask for more.

Pure: no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.model.schedules import CronWindow, parse_cron, prewarm_windows
from components.model.settings import ConfigError, Settings

# How long after the scheduled time the cron trigger keeps the workers. On
# time, the run's tasks are queued seconds after it: the scheduler creates the
# run in its next loop and queues a 1,000-wide run in one loop (1.5 s,
# max_tis_per_query 0, components/model/airflow_cfg.py); KEDA's query sees
# them within its 5 s poll and the HPA within its 15 s sync, after which the
# PostgreSQL trigger asks for as many workers as the cron one: under 30 s in
# all, and 2 minutes is four times that. A run later than that still finds the workers for
# the HPA's 120 s scale-down window (keda.py) and their nodes for the cluster
# autoscaler's 10 minutes; only the pods would start again.
PREWARM_HOLD_MINUTES = 2


@dataclass(frozen=True)
class PrewarmSchedule:
    """One schedule and the cron windows (one KEDA trigger each) that cover it."""

    schedule: str
    # Runs a day, when the day fields are all `*` (else it varies by day).
    runs_per_day: int | None
    windows: tuple[CronWindow, ...]


@dataclass(frozen=True)
class PrewarmPlan:
    lead_minutes: int
    hold_minutes: int
    # IANA zone of the schedules (Airflow's [core] default_timezone).
    timezone: str
    # Workers each window brings up: the plan's peak.
    replicas: int
    schedules: tuple[PrewarmSchedule, ...]

    @property
    def window_minutes(self) -> int:
        """Minutes a window keeps the workers at `replicas`, the run or not."""
        return self.lead_minutes + self.hold_minutes


def prewarm_plan(settings: Settings, replicas: int, lead_minutes: int,
                 hold_minutes: int = PREWARM_HOLD_MINUTES) -> PrewarmPlan | None:
    """The windows for every pre-warmed schedule; None without any.
    `lead_minutes` is the start-up timeline's (CapacityPlan.prewarm_lead_minutes,
    components/model/startup.py): the workers from zero to up.
    ConfigError naming prewarmSchedules for a schedule that cannot be shifted."""
    if not settings.prewarm_schedules:
        return None
    problems: list[tuple[str, str]] = []
    schedules = []
    derived = "" if settings.prewarm_schedules_set else (
        " (prewarmSchedules defaults to fanoutSchedule; set prewarmSchedules: [] to pre-warm nothing)")
    for text in settings.prewarm_schedules:
        cron = parse_cron(text)
        try:
            windows = prewarm_windows(cron, lead_minutes, hold_minutes)
        except ValueError as err:
            problems.append(("prewarmSchedules", f"{err}{derived}"))
            continue
        schedules.append(PrewarmSchedule(schedule=cron.text, runs_per_day=cron.runs_per_day(), windows=windows))
    if problems:
        raise ConfigError(problems)
    return PrewarmPlan(lead_minutes=lead_minutes, hold_minutes=hold_minutes, timezone=settings.schedule_timezone,
                       replicas=replicas, schedules=tuple(schedules))
