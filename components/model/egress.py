"""taskEgress: the destinations outside the cluster that tasks may reach.

The namespace denies every connection that no NetworkPolicy allows
(components/kubernetes/network_policies.py), so a DAG that talks to a
database, an SMTP relay or a message broker needs its destination opened.
Each entry of the `taskEgress` stack config key is either an address range and
its ports, or one of the Azure services below by name.

A Kubernetes NetworkPolicy selects destinations outside the cluster only by
address (`ipBlock`: a CIDR, with exceptions); it cannot name a DNS host, an
FQDN or an Azure service tag (kubernetes.io/docs/concepts/services-networking/
network-policies, NetworkPolicyPeer). So a named service brings its ports, and
its destination is either the `cidr` given with it (its private endpoint or
VNet-integrated subnet) or, without one, every public address: 0.0.0.0/0
except the private ranges, as the task-log rule on 443 already does, because
an Azure service's public addresses are Azure's to change.

Pure: parsing and the table only; nothing here declares a resource.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.model.parsing import cli_list

KEY = "taskEgress"
PROTOCOLS = ("TCP", "UDP")
ENTRY_KEYS = ("cidr", "port", "ports", "protocol", "service")


@dataclass(frozen=True)
class PortRange:
    """One port, or `port` to `end_port` inclusive (NetworkPolicyPort.endPort)."""

    port: int
    end_port: int | None = None

    def __str__(self) -> str:
        return str(self.port) if self.end_port is None else f"{self.port}-{self.end_port}"

    @property
    def last(self) -> int:
        return self.port if self.end_port is None else self.end_port


@dataclass(frozen=True)
class AzureService:
    """An Azure service a task talks to: the ports its clients connect to, and where that is documented."""

    title: str
    ports: tuple[PortRange, ...]
    source: str


def _ports(*items: int | tuple[int, int]) -> tuple[PortRange, ...]:
    return tuple(PortRange(*i) if isinstance(i, tuple) else PortRange(i) for i in items)


# Each service's client ports over TCP, from its own documentation.
AZURE_SERVICES: dict[str, AzureService] = {
    # The gateway listens on 1433; a client inside Azure (as AKS is) gets the
    # Redirect connection policy by default and then connects straight to the
    # node holding the database, on a port from 11000 to 11999.
    # learn.microsoft.com/azure/azure-sql/database/connectivity-architecture
    # ("Connection policy"), .../adonet-v12-develop-direct-route-ports.
    # Through a private endpoint Redirect needs 1433-65535 instead
    # (.../azure-sql/database/private-endpoint-overview, "Use Redirect
    # connection policy with private endpoints"): give that as a `cidr` entry
    # with `ports: ["1433-65535"]`; Proxy (what an existing private endpoint
    # with the Default policy uses) needs 1433 only.
    "sql-database": AzureService("Azure SQL Database", _ports(1433, (11000, 11999)),
                                 "learn.microsoft.com/azure/azure-sql/database/connectivity-architecture"),
    # 5432; 6432 is the server's built-in PgBouncer when it is turned on
    # (learn.microsoft.com/azure/postgresql/flexible-server/concepts-pgbouncer,
    # "PgBouncer runs on port 6432 on your database server").
    "postgresql-flexible-server": AzureService(
        "Azure Database for PostgreSQL flexible server", _ports(5432, 6432),
        "learn.microsoft.com/azure/postgresql/flexible-server/how-to-troubleshoot-common-connection-issues"),
    # "make sure that port 3306 is open for outbound connections".
    "mysql-flexible-server": AzureService(
        "Azure Database for MySQL flexible server", _ports(3306),
        "learn.microsoft.com/azure/mysql/flexible-server/how-to-troubleshoot-common-connection-issues"),
    # AMQP over TCP on 5671 and 5672 (the service upgrades 5672 to TLS at
    # once); 443 for AMQP over WebSockets, the REST API and the SDKs'
    # management calls. service-bus-amqp-protocol-guide, "AMQP outbound port
    # requirements". The ports 104XX of EnableLinkRedirect (the old .NET
    # client only) are not opened.
    "service-bus": AzureService("Azure Service Bus", _ports(443, 5671, 5672),
                                "learn.microsoft.com/azure/service-bus-messaging/service-bus-amqp-protocol-guide"),
    # AMQP 5671/5672, HTTPS 443 (needed even with AMQP: management calls and
    # Entra ID tokens), Kafka 9093. event-hubs-faq, "What ports do I need to
    # open on the firewall?".
    "event-hubs": AzureService("Azure Event Hubs", _ports(443, 5671, 5672, 9093),
                               "learn.microsoft.com/azure/event-hubs/event-hubs-faq"),
    # smtp.azurecomm.net on 587 with STARTTLS (the SMTP quickstart's SmtpClient,
    # Port = 587, EnableSsl = true).
    "communication-services-smtp": AzureService(
        "Azure Communication Services Email (SMTP)", _ports(587),
        "learn.microsoft.com/azure/communication-services/quickstarts/email/send-email-smtp/send-email-smtp"),
}


@dataclass(frozen=True)
class EgressRule:
    """One `taskEgress` entry, validated.

    cidr None: a named service's public addresses (every address outside the
    private ranges); else the network, normalised (`ipaddress`).
    """

    index: int
    cidr: str | None
    ports: tuple[PortRange, ...]
    protocol: str = "TCP"
    service: str | None = None

    @property
    def label(self) -> str:
        return f"{KEY}[{self.index}]"

    @property
    def what(self) -> str:
        return AZURE_SERVICES[self.service].title if self.service else "a destination of the tasks"


# What the error messages say an entry may be.
ALLOWED = ("an entry is {cidr: <network, e.g. 10.20.0.0/16>, port: <1-65535>} (or ports: [5432, \"11000-11999\"]; "
           "protocol: TCP or UDP, default TCP), or {service: <name>} with an optional cidr narrowing it; "
           "services: " + ", ".join(AZURE_SERVICES))

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Reserved:
    """An address range an entry may not reach into: `any_overlap` refuses any
    overlap (the metadata database's subnet), otherwise only a network wholly
    inside it (the cluster's pod and Service ranges, which an ipBlock does
    not select: a wider range that covers them opens nothing there)."""

    cidr: str
    why: str
    any_overlap: bool


def parse_task_egress(raw: Any, *, reserved: Sequence[Reserved] = ()) -> tuple[tuple[EgressRule, ...] | None,
                                                                               Problems]:
    """The `taskEgress` list (YAML, or the JSON text the Pulumi CLI passes).

    Returns the rules, or None with the problems, each naming `taskEgress[i].field`.
    """
    problems: Problems = []
    if raw is None:
        return (), problems
    raw = cli_list(raw)
    if not isinstance(raw, list):
        return None, [(KEY, f"must be a list of destinations; {ALLOWED}; got {raw!r}")]
    rules = []
    for i, entry in enumerate(raw):
        rule = _entry(i, entry, reserved, problems)
        if rule is not None:
            rules.append(rule)
    return (None, problems) if problems else (tuple(rules), problems)


def _entry(i: int, entry: Any, reserved: Sequence[Reserved], problems: Problems) -> EgressRule | None:
    here = f"{KEY}[{i}]"
    if not isinstance(entry, dict):
        problems.append((here, f"must be a mapping; {ALLOWED}; got {entry!r}"))
        return None
    before = len(problems)
    for k in sorted(entry, key=str):
        if k not in ENTRY_KEYS:
            close = difflib.get_close_matches(str(k), ENTRY_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append((f"{here}.{k}", f"unknown field; {hint}an entry takes {', '.join(ENTRY_KEYS)}"))
    service = entry.get("service")
    cidr = _cidr(entry["cidr"], f"{here}.cidr", reserved, problems) if "cidr" in entry else None
    if service is not None:
        if not isinstance(service, str) or service not in AZURE_SERVICES:
            close = difflib.get_close_matches(str(service), AZURE_SERVICES, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append((f"{here}.service", f"unknown Azure service {service!r}; {hint}known: "
                             f"{', '.join(AZURE_SERVICES)} (or give cidr and port instead)"))
        for k in ("port", "ports", "protocol"):
            if k in entry:
                problems.append((f"{here}.{k}", "a named service brings its own ports (see README, \"Reaching "
                                 "your own systems\"); for other ports add a {cidr, port} entry"))
        if len(problems) > before:
            return None
        return EgressRule(i, cidr, AZURE_SERVICES[service].ports, "TCP", service)
    if "cidr" not in entry:
        problems.append((here, f"needs cidr and port, or service; {ALLOWED}"))
        return None
    ports = _port_list(entry, here, problems)
    protocol = entry.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        problems.append((f"{here}.protocol", f"must be TCP or UDP (upper case, as Kubernetes spells it), "
                         f"got {protocol!r}"))
    if len(problems) > before or ports is None or cidr is None:
        return None
    return EgressRule(i, cidr, ports, protocol)


def _cidr(raw: Any, key: str, reserved: Sequence[Reserved], problems: Problems) -> str | None:
    allowed = "an IPv4 or IPv6 network with its prefix length, e.g. 10.20.0.0/16, 10.20.0.5/32 or fd00:20::/48"
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9A-Fa-f.:]+/\d{1,3}", raw.strip()):
        problems.append((key, f"must be {allowed}, got {raw!r}"))
        return None
    try:
        network = ipaddress.ip_network(raw.strip())
    except ValueError as err:
        if "host bits set" in str(err):
            loose = ipaddress.ip_network(raw.strip(), strict=False)
            problems.append((key, f"{raw!r} has host bits set: the network is {loose}, or write "
                             f"{raw.split('/')[0]}/{loose.max_prefixlen} for that one address"))
        else:
            problems.append((key, f"must be {allowed}, got {raw!r} ({err})"))
        return None
    for r in reserved:
        other = ipaddress.ip_network(r.cidr)
        if other.version != network.version:
            continue
        if network.overlaps(other) and (r.any_overlap or network.subnet_of(other)):
            problems.append((key, f"{network} {'overlaps' if r.any_overlap else 'is inside'} {other}, {r.why}"))
            return None
    return str(network)


def _port_list(entry: dict[str, Any], here: str, problems: Problems) -> tuple[PortRange, ...] | None:
    if "port" in entry and "ports" in entry:
        problems.append((f"{here}.ports", "set port or ports, not both"))
        return None
    if "port" in entry:
        one = _port(entry["port"], f"{here}.port", problems, ranges=False)
        return None if one is None else (one,)
    if "ports" not in entry:
        problems.append((f"{here}.port", "required with cidr: the destination port (1-65535), or ports: a list "
                         "of ports and \"low-high\" ranges"))
        return None
    raw = entry["ports"]
    if not isinstance(raw, list) or not raw:
        problems.append((f"{here}.ports", f"must be a non-empty list of ports and \"low-high\" ranges, "
                         f"e.g. [5432, \"11000-11999\"], got {raw!r}"))
        return None
    found = [_port(p, f"{here}.ports[{j}]", problems, ranges=True) for j, p in enumerate(raw)]
    if any(p is None for p in found):
        return None
    # Sorted by first and last port (a lone port's end_port is None, which does not compare with a number).
    return tuple(sorted({p for p in found if p is not None}, key=lambda p: (p.port, p.last)))


def _port(raw: Any, key: str, problems: Problems, *, ranges: bool) -> PortRange | None:
    allowed = "a port from 1 to 65535" + (" or a range \"low-high\" such as \"11000-11999\"" if ranges else "")
    if isinstance(raw, bool):
        problems.append((key, f"must be {allowed}, got {raw!r}"))
        return None
    text = str(raw).strip() if isinstance(raw, (int, str)) else None
    m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", text or "")
    if m is None or (m.group(2) is not None and not ranges):
        problems.append((key, f"must be {allowed}, got {raw!r}"))
        return None
    lo, hi = int(m.group(1)), int(m.group(2)) if m.group(2) else None
    if not 1 <= lo <= 65535 or (hi is not None and not lo < hi <= 65535):
        problems.append((key, f"must be {allowed} (low below high), got {raw!r}"))
        return None
    return PortRange(lo, hi)
