"""README's "A day of the reference workload" table, recomputed from the plan."""

from __future__ import annotations

import pytest

from components.model import capacity
from tests.conftest import config_for
from tests.readme_tables import table_after


def rows() -> dict[str, list[str]]:
    return table_after("### A day of the reference workload")


def shortest() -> float:
    return capacity.shortest_worker_minutes(task_seconds=100)


CASES = {
    "seed: 6 x Standard_E4s_v3, always on": lambda: (60, capacity.seed_day()),
    "prod: 2 x Standard_D8s_v5 + 0-3 x Standard_E4s_v3": lambda: (
        shortest(), capacity.reference_day(config_for("prod").plan, shortest())),
    "prod, workers never scale down": lambda: (60, capacity.reference_day(config_for("prod").plan, 60)),
    "prod with a 2 x Standard_D4s_v5 system pool (the plan needs 1, one to spare)": lambda: (
        shortest(), capacity.reference_day(
            config_for("prod", systemPool={"vmSize": "Standard_D4s_v5", "count": 2}).plan, shortest())),
}


def test_the_table_has_the_rows_computed() -> None:
    assert set(rows()) == set(CASES)


@pytest.mark.parametrize("label", list(CASES))
def test_each_row_is_what_the_plan_gives(label: str) -> None:
    minutes, day = CASES[label]()
    assert rows()[label] == [f"{minutes:.1f}", f"{day.node_hours:.1f}", f"{day.vcpu_hours:.1f}",
                             f"{day.usd:.2f}"], label


def test_the_seed_day_costs_six_e4s_v3_for_24_hours() -> None:
    assert capacity.seed_day().usd == round(6 * 0.252 * 24, 2), "seed: 6 x Standard_E4s_v3 at 0.252 USD"


def test_a_pools_price_override_reaches_the_day() -> None:
    plan = config_for("prod", systemPool={"vmSize": "Standard_D8s_v5", "count": 2, "pricePerHour": 1},
                      workerPool={"vmSize": "Standard_E4s_v3", "pricePerHour": 1}).plan
    assert capacity.reference_day(plan, 60).usd == 5 * 24, "5 nodes at 1 per hour all day"


def test_the_prod_control_plane_fits_one_d4s_v5() -> None:
    # Its 2 api-server pods request 2 x 425m; everything fits one node's room.
    plan = config_for("prod", systemPool={"vmSize": "Standard_D4s_v5", "count": 2}).plan
    assert plan.control_plane.system_nodes_needed == 1, "prod control plane on Standard_D4s_v5"
