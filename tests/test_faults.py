"""Faults during a running fan-out: each part hard-killed and started again (issue 24).

One deployment of the dev stack (tests/local_airflow.py: the declared objects
as local processes on real Airflow, PostgreSQL, RabbitMQ and PgBouncer) runs
an 8-task fan-out per test. Once every task runs, one part is SIGKILLed with
its whole process tree, as a container dies when its node is lost or the
kernel's OOM killer ends it (every process of the container's cgroup goes),
and started again 15 s later, as the kubelet starts the container again. Any
other Airflow component that exits meanwhile (one that gave up on the lost
part) is started again too, after the kubelet's first back-off of 10 s
(https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-restarts).

Every task that was running must end in success. With AIRFLOW_AKS_RECORD=1
each test writes what it measured to bench/results/faults.json, which README's
fault table ("Faults") quotes; tests/test_bench_tables.py keeps the two equal.
Regenerate with `AIRFLOW_AKS_RECORD=1 venv/bin/python -m pytest
tests/test_faults.py` (under the CPU lock). A plain run leaves the file alone,
so the suite's own run never changes a committed figure under README.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from tests.harness import ROOT
from tests.local_airflow import (
    LocalDeployment,
    Services,
    deployment,
    descendants,
    stack_config,
    wait_for,
)

# Real components (scripts/test --fast leaves these out).
pytestmark = pytest.mark.real

TASKS = 8
SLEEP_SECONDS = 20
# How long a killed part stays down before it is started again.
DOWN_SECONDS = 15
# Once every task runs, this long before the kill: each task is past its
# start (the Execution API calls that start it) and only heartbeats.
SETTLE_SECONDS = 2
# The kubelet's first back-off before it starts an exited container again.
KUBELET_BACKOFF_SECONDS = 10
# taskRetryDelaySeconds for this stack (the default is 60 s). Only the killed
# worker's tasks are retried, and the wait for their retry is config, not
# what the test checks: the worker test reads the delay back from the
# generated airflow.cfg and holds each retry to it, whatever it is. 10 s
# instead of 60 takes 50 s off the module and leaves the other rows alone.
RETRY_DELAY_SECONDS = 10
CONFIG = stack_config("dev", fanoutTasks=TASKS, fanoutSleepSeconds=SLEEP_SECONDS,
                      taskRetryDelaySeconds=RETRY_DELAY_SECONDS)
RESULTS = ROOT / "bench" / "results" / "faults.json"
COMMAND = "AIRFLOW_AKS_RECORD=1 venv/bin/python -m pytest tests/test_faults.py"

# Results key -> the fault's name in README's table.
FAULTS = {
    "broker": "RabbitMQ (broker)",
    "database": "PostgreSQL",
    "pgbouncer": "PgBouncer",
    "scheduler": "scheduler",
    "api-server": "api-server",
    "worker": "the worker (its tasks lost)",
}
README_COLUMNS = ("Fault", "Tasks succeeded / total", "Retried", "Part serving again", "Last task done",
                  "Run ended later by", "Restarted by the kubelet", "What Airflow does")


def readme_row(key: str, result: dict[str, Any]) -> list[str]:
    """README's cells for one stored result, but the last (prose) column."""
    return [
        FAULTS[key],
        f"{result['succeeded']} / {result['tasks']}",
        str(result["retried"]),
        f"{result['back_s']:.0f} s",
        f"{result['recovery_s']:.0f} s",
        f"{result['late_s']:.0f} s",
        ", ".join(result["restarted_by_kubelet"]) or "-",
    ]


# --------------------------------------------------------------------------
# Killing a part and starting it again
# --------------------------------------------------------------------------


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (task
    processes run in groups of their own), as a container's cgroup dies."""
    tree = [pid, *descendants(pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for each in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


class Kubelet:
    """Starts an Airflow component of the deployment again once it has exited
    and the first back-off has passed, as the kubelet does for a container
    whose pod's restartPolicy is Always. A component in `held` is the one a
    test killed and starts itself."""

    def __init__(self, d: LocalDeployment) -> None:
        self.d = d
        self.held: set[str] = set()
        self.restarted: list[str] = []
        self._exited: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def all_up(self) -> bool:
        """Every component's process runs and none is held."""
        return not self.held and all(proc.poll() is None for proc in self.d.processes.values())

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for component, proc in list(self.d.processes.items()):
                if component in self.held or proc.poll() is None:
                    self._exited.pop(component, None)
                    continue
                exited = self._exited.setdefault(component, time.monotonic())
                if time.monotonic() - exited >= KUBELET_BACKOFF_SECONDS:
                    start_again(self.d, component)
                    self.restarted.append(component)
                    self._exited.pop(component, None)


def start_again(d: LocalDeployment, component: str) -> None:
    """Start a component again, keeping its earlier log beside the new one."""
    log = d.home / f"{component}.log"
    if log.exists():
        log.rename(d.home / f"{component}.{time.time_ns()}.log")
    d.start(component)


@dataclass
class Part:
    """How to hard-kill one part and start it again (returning once it serves)."""

    kill: Callable[[], None]
    start: Callable[[], None]
    component: str | None = None


def part(d: LocalDeployment, services: Services, fault: str) -> Part:
    if fault == "broker":
        # The node's tree; Erlang's port mapper (epmd) runs detached and
        # lives on, where in the pod it would die and start again with the
        # node: it holds only the node's name and port, which the node
        # registers again as it starts.
        mq = services.rabbitmq
        assert mq.process is not None
        return Part(lambda: kill_tree(mq.process.pid), mq.start)  # type: ignore[union-attr]
    if fault == "database":
        pg = services.postgres
        return Part(lambda: kill_tree(pg.postmaster_pid()), pg.start_server)
    if fault == "pgbouncer":
        bouncer = d.pgbouncer
        assert bouncer is not None and bouncer.process is not None, "the dev stack declares PgBouncer"
        return Part(lambda: kill_tree(bouncer.process.pid), bouncer.start)  # type: ignore[union-attr]
    component = fault

    def start() -> None:
        start_again(d, component)
        wait_for(f"{component} ready", lambda: d.probe_ok(component), timeout=180)

    return Part(lambda: kill_tree(d.pid(component)), start, component)


# --------------------------------------------------------------------------
# One run with one fault
# --------------------------------------------------------------------------


def rows(d: LocalDeployment, sql: str, params: list[Any]) -> list[tuple[Any, ...]] | None:
    """A query on the metadata database, or None while it cannot answer (its
    own outage)."""
    try:
        return d.query(sql, params)
    except psycopg.Error:
        return None


def count(d: LocalDeployment, run_id: str, states: tuple[str, ...]) -> int:
    found = rows(d, "SELECT count(*) FROM task_instance WHERE run_id = %s AND state = ANY(%s)",
                 [run_id, list(states)])
    return -1 if found is None else int(found[0][0])


@dataclass
class FaultRun:
    fault: str
    killed_at: float = 0.0
    back_at: float = 0.0
    restarted: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def run_with(faulty: tuple[LocalDeployment, Kubelet], services: Services, fault: str,
             timeout: float) -> FaultRun:
    """Trigger a fan-out; once every task runs, kill the part, start it
    again after DOWN_SECONDS; wait for every task to end and every component
    to run again."""
    d, kubelet = faulty
    out = FaultRun(fault)
    wait_for("every component running", kubelet.all_up, timeout=60, interval=0.5)
    run_id = d.trigger()
    wait_for("every task running", lambda: count(d, run_id, ("running",)) == TASKS, timeout=120, interval=0.5)
    time.sleep(SETTLE_SECONDS)
    kubelet.restarted.clear()
    target = part(d, services, fault)
    if target.component:
        kubelet.held.add(target.component)
    out.killed_at = time.time()
    target.kill()
    time.sleep(DOWN_SECONDS)
    target.start()
    out.back_at = time.time()
    kubelet.held.clear()
    wait_for("every task ended", lambda: count(d, run_id, ("success", "failed", "upstream_failed")) == TASKS,
             timeout=timeout, interval=1)
    # What exited because of the fault is started again before the next test.
    wait_for("every component running", kubelet.all_up, timeout=60, interval=0.5)
    out.restarted = list(kubelet.restarted)
    [(run_start,)] = d.query("SELECT extract(epoch FROM start_date) FROM dag_run WHERE run_id = %s", [run_id])
    tis = d.query("SELECT state, try_number, extract(epoch FROM start_date), extract(epoch FROM end_date) "
                  "FROM task_instance WHERE run_id = %s", [run_id])
    # When each task's first try started: without the fault the run would
    # have ended SLEEP_SECONDS after the last of these.
    [(first_tries_started,)] = d.query(
        "SELECT extract(epoch FROM max(start_date)) FROM (SELECT start_date FROM task_instance "
        "WHERE run_id = %s AND try_number = 1 UNION ALL SELECT start_date FROM task_instance_history "
        "WHERE run_id = %s AND try_number = 1) AS first_tries", [run_id, run_id])
    # Each lost try's end (the scheduler's failure of it) and its retry's start.
    retries = d.query("SELECT extract(epoch FROM h.end_date), extract(epoch FROM t.start_date) "
                      "FROM task_instance_history h JOIN task_instance t USING (dag_id, run_id, task_id, map_index) "
                      "WHERE h.run_id = %s AND t.try_number = h.try_number + 1", [run_id])
    last_end = max(float(end) for _, _, _, end in tis)
    out.result = {
        "tasks": len(tis),
        "succeeded": sum(state == "success" for state, *_ in tis),
        "retried": sum(tries > 1 for _, tries, _, _ in tis),
        "run_s": round(last_end - float(run_start), 1),
        "down_s": DOWN_SECONDS,
        # The kill until the part served again.
        "back_s": round(out.back_at - out.killed_at, 1),
        # The kill until the last task succeeded.
        "recovery_s": round(last_end - out.killed_at, 1),
        # How much later the run ended than its tasks' sleep alone would have
        # ended it (a run without a fault: a fraction of a second).
        "late_s": round(last_end - float(first_tries_started) - SLEEP_SECONDS, 1),
        "restarted_by_kubelet": sorted(set(out.restarted)),
    }
    if retries:
        waits = [float(start) - float(end) for end, start in retries]
        out.result |= {
            # The kill until the scheduler failed the last lost try.
            "detected_s": round(max(float(end) for end, _ in retries) - out.killed_at, 1),
            # A lost try's failure until its retry started: the shortest and the longest.
            "retry_wait_s": [round(min(waits), 1), round(max(waits), 1)],
        }
    record(fault, out.result)
    return out


def record(fault: str, result: dict[str, Any]) -> None:
    """Merge one fault's measurement into the results file (a run of some of
    the tests keeps the others' figures), when asked to."""
    if os.environ.get("AIRFLOW_AKS_RECORD") != "1":
        return
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored["command"] = COMMAND
    stored["config"] = {"stack": "dev", "fanoutTasks": TASKS, "fanoutSleepSeconds": SLEEP_SECONDS,
                        "settleSeconds": SETTLE_SECONDS, "downSeconds": DOWN_SECONDS,
                        "kubeletBackoffSeconds": KUBELET_BACKOFF_SECONDS,
                        "taskRetryDelaySeconds": RETRY_DELAY_SECONDS}
    stored.setdefault("faults", {})[fault] = result
    stored["faults"] = {key: stored["faults"][key] for key in FAULTS if key in stored["faults"]}
    RESULTS.write_text(json.dumps(stored, indent=2) + "\n")


def cfg(d: LocalDeployment, section: str, option: str) -> int:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(d.cfg_text)
    return parser.getint(section, option)


# --------------------------------------------------------------------------
# The tests: one deployment, one run each
# --------------------------------------------------------------------------


Faulty = tuple[LocalDeployment, Kubelet]


@pytest.fixture(scope="module")
def faulty(services: Services) -> Iterator[Faulty]:
    """The deployment every test of this file runs on, with the kubelet's
    restarts for the whole module: a component that exits late after one
    test's fault is back before the next test starts."""
    with deployment(services, CONFIG) as d, Kubelet(d) as kubelet:
        yield d, kubelet


def assert_all_succeeded(out: FaultRun) -> None:
    assert out.result["succeeded"] == TASKS, out.result


def test_a_killed_broker_loses_no_task(faulty: Faulty, services: Services) -> None:
    out = run_with(faulty, services, "broker", timeout=240)
    assert_all_succeeded(out)
    assert out.result["retried"] == 0, "no task lost a try"


def test_a_killed_database_loses_no_task(faulty: Faulty, services: Services) -> None:
    out = run_with(faulty, services, "database", timeout=240)
    assert_all_succeeded(out)


def test_a_killed_pgbouncer_loses_no_task(faulty: Faulty, services: Services) -> None:
    out = run_with(faulty, services, "pgbouncer", timeout=240)
    assert_all_succeeded(out)
    assert out.result["retried"] == 0, "no task lost a try"


def test_a_killed_api_server_loses_no_task(faulty: Faulty, services: Services) -> None:
    out = run_with(faulty, services, "api-server", timeout=240)
    assert_all_succeeded(out)
    assert out.result["retried"] == 0, "no task lost a try"


def test_a_killed_scheduler_loses_no_task(faulty: Faulty, services: Services) -> None:
    out = run_with(faulty, services, "scheduler", timeout=240)
    assert_all_succeeded(out)
    assert out.result["retried"] == 0, "no task lost a try"


def test_the_tasks_of_a_killed_worker_are_retried_and_succeed(faulty: Faulty, services: Services) -> None:
    """The lost worker's tasks: their messages go back to the queue when its
    connection dies, but the worker that takes them again finds each task
    instance running and drops the message (the Celery provider's
    execute_workload: TaskAlreadyRunningError -> Ignore). The scheduler fails
    each after the heartbeat timeout, and with the program's default retries
    that failure is a retry, which the started-again worker runs."""
    d, _ = faulty
    timeout = cfg(d, "scheduler", "task_instance_heartbeat_timeout")
    interval = cfg(d, "workers", "min_heartbeat_interval")
    delay = cfg(d, "core", "default_task_retry_delay")
    assert delay == RETRY_DELAY_SECONDS, "the stack's taskRetryDelaySeconds reaches airflow.cfg"
    assert cfg(d, "core", "default_task_retries") >= 1
    out = run_with(faulty, services, "worker", timeout=timeout + delay + SLEEP_SECONDS + 240)
    assert_all_succeeded(out)
    assert out.result["retried"] == TASKS, "every task was running on the killed worker"
    # Failed one timeout after the last heartbeat (at most an interval before
    # the kill), found within the scheduler's 10 s detection interval.
    assert timeout - interval <= out.result["detected_s"] <= timeout + 10 + 5, out.result
    # Queued again once the retry delay has passed, started within seconds.
    shortest, longest = out.result["retry_wait_s"]
    assert delay <= shortest and longest <= delay + 15, out.result
