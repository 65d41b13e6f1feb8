"""Pre-warm (issue 23): the reference DAG's schedule, the KEDA cron windows that
bring the workers up before each run, and the HPA's scale-up to the peak."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta
from typing import Any

import pulumi
import pytest

from components.config import build_stack_config, project_values
from components.kubernetes.keda import SCALE_DOWN_WINDOW_SECONDS
from components.model import names, startup
from components.model.airflow_cfg import FANOUT_SCHEDULE_ENV, workload_env
from components.model.prewarm import PREWARM_HOLD_MINUTES
from components.model.schedules import CronWindow, parse_cron, prewarm_windows
from components.model.settings import ConfigError, parse_settings
from tests.conftest import config_for
from tests.harness import ProgramRun, shared_run, stack_file_config
from tests.local_airflow import stack_config
from tests.real_airflow import run_airflow_python
from tests.schemas import SchemaError, validate_manifest

# --- Shifting a schedule -----------------------------------------------------


@pytest.mark.parametrize(("schedule", "lead", "hold", "windows"), [
    # Minute 0 goes to 55 of the previous hour; every hour stays every hour.
    ("0 * * * *", 5, 2, [("55 * * * *", "2 * * * *")]),
    ("@hourly", 5, 2, [("55 * * * *", "2 * * * *")]),
    # Hour 0 goes to 23 of the day before: exact while every day runs.
    ("0 0 * * *", 5, 2, [("55 23 * * *", "2 0 * * *")]),
    ("@daily", 8, 2, [("52 23 * * *", "2 0 * * *")]),
    # The previous hour of each listed or stepped hour.
    ("0 9,17 * * *", 5, 2, [("55 8,16 * * *", "2 9,17 * * *")]),
    ("0 */6 * * *", 5, 2, [("55 5,11,17,23 * * *", "2 0,6,12,18 * * *")]),
    # Minute lists that stay in their hour.
    ("10,40 * * * *", 5, 2, [("5,35 * * * *", "12,42 * * * *")]),
    # Minutes that move to different hours, at every hour: still one window.
    ("0,30 * * * *", 5, 2, [("25,55 * * * *", "2,32 * * * *")]),
    # ... at one hour: 8:55 and 9:25, which one expression cannot say without 8:25 and 9:55.
    ("0,30 9 * * *", 5, 2, [("25 9 * * *", "32 9 * * *"), ("55 8 * * *", "2 9 * * *")]),
    # The end crosses into the next hour.
    ("59 * * * *", 5, 2, [("54 * * * *", "1 * * * *")]),
    ("59 23 * * *", 5, 2, [("54 23 * * *", "1 0 * * *")]),
    # Restricted days, carried over while no time crosses midnight.
    ("30 9 * * 1-5", 5, 2, [("25 9 * * 1-5", "32 9 * * 1-5")]),
    ("0 12 1 jan,jul *", 5, 2, [("55 11 1 jan,jul *", "2 12 1 jan,jul *")]),
    ("*/10 * * * *", 5, 2, [("5,15,25,35,45,55 * * * *", "2,12,22,32,42,52 * * * *")]),
])
def test_a_schedule_shifts_exactly(schedule: str, lead: int, hold: int, windows: list[tuple[str, str]]) -> None:
    got = prewarm_windows(parse_cron(schedule), lead, hold)
    assert sorted((w.start, w.end) for w in got) == sorted(windows), schedule


@pytest.mark.parametrize(("schedule", "lead", "hold", "says"), [
    # Midnight with restricted days: the day field would have to shift too.
    ("0 0 * * 1", 5, 2, "crosses midnight"),
    ("0 0 1 * *", 5, 2, "crosses midnight"),
    ("0 0 * 1 *", 5, 2, "crosses midnight"),
    ("@weekly", 5, 2, "crosses midnight"),
    ("59 23 * * mon", 5, 2, "crosses midnight"),
    # Runs closer together than the window: the workers would never go.
    ("*/5 * * * *", 5, 2, "runs 5 minutes apart"),
    ("0,7 * * * *", 5, 2, "runs 7 minutes apart"),
    ("0 * * * *", 30, 30, "runs 60 minutes apart"),
])
def test_a_schedule_that_cannot_be_shifted_is_refused(schedule: str, lead: int, hold: int, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        prewarm_windows(parse_cron(schedule), lead, hold)


@pytest.mark.parametrize("schedule", ["0 * * *", "0 * * * * *", "60 * * * *", "0 24 * * *", "0 * 0 * *",
                                      "0 * * 13 *", "0 * * * 7", "0 * * * fun", "5-1 * * * *", "*/0 * * * *",
                                      "0 * * * ?", "0 * L * *", "@once", "@continuous", "@hourlyish", "@HOURLY"])
def test_cron_outside_what_airflow_and_keda_both_read_is_refused(schedule: str) -> None:
    with pytest.raises(ValueError):
        parse_cron(schedule)


@functools.cache
def fire_minutes(expression: str) -> list[int]:
    """The minutes of the day a minute-and-hour cron expression fires at, in order."""
    cron = parse_cron(expression)
    return sorted(h * 60 + m for h in cron.hours for m in cron.minutes)


def keda_active(windows: list[CronWindow], at: datetime) -> bool:
    """KEDA's cron scaler, per trigger: active when its next end comes no later
    than its next start (kedacore/keda pkg/scalers/cron_scaler.go,
    GetMetricsAndActivity; both are the first fire strictly after now); the
    ScaledObject is active when any trigger is."""
    def next_fire(expression: str) -> datetime:
        fires = fire_minutes(expression)
        assert fires, f"{expression} never fires"
        t = at.replace(second=0) + timedelta(minutes=1)
        midnight = t.replace(hour=0, minute=0)
        now = t.hour * 60 + t.minute
        return midnight + timedelta(minutes=next((m for m in fires if m >= now), fires[0] + 24 * 60))
    return any(next_fire(w.end) <= next_fire(w.start) for w in windows)


@pytest.mark.parametrize("schedule", ["0 * * * *", "0 0 * * *", "0,30 9 * * *", "15 */4 * * *", "*/10 * * * *"])
def test_kedas_cron_scaler_is_active_from_the_lead_until_the_hold(schedule: str) -> None:
    lead, hold = 5, 2
    cron = parse_cron(schedule)
    windows = list(prewarm_windows(cron, lead, hold))
    day = datetime(2026, 1, 1)
    runs = [day + timedelta(days=d, minutes=m) for d in (0, 1, 2) for m in cron.times_of_day()]
    for minute in range(24 * 60, 2 * 24 * 60):  # the second day: windows reach into the days around it
        at = day + timedelta(minutes=minute)
        expected = any(run - timedelta(minutes=lead) <= at < run + timedelta(minutes=hold) for run in runs)
        assert keda_active(windows, at) == expected, f"{schedule} at {at:%H:%M}"


@pytest.mark.real  # croniter, from ./venv-airflow: the library Airflow reads the schedule with
def test_croniter_fires_the_windows_lead_before_and_hold_after_each_run(tmp_path: Any) -> None:
    schedules = ["0 * * * *", "0 0 * * *", "0,30 9 * * *", "0 */6 * * *", "59 23 * * *", "30 9 * * 1-5",
                 "0 12 1 jan,jul *", "*/10 * * * *", "@daily"]
    lead, hold = 5, 2
    cases = {s: [[w.start, w.end] for w in prewarm_windows(parse_cron(s), lead, hold)] for s in schedules}
    code = f"""
import json
from datetime import datetime, timedelta
from croniter import croniter
cases, lead, hold = json.loads({json.dumps(json.dumps([cases, lead, hold]))})
begin, end = datetime(2026, 1, 1), datetime(2026, 3, 1)
def fires(expression):
    it, out = croniter(expression, begin - timedelta(seconds=1)), []
    while (t := it.get_next(datetime)) < end:
        out.append(t.isoformat())
    return out
out = {{}}
for schedule, windows in cases.items():
    runs = [datetime.fromisoformat(t) for t in fires(schedule)]
    out[schedule] = {{
        "starts": sorted({{t for w in windows for t in fires(w[0])}}),
        "ends": sorted({{t for w in windows for t in fires(w[1])}}),
        "want_starts": sorted({{(r - timedelta(minutes=lead)).isoformat() for r in runs}}),
        "want_ends": sorted({{(r + timedelta(minutes=hold)).isoformat() for r in runs}}),
    }}
print(json.dumps(out))
"""
    done = run_airflow_python(code, home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    begin, end = datetime(2026, 1, 1), datetime(2026, 3, 1)
    # Compare where both sides are complete: a start at t stands for the run at
    # t + lead, an end at t for the run at t - hold, and only runs in
    # [begin, end) were listed.
    starts = (begin.isoformat(), (end - timedelta(minutes=lead)).isoformat())
    ends = ((begin + timedelta(minutes=hold)).isoformat(), end.isoformat())

    def inside(times: list[str], window: tuple[str, str]) -> list[str]:
        return [t for t in times if window[0] <= t < window[1]]

    for schedule, r in result.items():
        assert inside(r["starts"], starts) == inside(r["want_starts"], starts), f"{schedule}: starts"
        assert inside(r["ends"], ends) == inside(r["want_ends"], ends), f"{schedule}: ends"
        assert inside(r["starts"], starts), f"{schedule}: fires in the period"


# --- Settings ------------------------------------------------------------------


def parse(**values: Any) -> Any:
    return parse_settings(values, stack="test", location="westeurope")


def problems_of(**values: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse(**values)
    return dict(err.value.problems)


def test_the_reference_dag_runs_hourly_and_keda_stacks_pre_warm_it() -> None:
    s = parse()
    assert (s.fanout_schedule, s.prewarm_schedules, s.schedule_timezone) == ("0 * * * *", ("0 * * * *",), "UTC")
    assert parse(fanoutSchedule="@daily").prewarm_schedules == ("@daily",)
    assert parse(workerScaling="fixed").prewarm_schedules == (), "fixed workers are always up"


@pytest.mark.parametrize("unset", [None, "", "  "])
def test_an_empty_schedule_means_none(unset: Any) -> None:
    s = parse(fanoutSchedule=unset)
    assert (s.fanout_schedule, s.prewarm_schedules) == (None, ())
    assert workload_env(s)[FANOUT_SCHEDULE_ENV] == ""


def test_prewarm_schedules_take_a_list_or_the_clis_json() -> None:
    assert parse(prewarmSchedules=["0 6 * * *", "30 18 * * 1-5"]).prewarm_schedules == ("0 6 * * *", "30 18 * * 1-5")
    assert parse(prewarmSchedules='["0 6 * * *"]').prewarm_schedules == ("0 6 * * *",)
    assert parse(prewarmSchedules=[]).prewarm_schedules == ()
    assert parse(prewarmSchedules="[]", workerScaling="fixed").prewarm_schedules == ()


def test_bad_schedules_are_refused_naming_the_key() -> None:
    assert "hour field: 25 is outside 0-23" in problems_of(fanoutSchedule="0 25 * * *")["fanoutSchedule"]
    assert "@once is no cron schedule" in problems_of(fanoutSchedule="@once")["fanoutSchedule"]
    assert "five-field cron" in problems_of(fanoutSchedule=5)["fanoutSchedule"]
    assert "has 6 fields" in problems_of(prewarmSchedules=["0 0 * * * *"])["prewarmSchedules"]
    assert "must be a list" in problems_of(prewarmSchedules="0 * * * *")["prewarmSchedules"]
    assert "lists '@hourly' twice" in problems_of(prewarmSchedules=["0 * * * *", "@hourly"])["prewarmSchedules"]


def test_prewarm_is_refused_with_fixed_workers() -> None:
    problem = problems_of(workerScaling="fixed", prewarmSchedules=["0 * * * *"])["prewarmSchedules"]
    assert "only applies with `workerScaling: keda`" in problem


def test_the_schedules_zone_is_airflows_default_timezone() -> None:
    amsterdam = {"core": {"default_timezone": "Europe/Amsterdam"}}
    assert parse(airflowConfig=amsterdam).schedule_timezone == "Europe/Amsterdam"
    assert parse(airflowConfig={"core": {"default_timezone": "utc"}}).schedule_timezone == "UTC"
    problem = problems_of(airflowConfig={"core": {"default_timezone": "system"}})
    assert "IANA name" in problem["airflowConfig.core.default_timezone"]
    # Without pre-warm the zone is Airflow's business alone.
    assert parse(airflowConfig={"core": {"default_timezone": "system"}}, prewarmSchedules=[]).prewarm_schedules == ()


def test_real_tests_trigger_the_reference_dag_by_hand_only() -> None:
    settings = config_for("dev").settings
    assert settings.fanout_schedule == "0 * * * *", "the stack files keep the seed's hourly run"
    built = build_stack_config(project_values(stack_config("dev", parallelism=8)), stack="dev", location="westeurope")
    assert workload_env(built.settings)[FANOUT_SCHEDULE_ENV] == "", "stack_config() unschedules it"
    built = build_stack_config(project_values(stack_config("dev", fanoutSchedule="@daily")), stack="dev",
                               location="westeurope")
    assert workload_env(built.settings)[FANOUT_SCHEDULE_ENV] == "@daily", "unless a test asks"


# --- The program under mocks -----------------------------------------------------


def scaler(run: ProgramRun) -> dict[str, Any]:
    assert run.error is None, run.error
    return run.manifest("ScaledObject", names.WORKER)


def crons(run: ProgramRun) -> list[dict[str, str]]:
    return [t["metadata"] for t in scaler(run)["spec"]["triggers"] if t["type"] == "cron"]


@pytest.mark.parametrize(("stack", "workers"), [("prod", 28), ("dev", 2)])
def test_the_scaled_object_pre_warms_the_reference_dags_hourly_run(stack: str, workers: int) -> None:
    run = shared_run(stack)
    plan = config_for(stack).plan
    assert plan.prewarm is not None
    lead = plan.prewarm.lead_minutes
    assert plan.worker.replicas == workers
    assert crons(run) == [{"timezone": "UTC", "start": f"{60 - lead} * * * *",
                           "end": f"{PREWARM_HOLD_MINUTES} * * * *", "desiredReplicas": str(workers)}]
    env = run.manifest("ConfigMap", "airflow-env")["data"]
    assert env[FANOUT_SCHEDULE_ENV] == "0 * * * *", "the DAG runs on the schedule the workers are warmed for"
    # Still valid for KEDA's CRD, strictly.
    validate_manifest(scaler(run), "1.35.0")


def test_the_scale_up_reaches_the_peak_in_one_period() -> None:
    for stack in ("prod", "dev"):
        spec = scaler(shared_run(stack))["spec"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleUp"] == {"stabilizationWindowSeconds": 0, "policies": [
            {"type": "Pods", "value": spec["maxReplicaCount"], "periodSeconds": 15}]}, stack
        assert behavior["scaleDown"] == {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS, "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]}, f"{stack}: scale-down unchanged"
        # The start-up timeline's HPA step is this policy's: one period.
        [policy] = behavior["scaleUp"]["policies"]
        assert policy["type"] == startup.HPA_ASSUMED_POLICY_TYPE
        assert policy["periodSeconds"] == startup.HPA_SYNC_SECONDS
        assert startup.scale_up_periods(policy["type"], policy["value"], spec["maxReplicaCount"]) == 1
    assert spec["maxReplicaCount"] == 2


def with_keys(stack: str, **changes: Any) -> dict[str, Any]:
    config = stack_file_config(stack)
    config.update({f"airflow-aks:{k}": v for k, v in changes.items()})
    return config


def test_a_stack_without_a_schedule_has_no_cron_trigger() -> None:
    assert crons(shared_run("prod", with_keys("prod", fanoutSchedule=None))) == []
    assert crons(shared_run("prod", with_keys("prod", prewarmSchedules=[]))) == []


def test_listed_schedules_get_their_windows() -> None:
    run = shared_run("prod", with_keys("prod", prewarmSchedules=["0,30 9 * * *", "0 18 * * 1-5"],
                                        airflowConfig={"core": {"default_timezone": "Europe/Amsterdam"}}))
    lead = config_for("prod").plan.prewarm.lead_minutes  # type: ignore[union-attr]
    got = {(c["start"], c["end"]) for c in crons(run)}
    assert got == {(f"{60 - lead} 8 * * *", f"{PREWARM_HOLD_MINUTES} 9 * * *"),
                   (f"{30 - lead} 9 * * *", f"{30 + PREWARM_HOLD_MINUTES} 9 * * *"),
                   (f"{60 - lead} 17 * * 1-5", f"{PREWARM_HOLD_MINUTES} 18 * * 1-5")}
    assert {c["timezone"] for c in crons(run)} == {"Europe/Amsterdam"}
    assert {c["desiredReplicas"] for c in crons(run)} == {"28"}


@pytest.mark.parametrize(("changes", "key", "says"), [
    ({"fanoutSchedule": "every hour"}, "fanoutSchedule", "fields, not 5"),
    ({"workerScaling": "fixed", "prewarmSchedules": ["0 * * * *"]}, "prewarmSchedules", "workerScaling: keda"),
    ({"prewarmSchedules": ["0 0 * * 1"]}, "prewarmSchedules", "crosses midnight"),
    # Derived from fanoutSchedule, the refusal says how to turn it off.
    ({"fanoutSchedule": "@weekly"}, "prewarmSchedules", "set prewarmSchedules: [] to pre-warm nothing"),
])
def test_a_bad_schedule_stops_the_program_before_any_resource(changes: dict[str, Any], key: str, says: str) -> None:
    run = shared_run("prod", with_keys("prod", **changes))
    assert isinstance(run.error, pulumi.RunError), "a clean error, without a traceback"
    assert f"airflow-aks:{key}: " in str(run.error) and says in str(run.error), str(run.error)
    assert run.resources == []


def test_the_schema_check_reads_a_cron_triggers_metadata() -> None:
    so = scaler(shared_run("prod"))
    [cron] = [t for t in so["spec"]["triggers"] if t["type"] == "cron"]
    cron["metadata"]["desiredReplicas"] = 28  # KEDA's CRD: metadata is a map of strings
    with pytest.raises(SchemaError, match="desiredReplicas"):
        validate_manifest(so, "1.35.0")


def test_readme_says_what_prod_pre_warms() -> None:
    from tests.readme_tables import section
    keda = " ".join(section("docs/architecture.md", "## KEDA").split())
    plan = config_for("prod").plan
    p = plan.prewarm
    assert p is not None
    [[window]] = [s.windows for s in p.schedules]
    assert (f"before each run ({p.lead_minutes} minutes for prod, from "
            "[Start-up of a burst](#start-up-of-a-burst)) until "
            f"{p.hold_minutes} minutes after it: prod's is `start: {window.start}`, `end: {window.end}`, "
            f"`desiredReplicas: \"{p.replicas}\"`, `timezone: {p.timezone}`") in keda
    for schedule, says in (("0 * * * *", "starts at"), ("0 0 * * *", "at")):
        [w] = prewarm_windows(parse_cron(schedule), p.lead_minutes, p.hold_minutes)
        assert f"`{schedule}` {says} `{w.start}`" in keda
    split = sorted(prewarm_windows(parse_cron("0,30 9 * * *"), p.lead_minutes, p.hold_minutes),
                   key=lambda w: w.start.split()[1])
    assert f"(`0,30 9 * * *` → `{split[0].start}` and `{split[1].start}`)" in keda
    per_run = plan.peak_extra_usd_per_hour() * p.window_minutes / 60
    assert (f"the peak worker pool for up to {p.window_minutes} minutes per run "
            f"(3 \N{MULTIPLICATION SIGN} Standard_E4s_v3, {per_run:.2f} USD; {per_run * 24:.2f} USD a day for 24 runs)"
            ) in keda
    # The scale-up it replaced: Percent 100 from 1 to the peak.
    doubling = startup.scale_up_periods("Percent", 100, 28)
    assert f"1, 2, 4, 8, 16, 28, {['one', 'two', 'three', 'four', 'five', 'six'][doubling - 1]} periods" in keda
    reference = " ".join(section("docs/configuration.md", "## prewarmSchedules").split())
    assert f"(`prewarm_lead_minutes`, {p.lead_minutes} min for prod)" in reference
    assert f"until {p.hold_minutes} minutes after it" in reference


def test_readme_says_where_a_changed_schedules_window_goes() -> None:
    from tests.readme_tables import table_after
    notes = table_after("## What a config change does", page="docs/operations.md")[
        "`fanoutSchedule` 0 * * * * → 30 6 * * *"][-1]
    p = config_for("prod", fanoutSchedule="30 6 * * *").plan.prewarm
    assert p is not None
    [[w]] = [s.windows for s in p.schedules]
    assert f"(`start: {w.start}`, `end: {w.end}`)" in notes
