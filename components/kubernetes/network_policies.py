"""NetworkPolicies: the namespace denies every connection, then allows exactly
the flows the deployment needs.

Kubernetes semantics (kubernetes.io/docs/concepts/services-networking/network-policies):
a pod selected by any policy with policyType Ingress (Egress) is isolated for
ingress (egress), and then only what some policy selecting it allows gets
through; policies add up, none subtracts. A connection between two pods needs
both the source's egress and the destination's ingress allowed; replies of an
allowed connection always pass. Traffic from the node a pod runs on (kubelet
probes) is always allowed, so httpGet and tcpSocket probes need no rule, and
a pod cannot block access to itself (RabbitMQ's CLI in its probes reaches
its own node by the pod's address).

The flows are data (`flows`): each names its source, destination, port and why.
`network_policy_objects` turns them into one policy per component of the
namespace, holding the ingress it accepts and the egress it opens, plus the
namespace-wide default deny. tests/test_network_policies.py derives the flows
independently from the declared objects and checks the two agree.

`taskEgress` (components/model/egress.py) adds the destinations of the
stack's own systems, from the pods that run DAG code (TASK_EGRESS_COMPONENTS);
empty, the policies are exactly the deployment's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pulumi

from components.kubernetes import backups, database_roles, k8s, metrics, pgbouncer, postgres, rabbitmq
from components.kubernetes.airflow_pod import component_labels
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.k8s import KubeObject
from components.kubernetes.key_vault import VAULT_COMPONENTS, key_vault_on
from components.kubernetes.task_logs import LOG_COMPONENTS, TaskLogStore, task_logs_on
from components.kubernetes.ui_gateway import gateway_pod_labels
from components.model import component_secrets, dag_bundles, names
from components.model.egress import EgressRule
from components.model.settings import Settings

DEFAULT_DENY = "airflow-default-deny"
# The policy of every pod of the deployment (DNS).
ALL_PODS = "airflow-all-pods"
# Task logs go to Azure Blob Storage over HTTPS (and the workload identity's
# token exchange to Entra ID, also HTTPS).
HTTPS_PORT = 443
DNS_PORT = 53
# Address ranges that are never Azure Storage's public endpoints: the cluster's
# pods and Services (AKS overlay defaults 10.244.0.0/16 and 10.0.0.0/16), the
# node VNet and any peered private network (RFC 1918), and link-local (the
# instance metadata service).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
# Where the KEDA operator runs: AKS's managed add-on installs it in kube-system
# (learn.microsoft.com/azure/aks/keda-about); KEDA's Helm chart installs it in
# `keda` by default, as on a local cluster. Both label its pods app=keda-operator.
KEDA_NAMESPACE = {"aks": "kube-system", "local": "keda"}
KEDA_OPERATOR_LABELS = {"app": "keda-operator"}
# CoreDNS on AKS, kind, minikube and Docker Desktop keeps kube-dns's label.
DNS_LABELS = {"k8s-app": "kube-dns"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Airflow components that run task code over the Execution API by HTTP: the
# Celery workers' task supervisors (providers/celery celery_executor_utils
# reads [core] execution_api_server_url). The triggerer and the dag-processor
# use the Execution API in process (InProcessExecutionAPI), so they need no
# connection to the api-server.
EXECUTION_API_CLIENTS = ("worker",)
# The api-server fetches a running task's log from the worker (deferred: the
# triggerer) that writes it.
LOG_SERVERS = {"worker": names.WORKER_LOG_PORT, "triggerer": names.TRIGGERER_LOG_PORT}
# The pods that run DAG code that reaches the tasks' own systems (taskEgress):
# the Celery workers run the tasks; the triggerer runs the triggers of
# deferred tasks, which poll the same systems from there (a deferrable
# operator's trigger connects to the database, broker or API its task
# waits on, e.g. the providers' SQL, Service Bus and HTTP triggers), so a
# task that defers would otherwise lose its destination the moment it defers.
# Not the scheduler, api-server or dag-processor: they do not run task code
# (a DAG file's top-level code that connects somewhere is not supported).
TASK_EGRESS_COMPONENTS = ("worker", "triggerer")


@dataclass(frozen=True)
class Peer:
    """One end of a flow.

    labels: the peer is the pods of the deployment's namespace with these
    labels (empty: every pod there); None: it is outside the namespace.
    selector: the NetworkPolicyPeer (snake_case) that matches it; None means
    any address at all (a rule without from/to).
    """

    name: str
    labels: dict[str, str] | None = field(default=None, hash=False, compare=False)
    selector: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def in_namespace(self) -> bool:
        return self.labels is not None


def pods(name: str, labels: dict[str, str]) -> Peer:
    return Peer(name, labels, {"pod_selector": {"match_labels": labels}})


def outside(name: str, namespace: str | None, labels: dict[str, str] | None = None) -> Peer:
    """Pods of another namespace (None: any namespace), optionally only those labelled `labels`."""
    selector: dict[str, Any] = {"namespace_selector": (
        {"match_labels": {NAMESPACE_NAME_LABEL: namespace}} if namespace else {})}
    if labels:
        selector["pod_selector"] = {"match_labels": labels}
    return Peer(name, None, selector)


# The keys whose URLs lead to the metadata database, through PgBouncer when it is on.
POOLED_DATABASE_KEYS = {
    component_secrets.SQL_ALCHEMY_CONN: "metadata database",
    component_secrets.SQL_ALCHEMY_CONN_ASYNC: "metadata database",
    component_secrets.RESULT_BACKEND: "Celery result backend",
}
ANYWHERE = Peer("anywhere")
# Every pod of the deployment (a pod someone else starts in the namespace gets nothing).
EVERY_POD = pods(ALL_PODS, {"app.kubernetes.io/part-of": "airflow"})
KUBE_DNS = outside("kube-dns", "kube-system", DNS_LABELS)
# Prometheus scrapes from whichever namespace it runs in (Azure Monitor's
# managed Prometheus: kube-system).
PROMETHEUS = outside("prometheus (any namespace)", None)
# ipBlock, not a name: NetworkPolicy cannot name a DNS host, and the storage
# account's addresses are Azure's to change. Port 443 outside every private
# range is the narrowest rule that still reaches it.
PUBLIC_ADDRESSES = {"ip_block": {"cidr": "0.0.0.0/0", "except_": list(PRIVATE_RANGES)}}
AZURE_PUBLIC = Peer("Azure Storage and Entra ID (public addresses)", None, PUBLIC_ADDRESSES)
# Git bundles' repositories (dagBundles): an https URL's host, which a
# NetworkPolicy cannot name either; public addresses on the URL's port.
GIT_PUBLIC = Peer("Git repositories (public addresses)", None, PUBLIC_ADDRESSES)


def task_egress_peer(rule: EgressRule) -> Peer:
    """A taskEgress destination: its CIDR, or for a named service without one
    the public addresses (NetworkPolicy cannot name a service tag or a host)."""
    if rule.cidr is None:
        return Peer("public addresses (taskEgress)", None, PUBLIC_ADDRESSES)
    return Peer(f"{rule.cidr} (taskEgress)", None, {"ip_block": {"cidr": rule.cidr}})


def airflow(component: str) -> Peer:
    return pods(f"airflow-{component}", component_labels(component))


POSTGRES = pods(names.POSTGRES, postgres.LABELS)


def database_server(cidr: str) -> Peer:
    """The flexible server: an ipBlock of its delegated subnet (NetworkPolicy
    cannot name a DNS host; the server's private address is in that subnet
    and may move within it on a failover or a scale)."""
    return Peer(f"Azure Database for PostgreSQL ({cidr})", None, {"ip_block": {"cidr": cidr}})

PGBOUNCER = pods(names.PGBOUNCER, pgbouncer.LABELS)
RABBITMQ = pods(names.RABBITMQ, rabbitmq.LABELS)
STATSD = pods(names.STATSD, metrics.LABELS)
DATABASE_BACKUP = pods(names.DATABASE_BACKUP, backups.LABELS)
DATABASE_ROLES = pods(names.DATABASE_ROLES, database_roles.LABELS)


@dataclass(frozen=True)
class Flow:
    src: Peer
    dst: Peer
    port: int
    protocol: str = "TCP"
    why: str = field(default="", compare=False)
    # The last port of a range (NetworkPolicyPort.endPort); None: `port` alone.
    end_port: int | None = None


def airflow_components(settings: Settings) -> list[str]:
    """The Airflow pods the deployment runs (component label values)."""
    return component_secrets.components(settings.flower)


def emulator_port(endpoint: str) -> int:
    parts = urlsplit(endpoint)
    return parts.port or (443 if parts.scheme == "https" else 80)


def flows(settings: Settings, task_log_store: TaskLogStore | None = None,
          external_database: ExternalDatabase | None = None) -> list[Flow]:
    """Every connection the deployment makes, for its settings.

    With an external database the PostgreSQL server is its subnet instead of
    the in-cluster pods: only the pods that connect to the server directly
    (PgBouncer and the migration Job; every Airflow component with PgBouncer
    off) may leave the namespace on 5432, and only to that subnet."""
    server = POSTGRES if external_database is None else database_server(external_database.cidr)
    database = PGBOUNCER if settings.pgbouncer else server
    database_port = names.PGBOUNCER_PORT if settings.pgbouncer else names.POSTGRES_PORT
    api_server = airflow("api-server")
    found = [
        Flow(EVERY_POD, KUBE_DNS, DNS_PORT, "UDP", "DNS"),
        Flow(EVERY_POD, KUBE_DNS, DNS_PORT, "TCP", "DNS (large answers)"),
        Flow(ANYWHERE, api_server, names.API_SERVER_PORT, why="UI and REST API clients"),
    ]
    for component in airflow_components(settings):
        src = airflow(component)
        # The URLs of the component's own Secret (component_secrets.py), and
        # airflow.cfg's StatsD host, which every Airflow pod mounts.
        keys = set(component_secrets.COMPONENT_SECRETS[component])
        if keys & POOLED_DATABASE_KEYS.keys():
            found.append(Flow(src, database, database_port, why=" and ".join(dict.fromkeys(
                what for key, what in POOLED_DATABASE_KEYS.items() if key in keys))))
        if component_secrets.DIRECT_CONN in keys:
            # The migration Job holds a session-level advisory lock, so it
            # connects straight to PostgreSQL (airflow_migration.py).
            found.append(Flow(src, server, names.POSTGRES_PORT, why="airflow db migrate, direct"))
        if component_secrets.BROKER_URL in keys:
            found.append(Flow(src, RABBITMQ, names.RABBITMQ_PORT, why="Celery broker"))
        if settings.metrics:
            found.append(Flow(src, STATSD, names.STATSD_PORT, "UDP", "StatsD metrics"))
        if component in EXECUTION_API_CLIENTS:
            found.append(Flow(src, api_server, names.API_SERVER_PORT, why="Execution API (task supervisors)"))
        if component in LOG_COMPONENTS and task_logs_on(settings, task_log_store):
            found.append(_task_log_flow(settings, src, "task logs"))
        if component in VAULT_COMPONENTS and key_vault_on(settings, task_log_store):
            # The vault's public endpoint and Entra ID's token exchange, both HTTPS.
            found.append(Flow(src, AZURE_PUBLIC, HTTPS_PORT, why="connections and variables in Azure Key Vault"))
    if settings.pgbouncer:
        found.append(Flow(PGBOUNCER, server, names.POSTGRES_PORT, why="PgBouncer's server connections"))
    # The roles Job, as the superuser or admin: straight to the server.
    found.append(Flow(DATABASE_ROLES, server, names.POSTGRES_PORT, why="the database's roles (psql), direct"))
    for component, port in LOG_SERVERS.items():
        found.append(Flow(api_server, airflow(component), port, why="logs of running and deferred tasks"))
    if settings.ui.gateway:
        # The gateway's data plane (Istio's pods of the Gateway, in its own
        # namespace) forwards the HTTPRoute's requests to the api-server's pods.
        gateway = outside(f"{names.UI_GATEWAY} gateway", names.ui_gateway_namespace(settings.namespace),
                          gateway_pod_labels())
        found.append(Flow(gateway, api_server, names.API_SERVER_PORT, why="the UI's gateway (HTTPRoute)"))
    if settings.ui.auth == "entra":
        # The token request and the id token's signing keys (webserver_config.py).
        found.append(Flow(api_server, AZURE_PUBLIC, HTTPS_PORT, why="Entra ID sign-in (tokens and signing keys)"))
    # Flower: no ingress at all, only `kubectl port-forward`. The runtime
    # serves a port-forward by entering the pod's network namespace and
    # dialling localhost:<port> there (containerd
    # pkg/cri/server/sandbox_portforward_linux.go, criService.portForward),
    # and a policy cannot block a pod's loopback or its own node
    # (kubernetes.io/docs/concepts/services-networking/network-policies,
    # "What you can't do with network policies").
    if settings.worker_scaling == "keda" and external_database is None:
        # To the flexible server instead, KEDA's connection runs from its own
        # namespace to the subnet: no pod of this namespace takes part, so no
        # policy here can allow or refuse it.
        keda = outside("KEDA operator", KEDA_NAMESPACE[settings.target], KEDA_OPERATOR_LABELS)
        found.append(Flow(keda, POSTGRES, names.POSTGRES_PORT, why="KEDA's PostgreSQL trigger, direct"))
    if settings.metrics:
        found.append(Flow(PROMETHEUS, STATSD, names.STATSD_METRICS_PORT, why="Prometheus scrape"))
    found += _dag_bundle_flows(settings, task_log_store)
    if backups.backups_on(settings, task_log_store):
        # pg_dump straight to the server, then the dump to blob storage; the
        # pod carries no Airflow URL, so nothing else.
        found.append(Flow(DATABASE_BACKUP, POSTGRES, names.POSTGRES_PORT, why="pg_dump, direct"))
        found.append(_task_log_flow(settings, DATABASE_BACKUP, "database dumps"))
    found += task_egress_flows(settings)
    return found


def task_egress_flows(settings: Settings) -> list[Flow]:
    """Each taskEgress entry's ports, from the workers and the triggerer."""
    found = []
    for rule in settings.task_egress:
        dst = task_egress_peer(rule)
        for component in TASK_EGRESS_COMPONENTS:
            for ports in rule.ports:
                found.append(Flow(airflow(component), dst, ports.port, rule.protocol,
                                  f"{rule.label}: {rule.what}", ports.end_port))
    return found


def _dag_bundle_flows(settings: Settings, task_log_store: TaskLogStore | None) -> list[Flow]:
    """The pods that fetch DAG bundles (dag_bundles.BUNDLE_FETCHERS) to the
    git repositories, and to the storage account (the emulator) for blob
    bundles where task logs do not already take them there."""
    found = []
    ports = sorted({urlsplit(b.url).port or HTTPS_PORT for b in dag_bundles.git_bundles(settings) if b.url})
    for component in dag_bundles.BUNDLE_FETCHERS:
        for port in ports:
            found.append(Flow(airflow(component), GIT_PUBLIC, port, why="git DAG bundles (HTTPS)"))
        if (dag_bundles.blob_bundles(settings) and component not in LOG_COMPONENTS
                and task_logs_on(settings, task_log_store)):
            found.append(_task_log_flow(settings, airflow(component), "blob DAG bundles"))
    return found


def _task_log_flow(settings: Settings, src: Peer, what: str) -> Flow:
    """To the task-log storage account (task logs, database dumps)."""
    if settings.target == "aks":
        return Flow(src, AZURE_PUBLIC, HTTPS_PORT, why=f"{what} in Azure Blob Storage (HTTPS)")
    assert settings.task_log_emulator_endpoint is not None
    endpoint = settings.task_log_emulator_endpoint
    return Flow(src, emulator_peer(endpoint, settings.namespace), emulator_port(endpoint),
                why=f"{what} in the storage emulator")


def emulator_peer(endpoint: str, namespace: str) -> Peer:
    """The pods of the emulator's namespace when its host is a Service name of
    another namespace (`azurite.azurite`, `azurite.azurite.svc.cluster.local`);
    otherwise any address, as the emulator runs wherever the user put it."""
    host = urlsplit(endpoint).hostname or ""
    parts = host.split(".")
    if len(parts) == 2 or host.endswith(".svc.cluster.local") or (len(parts) == 3 and parts[2] == "svc"):
        if parts[1] != namespace:
            return outside(f"storage emulator ({host})", parts[1])
    return ANYWHERE


def _rules(flows_: Sequence[Flow], direction: str) -> list[dict[str, Any]]:
    """One rule per port (or port range): from (to) every peer the flows on it
    name, a selector named twice once; none when one of them is ANYWHERE (a
    rule without peers matches every address)."""
    key = "from_" if direction == "ingress" else "to"
    by_port: dict[tuple[int, int, str], list[Peer]] = {}
    for f in flows_:
        last = f.port if f.end_port is None else f.end_port
        by_port.setdefault((f.port, last, f.protocol), []).append(f.src if direction == "ingress" else f.dst)
    rules = []
    for (port, last, protocol), peers in sorted(by_port.items()):
        port_spec: dict[str, Any] = {"port": port, "protocol": protocol}
        if last != port:
            port_spec["end_port"] = last
        rule: dict[str, Any] = {"ports": [port_spec]}
        if all(p.selector is not None for p in peers):
            unique = {p.name: p.selector for p in peers}
            selectors: list[dict[str, Any]] = []
            for n in sorted(unique):
                # A taskEgress entry of public addresses on 443 is the task-log rule's peer again.
                if unique[n] not in selectors:
                    selectors.append(unique[n])
            rule[key] = selectors
        rules.append(rule)
    return rules


def network_policy_objects(settings: Settings, task_log_store: TaskLogStore | None = None,
                           external_database: ExternalDatabase | None = None) -> list[KubeObject]:
    """A policy per pod group of the namespace with its allowed ingress and
    egress, then the default deny for every pod of the namespace."""
    ns = settings.namespace
    all_flows = flows(settings, task_log_store, external_database)
    groups = {p.name: p for f in all_flows for p in (f.src, f.dst) if p.in_namespace}
    objects = []
    for name in sorted(groups):
        peer = groups[name]
        ingress = _rules([f for f in all_flows if f.dst == peer], "ingress")
        egress = _rules([f for f in all_flows if f.src == peer], "egress")
        spec: dict[str, Any] = {"pod_selector": peer.selector["pod_selector"] if peer.selector else {},
                                "policy_types": [t for t, rules in (("Ingress", ingress), ("Egress", egress))
                                                 if rules]}
        if ingress:
            spec["ingress"] = ingress
        if egress:
            spec["egress"] = egress
        objects.append(KubeObject("NetworkPolicy", name.removeprefix("airflow-"), {
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "airflow"}},
            "spec": spec,
        }))
    objects.append(KubeObject("NetworkPolicy", "default-deny", {
        "metadata": {"name": DEFAULT_DENY, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "airflow"}},
        # Every pod of the namespace, both directions, no rule: isolated.
        "spec": {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]},
    }))
    return objects


class NetworkPolicies(pulumi.ComponentResource):
    """The allowing policies first, the default deny after them: on the update
    that introduces them no pod is cut off while the allowances are created."""

    def __init__(self, name: str, settings: Settings, task_log_store: TaskLogStore | None = None,
                 after: Sequence[pulumi.Resource] = (), external_database: ExternalDatabase | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:network_policies:NetworkPolicies", name, None, opts)
        objects = network_policy_objects(settings, task_log_store, external_database)
        allow = [k8s.declare(o, name, pulumi.ResourceOptions(parent=self, depends_on=list(after)))
                 for o in objects if o.name != DEFAULT_DENY]
        [deny] = [o for o in objects if o.name == DEFAULT_DENY]
        k8s.declare(deny, name, pulumi.ResourceOptions(parent=self, depends_on=[*after, *allow]))
        self.register_outputs({})
