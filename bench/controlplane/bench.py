"""Control-plane benchmark: one DAG run of N tasks against the real control plane, simulated workers.

The control plane starts as the real-Airflow tests start it (tests/local_airflow.py):
from the objects the program declares for the prod stack, with its generated
airflow.cfg and Secrets: PostgreSQL, PgBouncer, RabbitMQ, api-server, scheduler,
dag-processor and triggerer. Only the Celery workers are replaced, by
bench/controlplane/standin.py: it consumes the messages the Celery executor
publishes and, for each task, makes a supervisor's Execution API calls (start,
rendered fields, a heartbeat every `[workers] min_heartbeat_interval`, success)
with the token the message carries, and Celery stores the result the executor
reads. Thousands of tasks fit on one machine because a simulated task is a
sleeping thread, not two processes.

Per N it measures, from the run's creation by `airflow dags trigger`:
- when all N task instances were queued and when all N had started (running);
- Execution API latency p50 / p99 of start and heartbeat, as the stand-in saw it;
- CPU of every component's process tree (reaped children included), as mean
  cores per phase: queueing, starting, and the steady state in which every
  task only heartbeats; api-server CPU-s per running task per minute;
- PostgreSQL: peak server connections, transactions per second, CPU;
- failed tasks (not success in the metadata DB, or a failure the stand-in saw)
  and lost ones (the server answered a heartbeat with 404/409/410, or the
  scheduler failed them for a missing heartbeat).

With --limits each component's process tree runs in a CPU cgroup whose quota is
its declared CPU limit (the api-server's times apiServerReplicas, since one
local process serves what the replicas share), so the run shows whether the
prod-sized control plane keeps up. --api-cpu-limit M puts the api-server alone
in an M-millicore cgroup: with --api-workers 1, one uvicorn worker with its
share of a planned pod's limit, driven by its share of the running tasks (a
slice of an api-server larger than this machine).

    venv/bin/python -m bench.controlplane [--tasks 1000 3000 10000] [--hold 100] [--max-starting K]
                                         [--api-workers W] [--limits] [--api-cpu-limit M] [--table]
                                         [--config KEY=JSON ...] [--abandon K]
                                         [--out bench/results/controlplane.json]

--config KEY=JSON changes a stack config key of the prod stack for the run
(e.g. heartbeatIntervalSeconds=30, or airflowConfig='{"workers":
{"execution_api_timeout": "5.0"}}' to run an option as an older release set it).
--abandon K abandons the stand-in's first K tasks after one heartbeat (a
supervisor killed with its node): they do not count as failed or lost, and the
run records how long after their last heartbeat the scheduler failed them.

--max-starting K paces the starts: each stand-in keeps at most K start calls in
flight (by default every task calls as soon as its message arrives, as a fleet
of warm workers does). --table prints the table of the results file.

Each N is stored in the JSON file under its own key (N, "burst" or "paced K",
the api workers and limits), next to the entries already there.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.local_airflow import (
    LocalDeployment,
    Services,
    deployment,
    descendants,
    local_services,
    stack_config,
    wait_for,
)
from tests.real_airflow import ROOT, airflow_python

STACK = "prod"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SAMPLE_EVERY_S = 1.0
# Sampled before the trigger: what each component uses with nothing to run,
# taken out of the per-task figures.
IDLE_S = 15.0
MEMORY_EVERY = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000


# --------------------------------------------------------------------------
# CPU of process trees, from /proc
# --------------------------------------------------------------------------


def _proc_table() -> tuple[dict[int, list[int]], dict[int, float]]:
    """Children by parent, and each process's CPU seconds: its own plus that of
    the children it has reaped (cutime, cstime), so a tree's CPU stays counted
    after short-lived children (PostgreSQL backends, publisher processes) exit."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(pid)
            cpu[pid] = sum(int(v) for v in fields[11:15]) / CLK_TCK
    return children, cpu


def tree_cpu_s(root: int, children: dict[int, list[int]], cpu: dict[int, float]) -> float:
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def tree_pss_mib(root: int, children: dict[int, list[int]]) -> float:
    """Proportional set size of a process tree, from /proc/*/smaps_rollup."""
    total_kib, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


# --------------------------------------------------------------------------
# CPU limits: a cgroup (v1 cpu controller) per component
# --------------------------------------------------------------------------


def millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def declared_cpu_limits(d: LocalDeployment) -> dict[str, int]:
    """Each workload's CPU limit in millicores, from its declared container (and
    the api-server's times its replicas)."""
    limits: dict[str, int] = {}
    for m in d.run.manifests():
        if m["kind"] not in ("Deployment", "StatefulSet"):
            continue
        container = m["spec"]["template"]["spec"]["containers"][0]
        cpu = container.get("resources", {}).get("limits", {}).get("cpu")
        if cpu is None:
            continue
        name = m["metadata"]["name"].removeprefix("airflow-")
        limits[name] = millicores(str(cpu)) * int(m["spec"].get("replicas", 1))
    return limits


class CpuLimits:
    """One cgroup per component with cpu.cfs_quota_us = its limit; processes
    moved in before they fork their workers, so the children inherit it."""

    def __init__(self, tag: str) -> None:
        self.root = CGROUP_CPU / f"airflow-aks-controlplane-{tag}"
        self.groups: list[Path] = []

    def limit(self, name: str, pid: int, limit_m: int) -> None:
        group = self.root / name
        group.mkdir(parents=True, exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(limit_m * CFS_PERIOD_US // 1000))
        self.groups.append(group)
        for p in [pid, *descendants(pid)]:
            with contextlib.suppress(OSError):
                (group / "cgroup.procs").write_text(str(p))

    def throttled_s(self) -> dict[str, float]:
        out = {}
        for group in self.groups:
            stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
            out[group.name] = round(int(stat.get("throttled_time", 0)) / 1e9, 1)
        return out

    def remove(self) -> None:
        for group in self.groups:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                group.rmdir()
        with contextlib.suppress(OSError):
            self.root.rmdir()


# --------------------------------------------------------------------------
# The stand-in workers
# --------------------------------------------------------------------------


@dataclass
class StandIn:
    name: str
    process: subprocess.Popen[bytes]
    stats_path: Path
    log_path: Path

    def stats(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.stats_path.read_text())
        return {}


def start_standins(d: LocalDeployment, tasks: int, processes: int, max_starting: int | None,
                   abandon: int = 0) -> list[StandIn]:
    """Start the stand-ins where the worker would start: the worker's declared
    environment and the deployment's AIRFLOW_HOME (airflow.cfg, config/)."""
    worker = d.workloads["worker"]
    env = d.process_env(worker)
    env["PYTHONPATH"] = str(ROOT)
    per_process = -(-tasks // processes)
    found = []
    for i in range(processes):
        name = f"standin{i}"
        stats_path, log_path = d.home / f"{name}.json", d.home / f"{name}.log"
        proc = subprocess.Popen(
            [str(airflow_python()), "-m", "bench.controlplane.standin", "--stats", str(stats_path),
             "--concurrency", str(per_process), "--name", name,
             *(["--max-starting", str(max_starting)] if max_starting else []),
             *(["--abandon", str(abandon)] if abandon and i == 0 else [])],
            env=env, cwd=d.home, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        # LocalDeployment.stop() kills every process group it knows, whatever happens here.
        d.processes[name] = proc
        found.append(StandIn(name, proc, stats_path, log_path))

    def ready() -> bool:
        for s in found:
            if s.process.poll() is not None:
                raise RuntimeError(f"{s.name} exited with {s.process.returncode}:\n"
                                   f"{s.log_path.read_text(errors='replace')[-3000:]}")
        return all(s.stats().get("ready") for s in found)

    wait_for("the stand-in workers", ready, timeout=180)
    return found


def stop_standins(standins: list[StandIn], d: LocalDeployment) -> None:
    """Celery's warm shutdown (SIGTERM), so each writes its final figures."""
    for s in standins:
        if s.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.process.pid, signal.SIGTERM)
    for s in standins:
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.process.wait(timeout=60)
        d.processes.pop(s.name, None)
        if s.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.process.pid, signal.SIGKILL)
            s.process.wait()


# --------------------------------------------------------------------------
# Sampling while the run goes
# --------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # wall clock
    states: dict[str, int]
    cpu: dict[str, float]
    pg_connections: int
    pg_xacts: int


@dataclass
class Sampler:
    d: LocalDeployment
    services: Services
    run_id: str
    roots: dict[str, int]
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    # Peak PSS of each tree, MiB, taken every MEMORY_EVERY samples.
    peak_pss_mib: dict[str, float] = field(default_factory=dict)

    def loop(self) -> None:
        with self.d.connect() as conn:
            while not self.stop.is_set():
                began = time.monotonic()
                rows = conn.execute("SELECT coalesce(state, 'none'), count(*) FROM task_instance "
                                    "WHERE run_id = %s GROUP BY 1", [self.run_id]).fetchall()
                pg = conn.execute(
                    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = 'airflow'),"
                    " (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s)",
                    [self.d.database]).fetchone()
                children, cpu = _proc_table()
                usage = {name: tree_cpu_s(pid, children, cpu) for name, pid in self.roots.items()}
                usage["machine"] = machine_busy_s()
                if len(self.samples) % MEMORY_EVERY == 0:
                    for name, pid in self.roots.items():
                        pss = tree_pss_mib(pid, children)
                        self.peak_pss_mib[name] = round(max(self.peak_pss_mib.get(name, 0.0), pss), 1)
                self.samples.append(Sample(time.time(), dict(rows), usage, int(pg[0]), int(pg[1])))
                self.stop.wait(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - began)))


def process_roots(d: LocalDeployment, services: Services, standins: list[StandIn]) -> dict[str, int]:
    postmaster = int((services.postgres.dir / "data" / "postmaster.pid").read_text().split()[0])
    roots = {c: d.pid(c) for c in COMPONENTS}
    roots["postgres"] = postmaster
    if d.pgbouncer is not None and d.pgbouncer.process is not None:
        roots["pgbouncer"] = d.pgbouncer.process.pid
    if services.rabbitmq.process is not None:
        roots["rabbitmq"] = services.rabbitmq.process.pid
    for s in standins:
        roots[s.name] = s.process.pid
    return roots


# --------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------


def cfg_int(cfg_text: str, section: str, option: str, default: int) -> int:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    return parser.getint(section, option, fallback=default)


def run_config(tasks: int, hold: float, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The prod stack file, with the reference DAG at width N holding each slot
    `hold` seconds; parallelism (prod: 1000) raised to N when N is larger, so
    the run measures N tasks at once rather than the cap; then `changes`."""
    base = stack_config(STACK)
    parallelism = max(int(base["airflow-aks:parallelism"]), tasks)
    return stack_config(STACK, parallelism=parallelism, fanoutTasks=tasks, fanoutSleepSeconds=int(hold),
                        **(changes or {}))


def measure(tasks: int, hold: float = 100, *, processes: int = 1, limits: bool = False,
            max_starting: int | None = None, api_workers: int | None = None,
            timeout: float | None = None, api_cpu_limit: int | None = None,
            changes: dict[str, Any] | None = None, abandon: int = 0) -> dict[str, Any]:
    """One DAG run of width `tasks` against the control plane; the figures of the JSON entry.

    api_workers runs the api-server with that many uvicorn workers instead of the
    cfg's `[api] workers`, through the environment, as a pod spec would.
    api_cpu_limit puts the api-server alone (or, with limits, instead of its
    declared limit) in a CPU cgroup of that many millicores: a slice of a
    planned api-server, e.g. one uvicorn worker with its share of a pod's limit."""
    config = run_config(tasks, hold, changes)
    with local_services(STACK, config) as services, \
            deployment(services, config, stack=STACK, start=False) as d:
        if api_workers is not None:
            d.workloads["api-server"].env["AIRFLOW__API__WORKERS"] = str(api_workers)
        cgroups = CpuLimits(d.id) if limits or api_cpu_limit else None
        try:
            return _measure(d, services, tasks, hold, processes, cgroups, max_starting, timeout,
                            limits=limits, api_cpu_limit=api_cpu_limit, abandon=abandon)
        finally:
            if cgroups is not None:
                cgroups.remove()


def _measure(d: LocalDeployment, services: Services, tasks: int, hold: float, processes: int,
             cgroups: CpuLimits | None, max_starting: int | None, timeout: float | None, *,
             limits: bool = False, api_cpu_limit: int | None = None, abandon: int = 0) -> dict[str, Any]:
    declared_limits = declared_cpu_limits(d)
    if api_cpu_limit is not None:
        declared_limits["api-server"] = api_cpu_limit
    d.start(*COMPONENTS)
    if cgroups is not None:
        for component in COMPONENTS if limits else ("api-server",):
            cgroups.limit(component, d.pid(component), declared_limits[component])
    if cgroups is not None and limits:
        cgroups.limit("postgres", int((services.postgres.dir / "data" / "postmaster.pid").read_text().split()[0]),
                      declared_limits["postgres"])
        if services.rabbitmq.process is not None:
            cgroups.limit("rabbitmq", services.rabbitmq.process.pid, declared_limits["rabbitmq"])
        if d.pgbouncer is not None and d.pgbouncer.process is not None:
            cgroups.limit("pgbouncer", d.pgbouncer.process.pid, declared_limits["pgbouncer"])
    ready_s = d.wait_ready(timeout=900)
    # The api-server builds its Execution API app on the first request to it
    # (about 4 s here), longer than a supervisor's 5 s timeout takes to be
    # hit by a burst queued behind it. Prod's api-servers are long-lived, so
    # the run starts on a warm one; the cold first call is recorded.
    # Each uvicorn worker builds its own: call until three calls in a row are quick.
    calls: list[float] = []
    while len(calls) < 20 and (len(calls) < 3 or max(calls[-3:]) > 0.5):
        began = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{d.api_port}/execution/health", timeout=120) as response:
            assert response.status == 200
        calls.append(time.monotonic() - began)
    execution_api_first_call_s = calls[0]
    standins = start_standins(d, tasks, processes, max_starting, abandon)
    roots = process_roots(d, services, standins)
    d.airflow("dags", "unpause", "fanout")
    run_id = f"controlplane__{d.id}__{tasks}"
    sampler = Sampler(d, services, run_id, roots)
    thread = threading.Thread(target=sampler.loop, daemon=True)
    thread.start()
    idle = (time.time(), time.time() + IDLE_S)
    time.sleep(IDLE_S + SAMPLE_EVERY_S)
    cli_began = time.time()
    d.airflow("dags", "trigger", "fanout", "--run-id", run_id, timeout=600)
    cli_s = time.time() - cli_began
    limit = timeout if timeout is not None else hold * 3 + tasks * 0.5 + 600
    if abandon:
        limit += cfg_int(d.cfg_text, "scheduler", "task_instance_heartbeat_timeout", 300)
    finished = _wait_finished(d, run_id, tasks, limit)
    time.sleep(2 * SAMPLE_EVERY_S)
    sampler.stop.set()
    thread.join()
    throttled = cgroups.throttled_s() if cgroups is not None else None
    stop_standins(standins, d)
    stand = [s.stats() for s in standins]
    facts = _db_facts(d, run_id)
    facts["abandoned"] = _abandoned(d, [a for s in stand for a in s.get("abandoned", [])])
    scheduler_log = d.logs("scheduler", tail=50_000_000)
    result = summarise(tasks, hold, d, sampler.samples, stand, facts, scheduler_log, finished, idle)
    result.update({
        "control_plane_ready_s": round(ready_s, 1),
        "execution_api_first_call_s": round(execution_api_first_call_s, 2),
        "trigger_cli_s": round(cli_s, 1),
        "stand_in_processes": processes,
        "max_starting": max_starting,
        "api_workers": int(d.workloads["api-server"].env.get("AIRFLOW__API__WORKERS")
                           or cfg_int(d.cfg_text, "api", "workers", 1)),
        "cpu_limits_m": ({k: declared_limits[k] for k in (*COMPONENTS, "postgres", "rabbitmq", "pgbouncer")
                          if k in declared_limits} if limits else
                         {"api-server": api_cpu_limit} if api_cpu_limit else None),
        "cpu_throttled_s": throttled,
        "peak_pss_mib": sampler.peak_pss_mib,
    })
    return result


def _wait_finished(d: LocalDeployment, run_id: str, tasks: int, limit: float) -> bool:
    terminal = ("success", "failed", "skipped", "upstream_failed", "removed")
    deadline = time.monotonic() + limit
    with d.connect() as conn:
        while time.monotonic() < deadline:
            done = conn.execute("SELECT count(*) FROM task_instance WHERE run_id = %s AND state = ANY(%s)",
                                [run_id, list(terminal)]).fetchone()[0]
            if done >= tasks:
                return True
            time.sleep(1)
    return False


def _db_facts(d: LocalDeployment, run_id: str) -> dict[str, Any]:
    """When the run was created, when its tasks were queued and started, how they ended."""
    [(created,)] = d.query("SELECT extract(epoch FROM queued_at) FROM dag_run WHERE run_id = %s", [run_id])
    [(queued_last, started_last, started_first, ended_last, ended_first, tries)] = d.query(
        "SELECT extract(epoch FROM max(queued_dttm)), extract(epoch FROM max(start_date)),"
        " extract(epoch FROM min(start_date)), extract(epoch FROM max(end_date)),"
        " extract(epoch FROM min(end_date)), coalesce(max(try_number), 0)"
        " FROM task_instance WHERE run_id = %s", [run_id])
    states = dict(d.query("SELECT coalesce(state, 'none'), count(*) FROM task_instance WHERE run_id = %s "
                          "GROUP BY 1", [run_id]))
    retried = d.query("SELECT count(*) FROM task_instance WHERE run_id = %s AND try_number > 1", [run_id])[0][0]
    # One row per task that the stand-in's rendered-fields call wrote through the api-server.
    rtif = d.query("SELECT count(*) FROM rendered_task_instance_fields WHERE run_id = %s", [run_id])[0][0]
    celery: dict[str, int] = {}
    with contextlib.suppress(Exception):
        celery = dict(d.query("SELECT status, count(*) FROM celery_taskmeta GROUP BY 1"))
    return {"created": float(created), "queued_last": _f(queued_last), "started_first": _f(started_first),
            "started_last": _f(started_last), "ended_first": _f(ended_first), "ended_last": _f(ended_last),
            "max_try": int(tries), "retried": int(retried), "states": states, "celery_results": celery,
            "rendered_fields_rows": int(rtif)}


def _abandoned(d: LocalDeployment, abandoned: list[dict[str, Any]]) -> dict[str, Any]:
    """How the scheduler ended the abandoned tasks, and how long after their last heartbeat."""
    if not abandoned:
        return {"n": 0}
    rows = dict((str(i), (s, _f(e))) for i, s, e in d.query(
        "SELECT id::text, state, extract(epoch FROM end_date) FROM task_instance WHERE id::text = ANY(%s)",
        [[a["id"] for a in abandoned]]))
    after = sorted(rows[a["id"]][1] - a["last_heartbeat_wall"] for a in abandoned
                   if a["id"] in rows and rows[a["id"]][1] is not None)
    states: dict[str, int] = {}
    for state, _ in rows.values():
        states[str(state)] = states.get(str(state), 0) + 1
    return {"n": len(abandoned), "states": states, "ended": len(after),
            "noticed_after_last_heartbeat_s": {"min": _r(after[0], 1) if after else None,
                                                "max": _r(after[-1], 1) if after else None}}


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def _rate(samples: list[Sample], key: str, t0: float, t1: float) -> float | None:
    """Mean cores of one process tree between two wall-clock times."""
    inside = [s for s in samples if t0 <= s.t <= t1]
    if len(inside) < 2 or inside[-1].t - inside[0].t < 1:
        return None
    return (inside[-1].cpu.get(key, 0) - inside[0].cpu.get(key, 0)) / (inside[-1].t - inside[0].t)


def _peak_rate(samples: list[Sample], key: str, window: int = 5) -> float | None:
    best = None
    for a, b in zip(samples, samples[window:], strict=False):
        rate = (b.cpu.get(key, 0) - a.cpu.get(key, 0)) / (b.t - a.t)
        best = rate if best is None else max(best, rate)
    return best


def _tps(samples: list[Sample], t0: float, t1: float) -> float | None:
    inside = [s for s in samples if t0 <= s.t <= t1]
    if len(inside) < 2 or inside[-1].t - inside[0].t < 1:
        return None
    return (inside[-1].pg_xacts - inside[0].pg_xacts) / (inside[-1].t - inside[0].t)


def _peak_tps(samples: list[Sample], window: int = 5) -> float | None:
    rates = [(b.pg_xacts - a.pg_xacts) / (b.t - a.t) for a, b in zip(samples, samples[window:], strict=False)]
    return max(rates, default=None)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _after(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 1)


def summarise(tasks: int, hold: float, d: LocalDeployment, samples: list[Sample], stand: list[dict[str, Any]],
              facts: dict[str, Any], scheduler_log: str, finished: bool,
              idle: tuple[float, float]) -> dict[str, Any]:
    t0 = facts["created"]
    # Phases, wall clock: queueing (run created until the last task queued),
    # starting (until the last one started), steady (every task started and
    # none ended yet, less a heartbeat interval at each edge, so only
    # heartbeats fall in it).
    interval = stand[0].get("heartbeat_interval_s", 5) if stand else 5
    queued_last, started_last, ended_first = facts["queued_last"], facts["started_last"], facts["ended_first"]
    steady = None
    if started_last is not None and ended_first is not None and ended_first - started_last > 2 * interval + 5:
        steady = (started_last + interval, ended_first - interval)
    end = samples[-1].t if samples else t0
    keys = [k for k in (samples[0].cpu if samples else {}) if k != "machine"]
    standin_keys = [k for k in keys if k.startswith("standin")]

    def phases(key: str) -> dict[str, float | None]:
        return {
            "idle": _r(_rate(samples, key, *idle)),
            "queueing": _r(_rate(samples, key, t0, queued_last)) if queued_last else None,
            "starting": _r(_rate(samples, key, t0, started_last)) if started_last else None,
            "steady": _r(_rate(samples, key, *steady)) if steady else None,
            "run": _r(_rate(samples, key, t0, end)),
            "peak_5s": _r(_peak_rate([s for s in samples if s.t >= t0], key)),
        }

    cores = {k: phases(k) for k in [*keys, "machine"]}
    # What the machine did besides this deployment (anything else running on
    # it), per phase (peaks do not add up, so none).
    cores["other"] = {phase: None if value is None or phase == "peak_5s" else
                      _r(max(0.0, value - sum(cores[k][phase] or 0.0 for k in keys)))
                      for phase, value in cores["machine"].items()}
    total_cpu_s = {k: _r((samples[-1].cpu.get(k, 0) - _first_at(samples, t0).cpu.get(k, 0)), 1)
                   for k in keys} if samples else {}
    # Task-minutes held: every task holds its slot `hold` seconds after it starts.
    # The api-server's figures per task are net of what it uses idle.
    task_minutes = tasks * hold / 60
    api = cores["api-server"]
    api_idle = api["idle"] or 0.0
    api_per_task_min_steady = None if api["steady"] is None else (api["steady"] - api_idle) * 60 / tasks
    api_per_task_min_run = None if not total_cpu_s else \
        (total_cpu_s["api-server"] - api_idle * (end - t0)) / task_minutes

    calls: dict[str, int] = {}
    for s in stand:
        for kind, n in s.get("calls", {}).items():
            calls[kind] = calls.get(kind, 0) + n
    latency = _merge_latency(stand)
    lost_by_server = [x for s in stand for x in s.get("lost", [])]
    failed_seen = [x for s in stand for x in s.get("failed", [])]
    states = facts["states"]
    abandoned = facts.get("abandoned", {"n": 0})
    # Abandoned tasks are meant to fail, found by the scheduler's heartbeat timeout.
    not_success = tasks - abandoned["n"] - states.get("success", 0)
    no_heartbeat = len(re.findall(r"Detected a task instance without a heartbeat", scheduler_log))
    no_heartbeat = max(0, no_heartbeat - abandoned.get("ended", 0))
    max_running = max((s.states.get("running", 0) for s in samples), default=0)
    return {
        "tasks": tasks,
        "hold_s": hold,
        "parallelism": cfg_int(d.cfg_text, "core", "parallelism", 32),
        "heartbeat_interval_s": interval,
        "heartbeat_timeout_s": stand[0].get("heartbeat_timeout_s") if stand else None,
        "finished": finished,
        "all_queued_after_s": _after(queued_last, t0),
        "all_started_after_s": _after(started_last, t0),
        "first_started_after_s": _after(facts["started_first"], t0),
        "all_ended_after_s": _after(facts["ended_last"], t0),
        "most_running_at_once": max_running,
        "steady_window_s": None if steady is None else round(steady[1] - steady[0], 1),
        "latency_s": latency,
        "heartbeat_gap_s": _merge_summary([s.get("heartbeat_gap_s", {}) for s in stand]),
        "api_server_cpu_s_per_task_minute": {"steady": _r(api_per_task_min_steady, 4),
                                             "run": _r(api_per_task_min_run, 4)},
        "cores": cores,
        "cpu_s": total_cpu_s,
        "postgres": {
            "peak_server_connections": max((s.pg_connections for s in samples), default=None),
            "tps": {"idle": _r(_tps(samples, *idle), 1),
                    "starting": _r(_tps(samples, t0, started_last), 1) if started_last else None,
                    "steady": _r(_tps(samples, *steady), 1) if steady else None,
                    "run": _r(_tps(samples, t0, end), 1), "peak_5s": _r(_peak_tps(samples), 1)},
        },
        "stand_in": {
            "consumed": sum(s.get("consumed", 0) for s in stand),
            "done": sum(s.get("done", 0) for s in stand),
            "max_active": sum(s.get("max_active", 0) for s in stand),
            "calls": calls,
            "statuses": _sum_dicts([s.get("statuses", {}) for s in stand]),
            "refreshed_tokens": sum(s.get("refreshed_tokens", 0) for s in stand),
            "cpu_s": round(sum(total_cpu_s.get(k, 0) or 0 for k in standin_keys), 1),
            "max_rss_mib": round(sum(s.get("max_rss_mib", 0) for s in stand), 1),
        },
        "task_states": states,
        "celery_results": facts["celery_results"],
        "rendered_fields_rows": facts["rendered_fields_rows"],
        "retried": facts["retried"],
        "failed": max(not_success, len(failed_seen)),
        "lost": len(lost_by_server) + no_heartbeat,
        "failures_seen": failed_seen[:20],
        "lost_seen": lost_by_server[:20],
        "scheduler_no_heartbeat_lines": no_heartbeat,
        "task_instance_heartbeat_timeout_s": cfg_int(d.cfg_text, "scheduler", "task_instance_heartbeat_timeout", 300),
        "execution_api_timeout_s": _cfg_float(d.cfg_text, "workers", "execution_api_timeout", 5.0),
        "abandoned": abandoned,
    }


def _cfg_float(cfg_text: str, section: str, option: str, default: float) -> float:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg_text)
    return parser.getfloat(section, option, fallback=default)


def _first_at(samples: list[Sample], t0: float) -> Sample:
    before = [s for s in samples if s.t <= t0]
    return before[-1] if before else samples[0]


def _sum_dicts(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in dicts:
        for k, v in x.items():
            out[k] = out.get(k, 0) + v
    return out


def _merge_summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of several stand-ins: exact for one, the worst part's otherwise."""
    parts = [p for p in parts if p.get("n")]
    if not parts:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": sum(p["n"] for p in parts), "p50": max(p["p50"] for p in parts),
            "p99": max(p["p99"] for p in parts), "max": max(p["max"] for p in parts)}


def _merge_latency(stand: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = {k for s in stand for k in s.get("latency_s", {})}
    return {k: _merge_summary([s.get("latency_s", {}).get(k, {}) for s in stand]) for k in sorted(kinds)}


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

COLUMNS = ("N", "hold", "all queued", "all started", "most running", "start p50/p99", "heartbeat p50/p99",
           "api CPU-s/task/min", "api cores", "scheduler cores", "PG conns", "PG TPS", "PG cores",
           "machine cores", "other cores", "failed", "lost")


def row(key: str, r: dict[str, Any]) -> list[str]:
    def ms(s: dict[str, Any]) -> str:
        if not s or s.get("p50") is None:
            return "-"
        return f"{s['p50'] * 1000:.0f} / {s['p99'] * 1000:.0f} ms"

    # The steady state when there is one, else the starting phase (every task
    # started or starting, the heartbeats of those started coming in).
    which = "steady" if r["cores"]["api-server"].get("steady") is not None else "starting"

    def phase(c: dict[str, Any]) -> str:
        value = c.get(which)
        return "-" if value is None else f"{value:.2f}"

    api = r["api_server_cpu_s_per_task_minute"]
    per_task = api["steady"] if api["steady"] is not None else api["run"]
    tps = r["postgres"]["tps"].get(which)
    return [key, f"{r['hold_s']:g} s", f"{r['all_queued_after_s']} s", f"{r['all_started_after_s']} s",
            str(r["most_running_at_once"]), ms(r["latency_s"].get("start", {})),
            ms(r["latency_s"].get("heartbeat", {})), "-" if per_task is None else f"{per_task:.4f}",
            phase(r["cores"]["api-server"]), phase(r["cores"]["scheduler"]),
            str(r["postgres"]["peak_server_connections"]),
            "-" if tps is None else f"{tps:.0f}", phase(r["cores"]["postgres"]), phase(r["cores"]["machine"]),
            phase(r["cores"]["other"]), str(r["failed"]), str(r["lost"])]


HEARTBEAT_COLUMNS = ("run", "interval", "execution_api_timeout", "heartbeat timeout", "api CPU-s/task/min",
                     "api millicores per running task", "heartbeat p50/p99", "failed", "lost", "abandoned",
                     "abandoned failed after")


def heartbeat_row(key: str, r: dict[str, Any]) -> list[str]:
    """A run with abandoned tasks: what its heartbeats cost and how soon the scheduler failed the abandoned."""
    api = r["api_server_cpu_s_per_task_minute"]
    per_task = api["steady"] if api["steady"] is not None else api["run"]
    hb = r["latency_s"].get("heartbeat", {})
    a = r["abandoned"]
    after = a.get("noticed_after_last_heartbeat_s", {})
    failed_after = "-" if after.get("min") is None else f"{after['min']:.0f}-{after['max']:.0f} s"
    return [key, f"{r['heartbeat_interval_s']} s", f"{r['execution_api_timeout_s']:g} s",
            f"{r['task_instance_heartbeat_timeout_s']} s", "-" if per_task is None else f"{per_task:.4f}",
            "-" if per_task is None else f"{per_task * 1000 / 60:.2f}",
            "-" if hb.get("p50") is None else f"{hb['p50'] * 1000:.0f} / {hb['p99'] * 1000:.0f} ms",
            str(r["failed"]), str(r["lost"]), f"{a.get('states', {}).get('failed', 0)} of {a['n']} failed",
            failed_after]


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = [row(k, r) for k, r in results.items()]
    print("| " + " | ".join(COLUMNS) + " |")
    print("| " + " | ".join("---" for _ in COLUMNS) + " |")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    print("cores and PG TPS: mean over the steady state (every task started, none ended, only heartbeats), or "
          "over the starting phase when there is none; other: the machine less this deployment's processes; "
          "times from the run's creation")
    abandoning = {k: r for k, r in results.items() if r.get("abandoned", {}).get("n")}
    if abandoning:
        print()
        print("| " + " | ".join(HEARTBEAT_COLUMNS) + " |")
        print("| " + " | ".join("---" for _ in HEARTBEAT_COLUMNS) + " |")
        for key, r in abandoning.items():
            print("| " + " | ".join(heartbeat_row(key, r)) + " |")
        print("abandoned failed after: from each abandoned task's last heartbeat to its end in the metadata database")


def _change(item: str) -> tuple[str, Any]:
    key, _, raw = item.partition("=")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def run_key(tasks: int, max_starting: int | None, limits: bool, api_workers: int | None = None,
            api_cpu_limit: int | None = None, changes: dict[str, Any] | None = None, abandon: int = 0) -> str:
    """The run's key in the results file and first cell in the table: N, how starts
    arrive (all at once, or paced: at most K start calls in flight), the api-server's
    workers when not the cfg's, limits."""
    starts = f"paced {max_starting}" if max_starting else "burst"
    workers = f", {api_workers} api workers" if api_workers else ""
    api_limit = f", api-server at {api_cpu_limit}m" if api_cpu_limit else ""
    changed = "".join(f", {k} {json.dumps(v, sort_keys=True)}" for k, v in sorted((changes or {}).items()))
    abandoned = f", {abandon} abandoned" if abandon else ""
    return f"{tasks} {starts}{workers}{api_limit}{' limits' if limits else ''}{changed}{abandoned}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--hold", type=int, nargs="+", default=[100],
                        help="seconds each task holds its slot; one value for every N or one per N")
    parser.add_argument("--processes", type=int, default=1, help="stand-in processes (each a Celery worker)")
    parser.add_argument("--limits", action="store_true", help="each component under its declared CPU limit")
    parser.add_argument("--api-workers", type=int, help="uvicorn workers of the api-server (default: the cfg's)")
    parser.add_argument("--api-cpu-limit", type=int, metavar="MILLICORES",
                        help="the api-server in a CPU cgroup of this size (a slice of a planned api-server)")
    parser.add_argument("--timeout", type=float,
                        help="seconds after the trigger to stop waiting for the run (recorded as not finished)")
    parser.add_argument("--max-starting", type=int,
                        help="start calls in flight at once per stand-in (default: none, every task at once)")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=JSON",
                        help="change a prod stack config key for the run (value as JSON, else a string)")
    parser.add_argument("--abandon", type=int, default=0,
                        help="abandon the first K tasks after one heartbeat (a killed supervisor)")
    parser.add_argument("--label", help="the run's key in the results file (default: from the options)")
    parser.add_argument("--note", default="")
    parser.add_argument("--table", action="store_true", help="print the table of the results file and exit")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "controlplane.json")
    args = parser.parse_args()
    if args.table:
        stored_runs = json.loads(args.out.read_text())["runs"]
        print_table({k: r for k, r in stored_runs.items() if "error" not in r})
        return
    changes = dict(_change(item) for item in args.config)
    holds = args.hold if len(args.hold) == len(args.tasks) else [args.hold[0]] * len(args.tasks)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                            check=False).stdout.strip()
    results: dict[str, dict[str, Any]] = {}
    for tasks, hold in zip(args.tasks, holds, strict=True):
        key = args.label or run_key(tasks, args.max_starting, args.limits, args.api_workers, args.api_cpu_limit,
                                    changes, args.abandon)
        began = time.time()
        try:
            result = measure(tasks, hold, processes=args.processes, limits=args.limits,
                             max_starting=args.max_starting, api_workers=args.api_workers, timeout=args.timeout,
                             api_cpu_limit=args.api_cpu_limit, changes=changes, abandon=args.abandon)
        except Exception as exc:  # a run the machine cannot finish is a result too
            result = {"tasks": tasks, "hold_s": hold, "error": f"{type(exc).__name__}: {exc}"[:4000]}
        result.update({"commit": commit, "note": args.note, "measured_at": datetime.now().isoformat(timespec="seconds"),
                       "wall_s": round(time.time() - began, 1),
                       "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}})
        results[key] = result
        stored = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
        stored["runs"][key] = result
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(stored, indent=2, sort_keys=False) + "\n")
        print(f"N={tasks}: {'error: ' + result['error'][:300] if 'error' in result else 'done'}", flush=True)
    print_table({k: r for k, r in results.items() if "error" not in r})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
