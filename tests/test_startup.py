"""The start-up timeline of a burst (components/model/startup.py): its figures
come from the bench results, the declared KEDA objects and the config."""

from __future__ import annotations

import json
import math

from components.model import sizing, startup
from components.model.capacity import node_cores
from components.model.vmsizes import VM_SIZES, allocatable
from tests.conftest import config_for
from tests.harness import ROOT, ProgramRun
from tests.readme_tables import doc, table_after

PAGE = "docs/architecture.md"

STORED = json.loads((ROOT / "bench/results/worker.json").read_text())["runs"]


def test_the_measured_figures_are_the_stored_runs() -> None:
    stored = STORED[sizing.STARTUP_RUN]
    fresh, warm = stored["runs"]["fresh"], stored["runs"]["warm"]
    tasks = stored["tasks"]
    cores = stored["machine"]["cpus"]
    assert sizing.MEASURED_WORKER_START_S == stored["worker_start_s"]
    for run, first, slot in ((fresh, sizing.MEASURED_FIRST_TASK_FRESH_S, sizing.MEASURED_SLOT_START_FRESH_CORE_S),
                             (warm, sizing.MEASURED_FIRST_TASK_WARM_S, sizing.MEASURED_SLOT_START_WARM_CORE_S)):
        assert run["states"] == {"success": tasks}
        assert first == round(run["queued_to_first_running_s"], 1)
        assert slot == round(run["first_to_last_running_s"] * cores / (tasks - 1), 3)


def test_keda_polls_as_often_as_the_timeline_says(runs: dict[str, ProgramRun]) -> None:
    scaled = runs["prod"].manifest("ScaledObject", "airflow-worker")["spec"]
    assert scaled["pollingInterval"] == startup.KEDA_POLLING_SECONDS


def test_scale_up_periods_follow_the_policy() -> None:
    # Percent 100 doubles: 1, 2, 4, 8, 16, 32 -> 5 periods to 28 workers.
    assert startup.scale_up_periods("Percent", 100, 28) == 5
    assert startup.scale_up_periods("Pods", 28, 28) == 1
    assert startup.scale_up_periods("Pods", 4, 28) == 7
    assert startup.scale_up_periods("Pods", 28, 1) == 0


def test_prods_timelines_add_up() -> None:
    plan = config_for("prod").plan
    s = plan.startup
    assert s is not None
    assert s.tasks_per_node == plan.worker_nodes.tasks_per_node == 360
    cores = node_cores(allocatable(VM_SIZES["Standard_E4s_v3"], plan.worker_nodes.max_pods))
    fresh = round(360 * sizing.MEASURED_SLOT_START_FRESH_CORE_S / cores, 1)
    warm = round(360 * sizing.MEASURED_SLOT_START_WARM_CORE_S / cores, 1)
    queue = 1000 * sizing.MEASURED_QUEUE_SECONDS_PER_1000 / 1000
    steps = {step.label: step.seconds for step in s.from_zero.steps}
    assert steps == {
        "queue 1000 tasks": queue, "KEDA 0 -> 1": 5, "HPA 1 -> 28": 15, "autoscaler scan": 10,
        "node Ready": startup.NODE_PROVISION_SECONDS, "image pull": startup.IMAGE_PULL_SECONDS,
        "worker up": sizing.MEASURED_WORKER_START_S, "first task": sizing.MEASURED_FIRST_TASK_FRESH_S,
        "all 360 running": fresh}
    assert s.from_zero.seconds == round(sum(steps.values()), 1)
    assert [(st.label, st.seconds) for st in s.prewarmed.steps] == [
        ("queue 1000 tasks", queue), ("first task", sizing.MEASURED_FIRST_TASK_FRESH_S), ("all 360 running", fresh)]
    assert [(st.label, st.seconds) for st in s.warm.steps] == [
        ("queue 1000 tasks", queue), ("first task", sizing.MEASURED_FIRST_TASK_WARM_S), ("all 360 running", warm)]
    up = sum(v for k, v in steps.items() if k not in ("queue 1000 tasks", "first task", "all 360 running"))
    assert plan.prewarm_lead_minutes == s.prewarm_lead_minutes == math.ceil(up / 60)
    documented = {st.label for st in s.from_zero.steps if st.source == startup.DOCUMENTED}
    assert documented == {"node Ready", "image pull"}
    assert all(st.reference.startswith("https://") for st in s.from_zero.steps if st.label in documented)


def test_the_slots_step_follows_the_config() -> None:
    seen = set()
    for changes in ({}, {"workerPool": {"vmSize": "Standard_E8s_v3"}}, {"workerConcurrency": 18},
                    {"parallelism": 100, "workerPool": {"vmSize": "Standard_D2s_v5"}}):
        plan = config_for("prod", **changes).plan
        assert plan.startup is not None
        cores = node_cores(allocatable(VM_SIZES[plan.worker_nodes.vm_size], plan.worker_nodes.max_pods))
        tasks = plan.worker_nodes.tasks_per_node
        fresh, warm = plan.startup.prewarmed.steps[-1], plan.startup.warm.steps[-1]
        assert fresh.label == warm.label == f"all {tasks} running"
        assert fresh.seconds == round(tasks * sizing.MEASURED_SLOT_START_FRESH_CORE_S / cores, 1), changes
        assert warm.seconds == round(tasks * sizing.MEASURED_SLOT_START_WARM_CORE_S / cores, 1), changes
        assert plan.startup.from_zero.steps[-1] == fresh
        seen.add(fresh.seconds)
    assert len(seen) == 4, "each config its own figure"


def test_the_plan_output_carries_the_timelines() -> None:
    out = config_for("prod").plan.to_output()
    assert out["startup"]["prewarm_lead_minutes"] == config_for("prod").plan.prewarm_lead_minutes
    assert [s["label"] for s in out["startup"]["warm"]["steps"]] == ["queue 1000 tasks", "first task",
                                                                     "all 360 running"]
    json.dumps(out)


def test_readme_shows_prods_timeline() -> None:
    s = config_for("prod").plan.startup
    assert s is not None
    rows = table_after("## Start-up of a burst", page=PAGE)
    expected = {}
    for timeline in (s.from_zero, s.prewarmed, s.warm):
        for step in timeline.steps:
            expected.setdefault(step.label, {})[timeline.name] = step.seconds
    for label, cells in rows.items():
        if label == "total":
            assert cells[:3] == [f"{t.seconds:g} s" for t in (s.from_zero, s.prewarmed, s.warm)]
            continue
        by_name = expected.pop(label)
        shown = [by_name.get(t.name) for t in (s.from_zero, s.prewarmed, s.warm)]
        assert cells[:3] == ["" if v is None else f"{v:g} s" for v in shown], label
    assert not expected, f"{PAGE} leaves out {sorted(expected)}"
    lead = f"pre-warm lead: **{s.prewarm_lead_minutes} minutes**"
    assert lead in doc(PAGE), f"{PAGE} names the plan's pre-warm lead"
