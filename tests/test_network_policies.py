"""NetworkPolicies against the flows the declared objects need, evaluated as Kubernetes would.

The needed flows are derived here from the objects the program declares (under
Pulumi mocks), not from components/kubernetes/network_policies.py: the URLs in
each pod's environment (Secret and ConfigMap values included), the airflow.cfg
it mounts, pgbouncer.ini, the KEDA trigger's host, Services and their target
ports, and the scrape annotations. The policies are then evaluated with
Kubernetes' semantics (kubernetes.io/docs/concepts/services-networking/network-policies):
a connection is allowed iff the source's egress allows it (or no egress policy
selects the source) and the destination's ingress allows it (or no ingress
policy selects it); within a policy a rule matches when one of its peers and
one of its ports match, and a rule without peers (ports) matches any. Every
sample connection, between the namespace's pods and sample endpoints outside
it, on every port any object names, must be allowed exactly when it is needed.
"""

from __future__ import annotations

import configparser
import ipaddress
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pytest

from components.kubernetes import database_roles
from components.kubernetes.keda import PAUSED_ANNOTATION
from components.kubernetes.network_policies import flows
from components.kubernetes.task_logs import LOG_COMPONENTS, TaskLogStore
from components.model import names, vnet
from components.model.egress import AZURE_SERVICES
from components.model.settings import ConfigError, Settings
from components.model.ui_auth import WEBSERVER_CONFIG_KEY
from tests.conftest import config_for
from tests.harness import ProgramRun, shared_run, stack_file_config
from tests.readme_tables import table_after
from tests.schemas import validate_manifest
from tests.test_ui_auth import ENTRA_UI
from tests.test_ui_gateway import UI_SECRET

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
SERVICE_SUFFIX = ".svc.cluster.local"
DEFAULT_PORTS = {"https": 443, "http": 80, "amqp": 5672}
# The only Airflow processes that call the Execution API over HTTP are the
# Celery workers' task supervisors (providers/celery celery_executor_utils
# reads [core] execution_api_server_url); the triggerer and dag-processor run
# it in process (InProcessExecutionAPI in triggerer_job_runner.py and
# dag_processing/manager.py). The api-server fetches task logs for the UI.
EXECUTION_API_CLIENTS = {"worker"}
LOG_READERS = {"api-server"}
# Services meant for clients outside the namespace: the UI and REST API
# (portForwardCommand). Not Flower's: it is reached by `kubectl
# port-forward` only, which enters the pod's network namespace and is no
# flow a policy sees (network_policies.py).
CLIENT_SERVICES = {names.API_SERVER}
# The components that fetch DAG bundles: the dag-processor refreshes and
# parses them (airflow/dag_processing/manager.py), each task's process on a
# worker initializes its run's version (airflow/sdk/execution_time/
# task_runner.py, parse); the triggerer imports triggers by classpath.
BUNDLE_FETCHERS = {"dag-processor", "worker"}
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
# Istio's gateway deployment controller labels the pods it runs for a Gateway
# with the Gateway's name, in the Gateway's namespace (istio/istio
# pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go, GatewayNameLabel;
# manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml).
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
# Entra ID's sign-in endpoints: public addresses that are Microsoft's to change.
ENTRA_HOST = "login.microsoftonline.com"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or an address outside the cluster (ip)."""

    name: str
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None
    containers: tuple[Any, ...] = field(default=(), compare=False, hash=False)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def pod(name: str, namespace: str, labels: dict[str, str], containers: tuple[Any, ...] = ()) -> Endpoint:
    return Endpoint(name, namespace, tuple(sorted(labels.items())), containers=containers)


# Endpoints outside the deployment's namespace.
KUBE_DNS = pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"})
# AKS's KEDA add-on runs its operator in kube-system, labelled app=keda-operator.
KEDA_OPERATOR = pod("keda-operator", "kube-system", {"app": "keda-operator"})
OTHER_SYSTEM_POD = pod("another kube-system pod", "kube-system", {"app": "metrics-server"})
PROMETHEUS = pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
INGRESS = pod("ingress controller", "ingress", {"app": "ingress-nginx"})
# The Azure Storage emulator a local stack may name (taskLogEmulatorEndpoint).
AZURITE = pod("azurite", "azurite", {"app": "azurite"})
STORAGE_ADDRESS = Endpoint("Azure Storage public address", ip="20.60.40.4")
PRIVATE_ADDRESS = Endpoint("VNet address outside the cluster", ip="10.224.0.9")
# `database: azure`: the flexible server's private address in its delegated
# subnet, which the VNet's private DNS zone resolves its FQDN to.
SERVER_ADDRESS = Endpoint("flexible server (private address)",
                          ip=str(ipaddress.ip_network(vnet.DATABASE_SUBNET_CIDR)[4]))
SERVER_DOMAIN = ".postgres.database.azure.com"
OUTSIDE = (KUBE_DNS, KEDA_OPERATOR, OTHER_SYSTEM_POD, PROMETHEUS, INGRESS, AZURITE, STORAGE_ADDRESS,
           PRIVATE_ADDRESS, SERVER_ADDRESS)
EMULATOR_ENDPOINT = "http://azurite.azurite:10000/devstoreaccount1"
# What docs/security.md calls the public addresses: everything outside the private
# ranges (RFC 1918 and link-local). Azure Storage, Entra ID and an Azure
# service named in taskEgress without a cidr may be at any of them.
PRIVATE_RANGES = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                     "169.254.0.0/16")]
# taskEgress: the pods that run DAG code, the tasks (workers) and the
# triggers of deferred tasks (triggerer), which poll the same systems.
TASK_CODE_COMPONENTS = {"worker", "triggerer"}


def is_public(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.version == 4 and not any(address in n for n in PRIVATE_RANGES)
# The git DAG bundles of the variants below (a port of its own, so its rule shows).
GIT_URL = "https://git.example.com:8443/data-team/dags.git"
GIT_HOSTS = {urlsplit(GIT_URL).hostname}

Flow = tuple[str, str, int, str]  # source name, destination name, port, protocol


# --------------------------------------------------------------------------
# Kubernetes NetworkPolicy semantics
# --------------------------------------------------------------------------

def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels are evaluated: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def peer_matches(peer: dict[str, Any], policy_ns: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        # Pod addresses are not sample IPs here: ipBlock matches only addresses
        # outside the cluster (the docs leave in-cluster ipBlock to the plugin).
        if ep.ip is None:
            return False
        block, ip = peer["ipBlock"], ipaddress.ip_address(ep.ip)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(c) for c in block.get("except", []))
    if ep.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NAMESPACE_NAME_LABEL: ep.namespace}):
            return False
    elif ep.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector", {}), ep.label_map)


def port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    if not rule.get("ports"):
        return True
    for p in rule["ports"]:
        assert isinstance(p.get("port", 0), int), f"named ports are not evaluated: {p}"
        lo = p.get("port")
        if p.get("protocol", "TCP") == protocol and (lo is None or lo <= port <= p.get("endPort", lo)):
            return True
    return False


def direction_rules(policies: list[dict[str, Any]], ep: Endpoint, other: Endpoint,
                    kind: str) -> list[dict[str, Any]] | None:
    """The rules of the policies selecting `ep` that let it send (Egress) to / receive (Ingress)
    from `other` on some port; None when no policy selects `ep` for `kind`, which allows all."""
    key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    labels = ep.label_map
    selecting = [p for p in policies if p["metadata"]["namespace"] == ep.namespace
                 and kind in p["spec"].get("policyTypes", ["Ingress"])
                 and selects(p["spec"]["podSelector"], labels)]
    if not selecting:
        return None
    return [rule for p in selecting for rule in p["spec"].get(key, [])
            if not rule.get(peers_key)
            or any(peer_matches(peer, p["metadata"]["namespace"], other) for peer in rule[peers_key])]


def permits(rules: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    return rules is None or any(port_matches(rule, port, protocol) for rule in rules)


def allowed_by(policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint) -> Callable[[int, str], bool]:
    """Whether `src` may reach `dst`, per port and protocol. Pods outside the namespace are
    governed by no policy here; addresses by none at all."""
    egress = None if src.ip is not None else direction_rules(policies, src, dst, "Egress")
    ingress = None if dst.ip is not None else direction_rules(policies, dst, src, "Ingress")
    return lambda port, protocol: permits(egress, port, protocol) and permits(ingress, port, protocol)


# --------------------------------------------------------------------------
# The flows the declared objects need
# --------------------------------------------------------------------------

@dataclass
class Deployment:
    namespace: str
    manifests: list[dict[str, Any]]
    pods: list[Endpoint]
    # The stack's taskEgress entries as written, and sample addresses in and
    # just outside each entry's range.
    task_egress: list[dict[str, Any]] = field(default_factory=list)
    egress_samples: list[Endpoint] = field(default_factory=list)
    # The data-plane pods of the Gateways the HTTPRoutes attach to (in their own namespace).
    gateway_pods: list[Endpoint] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        [found] = [m for m in self.of_kind(kind) if m["metadata"].get("name") == name]
        return found

    def policies(self) -> list[dict[str, Any]]:
        return self.of_kind("NetworkPolicy")

    def endpoints(self) -> list[Endpoint]:
        stray = pod("stray pod in the namespace", self.namespace, {"app": "debug"})
        return [*self.pods, stray, *OUTSIDE, *self.egress_samples, *self.gateway_pods]


def pod_template(m: dict[str, Any]) -> dict[str, Any]:
    """A workload's pod template (a CronJob's is in its Job template)."""
    return (m["spec"]["jobTemplate"]["spec"] if m["kind"] == "CronJob" else m["spec"])["template"]


def deployment_of(run: ProgramRun, task_egress: list[dict[str, Any]] | None = None) -> Deployment:
    manifests = run.manifests()
    # The deployment's namespace, where its workloads are (the UI gateway's is another).
    [ns] = {m["metadata"]["namespace"] for m in manifests if m["kind"] in WORKLOAD_KINDS}
    pods = []
    for m in manifests:
        if m["kind"] in WORKLOAD_KINDS:
            template = pod_template(m)
            labels = template["metadata"]["labels"]
            name = m["metadata"].get("name") or f"airflow-{labels['app.kubernetes.io/component']}"
            spec = template["spec"]
            pods.append(pod(name, ns, labels, (spec,)))
    entries = task_egress or []
    return Deployment(ns, manifests, pods, entries, egress_samples(entries), gateway_pods(manifests))


def route_gateways(route: dict[str, Any]) -> list[Endpoint]:
    """The data-plane pods of the Gateways an HTTPRoute names as parents."""
    found = []
    for parent in route["spec"]["parentRefs"]:
        assert parent.get("kind", "Gateway") == "Gateway", parent
        ns = parent.get("namespace", route["metadata"]["namespace"])
        found.append(pod(f"gateway {ns}/{parent['name']}", ns, {GATEWAY_NAME_LABEL: parent["name"]}))
    return found


def gateway_pods(manifests: list[dict[str, Any]]) -> list[Endpoint]:
    found = {ep.name: ep for m in manifests if m["kind"] == "HTTPRoute" for ep in route_gateways(m)}
    return list(found.values())


def egress_samples(entries: list[dict[str, Any]]) -> list[Endpoint]:
    """For each entry with a cidr: an address inside it and the addresses
    just below and above it (a named service without one is public: the
    storage and VNet samples already stand in and out of that)."""
    found: dict[str, Endpoint] = {}
    for i, entry in enumerate(entries):
        if "cidr" not in entry:
            continue
        net = ipaddress.ip_network(entry["cidr"])
        inside = net[1] if net.num_addresses > 1 else net.network_address
        for ip, where in ((inside, "in"), (net.network_address - 1, "below"), (net.broadcast_address + 1, "above")):
            found.setdefault(str(ip), Endpoint(f"{ip} ({where} taskEgress[{i}])", ip=str(ip)))
    return list(found.values())


def component(ep: Endpoint) -> str | None:
    labels = ep.label_map
    return labels.get("app.kubernetes.io/component") if labels.get("app.kubernetes.io/name") == "airflow" else None


def env_values(dep: Deployment, spec: dict[str, Any]) -> list[str]:
    """Every value a pod's containers receive as environment, Secrets and ConfigMaps resolved."""
    values = []
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        for e in c.get("env", []):
            if "value" in e:
                values.append(e["value"])
                continue
            ref = e["valueFrom"].get("secretKeyRef") or e["valueFrom"]["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in e["valueFrom"] else "ConfigMap"
            obj = dep.named(kind, ref["name"])
            values.append((obj.get("stringData") or obj.get("data"))[ref["key"]])
        for src in c.get("envFrom", []):
            values += list(dep.named("ConfigMap", src["configMapRef"]["name"])["data"].values())
    return values


def mounted_config_maps(spec: dict[str, Any]) -> list[str]:
    found = []
    for v in spec.get("volumes", []):
        if "configMap" in v:
            found.append(v["configMap"]["name"])
        for source in v.get("projected", {}).get("sources", []):
            if "configMap" in source:
                found.append(source["configMap"]["name"])
    return found


def mounted_keys(spec: dict[str, Any]) -> set[str]:
    """The ConfigMap keys a pod's containers mount one by one (subPath)."""
    return {m["subPath"] for c in spec["containers"] for m in c.get("volumeMounts", []) if "subPath" in m}


def urls_in(text: str) -> list[tuple[str, int]]:
    """(host, port) of every URL in a value, JSON connections and connection strings included."""
    found = []
    for url in re.findall(r"[a-z][a-z0-9+]*://[^\s\"';]+", text):
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[-1]
        port = parts.port or DEFAULT_PORTS.get(scheme) or {"postgresql": names.POSTGRES_PORT}[scheme]
        found.append((parts.hostname, port))
    return found


def targets(dep: Deployment, host: str, port: int, protocol: str = "TCP") -> list[tuple[Endpoint, int, str]]:
    """The pods (and their port) a connection to host:port reaches: through the
    Service of that DNS name to its target port; any other host is outside."""
    if host == urlsplit(EMULATOR_ENDPOINT).hostname:
        return [(AZURITE, port, protocol)]
    if host.endswith(SERVER_DOMAIN):
        return [(SERVER_ADDRESS, port, protocol)]
    if host in GIT_HOSTS or not host.endswith(SERVICE_SUFFIX):
        assert host in GIT_HOSTS or host == ENTRA_HOST or \
            host.endswith((".blob.core.windows.net", ".vault.azure.net")), \
            f"no sample endpoint for {host}"
        # A git host's, Azure Storage's and Key Vault's addresses are theirs to
        # change: any public address may be one.
        return [(ep, port, protocol) for ep in [*OUTSIDE, *dep.egress_samples] if ep.ip and is_public(ep.ip)]
    service_name, ns = host.removesuffix(SERVICE_SUFFIX).split(".")
    service = dep.named("Service", service_name)
    assert service["metadata"]["namespace"] == ns
    [sport] = [p for p in service["spec"]["ports"] if p["port"] == port]
    reached = []
    for ep in dep.pods:
        if selects({"matchLabels": service["spec"]["selector"]}, ep.label_map):
            [spec] = ep.containers
            ports = {cp["name"]: cp["containerPort"] for c in spec["containers"] for cp in c.get("ports", [])}
            target = sport.get("targetPort", port)
            reached.append((ep, ports[target] if isinstance(target, str) else target, sport.get("protocol", "TCP")))
    assert reached, f"Service {service_name} selects no pod"
    return reached


def uses_task_logs(ep: Endpoint, host: str, blob_readers: set[str] | None = None) -> bool:
    """The task-log connection is in every Airflow container. On AKS only the
    pods with the workload identity can authenticate to the storage account;
    the emulator's key works anywhere, and the components that write or read
    task logs use it."""
    if host.endswith(".blob.core.windows.net"):
        return ep.label_map.get(WORKLOAD_IDENTITY_LABEL) == "true"
    if host == urlsplit(EMULATOR_ENDPOINT).hostname:
        # The database backup pod holds the emulator's connection only in its
        # uploader's environment, which is what it runs.
        # Blob DAG bundles read the emulator through the same connection.
        return component(ep) in {*LOG_COMPONENTS, *(blob_readers or ())} or component(ep) == "database-backup"
    return True


def bundles_in(dep: Deployment) -> list[dict[str, Any]]:
    """The DAG bundles airflow.cfg lists ([dag_processor] dag_bundle_config_list)."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(dep.named("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"])
    return json.loads(cfg.get("dag_processor", "dag_bundle_config_list", fallback="[]"))


def libpq_targets(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """Servers a container reaches through libpq's environment (PGHOST, PGPORT;
    PostgreSQL docs, "Environment Variables"), as pg_dump does."""
    found = []
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if env.get("PGHOST"):
            found.append((env["PGHOST"], int(env.get("PGPORT") or names.POSTGRES_PORT)))
    return found


def needed_flows(dep: Deployment) -> set[Flow]:
    needed: set[Flow] = set()

    def need(src: Endpoint, host: str, port: int, protocol: str = "TCP") -> None:
        # A trailing dot makes a DNS name absolute; it names the same host.
        for dst, dport, proto in targets(dep, host.removesuffix("."), port, protocol):
            # Between two endpoints outside the namespace (KEDA's operator and
            # the flexible server) no policy of the namespace takes part.
            if src.namespace == dep.namespace or dst.namespace == dep.namespace:
                needed.add((src.name, dst.name, dport, proto))

    bundles = bundles_in(dep)
    blob_readers = BUNDLE_FETCHERS if any("container_name" in b["kwargs"] for b in bundles) else set()
    for ep in dep.pods:
        [spec] = ep.containers
        if component(ep) in BUNDLE_FETCHERS:
            for b in bundles:
                if "repo_url" in b["kwargs"]:
                    for host, port in urls_in(b["kwargs"]["repo_url"]):
                        need(ep, host, port)
        # dnsPolicy ClusterFirst (the default): every pod resolves through kube-dns.
        assert spec.get("dnsPolicy", "ClusterFirst") == "ClusterFirst"
        needed |= {(ep.name, KUBE_DNS.name, 53, "UDP"), (ep.name, KUBE_DNS.name, 53, "TCP")}
        for value in env_values(dep, spec):
            for host, port in urls_in(value):
                if not uses_task_logs(ep, host, blob_readers):
                    continue
                need(ep, host, port)
        for host, port in libpq_targets(spec):
            need(ep, host, port)
        for cm in mounted_config_maps(spec):
            data = dep.named("ConfigMap", cm)["data"]
            if "airflow.cfg" in data:
                cfg_flows(dep, ep, data["airflow.cfg"], need)
            # FAB's OAuth client calls the URLs of webserver_config.py, in the pods that mount it.
            if WEBSERVER_CONFIG_KEY in data and WEBSERVER_CONFIG_KEY in mounted_keys(spec):
                for host, port in urls_in(data[WEBSERVER_CONFIG_KEY]):
                    need(ep, host, port)
            if "pgbouncer.ini" in data:
                for host, port in re.findall(r"host=(\S+) port=(\d+)", data["pgbouncer.ini"]):
                    need(ep, host, int(port))
    for so in dep.of_kind("ScaledObject"):
        # A paused ScaledObject (workerScaling fixed) runs no trigger: KEDA
        # stops its scale loop (keda scaledobject_controller.go).
        if so["metadata"].get("annotations", {}).get(PAUSED_ANNOTATION) == "true":
            continue
        for trigger in so["spec"]["triggers"]:
            # A cron trigger reads the clock only; the PostgreSQL one connects.
            if "host" in trigger["metadata"]:
                need(KEDA_OPERATOR, trigger["metadata"]["host"], int(trigger["metadata"]["port"]))
    for route in dep.of_kind("HTTPRoute"):
        # The gateway's pods forward each rule's requests to its Services (a
        # rule without backendRefs forwards nothing).
        for rule in route["spec"]["rules"]:
            for ref in rule.get("backendRefs", []):
                assert ref.get("kind", "Service") == "Service" and not ref.get("group"), ref
                host = f"{ref['name']}.{ref.get('namespace', route['metadata']['namespace'])}{SERVICE_SUFFIX}"
                for gateway in route_gateways(route):
                    need(gateway, host, ref["port"])
    for service in dep.of_kind("Service"):
        if service["metadata"]["name"] in CLIENT_SERVICES:
            for p in service["spec"]["ports"]:
                for src in [*OUTSIDE, *dep.egress_samples]:
                    need(src, f"{service['metadata']['name']}.{dep.namespace}{SERVICE_SUFFIX}", p["port"])
    for m in dep.manifests:
        if m["kind"] in WORKLOAD_KINDS:
            annotations = pod_template(m)["metadata"].get("annotations", {})
            if annotations.get("prometheus.io/scrape") == "true":
                [ep] = [e for e in dep.pods if e.label_map == pod_template(m)["metadata"]["labels"]]
                # Prometheus runs in some namespace; any pod may scrape, no bare address.
                for src in [*OUTSIDE, *dep.gateway_pods]:
                    if src.ip is None:
                        needed.add((src.name, ep.name, int(annotations["prometheus.io/port"]), "TCP"))
    return needed


def entry_ports(entry: dict[str, Any]) -> tuple[list[tuple[int, int]], str]:
    """(low, high) port ranges and the protocol of a taskEgress entry as written."""
    if "service" in entry:
        return [(p.port, p.last) for p in AZURE_SERVICES[entry["service"]].ports], "TCP"
    spans = []
    for p in entry["ports"] if "ports" in entry else [entry["port"]]:
        lo, _, hi = str(p).partition("-")
        spans.append((int(lo), int(hi or lo)))
    return spans, entry.get("protocol", "TCP")


def egress_ports(dep: Deployment) -> set[tuple[int, str]]:
    """The ports to sample for the entries: each range's ends and middle, and the ports just outside it."""
    found = set()
    for entry in dep.task_egress:
        spans, protocol = entry_ports(entry)
        for lo, hi in spans:
            found |= {(p, protocol) for p in (lo - 1, lo, (lo + hi) // 2, hi, hi + 1) if 1 <= p <= 65535}
    return found


def egress_flows(dep: Deployment, ports: set[tuple[int, str]]) -> set[Flow]:
    """What taskEgress asks for, from the key alone: the pods that run DAG code
    to every sample address in the entry's range (a named service without a
    cidr: every public address), on every sampled port in its ranges."""
    needed: set[Flow] = set()
    sources = [ep for ep in dep.pods if component(ep) in TASK_CODE_COMPONENTS]
    addresses = [ep for ep in [*OUTSIDE, *dep.egress_samples] if ep.ip]
    for entry in dep.task_egress:
        spans, protocol = entry_ports(entry)
        if "cidr" in entry:
            net = ipaddress.ip_network(entry["cidr"])
            dsts = [ep for ep in addresses if ipaddress.ip_address(ep.ip) in net]
        else:
            dsts = [ep for ep in addresses if is_public(ep.ip)]
        for src, dst in itertools.product(sources, dsts):
            for port, proto in ports:
                if proto == protocol and any(lo <= port <= hi for lo, hi in spans):
                    needed.add((src.name, dst.name, port, proto))
    return needed


def cfg_flows(dep: Deployment, ep: Endpoint, text: str, need: Any) -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(text)
    if cfg.getboolean("metrics", "statsd_on", fallback=False):
        need(ep, cfg["metrics"]["statsd_host"], int(cfg["metrics"]["statsd_port"]), "UDP")
    if component(ep) in EXECUTION_API_CLIENTS:
        for host, port in urls_in(cfg["core"]["execution_api_server_url"]):
            need(ep, host, port)
    if component(ep) in LOG_READERS:
        for option in ("worker_log_server_port", "trigger_log_server_port"):
            port = int(cfg["logging"][option])
            for service in dep.of_kind("Service"):
                if any(p["port"] == port for p in service["spec"]["ports"]):
                    need(ep, f"{service['metadata']['name']}.{dep.namespace}{SERVICE_SUFFIX}", port)


def sample_ports(dep: Deployment) -> set[tuple[int, str]]:
    ports = {(p, proto) for f in needed_flows(dep) for p, proto in [(f[2], f[3])]}
    ports |= {(p, proto) for p in (22, 80, 443, 3306, 8000, 9090) for proto in ("TCP", "UDP")}
    ports |= egress_ports(dep)
    ports |= {(p, "TCP" if proto == "UDP" else "UDP") for p, proto in list(ports)}
    return ports


def all_needed(dep: Deployment) -> set[Flow]:
    """The deployment's own flows and what its taskEgress asks for."""
    return needed_flows(dep) | egress_flows(dep, sample_ports(dep))


def allowed_flows(dep: Deployment, policies: list[dict[str, Any]]) -> set[Flow]:
    ports = sample_ports(dep)
    found = set()
    for src, dst in itertools.product(dep.endpoints(), repeat=2):
        if src.namespace != dep.namespace and dst.namespace != dep.namespace:
            continue  # between two outsiders: not this deployment's business
        if src == dst:
            continue  # a pod cannot block access to itself
        # Which rules apply depends on the two pods; only the port is checked per port.
        allows = allowed_by(policies, src, dst)
        found.update((src.name, dst.name, port, proto) for port, proto in ports if allows(port, proto))
    return found


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

# A stack that reaches its own systems: a private database in a peered VNet,
# an SMTP relay at one public address, Azure SQL Database and Service Bus by
# name (public addresses), a PostgreSQL flexible server by its private
# endpoint's subnet, and a UDP range on IPv6.
TASK_EGRESS: list[dict[str, Any]] = [
    {"cidr": "10.20.0.0/16", "port": 5432},
    {"cidr": "203.0.113.25/32", "ports": [25, 587]},
    {"service": "sql-database"},
    {"service": "service-bus"},
    {"service": "postgresql-flexible-server", "cidr": "10.30.1.0/24"},
    {"cidr": "fd00:20::/48", "ports": ["8000-8100", 9999], "protocol": "UDP"},
]

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "prod, no PgBouncer, Flower, no remote task logs": (
        "prod", {"airflow-aks:pgbouncer": False, "airflow-aks:flower": True, "airflow-aks:remoteTaskLogs": False,
                 "airflow-aks:keyVault": False, "airflow-aks:databaseBackupSchedule": ""}),
    "dev, fixed workers, no metrics": ("dev", {"airflow-aks:workerScaling": "fixed", "airflow-aks:metrics": False}),
    "prod, database azure": ("prod", {"airflow-aks:database": "azure"}),
    "prod, database azure, no PgBouncer": ("prod", {"airflow-aks:database": "azure", "airflow-aks:pgbouncer": False}),
    "local": ("local", {}),
    "local, task logs in the storage emulator": ("local", {"airflow-aks:taskLogEmulatorEndpoint": EMULATOR_ENDPOINT}),
    "prod, taskEgress": ("prod", {"airflow-aks:taskEgress": TASK_EGRESS}),
    "local, taskEgress": ("local", {"airflow-aks:taskEgress": [{"cidr": "192.168.50.0/24", "port": 5432},
                                                               {"service": "communication-services-smtp"}]}),
    "prod, git and blob DAG bundles": ("prod", {
        "airflow-aks:dagBundles": [{"name": "dags-folder", "kind": "image"},
                                   {"name": "repo", "kind": "git", "url": GIT_URL, "credentials": True},
                                   {"name": "drop", "kind": "blob", "container": "airflow-dags"}],
        "airflow-aks:dagBundleTokens": {"repo": "a-token"}}),
    # Three features that share the Airflow pods' one identity and its 443.
    "prod, keyVault, DAG bundles and taskEgress": ("prod", {
        "airflow-aks:keyVault": True, "airflow-aks:taskEgress": TASK_EGRESS,
        "airflow-aks:dagBundles": [{"name": "repo", "kind": "git", "url": GIT_URL, "credentials": True},
                                   {"name": "drop", "kind": "blob", "container": "airflow-dags"}],
        "airflow-aks:dagBundleTokens": {"repo": "a-token"}}),
    # Entra ID alone opens the api-server's 443.
    "prod, Entra ID sign-in, no keyVault, no remote task logs": ("prod", {
        "airflow-aks:ui": ENTRA_UI, "airflow-aks:keyVault": False, "airflow-aks:remoteTaskLogs": False,
        "airflow-aks:databaseBackupSchedule": ""}),
    "local, a blob DAG bundle in the storage emulator": ("local", {
        "airflow-aks:taskLogEmulatorEndpoint": EMULATOR_ENDPOINT,
        "airflow-aks:dagBundles": [{"name": "drop", "kind": "blob", "container": "airflow-dags"}]}),
    # The UI through the gateway (tests/test_ui_gateway.py), its certificate
    # from a Secret (from Key Vault it needs the TLS identity __main__.py passes).
    "prod, UI gateway": ("prod", {"airflow-aks:ui": UI_SECRET}),
}


@pytest.fixture(scope="module")
def deployments() -> dict[str, Deployment]:
    found = {}
    for variant, (stack, changes) in VARIANTS.items():
        config = {**stack_file_config(stack), **changes}
        run = shared_run(stack, config, secret_keys=["airflow-aks:dagBundleTokens"])
        assert run.error is None, f"{variant}: {run.error}"
        found[variant] = deployment_of(run, changes.get("airflow-aks:taskEgress"))
    return found


def describe(flows: set[Flow]) -> list[str]:
    return sorted(f"{s} -> {d}:{p}/{proto}" for s, d, p, proto in flows)


@pytest.mark.parametrize("variant", VARIANTS)
def test_policies_allow_exactly_the_needed_flows(deployments: dict[str, Deployment], variant: str) -> None:
    dep = deployments[variant]
    needed = all_needed(dep)
    got = allowed_flows(dep, dep.policies())
    assert describe(needed - got) == [], f"{variant}: needed flows the NetworkPolicies block"
    assert describe(got - needed) == [], f"{variant}: flows the NetworkPolicies allow that nothing needs"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_of_the_namespace_is_isolated_both_ways(deployments: dict[str, Deployment], variant: str) -> None:
    dep = deployments[variant]
    [deny] = [p for p in dep.policies() if p["metadata"]["name"] == "airflow-default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, \
        f"{variant}: NetworkPolicy airflow-default-deny selects every pod with no rule"
    for ep in dep.pods:
        assert ep.label_map.get("app.kubernetes.io/part-of") == "airflow", ep.name
        selecting = {p["metadata"]["name"] for p in dep.policies() if selects(p["spec"]["podSelector"], ep.label_map)}
        assert selecting == {ep.name, "airflow-all-pods", "airflow-default-deny"}, \
            f"{variant}: {ep.name} is selected by its own NetworkPolicy, the DNS one and the default deny"


def test_the_flows_depend_on_the_settings(deployments: dict[str, Deployment]) -> None:
    """The derivation sees the settings: the variants differ where they should."""
    prod = needed_flows(deployments["prod"])
    variant = needed_flows(deployments["prod, no PgBouncer, Flower, no remote task logs"])
    assert ("airflow-scheduler", names.PGBOUNCER, names.PGBOUNCER_PORT, "TCP") in prod
    assert ("airflow-scheduler", names.POSTGRES, names.POSTGRES_PORT, "TCP") in variant
    assert ("airflow-worker", STORAGE_ADDRESS.name, 443, "TCP") in prod
    assert not any(d == STORAGE_ADDRESS.name for _, d, _, _ in variant)
    assert not any(d == names.FLOWER for _, d, _, _ in variant), "Flower admits no connection"
    assert ("airflow-flower", names.RABBITMQ, names.RABBITMQ_PORT, "TCP") in variant
    assert (KEDA_OPERATOR.name, names.POSTGRES, names.POSTGRES_PORT, "TCP") in prod
    assert (names.DATABASE_BACKUP, names.POSTGRES, names.POSTGRES_PORT, "TCP") in prod
    assert (names.DATABASE_BACKUP, STORAGE_ADDRESS.name, 443, "TCP") in prod
    assert not any(names.DATABASE_BACKUP in (s, d) for s, d, _, _ in variant)
    emulator = needed_flows(deployments["local, task logs in the storage emulator"])
    assert (names.DATABASE_BACKUP, AZURITE.name, 10000, "TCP") in emulator
    assert not any(names.DATABASE_BACKUP in (s, d) for s, d, _, _ in needed_flows(deployments["local"]))
    azure = needed_flows(deployments["prod, database azure"])
    assert {(src, d) for src, d, p, _ in azure if p == names.POSTGRES_PORT} == {
        (names.PGBOUNCER, SERVER_ADDRESS.name), (names.MIGRATE, SERVER_ADDRESS.name),
        (names.DATABASE_ROLES, SERVER_ADDRESS.name)}
    azure_direct = needed_flows(deployments["prod, database azure, no PgBouncer"])
    assert ("airflow-scheduler", SERVER_ADDRESS.name, names.POSTGRES_PORT, "TCP") in azure_direct
    assert not any(d == names.POSTGRES for _, d, _, _ in azure | azure_direct)
    bundles = needed_flows(deployments["prod, git and blob DAG bundles"])
    git_port = urlsplit(GIT_URL).port
    assert {s for s, d, p, _ in bundles if p == git_port} == {"airflow-dag-processor", "airflow-worker"}
    assert ("airflow-dag-processor", STORAGE_ADDRESS.name, 443, "TCP") in bundles
    # Without blob bundles or keyVault (prod has the vault) the dag-processor stays in.
    assert ("airflow-dag-processor", STORAGE_ADDRESS.name, 443, "TCP") in prod
    assert ("airflow-dag-processor", STORAGE_ADDRESS.name, 443, "TCP") not in needed_flows(deployments["dev"])
    local_blob = needed_flows(deployments["local, a blob DAG bundle in the storage emulator"])
    assert ("airflow-dag-processor", AZURITE.name, 10000, "TCP") in local_blob
    fixed = needed_flows(deployments["dev, fixed workers, no metrics"])
    assert (KEDA_OPERATOR.name, names.POSTGRES, names.POSTGRES_PORT, "TCP") not in fixed
    assert not any(d == names.STATSD for _, d, _, _ in fixed)


def test_the_checker_catches_a_missing_and_an_extra_flow(deployments: dict[str, Deployment]) -> None:
    """Negative control: drop the worker's broker rule, and open PostgreSQL to
    every pod of the namespace; the comparison names both."""
    dep = deployments["prod"]
    policies = json.loads(json.dumps(dep.policies()))
    [worker] = [p for p in policies if p["metadata"]["name"] == names.WORKER]
    worker["spec"]["egress"] = [r for r in worker["spec"]["egress"] if r["ports"][0]["port"] != names.RABBITMQ_PORT]
    [pg] = [p for p in policies if p["metadata"]["name"] == names.POSTGRES]
    pg["spec"]["ingress"][0]["from"].append({"podSelector": {}})
    [scheduler] = [p for p in policies if p["metadata"]["name"] == names.SCHEDULER]
    scheduler["spec"]["egress"].append({"ports": [{"port": names.POSTGRES_PORT, "protocol": "TCP"}],
                                        "to": [{"podSelector": {}}]})
    needed, got = needed_flows(dep), allowed_flows(dep, policies)
    assert describe(needed - got) == [f"{names.WORKER} -> {names.RABBITMQ}:{names.RABBITMQ_PORT}/TCP"]
    assert describe(got - needed) == [f"{names.SCHEDULER} -> {names.POSTGRES}:{names.POSTGRES_PORT}/TCP"]


def test_the_ui_gateway_adds_one_flow_from_its_route() -> None:
    """With the gateway on, the builder's one new flow is the gateway's pods
    to the api-server's port, selected by the Gateway's namespace and name;
    without it, no flow names the gateway."""
    gateway_flows = [f for f in flows(config_for("prod", ui=UI_SECRET).settings) if "gateway" in f.src.name]
    assert [(f.dst.name, f.port, f.protocol) for f in gateway_flows] == [(names.API_SERVER, names.API_SERVER_PORT,
                                                                          "TCP")]
    assert gateway_flows[0].src.selector == {
        "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: "airflow-ui"}},
        "pod_selector": {"match_labels": {GATEWAY_NAME_LABEL: "airflow-ui"}}}
    assert not [f for f in flows(config_for("prod").settings) if "gateway" in f.src.name]


def test_the_gateway_needs_the_api_server_and_nothing_else(deployments: dict[str, Deployment]) -> None:
    dep = deployments["prod, UI gateway"]
    [gateway] = dep.gateway_pods
    assert (gateway.namespace, gateway.label_map) == ("airflow-ui", {GATEWAY_NAME_LABEL: "airflow-ui"})
    from_route = {f for f in needed_flows(dep) if f[0] == gateway.name and f[1] != names.STATSD}
    assert from_route == {(gateway.name, names.API_SERVER, names.API_SERVER_PORT, "TCP")}, \
        "HTTPRoute airflow-ui: its one backend, the api-server's container port"
    assert deployments["prod"].gateway_pods == [] and not deployments["prod"].of_kind("HTTPRoute")


def test_the_checker_catches_a_blocked_gateway(deployments: dict[str, Deployment]) -> None:
    """Negative control: the api-server's port opened to the workers only
    (not to any source), the gateway's requests are blocked and named."""
    dep = deployments["prod, UI gateway"]
    policies = json.loads(json.dumps(dep.policies()))
    [api] = [p for p in policies if p["metadata"]["name"] == names.API_SERVER]
    for rule in api["spec"]["ingress"]:
        if rule["ports"][0]["port"] == names.API_SERVER_PORT:
            rule["from"] = [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "worker"}}}]
    blocked = describe(needed_flows(dep) - allowed_flows(dep, policies))
    assert f"gateway airflow-ui/airflow-ui -> {names.API_SERVER}:{names.API_SERVER_PORT}/TCP" in blocked, blocked


@pytest.mark.parametrize("variant", VARIANTS)
def test_policies_validate_against_the_kubernetes_schema(deployments: dict[str, Deployment], variant: str) -> None:
    """As the API server would take them (test_workloads validates every object the same way)."""
    stack, changes = VARIANTS[variant]
    version = config_for(stack, **{k.removeprefix("airflow-aks:"): v for k, v in changes.items()}
                         ).settings.kubernetes_version
    for policy in deployments[variant].policies():
        validate_manifest(policy, version)


def flow_rows(settings: Settings, store: TaskLogStore | None) -> dict[str, str]:
    """docs/security.md's table: destination and port -> its sources, from the builder's flows."""
    rows: dict[str, set[str]] = {}
    for f in flows(settings, store):
        rows.setdefault(f"{f.dst.name} {f.port}/{f.protocol}", set()).add(f.src.name)
    return {dst: ", ".join(sorted(srcs)) for dst, srcs in rows.items()}


def test_readme_lists_the_flows_of_prod() -> None:
    settings = config_for("prod").settings
    store = TaskLogStore("https://<account>.blob.core.windows.net", "<client>", "<tenant>", "<backup client>")
    shown = {dst: cells[0] for dst, cells in table_after("## Network policies", page="docs/security.md").items()}
    assert shown == flow_rows(settings, store), "docs/security.md, Network policies: the flows of prod"


# --------------------------------------------------------------------------
# taskEgress
# --------------------------------------------------------------------------

BEFORE_TASK_EGRESS = json.loads((Path(__file__).parent / "network_policies_before_task_egress.json").read_text())


def by_name(policies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Policies keyed by name: the mocks record resources in the order their registrations finish."""
    found = {p["metadata"]["name"]: p for p in policies}
    assert len(found) == len(policies)
    return found


def without_the_roles_job(policies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The policies less what the database-roles Job (issue 28, later than the
    file) added: its own egress policy and its peer in the server's ingress."""
    roles = {"podSelector": {"matchLabels": database_roles.LABELS}}
    found = {name: p for name, p in policies.items() if name != names.DATABASE_ROLES}
    for name, p in found.items():
        ingress = [{**rule, "from": [peer for peer in rule["from"] if peer != roles]} if "from" in rule else rule
                   for rule in p["spec"].get("ingress", [])]
        if ingress:
            found[name] = {**p, "spec": {**p["spec"], "ingress": ingress}}
    return found


@pytest.mark.parametrize("variant", BEFORE_TASK_EGRESS["variants"])
def test_without_task_egress_the_policies_are_as_before(variant: str) -> None:
    """The NetworkPolicies of these stacks as main rendered them at the commit
    named in the file, before taskEgress existed: unchanged, object for object
    (without keyVault, which prod turned on later and which opens 443 to the
    dag-processor: tests/test_key_vault.py)."""
    stack, changes = VARIANTS[variant]
    run = shared_run(stack, {**stack_file_config(stack), **changes, "airflow-aks:keyVault": False})
    assert run.error is None, run.error
    policies = [m for m in run.manifests() if m["kind"] == "NetworkPolicy"]
    assert without_the_roles_job(by_name(policies)) == by_name(BEFORE_TASK_EGRESS["variants"][variant]), variant


def test_an_empty_task_egress_renders_the_same_policies(deployments: dict[str, Deployment]) -> None:
    def policies(keys: dict[str, Any]) -> dict[str, dict[str, Any]]:
        run = shared_run(stack, {**stack_file_config(stack), "airflow-aks:taskEgress": [], **keys})
        assert run.error is None, run.error
        return by_name([m for m in run.manifests() if m["kind"] == "NetworkPolicy"])

    for stack in ("dev", "prod"):
        assert policies({}) == by_name(deployments[stack].policies()), stack
        assert without_the_roles_job(policies({"airflow-aks:keyVault": False})) == by_name(
            BEFORE_TASK_EGRESS["variants"]["prod"]), stack


def test_task_egress_adds_exactly_its_flows(deployments: dict[str, Deployment]) -> None:
    """The flows taskEgress adds are those derived from the key, from the
    workers and the triggerer only, and the rest of prod's flows stay."""
    prod, egress = deployments["prod"], deployments["prod, taskEgress"]
    added = allowed_flows(egress, egress.policies()) - allowed_flows(egress, prod.policies())
    assert added == egress_flows(egress, sample_ports(egress)) - needed_flows(egress)
    sources = {s for s, _, _, _ in added}
    assert sources == {names.WORKER, names.TRIGGERER}
    # Each entry reaches its own range and ports, and not the addresses just outside it.
    want = {
        ("10.20.0.1 (in taskEgress[0])", 5432, "TCP"), ("203.0.113.25 (in taskEgress[1])", 587, "TCP"),
        ("203.0.113.25 (in taskEgress[1])", 25, "TCP"), (STORAGE_ADDRESS.name, 1433, "TCP"),
        (STORAGE_ADDRESS.name, 11000, "TCP"), (STORAGE_ADDRESS.name, 11999, "TCP"),
        (STORAGE_ADDRESS.name, 5671, "TCP"), ("10.30.1.1 (in taskEgress[4])", 6432, "TCP"),
        ("fd00:20::1 (in taskEgress[5])", 8050, "UDP"), ("fd00:20::1 (in taskEgress[5])", 9999, "UDP"),
    }
    for dst, port, proto in want:
        assert (names.WORKER, dst, port, proto) in added, (dst, port, proto)
    for dst, port, proto in [("10.20.0.1 (in taskEgress[0])", 5433, "TCP"), (STORAGE_ADDRESS.name, 10999, "TCP"),
                             (STORAGE_ADDRESS.name, 12000, "TCP"), (PRIVATE_ADDRESS.name, 1433, "TCP"),
                             ("10.19.255.255 (below taskEgress[0])", 5432, "TCP"),
                             ("10.21.0.0 (above taskEgress[0])", 5432, "TCP"),
                             ("fd00:20::1 (in taskEgress[5])", 8050, "TCP"),
                             ("fd00:20::1 (in taskEgress[5])", 8101, "UDP"),
                             (SERVER_ADDRESS.name, 5432, "TCP")]:
        assert (names.WORKER, dst, port, proto) not in added, (dst, port, proto)


def test_prod_with_task_egress_renders_the_rules_on_the_workers_policy() -> None:
    """Under mocks, as the program declares them: ipBlocks with ports and
    endPort on airflow-worker (and airflow-triggerer), and nowhere else."""
    config = {**stack_file_config("prod"), "airflow-aks:taskEgress": [
        {"cidr": "10.20.0.0/16", "port": 5432}, {"service": "sql-database"},
        {"service": "communication-services-smtp", "cidr": "20.47.0.0/16"}]}
    run = shared_run("prod", config)
    assert run.error is None, run.error
    public = {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]}
    expected = [
        ({"port": 5432, "protocol": "TCP"}, {"cidr": "10.20.0.0/16"}),
        ({"port": 1433, "protocol": "TCP"}, public),
        ({"port": 11000, "endPort": 11999, "protocol": "TCP"}, public),
        ({"port": 587, "protocol": "TCP"}, {"cidr": "20.47.0.0/16"}),
    ]
    for name in (names.WORKER, names.TRIGGERER):
        egress = run.manifest("NetworkPolicy", name)["spec"]["egress"]
        for port, block in expected:
            assert {"ports": [port], "to": [{"ipBlock": block}]} in egress, (name, port)
    for policy in [m for m in run.manifests() if m["kind"] == "NetworkPolicy"]:
        if policy["metadata"]["name"] not in (names.WORKER, names.TRIGGERER):
            text = json.dumps(policy)
            assert "10.20.0.0/16" not in text and "11999" not in text and "20.47.0.0/16" not in text, \
                policy["metadata"]["name"]


# Each malformed shape, the key it names and what the message says is allowed.
MALFORMED: list[tuple[Any, str, str]] = [
    ({"cidr": "10.20.0.0/16", "port": 5432}, "taskEgress", "must be a list of destinations"),
    (["10.20.0.0/16:5432"], "taskEgress[0]", "must be a mapping"),
    ([{"port": 5432}], "taskEgress[0]", "needs cidr and port, or service"),
    ([{"cidr": "10.20.0.0/16"}], "taskEgress[0].port", "required with cidr"),
    ([{"cidr": "10.20.0.0", "port": 5432}], "taskEgress[0].cidr", "with its prefix length"),
    ([{"cidr": "10.20.300.0/24", "port": 5432}], "taskEgress[0].cidr", "IPv4 or IPv6 network"),
    ([{"cidr": "db.example.com/32", "port": 5432}], "taskEgress[0].cidr", "IPv4 or IPv6 network"),
    ([{"cidr": "10.20.0.7/16", "port": 5432}], "taskEgress[0].cidr", "host bits set: the network is 10.20.0.0/16"),
    ([{"cidr": "fd00:20::1/48", "port": 5432}], "taskEgress[0].cidr", "host bits set: the network is fd00:20::/48"),
    ([{"cidr": "10.244.3.0/24", "port": 8080}], "taskEgress[0].cidr", "the cluster's pod range"),
    ([{"cidr": "10.0.0.10/32", "port": 53}], "taskEgress[0].cidr", "the cluster's Service range"),
    ([{"cidr": "10.20.0.0/16", "port": 0}], "taskEgress[0].port", "a port from 1 to 65535"),
    ([{"cidr": "10.20.0.0/16", "port": 70000}], "taskEgress[0].port", "a port from 1 to 65535"),
    ([{"cidr": "10.20.0.0/16", "port": "postgres"}], "taskEgress[0].port", "a port from 1 to 65535"),
    ([{"cidr": "10.20.0.0/16", "port": "8000-8100"}], "taskEgress[0].port", "a port from 1 to 65535"),
    ([{"cidr": "10.20.0.0/16", "port": 5432, "ports": [5433]}], "taskEgress[0].ports", "not both"),
    ([{"cidr": "10.20.0.0/16", "ports": []}], "taskEgress[0].ports", "non-empty list"),
    ([{"cidr": "10.20.0.0/16", "ports": [5432, "9000-8000"]}], "taskEgress[0].ports[1]", "low below high"),
    ([{"cidr": "10.20.0.0/16", "port": 5432, "protocol": "SCTP"}], "taskEgress[0].protocol", "TCP or UDP"),
    ([{"cidr": "10.20.0.0/16", "port": 5432, "protocol": "tcp"}], "taskEgress[0].protocol", "TCP or UDP"),
    ([{"cidr": "10.20.0.0/16", "prot": 5432}], "taskEgress[0].prot", "did you mean 'port'?"),
    ([{"service": "azure-sql"}], "taskEgress[0].service", "known: sql-database"),
    ([{"service": "sql-database", "port": 1433}], "taskEgress[0].port", "brings its own ports"),
    ([{"service": "event-hubs", "cidr": "10.30.1.1/24"}], "taskEgress[0].cidr", "host bits set"),
]


@pytest.mark.parametrize(("value", "key", "says"), MALFORMED, ids=[m[1] + ": " + m[2] for m in MALFORMED])
def test_a_malformed_entry_is_refused_naming_its_field(value: Any, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_for("prod", taskEgress=value)
    problems = dict(err.value.problems)
    assert key in problems, err.value.problems
    assert says in problems[key]
    # Nothing else is blamed (a misspelt `port` is also a missing one).
    assert set(problems) <= {key, "taskEgress[0].port"}, err.value.problems


def test_the_metadata_database_subnet_is_refused_with_database_azure() -> None:
    """Only PgBouncer and the migration Job may reach the flexible server's subnet."""
    entry = [{"cidr": "10.224.0.0/16", "port": 5432}]
    with pytest.raises(ConfigError) as err:
        config_for("prod", database="azure", taskEgress=entry)
    assert [k for k, _ in err.value.problems] == ["taskEgress[0].cidr"]
    assert vnet.DATABASE_SUBNET_CIDR in err.value.problems[0][1]
    # The in-cluster database has no such subnet, and a range that only
    # covers the pod range in part is taken (its pod part selects nothing).
    assert config_for("prod", taskEgress=entry).settings.task_egress[0].cidr == "10.224.0.0/16"
    assert config_for("prod", taskEgress=[{"cidr": "10.0.0.0/8", "port": 5432}]).settings.task_egress


def test_a_malformed_entry_stops_the_program_before_any_resource() -> None:
    config = {**stack_file_config("prod"), "airflow-aks:taskEgress": [{"cidr": "10.20.0.0/16", "port": 5432},
                                                                       {"service": "sql"}]}
    run = shared_run("prod", config)
    assert isinstance(run.error, pulumi.RunError)
    assert "airflow-aks:taskEgress[1].service: unknown Azure service 'sql'" in str(run.error)
    assert run.resources == []


@pytest.mark.parametrize(("service", "ports"), [
    # The figures of each service's documentation (components/model/egress.py cites the pages).
    ("sql-database", ["1433", "11000-11999"]),
    ("postgresql-flexible-server", ["5432", "6432"]),
    ("mysql-flexible-server", ["3306"]),
    ("service-bus", ["443", "5671", "5672"]),
    ("event-hubs", ["443", "5671", "5672", "9093"]),
    ("communication-services-smtp", ["587"]),
])
def test_the_named_services_ports(service: str, ports: list[str]) -> None:
    assert [str(p) for p in AZURE_SERVICES[service].ports] == ports
    assert AZURE_SERVICES[service].source.startswith("learn.microsoft.com/azure/")


def test_the_user_guide_lists_the_named_services_and_their_ports() -> None:
    rows = table_after("## Reaching your own systems", page="docs/user-guide.md")
    assert set(rows) == {f"`{name}`" for name in AZURE_SERVICES}
    for name, service in AZURE_SERVICES.items():
        listed = rows[f"`{name}`"][0].split(" (")[0]
        assert listed == ", ".join(str(p) for p in service.ports), name


def test_a_valid_entry_is_normalised() -> None:
    """Ports deduplicated and in order (a lone port next to a range starting
    there too), the IPv6 network in its short form, the JSON text the Pulumi
    CLI passes for a list taken as the list."""
    [rule] = config_for("prod", taskEgress=[{"cidr": "FD00:0020:0000::/48", "ports": ["5432-5440", 5432, "5432", 80],
                                             "protocol": "UDP"}]).settings.task_egress
    assert rule.cidr == "fd00:20::/48" and rule.protocol == "UDP"
    assert [str(p) for p in rule.ports] == ["80", "5432", "5432-5440"]
    text = json.dumps([{"service": "event-hubs"}])
    [named] = config_for("prod", taskEgress=text).settings.task_egress
    assert named.cidr is None and named.service == "event-hubs"
