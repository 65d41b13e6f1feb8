"""The metadata database when it runs outside the cluster (`database: azure`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class ExternalDatabase:
    """An Azure Database for PostgreSQL flexible server, as the pods reach it.

    Declared by components/azure (the server, its network and its admin
    password); the Kubernetes side only connects to it.
    """

    # The server's private FQDN (resolved through the VNet's private DNS zone).
    host: pulumi.Input[str]
    admin_user: str
    # A Pulumi secret.
    password: pulumi.Input[str]
    # The subnet the server's private address is in: NetworkPolicies allow egress to it.
    cidr: str
