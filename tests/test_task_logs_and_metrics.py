"""Task logs in Blob Storage and StatsD metrics, on real Airflow.

The deployment's objects run as local processes (tests/local_airflow.py) with
Azurite, the Azure Storage emulator, in place of the storage account: the same
airflow.cfg options and the same Airflow provider, with the emulator's public
development account instead of workload identity, which it cannot do.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components.kubernetes.metrics import ALERT_METRICS
from components.model import names
from tests.local_airflow import LocalDeployment, Observation, Services, deployment, stack_config
from tests.readme_tables import table_after
from tests.test_real_airflow import api_token

# Real components (scripts/test --fast leaves these out for a quick run).
pytestmark = pytest.mark.real

# `services` (tests/conftest.py): PostgreSQL, RabbitMQ and Azurite, shared by
# the session's real-component tests.


def small_fanout(width: int, sleep: int, **more: object) -> dict[str, object]:
    return stack_config("dev", parallelism=width, workerConcurrency=width, fanoutTasks=width,
                        fanoutSleepSeconds=sleep, workerPool={"vmSize": "Standard_E32s_v5"},
                        systemPool={"vmSize": "Standard_D8s_v5", "count": 1}, **more)


@pytest.fixture(scope="module")
def small(services: Services) -> Iterator[LocalDeployment]:
    """One deployment for both tests below: starting one takes about 40 s on 2
    cores. The task-log test stops its worker, so it comes last."""
    with deployment(services, small_fanout(width=4, sleep=5)) as d:
        yield d


def task_log(d: LocalDeployment, run_id: str, task_id: str) -> str:
    """A task's log as the UI gets it from the api-server's REST API."""
    url = (f"http://127.0.0.1:{d.api_port}/api/v2/dags/fanout/dagRuns/{run_id}/taskInstances/{task_id}/logs/1"
           "?full_content=true")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_token(d)}",
                                                   "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.read().decode()


@dataclass
class ObservedRun:
    run_id: str
    obs: Observation
    metrics: set[str]


@pytest.fixture(scope="module")
def observed(small: LocalDeployment) -> ObservedRun:
    """One run of the 4 tasks for both tests below (a run takes about 17 s
    here): the StatsD names that reached the configured port while it ran,
    and the run, its tasks' logs with it."""
    d = small
    # Every metric in ALERT_METRICS is sent again each scheduler loop, so
    # listening on a running deployment misses none of them.
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", d.statsd_port))
    listener.settimeout(1.0)
    try:
        run_id = d.trigger()
        seen: set[str] = set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not set(ALERT_METRICS) <= seen:
            try:
                packet = listener.recv(65536).decode(errors="replace")
            except TimeoutError:
                continue
            seen |= {line.split(":", 1)[0] for line in packet.splitlines() if ":" in line}
        obs = d.observe(run_id, tasks=4, timeout=240)
    finally:
        listener.close()
    return ObservedRun(run_id, obs, seen)


def test_statsd_metrics_reach_the_configured_port(small: LocalDeployment, observed: ObservedRun) -> None:
    assert f"statsd_host = 127.0.0.1\nstatsd_port = {small.statsd_port}" in small.cfg_text
    assert observed.obs.states == {"success": 4}, observed.obs.states
    missing = sorted(set(ALERT_METRICS) - observed.metrics)
    assert not missing, f"docs/architecture.md promises {missing}; seen: {json.dumps(sorted(observed.metrics))[:3000]}"


def test_task_logs_land_in_the_container_and_outlive_the_worker(small: LocalDeployment,
                                                                observed: ObservedRun) -> None:
    d, run_id = small, observed.run_id
    assert d.remote_logs, "remote task logs are on by default for an AKS stack"
    assert "remote_base_log_folder = wasb://task-logs" in d.cfg_text
    assert observed.obs.states == {"success": 4}, observed.obs.states

    def uploaded() -> dict[str, str]:
        return {name: text for name, text in d.log_blobs().items() if f"run_id={run_id}" in name}

    deadline = time.monotonic() + 60
    blobs = uploaded()
    while len(blobs) < 4 and time.monotonic() < deadline:
        time.sleep(2)
        blobs = uploaded()
    assert sorted(n.split("task_id=")[1].split("/")[0] for n in blobs) == [f"sleep_{i}" for i in range(4)], \
        f"one blob per task in container {names.TASK_LOG_CONTAINER}: {sorted(blobs)}"
    assert all(name.startswith("task-logs/") for name in blobs), sorted(blobs)
    for name, text in blobs.items():
        task_id = name.split("task_id=")[1].split("/")[0]
        assert f'"task_id":"{task_id}"' in text and "Filling up the DagBag" in text, f"{name}: {text[-2000:]}"

    # The worker is gone (scaled in, rolled, evicted) and so are the files
    # it wrote: the api-server reads the log from the container.
    d.processes["worker"].terminate()
    d.processes["worker"].wait(timeout=120)
    shutil.rmtree(d.home / "logs" / "dag_id=fanout")
    served = task_log(d, run_id, "sleep_0")
    # Only the container still has these lines: no file, no worker log server.
    assert "Filling up the DagBag" in served and '"sleep_0"' in served.replace("'", '"'), served[:3000]


def test_the_readme_lists_the_alert_metrics() -> None:
    rows = table_after("## Metrics", page="docs/architecture.md")
    assert {k.strip("`"): v[0].strip("`") for k, v in rows.items()} == ALERT_METRICS
