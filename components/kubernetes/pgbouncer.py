"""PgBouncer between Airflow and PostgreSQL, in transaction mode, sized from the plan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pulumi
import pulumi_kubernetes as kubernetes

from components.kubernetes import k8s
from components.kubernetes.external_database import PGBOUNCER_SERVER_SSLMODE, ExternalDatabase, server_root_cas
from components.kubernetes.k8s import KubeObject, resources
from components.model import names
from components.model.capacity import CapacityPlan, PgBouncerPlan
from components.model.settings import Settings

CONFIG_DIR = "/etc/pgbouncer"
INI_KEY = "pgbouncer.ini"
USERLIST_KEY = "users.txt"
# With `database: azure`: the root CAs PgBouncer verifies the server's certificate with.
ROOT_CAS_KEY = "server-root-cas.pem"
# Any unprivileged uid: PgBouncer refuses to run as root and writes nothing.
PGBOUNCER_UID = 65534
# How long a stopping PgBouncer may take to let its transactions finish.
PGBOUNCER_DRAIN_SECONDS = 30
LABELS = {"app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/part-of": "airflow"}


def pgbouncer_ini(settings: Settings, bouncer: PgBouncerPlan, *, postgres_host: str | None = None,
                  postgres_port: int = names.POSTGRES_PORT, dbname: str = names.POSTGRES_DB,
                  listen_addr: str = "*", listen_port: int = names.PGBOUNCER_PORT,
                  auth_file: str = f"{CONFIG_DIR}/{USERLIST_KEY}", extra: Sequence[str] = (),
                  user: str = names.DATABASE_APP_ROLE, server_tls: bool = False) -> str:
    """pgbouncer.ini: one database alias per pool, both onto the metadata database.

    server_tls: the server is the flexible server (`postgres_host`), reached
    over TLS with its certificate and host name verified. The other keyword
    arguments let the test tooling run the same file on loopback.
    """
    host = postgres_host or names.service_host(names.POSTGRES, settings.namespace)
    # user=: every server connection logs in as its pool's role (the app
    # role; the results role), whichever userlist entry the client
    # authenticated as (PgBouncer doc/config.md,
    # [databases] user: one pool per database then), so the 0.7.0 login kept
    # for the upgrade (userlist) never reaches the server.
    target = f"host={host} port={postgres_port} dbname={dbname}"
    lines = [
        "[databases]",
        f"{names.PGBOUNCER_METADATA_DB} = {target} user={user} pool_size={bouncer.metadata_pool}",
        # The result backend's pool as the results role, Celery's tables alone.
        f"{names.PGBOUNCER_RESULT_BACKEND_DB} = {target} user={names.DATABASE_RESULTS_ROLE} "
        f"pool_size={bouncer.result_backend_pool}",
        "",
        "[pgbouncer]",
        f"listen_addr = {listen_addr}",
        f"listen_port = {listen_port}",
        # Transaction mode: a server connection is lent for one transaction.
        # The migration Job, which holds a session-level advisory lock across
        # transactions, connects to PostgreSQL directly.
        "pool_mode = transaction",
        f"max_client_conn = {bouncer.max_client_conn}",
        "reserve_pool_size = 0",
        "auth_type = scram-sha-256",
        f"auth_file = {auth_file}",
        # SHOW POOLS / SHOW CLIENTS on the admin console, for the components' role.
        f"stats_users = {user}",
        "ignore_startup_parameters = extra_float_digits",
        "server_reset_query =",
        # TCP only: the pod's root filesystem is read-only.
        "unix_socket_dir =",
        "log_connections = 0",
        "log_disconnections = 0",
        *(_server_tls_lines() if server_tls else []),
        *extra,
    ]
    return "\n".join(lines) + "\n"


def _server_tls_lines() -> list[str]:
    """PgBouncer's TLS to the flexible server (PgBouncer doc/config.md,
    server_tls_*): verify-full refuses a server whose certificate does not
    chain to server_tls_ca_file or does not name the `host=` of the database
    line; TLS 1.2 and 1.3 only (`secure`, PgBouncer's default, what Azure
    accepts). The Airflow clients keep talking to PgBouncer inside the
    cluster without TLS (its client side); every connection that leaves the
    cluster is encrypted."""
    return [
        f"server_tls_sslmode = {PGBOUNCER_SERVER_SSLMODE}",
        f"server_tls_ca_file = {CONFIG_DIR}/{ROOT_CAS_KEY}",
        "server_tls_protocols = secure",
    ]


def userlist(password: str, user: str = names.DATABASE_APP_ROLE,
             upgrade_login: tuple[str, str] | None = None, results_password: str | None = None) -> str:
    """auth_file: the app role, with its password in clear (PgBouncer logs in
    to PostgreSQL with SCRAM as that user, pgbouncer_ini's user=) and the
    results role (the result backend's pool).

    upgrade_login: the superuser's (or admin's) name and password, which pods
    of 0.7.0 still carry in their URLs until they roll, a worker only after
    its running tasks, hours later. PgBouncer accepts it from clients but
    serves them as the app role, so their result-backend writes keep working
    through the upgrade without that login's rights."""
    lines = [f'"{user}" "{password}"']
    if results_password is not None:
        lines.append(f'"{names.DATABASE_RESULTS_ROLE}" "{results_password}"')
    if upgrade_login is not None:
        lines.append(f'"{upgrade_login[0]}" "{upgrade_login[1]}"')
    return "\n".join(lines) + "\n"


T = TypeVar("T")


def _once_known(value: pulumi.Input[str], build: Callable[[str], T]) -> T | pulumi.Output[T]:
    """build(value) now for a plain string (the offline render, in-cluster),
    or once the Output resolves (the flexible server's FQDN)."""
    if isinstance(value, str):
        return build(value)
    return pulumi.Output.from_input(value).apply(build)


def pgbouncer_objects(settings: Settings, plan: CapacityPlan,
                      external_database: ExternalDatabase | None = None) -> list[KubeObject]:
    """ConfigMap (pgbouncer.ini), Deployment and Service; the userlist is a
    Secret of AirflowSecrets. Nothing when PgBouncer is off. With an external
    database, the ConfigMap also carries the root CAs of its certificate."""
    bouncer = plan.database.pgbouncer
    if bouncer is None:
        return []
    ns = settings.namespace
    config_items = [{"key": INI_KEY, "path": INI_KEY}]
    if external_database is None:
        ini: pulumi.Input[str] = pgbouncer_ini(settings, bouncer)
        data: dict[str, pulumi.Input[str]] = {INI_KEY: ini}
        config_checksum: pulumi.Input[str] = k8s.checksum(ini)  # type: ignore[arg-type]
    else:
        db = external_database
        ini = _once_known(db.host, lambda host: pgbouncer_ini(settings, bouncer, postgres_host=host,
                                                              server_tls=True))
        roots = server_root_cas()
        data = {INI_KEY: ini, ROOT_CAS_KEY: roots}
        config_checksum = _once_known(ini, lambda text: k8s.checksum(text, roots))
        config_items.append({"key": ROOT_CAS_KEY, "path": ROOT_CAS_KEY})
    probe = {"tcp_socket": {"port": "pgbouncer"}}
    container = {
        "name": "pgbouncer",
        "image": settings.pgbouncer_image,
        "command": ["pgbouncer", f"{CONFIG_DIR}/{INI_KEY}"],
        "ports": [{"name": "pgbouncer", "container_port": names.PGBOUNCER_PORT}],
        "resources": resources(plan.control_plane.pods["pgbouncer"]),
        "readiness_probe": {**probe, "period_seconds": 5},
        "liveness_probe": {**probe, "initial_delay_seconds": 10, "period_seconds": 20},
        "volume_mounts": [{"name": "config", "mount_path": CONFIG_DIR, "read_only": True}],
        # Kubernetes stops a pod with SIGTERM, PgBouncer's immediate shutdown,
        # which would break the transactions in flight. SIGINT first: PgBouncer
        # takes no new queries and exits once its server connections are idle;
        # the Service has already sent new clients to the other pod.
        "lifecycle": {"pre_stop": {"exec_": {"command": [
            "sh", "-c", f"kill -INT 1; sleep {PGBOUNCER_DRAIN_SECONDS}"]}}},
        "security_context": k8s.container_security(),
    }
    return [
        KubeObject("ConfigMap", "config", {
            "metadata": {"name": names.PGBOUNCER, "namespace": ns, "labels": LABELS},
            "data": data,
        }),
        k8s.service("service", names.PGBOUNCER, ns, LABELS, "pgbouncer", names.PGBOUNCER_PORT),
        KubeObject("Deployment", "deployment", {
            "metadata": {"name": names.PGBOUNCER, "namespace": ns, "labels": LABELS,
                         **k8s.skip_annotations(k8s.image_skips(settings.pgbouncer_image))},
            "spec": {
                "replicas": 1,
                "selector": {"match_labels": LABELS},
                # At most one extra pod while rolling: the plan counts its pools twice.
                "strategy": {"rolling_update": {"max_surge": 1, "max_unavailable": 0}},
                "template": {
                    "metadata": {"labels": LABELS, "annotations": {k8s.CHECKSUM_ANNOTATION: config_checksum}},
                    "spec": {
                        "security_context": {"run_as_user": PGBOUNCER_UID, "run_as_group": PGBOUNCER_UID,
                                             "run_as_non_root": True,
                                             "seccomp_profile": k8s.RUNTIME_DEFAULT_SECCOMP},
                        "automount_service_account_token": False,
                        "termination_grace_period_seconds": PGBOUNCER_DRAIN_SECONDS + 10,
                        "containers": [container],
                        "volumes": [{"name": "config", "projected": {"sources": [
                            {"config_map": {"name": names.PGBOUNCER, "items": config_items}},
                            {"secret": {"name": names.PGBOUNCER_SECRET,
                                        "items": [{"key": USERLIST_KEY, "path": USERLIST_KEY}]}},
                        ]}}],
                    },
                },
            },
        }),
        # One pod: a drain takes it and the Service waits for the new one
        # (max_surge starts it before the old one goes on a rollout, not on
        # an eviction).
        k8s.disruption_budget("disruption-budget", names.PGBOUNCER, ns, LABELS),
    ]


class PgBouncer(k8s.ObjectsComponent):
    """PgBouncer's objects, declared after `after` (PostgreSQL and the Secrets)."""

    def __init__(self, name: str, settings: Settings, plan: CapacityPlan, after: Sequence[pulumi.Resource] = (),
                 external_database: ExternalDatabase | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:pgbouncer:PgBouncer", name,
                         pgbouncer_objects(settings, plan, external_database), after=after, opts=opts)
        self.deployment: kubernetes.apps.v1.Deployment | None = self.declared.get(  # type: ignore[assignment]
            ("Deployment", "deployment"))
