"""Azure Database for PostgreSQL flexible server: Airflow's metadata database with `database: azure`."""

from __future__ import annotations

import pulumi
import pulumi_random as random
from pulumi_azure_native import dbforpostgresql

from components.azure.network import DatabaseNetwork
from components.model import names
from components.model.capacity import DatabaseServerPlan
from components.model.settings import Settings

# Azure's weekly maintenance (patches, minor versions) restarts the server,
# or fails it over to the standby with HA: a custom window puts it at a known
# hour, Sunday 02:00 UTC (day_of_week 0 is Sunday), instead of one Azure picks.
MAINTENANCE_WINDOW = {"custom_window": "Enabled", "day_of_week": 0, "start_hour": 2, "start_minute": 0}
# Azure's password rules for the administrator: 8 to 128 characters from at
# least three of upper case, lower case, digits and symbols. Letters and
# digits only, each at least once: the password goes into connection URLs
# and PgBouncer's userlist without escaping.
PASSWORD_LENGTH = 32


class FlexibleServer(pulumi.ComponentResource):
    """The server in its delegated subnet, its database, its parameters and its admin password."""

    name: pulumi.Output[str]
    # The private FQDN, resolved in the VNet through the linked private DNS zone.
    host: pulumi.Output[str]
    admin_user: str
    # A Pulumi secret.
    password: pulumi.Output[str]

    def __init__(self, name: str, settings: Settings, plan: DatabaseServerPlan,
                 resource_group_name: pulumi.Input[str], network: DatabaseNetwork,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("airflow-aks:database:FlexibleServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The server holds the data: `protect` guards it as it guards the cluster.
        guarded = pulumi.ResourceOptions(parent=self, protect=settings.protect)
        # A secret in the state and in every input it reaches, whatever the
        # provider's schema marks.
        password = pulumi.Output.secret(random.RandomPassword(
            f"{name}-admin", length=PASSWORD_LENGTH, special=False, min_upper=1, min_lower=1, min_numeric=1,
            opts=child).result)
        server = dbforpostgresql.Server(
            f"{name}-server",
            resource_group_name=resource_group_name,
            version=plan.version,
            sku={"name": plan.sku, "tier": plan.tier},
            storage={"storage_size_gb": plan.storage_gib, "auto_grow": dbforpostgresql.StorageAutoGrow.ENABLED},
            administrator_login=names.POSTGRES_USER,
            administrator_login_password=password,
            # Password authentication only: PgBouncer cannot fetch Entra tokens.
            auth_config={"password_auth": dbforpostgresql.PasswordBasedAuth.ENABLED,
                         "active_directory_auth": dbforpostgresql.MicrosoftEntraAuth.DISABLED},
            network={
                "delegated_subnet_resource_id": network.database_subnet_id,
                "private_dns_zone_arm_resource_id": network.private_dns_zone_id,
                "public_network_access": dbforpostgresql.ServerPublicNetworkAccessState.DISABLED,
            },
            backup={
                "backup_retention_days": plan.backup_retention_days,
                "geo_redundant_backup": (dbforpostgresql.GeographicallyRedundantBackup.ENABLED
                                         if plan.geo_redundant_backup
                                         else dbforpostgresql.GeographicallyRedundantBackup.DISABLED),
            },
            high_availability={"mode": (dbforpostgresql.PostgreSqlFlexibleServerHighAvailabilityMode.ZONE_REDUNDANT
                                        if plan.high_availability
                                        else dbforpostgresql.PostgreSqlFlexibleServerHighAvailabilityMode.DISABLED)},
            maintenance_window=MAINTENANCE_WINDOW,
            opts=pulumi.ResourceOptions.merge(guarded, pulumi.ResourceOptions(depends_on=[network.dns_link])),
        )
        # The database Airflow uses; a new server has only `postgres`.
        database = dbforpostgresql.Database(
            f"{name}-airflow",
            resource_group_name=resource_group_name,
            server_name=server.name,
            database_name=names.POSTGRES_DB,
            charset="UTF8",
            collation="en_US.utf8",
            opts=guarded,
        )
        previous: list[pulumi.Resource] = []
        parameters: list[pulumi.Resource] = []
        for parameter, value in plan.parameters.items():
            # Azure applies one parameter change at a time per server.
            config = dbforpostgresql.Configuration(
                f"{name}-{parameter.replace('_', '-')}",
                resource_group_name=resource_group_name,
                server_name=server.name,
                configuration_name=parameter,
                value=value,
                source="user-override",
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
            )
            previous = [config]
            parameters.append(config)
        # What the database's clients wait for: the `airflow` database, and the
        # parameters (max_connections) the plan counts on.
        self.ready: list[pulumi.Resource] = [database, *parameters]
        self.name = server.name
        self.host = server.fully_qualified_domain_name
        self.admin_user = names.POSTGRES_USER
        self.password = password
        self.register_outputs({"name": self.name, "host": self.host})
