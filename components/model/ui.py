"""The `ui` key: how a team reaches Airflow's UI, and how its members sign in.

Two ways in:
- `port-forward` (the default): `kubectl port-forward` to the api-server's
  Service, signing in as the one admin the program generates (Airflow's
  SimpleAuthManager, which Airflow documents as for development only);
- `gateway`: HTTPS at `host` through AKS's application routing Gateway API
  implementation (GatewayClass `approuting-istio`), signing in with Microsoft
  Entra ID through the FAB auth manager, Airflow roles from Entra groups.

Pure: parsing and the values other layers derive (redirect URI, URLs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.model.parsing import Problems, object_value, str_value, unknown_key

KEY = "ui"
EXPOSURES = ("port-forward", "gateway")
AUTHS = ("simple", "entra")
UI_KEYS = ("exposure", "host", "tls", "allowedSourceRanges", "auth", "entra")
TLS_KEYS = ("keyVaultCertificate", "secretName")
ENTRA_KEYS = ("tenantId", "clientId", "roleGroups")
# FAB's built-in roles (airflow.providers.fab ... security_manager, ROLE_CONFIGS
# plus Admin); a user in no mapped group gets no role and sees nothing.
ROLES = ("Admin", "Op", "User", "Viewer")
# FAB's OAuth provider name for Entra ID; the callback route is
# /oauth-authorized/<provider> of the FAB app Airflow mounts at /auth.
ENTRA_PROVIDER = "azure"
CALLBACK_PATH = f"/auth/oauth-authorized/{ENTRA_PROVIDER}"
# The Execution API (task runners' own API, JWT per task) is mounted on the
# same api-server; the gateway never routes it (components/kubernetes/ui_gateway.py).
EXECUTION_API_PATH = "/execution"

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# A Key Vault object name: 1-127 alphanumerics and dashes.
_KV_NAME = re.compile(r"[A-Za-z0-9-]{1,127}")
# A Kubernetes Secret name (RFC 1123 subdomain).
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class EntraSignIn:
    """Microsoft Entra ID sign-in: the app registration and the role mapping."""

    tenant_id: str
    client_id: str
    # Airflow role -> Entra group object IDs (sorted, each role listed).
    role_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def authorize_url(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/authorize"

    @property
    def token_url(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def jwks_url(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/discovery/v2.0/keys"

    @property
    def issuer(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"

    def groups_to_roles(self) -> dict[str, list[str]]:
        """FAB's AUTH_ROLES_MAPPING: group object ID -> Airflow roles."""
        mapping: dict[str, list[str]] = {}
        for role in ROLES:
            for group in self.role_groups.get(role, ()):
                mapping.setdefault(group, []).append(role)
        return mapping


@dataclass(frozen=True)
class UiSettings:
    exposure: str = "port-forward"
    host: str | None = None
    # Exactly one with a gateway: a certificate in the stack's Key Vault, or a
    # kubernetes.io/tls Secret the user keeps in the gateway's namespace.
    tls_key_vault_certificate: str | None = None
    tls_secret_name: str | None = None
    allowed_source_ranges: tuple[str, ...] = ()
    auth: str = "simple"
    entra: EntraSignIn | None = None

    @property
    def gateway(self) -> bool:
        return self.exposure == "gateway"

    @property
    def url(self) -> str | None:
        return f"https://{self.host}" if self.gateway and self.host else None

    @property
    def redirect_uri(self) -> str | None:
        """The web redirect URI the Entra app registration must list."""
        return f"{self.url}{CALLBACK_PATH}" if self.url and self.auth == "entra" else None


def certificate_uri(vault_uri: str, certificate: str) -> str:
    """The listener's `tls-cert-keyvault-uri`: unversioned, so the operator
    follows a renewed certificate (app-routing-gateway-api-dns-tls.md). Azure
    reports the vault URI with a trailing slash."""
    return f"{vault_uri.rstrip('/')}/certificates/{certificate}"


def _check_host(v: str) -> str | None:
    labels = v.split(".")
    if v != v.lower() or len(v) > 253 or len(labels) < 2 or not all(_DNS_LABEL.fullmatch(x) for x in labels):
        return (f"must be the UI's DNS name in lower case, such as 'airflow.example.com' (no scheme, port, "
                f"path or wildcard), got {v!r}")
    return None


def _check_guid(v: str) -> str | None:
    if not _GUID.fullmatch(v.lower()):
        return f"must be a GUID such as '00000000-0000-0000-0000-000000000000', got {v!r}"
    return None


def _known_keys(obj: Mapping[str, Any], where: str, known: tuple[str, ...], problems: Problems) -> None:
    for k in sorted(obj):
        if k not in known:
            problems.append((f"{where}.{k}", unknown_key(k, known)))


def _tls(raw: Any, problems: Problems) -> tuple[str | None, str | None]:
    where = f"{KEY}.tls"
    obj = object_value(raw, where, problems)
    if obj is None:
        return None, None
    _known_keys(obj, where, TLS_KEYS, problems)
    set_keys = [k for k in TLS_KEYS if obj.get(k) is not None]
    if len(set_keys) != 1:
        problems.append((where, "must name exactly one certificate source: `keyVaultCertificate` (a certificate in "
                         "the stack's Key Vault) or `secretName` (a kubernetes.io/tls Secret you create in the "
                         "gateway's namespace); the program never makes a self-signed one"))
        return None, None
    if set_keys[0] == "keyVaultCertificate":
        name = str_value(obj["keyVaultCertificate"], f"{where}.keyVaultCertificate", problems,
                         lambda v: None if _KV_NAME.fullmatch(v) else
                         f"must be a Key Vault certificate name (1-127 letters, digits and dashes), got {v!r}")
        return name, None
    secret = str_value(obj["secretName"], f"{where}.secretName", problems,
                       lambda v: None if _K8S_NAME.fullmatch(v) else
                       f"must be a Kubernetes Secret name (lower case, digits, '-' and '.'), got {v!r}")
    return None, secret


def _ranges(raw: Any, problems: Problems) -> tuple[str, ...] | None:
    where = f"{KEY}.allowedSourceRanges"
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        problems.append((where, f"must be a list of CIDR ranges such as ['203.0.113.0/24'], got {raw!r}"))
        return None
    out: list[str] = []
    for i, item in enumerate(raw):
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=True)))
        except ValueError as err:
            problems.append((f"{where}[{i}]", f"must be a CIDR range such as '203.0.113.0/24' ({err}), got {item!r}"))
    return tuple(out)


def _role_groups(raw: Any, problems: Problems) -> dict[str, tuple[str, ...]] | None:
    where = f"{KEY}.entra.roleGroups"
    obj = object_value(raw if raw is not None else {}, where, problems)
    if obj is None:
        return None
    _known_keys(obj, where, ROLES, problems)
    out: dict[str, tuple[str, ...]] = {}
    for role in ROLES:
        groups = obj.get(role) or []
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list | tuple):
            problems.append((f"{where}.{role}", f"must be a list of Entra group object IDs, got {groups!r}"))
            continue
        ids = [str_value(g, f"{where}.{role}[{i}]", problems, _check_guid) for i, g in enumerate(groups)]
        out[role] = tuple(sorted({g.lower() for g in ids if g}))
    if not out.get("Admin"):
        problems.append((f"{where}.Admin", "must list at least one Entra group: with Entra sign-in there is no "
                         "local admin, and only an Admin manages connections, pools and roles"))
    return out


def _entra(raw: Any, problems: Problems) -> EntraSignIn | None:
    where = f"{KEY}.entra"
    if raw is None:
        problems.append((where, "required with `auth: entra`: tenantId, clientId (the app registration) and "
                         "roleGroups (README, \"Reach the UI\")"))
        return None
    obj = object_value(raw, where, problems)
    if obj is None:
        return None
    _known_keys(obj, where, ENTRA_KEYS, problems)
    tenant = str_value(obj.get("tenantId"), f"{where}.tenantId", problems, _check_guid)
    client = str_value(obj.get("clientId"), f"{where}.clientId", problems, _check_guid)
    groups = _role_groups(obj.get("roleGroups"), problems)
    if tenant is None or client is None or groups is None:
        return None
    return EntraSignIn(tenant_id=tenant.lower(), client_id=client.lower(), role_groups=groups)


def parse_ui(raw: Any, *, target: str | None, key_vault: bool | None, problems: Problems) -> UiSettings | None:
    """The `ui` block; None after recording problems."""
    if raw is None:
        return UiSettings()
    before = len(problems)
    obj = object_value(raw, KEY, problems)
    if obj is None:
        return None
    _known_keys(obj, KEY, UI_KEYS, problems)
    exposure = str_value(obj.get("exposure", "port-forward"), f"{KEY}.exposure", problems,
                         lambda v: None if v in EXPOSURES else f"must be one of {', '.join(EXPOSURES)}, got {v!r}")
    auth = str_value(obj.get("auth", "simple"), f"{KEY}.auth", problems,
                     lambda v: None if v in AUTHS else f"must be one of {', '.join(AUTHS)}, got {v!r}")
    host = (str_value(obj["host"], f"{KEY}.host", problems, _check_host) if obj.get("host") is not None else None)
    kv_cert, secret = _tls(obj["tls"], problems) if obj.get("tls") is not None else (None, None)
    ranges = _ranges(obj.get("allowedSourceRanges"), problems)
    entra = _entra(obj.get("entra"), problems) if auth == "entra" else None
    gateway_only = [k for k in ("host", "tls", "allowedSourceRanges") if obj.get(k) not in (None, [], ())]

    if exposure == "gateway":
        if target == "local":
            problems.append((f"{KEY}.exposure", "`gateway` needs `target: aks` (AKS's application routing add-on "
                             "runs the gateway); a local cluster keeps `port-forward`"))
        if host is None and "host" not in obj:
            problems.append((f"{KEY}.host", "required with `exposure: gateway`: the DNS name the UI is served at, "
                             "such as 'airflow.example.com'"))
        if "tls" not in obj:
            problems.append((f"{KEY}.tls", "required with `exposure: gateway`: `keyVaultCertificate: <name>` (a "
                             "certificate in the stack's Key Vault) or `secretName: <name>`"))
        if auth == "simple":
            problems.append((f"{KEY}.auth", "must be `entra` with `exposure: gateway`: the SimpleAuthManager's one "
                             "shared admin is for development only (Airflow's docs), not for a public address"))
        if kv_cert is not None and not key_vault:
            problems.append((f"{KEY}.tls.keyVaultCertificate", "needs `keyVault: true`: the certificate is read "
                             "from the stack's Key Vault (or name a Secret with `secretName` instead)"))
    elif exposure == "port-forward":
        for k in gateway_only:
            problems.append((f"{KEY}.{k}", "applies only with `exposure: gateway`"))
        if auth == "entra":
            problems.append((f"{KEY}.auth", "`entra` needs `exposure: gateway`: Entra ID sends the browser back to "
                             "https://<ui.host>" + CALLBACK_PATH + ", which only the gateway serves"))
    if len(problems) > before:
        return None
    assert exposure is not None and auth is not None and ranges is not None
    return UiSettings(exposure=exposure, host=host, tls_key_vault_certificate=kv_cert, tls_secret_name=secret,
                      allowed_source_ranges=ranges, auth=auth, entra=entra)
