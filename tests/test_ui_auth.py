"""Entra ID sign-in (`ui.auth: entra`) as the program generates it: airflow.cfg's options,
the api-server's webserver_config.py (data only, no secret), the client assertion that
stands in for a client secret, and the api-server's ServiceAccount, label and mount.
tests/test_ui_auth_real.py runs the generated files on the real api-server."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import pytest

from components.kubernetes.network_policies import AZURE_PUBLIC, HTTPS_PORT, flows
from components.model import catalogues, names, ui_auth
from components.model.airflow_options import MANAGED_AIRFLOW_OPTIONS
from components.model.ui import parse_ui
from tests.conftest import config_for
from tests.harness import LOG_READER_CLIENT_ID, ROOT, ProgramRun, shared_run, stack_file_config
from tests.test_settings import problems_of

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ADMINS = "99999999-8888-7777-6666-555555555555"
VIEWERS = "12345678-1234-1234-1234-123456789abc"
HOST = "airflow.example.com"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
# The `ui` block of a prod-like stack with Entra ID sign-in (a Secret for TLS, so that it
# needs no keyVault).
ENTRA_UI: dict[str, Any] = {
    "exposure": "gateway", "host": HOST, "tls": {"secretName": "airflow-ui-tls"}, "auth": "entra",
    "entra": {"tenantId": TENANT, "clientId": CLIENT, "roleGroups": {"Admin": [ADMINS], "Viewer": [VIEWERS]}},
}
NEW_OPTIONS = {("core", "auth_manager"), ("api", "base_url"), ("fab", "config_file"), ("fab", "enable_proxy_fix")}
SIMPLE_OPTIONS = {("core", "simple_auth_manager_users"), ("core", "simple_auth_manager_passwords_file")}


def entra_ui() -> Any:
    problems: list[tuple[str, str]] = []
    ui = parse_ui(ENTRA_UI, target="aks", key_vault=False, problems=problems)
    assert ui is not None and not problems, problems
    return ui


def cfg_of(stack: str, **changes: Any) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(config_for(stack, **changes).airflow_cfg)
    return parser


def options_of(parser: configparser.ConfigParser) -> set[tuple[str, str]]:
    return {(s, o) for s in parser.sections() for o in parser[s]}


# airflow.cfg ------------------------------------------------------------------------------------


def test_entra_sets_the_fab_auth_manager_its_config_file_the_url_and_the_proxy_fix() -> None:
    assert ui_auth.auth_options(entra_ui()) == {
        "core": {"auth_manager": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"},
        "api": {"base_url": f"https://{HOST}"},
        "fab": {"config_file": "/opt/airflow/webserver_config.py", "enable_proxy_fix": "True"},
    }


def test_an_entra_stacks_cfg_has_the_fab_options_and_none_of_the_simple_auth_managers() -> None:
    cfg = cfg_of("prod", ui=ENTRA_UI)
    assert cfg["core"]["auth_manager"].endswith(".FabAuthManager")
    assert cfg["api"]["base_url"] == f"https://{HOST}"
    assert cfg["fab"]["config_file"] == ui_auth.WEBSERVER_CONFIG_PATH
    assert cfg.getboolean("fab", "enable_proxy_fix")
    assert not SIMPLE_OPTIONS & options_of(cfg), "the SimpleAuthManager's admin has no place with Entra ID"


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_without_entra_the_simple_auth_manager_stays_and_nothing_of_fab_is_written(stack: str) -> None:
    cfg = cfg_of(stack)
    assert SIMPLE_OPTIONS <= options_of(cfg), stack
    assert not NEW_OPTIONS & options_of(cfg), stack
    assert ui_auth.auth_options(config_for(stack).settings.ui) == {}


def test_every_option_of_an_entra_stack_is_in_the_catalogue() -> None:
    catalogue = catalogues.airflow_config(config_for("prod").settings.airflow_version)
    assert catalogue is not None
    missing = [o for o in options_of(cfg_of("prod", ui=ENTRA_UI)) if not catalogue.has(*o)]
    assert not missing, f"options Airflow (with the FAB provider) does not have: {missing}"


@pytest.mark.parametrize(("section", "option"), sorted(NEW_OPTIONS))
def test_overriding_a_sign_in_option_is_refused_naming_the_ui_key(section: str, option: str) -> None:
    assert "`ui` key" in MANAGED_AIRFLOW_OPTIONS[(section, option)]
    problems = problems_of(airflowConfig={section: {option: "x"}})
    assert "`ui` key" in problems[f"airflowConfig.{section}.{option}"], problems


# webserver_config.py ----------------------------------------------------------------------------


def assignments(source: str) -> dict[str, ast.expr]:
    tree = ast.parse(source)
    return {node.targets[0].id: node.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def test_webserver_config_is_data_and_one_call_into_the_shipped_module() -> None:
    source = ui_auth.webserver_config(entra_ui())
    tree = ast.parse(source)
    imports = [(n.module, [a.name for a in n.names]) for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert imports == [("flask_appbuilder.const", ["AUTH_OAUTH"]),
                       ("airflow_aks_webserver", ["with_federated_client_assertion"])]
    values = assignments(source)
    assert ast.unparse(values["OAUTH_PROVIDERS"]) == "[with_federated_client_assertion(_azure)]"
    assert ast.unparse(values["AUTH_TYPE"]) == "AUTH_OAUTH"
    # Everything else is a literal: no code of the program's making runs in the api-server.
    literals = {k: ast.literal_eval(v) for k, v in values.items() if k not in ("OAUTH_PROVIDERS", "AUTH_TYPE")}
    assert set(literals) == {"_azure", "AUTH_USER_REGISTRATION", "AUTH_USER_REGISTRATION_ROLE",
                             "AUTH_ROLES_MAPPING", "AUTH_ROLES_SYNC_AT_LOGIN", "AUTH_OAUTH_ROLE_KEYS"}


def test_webserver_config_holds_the_entra_endpoints_the_role_mapping_and_no_secret() -> None:
    source = ui_auth.webserver_config(entra_ui())
    values = {k: ast.literal_eval(v) for k, v in assignments(source).items()
              if k not in ("OAUTH_PROVIDERS", "AUTH_TYPE")}
    azure = values["_azure"]
    assert azure["name"] == "azure"
    app = azure["remote_app"]
    base = f"https://login.microsoftonline.com/{TENANT}"
    assert app["client_id"] == CLIENT
    assert app["authorize_url"] == f"{base}/oauth2/v2.0/authorize"
    assert app["access_token_url"] == f"{base}/oauth2/v2.0/token"
    assert app["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert app["client_kwargs"]["scope"] == "openid email profile"
    assert app["client_kwargs"]["tenant_id"] == TENANT
    assert values["AUTH_USER_REGISTRATION"] is True
    assert values["AUTH_USER_REGISTRATION_ROLE"] == "Public"
    assert values["AUTH_ROLES_MAPPING"] == {ADMINS: ["Admin"], VIEWERS: ["Viewer"]}
    assert values["AUTH_ROLES_SYNC_AT_LOGIN"] is True
    assert values["AUTH_OAUTH_ROLE_KEYS"] == {"azure": "groups"}
    assert "client_secret" not in app and "secret" not in source.lower().replace("no secret", "")


def test_webserver_config_needs_entra() -> None:
    with pytest.raises(ValueError, match=r"ui\.auth: entra"):
        ui_auth.webserver_config(config_for("prod").settings.ui)


# The client assertion (app/config/airflow_aks_webserver.py) -------------------------------------


@pytest.fixture
def assertion_module() -> ModuleType:
    path = ROOT / "app" / "config" / f"{ui_auth.ASSERTION_MODULE}.py"
    spec = importlib.util.spec_from_file_location(ui_auth.ASSERTION_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_token_request_carries_the_projected_token_read_at_each_request(
        assertion_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "azure-identity-token"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token))
    client = SimpleNamespace(client_id=CLIENT, client_secret=None)
    body = "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fx%2Fcb"
    for kubelet_wrote in ("first.jwt", "rotated.jwt"):
        token.write_text(kubelet_wrote + "\n")
        headers = {"Content-Length": str(len(body))}
        uri, headers, sent = assertion_module.federated_client_assertion(client, "POST", "https://t/token",
                                                                        headers, body)
        params = dict(parse_qsl(sent))
        assert params == {"grant_type": "authorization_code", "code": "abc", "redirect_uri": "https://x/cb",
                          "client_id": CLIENT, "client_assertion": kubelet_wrote,
                          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
        assert headers["Content-Length"] == str(len(sent)) and uri == "https://t/token"


def test_without_the_token_file_variable_the_request_fails_saying_why(
        assertion_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    with pytest.raises(RuntimeError, match=r"azure\.workload\.identity/use"):
        assertion_module.federated_client_assertion(SimpleNamespace(client_id=CLIENT), "POST", "u", {}, "")


def test_the_provider_gets_the_assertion_method_and_never_a_secret(assertion_module: ModuleType) -> None:
    provider = assertion_module.with_federated_client_assertion(ui_auth.azure_provider(entra_ui().entra))
    kwargs = provider["remote_app"]["client_kwargs"]
    assert kwargs["token_endpoint_auth_method"] is assertion_module.federated_client_assertion
    assert provider["remote_app"]["client_secret"] is None
    with pytest.raises(ValueError, match="client secret"):
        assertion_module.with_federated_client_assertion({"remote_app": {"client_secret": "s"}})
    assert "airflow_aks_webserver" not in sys.modules, "loaded from its file, not from an installed copy"


def test_the_app_registrations_federated_credential_names_the_api_servers_account() -> None:
    fed = ui_auth.federated_credential("airflow-prod")
    assert fed.subject == "system:serviceaccount:airflow-prod:airflow-api-server"
    assert fed.audience == "api://AzureADTokenExchange"


# Kubernetes ------------------------------------------------------------------------------------


def entra_run(stack: str = "prod", **changes: Any) -> ProgramRun:
    config = {**stack_file_config(stack), "airflow-aks:ui": ENTRA_UI,
              **{f"airflow-aks:{k}": v for k, v in changes.items()}}
    run = shared_run(stack, config)
    assert run.error is None, run.error
    return run


def pod_template(run: ProgramRun, kind: str, name: str) -> dict[str, Any]:
    return run.manifest(kind, name)["spec"]["template"]


def test_the_api_server_alone_mounts_webserver_config_and_carries_the_identity_label() -> None:
    run = entra_run()
    data = run.manifest("ConfigMap", names.CONFIG_MAP)["data"]
    assert data[ui_auth.WEBSERVER_CONFIG_KEY] == ui_auth.webserver_config(entra_ui())
    api = pod_template(run, "Deployment", names.API_SERVER)
    assert api["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert api["spec"]["serviceAccountName"] == names.API_SERVER_SERVICE_ACCOUNT
    [container] = api["spec"]["containers"]
    mount = {"name": "config", "mountPath": ui_auth.WEBSERVER_CONFIG_PATH,
             "subPath": ui_auth.WEBSERVER_CONFIG_KEY, "readOnly": True}
    assert mount in container["volumeMounts"], "api-server mounts webserver_config.py read-only"
    assert "initContainers" not in api["spec"], "no SimpleAuthManager password to copy"
    assert names.AUTH_SECRET not in str(api["spec"]["volumes"])
    for kind, name in (("Deployment", names.SCHEDULER), ("Deployment", names.DAG_PROCESSOR),
                       ("StatefulSet", names.TRIGGERER), ("StatefulSet", names.WORKER)):
        mounts = [m.get("subPath") for c in pod_template(run, kind, name)["spec"]["containers"]
                  for m in c["volumeMounts"]]
        assert ui_auth.WEBSERVER_CONFIG_KEY not in mounts, f"{name} does not mount webserver_config.py"
        assert pod_template(run, kind, name)["spec"].get("serviceAccountName") != names.API_SERVER_SERVICE_ACCOUNT


@pytest.mark.parametrize(("changes", "client_id"), [
    ({}, LOG_READER_CLIENT_ID), ({"remoteTaskLogs": False, "keyVault": False, "databaseBackupSchedule": ""}, None)],
    ids=["with the Azure identity", "without"])
def test_the_api_servers_account_carries_the_log_readers_identity_only_when_it_has_one(
        changes: dict[str, Any], client_id: str | None) -> None:
    run = entra_run(**changes)
    account = run.manifest("ServiceAccount", names.API_SERVER_SERVICE_ACCOUNT)
    assert account["automountServiceAccountToken"] is False
    annotations = account["metadata"].get("annotations", {})
    assert annotations.get("azure.workload.identity/client-id") == client_id, \
        f"ServiceAccount/{names.API_SERVER_SERVICE_ACCOUNT}: the log reader's client ID, or none: {annotations}"


def test_changed_role_groups_roll_the_api_server_only() -> None:
    before = entra_run()
    ui = {**ENTRA_UI, "entra": {**ENTRA_UI["entra"], "roleGroups": {"Admin": [ADMINS], "Op": [VIEWERS]}}}
    after = shared_run("prod", {**stack_file_config("prod"), "airflow-aks:ui": ui})
    assert after.error is None, after.error
    for kind, name in (("Deployment", names.SCHEDULER), ("StatefulSet", names.WORKER)):
        assert pod_template(before, kind, name) == pod_template(after, kind, name), f"{name} does not roll"
    annotations = [pod_template(r, "Deployment", names.API_SERVER)["metadata"]["annotations"] for r in (before, after)]
    assert annotations[0] != annotations[1], "api-server rolls to read the new webserver_config.py"


def test_without_entra_the_api_server_keeps_its_password_and_runs_as_its_own_account() -> None:
    # Without Entra ID the api-server still has its own account on AKS with
    # remote task logs: the log reader's identity (tests/test_task_log_storage.py).
    run = shared_run("prod")
    assert run.error is None, run.error
    api = pod_template(run, "Deployment", names.API_SERVER)
    assert [c["name"] for c in api["spec"]["initContainers"]] == ["auth-passwords"]
    assert api["spec"]["serviceAccountName"] == names.API_SERVER_SERVICE_ACCOUNT, names.API_SERVER
    assert ui_auth.WEBSERVER_CONFIG_KEY not in run.manifest("ConfigMap", names.CONFIG_MAP)["data"]


def test_entra_opens_the_api_servers_https_to_entra_id() -> None:
    off = {"remoteTaskLogs": False, "keyVault": False, "databaseBackupSchedule": ""}
    api_https = [f for f in flows(config_for("prod", ui=ENTRA_UI, **off).settings)
                 if f.src.name == names.API_SERVER and f.dst == AZURE_PUBLIC and f.port == HTTPS_PORT]
    assert [f.why for f in api_https] == ["Entra ID sign-in (tokens and signing keys)"]
    assert not [f for f in flows(config_for("prod", **off).settings)
                if f.src.name == names.API_SERVER and f.dst == AZURE_PUBLIC]


def test_with_entra_only_the_log_reader_trusts_the_api_servers_account() -> None:
    """The app registration trusts the api-server's account (uiFederatedCredential); of the
    program's identities only the log reader does, as without Entra ID: Entra ID adds no
    federation, and none of the writers'."""
    subject = f"system:serviceaccount:airflow:{names.API_SERVER_SERVICE_ACCOUNT}"
    for run in (entra_run(), shared_run("prod")):
        trusting = sorted(r.name for r in run.of_type(FEDERATION) if r.inputs["subject"] == subject)
        assert trusting == ["airflow-task-logs-reader-federation"], f"{FEDERATION}: {trusting}"
