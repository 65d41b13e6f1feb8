"""The VM size table (components/model/vm_sizes.json), and sizes outside it.

Issue 26: a real size of each family a user would pick for AKS renders a
plan; a size the table lacks is used with the user's own figures, or refused
with the instruction to give them.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from components.model import vmsizes
from components.model.settings import ConfigError
from components.model.vmsizes import VM_SIZES, allocatable, kube_reserved_cpu_millicores
from tests.conftest import config_for

# family -> (name pattern, vCPU counts the family offers from 2 to 96,
# GiB per vCPU, USD per vCPU-hour in eastus).
FAMILIES: dict[str, tuple[str, tuple[int, ...], int, float]] = {
    "Dsv3": (r"Standard_D\d+s_v3", (2, 4, 8, 16, 32, 48, 64), 4, 0.048),
    "Dsv5": (r"Standard_D\d+s_v5", (2, 4, 8, 16, 32, 48, 64, 96), 4, 0.048),
    "Dasv5": (r"Standard_D\d+as_v5", (2, 4, 8, 16, 32, 48, 64, 96), 4, 0.043),
    "Ddsv5": (r"Standard_D\d+ds_v5", (2, 4, 8, 16, 32, 48, 64, 96), 4, 0.0565),
    "Dsv6": (r"Standard_D\d+s_v6", (2, 4, 8, 16, 32, 48, 64, 96), 4, 0.0504),
    "Dasv6": (r"Standard_D\d+as_v6", (2, 4, 8, 16, 32, 48, 64, 96), 4, 0.0454),
    "Esv3": (r"Standard_E\d+s_v3", (2, 4, 8, 16, 20, 32, 48, 64), 8, 0.063),
    "Esv5": (r"Standard_E\d+s_v5", (2, 4, 8, 16, 20, 32, 48, 64, 96), 8, 0.063),
    "Easv5": (r"Standard_E\d+as_v5", (2, 4, 8, 16, 20, 32, 48, 64, 96), 8, 0.0565),
    "Fsv2": (r"Standard_F\d+s_v2", (2, 4, 8, 16, 32, 48, 64, 72), 2, 0.0423),
}
# The largest E sizes have less memory than 8 GiB per vCPU (Microsoft's size
# pages); E64s_v3's list price is below its family's rate accordingly.
MEMORY_EXCEPTIONS = {"Standard_E64s_v3": 432, "Standard_E96s_v5": 672, "Standard_E96as_v5": 672}
PRICE_EXCEPTIONS = {"Standard_E64s_v3": 3.629}


def problems_of_prod(**changes: object) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        config_for("prod", **changes)
    return err.value.problems


def family_sizes(family: str) -> list[vmsizes.VmSize]:
    pattern = re.compile(FAMILIES[family][0] + "$")
    return [s for s in VM_SIZES.values() if pattern.match(s.name)]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_table_holds_every_size_of_the_family_from_2_to_96_vcpu(family: str) -> None:
    _, counts, _, _ = FAMILIES[family]
    assert sorted(s.vcpus for s in family_sizes(family)) == list(counts), f"{family}: vCPU counts in the table"


@pytest.mark.parametrize("family", FAMILIES)
def test_memory_follows_the_familys_gib_per_vcpu(family: str) -> None:
    per_vcpu = FAMILIES[family][2]
    for size in family_sizes(family):
        expected = MEMORY_EXCEPTIONS.get(size.name, size.vcpus * per_vcpu)
        assert size.memory_gib == expected, f"{size.name}: {size.memory_gib} GiB for {size.vcpus} vCPU"


@pytest.mark.parametrize("family", FAMILIES)
def test_list_prices_follow_the_familys_price_per_vcpu(family: str) -> None:
    rate = FAMILIES[family][3]
    for size in family_sizes(family):
        expected = PRICE_EXCEPTIONS.get(size.name, size.vcpus * rate)
        # Azure rounds each size's price to 3 or 4 significant decimals.
        assert size.list_price_per_hour == pytest.approx(expected, rel=1e-3, abs=1e-3), \
            f"{size.name}: {size.list_price_per_hour} USD per hour for {size.vcpus} vCPU"


def test_every_size_is_one_aks_can_use_with_a_list_price() -> None:
    families = [re.compile(p + "$") for p, *_ in FAMILIES.values()]
    burstable = {"Standard_B2s", "Standard_B2ms", "Standard_B4ms"}
    for size in VM_SIZES.values():
        assert size.name in burstable or any(f.match(size.name) for f in families), f"{size.name}: no family"
        assert size.vcpus >= vmsizes.MIN_VCPUS and size.memory_gib >= vmsizes.MIN_MEMORY_GIB, size.name
        assert size.list_price_per_hour > 0, f"{size.name}: no list price"
    assert vmsizes.CATALOGUE_INFO["region"] == "eastus", "the plan's text says 'eastus list prices'"


# One real size of each family as prod's worker pool (36-slot workers of
# 2917 MiB): 8 vCPU, the smallest that holds several of them in each family.
REAL_SIZES = ["Standard_D8s_v5", "Standard_D8as_v5", "Standard_D8ds_v5", "Standard_D8s_v6",
              "Standard_D8as_v6", "Standard_E8s_v5", "Standard_E8as_v5", "Standard_E8s_v3", "Standard_F8s_v2"]


@pytest.mark.parametrize("name", REAL_SIZES)
def test_a_real_size_of_each_family_renders_a_plan_on_prod(name: str) -> None:
    cfg = config_for("prod", workerPool={"vmSize": name})
    nodes, size = cfg.plan.worker_nodes, VM_SIZES[name]
    assert (nodes.vm_size, nodes.vcpus, nodes.memory_gib) == (name, size.vcpus, size.memory_gib), name
    assert nodes.workers_per_node >= 1 and nodes.nodes_needed * nodes.workers_per_node >= 28, name
    workers = cfg.plan.footprint[1]
    assert workers.price_per_hour == size.list_price_per_hour and workers.list_price, f"{name}: list price"
    assert cfg.airflow_cfg, f"{name}: airflow.cfg rendered"
    assert {"systemPool", "workerPool"} == {f.pool for f in cfg.plan.footprint}


def test_the_issues_sizes_work() -> None:
    d4as = config_for("prod", workerPool={"vmSize": "Standard_D4as_v5"}).plan
    assert (d4as.worker_nodes.vcpus, d4as.worker_nodes.memory_gib) == (4, 16)
    assert d4as.footprint[1].price_per_hour == pytest.approx(0.172)
    e8as = config_for("prod", systemPool={"vmSize": "Standard_E8as_v5", "count": 2}).plan
    assert e8as.control_plane.system_vm_size == "Standard_E8as_v5"
    assert e8as.footprint[0].price_per_hour == pytest.approx(0.452), "8 x 0.0565, the Linux rate"


def test_every_listed_size_renders_a_plan_as_devs_worker_pool() -> None:
    # dev's 16-slot workers (1477 MiB) fit on the smallest size (4 GiB).
    for name, size in VM_SIZES.items():
        nodes = config_for("dev", workerPool={"vmSize": name}).plan.worker_nodes
        assert (nodes.vcpus, nodes.memory_gib) == (size.vcpus, size.memory_gib), name


def test_an_unlisted_size_without_figures_is_refused_with_the_instruction() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": "Standard_E8ds_v5"})
    problems = dict(err.value.problems)
    assert list(problems) == ["workerPool.vmSize"]
    message = problems["workerPool.vmSize"]
    assert message.startswith(f"'Standard_E8ds_v5' is not in the program's table of {len(VM_SIZES)} sizes ("), \
        message
    assert "components/model/vm_sizes.json" in message, "names the table"
    # One letter from a listed size: the likelier typo is offered first.
    assert ("did you mean 'Standard_E8s_v5'? To use 'Standard_E8ds_v5' itself, set workerPool.vcpus, "
            "workerPool.memoryGiB and workerPool.pricePerHour (") in message, message
    far = dict(problems_of_prod(workerPool={"vmSize": "Standard_NC4as_T4_v3"}))["workerPool.vmSize"]
    assert "did you mean" not in far, far
    assert "; set workerPool.vcpus, workerPool.memoryGiB and workerPool.pricePerHour to use it (" in far, far
    # The system pool gets the same, under its own key.
    with pytest.raises(ConfigError) as err:
        config_for("prod", systemPool={"vmSize": "Standard_E8ds_v5", "count": 2})
    assert "set systemPool.vcpus, systemPool.memoryGiB and systemPool.pricePerHour" in \
        dict(err.value.problems)["systemPool.vmSize"]


def test_an_unlisted_size_asks_only_for_the_figures_not_given() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": "Standard_E8ds_v5", "vcpus": 8, "pricePerHour": 0.576})
    message = dict(err.value.problems)["workerPool.vmSize"]
    assert "set workerPool.memoryGiB (" in message, "only the missing figure: " + message


def test_an_unlisted_size_with_the_users_figures_renders_a_plan_at_the_users_price() -> None:
    cfg = config_for("prod", workerPool={"vmSize": "Standard_E8ds_v5", "vcpus": 8, "memoryGiB": 64,
                                         "pricePerHour": "0.576"})
    nodes = cfg.plan.worker_nodes
    assert (nodes.vm_size, nodes.vcpus, nodes.memory_gib) == ("Standard_E8ds_v5", 8, 64)
    user = vmsizes.VmSize("Standard_E8ds_v5", 8, 64, 0.576, listed=False)
    assert nodes.allocatable_memory_mib == allocatable(user, 110).memory_mib, "allocatable from the user's figures"
    assert nodes.workers_per_node == 21, "64 GiB: (65536 - 2250 - 100 - 600) // 2917 by memory"
    workers = cfg.plan.footprint[1]
    assert (workers.price_per_hour, workers.list_price) == (0.576, False)
    assert cfg.plan.footprint_lines()[1] == (
        "peak: 2 x Standard_D8s_v5 + 2 x Standard_E8ds_v5 = 32 vCPU, 192 GiB, 1.92 USD per hour "
        "(eastus list price where pricePerHour is unset)"), "2 x 0.384 + 2 x 0.576"
    assert cfg.settings.worker_pool.size.listed is False


def test_figures_that_contradict_the_table_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": "Standard_D4s_v5", "vcpus": 8, "memoryGiB": 16})
    problems = dict(err.value.problems)
    assert list(problems) == ["workerPool.vcpus"], "memoryGiB agrees with the table"
    assert problems["workerPool.vcpus"].startswith("Standard_D4s_v5 has 4 vCPU in the program's table ("), \
        problems["workerPool.vcpus"]
    assert "not 8; set workerPool.vcpus to 4 or remove it" in problems["workerPool.vcpus"]
    same = config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "vcpus": 4, "memoryGiB": 32})
    assert same.plan.worker_nodes.workers_per_node == 10, "figures that agree change nothing"


@pytest.mark.parametrize(("typed", "meant"), [("Standard_E4_v3", "Standard_E4s_v3"),
                                               ("Standard_d4s_V5", "Standard_D4s_v5"),
                                               ("Standard_E8a_v5", "Standard_E8as_v5")])
def test_a_near_miss_gets_a_did_you_mean(typed: str, meant: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": typed})
    message = dict(err.value.problems)["workerPool.vmSize"]
    assert f"did you mean '{meant}'?" in message, message
    assert "set workerPool.vcpus, workerPool.memoryGiB and workerPool.pricePerHour" in message


@pytest.mark.parametrize(("pool", "key", "value", "allowed"), [
    ({"vcpus": 1}, "vcpus", 1, "from 2 to 1024"),
    ({"memoryGiB": 2}, "memoryGiB", 2, "from 4 to 32768"),
    ({"vcpus": "many"}, "vcpus", "'many'", "from 2 to 1024"),
])
def test_figures_below_what_aks_runs_on_are_refused(pool: dict[str, object], key: str, value: str,
                                                    allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": "Standard_E8ds_v5", "vcpus": 8, "memoryGiB": 64,
                                       "pricePerHour": 0.576, **pool})
    message = dict(err.value.problems)[f"workerPool.{key}"]
    assert allowed in message and str(value) in message, message


def test_a_fixed_system_pool_takes_the_figures_but_not_autoscaling() -> None:
    cfg = config_for("prod", systemPool={"vmSize": "Standard_D8ds_v6", "count": 2, "vcpus": 8, "memoryGiB": 32,
                                         "pricePerHour": 0.45})
    assert cfg.plan.footprint[0].price_per_hour == 0.45 and cfg.plan.footprint[0].vcpus == 8
    with pytest.raises(ConfigError) as err:
        config_for("prod", systemPool={"vmSize": "Standard_D8s_v5", "minCount": 2})
    assert "systemPool.minCount" in dict(err.value.problems)


@pytest.mark.parametrize(("cores", "reserved"), [
    (1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740),  # the AKS docs' table
    (20, 300), (48, 580), (72, 820), (96, 1060),                             # its steps carried on
])
def test_kube_reserved_cpu_covers_every_size_up_to_96_vcpu(cores: int, reserved: int) -> None:
    assert kube_reserved_cpu_millicores(cores) == reserved, f"{cores} cores"


def test_a_96_vcpu_node_keeps_what_aks_reserves() -> None:
    a = allocatable(VM_SIZES["Standard_D96s_v5"], max_pods=250)
    assert a.cpu_millicores == 96_000 - 1060
    assert a.memory_mib == 384 * 1024 - (20 * 250 + 50) - 100


def load_script() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "vm-sizes"
    loader = importlib.machinery.SourceFileLoader("vm_sizes_script", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_table_file_is_what_the_regeneration_script_writes() -> None:
    script = load_script()
    data = json.loads(vmsizes.CATALOGUE.read_text())
    assert script.render(data["region"], data["retrieved"], data["sizes"]) == vmsizes.CATALOGUE.read_text()
    assert script.TABLE == vmsizes.CATALOGUE
    assert [s["name"] for s in data["sizes"]] == [s["name"] for s in script.select_sizes(
        [{"name": s["name"], "numberOfCores": s["vcpus"], "memoryInMB": s["memoryGiB"] * 1024}
         for s in reversed(data["sizes"])])], "the script keeps every size of the table, in its order"


def test_the_script_keeps_aks_sizes_of_the_families_and_the_linux_price() -> None:
    script = load_script()
    offered = [{"name": n, "numberOfCores": c, "memoryInMB": m * 1024} for n, c, m in (
        ("Standard_D4as_v5", 4, 16), ("Standard_D128s_v6", 128, 512), ("Standard_E8ds_v5", 8, 64),
        ("Standard_B2s", 2, 4), ("Standard_F2s_v2", 2, 4))]
    assert [r["name"] for r in script.select_sizes(offered)] == [
        "Standard_B2s", "Standard_D4as_v5", "Standard_F2s_v2"], "no 128-vCPU size, no family outside the list"
    item = {"armSkuName": "Standard_D4as_v5", "type": "Consumption", "currencyCode": "USD",
            "unitOfMeasure": "1 Hour", "isPrimaryMeterRegion": True,
            "productName": "Virtual Machines Dasv5 Series", "skuName": "D4as v5", "meterName": "D4as v5"}
    items = [
        {**item, "retailPrice": 0.172},
        {**item, "retailPrice": 0.356, "productName": "Virtual Machines Dasv5 Series Windows"},
        {**item, "retailPrice": 0.0172, "skuName": "D4as v5 Spot", "meterName": "D4as v5 Spot"},
        {**item, "retailPrice": 0.0344, "skuName": "D4as v5 Low Priority", "meterName": "D4as v5 Low Priority"},
        {**item, "retailPrice": 0.1, "type": "Reservation", "unitOfMeasure": "1 Hour"},
    ]
    assert script.linux_price("Standard_D4as_v5", items) == 0.172
    with pytest.raises(SystemExit, match="2 Linux pay-as-you-go prices"):
        script.linux_price("Standard_D4as_v5", [*items, {**item, "retailPrice": 0.2}])
    with pytest.raises(SystemExit, match="0 Linux pay-as-you-go prices"):
        script.linux_price("Standard_D4as_v5", items[1:])
