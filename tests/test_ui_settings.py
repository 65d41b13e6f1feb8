"""The `ui` key: how the UI is reached and signed in to, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_settings import parse, problems_of

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ADMINS = "99999999-8888-7777-6666-555555555555"
VIEWERS = "12345678-1234-1234-1234-123456789abc"


def gateway_ui(**changes: Any) -> dict[str, Any]:
    ui: dict[str, Any] = {
        "exposure": "gateway",
        "host": "airflow.example.com",
        "tls": {"keyVaultCertificate": "airflow-ui"},
        "auth": "entra",
        "entra": {"tenantId": TENANT, "clientId": CLIENT, "roleGroups": {"Admin": [ADMINS], "Viewer": [VIEWERS]}},
    }
    ui.update(changes)
    return {k: v for k, v in ui.items() if v is not None}


def test_the_default_is_port_forward_with_the_generated_admin() -> None:
    ui = parse().ui
    assert (ui.exposure, ui.auth, ui.url, ui.redirect_uri) == ("port-forward", "simple", None, None)


def test_a_gateway_with_entra_sign_in() -> None:
    ui = parse(keyVault=True, ui=gateway_ui(allowedSourceRanges=["203.0.113.0/24", "2001:db8::/32"])).ui
    assert ui.url == "https://airflow.example.com"
    assert ui.redirect_uri == "https://airflow.example.com/auth/oauth-authorized/azure"
    assert ui.allowed_source_ranges == ("203.0.113.0/24", "2001:db8::/32")
    assert ui.entra is not None
    assert ui.entra.authorize_url == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize"
    assert ui.entra.groups_to_roles() == {ADMINS: ["Admin"], VIEWERS: ["Viewer"]}


def test_a_group_may_hold_several_roles_and_ids_are_compared_in_lower_case() -> None:
    ui = parse(keyVault=True, ui=gateway_ui(entra={"tenantId": TENANT.upper(), "clientId": CLIENT, "roleGroups": {
        "Admin": [ADMINS.upper()], "Op": [ADMINS]}})).ui
    assert ui.entra is not None and ui.entra.tenant_id == TENANT
    assert ui.entra.groups_to_roles() == {ADMINS: ["Admin", "Op"]}


def test_a_kubernetes_secret_is_the_other_certificate_source() -> None:
    ui = parse(ui=gateway_ui(tls={"secretName": "airflow-ui-tls"})).ui
    assert (ui.tls_secret_name, ui.tls_key_vault_certificate) == ("airflow-ui-tls", None)


@pytest.mark.parametrize(("ui", "extra", "key", "says"), [
    ({"exposure": "gateway"}, {}, "ui.host", "required with `exposure: gateway`"),
    ({"exposure": "gateway"}, {}, "ui.tls", "keyVaultCertificate"),
    ({"exposure": "gateway"}, {}, "ui.auth", "development only"),
    ({"exposure": "gatewya"}, {}, "ui.exposure", "port-forward, gateway"),
    ({"expsoure": "gateway"}, {}, "ui.expsoure", "did you mean 'exposure'"),
    ({"host": "airflow.example.com"}, {}, "ui.host", "only with `exposure: gateway`"),
    ({"auth": "entra", "entra": {"tenantId": TENANT, "clientId": CLIENT, "roleGroups": {"Admin": [ADMINS]}}}, {},
     "ui.auth", "https://<ui.host>/auth/oauth-authorized/azure"),
    (gateway_ui(host="https://airflow.example.com"), {"keyVault": True}, "ui.host", "no scheme"),
    (gateway_ui(host="Airflow.example.com"), {"keyVault": True}, "ui.host", "lower case"),
    (gateway_ui(tls={"keyVaultCertificate": "a", "secretName": "b"}), {"keyVault": True}, "ui.tls", "exactly one"),
    (gateway_ui(tls={"selfSigned": True}), {"keyVault": True}, "ui.tls.selfSigned", "unknown key"),
    (gateway_ui(), {}, "ui.tls.keyVaultCertificate", "needs `keyVault: true`"),
    (gateway_ui(allowedSourceRanges=["203.0.113.7/24"]), {"keyVault": True}, "ui.allowedSourceRanges[0]",
     "CIDR"),
    (gateway_ui(auth="simple"), {"keyVault": True}, "ui.auth", "development only"),
    (gateway_ui(entra=None), {"keyVault": True}, "ui.entra", "tenantId, clientId"),
    (gateway_ui(entra={"tenantId": "contoso", "clientId": CLIENT, "roleGroups": {"Admin": [ADMINS]}}),
     {"keyVault": True}, "ui.entra.tenantId", "GUID"),
    (gateway_ui(entra={"tenantId": TENANT, "clientId": CLIENT, "roleGroups": {"Viewer": [VIEWERS]}}),
     {"keyVault": True}, "ui.entra.roleGroups.Admin", "at least one"),
    (gateway_ui(entra={"tenantId": TENANT, "clientId": CLIENT, "roleGroups": {"Admins": [ADMINS]}}),
     {"keyVault": True}, "ui.entra.roleGroups.Admins", "did you mean 'Admin'"),
    (gateway_ui(entra={"tenantId": TENANT, "clientId": CLIENT, "roleGroups": {"Admin": ["Data Team"]}}),
     {"keyVault": True}, "ui.entra.roleGroups.Admin[0]", "GUID"),
])
def test_what_cannot_work_is_refused_naming_the_key(ui: dict[str, Any], extra: dict[str, Any], key: str,
                                                    says: str) -> None:
    problems = problems_of(ui=ui, **extra)
    assert key in problems, f"{key} is not named: {problems}"
    assert says in problems[key], f"{key}: {problems[key]}"


def test_a_local_cluster_has_no_gateway() -> None:
    problems = problems_of(target="local", ui=gateway_ui(tls={"secretName": "airflow-ui-tls"}))
    assert "target: aks" in problems["ui.exposure"], problems


def test_readmes_example_is_a_valid_gateway_for_prod() -> None:
    from components.config import stack_file_config
    from tests.readme_tables import readme_ui_example

    values = {k.split(":", 1)[1]: v for k, v in stack_file_config("prod").items() if k.startswith("airflow-aks:")}
    ui = parse(**{**values, "ui": readme_ui_example()}).ui
    assert ui.gateway and ui.auth == "entra" and ui.tls_key_vault_certificate == "airflow-ui", ui


def test_no_role_can_be_given_to_visitors_who_have_not_signed_in() -> None:
    problems = problems_of(keyVault=True, ui=gateway_ui(), airflowConfig={"fab": {"auth_role_public": "Viewer"}})
    assert "ui.entra.roleGroups" in problems["airflowConfig.fab.auth_role_public"], problems


def test_the_gateways_namespace_must_fit_a_dns_label() -> None:
    problems = problems_of(keyVault=True, namespace="a" * 62, ui=gateway_ui())
    assert "at most 60 characters" in problems["namespace"], problems
    assert parse(keyVault=True, namespace="a" * 60, ui=gateway_ui()).ui.gateway
