"""The capacity plan for the shipped stacks, and how it follows config changes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from components.config import StackConfig
from components.model import capacity, sizing
from components.model.settings import (
    DEFAULT_WORKER_CPU_PER_SLOT_MILLICORES,
    DEFAULT_WORKER_MEMORY_PER_SLOT_MIB,
    ConfigError,
)
from components.model.vmsizes import VM_SIZES, allocatable
from tests.conftest import config_for


def test_prod_is_the_reference_workload(prod: StackConfig) -> None:
    w = prod.plan.worker
    assert (prod.plan.parallelism, w.concurrency, w.replicas) == (1000, 36, 28)
    assert w.task_slots == 28 * 36 == 1008
    assert w.task_slots >= prod.plan.parallelism
    assert w.spare_slots == 8


def test_prod_worker_nodes_for_e4s_v3(prod: StackConfig) -> None:
    # Worked by hand: an E4s_v3 has 4 vCPU and 32 GiB. With 110 pods per node
    # AKS reserves min(20*110+50, 32768/4) = 2250 MiB plus 100 MiB eviction
    # and 140m CPU: 30418 MiB and 3860m allocatable; DaemonSets leave 29818 MiB
    # and 3510m. A 36-slot worker requests 325 + 36*72 = 2917 MiB and
    # 100 + 36*1 = 136m: 10 fit by memory (29170) and 25 by CPU (3400).
    # 28 workers / 10 per node = 3 nodes.
    n = prod.plan.worker_nodes
    assert n.vm_size == "Standard_E4s_v3"
    assert (n.allocatable_memory_mib, n.allocatable_cpu_millicores) == (30418, 3860)
    assert (prod.plan.worker.memory_request_mib, prod.plan.worker.cpu_request_millicores) == (2917, 136)
    assert n.workers_per_node == 10
    # KEDA scales the workers, so the autoscaler runs the pool from 0 to the peak's 3 nodes.
    assert (n.nodes_needed, n.min_count, n.max_count, n.autoscale) == (3, 0, 3, True)
    fixed = config_for("prod", workerScaling="fixed").plan.worker_nodes
    assert (fixed.min_count, fixed.max_count, fixed.autoscale) == (3, 3, False)
    warm = config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "minCount": 1}).plan.worker_nodes
    assert (warm.min_count, warm.max_count) == (1, 3), "minCount keeps warm nodes; maxCount stays the peak"


def test_a_full_node_starting_its_tasks_gets_the_import_time_it_needs(prod: StackConfig, dev: StackConfig) -> None:
    # 10 workers x 36 slots on one E4s_v3 start 360 tasks at once; each start,
    # its parse of the 1000-task DAG included, was measured at 0.66 CPU-s, so
    # the node's 3.51 cores need 360 * 0.66 / 3.51 = 67.7 s, and the timeout
    # allows twice that, rounded up to 10 s.
    n = prod.plan.worker_nodes
    assert (n.tasks_per_node, n.start_burst_seconds) == (360, 67.7)
    assert prod.plan.dagbag_import_timeout_seconds == 140
    # dev's 2 x 16 slots start in 32 * 0.66 / 1.55 = 13.6 s: Airflow's 30 s holds.
    assert dev.plan.dagbag_import_timeout_seconds == 30
    # Fewer workers than fit on a node: only those start there.
    small = config_for("prod", parallelism=72)
    assert (small.plan.worker.replicas, small.plan.worker_nodes.tasks_per_node) == (2, 72)


def test_dev_plan_is_small(dev: StackConfig) -> None:
    p = dev.plan
    assert (p.parallelism, p.worker.concurrency, p.worker.replicas) == (32, 16, 2)
    assert p.worker_nodes.vm_size == "Standard_D2s_v5"
    assert p.worker_nodes.nodes_needed == 1
    assert p.default_pool_slots == 32


def test_default_pool_follows_parallelism_past_128(prod: StackConfig) -> None:
    assert prod.plan.default_pool_slots == 1000


def test_worker_defaults_come_from_the_measurements() -> None:
    # bench/results/worker.json: an idle pool child plus what a busy slot adds
    # on the reference DAG, and the steady CPU of a running task.
    assert sizing.MEASURED_SLOT_MIB == pytest.approx(10.1 + 47.5)
    assert DEFAULT_WORKER_MEMORY_PER_SLOT_MIB == math.ceil(sizing.MEASURED_SLOT_MIB * sizing.REQUEST_HEADROOM) == 72
    assert DEFAULT_WORKER_CPU_PER_SLOT_MILLICORES == math.ceil(
        sizing.MEASURED_STEADY_MILLICORES_PER_TASK * sizing.REQUEST_HEADROOM) == 1
    assert capacity.WORKER_BASE_MEMORY_MIB == math.ceil(sizing.MEASURED_WORKER_IDLE_MIB * sizing.REQUEST_HEADROOM)


def test_allocatable_uses_quarter_of_memory_on_small_vms() -> None:
    # 4 GiB: 20*110+50 = 2250 MiB is more than a quarter (1024), so a quarter is reserved.
    a = allocatable(VM_SIZES["Standard_B2s"], max_pods=110)
    assert a.memory_mib == 4096 - 1024 - 100
    assert a.cpu_millicores == 2000 - 100


def test_database_budget_counts_a_connection_per_busy_slot(prod: StackConfig) -> None:
    d = prod.plan.database
    assert d.connections["workers"] == 28 * (36 + capacity.CONNECTIONS_PER_WORKER_BASE)
    # Every uvicorn worker of every api-server pod has its own pool: 2 pods x 2 workers.
    assert d.connections["api-server"] == 2 * 2 * capacity.CONNECTIONS_PER_ENGINE
    assert d.budget == sum(d.connections.values())
    # Through PgBouncer, PostgreSQL sees its pools (twice, while it rolls) and the migration Job.
    b = d.pgbouncer
    assert b is not None and b.result_backend_clients == d.connections["workers"] + 5
    assert b.metadata_clients == 20 - 5 + 60 + 15 + 15, "scheduler engine, api-servers, dag-processor, triggerer"
    assert b.metadata_pool == b.metadata_clients and b.result_backend_pool == math.ceil(1069 / 32) == 34
    assert d.connections["keda"] == capacity.KEDA_CONNECTIONS, "KEDA's query goes straight to PostgreSQL"
    # pg_dump of the nightly backup, also straight to PostgreSQL.
    assert d.connections["database-backup"] == capacity.BACKUP_CONNECTIONS == 1
    direct = capacity.MIGRATION_JOB_CONNECTIONS + 2 + capacity.BACKUP_CONNECTIONS
    assert d.server_connections == 2 * (105 + 34) + direct == 283
    assert d.max_connections == 290, "1,300 without PgBouncer"
    assert b.max_client_conn >= d.budget * capacity.CONNECTION_HEADROOM
    assert d.max_connections % 10 == 0


def test_raising_parallelism_grows_workers_nodes_and_connections() -> None:
    before, after = config_for("prod"), config_for("prod", parallelism=2000)
    assert after.plan.worker.replicas == math.ceil(2000 / 36) == 56
    assert after.plan.worker_nodes.nodes_needed == 6, "56 workers, 10 per E4s_v3"
    assert after.plan.database.max_connections > before.plan.database.max_connections
    assert after.plan.default_pool_slots == 2000


def test_changing_worker_concurrency_changes_replicas_and_pod_size() -> None:
    before, after = config_for("prod"), config_for("prod", workerConcurrency=20)
    assert after.plan.worker.replicas == 50
    assert after.plan.worker.memory_request_mib < before.plan.worker.memory_request_mib
    assert after.plan.worker.cpu_request_millicores == 100 + 20 * 1


def test_fixed_node_count_too_small_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "count": 2})
    problems = dict(err.value.problems)
    assert list(problems) == ["workerPool.count"]
    assert "2 x Standard_E4s_v3 hold 20 workers" in problems["workerPool.count"]
    assert "at least 3" in problems["workerPool.count"]


def test_autoscaler_max_too_small_names_max_count() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "minCount": 1, "maxCount": 2})
    assert "workerPool.maxCount" in dict(err.value.problems)


def test_autoscaler_bounds_are_kept_when_they_hold_the_workers() -> None:
    n = config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "minCount": 0, "maxCount": 6}).plan.worker_nodes
    assert (n.min_count, n.max_count, n.autoscale, n.nodes_needed) == (0, 6, True, 3)


def test_worker_larger_than_a_node_names_worker_concurrency() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("dev", workerConcurrency=200)
    problems = dict(err.value.problems)
    assert "more than a Standard_D2s_v5 node leaves for pods" in problems["workerConcurrency"]


def test_summary_reads_like_the_plan(prod: StackConfig) -> None:
    text = prod.plan.summary()
    assert "parallelism 1000: 28 workers x 36 = 1008 task slots (8 spare)" in text
    assert "worker nodes: 0-3 (autoscaler) x Standard_E4s_v3" in text
    assert "task start: 360 tasks starting at once on a full node take about 68 s of its CPU; " \
        "dagbag_import_timeout 140 s" in text
    assert f"max_connections {prod.plan.database.max_connections}" in text
    assert "api-server: 2 pods x 2 uvicorn workers, 750m CPU (1500m limit) and 894 MiB each; 1000 running " \
        "tasks' heartbeats (every 15 s) about 680m, saturating the limits at about 4411; 1000 starts at once " \
        "answered within about 20 s (execution_api_timeout 40 s); a lost task failed within 120 s of its " \
        "last heartbeat" in text


def test_plan_output_is_plain_data(prod: StackConfig) -> None:
    out = prod.plan.to_output()
    assert out["worker"]["replicas"] == 28
    assert out["worker_nodes"]["autoscale"] is True
    assert out["database"]["connections"]["workers"] == 28 * 38


def test_control_plane_fits_the_system_pools(dev: StackConfig, prod: StackConfig) -> None:
    for cfg in (dev, prod):
        cp = cfg.plan.control_plane
        assert cp.system_vm_size == cfg.settings.system_pool.vm_size
        assert cp.postgres.memory_request_mib == (
            capacity.POSTGRES_BASE_MEMORY_MIB
            + capacity.POSTGRES_MEMORY_PER_CONNECTION_MIB * cfg.plan.database.max_connections)
    # One api-server pod runs the 4 workers the load needs instead of 2 x 2:
    # the same connections and memory, one pod.
    one = config_for("prod", apiServerReplicas=1).plan
    api2, api1 = prod.plan.control_plane.api_server, one.control_plane.api_server
    assert (api2.workers, api1.workers) == (4, 4), "api-server workers: 2 x 2 and 1 x 4"
    assert prod.plan.database.max_connections == one.database.max_connections
    assert prod.plan.control_plane.memory_request_mib == one.control_plane.memory_request_mib
    # Five pods: a worker each, one more than the load needs: more
    # connections, more memory.
    five = config_for("prod", apiServerReplicas=5).plan
    more_connections = five.database.max_connections - prod.plan.database.max_connections
    assert five.control_plane.api_server.workers == 5 and more_connections > 0
    assert five.control_plane.memory_request_mib - prod.plan.control_plane.memory_request_mib == (
        5 * five.control_plane.api_server.pod.memory_request_mib - 2 * api2.pod.memory_request_mib
        + capacity.POSTGRES_MEMORY_PER_CONNECTION_MIB * more_connections)


def test_system_pool_too_small_names_its_count() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", apiServerReplicas=8, systemPool={"vmSize": "Standard_D4s_v5", "count": 1})
    problems = dict(err.value.problems)
    assert list(problems) == ["systemPool.count"]
    assert "the control plane requests" in problems["systemPool.count"]
    assert "set systemPool.count to 2" in problems["systemPool.count"], "the count that holds the control plane"


def test_database_larger_than_a_system_node_names_the_vm_size() -> None:
    # Without PgBouncer 3,000 slots need a PostgreSQL that allows ~3,800
    # connections: ~15 GiB, more than a B2s node. prod sets parallelism, so
    # the refusal names it; unset, only the VM size is left to change.
    changes = {"pgbouncer": False, "systemPool": {"vmSize": "Standard_B2s", "count": 20}}
    with pytest.raises(ConfigError) as err:
        config_for("prod", parallelism=3000, **changes)
    problems = dict(err.value.problems)
    assert "postgres requests" in problems["parallelism"]
    assert "systemPool.vmSize such as" in problems["parallelism"], "the alternative to a lower parallelism"
    # The same stack as if parallelism were a default: only the size is named.
    settings = config_for("prod", parallelism=3000, systemPool={"vmSize": "Standard_D16s_v5", "count": 4},
                          pgbouncer=False).settings
    unset = replace(settings, system_pool=replace(settings.system_pool, vm_size="Standard_B2s"),
                    keys_set=settings.keys_set - {"parallelism"})
    with pytest.raises(ConfigError) as err:
        capacity.plan_capacity(unset)
    problems = dict(err.value.problems)
    assert list(problems) == ["systemPool.vmSize"], "no parallelism to name where the stack did not set it"
    assert "postgres requests" in problems["systemPool.vmSize"] and "such as" in problems["systemPool.vmSize"]


def test_flower_adds_to_the_control_plane() -> None:
    with_flower = config_for("dev", flower=True).plan.control_plane
    without = config_for("dev").plan.control_plane
    assert "flower" in with_flower.pods and "flower" not in without.pods
    assert with_flower.cpu_request_millicores > without.cpu_request_millicores


def test_without_pgbouncer_postgres_takes_every_client_connection() -> None:
    d = config_for("prod", pgbouncer=False).plan.database
    assert d.pgbouncer is None and d.server_connections == d.budget == 1179
    assert d.max_connections == 1300


def test_pgbouncer_pools_can_be_set_and_the_metadata_pool_not_below_the_scheduler() -> None:
    b = config_for("prod", pgbouncerMetadataPoolSize=40, pgbouncerResultBackendPoolSize=20).plan.database.pgbouncer
    assert b is not None and (b.metadata_pool, b.result_backend_pool) == (40, 20)
    with pytest.raises(ConfigError, match="pgbouncerMetadataPoolSize") as err:
        config_for("prod", pgbouncerMetadataPoolSize=10)
    assert "fewer than the scheduler alone may hold at once" in str(err.value)


def test_pgbouncer_joins_the_control_plane() -> None:
    on, off = config_for("prod"), config_for("prod", pgbouncer=False)
    assert "pgbouncer" in on.plan.control_plane.pods and "pgbouncer" not in off.plan.control_plane.pods
    assert on.plan.control_plane.memory_request_mib < off.plan.control_plane.memory_request_mib, \
        "PostgreSQL sized for 350 connections instead of 1,340"


def test_the_plan_says_what_runs_between_runs_and_at_the_peak(prod: StackConfig) -> None:
    system, workers = prod.plan.footprint
    assert (system.pool, system.idle_nodes, system.peak_nodes, system.vcpus) == ("systemPool", 2, 2, 8)
    assert (workers.pool, workers.idle_nodes, workers.peak_nodes, workers.vcpus) == ("workerPool", 0, 3, 4)
    assert prod.plan.footprint_lines() == [
        "idle: 2 x Standard_D8s_v5 + 0 x Standard_E4s_v3 = 16 vCPU, 64 GiB, "
        "0.77 USD per hour (eastus list prices)",
        "peak: 2 x Standard_D8s_v5 + 3 x Standard_E4s_v3 = 28 vCPU, 160 GiB, "
        "1.52 USD per hour (eastus list prices)",
    ], "2 x 0.384 idle; 2 x 0.384 + 3 x 0.252 at the peak"
    fixed = config_for("prod", workerScaling="fixed").plan.footprint[1]
    assert fixed.idle_nodes == fixed.peak_nodes == 3, "a fixed pool never idles"


def test_prices_per_node_hour_give_an_hourly_estimate() -> None:
    plan = config_for("prod", systemPool={"vmSize": "Standard_D8s_v5", "count": 2, "pricePerHour": 0.4},
                      workerPool={"vmSize": "Standard_E4s_v3", "pricePerHour": "0.3"}).plan
    assert plan.footprint_lines()[0].endswith("16 vCPU, 64 GiB, 0.80 USD per hour")
    assert plan.footprint_lines()[1].endswith("28 vCPU, 160 GiB, 1.70 USD per hour"), "2 x 0.40 + 3 x 0.30"
    mixed = config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "pricePerHour": 0.3}).plan
    assert mixed.footprint_lines()[1] == (
        "peak: 2 x Standard_D8s_v5 + 3 x Standard_E4s_v3 = 28 vCPU, 160 GiB, "
        "1.67 USD per hour (eastus list price where pricePerHour is unset)"), "2 x 0.384 + 3 x 0.30"
    with pytest.raises(ConfigError, match=r"workerPool\.pricePerHour"):
        config_for("prod", workerPool={"vmSize": "Standard_E4s_v3", "pricePerHour": "cheap"})


def test_prod_api_server_is_sized_from_the_heartbeats_and_the_start_burst(prod: StackConfig) -> None:
    api = prod.plan.control_plane.api_server
    # A heartbeat costs 10.2 ms ("500 paced 16, 2 api workers": 2.04 millicores
    # a task at 5 s); every 15 s, 1,000 running tasks cost 680m: at half of a
    # worker's 870m saturation, 2 uvicorn workers.
    assert api.heartbeat_interval_seconds == 15
    assert api.millicores_per_running_task == pytest.approx(1000 * sizing.MEASURED_API_HEARTBEAT_CPU_S / 15, abs=1e-3)
    assert api.heartbeat_millicores == round(1000 * sizing.MEASURED_API_HEARTBEAT_CPU_S * 1000 / 15) == 680
    # 1,000 starts at once cost 60 CPU-s (60 ms a start: "500 burst, 1 api
    # workers, api-server at 850m, execution_api_timeout 20 s"); answered within
    # 20 s that is 3000m: 4 workers at saturation, 2 per pod, each pod's limit
    # its share.
    assert api.workers_needed == 4
    assert (api.replicas, api.workers_per_pod) == (2, 2), "api-server: 2 pods x 2 workers"
    assert api.workers * sizing.MEASURED_API_WORKER_SATURATION_MILLICORES / sizing.API_WORKER_HEADROOM \
        >= api.heartbeat_millicores, "every api-server worker at most half busy in the steady state"
    assert (api.pod.cpu_request_millicores, api.pod.cpu_limit_millicores) == (750, 1500)
    assert api.replicas * api.pod.cpu_limit_millicores * capacity.API_START_BURST_SECONDS / 1000 \
        >= 1000 * sizing.MEASURED_API_BURST_START_CPU_S, "the limits answer 1,000 starts within 20 s"
    assert api.start_burst_seconds == 20.0
    assert api.pod.memory_request_mib == 2 * sizing.API_WORKER_MEMORY_MIB == 894
    # The limits of 2 pods (3000m) hold 4,411 running tasks' heartbeats.
    assert api.max_running_tasks == 4411
    assert prod.plan.control_plane.pods["api-server"] == api.pod
    assert "workers = 2" in prod.airflow_cfg.split("[api]")[1].split("[")[0], "airflow.cfg [api] workers"


def test_the_client_waits_out_the_burst_and_the_scheduler_waits_out_the_client(prod: StackConfig) -> None:
    api = prod.plan.control_plane.api_server
    # Twice the burst: a start queued behind all the others is answered
    # before the supervisor gives up on it and retries.
    assert api.client_timeout_seconds == 2 * 20 == 40
    # A live task's longest heartbeat gap: the 15 s interval, then a heartbeat
    # queued behind the burst for up to the 40 s timeout; twice that.
    assert api.heartbeat_timeout_seconds == 2 * (15 + 40) == 110
    assert api.lost_task_noticed_seconds == 120, "110 s and the scheduler's 10 s check"


def test_a_small_stack_keeps_a_short_client_timeout_and_the_heartbeat_floor(dev: StackConfig) -> None:
    api = dev.plan.control_plane.api_server
    # 32 starts at once on a 500m limit: 3.8 s.
    assert api.start_burst_seconds == round(32 * sizing.MEASURED_API_BURST_START_CPU_S / 0.5, 1) == 3.8
    assert api.client_timeout_seconds == 8
    assert api.heartbeat_timeout_seconds == capacity.HEARTBEAT_TIMEOUT_MIN_SECONDS == 60, "2 x (15 + 8) = 46"
    low = config_for("dev", parallelism=4, workerConcurrency=4).plan.control_plane.api_server
    assert low.client_timeout_seconds == capacity.AIRFLOW_EXECUTION_API_TIMEOUT_SECONDS, "never below Airflow's 5 s"


@pytest.mark.parametrize(("interval", "millicores", "timeout"), [(5, 2040, 70), (15, 680, 110), (30, 340, 140)])
def test_the_heartbeat_interval_sets_the_load_and_the_timeout(interval: int, millicores: int, timeout: int) -> None:
    # At 5 s the heartbeats need 5 workers (3 pods x 2), whose limits answer
    # the burst in 14.7 s: a 30 s client timeout, 2 x (5 + 30) = 70 s.
    api = config_for("prod", heartbeatIntervalSeconds=interval).plan.control_plane.api_server
    assert api.heartbeat_millicores == millicores, f"1,000 tasks heartbeating every {interval} s"
    assert api.heartbeat_timeout_seconds == timeout, f"heartbeat timeout at {interval} s"


def test_a_small_stack_runs_one_api_server_worker(dev: StackConfig) -> None:
    api = dev.plan.control_plane.api_server
    assert (api.replicas, api.workers_per_pod, api.workers_needed) == (1, 1, 1)
    assert api.pod.cpu_request_millicores == capacity.API_SERVER_MIN_CPU_MILLICORES


@pytest.mark.parametrize(("parallelism", "replicas", "per_pod"), [(500, 2, 1), (3000, 6, 2), (5000, 9, 2)])
def test_the_api_server_grows_with_parallelism(parallelism: int, replicas: int, per_pod: int) -> None:
    # Past settings' ceiling (sizing.MAX_PARALLELISM) the plan function itself
    # still scales the api-server: the ceiling is the scheduler's and
    # PostgreSQL's, not the api-server's.
    base = config_for("prod", systemPool={"vmSize": "Standard_D16s_v5", "count": 4}).settings
    wider = replace(base, parallelism=parallelism, workers=math.ceil(parallelism / base.worker_concurrency))
    api = capacity.plan_capacity(wider).control_plane.api_server
    assert (api.replicas, api.workers_per_pod) == (replicas, per_pod), f"api-server at parallelism {parallelism}"
    assert api.max_running_tasks >= parallelism * sizing.API_WORKER_HEADROOM
    assert api.start_burst_seconds <= capacity.API_START_BURST_SECONDS, f"start burst at parallelism {parallelism}"


def test_a_set_replica_count_takes_the_workers_the_load_needs() -> None:
    api = config_for("prod", apiServerReplicas=1).plan.control_plane.api_server
    assert (api.replicas, api.workers_per_pod) == (1, 4)
    assert api.pod.cpu_request_millicores == 1500 and api.pod.memory_request_mib == 4 * sizing.API_WORKER_MEMORY_MIB


def test_a_system_pool_too_small_for_the_api_server_names_its_count() -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", parallelism=3000, systemPool={"vmSize": "Standard_D4s_v5", "count": 1})
    problems = dict(err.value.problems)
    assert "set systemPool.count to 2" in problems["systemPool.count"], "the count the wider api-server needs"
