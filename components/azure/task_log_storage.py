"""The Azure side of task logs: a storage account that takes no key, its log
container with a retention rule, the identity that pods use to write there,
and the api-server's, which may only read it.

The pods reach the identity through AKS workload identity: the
FederatedIdentityCredential trusts tokens that the cluster's OIDC issuer signs
for one ServiceAccount, and Entra ID exchanges them for the identity's. The
Kubernetes side (that ServiceAccount, and which pods run as it) is in
components/kubernetes/task_logs.py and components/kubernetes/workloads.py.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization, managedidentity, storage

from components.azure.platform import role_definition_id
from components.kubernetes.task_logs import TaskLogStore
from components.model import dag_bundles, names
from components.model.settings import Settings

# The audience Entra ID expects in a token it exchanges for a managed
# identity's (Azure workload identity's documented default).
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# Azure allows one management policy per account, and it must be named so.
MANAGEMENT_POLICY_NAME = "default"


# Storage Blob Data Contributor, a built-in Azure role.
BLOB_DATA_CONTRIBUTOR_ROLE = "ba92f5b4-2d11-453d-a403-e96b0b4c6fe3"
# Storage Blob Data Reader, a built-in Azure role (read and list blobs).
BLOB_DATA_READER_ROLE = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"


def service_account_subject(namespace: str, account: str = names.TASK_LOG_SERVICE_ACCOUNT) -> str:
    """The `sub` claim of a ServiceAccount's tokens (by default the task-log
    one), which the federated credential must match exactly."""
    return f"system:serviceaccount:{namespace}:{account}"


def retention_rule(retention_days: int) -> dict:
    """A lifecycle rule: delete task-log blobs not modified for retention_days.

    Airflow writes a task's log once, when the attempt ends (WasbTaskHandler
    uploads a block blob), so the modification time is the attempt's end.
    The prefix of a lifecycle filter starts with the container's name.
    """
    return _delete_after("delete-old-task-logs", names.TASK_LOG_CONTAINER, retention_days)


def backup_retention_rule(retention_days: int) -> dict:
    """A lifecycle rule: delete database dumps retention_days after they were
    written (the uploader never rewrites a blob, so creation and last
    modification are the same time). Azure runs the policy once a day, so a
    dump may outlive its retention by up to a day
    (learn.microsoft.com/azure/storage/blobs/lifecycle-management-overview).
    """
    return _delete_after("delete-old-database-backups", names.BACKUP_CONTAINER, retention_days)


def _delete_after(rule: str, container: str, days: int) -> dict:
    """A lifecycle rule deleting a container's block blobs `days` after their last write."""
    return {
        "name": rule,
        "type": storage.RuleType.LIFECYCLE,
        "enabled": True,
        "definition": {
            "filters": {"blob_types": ["blockBlob"], "prefix_match": [f"{container}/"]},
            "actions": {"base_blob": {"delete": {"days_after_modification_greater_than": days}}},
        },
    }


def blob_endpoint_url(endpoint: str | None) -> str:
    """The account URL the Azure provider's WasbHook takes: the blob endpoint,
    which Azure reports with a trailing slash, without it."""
    if not endpoint:
        raise ValueError("Azure returned no blob endpoint for the task-log storage account")
    return endpoint.rstrip("/")


class TaskLogStorage(pulumi.ComponentResource):
    """Storage account (Entra ID only), log container, retention, the
    federated identity allowed on that container alone, and the api-server's
    that may read it; with backups of the
    in-cluster database, their container, its retention rule in the same
    policy (an account has one), and a second identity allowed on it alone."""

    account_name: pulumi.Output[str]
    account_id: pulumi.Output[str]
    container_id: pulumi.Output[str]
    identity_id: pulumi.Output[str]
    identity_principal_id: pulumi.Output[str]
    identity_client_id: pulumi.Output[str]
    # The log reader: the api-server's identity (with keyVault it reads the vault too).
    reader_principal_id: pulumi.Output[str]
    reader_client_id: pulumi.Output[str]
    # What the Kubernetes side needs: account URL, client and tenant IDs.
    store: TaskLogStore
    # What a pod needs before it can write a log: the role and the federation.
    grants: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        settings: Settings,
        resource_group_name: pulumi.Input[str],
        location: pulumi.Input[str],
        oidc_issuer_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:task_log_storage:TaskLogStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The account and its container hold the logs: `protect` keeps a
        # config change from deleting them.
        guarded = pulumi.ResourceOptions(parent=self, protect=settings.protect)

        # Account names are lowercase alphanumeric (3-24 characters), and
        # auto-naming adds a suffix to the logical name: no dash in it.
        account = storage.StorageAccount(
            name.replace("-", ""),
            resource_group_name=resource_group_name,
            location=location,
            kind=storage.Kind.STORAGE_V2,
            sku={"name": storage.SkuName.STANDARD_LRS},
            # Entra ID only: with shared keys off, neither an account key nor
            # a SAS signed with one is accepted, so no key can leak.
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            allow_blob_public_access=False,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            enable_https_traffic_only=True,
            opts=guarded,
        )
        container = storage.BlobContainer(
            f"{name}-container",
            resource_group_name=resource_group_name,
            account_name=account.name,
            container_name=names.TASK_LOG_CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=guarded,
        )
        backups = settings.database == "in-cluster" and settings.database_backup_schedule is not None
        rules = [retention_rule(settings.task_log_retention_days)]
        if backups:
            rules.append(backup_retention_rule(settings.database_backup_retention_days))
        storage.ManagementPolicy(
            f"{name}-retention",
            resource_group_name=resource_group_name,
            account_name=account.name,
            management_policy_name=MANAGEMENT_POLICY_NAME,
            policy={"rules": rules},
            opts=child,
        )

        client = authorization.get_client_config_output()
        identity, role, federation = _container_writer(
            name, container, service_account_subject(settings.namespace), resource_group_name, location,
            oidc_issuer_url, client, child)
        # The api-server shows task logs and never writes one (the Azure
        # provider's WasbRemoteLogIO.read lists an attempt's blobs and downloads
        # them: airflow/providers/microsoft/azure/log/wasb_task_handler.py,
        # provider 15.2.1): its own identity, which may only read the container,
        # so that the writers' never trusts the api-server's account.
        reader, reader_role, reader_federation = federated_identity(
            f"{name}-reader", "blob-reader", BLOB_DATA_READER_ROLE, container.id,
            service_account_subject(settings.namespace, names.API_SERVER_SERVICE_ACCOUNT),
            resource_group_name, location, oidc_issuer_url, client, child)
        self.grants = [role, federation, reader_role, reader_federation]
        self.dag_container_ids = self._dag_containers(name, settings, resource_group_name, account, identity,
                                                      client, guarded, child)
        backup_client_id: pulumi.Output[str] | None = None
        if backups:
            backup_grants, backup_client_id = self._backup_identity(
                name, settings, resource_group_name, location, oidc_issuer_url, account, client, guarded, child)
            self.grants += backup_grants

        self.account_name = account.name
        self.account_id = account.id
        self.container_id = container.id
        self.identity_id = identity.id
        self.identity_principal_id = identity.principal_id
        self.identity_client_id = identity.client_id
        self.reader_principal_id = reader.principal_id
        self.reader_client_id = reader.client_id
        self.store = TaskLogStore(
            account_url=account.primary_endpoints.apply(lambda e: blob_endpoint_url(e.blob)),
            client_id=identity.client_id,
            tenant_id=identity.tenant_id,
            backup_client_id=backup_client_id,
            reader_client_id=reader.client_id,
        )
        self.register_outputs({
            "account_name": self.account_name,
            "account_id": self.account_id,
            "container_id": self.container_id,
            "identity_id": self.identity_id,
            "identity_client_id": self.identity_client_id,
            "account_url": self.store.account_url,
        })

    def _dag_containers(self, name: str, settings: Settings, resource_group_name: pulumi.Input[str],
                        account: storage.StorageAccount, identity: managedidentity.UserAssignedIdentity,
                        client: pulumi.Output, guarded: pulumi.ResourceOptions,
                        child: pulumi.ResourceOptions) -> dict[str, pulumi.Output[str]]:
        """Blob DAG bundles (dagBundles): a private container each, and
        Storage Blob Data Reader on that container alone for the Airflow
        pods' identity (the one federated with the task-log ServiceAccount,
        which the dag-processor and the workers run as). New logical names:
        nothing that a deployed stack holds changes."""
        ids: dict[str, pulumi.Output[str]] = {}
        for container_name in dag_bundles.blob_containers(settings):
            container = storage.BlobContainer(
                f"{name}-dags-{container_name}",
                resource_group_name=resource_group_name,
                account_name=account.name,
                container_name=container_name,
                public_access=storage.PublicAccess.NONE,
                opts=guarded,
            )
            reader = authorization.RoleAssignment(
                f"{name}-dags-{container_name}-reader",
                principal_id=identity.principal_id,
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                role_definition_id=role_definition_id(client.subscription_id, BLOB_DATA_READER_ROLE),
                scope=container.id,
                opts=child,
            )
            # A pod that reads a bundle before the role exists fails its parse.
            self.grants.append(reader)
            ids[container_name] = container.id
        return ids

    def _backup_identity(self, name: str, settings: Settings, resource_group_name: pulumi.Input[str],
                         location: pulumi.Input[str], oidc_issuer_url: pulumi.Input[str],
                         account: storage.StorageAccount, client: pulumi.Output,
                         guarded: pulumi.ResourceOptions,
                         child: pulumi.ResourceOptions) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
        """The backup container and the identity the backup pod writes there
        with: its own, so task code running with the log identity can neither
        read the dumps (the whole metadata database) nor delete them."""
        container = storage.BlobContainer(
            f"{name}-backups",
            resource_group_name=resource_group_name,
            account_name=account.name,
            container_name=names.BACKUP_CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=guarded,
        )
        identity, role, federation = _container_writer(
            f"{name}-backup", container, service_account_subject(settings.namespace, names.BACKUP_SERVICE_ACCOUNT),
            resource_group_name, location, oidc_issuer_url, client, child)
        self.backup_container_id = container.id
        self.backup_identity_client_id = identity.client_id
        return [role, federation], identity.client_id


def _container_writer(stem: str, container: storage.BlobContainer, subject: str,
                      resource_group_name: pulumi.Input[str], location: pulumi.Input[str],
                      oidc_issuer_url: pulumi.Input[str], client: pulumi.Output,
                      child: pulumi.ResourceOptions) -> tuple[managedidentity.UserAssignedIdentity,
                                                              authorization.RoleAssignment,
                                                              managedidentity.FederatedIdentityCredential]:
    """An identity that may read and write one container and nothing else the
    account might come to hold, and its federation with one ServiceAccount.

    Names are `<stem>-identity`, `<stem>-blob-contributor`, `<stem>-federation`,
    as deployed stacks hold them. principalId and scope force a replacement of
    the role assignment (pulumi-azure-native provider/pkg/gen/replacement.go,
    RoleAssignment); both stay known in previews, as the identity and the
    container have no input that a config change updates in place.
    """
    return federated_identity(stem, "blob-contributor", BLOB_DATA_CONTRIBUTOR_ROLE, container.id, subject,
                              resource_group_name, location, oidc_issuer_url, client, child)


def federated_identity(stem: str, role_suffix: str, role: str, scope: pulumi.Input[str], subject: str,
                       resource_group_name: pulumi.Input[str], location: pulumi.Input[str],
                       oidc_issuer_url: pulumi.Input[str], client: pulumi.Output,
                       child: pulumi.ResourceOptions) -> tuple[managedidentity.UserAssignedIdentity,
                                                               authorization.RoleAssignment,
                                                               managedidentity.FederatedIdentityCredential]:
    """A user-assigned identity `<stem>-identity` with one role on one scope
    (`<stem>-<role_suffix>`) and its federation with one ServiceAccount
    (`<stem>-federation`, audience api://AzureADTokenExchange)."""
    identity = managedidentity.UserAssignedIdentity(
        f"{stem}-identity",
        resource_group_name=resource_group_name,
        location=location,
        opts=child,
    )
    assignment = authorization.RoleAssignment(
        f"{stem}-{role_suffix}",
        principal_id=identity.principal_id,
        # Without it Azure looks the principal up in Entra ID, which may
        # not have replicated a new identity yet.
        principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
        role_definition_id=role_definition_id(client.subscription_id, role),
        scope=scope,
        opts=child,
    )
    federation = managedidentity.FederatedIdentityCredential(
        f"{stem}-federation",
        resource_group_name=resource_group_name,
        resource_name_=identity.name,
        issuer=oidc_issuer_url,
        subject=subject,
        audiences=[TOKEN_EXCHANGE_AUDIENCE],
        opts=child,
    )
    return identity, assignment, federation
