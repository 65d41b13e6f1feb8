"""`database: azure`: the flexible server sized from the plan, its private network, and the
refusal to move a deployed stack's database (issue 24). Everything under Pulumi mocks."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from components.azure.platform import NETWORK_CONTRIBUTOR_ROLE, network_profile
from components.model import capacity, vnet
from components.model import database_server as pg
from components.model.capacity import DatabaseServerPlan
from components.model.settings import ConfigError
from tests.conftest import config_for
from tests.harness import CLUSTER_PRINCIPAL_ID, ProgramRun, is_secret, plain, shared_run, stack_file_config
from tests.preview import forces_replacement

SERVER = "azure-native:dbforpostgresql:Server"
CONFIGURATION = "azure-native:dbforpostgresql:Configuration"
SUBNET = "azure-native:network:Subnet"
CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
ROLE = "azure-native:authorization:RoleAssignment"


def azure_config(**changes: Any) -> dict[str, Any]:
    config = stack_file_config("prod")
    config["airflow-aks:database"] = "azure"
    config.update({f"airflow-aks:{k}": v for k, v in changes.items()})
    return config


def server_plan(stack: str = "prod", **changes: Any) -> DatabaseServerPlan:
    plan = config_for(stack, database="azure", **changes).plan.database_server
    assert plan is not None
    return plan


@pytest.fixture(scope="module")
def azure() -> ProgramRun:
    run = shared_run("prod", azure_config())
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def in_cluster() -> ProgramRun:
    run = shared_run("prod")
    assert run.error is None, run.error
    return run


# --- The size, from the plan ---------------------------------------------------

def test_the_sku_table_follows_azure_s_own_rules() -> None:
    for sku in pg.SERVER_SKUS.values():
        # concepts-limits: user connections are max_connections less Azure's 15.
        assert sku.user_connections == sku.max_connections - 15
        if sku.tier == pg.GENERAL_PURPOSE:
            # Ddsv5: 4 GiB per vCore, priced per vCore, every vCore sustained.
            assert sku.memory_gib == 4 * sku.vcores, sku.name
            assert sku.price_per_hour == pytest.approx(0.089 * sku.vcores), sku.name
            assert sku.sustained_millicores == 1000 * sku.vcores, sku.name
        else:
            # The B-series baseline is below its vCores: a burst is borrowed.
            assert sku.sustained_millicores < 1000 * sku.vcores, sku.name
            # Priced like B1ms (0.017 USD an hour for 2 GiB), per GiB of memory.
            assert sku.price_per_hour == pytest.approx(0.017 * sku.memory_gib / 2), sku.name


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_the_server_is_the_cheapest_size_that_carries_the_plan(stack: str) -> None:
    config = config_for(stack, database="azure")
    plan, server = config.plan, config.plan.database_server
    assert server is not None
    postgres = plan.control_plane.postgres
    needs = (plan.database.max_connections + 15, postgres.memory_limit_mib, postgres.cpu_limit_millicores, False)
    chosen = pg.SERVER_SKUS[server.sku]
    assert pg.sku_shortfalls(chosen, *needs) == []
    # Every cheaper size falls short on something the plan needs.
    for sku in pg.SERVER_SKUS.values():
        if sku.price_per_hour < chosen.price_per_hour:
            assert pg.sku_shortfalls(sku, *needs), f"{sku.name} is cheaper and would do"
    # Its user connections hold every server connection the plan counts
    # (PgBouncer's pools twice, the migration Job, KEDA) and the superuser reserve.
    assert server.max_connections <= chosen.max_connections
    assert server.max_connections - pg.AZURE_RESERVED_CONNECTIONS == plan.database.max_connections
    assert plan.database.max_connections >= plan.database.server_connections + capacity.POSTGRES_SUPERUSER_RESERVED


def test_a_burstable_size_only_where_its_baseline_sustains_the_plan_s_postgres() -> None:
    # A B-series server out of CPU credits runs at its baseline: the plan's
    # PostgreSQL CPU limit (what the in-cluster pod may use) must fit under it.
    for stack in ("prod", "dev"):
        server = server_plan(stack)
        cpu = config_for(stack).plan.control_plane.postgres.cpu_limit_millicores
        assert pg.SERVER_SKUS[server.sku].sustained_millicores >= cpu, stack
    # With high availability only General Purpose sizes are offered.
    assert server_plan("prod", databaseHighAvailability=True).tier == pg.GENERAL_PURPOSE


def test_the_server_parameters_are_the_plan_s() -> None:
    server = server_plan()
    assert server.parameters == {"max_connections": str(server.max_connections), "require_secure_transport": "on"}


def test_high_availability_needs_general_purpose_and_bills_a_standby() -> None:
    plain_dev, ha_dev = server_plan("dev"), server_plan("dev", databaseHighAvailability=True)
    assert ha_dev.tier == pg.GENERAL_PURPOSE and ha_dev.high_availability
    assert ha_dev.price_per_hour == pytest.approx(2 * (ha_dev.compute_price_per_hour + ha_dev.storage_price_per_hour))
    assert plain_dev.price_per_hour == pytest.approx(plain_dev.compute_price_per_hour
                                                     + plain_dev.storage_price_per_hour)


@pytest.mark.parametrize(("wanted", "offered"), [(1, 32), (32, 32), (33, 64), (40, 64), (500, 512), (16384, 16384)])
def test_storage_is_rounded_up_to_a_size_azure_offers(wanted: int, offered: int) -> None:
    assert pg.storage_gib(wanted) == offered
    assert server_plan(postgresStorageGiB=wanted).storage_gib == offered


@pytest.mark.parametrize(("image", "version"), [("postgres:17", "17"), ("postgres:16.4", "16"),
                                                ("postgres:15-alpine", "15"), ("postgres:latest", "17"),
                                                ("registry.example/mirror/postgres:14.9", "14")])
def test_the_version_is_the_in_cluster_image_s_major(image: str, version: str) -> None:
    # A stack's image names its digest (settings.py, _check_pinned_image).
    assert server_plan(postgresImage=f"{image}@sha256:{'a' * 64}").version == version


def test_a_major_azure_does_not_offer_is_refused() -> None:
    with pytest.raises(ConfigError, match="postgresImage"):
        config_for("prod", database="azure", postgresImage="postgres:12@sha256:" + "a" * 64)


def test_a_hand_picked_sku_is_kept_and_one_too_small_is_refused() -> None:
    assert server_plan(databaseSku="Standard_D4ds_v5").sku == "Standard_D4ds_v5"
    assert server_plan(databaseSku="Standard_D4ds_v5").sku_set
    with pytest.raises(ConfigError, match=r"airflow-aks:databaseSku: Standard_B1ms .*max_connections is 50"):
        config_for("prod", database="azure", databaseSku="Standard_B1ms")
    with pytest.raises(ConfigError, match="airflow-aks:databaseHighAvailability: Standard_B2ms"):
        config_for("dev", database="azure", databaseSku="Standard_B2ms", databaseHighAvailability=True)
    with pytest.raises(ConfigError, match="airflow-aks:databaseSku: unknown flexible server SKU"):
        config_for("prod", database="azure", databaseSku="Standard_E4s_v3")


@pytest.mark.parametrize("key", ["databaseHighAvailability", "databaseGeoRedundantBackup"])
def test_the_server_s_keys_are_refused_with_the_in_cluster_database(key: str) -> None:
    with pytest.raises(ConfigError, match=f"airflow-aks:{key}: only applies with `database: azure`"):
        config_for("prod", **{key: True})
    with pytest.raises(ConfigError, match=f"airflow-aks:{key}: must be true or false"):
        config_for("prod", database="azure", **{key: "yes"})


def test_the_server_costs_show_in_the_plan_before_and_after() -> None:
    before, after = config_for("prod").plan, config_for("prod", database="azure").plan
    server = after.database_server
    assert before.database_server is None and server is not None
    nodes = [sum(f.cost(getattr(f, n)) for f in after.footprint) for n in ("idle_nodes", "peak_nodes")]
    for line, usd in zip(after.footprint_lines(), nodes, strict=True):
        assert f"{usd:.2f} + database server {server.price_per_hour:.2f} = " \
               f"{usd + server.price_per_hour:.2f} USD per hour" in line
    assert "database server" not in "\n".join(before.footprint_lines())
    assert f"{server.price_per_hour:.2f} USD per hour" in after.summary()
    busy = 20.0
    assert capacity.reference_day(after, busy).usd == pytest.approx(
        capacity.reference_day(before, busy).usd + 24 * server.price_per_hour, abs=0.01)
    assert after.to_output()["database_server"]["sku"] == server.sku
    assert "database_server" not in before.to_output(), "an in-cluster stack's capacityPlan output is unchanged"


def test_the_postgres_pod_leaves_the_system_pool_with_azure() -> None:
    before, after = config_for("prod").plan.control_plane, config_for("prod", database="azure").plan.control_plane
    # With it goes the in-cluster database's backup pod (tests/test_backups.py).
    backup = before.pods["database-backup"]
    assert "database-backup" not in after.pods
    assert before.memory_request_mib - after.memory_request_mib == (before.postgres.memory_request_mib
                                                                    + backup.memory_request_mib)
    assert before.cpu_request_millicores - after.cpu_request_millicores == (before.postgres.cpu_request_millicores
                                                                            + backup.cpu_request_millicores)


# --- The network -------------------------------------------------------------

def test_the_address_plan_leaves_the_aks_overlay_ranges_alone() -> None:
    # network_profile() sets no podCidr or serviceCidr, so AKS's defaults hold.
    assert not {"pod_cidr", "service_cidr", "pod_cidrs", "service_cidrs"} & set(network_profile())
    whole = ipaddress.ip_network(vnet.VNET_CIDR)
    for subnet in (vnet.NODE_SUBNET_CIDR, vnet.DATABASE_SUBNET_CIDR):
        assert ipaddress.ip_network(subnet).subnet_of(whole)  # type: ignore[arg-type]
    assert not vnet.overlaps(vnet.NODE_SUBNET_CIDR, vnet.DATABASE_SUBNET_CIDR)
    for aks in (vnet.AKS_POD_CIDR, vnet.AKS_SERVICE_CIDR):
        assert not vnet.overlaps(vnet.VNET_CIDR, aks), aks


def test_the_server_has_no_public_endpoint_and_sits_in_its_delegated_subnet(azure: ProgramRun) -> None:
    server = plain(azure.one(SERVER).inputs)
    assert server["network"]["publicNetworkAccess"] == "Disabled"
    [database] = [s for s in azure.of_type(SUBNET) if s.inputs.get("delegations")]
    assert database.inputs["addressPrefix"] == vnet.DATABASE_SUBNET_CIDR
    assert [d["serviceName"] for d in database.inputs["delegations"]] == ["Microsoft.DBforPostgreSQL/flexibleServers"]
    assert server["network"]["delegatedSubnetResourceId"].endswith(f"/subnets/{database.name}0001")
    zone = azure.one("azure-native:privatedns:PrivateZone").inputs
    assert zone["privateZoneName"] == "airflow-prod.private.postgres.database.azure.com"
    assert zone["location"] == "global"
    assert server["network"]["privateDnsZoneArmResourceId"].endswith(f"/privateDnsZones/{zone['privateZoneName']}")
    link = azure.one("azure-native:privatedns:VirtualNetworkLink")
    assert link.inputs["privateZoneName"] == zone["privateZoneName"]
    assert link.inputs["virtualNetwork"]["id"].endswith("/virtualNetworks/airflow-network-vnet0001")
    # Azure resolves the server's name in the VNet only once the zone is linked.
    assert link.name in azure.options_of("airflow-db-server").waits_for()


def test_the_server_is_sized_backed_up_and_protected_as_planned(azure: ProgramRun) -> None:
    plan = config_for("prod", database="azure").plan.database_server
    assert plan is not None
    server = plain(azure.one(SERVER).inputs)
    assert server["sku"] == {"name": plan.sku, "tier": plan.tier}
    assert server["version"] == plan.version
    assert server["storage"] == {"storageSizeGB": plan.storage_gib, "autoGrow": "Enabled"}
    assert server["backup"] == {"backupRetentionDays": 14, "geoRedundantBackup": "Disabled"}
    assert server["highAvailability"] == {"mode": "Disabled"}
    assert server["maintenanceWindow"]["customWindow"] == "Enabled"
    assert server["authConfig"] == {"passwordAuth": "Enabled", "activeDirectoryAuth": "Disabled"}
    assert azure.options_of("airflow-db-server").protect, "prod's protect guards the server"
    assert plain(azure.one("azure-native:dbforpostgresql:Database").inputs)["databaseName"] == "airflow"


def test_tls_and_max_connections_are_server_parameters(azure: ProgramRun) -> None:
    plan = config_for("prod", database="azure").plan
    params = {r.inputs["configurationName"]: r.inputs["value"] for r in azure.of_type(CONFIGURATION)}
    assert params == {"max_connections": str(plan.database.max_connections + 15), "require_secure_transport": "on"}
    assert all(r.inputs["source"] == "user-override" for r in azure.of_type(CONFIGURATION))


def test_backup_keys_and_high_availability_reach_the_server() -> None:
    run = shared_run("prod", azure_config(databaseBackupRetentionDays=35, databaseGeoRedundantBackup=True,
                                           databaseHighAvailability=True))
    assert run.error is None, run.error
    server = plain(run.one(SERVER).inputs)
    assert server["backup"] == {"backupRetentionDays": 35, "geoRedundantBackup": "Enabled"}
    assert server["highAvailability"] == {"mode": "ZoneRedundant"}
    assert server["sku"]["tier"] == "GeneralPurpose"


def test_the_admin_password_is_a_secret_and_never_in_plain_sight(azure: ProgramRun) -> None:
    server = azure.one(SERVER).inputs
    assert is_secret(server["administratorLoginPassword"])
    password = plain(server["administratorLoginPassword"])
    assert password in azure.generated and len(password) == 32
    plain_outputs = {k: v for k, v in azure.outputs.items() if k not in azure.secret_outputs}
    assert password not in repr(plain_outputs)
    for m in azure.manifests():
        if m["kind"] == "ConfigMap":
            assert password not in repr(m.get("data")), m["metadata"]["name"]
    assert azure.outputs["database"] == "azure"
    assert azure.outputs["databaseHost"] == "airflow-db-server0001.postgres.database.azure.com"
    assert azure.outputs["databaseServerName"] == "airflow-db-server0001"


def test_the_pools_join_the_vnet_only_with_azure(azure: ProgramRun, in_cluster: ProgramRun) -> None:
    [nodes] = [s for s in azure.of_type(SUBNET) if not s.inputs.get("delegations")]
    assert nodes.inputs["addressPrefix"] == vnet.NODE_SUBNET_CIDR
    subnet_id = f"/subnets/{nodes.name}0001"
    [system] = azure.one(CLUSTER).inputs["agentPoolProfiles"]
    assert system["vnetSubnetID"].endswith(subnet_id)
    assert all(p.inputs["vnetSubnetID"].endswith(subnet_id) for p in azure.of_type(AGENT_POOL))
    # The cluster identity acts on the subnet (scale-outs join NICs to it):
    # Network Contributor there, and the worker pool waits for the grant.
    [grant] = [r for r in azure.of_type(ROLE) if r.inputs["scope"].endswith(subnet_id)]
    assert grant.inputs["principalId"] == CLUSTER_PRINCIPAL_ID
    assert grant.inputs["roleDefinitionId"].endswith(f"/roleDefinitions/{NETWORK_CONTRIBUTOR_ROLE}")
    assert all(grant.name in azure.options_of(p.name).waits_for() for p in azure.of_type(AGENT_POOL))
    assert not [r for r in in_cluster.of_type(ROLE) if "/subnets/" in r.inputs["scope"]]
    # An in-cluster stack declares what every earlier release did: no VNet, no subnet on a pool.
    assert "vnetSubnetID" not in repr(plain(in_cluster.one(CLUSTER).inputs))
    assert all("vnetSubnetID" not in p.inputs for p in in_cluster.of_type(AGENT_POOL))
    assert not in_cluster.of_type(SUBNET) and not in_cluster.of_type(SERVER)
    assert in_cluster.outputs["database"] == "in-cluster"
    assert "databaseHost" not in in_cluster.outputs


def test_the_provider_would_not_replace_a_pool_for_its_subnet() -> None:
    # pulumi-azure-native provider/pkg/gen/replacement.go lists only
    # gpuInstanceProfile, vmSize and nodePublicIPTags for AgentPool: a new
    # vnetSubnetID would preview as an update, which AKS rejects (a pool's
    # subnet is set when it is created; a cluster cannot change VNet). So the
    # program refuses the change itself (next tests).
    assert not forces_replacement(AGENT_POOL, ["vnetSubnetID"])
    assert forces_replacement(AGENT_POOL, ["vmSize"])


# --- Moving a deployed stack's database is refused -------------------------------

DEPLOYED_BEFORE_THE_KEY = {"airflowVersion": "3.3.2",
                           "image": "airflowacr0001.azurecr.io/airflow:3.3.2@sha256:" + "0" * 64}


def test_a_stack_deployed_in_cluster_is_refused_the_move_to_azure() -> None:
    run = shared_run("prod", azure_config(), preview=True, previous_outputs=DEPLOYED_BEFORE_THE_KEY)
    assert run.error is not None
    message = str(run.error)
    assert "airflow-aks:database: this stack's metadata database is in-cluster" in message
    assert "join a VNet" in message and "pg_dump" in message and "pg_restore" in message
    # The cluster (and with it every pool and Kubernetes object) waits for the check.
    assert not run.of_type(CLUSTER) and not run.of_type(AGENT_POOL) and not run.manifests()


def test_a_stack_deployed_with_azure_is_refused_the_move_back() -> None:
    previous = {**DEPLOYED_BEFORE_THE_KEY, "database": "azure"}
    run = shared_run("prod", preview=True, previous_outputs=previous)
    assert run.error is not None
    assert "airflow-aks:database: this stack's metadata database is azure" in str(run.error)
    assert "new, empty in-cluster PostgreSQL" in str(run.error)


@pytest.mark.parametrize(("previous", "database"), [
    (None, "azure"),  # a first deployment
    ({**DEPLOYED_BEFORE_THE_KEY, "database": "azure"}, "azure"),
    (DEPLOYED_BEFORE_THE_KEY, "in-cluster"),
    ({**DEPLOYED_BEFORE_THE_KEY, "database": "in-cluster"}, "in-cluster"),
])
def test_a_first_deployment_or_an_unchanged_database_goes_ahead(previous: dict[str, Any] | None,
                                                              database: str) -> None:
    config = azure_config() if database == "azure" else stack_file_config("prod")
    run = shared_run("prod", config, preview=True, previous_outputs=previous)
    assert run.error is None, run.error
    assert run.of_type(CLUSTER)


# --- docs/architecture.md --------------------------------------------------------

def _readme_blocks() -> list[list[str]]:
    section = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text().split(
        "## Azure Database for PostgreSQL\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip("\n").splitlines() for block in section.split("```\n")[1::2]]


def test_the_readme_shows_prod_s_plan_with_the_server() -> None:
    plain_, ha = _readme_blocks()
    assert plain_ and ha
    for lines, changes in ((plain_, {}), (ha, {"databaseHighAvailability": True})):
        summary = config_for("prod", database="azure", **changes).plan.summary().splitlines()
        assert all(line in summary for line in lines), lines
    before = config_for("prod").plan
    section = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text().split(
        "## Azure Database for PostgreSQL\n", 1)[1].split("\n## ", 1)[0]
    idle, peak = (sum(f.cost(getattr(f, n)) for f in before.footprint) for n in ("idle_nodes", "peak_nodes"))
    postgres = before.control_plane.postgres
    assert (f"were {idle:.2f} and {peak:.2f}\nUSD per hour, and the PostgreSQL pod's {postgres.memory_request_mib} "
            f"MiB and {postgres.cpu_request_millicores}m") in section
