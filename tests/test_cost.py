"""The cost table of docs/operations.md (a day of the reference workload), recomputed from the plan."""

from __future__ import annotations

import pytest

from components.model import capacity
from tests.conftest import config_for
from tests.readme_tables import doc, table_after

PAGE = "docs/operations.md"


def rows() -> dict[str, list[str]]:
    return table_after("## Cost", page=PAGE)


# The reference DAG's tasks: 100 s each (fanoutSleepSeconds).
TASK_SECONDS = 100


def day(plan: capacity.CapacityPlan) -> tuple[float, capacity.DailyFootprint]:
    """Worker minutes per hourly run, and the day they make, for a plan."""
    minutes = capacity.run_worker_minutes(plan, TASK_SECONDS)
    return minutes, capacity.reference_day(plan, minutes)


CASES = {
    "hand-built: 6 x Standard_E4s_v3, always on": lambda: (60, capacity.seed_day()),
    "prod: 2 x Standard_D8s_v5 + 0-3 x Standard_E4s_v3, workers pre-warmed": lambda: day(config_for("prod").plan),
    "prod without pre-warm (`prewarmSchedules: []`), start-up not counted": lambda: day(
        config_for("prod", prewarmSchedules=[]).plan),
    "prod, workers never scale down": lambda: (60, capacity.reference_day(config_for("prod").plan, 60)),
    "prod with a 2 x Standard_D4s_v5 system pool (the plan needs 1, one to spare)": lambda: day(
        config_for("prod", systemPool={"vmSize": "Standard_D4s_v5", "count": 2}).plan),
}


def test_the_table_has_the_rows_computed() -> None:
    assert set(rows()) == set(CASES)


@pytest.mark.parametrize("label", list(CASES))
def test_each_row_is_what_the_plan_gives(label: str) -> None:
    minutes, day = CASES[label]()
    assert rows()[label] == [f"{minutes:.1f}", f"{day.node_hours:.1f}", f"{day.vcpu_hours:.1f}",
                             f"{day.usd:.2f}"], label


def test_prod_pre_warms_the_hourly_run_and_pays_for_the_lead() -> None:
    plan = config_for("prod").plan
    assert plan.prewarm is not None and plan.prewarm.schedules[0].schedule == "0 * * * *"
    lead, hold = plan.prewarm.lead_minutes, plan.prewarm.hold_minutes
    without = config_for("prod", prewarmSchedules=[]).plan
    assert without.prewarm is None
    # Tasks longer than the hold: the window adds its lead.
    assert capacity.run_worker_minutes(plan, 600) == capacity.run_worker_minutes(without, 600) + lead
    # The reference DAG's 100 s tasks end before the hold does: the pool stays for it.
    assert TASK_SECONDS / 60 < hold
    assert capacity.run_worker_minutes(plan, TASK_SECONDS) == lead + hold + capacity.WORKER_NODE_TAIL_MINUTES


def test_the_summary_prices_the_window_at_the_worker_pools_peak() -> None:
    plan = config_for("prod").plan
    assert plan.prewarm is not None
    worker_pool = next(f for f in plan.footprint if f.pool == "workerPool")
    per_run = (worker_pool.peak_nodes - worker_pool.idle_nodes) * worker_pool.price_per_hour \
        * plan.prewarm.window_minutes / 60
    assert worker_pool.peak_nodes - worker_pool.idle_nodes == 3
    assert f"per run, {per_run:.2f} USD; 24 runs a day, {per_run * 24:.2f} USD per day" in plan.summary()


def test_the_seed_day_costs_six_e4s_v3_for_24_hours() -> None:
    assert capacity.seed_day().usd == round(6 * 0.252 * 24, 2), "seed: 6 x Standard_E4s_v3 at 0.252 USD"


def test_a_pools_price_override_reaches_the_day() -> None:
    plan = config_for("prod", systemPool={"vmSize": "Standard_D8s_v5", "count": 2, "pricePerHour": 1},
                      workerPool={"vmSize": "Standard_E4s_v3", "pricePerHour": 1}).plan
    assert capacity.reference_day(plan, 60).usd == 5 * 24, "5 nodes at 1 per hour all day"


def test_the_prod_control_plane_fits_one_d4s_v5() -> None:
    # Its 2 api-server pods request 2 x 750m; everything fits one node's room.
    plan = config_for("prod", systemPool={"vmSize": "Standard_D4s_v5", "count": 2}).plan
    assert plan.control_plane.system_nodes_needed == 1, "prod control plane on Standard_D4s_v5"


def test_the_paragraph_after_the_table_is_the_tables() -> None:
    prod, without, d4 = (CASES[label]()[1] for label in (
        "prod: 2 x Standard_D8s_v5 + 0-3 x Standard_E4s_v3, workers pre-warmed",
        "prod without pre-warm (`prewarmSchedules: []`), start-up not counted",
        "prod with a 2 x Standard_D4s_v5 system pool (the plan needs 1, one to spare)"))
    seed = capacity.seed_day()
    text = " ".join(doc(PAGE).split("The system pool dominates.", 1)[1].split("\n\n", 1)[0].split())
    assert f"from {prod.vcpu_hours:.0f} to {d4.vcpu_hours:.0f} a day" in text
    assert f"at {d4.usd:.2f} USD a day it costs {d4.usd / seed.usd:.0%}".replace("%", " %") in text
    assert f"against {prod.usd / seed.usd:.0%}".replace("%", " %") in text
    assert f"Pre-warm adds {prod.usd - without.usd:.2f} USD a day" in text
