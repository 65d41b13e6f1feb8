"""Every path a component writes to is one of its container's writable volumes.

The pods run with readOnlyRootFilesystem, which no local process can show. So
the components run here as the suite's other real tests run them (Airflow's
five components and its migration job, PostgreSQL, RabbitMQ, PgBouncer), laid out on disk
as their images lay them out, each under strace; a small fan-out runs to the
end and everything stops as a pod stops (SIGTERM). Every file, directory or
socket any of their processes (probes included) created, changed or removed
is mapped back to the pod path it stands for and must fall inside one of the
container's writable mounts, /dev, /proc and /sys aside (tests/write_trace.py).
"""

from __future__ import annotations

import compileall
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.kubernetes import rabbitmq
from components.kubernetes.airflow_api_server import AUTH_SECRET_DIR
from components.model import names
from tests.harness import ProgramRun
from tests.local_airflow import (
    APP_DAGS,
    LocalAzurite,
    LocalDeployment,
    LocalPostgres,
    LocalRabbitMQ,
    RabbitMQLayout,
    Services,
    declared,
    wait_for,
)
from tests.real_airflow import AIRFLOW_VENV, ROOT
from tests.test_real_airflow import fanout
from tests.write_trace import PodFilesystem, Writes, strace_command, written_paths

# Real components (scripts/test --fast leaves these out for a quick run).
pytestmark = pytest.mark.real

CONFIG = fanout(parallelism=4, width=4, sleep=5)
AIRFLOW = ("migrate", "api-server", "auth-passwords", "scheduler", "dag-processor", "triggerer", "worker")
# The official postgres image's socket directory, made writable for its
# postgres user in its Dockerfile (docker-library/postgres, 17/bookworm:
# "install --directory ... /var/run/postgresql"); the server puts its socket
# and lock file there.
POSTGRES_SOCKET_DIR = "/var/run/postgresql"
# The official rabbitmq image's conf.d/10-defaults.conf (docker-library/rabbitmq):
# logs go to the console.
RABBITMQ_IMAGE_DEFAULTS = "loopback_users.guest = false\nlog.console = true\n"
# The official Airflow image: its user's HOME and the virtualenv every Python
# package lives in (apache/airflow Dockerfile: AIRFLOW_USER_HOME_DIR,
# VIRTUAL_ENV="${AIRFLOW_USER_HOME_DIR}/.local"), its Python under /usr/python.
AIRFLOW_USER_HOME = "/home/airflow"


class Tracer:
    """strace output files, one per traced command, named by component."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o777)  # PostgreSQL's processes trace as the postgres user
        self.count = itertools.count()

    def wrap(self, component: str, command: list[str]) -> list[str]:
        return strace_command(self.dir / f"{component}.{next(self.count)}.trace", command)

    def text(self, component: str) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob(f"{component}.*.trace")))

    def writes(self, component: str, cwd: Path) -> Writes:
        found = Writes()
        files = sorted(self.dir.glob(f"{component}.*.trace"))
        assert files, f"{component}: nothing was traced"
        for path in files:
            w = written_paths(path.read_text(errors="replace"), str(cwd))
            found.paths |= w.paths
            found.unresolved += w.unresolved
        return found


def container_of(run: ProgramRun, container: str) -> dict[str, Any]:
    """The declared container of that name (container names are unique in the deployment)."""
    for m in run.manifests():
        if m["kind"] in ("Deployment", "StatefulSet", "Job"):
            pod = m["spec"]["template"]["spec"]
            for c in [*pod.get("initContainers", []), *pod["containers"]]:
                if c["name"] == container:
                    return c
    raise AssertionError(f"no workload declares a container {container}")


class PodPostgres(LocalPostgres):
    """PostgreSQL as the image runs it: initdb into PGDATA, then the server in
    the foreground with the declared args, its socket in the image's socket
    directory; every path under `root`, which stands for the container's /."""

    def __init__(self, workdir: Path, container: dict[str, Any], tracer: Tracer) -> None:
        super().__init__(workdir, container["args"])
        env = {e["name"]: e.get("value") for e in container["env"]}
        self.root = self.dir / "pod"
        self.pgdata = self.root / env["PGDATA"].lstrip("/")
        self.socket_dir = self.root / POSTGRES_SOCKET_DIR.lstrip("/")
        self.ready_command = container["readinessProbe"]["exec"]["command"]
        self.tracer = tracer
        self.process: subprocess.Popen[bytes] | None = None

    def _traced(self, what: str, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *self.tracer.wrap(what, command)]

    def start(self) -> None:
        for path in (self.dir, self.root, self.pgdata.parent, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            shutil.chown(path, "postgres")
        subprocess.run(self._traced("postgres", [str(self.bin / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                                                 "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, cwd=self.root)
        server = [str(self.bin / "postgres"), "-D", str(self.pgdata), "-c", "listen_addresses=127.0.0.1",
                  "-p", str(self.port), "-c", f"unix_socket_directories={self.socket_dir}", *self.server_args]
        log = (self.dir / "server.log").open("ab")
        self.process = subprocess.Popen(self._traced("postgres", server), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.root, start_new_session=True)
        wait_for("PostgreSQL", self.probe, timeout=60, interval=0.5)

    def probe(self) -> bool:
        """The declared readiness probe, on the local socket."""
        env = {**os.environ, "PGHOST": str(self.socket_dir), "PGPORT": str(self.port)}
        return subprocess.run(self._traced("postgres", self.ready_command), env=env, capture_output=True,
                              cwd=self.root, check=False).returncode == 0

    def stop(self) -> None:
        """SIGTERM to the postmaster, as the kubelet stops the container."""
        pid_file = self.pgdata / "postmaster.pid"
        if self.process is None or self.process.poll() is not None or not pid_file.exists():
            return
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        self.process.wait(timeout=60)


class PodRabbitMQ(LocalRabbitMQ):
    """RabbitMQ with the image's directories (HOME, the declared mnesia base,
    /etc/rabbitmq, /var/log/rabbitmq, working directory /) under `pod_root`,
    started with the container's command and then its postStart hook."""

    def __init__(self, workdir: Path, run: ProgramRun, tracer: Tracer) -> None:
        statefulset = run.manifest("StatefulSet", names.RABBITMQ)
        conf = {"10-defaults.conf": RABBITMQ_IMAGE_DEFAULTS, **run.manifest("ConfigMap", names.RABBITMQ)["data"]}
        layout = RabbitMQLayout.declared(statefulset, rabbitmq.HOME_DIR)
        super().__init__(workdir, conf, layout)
        self.volume = self.pod_root / layout.volume_mount.lstrip("/")
        self.conf_dir = self.pod_root / "etc/rabbitmq/conf.d"
        self.plugins_file = self.pod_root / "etc/rabbitmq/enabled_plugins"
        self.cwd = self.pod_root
        self.wrap = lambda command: tracer.wrap("rabbitmq", command)
        [container] = statefulset["spec"]["template"]["spec"]["containers"]
        self.probes = [container["readinessProbe"]["exec"]["command"], container["livenessProbe"]["exec"]["command"]]
        self.post_start = container["lifecycle"]["postStart"]["exec"]["command"]

    @property
    def env(self) -> dict[str, str]:
        env = {**super().env, "RABBITMQ_LOG_BASE": str(self.pod_root / "var/log/rabbitmq")}
        env.pop("RABBITMQ_PID_FILE")  # the image leaves it at its default, in the mnesia base
        return env

    def start(self) -> None:
        # The directories the image creates (docker-library/rabbitmq Dockerfile).
        for path in ("var/lib/rabbitmq", "etc/rabbitmq/conf.d", "var/log/rabbitmq"):
            (self.pod_root / path).mkdir(parents=True, exist_ok=True)
        super().start()
        # The kubelet runs the postStart hook as the container starts; it is
        # traced with the rest.
        hook = self.container_exec(self.post_start)
        assert hook.returncode == 0 and not hook.stdout, f"postStart: {hook.stdout}{hook.stderr[-2000:]}"

    def probe(self) -> None:
        """The declared probes, against the local node."""
        for command in self.probes:
            done = self.container_exec(command, timeout=120)
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr[-2000:]}"


@dataclass
class TracedRun:
    run: ProgramRun
    tracer: Tracer
    deployment: LocalDeployment
    postgres: PodPostgres
    rabbitmq: PodRabbitMQ
    airflow_places: dict[Path | str, str]


def _run_auth_init_container(d: LocalDeployment, tracer: Tracer, run: ProgramRun) -> None:
    """The api-server's init container: its command with the Secret's mount here."""
    init = container_of(run, "auth-passwords")
    secret_dir = d.services.workdir / "auth-secret"
    secret_dir.mkdir()
    for key, value in d._secret(names.AUTH_SECRET).items():
        (secret_dir / key).write_text(value)
    command = [a.replace(AUTH_SECRET_DIR, str(secret_dir)).replace(names.AIRFLOW_HOME, str(d.home))
               for a in init["command"]]
    subprocess.run(tracer.wrap("auth-passwords", command), check=True, cwd=d.home)


def _compile_like_the_image(d: LocalDeployment) -> None:
    """What app/Dockerfile's compileall step does for the image: the bytecode
    of the DAGs and config modules exists before any component imports them."""
    dockerfile = (ROOT / "app" / "Dockerfile").read_text()
    step = re.search(r"python -m compileall\b(.*)", dockerfile)
    assert step, "app/Dockerfile compiles the DAGs and config modules into the image"
    for pod_dir, local in ((names.DAGS_FOLDER, APP_DAGS), (f"{names.AIRFLOW_HOME}/config", d.home / "config")):
        assert pod_dir in step.group(1), f"app/Dockerfile's compileall step names {pod_dir}"
        assert compileall.compile_dir(str(local), quiet=1)


@pytest.fixture(scope="module")
def traced() -> Iterator[TracedRun]:
    run = declared("dev", CONFIG)
    workdir = Path(tempfile.mkdtemp(prefix="airflow-aks-traced-"))
    workdir.chmod(0o755)
    tracer = Tracer(workdir / "traces")
    postgres = PodPostgres(workdir, container_of(run, "postgres"), tracer)
    broker = PodRabbitMQ(workdir, run, tracer)
    services = Services(postgres, broker, workdir, LocalAzurite(workdir))
    d = LocalDeployment(run, services, pgbouncer_as_pod=True)
    assert d.pgbouncer is not None, "the dev stack runs PgBouncer"
    d.pgbouncer.wrap = lambda command: tracer.wrap("pgbouncer", command)
    user_home = workdir / "home-airflow"
    user_home.mkdir()
    d.wrap = tracer.wrap
    d.extra_env = {"HOME": str(user_home)}
    places: dict[Path | str, str] = {
        d.home: names.AIRFLOW_HOME, APP_DAGS: names.DAGS_FOLDER, user_home: AIRFLOW_USER_HOME,
        AIRFLOW_VENV: f"{AIRFLOW_USER_HOME}/.local", sys.base_prefix: "/usr/python", "/tmp": "/tmp",
    }
    try:
        try:
            postgres.start()
            broker.start()
            services.azurite.start()
            d.prepare()
            _compile_like_the_image(d)
            _run_auth_init_container(d, tracer, run)
            d.migrate()
            d.start()
            d.wait_ready()
            broker.probe()
            postgres.probe()
            observed = d.observe(d.trigger(), 4, timeout=180)
            assert observed.states == {"success": 4}, d.summary()
        finally:
            # Stopped before any test looks: what the components write on
            # SIGTERM is in the traces too.
            d.stop()
            services.azurite.stop()
            broker.stop()
            postgres.stop()
        yield TracedRun(run, tracer, d, postgres, broker, places)
    finally:
        shutil.rmtree(d.home, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("component", AIRFLOW)
def test_airflow_writes_only_to_its_volumes(traced: TracedRun, component: str) -> None:
    fs = PodFilesystem.of(container_of(traced.run, component), traced.airflow_places)
    writes = traced.tracer.writes(component, traced.deployment.home)
    refused = fs.refused(writes)
    assert not refused, f"container {component} writes outside its volumes: " + "; ".join(refused)


@pytest.mark.parametrize("service", ["postgres", "rabbitmq", "pgbouncer"])
def test_the_broker_and_database_write_only_to_their_volumes(traced: TracedRun, service: str) -> None:
    """Their local tree stands for the container's / (PodPostgres, PodRabbitMQ,
    LocalPgBouncer's pod_root)."""
    pgbouncer = traced.deployment.pgbouncer
    assert pgbouncer is not None and pgbouncer.pod_root is not None
    root = {"postgres": traced.postgres.root, "rabbitmq": traced.rabbitmq.pod_root,
            "pgbouncer": pgbouncer.pod_root}[service]
    fs = PodFilesystem.of(container_of(traced.run, service), {root: "/", "/tmp": "/tmp"})
    refused = fs.refused(traced.tracer.writes(service, root))
    assert not refused, f"StatefulSet of {service} writes outside its volumes: " + "; ".join(refused)


def test_the_trace_saw_each_components_own_writes(traced: TracedRun) -> None:
    """Not vacuous: the writes each component is known to make are in its trace."""
    d, tracer = traced.deployment, traced.tracer
    task_logs = [p for p in tracer.writes("worker", d.home).paths
                 if p.startswith(str(d.home / "logs" / "dag_id=fanout")) and p.endswith(".log")]
    assert len(task_logs) == 4, "worker: the four task logs"
    assert str(d.home / "auth" / "simple_auth_manager_passwords.json") in tracer.writes("auth-passwords", d.home).paths
    pg_writes = tracer.writes("postgres", traced.postgres.root).paths
    assert str(traced.postgres.pgdata / "postmaster.pid") in pg_writes, "postgres: its pid file in PGDATA"
    assert any(p.startswith(str(traced.postgres.socket_dir) + "/.s.PGSQL.") for p in pg_writes), "postgres: socket"
    mq_writes = tracer.writes("rabbitmq", traced.rabbitmq.pod_root).paths
    assert any(p.startswith(str(traced.rabbitmq.mnesia_base)) for p in mq_writes), "rabbitmq: its data"
    # Its postStart hook opens the container's log whether or not it has
    # anything to say.
    assert "/proc/1/fd/1" in mq_writes, "rabbitmq: its postStart hook"
    # PgBouncer writes nothing at all; its trace shows it read its user list.
    assert d.pgbouncer is not None
    assert f"<{d.pgbouncer.auth_path}>" in tracer.text("pgbouncer"), "pgbouncer: traced"
