"""DAG bundles on real Airflow 3.3.2: a DAG change reaches the running
deployment with no image build, no `pulumi up` and no component restart.

One deployment for the module (tests/local_airflow.py) with the three kinds of
dagBundles: the image's folder (app/dags), a git repository and a blob
container. The git bundle's https URL stands for a bare repository on this
machine (the declared airflow.cfg with that URL swapped for its file:// path,
as the local runs swap Service hosts for loopback); the blob bundle reads
Azurite through the declared `wasb_default` connection (the emulator's, as for
task logs). Every component keeps its process id throughout.

The time from a commit (an upload) to the new DAG's first task running is
printed; with AIRFLOW_AKS_RECORD=1 it is written to
bench/results/dag_bundles.json (a plain run leaves the file alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.model import names
from tests.local_airflow import LocalDeployment, Services, declared, wait_for
from tests.real_airflow import ROOT, run_airflow_python
from tests.test_real_airflow import fanout

pytestmark = pytest.mark.real

GIT_URL = "https://git.example.test/data-team/dags.git"
GIT_BUNDLE, BLOB_BUNDLE = "team-repo", "drop"
BLOB_CONTAINER = "airflow-dags"
REFRESH_SECONDS = 5
CONFIG = fanout(parallelism=4, width=1, sleep=1, dagBundles=[
    {"name": "dags-folder", "kind": "image"},
    {"name": GIT_BUNDLE, "kind": "git", "url": GIT_URL, "ref": "main", "subdir": "dags",
     "refreshSeconds": REFRESH_SECONDS},
    {"name": BLOB_BUNDLE, "kind": "blob", "container": BLOB_CONTAINER, "prefix": "dags",
     "refreshSeconds": REFRESH_SECONDS},
])
RESULTS = ROOT / "bench" / "results" / "dag_bundles.json"
COMMAND = "AIRFLOW_AKS_RECORD=1 venv/bin/python -m pytest tests/test_dag_bundles_real.py"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")


def dag_source(dag_id: str, body: str, schedule: str | None = '"@once"') -> str:
    """A DAG file that runs as soon as the scheduler sees it (not paused at
    creation, a one-off schedule), so nothing but the bundle stands between
    the change and the run."""
    return textwrap.dedent(f'''\
        import time
        from datetime import datetime
        from pathlib import Path

        from airflow.sdk import dag, task

        @dag(dag_id="{dag_id}", schedule={schedule}, start_date=datetime(2024, 1, 1), catchup=False,
             is_paused_upon_creation=False)
        def {dag_id}():
        ''') + textwrap.indent(textwrap.dedent(body), "    ") + f"\n\n{dag_id}()\n"


@dataclass
class Repo:
    """A bare repository (the bundle's remote) and a clone the test commits from."""

    bare: Path
    work: Path
    shas: list[str] = field(default_factory=list)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.work), "-c", "user.name=test", "-c", "user.email=t@example.test",
                               *args], check=True, capture_output=True, text=True).stdout.strip()

    def commit(self, path: str, text: str) -> float:
        """Commit and push a file; the time (time.time()) the push returned."""
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self.git("add", path)
        self.git("commit", "-q", "-m", f"update {path}")
        self.git("push", "-q", "origin", "HEAD:main")
        self.shas.append(self.git("rev-parse", "HEAD"))
        return time.time()


def make_repo(root: Path) -> Repo:
    bare, work = root / "dags.git", root / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    repo = Repo(bare, work)
    repo.git("checkout", "-q", "-b", "main")
    # The bundle needs its tracking ref to exist when it first clones.
    repo.commit("dags/README.md", "DAGs of the data team.\n")
    return repo


@dataclass
class Bundled:
    d: LocalDeployment
    repo: Repo
    pids: dict[str, int]
    measured: dict[str, Any] = field(default_factory=dict)

    def blob(self, body: str, what: str) -> str:
        code = ("import json, time\nfrom azure.storage.blob import BlobServiceClient\n"
                f"c = BlobServiceClient.from_connection_string({self.d.log_connection_string()!r})"
                f".get_container_client({BLOB_CONTAINER!r})\n{body}\n")
        done = run_airflow_python(code, home=self.d.home)
        if done.returncode != 0:
            raise RuntimeError(f"{what} in Azurite: {done.stderr[-2000:]}")
        return done.stdout

    def upload(self, name: str, text: str) -> float:
        out = self.blob(f"c.upload_blob({name!r}, {text!r}, overwrite=True)\nprint(time.time())", "uploading")
        return float(out.strip().splitlines()[-1])

    def first_task_start(self, dag_id: str, timeout: float) -> float:
        """When the DAG's first task instance started (its supervisor's
        start_date, Unix time)."""
        def started() -> bool:
            return self.d.query("SELECT count(start_date) FROM task_instance WHERE dag_id = %s", [dag_id])[0][0] > 0

        wait_for(f"a task of {dag_id} to start", started, timeout=timeout, interval=0.25)
        return float(self.d.query("SELECT extract(epoch FROM min(start_date)) FROM task_instance WHERE dag_id = %s",
                                  [dag_id])[0][0])

    def wait_success(self, dag_id: str, timeout: float) -> list[tuple[Any, ...]]:
        def done() -> bool:
            states = {s for (s,) in self.d.query("SELECT state FROM dag_run WHERE dag_id = %s", [dag_id])}
            assert "failed" not in states, self.failure(dag_id)
            return states == {"success"}

        wait_for(f"{dag_id}'s run to succeed", done, timeout=timeout, interval=0.5)
        return self.d.query("SELECT run_id, bundle_version FROM dag_run WHERE dag_id = %s", [dag_id])

    def failure(self, dag_id: str) -> str:
        states = self.d.query("SELECT task_id, state FROM task_instance WHERE dag_id = %s", [dag_id])
        return f"{dag_id} failed: {states}\n{self.d.logs('worker')}"

    def assert_no_restart(self) -> None:
        for component in COMPONENTS:
            proc = self.d.processes[component]
            assert proc.poll() is None, f"{component} exited: {self.d.logs(component)}"
            assert proc.pid == self.pids[component], f"{component} was restarted"


def record(key: str, seconds: float) -> None:
    print(f"\n{key}: {seconds:.1f} s")
    if os.environ.get("AIRFLOW_AKS_RECORD") != "1":
        return
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored.update({"command": COMMAND, "refresh_seconds": REFRESH_SECONDS, key: round(seconds, 1)})
    RESULTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def bundled(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundled]:
    repo = make_repo(tmp_path_factory.mktemp("git-bundle"))
    run = declared("dev", CONFIG)
    cfg = run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
    assert GIT_URL in cfg
    d = LocalDeployment(run, services, cfg_text=cfg.replace(GIT_URL, repo.bare.as_uri()))
    b = Bundled(d, repo, {})
    try:
        d.prepare()
        # What the program's BlobContainer is on Azure; on a local cluster the
        # user creates it in the emulator, as the task-log container.
        b.blob("try:\n    c.create_container()\nexcept Exception as e:\n"
               "    assert 'ContainerAlreadyExists' in str(e), e", "creating the DAG container")
        d.migrate()
        d.start()
        d.wait_ready()
        b.pids = {c: d.pid(c) for c in COMPONENTS}
        yield b
    finally:
        d.stop(grace=0)
        shutil.rmtree(d.home, ignore_errors=True)


def test_a_commit_to_the_git_bundle_runs_with_no_restart(bundled: Bundled) -> None:
    committed = bundled.repo.commit("dags/git_new.py", dag_source("git_new", '''\
        @task
        def hello() -> str:
            return "hello from git"

        hello()
        '''))
    started = bundled.first_task_start("git_new", timeout=90)
    [(_, version)] = bundled.wait_success("git_new", timeout=60)
    assert version == bundled.repo.shas[-1], "the run records the commit it runs"
    assert bundled.d.query("SELECT bundle_name FROM dag WHERE dag_id = 'git_new'") == [(GIT_BUNDLE,)]
    bundled.assert_no_restart()
    record("commit_to_running_seconds", started - committed)


def test_a_run_started_before_a_commit_finishes_with_its_own_version(bundled: Bundled, tmp_path: Path) -> None:
    """`wait` holds the run until the next commit is parsed; `report`, a new
    task process on the worker after that, must still run the first version."""
    flag = tmp_path / "go"
    body = f'''\
        @task
        def wait() -> None:
            while not Path({str(flag)!r}).exists():
                time.sleep(0.2)

        @task
        def report() -> str:
            return VERSION

        wait() >> report()
        '''

    def source(version: str) -> str:
        return dag_source("versioned", body).replace("from airflow.sdk", f"VERSION = {version!r}\nfrom airflow.sdk")

    bundled.repo.commit("dags/versioned.py", source("v1"))
    first = bundled.repo.shas[-1]
    wait_for("`wait` running", lambda: bundled.d.query(
        "SELECT state FROM task_instance WHERE dag_id = 'versioned' AND task_id = 'wait'") == [("running",)],
        timeout=90, interval=0.25)
    bundled.repo.commit("dags/versioned.py", source("v2"))
    second = bundled.repo.shas[-1]
    # The dag-processor has the new commit, and the DAG's second version with it.
    wait_for("the second version parsed", lambda: bundled.d.query(
        "SELECT count(*) FROM dag_version WHERE dag_id = 'versioned' AND bundle_version = %s", [second])[0][0] == 1,
        timeout=60, interval=0.25)
    flag.touch()
    [(run_id, version)] = bundled.wait_success("versioned", timeout=60)
    assert version == first != second
    [(value,)] = bundled.d.query("SELECT value FROM xcom WHERE dag_id = 'versioned' AND run_id = %s "
                                 "AND task_id = 'report'", [run_id])
    # The column is JSON: psycopg hands it over decoded.
    assert value == "v1", "the task ran the run's own version"
    bundled.assert_no_restart()


def test_an_uploaded_blob_dag_runs_with_no_restart(bundled: Bundled) -> None:
    uploaded = bundled.upload("dags/blob_new.py", dag_source("blob_new", '''\
        @task
        def hello() -> str:
            return "hello from blob storage"

        hello()
        '''))
    started = bundled.first_task_start("blob_new", timeout=90)
    [(_, version)] = bundled.wait_success("blob_new", timeout=60)
    assert version is None, "a blob bundle is not versioned"
    assert bundled.d.query("SELECT bundle_name FROM dag WHERE dag_id = 'blob_new'") == [(BLOB_BUNDLE,)]
    bundled.assert_no_restart()
    record("upload_to_running_seconds", started - uploaded)
