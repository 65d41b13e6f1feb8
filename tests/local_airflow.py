"""Run what the program declares on real Airflow, PostgreSQL and RabbitMQ, on loopback.

The program runs under Pulumi mocks for a stack config; this module reads the
Kubernetes objects it declared and starts each Airflow component as a local
process with that object's command, args and environment, with the generated
airflow.cfg from its ConfigMap. PostgreSQL and RabbitMQ (Debian packages) start
with the args and config files their declared objects carry, and with the
credentials the program generated for them. Only what a cluster provides
differently is rewritten: service hostnames become 127.0.0.1 and free ports,
/opt/airflow becomes a scratch directory (and its dags folder app/dags), and
each run gets its own database and vhost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from mirakuru import TCPExecutor

from components.config import stack_file_config
from components.kubernetes import database_roles, rabbitmq, task_logs, workloads
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.secrets import DIRECT_CONN_KEY
from components.model import names
from components.model.database_roles import roles_sql
from tests.harness import ProgramRun, plain, run_program
from tests.real_airflow import ROOT, airflow_env, run_airflow_python

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
APP_DAGS = ROOT / "app" / "dags"
APP_CONFIG = ROOT / "app" / "config"
TERMINAL = {"success", "failed", "skipped", "upstream_failed", "removed"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process, from /proc."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def image_command(args: list[str]) -> list[str]:
    """What the official image's entrypoint runs for these container args."""
    if args and args[0] in ("bash", "python", "sh"):
        return args
    return ["airflow", *args]


def wait_for(what: str, check: Any, timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


# --------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------


class LocalPostgres:
    """A private PostgreSQL cluster on 127.0.0.1, started with the declared server args.

    tls: stand in for the flexible server (require_secure_transport=on): a
    certificate for 127.0.0.1 from a CA the test makes (`ca_file`), ssl on,
    and a pg_hba.conf that accepts TCP clients over TLS only (`hostssl`),
    with a password; the tests' own admin connection uses the Unix socket.
    """

    def __init__(self, workdir: Path, server_args: list[str], tls: bool = False) -> None:
        bins = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: run scripts/install")
        self.bin = bins[-1]
        self.dir = workdir / "postgres"
        self.port = free_port()
        self.server_args = server_args
        self.tls = tls
        self.ca_file = self.dir / "ca.crt"
        # The server options of the certificate start() makes (none without tls).
        self.tls_args: list[str] = []

    @property
    def admin_host(self) -> str:
        """Where the tests' own connections go: TCP, or the Unix socket of a TLS-only server."""
        return str(self.dir) if self.tls else "127.0.0.1"

    def _as_postgres(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        # initdb and the server refuse to run as root.
        return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True,
                              check=True, cwd="/tmp")

    def _make_certificate(self, data: Path) -> list[str]:
        """A CA and a server certificate it signs, for 127.0.0.1 (openssl CLI);
        the server options that use them."""
        certs = self.dir / "certs"
        certs.mkdir()

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=airflow-aks test CA",
                "-keyout", "ca.key", "-out", str(self.ca_file))
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
                "-out", "server.csr")
        (certs / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", str(self.ca_file), "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")
        for name in ("server.crt", "server.key"):
            shutil.copy(certs / name, data / name)
            shutil.chown(data / name, "postgres", "postgres")
        (data / "server.key").chmod(0o600)
        self.ca_file.chmod(0o644)
        # No `host` line: a client without TLS finds no entry and is refused.
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        return ["-c ssl=on", "-c ssl_cert_file=server.crt", "-c ssl_key_file=server.key",
                "-c ssl_min_protocol_version=TLSv1.2"]

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self._as_postgres(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8")
        self.tls_args = self._make_certificate(data) if self.tls else []
        self.start_server()

    def start_server(self) -> None:
        """Start the server on the data directory start() made; after a
        SIGKILL, PostgreSQL first recovers from its write-ahead log."""
        options = " ".join([f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}",
                            *self.server_args, *self.tls_args])
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
                          "-o", options, "-w", "start")

    def postmaster_pid(self) -> int:
        """The running server's process id (the first line of postmaster.pid)."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(host=self.admin_host, port=self.port, user="postgres", dbname="postgres",
                               autocommit=True)

    def setting(self, name: str) -> str:
        with self.admin() as conn:
            return str(conn.execute(f"SHOW {name}").fetchone()[0])


PGBOUNCER_BIN = Path("/usr/sbin/pgbouncer")


class LocalPgBouncer:
    """PgBouncer with the declared pgbouncer.ini and userlist, on 127.0.0.1, in
    front of the local PostgreSQL and one deployment's database."""

    def __init__(self, workdir: Path, ini: str, users: str, namespace: str, postgres_port: int,
                 database: str, pod_root: Path | None = None, server_host: str | None = None,
                 server_ca: Path | None = None) -> None:
        """pod_root: lay the files out as the pod does, under this directory
        standing for its /, and keep the declared ini's own settings but the
        addresses (no log file, no unix socket); without it, everything in
        `workdir` and a log file there. server_host: the database host the
        declared ini names (default: the in-cluster PostgreSQL Service);
        server_ca: the CA file that stands for the declared server_tls_ca_file
        (the local server's certificate is not Azure's)."""
        if not PGBOUNCER_BIN.exists():
            raise RuntimeError("PgBouncer is not installed: run scripts/install")
        self.dir = workdir
        self.port = free_port()
        self.users = users
        # The userlist's one user, who is also PgBouncer's stats user.
        self.user = users.split('"')[1]
        self.pod_root = pod_root
        host = server_host or names.service_host(names.POSTGRES, namespace)
        pg_target = f"host={host} port={names.POSTGRES_PORT} dbname={names.POSTGRES_DB}"
        assert pg_target in ini, f"the declared pgbouncer.ini points at {host}"
        ini = ini.replace(pg_target, f"host=127.0.0.1 port={postgres_port} dbname={database}")
        ini = re.sub(r"(?m)^listen_addr = .*$", "listen_addr = 127.0.0.1", ini)
        ini = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {self.port}", ini)
        if pod_root is None:
            self.ini_path, self.auth_path = self.dir / "pgbouncer.ini", self.dir / "users.txt"
            ini = re.sub(r"(?m)^unix_socket_dir =.*$", f"unix_socket_dir = {self.dir}", ini)
            ini += f"logfile = {self.dir / 'pgbouncer.log'}\n"
        else:
            [auth] = re.findall(r"(?m)^auth_file = (.*)$", ini)
            self.auth_path = pod_root / auth.lstrip("/")
            self.ini_path = self.auth_path.parent / "pgbouncer.ini"
        self.server_ca = server_ca
        self.ca_path: Path | None = None
        if server_ca is not None:
            [ca] = re.findall(r"(?m)^server_tls_ca_file = (.*)$", ini)
            self.ca_path = pod_root / ca.lstrip("/") if pod_root is not None else self.dir / Path(ca).name
            ini = re.sub(r"(?m)^server_tls_ca_file = .*$", f"server_tls_ca_file = {self.ca_path}", ini)
        self.ini = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {self.auth_path}", ini)
        # What runs PgBouncer's command (a tracer, say).
        self.wrap: Callable[[list[str]], list[str]] = lambda command: command
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ini_path.parent.mkdir(parents=True, exist_ok=True)
        self.ini_path.write_text(self.ini)
        self.auth_path.write_text(self.users)
        if self.server_ca is not None and self.ca_path is not None:
            self.ca_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.server_ca, self.ca_path)
        as_user: list[str] = []
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            for path in {self.dir, self.ini_path.parent, self.ini_path, self.auth_path}:
                shutil.chown(path, "postgres")
            self.auth_path.chmod(0o600)
            as_user = ["runuser", "-u", "postgres", "--"]
        self.process = subprocess.Popen([*as_user, *self.wrap([str(PGBOUNCER_BIN), str(self.ini_path)])],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=self.pod_root or self.dir)

        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"PgBouncer exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for("PgBouncer", listening, timeout=30, interval=0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def show(self, what: str, password: str) -> list[dict[str, Any]]:
        """SHOW POOLS, SHOW CLIENTS, ... on the admin console, as the Airflow user (stats_users)."""
        # The admin console speaks only the simple query protocol: ClientCursor.
        with psycopg.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer", user=self.user,
                             password=password, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
            cur = conn.execute(f"SHOW {what}")
            cols = [c.name for c in cur.description or []]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def container_command(container: dict[str, Any], entrypoint: list[str], cmd: list[str]) -> list[str]:
    """What a container runs, as Kubernetes decides it from its command and
    args and the image's ENTRYPOINT and CMD: a declared command replaces both."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*entrypoint, *container.get("args", cmd)]


@dataclass(frozen=True)
class RabbitMQLayout:
    """Where the declared RabbitMQ pod keeps HOME (the Erlang cookie) and the
    node's data, and the command its container starts with.

    Read from the StatefulSet: the image's HOME, RABBITMQ_MNESIA_BASE from the
    container's env, the mount path of the persistent volume claim, the pod's
    fsGroup and the container's command (the image's own when it declares
    none). Locally, `pod_root` stands for the container's own filesystem (and
    emptyDirs) and `volume` for the persistent disk.
    """

    home: str
    mnesia_base: str
    volume_mount: str
    fs_group: int
    command: tuple[str, ...] = (*rabbitmq.IMAGE_ENTRYPOINT, *rabbitmq.IMAGE_COMMAND)

    @classmethod
    def declared(cls, statefulset: dict[str, Any], home: str) -> RabbitMQLayout:
        pod = statefulset["spec"]["template"]["spec"]
        [container] = pod["containers"]
        claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        [mount] = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims]
        env = {e["name"]: e.get("value") for e in container["env"]}
        command = container_command(container, rabbitmq.IMAGE_ENTRYPOINT, rabbitmq.IMAGE_COMMAND)
        return cls(home=home, mnesia_base=env.get("RABBITMQ_MNESIA_BASE", f"{home}/mnesia"),
                   volume_mount=mount, fs_group=pod["securityContext"]["fsGroup"], command=tuple(command))

    def local(self, path: str, pod_root: Path, volume: Path) -> Path:
        """Where a path of the pod lives here: on the volume if it is under the volume's mount."""
        rel = Path(path).relative_to(self.volume_mount) if Path(path).is_relative_to(self.volume_mount) else None
        return volume / rel if rel is not None else pod_root / path.lstrip("/")


def kubelet_set_volume_ownership(volume: Path, fs_group: int) -> int:
    """Do to a volume what the kubelet does on mount with fsGroup (policy Always).

    As kubelet's SetVolumeOwnership (pkg/volume/volume_linux.go): every file
    and directory gets group fsGroup, files gain rw for the group (0660 is
    or-ed in), directories also x and setgid. Returns how many paths changed.
    """
    changed = 0
    for path in [volume, *volume.rglob("*")]:
        if path.is_symlink():
            continue
        st = path.stat()
        mask = 0o660 | (0o110 | stat.S_ISGID if path.is_dir() else 0)
        os.chown(path, -1, fs_group)
        os.chmod(path, stat.S_IMODE(st.st_mode) | mask)
        changed += 1
    return changed


# The official image's docker-entrypoint.sh ends in `exec "$@"` once it has
# checked its environment (docker-library/rabbitmq); this stand-in does only
# that, so a container command that runs the image's entrypoint runs here as
# declared.
IMAGE_ENTRYPOINT_STAND_IN = '#!/bin/sh\nexec "$@"\n'


class LocalRabbitMQ:
    """A private RabbitMQ node on 127.0.0.1 with the declared config files and
    data layout, started with its container's command: Debian's RabbitMQ
    commands and a stand-in for the image's entrypoint are on its PATH."""

    def __init__(self, workdir: Path, conf_files: dict[str, str], layout: RabbitMQLayout | None = None) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise RuntimeError("RabbitMQ is not installed: run scripts/install")
        self.dir = workdir / "rabbitmq"
        self.port = free_port()
        self.node = f"airflowaks{self.port}@localhost"
        self.conf_files = conf_files
        self.layout = layout or RabbitMQLayout("/var/lib/rabbitmq", "/var/lib/rabbitmq/mnesia",
                                               "/var/lib/rabbitmq/mnesia", os.getgid())
        self.pod_root = self.dir / "pod"
        self.volume = self.dir / "volume"
        self.conf_dir = self.dir / "conf.d"
        self.plugins_file = self.dir / "enabled_plugins"
        self.image_bin = self.dir / "image-bin"
        # The server's working directory (a node that fails to boot writes
        # erl_crash.dump there), and what runs its command (a tracer, say).
        self.cwd = self.dir
        self.wrap: Callable[[list[str]], list[str]] = lambda command: command
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.layout.local(self.layout.home, self.pod_root, self.volume)

    @property
    def mnesia_base(self) -> Path:
        return self.layout.local(self.layout.mnesia_base, self.pod_root, self.volume)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.image_bin}:{RABBITMQ_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILES": str(self.conf_dir),
            "RABBITMQ_MNESIA_BASE": str(self.mnesia_base),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.plugins_file),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }

    def ctl(self, *args: str) -> str:
        # cwd: rabbitmqctl is an Erlang node too, and one that cannot boot dumps there.
        done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def start(self) -> None:
        """Start the node; again after stop() it starts on the same home and volume."""
        conf = self.conf_dir
        if not (conf / "10-local.conf").exists():
            conf.mkdir(parents=True, exist_ok=True)
            (conf / "10-local.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
            for name, text in self.conf_files.items():
                (conf / name).write_text(text)
            self.plugins_file.write_text("[].\n")
            self.dist_port = free_port()
            self.image_bin.mkdir(parents=True, exist_ok=True)
            entrypoint = self.image_bin / rabbitmq.IMAGE_ENTRYPOINT[0]
            entrypoint.write_text(IMAGE_ENTRYPOINT_STAND_IN)
            entrypoint.chmod(0o755)
        for path in (self.home, self.mnesia_base, self.volume):
            path.mkdir(parents=True, exist_ok=True)
        log = (self.dir / "server.log").open("ab")
        self.process = subprocess.Popen(self.wrap(list(self.layout.command)), env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=self.cwd)

        def started() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"RabbitMQ exited with {self.process.returncode}:\n{self.server_log()[-6000:]}")
            return subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "await_startup"],
                                  env=self.env, capture_output=True, timeout=60, check=False,
                                  cwd=self.dir).returncode == 0

        wait_for("RabbitMQ", started, timeout=90, interval=2)

    def container_exec(self, command: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a command the pod runs in the container (a probe, a lifecycle
        hook) against this node, as it is declared: with the node's
        environment, in the pod's working directory, in a PID namespace of its
        own. Its PID 1, the command itself, stands for the container's, so what
        the command writes to /proc/1/fd/1 (the container's log) is in the
        result's stdout, not on this machine's init."""
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *self.wrap(command)], env=self.env,
                              cwd=self.cwd, capture_output=True, text=True, timeout=timeout, check=False)

    def server_log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.ctl("stop")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        # rabbitmq-server starts the Erlang port mapper as a daemon; stop it
        # too unless another node still uses it.
        epmd = shutil.which("epmd") or "/usr/lib/erlang/erts/bin/epmd"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            names_ = subprocess.run([epmd, "-names"], capture_output=True, text=True, timeout=10).stdout
            if "name " not in names_:
                subprocess.run([epmd, "-kill"], capture_output=True, timeout=10, check=False)

    def environment(self) -> str:
        return self.ctl("environment")


class LocalAzurite:
    """Azurite's blob service (the Azure Storage emulator, from npm) on loopback,
    where the deployments' task logs go: the emulator cannot do workload
    identity, so they use its public development account instead."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.location = workdir / "azurite"
        self.location.mkdir(parents=True, exist_ok=True)
        self._process = TCPExecutor(
            [str(ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"), "--blobHost", "127.0.0.1",
             "--blobPort", str(self.port), "--location", str(self.location), "--silent", "--skipApiVersionCheck",
             "--debug", str(self.location / "debug.log"),
             # On by default since 3.35: no test sends usage data to Microsoft
             # (azurite README.md, "Disable Telemetry Collection").
             "--disableTelemetry"],
            host="127.0.0.1", port=self.port, timeout=60)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{task_logs.EMULATOR_ACCOUNT}"

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        # SIGKILL: on SIGTERM Azurite 3.37's blob service only starts closing
        # (azurite/dist/src/blob/main.js, shutdown()), and after deployments
        # had used it, it often did not exit before mirakuru's 60 s timeout
        # (60.1 s, 63.1 s and 64.0 s measured; 1 s in another run): a minute
        # at the end of a session or a traced run. Nothing it holds outlives
        # the test: its location is deleted after.
        self._process.stop(stop_signal=signal.SIGKILL)


@dataclass
class Services:
    postgres: LocalPostgres
    rabbitmq: LocalRabbitMQ
    workdir: Path
    azurite: LocalAzurite


@contextlib.contextmanager
def local_services(stack: str = "dev", config: dict[str, Any] | None = None) -> Iterator[Services]:
    """PostgreSQL and RabbitMQ as the program declares them for a stack, for one test session."""
    run = declared(stack, config)
    pg = run.manifest("StatefulSet", names.POSTGRES)["spec"]["template"]["spec"]["containers"][0]
    mq_conf = run.manifest("ConfigMap", names.RABBITMQ)["data"]
    mq_layout = RabbitMQLayout.declared(run.manifest("StatefulSet", names.RABBITMQ), rabbitmq.HOME_DIR)
    workdir = Path(tempfile.mkdtemp(prefix="airflow-aks-services-"))
    workdir.chmod(0o755)  # the postgres user must reach its data directory
    services = Services(LocalPostgres(workdir, pg["args"]), LocalRabbitMQ(workdir, mq_conf, mq_layout), workdir,
                        LocalAzurite(workdir))
    try:
        services.postgres.start()
        services.rabbitmq.start()
        services.azurite.start()
        yield services
    finally:
        services.azurite.stop()
        services.rabbitmq.stop()
        services.postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def tls_only_postgres(services: Services) -> Iterator[Services]:
    """The session's services with a TLS-only PostgreSQL in place of
    theirs, started with the same server args: the flexible server's
    stand-in (`database: azure`), a few seconds to start."""
    pg = LocalPostgres(services.workdir / f"tls-{uuid.uuid4().hex[:8]}", services.postgres.server_args, tls=True)
    try:
        pg.start()
        yield dataclasses.replace(services, postgres=pg)
    finally:
        pg.stop()


def declared(stack: str, config: dict[str, Any] | None = None,
             external_database: ExternalDatabase | None = None) -> ProgramRun:
    """The program under mocks; with external_database, the flexible server
    the Kubernetes side connects to (`database: azure`) is that one."""
    with (serving(external_database) if external_database is not None else contextlib.nullcontext()):
        run = run_program(stack, config)
    if run.error is not None:
        raise run.error
    return run


@contextlib.contextmanager
def serving(external_database: ExternalDatabase) -> Iterator[None]:
    """The program's Workloads get this server whatever __main__.py passes:
    the server components/azure declares exists only in Azure, and under
    mocks its FQDN is not a name that reaches this machine's stand-in."""
    original = workloads.Workloads

    class WithServer(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "external_database": external_database})

    workloads.Workloads = WithServer  # type: ignore[misc]
    try:
        yield
    finally:
        workloads.Workloads = original  # type: ignore[misc]


def stack_config(base: str = "dev", **changes: Any) -> dict[str, Any]:
    """A stack file's config with some airflow-aks keys changed.

    The reference DAG gets no schedule unless a change sets fanoutSchedule:
    tests and benches unpause `fanout` and trigger it by hand, and with its
    default hourly cron, unpausing alone starts a run too. Airflow 3.3.2's
    CronTriggerTimetable with catchup=False puts the next run at the latest
    past cron time (airflow/timetables/trigger.py,
    _TriggerTimetable.next_dagrun_info: `_align_to_prev(utcnow())`), which is
    already due, so the scheduler would create it at once beside the test's.
    """
    config = stack_file_config(base)
    config["airflow-aks:fanoutSchedule"] = None
    for key, value in changes.items():
        config[f"airflow-aks:{key}"] = value
    return config


# --------------------------------------------------------------------------
# One deployment: the declared Airflow objects as local processes
# --------------------------------------------------------------------------


@dataclass
class Workload:
    component: str
    args: list[str]
    env: dict[str, str]
    probe: dict[str, Any] | None


@dataclass
class Observation:
    max_running: int = 0
    states: dict[str, int] = field(default_factory=dict)
    first_running_at: float | None = None
    all_running_at: float | None = None
    finished_at: float | None = None
    samples: int = 0


class LocalDeployment:
    """Airflow as declared for one stack config, on local processes and a fresh database."""

    def __init__(self, run: ProgramRun, services: Services, workdir: Path | None = None,
                 cfg_text: str | None = None, migrate_args: list[str] | None = None,
                 pgbouncer_as_pod: bool = False) -> None:
        """cfg_text and migrate_args replace the declared ones (the benchmark's comparison configs);
        pgbouncer_as_pod lays PgBouncer's files out as its pod does (LocalPgBouncer's pod_root)."""
        self.pgbouncer_as_pod = pgbouncer_as_pod
        self.run = run
        self.services = services
        self.id = uuid.uuid4().hex[:8]
        self.home = workdir or Path(tempfile.mkdtemp(prefix=f"airflow-aks-{self.id}-"))
        self.database = f"airflow_{self.id}"
        self.vhost = f"airflow_{self.id}"
        self.api_port = free_port()
        self.health_port = free_port()
        # Where StatsD packets go (UDP): a test may listen there.
        self.statsd_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.namespace = run.outputs["namespace"]
        # Whom the migration Job's direct URL logs in as, and where: the
        # in-cluster Service, or the flexible server (`database: azure`).
        direct = urlsplit(self._secret(names.env_secret("migrate"))[DIRECT_CONN_KEY])
        assert direct.username is not None and direct.hostname is not None
        self.db_user, self.db_host = direct.username, direct.hostname
        self.pgbouncer = self._pgbouncer()
        declared_cfg = run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"]
        self.cfg_text = self._rewrite(cfg_text if cfg_text is not None else declared_cfg)
        self.env_data = run.manifest("ConfigMap", names.ENV_CONFIG_MAP)["data"]
        self.workloads = self._workloads()
        # What runs a component's command (a tracer, say) and what its
        # environment adds: both empty for a plain run.
        self.wrap: Callable[[str, list[str]], list[str]] = lambda component, command: command
        self.extra_env: dict[str, str] = {}
        if migrate_args is not None:
            self.workloads["migrate"].args = migrate_args

    # -- what the program declared, adapted to loopback ----------------------

    def _secret(self, name: str) -> dict[str, str]:
        [r] = [r for r in self.run.resources
               if r.type == "kubernetes:core/v1:Secret" and plain(r.inputs)["metadata"]["name"] == name]
        return plain(r.inputs["stringData"])

    def _pgbouncer(self) -> LocalPgBouncer | None:
        found = [m for m in self.run.manifests() if m["kind"] == "ConfigMap"
                 and m["metadata"]["name"] == names.PGBOUNCER]
        if not found:
            return None
        users = self._secret(names.PGBOUNCER_SECRET)["users.txt"]
        workdir = self.services.workdir / f"pgbouncer-{self.id}"
        pg = self.services.postgres
        return LocalPgBouncer(workdir, found[0]["data"]["pgbouncer.ini"], users, self.namespace,
                              pg.port, self.database,
                              pod_root=workdir / "pod" if self.pgbouncer_as_pod else None,
                              server_host=self.db_host, server_ca=pg.ca_file if pg.tls else None)

    def _secret_value(self, name: str, key: str) -> str:
        """A key of one of the Secrets, its in-cluster addresses moved to the local services."""
        value = self._secret(name)[key]
        if self.pgbouncer is not None:
            bouncer = f"@{names.service_host(names.PGBOUNCER, self.namespace)}:{names.PGBOUNCER_PORT}/"
            value = value.replace(bouncer, f"@127.0.0.1:{self.pgbouncer.port}/")
        pg_host = f"{self.db_host}:{names.POSTGRES_PORT}"
        mq_host = f"{names.service_host(names.RABBITMQ, self.namespace)}:{names.RABBITMQ_PORT}"
        value = value.replace(f"@{pg_host}/{names.POSTGRES_DB}", f"@127.0.0.1:{self.services.postgres.port}/"
                              f"{self.database}")
        return value.replace(f"@{mq_host}/{names.RABBITMQ_VHOST}", f"@127.0.0.1:{self.services.rabbitmq.port}/"
                             f"{self.vhost}")

    def _rewrite(self, text: str) -> str:
        api_host = f"{names.service_host(names.API_SERVER, self.namespace)}:{names.API_SERVER_PORT}"
        text = text.replace(api_host, f"127.0.0.1:{self.api_port}")
        text = re.sub(r"(?m)^port = \d+$", f"port = {self.api_port}", text)
        text = re.sub(r"(?m)^scheduler_health_check_server_port = \d+$",
                      f"scheduler_health_check_server_port = {self.health_port}", text)
        text = text.replace(f"statsd_host = {names.service_host(names.STATSD, self.namespace)}.",
                            "statsd_host = 127.0.0.1")
        text = re.sub(r"(?m)^statsd_port = \d+$", f"statsd_port = {self.statsd_port}", text)
        text = text.replace(names.DAGS_FOLDER, str(APP_DAGS))
        return text.replace(names.AIRFLOW_HOME, str(self.home))

    def _workloads(self) -> dict[str, Workload]:
        found: dict[str, Workload] = {}
        for m in self.run.manifests():
            if m["kind"] not in ("Deployment", "StatefulSet", "Job"):
                continue
            labels = m["spec"]["template"]["metadata"]["labels"]
            if labels.get("app.kubernetes.io/name") != "airflow":
                continue
            component = labels["app.kubernetes.io/component"]
            [container] = m["spec"]["template"]["spec"]["containers"]
            env: dict[str, str] = {}
            for ref in container.get("envFrom", []):
                assert ref["configMapRef"]["name"] == names.ENV_CONFIG_MAP
                env.update(self.env_data)
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = self._rewrite(item["value"])
                elif item["valueFrom"]["secretKeyRef"]["name"] in (names.TASK_LOG_SECRET,
                                                                   names.TASK_LOG_READER_SECRET):
                    # The emulator instead of the declared store (workload
                    # identity on AKS, the writers' or the api-server's): same
                    # container, same Airflow options. The emulator has no
                    # roles: a reader's key writes as well.
                    env[item["name"]] = task_logs.emulator_connection(self.services.azurite.endpoint)
                else:
                    # Exactly the key the container names, of the Secret it names
                    # (a component's own, a git bundle's connection): a component
                    # that needs more than its Secret holds fails here as in a pod.
                    ref = item["valueFrom"]["secretKeyRef"]
                    env[item["name"]] = self._secret_value(ref["name"], ref["key"])
            probe = container.get("readinessProbe") or container.get("livenessProbe")
            found[component] = Workload(component, container["args"], env, probe)
        return found

    def process_env(self, workload: Workload) -> dict[str, str]:
        return airflow_env(self.home, {**workload.env, **self.extra_env})

    # -- lifecycle ------------------------------------------------------------

    def prepare(self) -> None:
        """Fresh database and vhost, with the users the program generated passwords for."""
        pg_password = self._secret(names.POSTGRES_SECRET)["password"]
        roles_command, roles_env = self.roles_job()
        superuser = roles_env["PGUSER"]
        # The image's superuser in the cluster; the flexible server's admin
        # (the TLS-only stand-in) is no superuser but may create roles and databases.
        attributes = "CREATEDB CREATEROLE" if self.services.postgres.tls else "SUPERUSER"
        with self.services.postgres.admin() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [superuser]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(f"{verb} ROLE {superuser} LOGIN {attributes} PASSWORD '{pg_password}'")
            conn.execute(f"CREATE DATABASE {self.database} OWNER {superuser}")
        self.create_roles(roles_command, roles_env)
        mq = self.services.rabbitmq
        mq_password = self._secret(names.RABBITMQ_SECRET)["password"]
        with contextlib.suppress(RuntimeError):
            mq.ctl("add_user", names.RABBITMQ_USER, mq_password)
        mq.ctl("change_password", names.RABBITMQ_USER, mq_password)
        mq.ctl("add_vhost", self.vhost)
        mq.ctl("set_permissions", "-p", self.vhost, names.RABBITMQ_USER, ".*", ".*", ".*")
        if self.pgbouncer is not None:
            self.pgbouncer.start()
        if self.remote_logs:
            self._create_log_container()
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        # What the image copies to /opt/airflow/config (app/Dockerfile).
        shutil.copytree(APP_CONFIG, self.home / "config", dirs_exist_ok=True)
        (self.home / "airflow.cfg").write_text(self.cfg_text)
        # The ConfigMap's other files (webserver_config.py with Entra ID sign-in), where the
        # api-server mounts them: $AIRFLOW_HOME/<key>.
        config_files = self.run.manifest("ConfigMap", names.CONFIG_MAP)["data"]
        for key, text in config_files.items():
            if key != "airflow.cfg":
                (self.home / key).write_text(self._rewrite(text))
        # The api-server's init container copies this from the auth Secret.
        auth = self._secret(names.AUTH_SECRET)
        auth_dir = self.home / "auth"
        auth_dir.mkdir(exist_ok=True)
        for key, value in auth.items():
            (auth_dir / key).write_text(value)

    def roles_job(self) -> tuple[str, dict[str, str]]:
        """The declared roles Job's command and environment, its Secret values
        resolved and pointed at the local server and this deployment's database."""
        [job] = [m for m in self.run.manifests() if m["kind"] == "Job"
                 and m["metadata"]["labels"]["app.kubernetes.io/component"] == "database-roles"]
        [container] = job["spec"]["template"]["spec"]["containers"]
        env = {}
        for item in container["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            env[item["name"]] = self._secret(ref["name"])[ref["key"]] if ref else item["value"]
        assert env.pop(database_roles.SQL_ENV) == roles_sql(), "the declared script is the builder's"
        assert (env["PGHOST"], env["PGDATABASE"]) == (self.db_host, names.POSTGRES_DB)
        assert container["command"][:2] == ["bash", "-c"]
        return container["command"][2], {
            **env, "PGHOST": "127.0.0.1", "PGPORT": str(self.services.postgres.port), "PGDATABASE": self.database,
            database_roles.SQL_ENV: roles_sql(self.database)}

    def create_roles(self, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """What the roles Job does: its command, with the server's psql."""
        path = f"{self.services.postgres.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        done = subprocess.run(["bash", "-c", command], env={"PATH": path, **env}, capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"roles job failed:\n{done.stdout}{done.stderr}")
        return done

    @property
    def remote_logs(self) -> bool:
        return any(task_logs.CONNECTION_ENV in w.env for w in self.workloads.values())

    def _blob_python(self, body: str, what: str) -> str:
        """Run `body` under the real Airflow interpreter with `c`, a client of
        the emulator's log container; return its stdout."""
        code = (f"import json\nfrom azure.storage.blob import BlobServiceClient\n"
                f"c = BlobServiceClient.from_connection_string({self.log_connection_string()!r})"
                f".get_container_client({names.TASK_LOG_CONTAINER!r})\n{body}\n")
        done = run_airflow_python(code, home=self.home)
        if done.returncode != 0:
            raise RuntimeError(f"{what} in Azurite: {done.stderr[-2000:]}")
        return done.stdout

    def _create_log_container(self) -> None:
        """What the program's BlobContainer does on Azure, in the emulator."""
        self._blob_python("try:\n    c.create_container()\nexcept Exception as e:\n"
                          "    assert 'ContainerAlreadyExists' in str(e), e", "creating the log container")

    def log_connection_string(self) -> str:
        return json.loads(task_logs.emulator_connection(self.services.azurite.endpoint))["extra"][
            "connection_string"]

    def log_blobs(self) -> dict[str, str]:
        """Every task-log blob in the emulator's container, name -> text."""
        out = self._blob_python("print(json.dumps({b.name: c.download_blob(b.name).readall().decode("
                                "errors='replace') for b in c.list_blobs()}))", "listing the log blobs")
        return json.loads(out.strip().splitlines()[-1])

    def migrate(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        job = self.workloads["migrate"]
        done = subprocess.run(self.wrap("migrate", image_command(job.args)), env=self.process_env(job), cwd=self.home,
                              capture_output=True, text=True, timeout=timeout, check=False)
        (self.home / "migrate.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"migration job failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return done

    def start(self, *components: str) -> None:
        for component in components or ("api-server", "scheduler", "dag-processor", "triggerer", "worker"):
            w = self.workloads[component]
            log = (self.home / f"{component}.log").open("wb")
            self.processes[component] = subprocess.Popen(
                self.wrap(component, image_command(w.args)), env=self.process_env(w), cwd=self.home, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self) -> float:
        """Start the worker alone; the monotonic time its process started."""
        started = time.monotonic()
        self.start("worker")
        return started

    def wait_worker_ready(self, started: float, timeout: float = 300) -> float:
        """Seconds from `started` until Celery logs the worker ready: its pool
        forked and its consumer taking tasks (celery/apps/worker.py,
        on_consumer_ready, "<hostname> ready.")."""
        log = self.home / "worker.log"
        ready = re.compile(r"celery@\S+ ready\.")

        def logged() -> bool:
            proc = self.processes["worker"]
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: see {log}")
            return log.exists() and ready.search(log.read_text(errors="replace")) is not None

        wait_for("Celery's ready line in the worker's log", logged, timeout=timeout, interval=0.1)
        return time.monotonic() - started

    def probe_ok(self, component: str) -> bool:
        """Run the component's declared readiness (or liveness) probe against the local process."""
        w = self.workloads[component]
        proc = self.processes.get(component)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{component} exited with {proc.returncode}: see {self.home / (component + '.log')}")
        probe = w.probe or {}
        if "httpGet" in probe:
            port = {names.API_SERVER_PORT: self.api_port, names.SCHEDULER_HEALTH_PORT: self.health_port}[
                probe["httpGet"]["port"]]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe['httpGet']['path']}", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        if "exec" in probe:
            done = subprocess.run(self.wrap(component, probe["exec"]["command"]), env=self.process_env(w),
                                  cwd=self.home, capture_output=True, timeout=90, check=False)
            return done.returncode == 0
        return True

    def probe_due(self, component: str) -> bool:
        """Whether the component's declared exec probe could pass yet, from
        what costs no CPU to ask: the job row `airflow jobs check --job-type
        X` looks for (airflow/cli/commands/jobs_command.py, check: a running
        job of that type), or Celery's ready line in the worker's log (the
        `inspect ping` probe asks that worker). Each exec probe is a CLI that
        spends seconds of CPU importing Airflow or Celery; run every second
        while the components still start, they took that CPU from the starts
        themselves. Components with an HTTP probe (or none) are due at once."""
        proc = self.processes.get(component)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{component} exited with {proc.returncode}: see {self.home / (component + '.log')}")
        command = (self.workloads[component].probe or {}).get("exec", {}).get("command", [])
        if "--job-type" in command:
            job_type = command[command.index("--job-type") + 1]
            return bool(self.query("SELECT count(*) FROM job WHERE job_type = %s AND state = 'running'",
                                   [job_type])[0][0])
        if "inspect ping" in " ".join(command):
            log = self.home / f"{component}.log"
            return log.exists() and re.search(r"celery@\S+ ready\.", log.read_text(errors="replace")) is not None
        return True

    def wait_ready(self, timeout: float = 180) -> float:
        """Until every started component's declared probe passes (and the
        fanout DAG is parsed); the seconds that took. A probe runs only once
        probe_due says it could pass: it still decides, it only runs fewer times."""
        started = time.monotonic()
        # All components' probes at once: three of them run a CLI (seconds of
        # CPU each), and one after the other they left the second core idle.
        with ThreadPoolExecutor(max(1, len(self.processes))) as pool:
            for waited in [pool.submit(wait_for, component,
                                       lambda c=component: self.probe_due(c) and self.probe_ok(c), timeout, 1)
                           for component in self.processes]:
                waited.result()
        wait_for("the fanout DAG in the database", lambda: self.query(
            "SELECT count(*) FROM serialized_dag WHERE dag_id = 'fanout'")[0][0] > 0, timeout=timeout)
        return time.monotonic() - started

    def airflow(self, *args: str, timeout: float = 120) -> str:
        w = self.workloads["scheduler"]
        done = subprocess.run(["airflow", *args], env=self.process_env(w), cwd=self.home, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    def airflow_commands(self, *commands: list[str], timeout: float = 120) -> str:
        """Several `airflow` CLI commands, in order, in one interpreter: each
        `airflow` process spends seconds of CPU importing Airflow first."""
        w = self.workloads["scheduler"]
        code = ("import json, sys\nfrom airflow.__main__ import main\n"
                "for argv in json.loads(sys.argv[1]):\n    sys.argv = ['airflow', *argv]\n    main()\n")
        done = subprocess.run(["python", "-c", code, json.dumps(commands)], env=self.process_env(w),
                              cwd=self.home, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {commands}: {(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    def trigger(self, dag_id: str = "fanout") -> str:
        run_id = f"test__{self.id}__{time.time_ns()}"
        self.airflow_commands(["dags", "unpause", dag_id], ["dags", "trigger", dag_id, "--run-id", run_id])
        return run_id

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(host=self.services.postgres.admin_host, port=self.services.postgres.port,
                               user="postgres", dbname=self.database, autocommit=True)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(sql, params or []).fetchall()

    def states(self, run_id: str) -> dict[str, int]:
        rows = self.query("SELECT coalesce(state, 'none'), count(*) FROM task_instance "
                          "WHERE run_id = %s GROUP BY 1", [run_id])
        return {state: count for state, count in rows}

    def start_times(self, run_id: str) -> dict[str, float]:
        """When the run's tasks were first queued, first started and last
        started, as Unix times (the clock time.time() reads), from the
        metadata database: queued_dttm is the scheduler's, start_date the
        task supervisor's as it began (the Execution API's ti_run stores it).
        `started` counts the task instances that have a start."""
        [(first_queued, first_started, last_started, started)] = self.query(
            "SELECT extract(epoch FROM min(queued_dttm)), extract(epoch FROM min(start_date)), "
            "extract(epoch FROM max(start_date)), count(start_date) FROM task_instance WHERE run_id = %s",
            [run_id])
        return {"first_queued": float(first_queued), "first_started": float(first_started),
                "last_started": float(last_started), "started": int(started)}

    def observe(self, run_id: str, tasks: int, timeout: float, interval: float = 0.25,
                on_sample: Any = None) -> Observation:
        """Poll the metadata DB until every task instance of the run has ended."""
        obs = Observation()
        start = time.monotonic()
        with self.connect() as conn:
            while time.monotonic() - start < timeout:
                rows = conn.execute("SELECT coalesce(state, 'none'), count(*) FROM task_instance "
                                    "WHERE run_id = %s GROUP BY 1", [run_id]).fetchall()
                states = {state: count for state, count in rows}
                now = time.monotonic() - start
                running = states.get("running", 0)
                obs.samples += 1
                obs.max_running = max(obs.max_running, running)
                if running and obs.first_running_at is None:
                    obs.first_running_at = now
                if running >= tasks and obs.all_running_at is None:
                    obs.all_running_at = now
                obs.states = states
                if on_sample:
                    on_sample(states, now)
                if sum(states.values()) >= tasks and sum(states.get(s, 0) for s in TERMINAL) >= tasks:
                    obs.finished_at = now
                    return obs
                time.sleep(interval)
        return obs

    def pid(self, component: str) -> int:
        return self.processes[component].pid

    def tree_pss_mib(self, component: str) -> float:
        """Proportional set size of a component's whole process tree, from /proc/*/smaps_rollup."""
        total_kib = 0
        for pid in [self.pid(component), *descendants(self.pid(component))]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kib += int(line.split()[1])
        return total_kib / 1024

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to every component, as pods stop, then SIGKILL to what is
        left after `grace` seconds. grace=0: SIGKILL at once (a test's
        deployment being thrown away: a graceful stop took about 20 s of
        every real test, waiting on the worker's warm shutdown)."""
        # Task processes run in process groups of their own, so killing each
        # component's group misses them: note the whole tree first.
        tree = [pid for proc in self.processes.values() for pid in descendants(proc.pid)]
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.processes.clear()
        if self.pgbouncer is not None:
            self.pgbouncer.stop()
        with contextlib.suppress(Exception), self.services.postgres.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        with contextlib.suppress(Exception):
            self.services.rabbitmq.ctl("delete_vhost", self.vhost)

    def logs(self, component: str, tail: int = 4000) -> str:
        path = self.home / f"{component}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def summary(self) -> str:
        return json.dumps({c: self.workloads[c].args for c in self.workloads})


@contextlib.contextmanager
def deployment(services: Services, config: dict[str, Any], stack: str = "dev", start: bool = True,
               external_database: ExternalDatabase | None = None, **replace: Any) -> Iterator[LocalDeployment]:
    """Declare the program for a config, then migrate and start it locally."""
    d = LocalDeployment(declared(stack, config, external_database), services, **replace)
    try:
        d.prepare()
        d.migrate()
        if start:
            d.start()
            d.wait_ready()
        yield d
    finally:
        # What a test checks of a stop, it checks by calling d.stop() itself.
        d.stop(grace=0)
        shutil.rmtree(d.home, ignore_errors=True)
