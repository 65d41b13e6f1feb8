"""Entra ID sign-in without a client secret, for the webserver_config.py the program generates.

Airflow puts $AIRFLOW_HOME/config on sys.path, and the image copies this file there; the
generated webserver_config.py (components/model/ui_auth.py) holds only the stack's values and
calls `with_federated_client_assertion` on its one OAuth provider.

The api-server proves to Entra ID that it is the app registration with its workload identity
token instead of a client secret: RFC 7523 client authentication, which Entra ID accepts from an
app registration that has a federated credential trusting the cluster's OIDC issuer for the
api-server's ServiceAccount. Authlib's ClientAuth takes a callable as the token endpoint's auth
method and calls it with (client, method, uri, headers, body) (authlib/oauth2/auth.py, ClientAuth;
authlib/oauth2/client.py, OAuth2Client.client_auth).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

# The file the workload identity webhook projects the ServiceAccount token to, named in this
# variable of every container of a pod labelled azure.workload.identity/use
# (Azure/azure-workload-identity pkg/webhook/webhook.go, addEnvironmentVariables).
TOKEN_FILE_ENV = "AZURE_FEDERATED_TOKEN_FILE"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def federated_client_assertion(client: Any, method: str, uri: str, headers: dict[str, str],
                               body: str) -> tuple[str, dict[str, str], str]:
    """Authenticate a token request with the pod's projected token as the client assertion.

    The file is read at each request: the kubelet rewrites it before the token expires.
    """
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        raise RuntimeError(f"{TOKEN_FILE_ENV} is not set: the api-server pod needs the label "
                           "azure.workload.identity/use=true for Entra ID sign-in")
    assertion = Path(path).read_text().strip()
    params = [(k, v) for k, v in parse_qsl(body or "", keep_blank_values=True)
              if k not in ("client_id", "client_secret", "client_assertion_type", "client_assertion")]
    params += [("client_id", client.client_id), ("client_assertion_type", CLIENT_ASSERTION_TYPE),
               ("client_assertion", assertion)]
    body = urlencode(params)
    if "Content-Length" in headers:
        headers["Content-Length"] = str(len(body))
    return uri, headers, body


def with_federated_client_assertion(provider: Mapping[str, Any]) -> dict[str, Any]:
    """An OAUTH_PROVIDERS entry whose token requests carry the client assertion, and no secret."""
    remote_app = dict(provider["remote_app"])
    if remote_app.get("client_secret"):
        raise ValueError("a client secret and a federated client assertion exclude each other")
    remote_app["client_secret"] = None
    remote_app["client_kwargs"] = {**remote_app.get("client_kwargs", {}),
                                   "token_endpoint_auth_method": federated_client_assertion}
    return {**provider, "remote_app": remote_app}
