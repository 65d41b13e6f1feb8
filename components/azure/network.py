"""The VNet `database: azure` needs: the cluster's pools and the flexible server on private addresses.

Private access (VNet integration) rather than a private endpoint: the
server gets an address in a subnet delegated to it, resolved through a
private DNS zone linked to the VNet, with no public endpoint and no
private-endpoint resources. The cost is day 2: AKS takes a pool's
vnetSubnetID only when the pool is created, so a cluster made without this
VNet can never move into it (components/model/database_move.py refuses the
change of `database` on a deployed stack).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import network, privatedns

from components.model import vnet


class DatabaseNetwork(pulumi.ComponentResource):
    """VNet, node subnet, delegated server subnet, private DNS zone and its VNet link."""

    node_subnet_id: pulumi.Output[str]
    database_subnet_id: pulumi.Output[str]
    private_dns_zone_id: pulumi.Output[str]
    # The zone's link to the VNet: the server is created after it (Azure
    # resolves the server's name in the VNet only through a linked zone).
    dns_link: privatedns.VirtualNetworkLink

    def __init__(self, name: str, stack: str, resource_group_name: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:network:DatabaseNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vnet_ = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=resource_group_name,
            address_space={"address_prefixes": [vnet.VNET_CIDR]},
            opts=child,
        )
        # Subnets as resources of their own: pulumi-azure-native leaves the
        # subnets of a VirtualNetwork that declares none as they are.
        nodes = network.Subnet(
            f"{name}-nodes",
            resource_group_name=resource_group_name,
            virtual_network_name=vnet_.name,
            address_prefix=vnet.NODE_SUBNET_CIDR,
            opts=child,
        )
        database = network.Subnet(
            f"{name}-database",
            resource_group_name=resource_group_name,
            virtual_network_name=vnet_.name,
            address_prefix=vnet.DATABASE_SUBNET_CIDR,
            delegations=[{"name": "postgres-flexible-server", "service_name": vnet.POSTGRES_DELEGATION}],
            # One subnet at a time: Azure refuses concurrent changes to a VNet's subnets.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]),
        )
        # Private DNS zones and their links are global resources.
        zone = privatedns.PrivateZone(
            f"{name}-dns",
            resource_group_name=resource_group_name,
            private_zone_name=vnet.private_dns_zone_name(stack),
            location="global",
            opts=child,
        )
        link = privatedns.VirtualNetworkLink(
            f"{name}-dns-link",
            resource_group_name=resource_group_name,
            private_zone_name=zone.name,
            location="global",
            virtual_network={"id": vnet_.id},
            # The server's record is written by Azure, not by VM auto-registration.
            registration_enabled=False,
            opts=child,
        )
        self.node_subnet_id = nodes.id
        self.database_subnet_id = database.id
        self.private_dns_zone_id = zone.id
        self.dns_link = link
        self.register_outputs({"node_subnet_id": self.node_subnet_id,
                               "database_subnet_id": self.database_subnet_id,
                               "private_dns_zone_id": self.private_dns_zone_id})
