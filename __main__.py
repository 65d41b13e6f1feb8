"""airflow-aks: Apache Airflow 3 with the CeleryExecutor on AKS, sized from stack config."""

import dataclasses

import pulumi

from components import __version__
from components.azure.database import FlexibleServer
from components.azure.image import AirflowImage
from components.azure.key_vault import PURGE_PROTECTION_OUTPUT, SecretsVault
from components.azure.platform import GATEWAY_API_UPDATE_FLAGS, Platform
from components.azure.task_log_storage import TaskLogStorage
from components.azure.ui_gateway import UiGatewayIdentity
from components.config import read_stack_config
from components.history import last_outputs
from components.kubernetes import k8s
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.task_logs import TaskLogStore
from components.kubernetes.workloads import Workloads, port_forward_command
from components.model import vnet
from components.model.names import ADMIN_USER
from components.model.ui_auth import federated_credential
from components.model.upgrades import checked_airflow_version, checked_database

stack = pulumi.get_stack()
config = read_stack_config()
settings = config.settings

# `database` cannot change on a deployed stack (refused at preview, with the
# steps): the cluster, and with it every pool and Kubernetes object, waits for
# this check, as every Airflow pod does.
database_checked = last_outputs().apply(lambda outputs: checked_database(outputs, settings.database))
external_database: ExternalDatabase | None = None

if settings.target == "aks":
    platform = Platform("airflow", settings=settings, plan=config.plan, dns_prefix=f"airflow-{stack}",
                        gate=database_checked)
    if settings.database == "azure":
        assert platform.network is not None and config.plan.database_server is not None
        server = FlexibleServer("airflow-db", settings=settings, plan=config.plan.database_server,
                                resource_group_name=platform.resource_group_name, network=platform.network)
        external_database = ExternalDatabase(host=server.host, admin_user=server.admin_user,
                                             password=server.password, cidr=vnet.DATABASE_SUBNET_CIDR,
                                             ready=server.ready)
        pulumi.export("databaseServerName", server.name)
        pulumi.export("databaseHost", server.host)
    image = AirflowImage(
        "airflow-image",
        airflow_version=settings.airflow_version,
        registry_login_server=platform.registry_login_server,
    )
    provider = platform.provider
    # Pods pull the image with the kubelet identity: the push and AcrPull come first.
    image_dependencies: list[pulumi.Resource] = [image, platform.acr_pull]
    worker_gate: pulumi.Output[bool] | None = platform.worker_gate
    task_log_store: TaskLogStore | None = None
    ui_tls_client_id: pulumi.Output[str] | None = None
    if settings.remote_task_logs:
        task_logs = TaskLogStorage(
            "airflow-task-logs",
            settings=settings,
            resource_group_name=platform.resource_group_name,
            location=settings.location,
            oidc_issuer_url=platform.oidc_issuer_url,
        )
        task_log_store = task_logs.store
        # The Airflow pods write task logs with the identity: its role and federation first.
        image_dependencies += task_logs.grants
        pulumi.export("taskLogStorageAccount", task_logs.account_name)
        if settings.key_vault:
            # Connections and variables: read with the same identities (the
            # api-server's is the log reader), so the pods wait for their Key
            # Vault roles as for their task-log grants.
            vault = SecretsVault("airflow-kv", settings=settings,
                                 resource_group_name=platform.resource_group_name, location=settings.location,
                                 reader_principal_id=task_logs.identity_principal_id,
                                 api_server_principal_id=task_logs.reader_principal_id,
                                 last_outputs=last_outputs())
            task_log_store = dataclasses.replace(task_logs.store, key_vault_url=vault.uri)
            image_dependencies += vault.grants
            pulumi.export("keyVaultName", vault.name)
            pulumi.export("keyVaultUri", vault.uri)
            pulumi.export(PURGE_PROTECTION_OUTPUT, vault.purge_protection)
            if settings.ui.tls_key_vault_certificate:
                # The gateway reads its certificate with an identity of its own,
                # allowed that one certificate: its role and federation first.
                ui_tls = UiGatewayIdentity("airflow-ui-tls", settings=settings,
                                           resource_group_name=platform.resource_group_name,
                                           location=settings.location, oidc_issuer_url=platform.oidc_issuer_url,
                                           vault_id=vault.vault_id, vault_uri=vault.uri)
                ui_tls_client_id = ui_tls.client_id
                image_dependencies += ui_tls.grants
    pulumi.export("resourceGroupName", platform.resource_group_name)
    pulumi.export("registryLoginServer", platform.registry_login_server)
    pulumi.export("clusterName", platform.cluster_name)
    if settings.ui.gateway:
        # Two cluster settings the pinned Azure provider cannot send (README, "Reach the UI").
        pulumi.export("uiGatewayEnableCommand", pulumi.Output.concat(
            "az aks update --resource-group ", platform.resource_group_name, " --name ", platform.cluster_name,
            " ", GATEWAY_API_UPDATE_FLAGS))
        pulumi.export("uiUrl", settings.ui.url)
    if settings.ui.auth == "entra":
        credential = federated_credential(settings.namespace)
        pulumi.export("uiRedirectUri", settings.ui.redirect_uri)
        pulumi.export("uiFederatedCredential", {"issuer": platform.oidc_issuer_url,
                                                "subject": credential.subject, "audience": credential.audience})
    pulumi.export(
        "getCredentialsCommand",
        pulumi.Output.concat(
            "az aks get-credentials --resource-group ", platform.resource_group_name,
            " --name ", platform.cluster_name,
        ),
    )
else:
    # `target: local`: the current kubeconfig context, the image in the local Docker daemon.
    image = AirflowImage("airflow-image", airflow_version=settings.airflow_version)
    provider = k8s.provider("local-k8s", context=settings.kube_context)
    # A local cluster writes task logs only to an emulator, with no Azure store.
    image_dependencies, worker_gate, task_log_store = [image], None, None
    ui_tls_client_id = None

# Every Airflow pod and the migration Job take the image through the check
# that the database was not migrated by a newer Airflow (refused at preview).
checked = last_outputs().apply(lambda outputs: checked_airflow_version(outputs, settings.airflow_version))
workloads = Workloads(
    "workloads",
    config=config,
    provider=provider,
    image=pulumi.Output.all(image.ref, checked, database_checked).apply(lambda values: values[0]),
    image_dependencies=image_dependencies,
    worker_gate=worker_gate,
    task_log_store=task_log_store,
    external_database=external_database,
    ui_tls_identity_client_id=ui_tls_client_id,
)
if settings.target == "aks":
    # A pool that shrinks waits for the workers it would otherwise interrupt.
    platform.settle_workers(workloads.workers)

pulumi.export("programVersion", __version__)
# Where the metadata database is: the next update's check reads it back.
pulumi.export("database", settings.database)
pulumi.export("capacityPlan", config.plan.to_output())
pulumi.export("capacitySummary", config.plan.summary())
pulumi.export("image", image.ref)
pulumi.export("airflowVersion", workloads.migrated_airflow_version)
pulumi.export("namespace", workloads.namespace)
pulumi.export("portForwardCommand", port_forward_command(workloads.namespace))
pulumi.export("adminUser", ADMIN_USER)
pulumi.export("adminPassword", workloads.admin_password)
