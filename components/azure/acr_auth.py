"""Registry credentials for the image push, without the registry's admin user.

ACR trades a Microsoft Entra access token of the identity running ``pulumi up``
for a registry refresh token (the exchange ``az acr login`` performs); Docker
then logs in with the all-zero user name and that token as password. This works
on the first ``pulumi up``, when the registry is only being created, which
``az acr login`` before the run cannot. The identity needs push rights on the
registry: AcrPush, Contributor or Owner.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import cast

import pulumi

# The user name ACR expects with a token instead of a password.
TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"


def exchange_error(login_server: str, status: int) -> str:
    """What a failed exchange means. The exchange only checks the Entra token
    (signature, expiry, tenant); push rights are checked later, at the push."""
    if status == 401:
        return (f"{login_server} rejected the Entra access token (HTTP 401): it is expired, for another "
                "tenant or not an Azure Resource Manager token; run `az login` (or check the CI's OIDC "
                "login) and try again")
    if status == 403:
        return (f"{login_server} refused the token exchange (HTTP 403): the registry's network rules or "
                "policy deny this caller")
    return f"{login_server} refused the token exchange (HTTP {status})"


def exchange_for_refresh_token(login_server: str, tenant_id: str, access_token: str,
                               timeout: float = 30.0) -> str:
    """POST the Entra token to the registry's /oauth2/exchange; return its refresh token."""
    body = urllib.parse.urlencode({
        "grant_type": "access_token",
        "service": login_server,
        "tenant": tenant_id,
        "access_token": access_token,
    }).encode()
    request = urllib.request.Request(
        f"https://{login_server}/oauth2/exchange",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as err:
        raise RuntimeError(exchange_error(login_server, err.code)) from None
    token = payload.get("refresh_token")
    if not token:
        raise RuntimeError(f"{login_server} answered the token exchange without a refresh_token")
    return token


def registry_password(login_server: pulumi.Input[str], tenant_id: pulumi.Input[str],
                      access_token: pulumi.Input[str]) -> pulumi.Output[str]:
    """A secret registry password for the push; unknown during preview, which pushes nothing.

    Unknown, not empty: a plan saved by `pulumi preview --save-plan` records the inputs the
    preview saw, and `pulumi up --plan` fails on an input that differs from a known planned
    value ("violates plan"; pulumi/pulumi pkg/resource/deploy/plan.go, checkDiff), while an
    unknown planned value accepts any (DeepEqualsIncludeUnknowns). The update's token always
    differs from any value the preview could know.
    """

    def exchange(args: list[str]) -> str:
        if pulumi.runtime.is_dry_run():
            return cast(str, pulumi.UNKNOWN)
        return exchange_for_refresh_token(*args)

    return pulumi.Output.secret(pulumi.Output.all(login_server, tenant_id, access_token).apply(exchange))
