"""The address plan of the VNet that `database: azure` declares.

AKS runs the cluster with Azure CNI overlay (components/azure/platform.py,
network_profile()), which sets neither podCidr nor serviceCidr, so AKS's
defaults hold: pods from 10.244.0.0/16 and Services from 10.0.0.0/16, the
DNS Service at 10.0.0.10 (learn.microsoft.com/azure/aks/azure-cni-overlay,
"--pod-cidr ... default 10.244.0.0/16"; learn.microsoft.com/azure/aks/
configure-azure-cni, serviceCidr 10.0.0.0/16 by default). The VNet must
overlap neither (AKS refuses a service CIDR that overlaps a subnet of the
cluster's VNet), so it takes 10.224.0.0/16: the range AKS itself gives the
VNet it creates when none is named (10.224.0.0/12), which leaves both alone.
"""

from __future__ import annotations

import ipaddress

AKS_POD_CIDR = "10.244.0.0/16"
AKS_SERVICE_CIDR = "10.0.0.0/16"

VNET_CIDR = "10.224.0.0/16"
# Node pools: with the overlay only nodes take VNet addresses (pods come from
# the pod CIDR), so 4,096 addresses is room for far more nodes than a plan has.
NODE_SUBNET_CIDR = "10.224.0.0/20"
# Delegated to Microsoft.DBforPostgreSQL/flexibleServers: the server (and its
# HA standby) take private addresses here; nothing else may use the subnet.
DATABASE_SUBNET_CIDR = "10.224.16.0/24"
POSTGRES_DELEGATION = "Microsoft.DBforPostgreSQL/flexibleServers"
# A flexible server in a VNet resolves through a private DNS zone whose name
# ends in .postgres.database.azure.com (learn.microsoft.com/azure/postgresql/
# flexible-server/concepts-networking-private, "Using a private DNS zone").
PRIVATE_DNS_SUFFIX = "private.postgres.database.azure.com"


def private_dns_zone_name(stack: str) -> str:
    return f"airflow-{stack}.{PRIVATE_DNS_SUFFIX}"


def overlaps(a: str, b: str) -> bool:
    return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))
