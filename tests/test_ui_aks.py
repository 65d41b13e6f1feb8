"""The Azure side of the UI's gateway (`ui.exposure: gateway`), under Pulumi mocks.

The cluster gets the application routing add-on without its NGINX controller
and, with the certificate in Key Vault, the Key Vault provider for the Secrets
Store CSI Driver; the UI's TLS identity reads that one certificate. The
managed Gateway API CRDs and the app routing Gateway API implementation are
NOT declared: pulumi-azure-native 3.29.0's ManagedCluster (API 2025-09-01)
has neither field (/work/notes/issue27-aks.md); a test below fails once the
SDK carries them.
"""

from __future__ import annotations

import inspect
import json
import runpy
from typing import Any

import pulumi
import pytest
from pulumi_azure_native import containerservice

from components.azure.key_vault import SECRETS_USER_ROLE
from components.azure.platform import GATEWAY_API_UPDATE_FLAGS, KEY_VAULT_SECRETS_PROVIDER
from components.azure.ui_gateway import (
    UiGatewayIdentity,
    certificate_secret_scope,
    certificate_uri,
    tls_service_account_subject,
)
from components.model import names
from tests.conftest import config_for
from tests.harness import (
    OIDC_ISSUER_URL,
    ROOT,
    SUBSCRIPTION,
    TASK_LOG_PRINCIPAL_ID,
    UI_TLS_CLIENT_ID,
    UI_TLS_PRINCIPAL_ID,
    ProgramRun,
    plain,
    run_program,
    shared_run,
    stack_file_config,
)
from tests.preview import AZURE_REPLACE, preview

AKS = "azure-native:containerservice:ManagedCluster"
ROLE = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
VAULT = "azure-native:keyvault:Vault"
COMPONENT = "airflow-aks:azure:UiGatewayIdentity"
CERTIFICATE = "airflow-ui"

UI = {
    "exposure": "gateway",
    "host": "airflow.example.com",
    "tls": {"keyVaultCertificate": CERTIFICATE},
    "allowedSourceRanges": ["203.0.113.0/24"],
    "auth": "entra",
    "entra": {
        "tenantId": "11111111-2222-3333-4444-555555555555",
        "clientId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "roleGroups": {"Admin": ["99999999-8888-7777-6666-555555555555"],
                       "Viewer": ["12345678-1234-1234-1234-123456789abc"]},
    },
}
WITH_SECRET = {**UI, "tls": {"secretName": "airflow-ui-tls"}}


def prod_with(ui: dict[str, Any]) -> dict[str, Any]:
    config = stack_file_config("prod")
    assert config.get("airflow-aks:keyVault") is True, "the prod stack file has keyVault: true"
    config["airflow-aks:ui"] = ui
    return config


def ok(run: ProgramRun) -> ProgramRun:
    assert run.error is None, run.error
    return run


def with_ui_identity() -> None:
    """__main__.py, with test-only exports of what the identity and the vault hold."""
    program = runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
    ui_tls, vault = program["ui_tls"], program["vault"]
    pulumi.export("testUiTlsClientId", ui_tls.client_id)
    pulumi.export("testUiTlsCertificateUri", ui_tls.certificate_uri)
    pulumi.export("testVaultId", vault.vault_id)
    pulumi.export("testVaultUri", vault.uri)


@pytest.fixture(scope="module")
def gateway() -> ProgramRun:
    return ok(run_program("prod", prod_with(UI), program=with_ui_identity))


# --- the cluster ---------------------------------------------------------------------------


def test_a_gateway_enables_app_routing_without_an_nginx_controller(gateway: ProgramRun) -> None:
    cluster = gateway.one(AKS)
    assert plain(cluster.inputs.get("ingressProfile")) == {
        "webAppRouting": {"enabled": True, "nginx": {"defaultIngressControllerType": "None"}},
    }, f"{cluster.name}: ingressProfile"


def test_a_key_vault_certificate_enables_the_secrets_store_provider_with_rotation(gateway: ProgramRun) -> None:
    cluster = gateway.one(AKS)
    assert plain(cluster.inputs.get("addonProfiles")) == {
        KEY_VAULT_SECRETS_PROVIDER: {"enabled": True,
                                     "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"}},
    }, f"{cluster.name}: addonProfiles"
    assert KEY_VAULT_SECRETS_PROVIDER == "azureKeyvaultSecretsProvider", "the add-on key as AKS lists it"


def test_a_certificate_from_a_secret_needs_no_secrets_store_provider() -> None:
    cluster = ok(shared_run("prod", prod_with(WITH_SECRET))).one(AKS)
    assert plain(cluster.inputs.get("ingressProfile", {})).get("webAppRouting", {}).get("enabled") is True, \
        f"{cluster.name}: app routing on with secretName too"
    assert "addonProfiles" not in cluster.inputs, f"{cluster.name}: no add-on without a Key Vault certificate"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_port_forward_declares_neither(runs: dict[str, ProgramRun], stack: str) -> None:
    """The shipped stacks have no ui block (port-forward): their cluster inputs stay as deployed."""
    assert not config_for(stack).settings.ui.gateway, f"{stack}: port-forward"
    cluster = runs[stack].one(AKS)
    for key in ("ingressProfile", "addonProfiles"):
        assert key not in cluster.inputs, f"{stack} {cluster.name}: {key} without a gateway"


def test_nothing_the_sdk_cannot_send_is_declared_and_the_command_is_exported(
        gateway: ProgramRun, runs: dict[str, ProgramRun]) -> None:
    """(a) gatewayAPI and (b) gatewayAPIImplementations are not in the
    installed SDK; the program does not fake them: it exports the one-time
    `az aks update` that turns them on, with the UI's address and sign-in values."""
    cluster = gateway.one(AKS)
    profile = plain(cluster.inputs["ingressProfile"])
    assert "gatewayAPI" not in profile and "gatewayAPIImplementations" not in profile["webAppRouting"], \
        f"{cluster.name}: nothing beyond API 2025-09-01"
    test_only = {k for k in gateway.outputs if k.startswith("test")}
    added = set(gateway.outputs) - test_only - set(runs["prod"].outputs)
    assert added == {"uiGatewayEnableCommand", "uiUrl", "uiRedirectUri", "uiFederatedCredential"}, added
    assert GATEWAY_API_UPDATE_FLAGS == "--enable-gateway-api --enable-app-routing-istio"
    command = gateway.outputs["uiGatewayEnableCommand"]
    assert command.startswith("az aks update --resource-group ") and command.endswith(GATEWAY_API_UPDATE_FLAGS), \
        f"uiGatewayEnableCommand: {command}"


def test_the_installed_sdk_still_lacks_the_gateway_api_fields() -> None:
    """When this fails, pulumi-azure-native's ManagedCluster carries the
    fields: declare gatewayAPI.installation Standard and
    gatewayAPIImplementations.appRoutingIstio.mode Enabled in
    platform.ingress_profile, and drop the one-time `az aks update`."""
    ingress = inspect.signature(containerservice.ManagedClusterIngressProfileArgs).parameters
    routing = inspect.signature(containerservice.ManagedClusterIngressProfileWebAppRoutingArgs).parameters
    assert "web_app_routing" in ingress and "nginx" in routing, "the SDK as read"
    assert "gateway_api" not in ingress, "ManagedClusterIngressProfileArgs now has gateway_api"
    assert "gateway_api_implementations" not in routing, \
        "ManagedClusterIngressProfileWebAppRoutingArgs now has gateway_api_implementations"


# --- the TLS identity ----------------------------------------------------------------------


def test_the_tls_identity_is_one_component_with_its_children(gateway: ProgramRun) -> None:
    [component] = [r for r in gateway.registrations if r.type == COMPONENT]
    for name in ("airflow-ui-tls-identity", "airflow-ui-tls-secrets-user", "airflow-ui-tls-federation"):
        parent = gateway.options_of(name).parent
        assert parent is not None and parent._name == "airflow-ui-tls", f"{name}: parent"  # type: ignore[attr-defined]
        [reg] = [r for r in gateway.registrations if r.name == name]
        assert reg.urn.startswith(component.urn.rsplit("::", 1)[0]), f"{name}: under {component.urn}"
        assert f"{COMPONENT}$" in reg.urn, f"{name}: URN names the component type"
    assert gateway.outputs["testUiTlsClientId"] == UI_TLS_CLIENT_ID, "client_id for the ServiceAccount annotation"


def test_the_tls_identity_is_federated_with_the_gateway_service_account(gateway: ProgramRun) -> None:
    settings = config_for("prod").settings
    [federation] = [r for r in gateway.of_type(FEDERATION) if r.name == "airflow-ui-tls-federation"]
    namespace = f"{settings.namespace}{names.UI_GATEWAY_NAMESPACE_SUFFIX}"
    assert federation.inputs["subject"] == f"system:serviceaccount:{namespace}:airflow-ui-tls", federation.name
    assert federation.inputs["subject"] == tls_service_account_subject(settings.namespace), federation.name
    assert federation.inputs["issuer"] == OIDC_ISSUER_URL, f"{federation.name}: the cluster's issuer"
    assert federation.inputs["audiences"] == ["api://AzureADTokenExchange"], federation.name
    assert federation.inputs["resourceName"].startswith("airflow-ui-tls-identity"), \
        f"{federation.name}: on the UI identity"


def test_the_tls_identity_reads_the_certificate_and_nothing_else(gateway: ProgramRun) -> None:
    vault_id = gateway.outputs["testVaultId"]
    roles = {r.name: r.inputs for r in gateway.of_type(ROLE)}
    mine = roles["airflow-ui-tls-secrets-user"]
    assert mine["scope"] == f"{vault_id}/secrets/{CERTIFICATE}", "airflow-ui-tls-secrets-user: scope"
    assert mine["scope"] != vault_id, "airflow-ui-tls-secrets-user: never the whole vault (Airflow's secrets)"
    assert mine["principalId"] == UI_TLS_PRINCIPAL_ID, "airflow-ui-tls-secrets-user: principal"
    assert mine["principalType"] == "ServicePrincipal", "airflow-ui-tls-secrets-user: principal type"
    assert mine["roleDefinitionId"] == (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                                        f"roleDefinitions/{SECRETS_USER_ROLE}"), "Key Vault Secrets User"
    # The Airflow pods' vault-wide grant is unchanged and not the UI identity's.
    assert roles["airflow-kv-secrets-user"]["scope"] == vault_id
    assert roles["airflow-kv-secrets-user"]["principalId"] == TASK_LOG_PRINCIPAL_ID
    others = [n for n, r in roles.items() if r["principalId"] == UI_TLS_PRINCIPAL_ID]
    assert others == ["airflow-ui-tls-secrets-user"], f"the UI identity's only role: {others}"


def test_the_listener_uri_is_the_unversioned_certificate(gateway: ProgramRun) -> None:
    vault_uri = gateway.outputs["testVaultUri"]
    assert vault_uri.endswith("/"), "the mock reports the vault URI as Azure does"
    assert gateway.outputs["testUiTlsCertificateUri"] == f"{vault_uri}certificates/{CERTIFICATE}"


def test_scope_and_uri_builders_take_azure_slashes() -> None:
    assert certificate_secret_scope("/subscriptions/s/rg/v", "c") == "/subscriptions/s/rg/v/secrets/c"
    assert certificate_secret_scope("/subscriptions/s/rg/v/", "c") == "/subscriptions/s/rg/v/secrets/c"
    assert certificate_uri("https://v.vault.azure.net/", "c") == "https://v.vault.azure.net/certificates/c"
    assert certificate_uri("https://v.vault.azure.net", "c") == "https://v.vault.azure.net/certificates/c"


def test_the_identity_refuses_a_stack_without_a_key_vault_certificate() -> None:
    settings = config_for("prod", ui=WITH_SECRET).settings
    with pytest.raises(ValueError, match="keyVaultCertificate"):
        UiGatewayIdentity("airflow-ui-tls", settings=settings, resource_group_name="rg", location="westeurope",
                          oidc_issuer_url=OIDC_ISSUER_URL, vault_id="v", vault_uri="https://v/")


# --- day 2 ---------------------------------------------------------------------------------


def test_turning_the_gateway_on_for_a_deployed_prod_updates_the_cluster(runs: dict[str, ProgramRun],
                                                                       gateway: ProgramRun) -> None:
    """pulumi-azure-native provider/pkg/gen/replacement.go lists, for
    ManagedCluster, diskEncryptionSetID, dnsPrefix, fqdnSubdomain,
    linuxProfile, location, nodeResourceGroup, windowsProfile and some
    networkProfile fields: neither ingressProfile nor addonProfiles, so the
    change is one PUT of the running cluster (as `az aks approuting enable`
    and `az aks enable-addons` are for AKS). The identity, its role and its
    federation are new; nothing is deleted, and only the migration Job is
    replaced (airflow.cfg changes with Entra ID sign-in)."""
    cluster = runs["prod"].one(AKS).name
    assert not any(p.startswith(("ingressProfile", "addonProfiles")) for p in AZURE_REPLACE[AKS]), \
        "the model follows replacement.go"
    shown = preview(runs["prod"], gateway)
    step = shown.step(cluster)
    assert step is not None and step.op == "update", f"{cluster}: {step}"
    assert {p.split(".")[0] for p in step.paths} == {"ingressProfile", "addonProfiles"}, f"{cluster}: {step.paths}"
    # Entra ID sign-in changes airflow.cfg, and a Job's template cannot change: the migration Job
    # is replaced (new name first, components/kubernetes/airflow_migration.py) and migrates the FAB auth
    # manager's tables before the api-server starts with it. Nothing else is replaced.
    assert [s.name for s in shown.of("replace")] == ["workloads-airflow-migrate"] and not shown.of("delete"), \
        f"replaced {[s.name for s in shown.of('replace')]}, deleted {[s.name for s in shown.of('delete')]}"
    created = {s.name for s in shown.of("create") if s.type in (IDENTITY, ROLE, FEDERATION)}
    # The api-server's account and the log reader's trust in it exist without Entra ID too.
    assert created == {"airflow-ui-tls-identity", "airflow-ui-tls-secrets-user", "airflow-ui-tls-federation"}, \
        created
    assert not shown.stopped and not shown.aks, (shown.refused, shown.protected_refusals, shown.aks)
    assert all(s.type != VAULT for s in shown.steps), "the vault is untouched"


def test_with_the_gateway_and_entra_no_secret_is_in_a_config_map_a_literal_or_a_plain_output(
        gateway: ProgramRun) -> None:
    """Prod with the ui block: every value the program generates stays in the
    Secrets and the secret outputs; Entra sign-in adds none (no client secret)."""
    from tests.test_workloads import WORKLOAD_KINDS, all_strings, containers, label

    needles = set(gateway.generated)
    assert len(needles) >= 6, "the mocks recorded the generated passwords and keys"
    for m in gateway.manifests():
        if m["kind"] == "Secret":
            continue
        if m["kind"] in WORKLOAD_KINDS:
            texts = [e.get("value", "") for c in containers(m) for e in c.get("env", [])]
            texts += [a for c in containers(m) for a in c.get("args", []) + c.get("command", [])]
        else:
            texts = all_strings(m)
        assert not [n for n in needles for t in texts if n in t], f"{label(m)} holds a secret value"
    webserver = [m for m in gateway.manifests() if m["kind"] == "ConfigMap"
                 and "webserver_config.py" in m.get("data", {})]
    assert webserver, "the api-server's webserver_config.py is in a ConfigMap"
    assert "client_secret" not in webserver[0]["data"]["webserver_config.py"].lower().replace(
        "client_secret=none", ""), f"{label(webserver[0])}: no client secret in webserver_config.py"
    plain_outputs = {k: v for k, v in gateway.outputs.items() if k not in gateway.secret_outputs}
    leaked = [k for k, v in plain_outputs.items() for n in needles if n in json.dumps(v, default=str)]
    assert not leaked, f"plain outputs holding a generated secret: {leaked}"
