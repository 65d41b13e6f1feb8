"""The Azure side of the UI's TLS certificate from Key Vault (`ui.tls.keyVaultCertificate`).

For a Gateway listener that carries the TLS options
`kubernetes.azure.com/tls-cert-keyvault-uri` and
`kubernetes.azure.com/tls-cert-service-account`, the application routing
operator syncs the certificate into a kubernetes.io/tls Secret through the
Secrets Store CSI Driver, authenticating as that ServiceAccount with workload
identity (MicrosoftDocs/azure-aks-docs articles/aks/app-routing-gateway-api-dns-tls.md,
"TLS integration" and "Create the user-assigned managed identity"). This is
the identity behind the ServiceAccount: its federation with that one
ServiceAccount, and read access to that one certificate. The ServiceAccount
and the Gateway are the Kubernetes side's.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization

from components.azure.key_vault import SECRETS_USER_ROLE
from components.azure.task_log_storage import federated_identity, service_account_subject
from components.model import names
from components.model.settings import Settings
from components.model.ui import certificate_uri


def tls_service_account_subject(namespace: str) -> str:
    """The `sub` of the TLS ServiceAccount's tokens, for the Airflow namespace `namespace`."""
    return service_account_subject(names.ui_gateway_namespace(namespace), names.UI_TLS_SERVICE_ACCOUNT)


def certificate_secret_scope(vault_id: str, certificate: str) -> str:
    """The role assignment scope of one certificate's private key and chain.

    Key Vault keeps a certificate's key and chain as the secret of the same
    name, and the operator's SecretProviderClass reads exactly that: one
    object of type `secret` named after the certificate
    (Azure/aks-app-routing-operator pkg/controller/keyvault/spc/reconcile.go,
    buildSpc). Key Vault RBAC takes a single secret as a scope, so the
    identity reads this secret and nothing else in the vault, which also
    holds Airflow's connections.
    """
    return f"{vault_id.rstrip('/')}/secrets/{certificate}"


class UiGatewayIdentity(pulumi.ComponentResource):
    """A user-assigned identity, federated with the gateway's TLS ServiceAccount,
    with Key Vault Secrets User on the UI certificate's secret alone."""

    # For the ServiceAccount's azure.workload.identity/client-id annotation.
    client_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    # The listener's kubernetes.azure.com/tls-cert-keyvault-uri.
    certificate_uri: pulumi.Output[str]
    # What the operator needs before it can read the certificate: the role and the federation.
    grants: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        settings: Settings,
        resource_group_name: pulumi.Input[str],
        location: pulumi.Input[str],
        oidc_issuer_url: pulumi.Input[str],
        vault_id: pulumi.Input[str],
        vault_uri: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        certificate = settings.ui.tls_key_vault_certificate
        if certificate is None:
            raise ValueError("UiGatewayIdentity needs ui.tls.keyVaultCertificate")
        super().__init__("airflow-aks:azure:UiGatewayIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        client = authorization.get_client_config_output()

        scope = pulumi.Output.from_input(vault_id).apply(lambda v: certificate_secret_scope(v, certificate))
        identity, role, federation = federated_identity(
            name, "secrets-user", SECRETS_USER_ROLE, scope, tls_service_account_subject(settings.namespace),
            resource_group_name, location, oidc_issuer_url, client, child)
        self.grants = [role, federation]
        self.client_id = identity.client_id
        self.principal_id = identity.principal_id
        self.certificate_uri = pulumi.Output.from_input(vault_uri).apply(
            lambda uri: certificate_uri(uri, certificate))
        self.register_outputs({
            "client_id": self.client_id,
            "principal_id": self.principal_id,
            "certificate_uri": self.certificate_uri,
        })
