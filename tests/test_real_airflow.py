"""What the program generates, run on real Airflow + Celery + PostgreSQL + RabbitMQ.

Each test declares the program for a stack config (under Pulumi mocks), starts
the declared components as local processes (tests/local_airflow.py) on a fresh
database, runs the reference DAG and watches task instance states in the
metadata database.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from components.config import build_stack_config, project_values
from components.kubernetes import task_logs
from components.kubernetes.airflow_worker import CELERY_APP
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.pgbouncer import ROOT_CAS_KEY
from components.kubernetes.secrets import AUTH_PASSWORDS_KEY, ROLE_PASSWORD_KEYS
from components.model import names
from components.model.airflow_cfg import CONNECT_ARGS_ASYNC
from tests.conftest import WIDEST
from tests.local_airflow import (
    APP_CONFIG,
    LocalAzurite,
    LocalDeployment,
    LocalPgBouncer,
    Services,
    deployment,
    descendants,
    free_port,
    image_command,
    stack_config,
    tls_only_postgres,
    wait_for,
)
from tests.real_airflow import AIRFLOW_VENV, airflow_env, run_airflow_python

# Real components (scripts/test --fast leaves these out for a quick run).
pytestmark = pytest.mark.real

# `services` (tests/conftest.py): one PostgreSQL, RabbitMQ and Azurite for the
# session, started with the settings the program declares for WIDEST.


def fanout(parallelism: int, width: int, sleep: int, **more: object) -> dict[str, object]:
    return stack_config("dev", parallelism=parallelism, workerConcurrency=parallelism, fanoutTasks=width,
                        fanoutSleepSeconds=sleep, workerPool={"vmSize": "Standard_E32s_v5"},
                        systemPool={"vmSize": "Standard_D8s_v5", "count": 1}, **more)


def test_services_run_with_the_declared_settings(services: Services) -> None:
    plan = build_stack_config(project_values(WIDEST), stack="dev", location="westeurope").plan
    assert services.postgres.setting("max_connections") == str(plan.database.max_connections)
    assert "{consumer_timeout,4200000}" in services.rabbitmq.environment()


def test_azurite_stops_within_seconds(tmp_path: Path) -> None:
    """Every session's end (and each traced run) stops the emulator after
    deployments used it: such a stop took a minute when it waited for the
    emulator to exit on SIGTERM."""
    azurite = LocalAzurite(tmp_path / "azurite")
    azurite.start()
    try:
        connection = json.loads(task_logs.emulator_connection(azurite.endpoint))["extra"]["connection_string"]
        done = run_airflow_python("from azure.storage.blob import BlobServiceClient\n"
                                  f"BlobServiceClient.from_connection_string({connection!r})"
                                  ".create_container('used')", home=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        began = time.monotonic()
        azurite.stop()
        took = time.monotonic() - began
    assert took < 10, f"Azurite took {took:.1f} s to stop"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", azurite.port)) != 0, "Azurite still listens"


def test_parallelism_caps_the_running_tasks(services: Services) -> None:
    with deployment(services, fanout(parallelism=16, width=32, sleep=20)) as d:
        run_id = d.trigger()
        obs = d.observe(run_id, tasks=32, timeout=240)
        assert obs.finished_at is not None, f"run did not finish: {obs.states}\n{d.logs('scheduler')}"
        assert obs.max_running == 16, f"at most parallelism=16 run at once, saw {obs.max_running}"
        assert obs.states == {"success": 32}


def test_parallelism_equal_to_the_width_runs_everything_at_once(services: Services) -> None:
    with deployment(services, fanout(parallelism=32, width=32, sleep=30)) as d:
        run_id = d.trigger()
        obs = d.observe(run_id, tasks=32, timeout=240)
        assert obs.all_running_at is not None, f"never all 32 running; max {obs.max_running}"
        assert obs.max_running == 32
        assert obs.states == {"success": 32}


def test_a_fanout_wider_than_128_runs_all_at_once_through_pgbouncer_to_a_tls_only_server(
        services: Services) -> None:
    """The azure shape (`database: azure`): the declared PgBouncer (server
    TLS, verify-full) and the migration Job's direct URL (sslmode) against a
    PostgreSQL that, like the flexible server, takes TCP clients over TLS only."""
    config = fanout(parallelism=160, width=160, sleep=90, database="azure")
    plan = build_stack_config(project_values(config), stack="dev", location="westeurope").plan
    bouncer_plan = plan.database.pgbouncer
    assert bouncer_plan is not None, "PgBouncer is on by default"
    # Letters and digits: the password goes into URLs unescaped, as the generated one does.
    server = ExternalDatabase(host="airflow-test.postgres.database.azure.com", admin_user="airflowadmin",
                              password=secrets.token_hex(16), cidr="10.20.1.0/24")
    with tls_only_postgres(services) as tls_services, deployment(tls_services, config,
                                                                 external_database=server) as d:
        assert d.pgbouncer is not None
        assert (d.db_user, d.db_host) == (names.DATABASE_OWNER_ROLE, server.host), "the declared direct URL"
        pg = tls_services.postgres
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry .* no encryption"):
            psycopg.connect(host="127.0.0.1", port=pg.port, user=server.admin_user, password=server.password,
                            dbname=d.database, sslmode="disable").close()
        # PgBouncer verifies the server (verify-full), not only encrypts: the
        # declared ini with the declared roots (Azure's) refuses this
        # server's certificate, which the test's own CA signed.
        declared_roots = d.home / "declared-root-cas.pem"
        declared_roots.write_text(d.run.manifest("ConfigMap", names.PGBOUNCER)["data"][ROOT_CAS_KEY])
        with_azure_roots = LocalPgBouncer(
            tls_services.workdir / f"pgbouncer-azure-roots-{d.id}",
            d.run.manifest("ConfigMap", names.PGBOUNCER)["data"]["pgbouncer.ini"], d.pgbouncer.users, d.namespace,
            pg.port, d.database, server_host=server.host, server_ca=declared_roots)
        with_azure_roots.start()
        try:
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(host="127.0.0.1", port=with_azure_roots.port, user=server.admin_user,
                                password=server.password, dbname=names.PGBOUNCER_METADATA_DB,
                                connect_timeout=3).close()
            assert "certificate verify failed" in with_azure_roots.log(), with_azure_roots.log()[-2000:]
        finally:
            with_azure_roots.stop()
        # The migration Job got in (the server takes nothing but TLS), and sized the pool.
        assert d.query("SELECT slots FROM slot_pool WHERE pool = 'default_pool'") == [(160,)], \
            "the migration job sized default_pool to parallelism"
        peak: dict[str, Any] = {"server": 0, "plain": 0, "clients": 0, "client_pools": set(), "tls": set()}

        # PgBouncer's server logins are its pools' roles; its admin console
        # takes the app role (stats_users).
        app_password = d._secret(names.POSTGRES_SECRET)[ROLE_PASSWORD_KEYS[names.DATABASE_APP_ROLE]]
        pool_roles = [names.DATABASE_APP_ROLE, names.DATABASE_RESULTS_ROLE]

        def on_sample(states: dict[str, int], now: float) -> None:
            [(server_conns, plain, versions)] = d.query(
                "SELECT count(*), count(*) FILTER (WHERE NOT s.ssl), array_agg(DISTINCT s.version) "
                "FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid "
                "WHERE a.datname = %s AND a.usename = ANY(%s)", [d.database, pool_roles])
            peak["server"] = max(peak["server"], server_conns)
            peak["plain"] = max(peak["plain"], plain)
            peak["tls"] |= {v for v in versions or [] if v}
            clients = d.pgbouncer.show("CLIENTS", app_password)
            airflow_clients = [c for c in clients if c["database"] != "pgbouncer"]
            peak["clients"] = max(peak["clients"], len(airflow_clients))
            peak["client_pools"] |= {c["database"] for c in airflow_clients}
            pools = {p["database"]: p for p in d.pgbouncer.show("POOLS", app_password)}
            assert set(pools) >= {"airflow-metadata", "airflow-result-backend"}

        run_id = d.trigger()
        obs = d.observe(run_id, tasks=160, timeout=420, interval=1.0, on_sample=on_sample)
        assert obs.max_running == 160, f"all 160 should run together (default pool resized), saw {obs.max_running}"
        assert obs.states == {"success": 160}, "none left queued or scheduled"
        # PostgreSQL saw at most one PgBouncer pod's pools, every one over TLS;
        # PgBouncer saw the clients.
        assert 0 < peak["server"] <= bouncer_plan.server_connections, (peak, bouncer_plan)
        assert peak["plain"] == 0 and peak["tls"] <= {"TLSv1.2", "TLSv1.3"} and peak["tls"], peak
        assert peak["client_pools"] == {"airflow-metadata", "airflow-result-backend"}, peak
        assert peak["clients"] > peak["server"], f"clients share server connections: {peak}"
        print(f"\nazure shape: {obs.max_running} running at once, all running after {obs.all_running_at:.1f} s, "
              f"finished after {obs.finished_at:.1f} s; peak server connections {peak['server']} "
              f"(plan {bouncer_plan.server_connections}), peak PgBouncer clients {peak['clients']}, "
              f"TLS {sorted(peak['tls'])}")


def api_token(d: LocalDeployment) -> str:
    """A JWT for the admin user from the api-server, as the UI or a client logs in."""
    [password] = json.loads((d.home / "auth" / AUTH_PASSWORDS_KEY).read_text()).values()
    body = json.dumps({"username": names.ADMIN_USER, "password": password}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{d.api_port}/auth/token", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())["access_token"]


def wait_on_run(port: int, token: str, run_id: str, interval: float = 0.25) -> str:
    """GET .../dagRuns/{run_id}/wait (the async engine polls the run): the last
    line's state, or what went wrong."""
    url = f"http://127.0.0.1:{port}/api/v2/dags/fanout/dagRuns/{run_id}/wait?interval={interval}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            lines = r.read().decode().splitlines()
        return str(json.loads(lines[-1])["state"])
    except Exception as e:  # any failure is an answer here: counted, not raised
        return f"{type(e).__name__}: {e}"[:200]


def concurrent_waits(port: int, token: str, run_id: str, clients: int = 32, each: int = 1) -> dict[str, int]:
    """`clients` at once, each waiting on the run `each` times in a row: how many got which answer."""
    def one_client(_: int) -> list[str]:
        return [wait_on_run(port, token, run_id) for _ in range(each)]

    outcomes: dict[str, int] = {}
    with ThreadPoolExecutor(clients) as pool:
        for answers in pool.map(one_client, range(clients)):
            for answer in answers:
                outcomes[answer] = outcomes.get(answer, 0) + 1
    return outcomes


@contextlib.contextmanager
def another_api_server(d: LocalDeployment, drop_options: tuple[str, ...],
                       env: dict[str, str | None]) -> Iterator[int]:
    """A second api-server on the same deployment, with some airflow.cfg lines
    dropped and some environment changed; yields its port."""
    port = free_port()
    cfg = d.home / f"airflow-{port}.cfg"
    cfg.write_text("".join(line for line in d.cfg_text.splitlines(keepends=True)
                           if line.split(" = ")[0] not in drop_options))
    w = d.workloads["api-server"]
    changed = {**d.process_env(w), "AIRFLOW_CONFIG": str(cfg), "AIRFLOW__API__PORT": str(port), **env}
    proc_env = {k: v for k, v in changed.items() if v is not None}
    log = d.home / f"api-server-{port}.log"
    proc = subprocess.Popen(image_command(w.args), env=proc_env, cwd=d.home, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
                return r.status == 200
        return False

    try:
        wait_for("the second api-server", healthy, timeout=180)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


ASYNC_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"


def scaler_query(d: Any) -> str:
    """The query text of the declared ScaledObject, as KEDA would run it."""
    [trigger] = d.run.manifest("ScaledObject", names.WORKER)["spec"]["triggers"]
    return trigger["metadata"]["query"]


def test_the_keda_query_follows_queued_and_running_tasks(services: Services) -> None:
    # 32 tasks for workers of 8 slots: KEDA should ask for 4 while any is
    # queued or running (only one local worker runs, so most wait queued).
    # 5 s per task: each of the four waves still spans several of the scaler's
    # samples (one a second), and the claim holds for any length.
    config = stack_config("dev", parallelism=32, workerConcurrency=8, fanoutTasks=32, fanoutSleepSeconds=5,
                          workerPool={"vmSize": "Standard_E32s_v5"},
                          systemPool={"vmSize": "Standard_D8s_v5", "count": 1})
    with deployment(services, config) as d:
        query = scaler_query(d)
        assert d.query(query) == [(0,)], "no task yet: no worker"
        seen: list[int] = []

        def on_sample(states: dict[str, int], now: float) -> None:
            # The scaler's answer and the count it stands for, from one snapshot.
            [(workers, busy)] = d.query(f"SELECT ({query}), (SELECT count(*) FROM task_instance "
                                        "WHERE state IN ('queued', 'running'))")
            assert workers == -(-busy // 8), f"{workers} workers for {busy} queued or running tasks"
            seen.append(int(workers))

        run_id = d.trigger()
        obs = d.observe(run_id, tasks=32, timeout=300, interval=1.0, on_sample=on_sample)
        assert obs.states == {"success": 32}, obs.states
        assert max(seen) == 4, f"ceil(32 / 8) while all were queued or running, saw {sorted(set(seen))}"
        assert d.query(query) == [(0,)], "all done: back to no worker"


# From zero, as KEDA scales a worker up once the queue has filled: the two
# tests below share one deployment whose control plane runs (api-server,
# scheduler, dag-processor, triggerer) and whose worker each test starts
# itself, after the tasks are queued; each test first stops a worker an
# earlier one left. A worker node of the size of this machine (D2s_v5: 2
# vCPU), so the plan's per-node scaling predicts this machine, and one worker
# of 16 slots for the 16 tasks. Sharing it saves a deployment's start
# (migration, four components ready: about 40 s on 2 cores).
FROM_ZERO_TASKS = 16
FROM_ZERO = stack_config("dev", parallelism=FROM_ZERO_TASKS, workerConcurrency=FROM_ZERO_TASKS,
                         fanoutTasks=FROM_ZERO_TASKS, fanoutSleepSeconds=12,
                         workerPool={"vmSize": "Standard_D2s_v5"},
                         systemPool={"vmSize": "Standard_D8s_v5", "count": 1})


def stop_worker(d: LocalDeployment) -> None:
    """SIGKILL the worker's whole tree, if one runs: the next start is a new
    worker process with a new pool, as a pod KEDA adds."""
    proc = d.processes.pop("worker", None)
    if proc is None:
        return
    tree = [proc.pid, *descendants(proc.pid)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


# The warm span is about a second here, so a ratio with it as divisor is noisy:
# two runs on this 2-core machine gave 5.05 and 5.93 against the plan's 6.07,
# and a CI run gave 7.60 with the warm start at 0.7 s, half the plan's 1.4 s.
# So the warm run only slows the plan down, never speeds it up: the plan's
# cold start is scaled by how much slower than the plan's warm start this
# machine's was (at least 1), plus a quarter for the spread. A worker start
# twice as slow as the plan's still fails it.
STARTUP_RATIO_TOLERANCE = 1.25


@pytest.fixture(scope="class")
def control_plane(services: Services) -> Iterator[LocalDeployment]:
    """The from-zero tests' control plane, class-scoped: its processes stop
    when TestFromZero's tests are done, not idle on through the module."""
    with deployment(services, FROM_ZERO, start=False) as d:
        d.start("api-server", "scheduler", "dag-processor", "triggerer")
        d.wait_ready()
        yield d


class TestFromZero:

    def test_a_worker_started_after_its_tasks_are_queued_runs_its_slots_within_the_plans_start(
            self, control_plane: LocalDeployment) -> None:
        # The run's tasks are all queued before the worker's process starts.
        # Its start (process, pool, every slot running) is compared with a
        # warm start on the same worker (a second run, its pool children
        # having run a task each), which says how much slower than the plan
        # this machine is; the plan is components/model/startup.py's
        # from-zero steps from "worker up" on (from bench/worker's measurements).
        d, tasks = control_plane, FROM_ZERO_TASKS
        plan = build_stack_config(project_values(FROM_ZERO), stack="dev", location="westeurope").plan
        assert plan.startup is not None and plan.startup.tasks_per_node == tasks
        zero, warm_plan = plan.startup.from_zero, plan.startup.warm
        predicted_cold = round(zero.seconds - zero.until("image pull"), 1)
        stop_worker(d)
        cold_run = d.trigger()
        wait_for("every task queued", lambda: d.states(cold_run).get("queued", 0) == tasks, timeout=120)
        began = time.time()
        ready = d.wait_worker_ready(d.start_worker())
        cold_obs = d.observe(cold_run, tasks=tasks, timeout=300)
        cold = d.start_times(cold_run)
        time.sleep(5)  # the pool children end their first tasks' work, as bench/worker lets them
        warm_run = d.trigger()
        warm_obs = d.observe(warm_run, tasks=tasks, timeout=300)
        warm = d.start_times(warm_run)
        assert cold_obs.states == {"success": tasks}, f"cold run: none failed: {cold_obs.states}"
        assert warm_obs.states == {"success": tasks}, f"warm run: none failed: {warm_obs.states}"
        assert cold_obs.max_running == warm_obs.max_running == tasks, "every slot ran at once"
        measured_cold = cold["last_started"] - began
        measured_warm = warm["last_started"] - warm["first_queued"]
        slower = max(1.0, measured_warm / warm_plan.seconds)
        bound = predicted_cold * slower * STARTUP_RATIO_TOLERANCE
        figures = (f"cold: worker process start -> all {tasks} slots running {measured_cold:.1f} s (Celery ready "
                   f"after {ready:.1f} s, first task at {cold['first_started'] - began:.1f} s); warm: first task "
                   f"queued -> all {tasks} running {measured_warm:.1f} s (first started after "
                   f"{warm['first_started'] - warm['first_queued']:.1f} s), the plan's {warm_plan.seconds} s; "
                   f"the plan's cold start {predicted_cold} s x {slower:.2f} x {STARTUP_RATIO_TOLERANCE} = "
                   f"{bound:.1f} s")
        print(figures)
        assert measured_cold <= bound, figures

    def test_a_fanout_queued_with_no_worker_runs_once_a_worker_starts(self, control_plane: LocalDeployment) -> None:
        # The tasks are queued first; a worker starts only after the
        # scaler's query has seen them.
        d = control_plane
        stop_worker(d)
        query = scaler_query(d)
        assert d.query(query) == [(0,)], "no task queued or running before the run"
        run_id = d.trigger()
        wait_for("the tasks to be queued", lambda: d.query(query) == [(1,)], timeout=120)
        assert d.states(run_id).get("running", 0) == 0, "nothing runs without a worker"
        d.start("worker")
        obs = d.observe(run_id, tasks=FROM_ZERO_TASKS, timeout=300)
        assert obs.states == {"success": FROM_ZERO_TASKS}, f"none timed out in queued: {obs.states}\n" \
            f"{d.logs('scheduler')}"


def test_the_workers_tasks_parse_their_dag_with_the_plans_import_timeout(services: Services) -> None:
    # 48 slots on a D2s_v5 node: 48 task starts at once take about 20 s of its
    # 1.55 cores, so the plan gives the workers' tasks 50 s instead of Airflow's
    # 30 (the plan's "task start"); the other components keep Airflow's. The
    # 4 tasks of 10 s only have to be seen running together, with the env.
    config = stack_config("dev", parallelism=48, workerConcurrency=48, fanoutTasks=4, fanoutSleepSeconds=10,
                          workerPool={"vmSize": "Standard_D2s_v5"},
                          systemPool={"vmSize": "Standard_D8s_v5", "count": 1})
    with deployment(services, config) as d:
        assert d.workloads["worker"].env.get("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT") == "50.0"
        assert "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT" not in d.workloads["scheduler"].env
        run_id = d.trigger()
        wait_for("the tasks to run", lambda: d.states(run_id).get("running", 0) == 4, timeout=180)
        # (The task processes inherit the worker's environment; /proc cannot
        # show it, since setproctitle reuses the environment's memory.)
        for component, expected in (("worker", "50.0"), ("scheduler", "30.0")):
            value = subprocess.run(["airflow", "config", "get-value", "core", "dagbag_import_timeout"],
                                   env=d.process_env(d.workloads[component]), cwd=d.home, capture_output=True,
                                   text=True, timeout=120, check=True).stdout
            assert value.strip() == expected, f"{component}: Airflow reads {value!r}"
        obs = d.observe(run_id, tasks=4, timeout=180)
        assert obs.states == {"success": 4}, obs.states


# --------------------------------------------------------------------------
# airflow.cfg against the target Airflow's own configuration
# --------------------------------------------------------------------------

KNOWN_OPTIONS = """
import json
from airflow.configuration import conf

known = {s: sorted(o.get("options", {})) for s, o in conf.configuration_description.items()}
print(json.dumps(known))
"""


def airflow_known_options(home: Path) -> dict[str, set[str]]:
    done = run_airflow_python(KNOWN_OPTIONS, home=home)
    assert done.returncode == 0, done.stderr[-2000:]
    return {s: set(o) for s, o in json.loads(done.stdout.strip().splitlines()[-1]).items()}


@pytest.fixture(scope="module")
def known_options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Read once for the tests below: each read starts the Airflow interpreter
    (seconds of CPU), and the answer depends on the installed Airflow only."""
    return airflow_known_options(tmp_path_factory.mktemp("known-options"))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_generated_option_exists_in_the_target_airflow(known_options: dict[str, set[str]],
                                                             stack: str) -> None:
    cfg = build_stack_config(project_values(stack_config(stack, airflowConfig={
        "core": {"dagbag_import_timeout": 60}, "logging": {"logging_level": "WARNING"}})),
        stack=stack, location="westeurope").airflow_cfg
    known = known_options
    section = None
    unknown = []
    for line in cfg.splitlines():
        if m := re.fullmatch(r"\[(.+)\]", line):
            section = m.group(1)
        elif m := re.fullmatch(r"(\w+) = .*", line):
            if m.group(1) not in known.get(section, set()):
                unknown.append(f"[{section}] {m.group(1)}")
    assert not unknown, f"options Airflow does not know: {unknown}"
    assert "celery" in known and "worker_concurrency" in known["celery"], "provider options are included"


def test_a_misspelt_option_would_be_caught(known_options: dict[str, set[str]]) -> None:
    known = known_options
    assert "dag_concurrency" not in known["core"]
    assert "max_queued_runs_per_dag" not in known["core"]


def lint(home: Path, cfg: str | None, env: dict[str, str] | None = None) -> list[str]:
    home.mkdir(parents=True, exist_ok=True)
    # What the image copies to $AIRFLOW_HOME/config: the cfg names modules
    # there (the async engine's connect args), which Airflow imports at start.
    shutil.copytree(APP_CONFIG, home / "config", dirs_exist_ok=True)
    if cfg is not None:
        (home / "airflow.cfg").write_text(cfg)
    done = subprocess.run([str(AIRFLOW_VENV / "bin" / "airflow"), "config", "lint"], env=airflow_env(home, env),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line.strip()[2:] for line in done.stdout.splitlines() if line.strip().startswith("- ")]


def test_airflow_config_lint_finds_nothing_beyond_the_celery_executor_note(tmp_path: Path) -> None:
    cfg = build_stack_config(project_values(stack_config("prod")), stack="prod", location="westeurope").airflow_cfg
    ours = lint(tmp_path / "ours", cfg)
    # lint reports the changed default of [core] executor for any executor but
    # LocalExecutor, wherever it is set: a Celery deployment always gets it.
    baseline = lint(tmp_path / "baseline", None, {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert ours == baseline
    assert len(ours) == 1 and "`executor`" in ours[0]


def test_lint_would_report_an_airflow_2_option(tmp_path: Path) -> None:
    cfg = build_stack_config(project_values(stack_config("dev")), stack="dev", location="westeurope").airflow_cfg
    findings = lint(tmp_path, cfg + "\n[webserver]\nsecret_key = x\n")
    assert any("secret_key" in f for f in findings)


# --------------------------------------------------------------------------
# On one shared deployment (last in the file: its processes idle until the
# module ends, and would otherwise take CPU from the deployments above)
# --------------------------------------------------------------------------

# The tests that need a running deployment of 4 tasks share this one: starting
# a deployment (migration job, five components ready) takes about 40 s on 2
# cores. Each test triggers a run of its own. 15 s per task: the async
# engine's test waits on a run while it runs, the SIGTERM test signals the
# worker while its 4 tasks run (and starts it again), and the stopping test
# stops the deployment while they run (so it comes last).
SMALL_TASKS = 4
SMALL = fanout(parallelism=SMALL_TASKS, width=SMALL_TASKS, sleep=15)


@pytest.fixture(scope="module")
def small(services: Services) -> Iterator[LocalDeployment]:
    with deployment(services, SMALL) as d:
        yield d


def test_the_async_engine_serves_concurrent_waits_through_pgbouncer(small: LocalDeployment) -> None:
    """The dag-run wait endpoint reads the run through Airflow's async engine.
    32 clients wait on one run while it runs, then 32 x 8 waits on the finished
    run: every one answers "success". Controls, on the same PgBouncer (when it
    keeps no prepared statements: before 1.24, or max_prepared_statements
    unset): an api-server on the URL Airflow would derive (asyncpg), and one on
    psycopg with its prepared statements left on, both fail some."""
    d = small
    assert d.pgbouncer is not None, "PgBouncer is on by default"
    async_url = d.workloads["api-server"].env[ASYNC_ENV]
    assert async_url.startswith("postgresql+psycopg_async://"), async_url.split("@")[0]
    assert async_url.endswith(f"@127.0.0.1:{d.pgbouncer.port}/{names.PGBOUNCER_METADATA_DB}")
    assert f"sql_alchemy_connect_args_async = {CONNECT_ARGS_ASYNC}" in d.cfg_text
    token = api_token(d)
    run_id = d.trigger()
    while_running = concurrent_waits(d.api_port, token, run_id)
    assert while_running == {"success": 32}, f"{while_running}\n{d.logs('api-server')}"
    finished = concurrent_waits(d.api_port, token, run_id, each=8)
    assert finished == {"success": 256}, f"{finished}\n{d.logs('api-server')}"
    assert "prepared statement" not in d.logs("api-server", tail=1_000_000)

    # PgBouncer's admin console takes the app role (stats_users).
    password = d._secret(names.POSTGRES_SECRET)[ROLE_PASSWORD_KEYS[names.DATABASE_APP_ROLE]]
    config = {row["key"]: row["value"] for row in d.pgbouncer.show("CONFIG", password)}
    if int(config.get("max_prepared_statements", "0")) > 0:
        return  # this PgBouncer keeps prepared statements: the controls would pass too
    controls: dict[str, dict[str, str | None]] = {
        # What Airflow derives from sql_alchemy_conn: the deployment before the fix.
        "asyncpg": {ASYNC_ENV: None},
        # psycopg without the connect args: it prepares a query run 5 times.
        "psycopg, preparing": {},
    }
    for name, env in controls.items():
        with another_api_server(d, ("sql_alchemy_connect_args_async",), env) as port:
            outcomes = concurrent_waits(port, token, run_id, each=8)
            log = (d.home / f"api-server-{port}.log").read_text(errors="replace")
        print(f"control {name}: {outcomes}")
        assert outcomes.get("success", 0) < 256, f"{name}: every wait succeeded: {outcomes}"
        assert "prepared statement" in log, f"{name}: {log[-3000:]}"


def test_the_worker_preloads_before_its_pool_forks(small: LocalDeployment) -> None:
    mark = "airflow-aks: preloaded the ORM models and the task runner before the pool forks"
    d = small
    run_id = d.trigger()
    obs = d.observe(run_id, tasks=4, timeout=180)
    assert obs.states == {"success": 4}, obs.states
    log = d.logs("worker", tail=1_000_000)
    assert log.count(mark) == 1, "once, in the worker's main process (app/config/airflow_aks_celery.py)"
    received = re.search(r"Task \S+\[[0-9a-f-]+\] received", log)
    assert received is not None, log[-3000:]
    assert log.index(mark) < received.start(), "before the worker took its first task"


def test_celery_declares_no_transient_non_exclusive_queue(services: Services, small: LocalDeployment) -> None:
    """RabbitMQ 4.3 denies transient non-exclusive queues by default (its
    transient_nonexcl_queues deprecated feature). Every queue the deployment
    makes, including a worker's remote-control queue (the liveness probe has
    pinged it) and the event receiver's queue Flower would open, must be
    durable or exclusive. The RabbitMQ here is older and allows them, so the
    test reads what was declared instead of waiting for a refusal."""
    d = small
    worker = d.workloads["worker"]
    assert d.probe_ok("worker"), d.logs("worker")
    events = subprocess.Popen(["celery", "--app", CELERY_APP, "events", "--dump"], env=d.process_env(worker),
                              cwd=d.home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        queues: list[dict[str, object]] = []

        def receiver_declared() -> bool:
            queues[:] = json.loads(services.rabbitmq.ctl(
                "list_queues", "-p", d.vhost, "name", "durable", "exclusive", "auto_delete",
                "--formatter", "json"))
            return any(str(q["name"]).startswith("celeryev.") for q in queues)

        wait_for("the event receiver's queue", receiver_declared, timeout=60)
    finally:
        os.killpg(events.pid, signal.SIGKILL)
        events.wait(timeout=30)
    by_name = {str(q["name"]): q for q in queues}
    pidbox = [n for n in by_name if n.endswith(".celery.pidbox")]
    assert pidbox, f"the worker's remote-control queue is there: {sorted(by_name)}"
    transient = sorted(n for n, q in by_name.items() if not q["durable"] and not q["exclusive"])
    assert not transient, f"transient non-exclusive queues, denied by RabbitMQ 4.3: {transient}"


def test_sigterm_to_a_worker_lets_running_tasks_finish(small: LocalDeployment) -> None:
    """Like the kubelet on scale-in or rollout: SIGTERM to the worker once its
    tasks run; each ends in success and the worker exits after them (Celery's
    warm shutdown). The worker is then started again for the last test."""
    d = small
    tasks = SMALL_TASKS
    worker = d.workloads["worker"]
    assert worker.env.get("DUMB_INIT_SETSID") == "0", "the declared worker forwards SIGTERM to Celery only"
    run_id = d.trigger()
    signalled: list[float] = []

    def on_sample(states: dict[str, int], now: float) -> None:
        if not signalled and states.get("running", 0) == tasks:
            os.kill(d.pid("worker"), signal.SIGTERM)
            signalled.append(now)

    obs = d.observe(run_id, tasks=tasks, timeout=180, on_sample=on_sample)
    assert signalled, f"the tasks never all ran: {obs.states}"
    proc = d.processes["worker"]
    proc.wait(timeout=60)
    assert obs.states == {"success": tasks}, f"zero lost, zero failed: {obs.states}\n{d.logs('worker')}"
    assert obs.finished_at is not None and obs.finished_at > signalled[0]
    assert "warm shutdown" in d.logs("worker", tail=200_000).lower()
    d.wait_worker_ready(d.start_worker())


def test_stopping_a_deployment_leaves_no_process(small: LocalDeployment) -> None:
    """Last of the shared deployment's tests: it stops the deployment (the
    fixture's own stop afterwards finds nothing left to do)."""
    d = small
    seen: set[int] = {d.processes[c].pid for c in d.processes}
    run_id = d.trigger()

    def on_sample(states: dict[str, int], now: float) -> None:
        seen.update(descendants(d.pid("worker")))
        if states.get("running", 0) == 4:
            raise StopIteration  # stop while the tasks still run

    with pytest.raises(StopIteration):
        d.observe(run_id, tasks=4, timeout=120, on_sample=on_sample)
    assert len(seen) > 4 + 4, "the worker's pool children and task processes were seen"
    d.stop()
    time.sleep(1)
    alive = [pid for pid in seen if Path(f"/proc/{pid}").exists()
             and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    assert alive == [], f"processes left behind: {alive}"
