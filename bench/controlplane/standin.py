"""A stand-in for the Celery workers: real Celery messages in, real Execution API calls out.

Runs under ./venv-airflow with a worker's environment and airflow.cfg (the
benchmark starts it where it would start `airflow celery worker`). It is a
Celery worker of an app configured as Airflow's is (the same
`[celery] celery_config_options`, so the same broker, queue and database
result backend), with one task registered under the name the Celery executor
publishes, `execute_workload`. Instead of forking a supervisor and a task
process, each message runs in a thread of Celery's thread pool and makes the
calls a supervisor makes for the reference DAG's task, with the task SDK's own
client and the token the message carries:

- PATCH task-instances/{id}/run (start; the api-server answers with a
  refreshed, execution-scoped token, which the SDK client adopts),
- PUT task-instances/{id}/rtif (the task runner sends the rendered fields of
  a @task before it runs it),
- PUT task-instances/{id}/heartbeat every `[workers] min_heartbeat_interval`
  seconds while the task holds its slot,
- PATCH task-instances/{id}/state success,

and Celery itself stores the result (STARTED, then SUCCESS or FAILURE) in the
result backend the scheduler reads. Nothing in Airflow is patched.

Every few seconds, and when the worker shuts down, it writes what it saw to
the JSON file given as --stats: messages consumed, calls made by kind,
latency percentiles, the gaps between a task's heartbeats, and each task that
failed or that the server declared lost.

    venv-airflow/bin/python -m bench.controlplane.standin --stats FILE [--concurrency N] [--name NAME]
                                                        [--max-starting K] [--abandon K]

--abandon K: the first K tasks it takes are abandoned after their first
heartbeat, as a supervisor killed with its node would leave them: no more
heartbeats, no final state. The scheduler's heartbeat timeout must find them;
the stats record when each last heartbeated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
from airflow.configuration import conf
from airflow.executors.workloads import ExecuteTask, ExecutorWorkload
from airflow.sdk.api.client import Client, ServerResponseError
from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from pydantic import TypeAdapter

# What the supervisor reads (airflow/sdk/execution_time/supervisor.py).
HEARTBEAT_INTERVAL = conf.getint("workers", "min_heartbeat_interval")
HEARTBEAT_TIMEOUT = conf.getint("scheduler", "task_instance_heartbeat_timeout")
MAX_FAILED_HEARTBEATS = conf.getint("workers", "max_failed_heartbeats")
SERVER = conf.get("core", "execution_api_server_url")
# How long each task holds its slot: the reference DAG's own setting, from the
# environment every Airflow pod carries (app/dags/fanout.py).
HOLD_SECONDS = float(os.environ.get("AIRFLOW_AKS_FANOUT_SLEEP_SECONDS", "100"))
# Server answers after which a real supervisor kills its task (the task is not
# running there any more): the task is lost.
LOST_STATUSES = {HTTPStatus.NOT_FOUND, HTTPStatus.GONE, HTTPStatus.CONFLICT}
KINDS = ("start", "rtif", "heartbeat", "succeed", "finish")


class Stats:
    """Counters and latency samples, shared by the pool's threads."""

    def __init__(self, path: Path, name: str, concurrency: int) -> None:
        self.path, self.name, self.concurrency = path, name, concurrency
        self.lock = threading.Lock()
        self.ready = False
        self.consumed = 0
        self.active = 0
        self.max_active = 0
        self.done = 0
        self.calls = dict.fromkeys(KINDS, 0)
        self.latency: dict[str, list[float]] = {k: [] for k in KINDS}
        self.heartbeat_gaps: list[float] = []
        self.statuses: dict[str, int] = {}
        self.refreshed_tokens = 0
        self.failed: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []
        self.started_wall: list[float] = []
        # Tasks abandoned after their first heartbeat: id, label, wall clock of that heartbeat.
        self.abandoned: list[dict[str, Any]] = []

    def call(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.calls[kind] += 1
            self.latency[kind].append(seconds)

    def on_response(self, response: httpx.Response) -> None:
        # An event hook on our own client instance (httpx API), next to the
        # SDK's own hooks: counts the answers and the refreshed tokens.
        with self.lock:
            key = str(response.status_code)
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if response.headers.get("Refreshed-API-Token"):
                self.refreshed_tokens += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            latency = {k: summary(v) for k, v in self.latency.items()}
            used = resource.getrusage(resource.RUSAGE_SELF)
            return {
                "name": self.name, "pid": os.getpid(), "ready": self.ready, "concurrency": self.concurrency,
                "heartbeat_interval_s": HEARTBEAT_INTERVAL, "heartbeat_timeout_s": HEARTBEAT_TIMEOUT,
                "max_failed_heartbeats": MAX_FAILED_HEARTBEATS, "hold_s": HOLD_SECONDS, "server": SERVER,
                "consumed": self.consumed, "active": self.active, "max_active": self.max_active,
                "done": self.done, "calls": dict(self.calls), "latency_s": latency,
                "heartbeat_gap_s": summary(self.heartbeat_gaps), "statuses": dict(self.statuses),
                "refreshed_tokens": self.refreshed_tokens, "failed": list(self.failed), "lost": list(self.lost),
                "abandoned": list(self.abandoned),
                "first_start_wall": min(self.started_wall, default=None),
                "last_start_wall": max(self.started_wall, default=None),
                "cpu_s": round(used.ru_utime + used.ru_stime, 2), "max_rss_mib": round(used.ru_maxrss / 1024, 1),
                "written_at": time.time(),
            }

    def write(self) -> None:
        data = json.dumps(self.snapshot())
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(data)
        tmp.replace(self.path)  # readers never see half a file


def summary(values: list[float]) -> dict[str, float | int | None]:
    """Count, p50, p99 and max of a list of seconds."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {"n": len(ordered), "p50": pick(0.50), "p99": pick(0.99), "max": round(ordered[-1], 4)}


STATS: Stats | None = None
# At most this many start calls in flight at once (--max-starting); None: every
# task calls as soon as its message arrives, as a fleet of warm workers does.
STARTING: threading.BoundedSemaphore | None = None
# How many of the first tasks taken to abandon (--abandon).
ABANDON = 0
DECODER: TypeAdapter[Any] = TypeAdapter(ExecutorWorkload)


def timed(kind: str, call: Any) -> Any:
    assert STATS is not None
    began = time.perf_counter()
    try:
        return call()
    finally:
        STATS.call(kind, time.perf_counter() - began)


def now() -> datetime:
    return datetime.now(tz=UTC)


def simulate(workload: ExecuteTask, abandon: bool = False) -> None:
    """What a supervisor does for one task of the reference DAG, minus the task process."""
    assert STATS is not None
    ti_id: uuid.UUID = workload.ti.id
    label = f"{workload.ti.task_id} try {workload.ti.try_number}"
    pid = os.getpid()
    with Client(base_url=SERVER, token=workload.token) as client:
        # First, so it sees the answers the SDK's own hooks raise on.
        client.event_hooks["response"].insert(0, STATS.on_response)
        try:
            if STARTING is None:
                timed("start", lambda: client.task_instances.start(ti_id, pid, now()))
            else:
                with STARTING:
                    timed("start", lambda: client.task_instances.start(ti_id, pid, now()))
        except Exception as exc:
            with STATS.lock:
                STATS.failed.append({"task": label, "at": "start", "error": describe(exc)})
            raise
        with STATS.lock:
            STATS.started_wall.append(time.time())
        try:
            # The rendered fields of the reference DAG's @task: op_args [seconds].
            timed("rtif", lambda: client.task_instances.set_rtif(
                ti_id, {"templates_dict": None, "op_args": [HOLD_SECONDS], "op_kwargs": {}}))
        except Exception as exc:
            with STATS.lock:
                STATS.failed.append({"task": label, "at": "rtif", "error": describe(exc)})
            timed("finish", lambda: client.task_instances.finish(ti_id, "failed", now(), None))
            raise
        if abandon:
            abandon_after_a_heartbeat(client, ti_id, label)
            return
        # The task's own time starts once the server has let it run.
        if not hold(client, ti_id, label, time.monotonic()):
            return
        try:
            timed("succeed", lambda: client.task_instances.succeed(ti_id, now(), [], [], None))
        except Exception as exc:
            with STATS.lock:
                STATS.failed.append({"task": label, "at": "succeed", "error": describe(exc)})
            raise


def hold(client: Client, ti_id: uuid.UUID, label: str, began: float) -> bool:
    """Hold the slot for HOLD_SECONDS, heartbeating as the supervisor does.

    The supervisor heartbeats when MIN_HEARTBEAT_INTERVAL has passed since its
    last attempt, the first time as soon as its monitor loop runs (its last
    attempt starts at 0); on 404/409/410 it kills the task (lost), and after
    MAX_FAILED_HEARTBEATS other failures in a row it kills it too (failed).
    Returns whether the task may go on to succeed."""
    assert STATS is not None
    end = began + HOLD_SECONDS
    last_attempt: float | None = None
    failures = 0
    while True:
        if last_attempt is not None:
            time.sleep(max(0.0, min(last_attempt + HEARTBEAT_INTERVAL, end) - time.monotonic()))
        if time.monotonic() >= end:
            return True
        attempt = time.monotonic()
        if last_attempt is not None:
            with STATS.lock:
                STATS.heartbeat_gaps.append(attempt - last_attempt)
        last_attempt = attempt
        try:
            timed("heartbeat", lambda: client.task_instances.heartbeat(ti_id, pid=os.getpid()))
            failures = 0
        except ServerResponseError as exc:
            if exc.response.status_code in LOST_STATUSES:
                with STATS.lock:
                    STATS.lost.append({"task": label, "after_s": round(attempt - began, 1),
                                       "error": describe(exc)})
                return False
            failures += 1
        except Exception:
            failures += 1
        if failures >= MAX_FAILED_HEARTBEATS:
            with STATS.lock:
                STATS.failed.append({"task": label, "at": "heartbeat",
                                     "error": f"{failures} failed heartbeats in a row"})
            # The supervisor kills the task; the task process exits non-zero
            # and the supervisor reports the failure.
            timed("finish", lambda: client.task_instances.finish(ti_id, "failed", now(), None))
            return False


def abandon_after_a_heartbeat(client: Client, ti_id: uuid.UUID, label: str) -> None:
    """One heartbeat, then silence for the task's hold: the server keeps the task
    running until the scheduler's heartbeat timeout fails it."""
    assert STATS is not None
    timed("heartbeat", lambda: client.task_instances.heartbeat(ti_id, pid=os.getpid()))
    with STATS.lock:
        STATS.abandoned.append({"id": str(ti_id), "task": label, "last_heartbeat_wall": time.time()})
    time.sleep(HOLD_SECONDS)


def describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def celery_app() -> Celery:
    """A Celery app as Airflow's workers build it: named by `[celery] celery_app_name`,
    configured by `[celery] celery_config_options` (here app/config/airflow_aks_celery.py)."""
    config = conf.getimport("celery", "celery_config_options")
    app = Celery(conf.get("celery", "celery_app_name"), config_source=config)
    # Airflow's worker runs each task in a forked pool child, with one result
    # backend object per child, and Celery's database backend keeps one engine
    # (and its connection pool) per forked process. The stand-in runs tasks in
    # threads of one process that never forked: Celery would give each thread
    # a backend of its own, and each would build a new engine, and a new
    # connection, for every result it stores; with a thousand threads that,
    # not the control plane, would set the pace. So all threads share one
    # backend (a Celery setting), whose session manager is told what it is
    # told in a pool child: keep the engine.
    app.conf.result_backend_thread_safe = True
    app.backend.session_manager.forked = True

    @app.task(name="execute_workload")
    def execute_workload(input: str) -> None:
        assert STATS is not None
        workload = DECODER.validate_json(input)
        if not isinstance(workload, ExecuteTask):
            raise ValueError(f"the stand-in runs tasks only, not {type(workload).__name__}")
        with STATS.lock:
            abandon = STATS.consumed < ABANDON
            STATS.consumed += 1
            STATS.active += 1
            STATS.max_active = max(STATS.max_active, STATS.active)
        try:
            simulate(workload, abandon)
        finally:
            with STATS.lock:
                STATS.active -= 1
                STATS.done += 1

    return app


def main() -> None:
    global STATS, STARTING, ABANDON
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1000, help="tasks held at once (threads)")
    parser.add_argument("--name", default="standin")
    parser.add_argument("--max-starting", type=int, help="start calls in flight at once (default: no limit)")
    parser.add_argument("--abandon", type=int, default=0, help="abandon the first K tasks after one heartbeat")
    args = parser.parse_args()
    ABANDON = args.abandon
    STATS = Stats(args.stats, args.name, args.concurrency)
    if args.max_starting:
        STARTING = threading.BoundedSemaphore(args.max_starting)
    # Thousands of threads that mostly sleep: a small stack each is plenty.
    threading.stack_size(256 * 1024)

    @worker_ready.connect
    def _ready(**_: object) -> None:
        assert STATS is not None
        STATS.ready = True
        STATS.write()

    @worker_shutdown.connect
    def _shutdown(**_: object) -> None:
        assert STATS is not None
        STATS.write()

    def writer() -> None:
        assert STATS is not None
        while True:
            time.sleep(2)
            STATS.write()

    threading.Thread(target=writer, daemon=True).start()
    # SIGTERM is Celery's warm shutdown; make sure the last figures land even if
    # the benchmark has to kill the worker instead.
    signal.signal(signal.SIGUSR1, lambda *_: STATS.write() if STATS else None)
    app = celery_app()
    app.worker_main(["worker", "--pool=threads", f"--concurrency={args.concurrency}", "--loglevel=WARNING",
                     "--without-mingle", "--without-gossip", "--hostname", f"{args.name}@%h"])
    STATS.write()
    sys.exit(0)


if __name__ == "__main__":
    main()
