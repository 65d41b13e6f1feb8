"""Entra ID sign-in on the real Airflow 3.3.2 api-server (./venv-airflow, FAB provider 3.10.2).

The program is declared for a stack with `ui.auth: entra` (under Pulumi mocks); the api-server
starts as a local process with the airflow.cfg and webserver_config.py of its ConfigMap, on a
database migrated by the declared migration Job (`airflow db migrate` creates the FAB tables:
the configured auth manager's DB manager migrates with Airflow's, airflow/utils/db_manager.py).

No Entra ID tenant is reachable here, so the test stops where the network would begin: at the
redirect the api-server sends a browser to (Entra ID's authorize endpoint, parsed), and at the
token request the OAuth client would POST to Entra ID's token endpoint, built by the app's own
authlib client and captured instead of sent. The role mapping is read from the FAB app the
api-server builds, with the same files and environment.
"""

from __future__ import annotations

import http.client
import json
import textwrap
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from components.model.ui import CALLBACK_PATH
from tests.local_airflow import LocalDeployment, Services, deployment, stack_config, wait_for
from tests.real_airflow import run_airflow_python
from tests.test_ui_auth import ADMINS, CLIENT, ENTRA_UI, HOST, TENANT, VIEWERS

pytestmark = pytest.mark.real

# What the gateway sends: the UI's host, and the scheme the browser used.
GATEWAY_HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def entra(services: Services) -> Iterator[LocalDeployment]:
    """The api-server alone (sign-in needs nothing else), started once: about 30 s on 2 cores."""
    with deployment(services, stack_config("dev", ui=ENTRA_UI), start=False) as d:
        d.start("api-server")
        wait_for("the api-server", lambda: d.probe_ok("api-server"), timeout=180)
        yield d


def get(d: LocalDeployment, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """One request, redirects not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", d.api_port, timeout=60)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_the_api_server_runs_the_fab_auth_manager_with_the_generated_files(entra: LocalDeployment) -> None:
    assert "auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager" in entra.cfg_text
    assert f"config_file = {entra.home}/webserver_config.py" in entra.cfg_text
    assert "OAUTH_PROVIDERS" in (entra.home / "webserver_config.py").read_text()
    tables = {t for (t,) in entra.query("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", ["ab_%"])}
    assert {"ab_user", "ab_role", "ab_user_role"} <= tables, f"the migration Job created FAB's tables: {tables}"


def test_signing_in_redirects_to_entra_ids_authorize_endpoint_for_the_host(entra: LocalDeployment) -> None:
    # The login page (where the UI sends a user without a session) offers the one provider.
    page = get(entra, "/auth/login/", GATEWAY_HEADERS)
    assert page.status == 200, f"/auth/login/: {page.status}"
    response = get(entra, "/auth/login/azure", GATEWAY_HEADERS)
    assert response.status == 302, f"/auth/login/azure: {response.status}"
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == \
        ("https", "login.microsoftonline.com", f"/{TENANT}/oauth2/v2.0/authorize")
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == CLIENT
    assert query["redirect_uri"] == f"https://{HOST}{CALLBACK_PATH}", "https and the host, from the gateway's headers"
    assert query["response_type"] == "code"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["code_challenge_method"] == "S256" and query["code_challenge"] and query["state"]
    assert "client_secret" not in query


def test_without_the_gateways_headers_the_redirect_uri_would_be_http(entra: LocalDeployment) -> None:
    # What enable_proxy_fix changes: the same request straight to the pod names its own address.
    response = get(entra, "/auth/login/azure", {"Host": HOST})
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["redirect_uri"] == [f"http://{HOST}{CALLBACK_PATH}"]


def test_the_ui_root_sends_no_one_in_unauthenticated(entra: LocalDeployment) -> None:
    # Airflow 3's UI is a single-page app: / serves it, and it sends the browser to the
    # auth manager's login URL once the REST API refuses it.
    root = get(entra, "/", GATEWAY_HEADERS)
    print(f"GET / unauthenticated: {root.status} {root.headers.get('Location', '')}")
    assert root.status in (200, 302, 307), f"/: {root.status}"
    if root.status != 200:
        assert "/auth/login" in root.headers["Location"], root.headers["Location"]
    for path in ("/api/v2/dags", "/api/v2/connections", "/api/v2/config"):
        response = get(entra, path, {**GATEWAY_HEADERS, "Accept": "application/json"})
        assert response.status in (401, 403), f"{path} without a token: {response.status}"


# Run inside ./venv-airflow with the api-server's environment: the FAB app exactly as the
# api-server builds it (airflow.api_fastapi.app.create_app mounts the auth manager's app).
APP_PROBE = textwrap.dedent("""
    import json
    import requests
    from airflow.api_fastapi.app import create_app, get_auth_manager

    create_app("all")
    flask_app = get_auth_manager().flask_app
    out = {}
    with flask_app.test_request_context("/auth/oauth-authorized/azure"):
        sm = flask_app.appbuilder.sm
        out["auth_type"] = sm.auth_type
        out["mapping"] = sm.auth_roles_mapping
        out["sync"] = sm.auth_roles_sync_at_login
        out["registration_role"] = sm.auth_user_registration_role
        out["registration"] = sm.auth_user_registration
        # The provider's azure handler, with the id token's signature check (Microsoft's
        # keys, not reachable here) replaced by its claims.
        claims = {"oid": "u1", "email": "ada@example.com", "groups": GROUPS, "roles": ["not-a-group"]}
        sm._decode_and_validate_azure_jwt = lambda token: claims
        info = sm.get_oauth_user_info("azure", {"id_token": "x"})
        out["role_keys"] = info["role_keys"]
        out["roles"] = sorted(r.name for r in sm._oauth_calculate_user_roles(info))
        out["stranger_roles"] = sorted(r.name for r in sm._oauth_calculate_user_roles({"role_keys": ["nobody"]}))

        captured = {}
        def send(session, request, **kwargs):
            captured.update(url=request.url, body=request.body, headers=dict(request.headers))
            response = requests.Response()
            response.status_code = 200
            response.headers["Content-Type"] = "application/json"
            response._content = json.dumps({"access_token": "a", "token_type": "Bearer"}).encode()
            return response
        requests.Session.send = send
        sm.oauth_remotes["azure"].fetch_access_token(redirect_uri=REDIRECT, code="the-code")
        out["token_request"] = captured
    print("PROBE " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def app_probe(entra: LocalDeployment) -> dict[str, Any]:
    token_file = entra.home / "azure-identity-token"
    token_file.write_text("projected.service-account.jwt\n")
    code = (f"GROUPS = {[ADMINS, 'some-other-group']!r}\nREDIRECT = {f'https://{HOST}{CALLBACK_PATH}'!r}\n"
            + APP_PROBE)
    env = {**entra.process_env(entra.workloads["api-server"]), "AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
    done = run_airflow_python(code, home=entra.home, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("PROBE ")]
    return json.loads(line.removeprefix("PROBE "))


def test_the_loaded_app_maps_the_configured_groups_to_roles(app_probe: dict[str, Any]) -> None:
    assert app_probe["auth_type"] == 4, "AUTH_OAUTH (flask_appbuilder.const)"
    assert app_probe["mapping"] == {ADMINS: ["Admin"], VIEWERS: ["Viewer"]}
    assert app_probe["sync"] is True and app_probe["registration"] is True
    assert app_probe["registration_role"] == "Public"
    # Roles come from the id token's `groups` claim, not from app roles (`roles`).
    assert app_probe["role_keys"] == [ADMINS, "some-other-group"]
    assert app_probe["roles"] == ["Admin", "Public"]
    assert app_probe["stranger_roles"] == ["Public"], "a user in no mapped group gets the role without permissions"


def test_the_token_request_authenticates_with_the_projected_token_and_no_secret(app_probe: dict[str, Any]) -> None:
    request = app_probe["token_request"]
    assert request["url"] == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    body = {k: v[0] for k, v in parse_qs(request["body"]).items()}
    assert body["grant_type"] == "authorization_code" and body["code"] == "the-code"
    assert body["redirect_uri"] == f"https://{HOST}{CALLBACK_PATH}"
    assert body["client_id"] == CLIENT
    # RFC 7523 section 2.2.
    assert body["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert body["client_assertion"] == "projected.service-account.jwt"
    assert "client_secret" not in body and "Authorization" not in request["headers"], "no secret, no basic auth"
    assert request["headers"]["Content-Length"] == str(len(request["body"]))

