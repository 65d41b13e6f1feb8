"""The Azure Key Vault Airflow reads connections and variables from (`keyVault`).

Access is Azure RBAC only: no access policy, and Key Vault Secrets User
scoped to this vault for the Airflow pods' identity (the federated one in
task_log_storage.py) and for the api-server's (the log reader there). Who adds secrets is the team's to grant
(README "Connections and secrets"): Azure gives nobody data-plane access to
an RBAC vault by default, not even the subscription's Owner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi_azure_native import authorization, keyvault

from components.azure.platform import role_definition_id
from components.model.settings import Settings

# Built-in role "Key Vault Secrets User": read secret contents, nothing else
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles/security,
# "Key Vault Secrets User", ID 4633458b-17de-408a-b874-0445c86b69e6).
SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"
# How long a deleted vault and its secrets can be recovered. Azure's default
# and maximum; it is set once, when the vault is made.
SOFT_DELETE_RETENTION_DAYS = 90
# The stack output that says whether the deployed vault has purge protection.
PURGE_PROTECTION_OUTPUT = "keyVaultPurgeProtection"
# Vault names are 3-24 characters, letters, digits and dashes, starting with a
# letter (learn.microsoft.com/azure/azure-resource-manager/management/
# resource-name-rules, Microsoft.KeyVault/vaults), and unique across Azure.
# pulumi-azure-native auto-names the vault from the logical name plus a
# random suffix (as the storage account's), which makes it unique: the logical
# name leaves room for that suffix and carries no dash.
VAULT_NAME_MAX = 24
AUTONAME_SUFFIX = 8
LOGICAL_NAME_MAX = VAULT_NAME_MAX - AUTONAME_SUFFIX - 1


def vault_logical_name(component: str, stack: str) -> str:
    """The vault's logical name: its component's name without dashes (as the
    registry's and the storage account's) and as much of the stack's name
    (letters and digits) as fits, so a vault says which stack it serves."""
    return (component.replace("-", "") + re.sub(r"[^a-z0-9]", "", stack.lower()))[:LOGICAL_NAME_MAX]


def purge_protection(protect: bool, last: Mapping[str, Any] | None) -> bool:
    """Purge protection follows `protect`, and once on it stays on.

    Azure refuses to turn it off: "Enabling this functionality is
    irreversible - that is, the property does not accept false as its value"
    (azure-rest-api-specs, specification/keyvault/resource-manager/
    Microsoft.KeyVault/stable/2023-07-01/keyvault.json, VaultProperties
    enablePurgeProtection). A stack that drops `protect` keeps it on, with a
    warning, instead of an update Azure would reject.
    """
    if protect:
        return True
    if (last or {}).get(PURGE_PROTECTION_OUTPUT) is True:
        pulumi.log.warn("keyVault: the vault keeps purge protection although `protect` is off: Azure does not "
                        "let it be turned off once on. A deleted vault stays recoverable, and its name taken, "
                        f"for {SOFT_DELETE_RETENTION_DAYS} days.")
        return True
    return False


class SecretsVault(pulumi.ComponentResource):
    """The vault and the role assignments that let the Airflow pods read it."""

    name: pulumi.Output[str]
    vault_id: pulumi.Output[str]
    uri: pulumi.Output[str]
    purge_protection: pulumi.Output[bool]
    # What a pod needs before it can read a secret: the role assignment.
    grants: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        settings: Settings,
        resource_group_name: pulumi.Input[str],
        location: pulumi.Input[str],
        reader_principal_id: pulumi.Input[str],
        last_outputs: pulumi.Output[Mapping[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
        api_server_principal_id: pulumi.Input[str] | None = None,
    ) -> None:
        """reader_principal_id: the Airflow pods' identity; api_server_principal_id:
        the api-server's own (the log reader), if it has one."""
        super().__init__("airflow-aks:key_vault:SecretsVault", name, None, opts)
        client = authorization.get_client_config_output()
        protected = last_outputs.apply(lambda last: purge_protection(settings.protect, last))
        vault = keyvault.Vault(
            vault_logical_name(name, settings.stack),
            resource_group_name=resource_group_name,
            location=location,
            properties={
                "tenant_id": client.tenant_id,
                "sku": {"family": keyvault.SkuFamily.A, "name": keyvault.SkuName.STANDARD},
                # Azure RBAC decides every data-plane call; access policies
                # are ignored, and none is declared.
                "enable_rbac_authorization": True,
                "access_policies": [],
                "enable_soft_delete": True,
                "soft_delete_retention_in_days": SOFT_DELETE_RETENTION_DAYS,
                # Only True or absent: Azure takes no False once it was on.
                "enable_purge_protection": protected.apply(lambda on: True if on else None),
            },
            # The team's secrets: `protect` keeps a config change from deleting them.
            opts=pulumi.ResourceOptions(parent=self, protect=settings.protect),
        )
        self.grants = [self._secrets_user(f"{name}-secrets-user", reader_principal_id, vault, client)]
        if api_server_principal_id is not None:
            # The api-server serves the Execution API, whose connection and
            # variable routes look them up on the server, the vault first
            # (components/kubernetes/key_vault.py, VAULT_COMPONENTS): with its
            # own identity, it needs the role as the other readers do.
            self.grants.append(self._secrets_user(f"{name}-api-server-secrets-user", api_server_principal_id,
                                                  vault, client))
        self.name = vault.name
        self.vault_id = vault.id
        self.uri = vault.properties.apply(lambda p: p.vault_uri)  # type: ignore[assignment]
        self.purge_protection = protected
        self.register_outputs({"name": self.name, "id": self.vault_id, "uri": self.uri})

    def _secrets_user(self, name: str, principal_id: pulumi.Input[str], vault: keyvault.Vault,
                      client: pulumi.Output) -> authorization.RoleAssignment:
        """Key Vault Secrets User on this vault for one identity."""
        return authorization.RoleAssignment(
            name,
            principal_id=principal_id,
            # Without it Azure looks the principal up in Entra ID, which may
            # not have replicated a new identity yet.
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(client.subscription_id, SECRETS_USER_ROLE),
            scope=vault.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
