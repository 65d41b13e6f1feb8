"""The kubeconfig the program's Kubernetes provider uses on AKS: Entra ID through kubelogin, no credential.

Pure Python. AKS's user credential listing (listClusterUserCredential) gives
the cluster's address and CA; what it gives as the user depends on the
cluster: a client certificate and token where local accounts are on, a
kubelogin exec entry set for device-code sign-in where Entra ID is on
(`format: exec`). Neither is kept: the provider's user is always the exec
entry below, so nothing in the Pulumi state signs in by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

# The Entra application AKS's API server accepts tokens for, the same in every
# cloud and tenant (Azure/kubelogin docs/book/src/concepts/aks.md, "Azure
# Kubernetes Service AAD Server").
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# What `kubelogin convert-kubeconfig -l azurecli` writes as the exec entry
# (Azure/kubelogin pkg/internal/converter/convert.go): the client
# authentication API version, `get-token --login azurecli --server-id <app>`,
# and no tenant, which the Azure CLI's own sign-in decides
# (docs/book/src/concepts/login-modes/azurecli.md). CI sets AAD_LOGIN_METHOD
# to switch the login mode without another kubeconfig
# (pkg/internal/token/options.go, UpdateFromEnv; docs/aks-access.md).
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
KUBELOGIN_ARGS = ("get-token", "--login", "azurecli", "--server-id", AKS_SERVER_APP_ID)
INSTALL_HINT = ("kubelogin is not installed: it signs the Kubernetes provider in with Entra ID "
                "(docs/aks-access.md; `az aks install-cli` or github.com/Azure/kubelogin/releases)")
# What a user entry may hold that signs in by itself (client-go's AuthInfo):
# none of it reaches the provider's kubeconfig.
CREDENTIAL_FIELDS = ("client-certificate-data", "client-key-data", "client-certificate", "client-key",
                     "token", "tokenFile", "username", "password", "auth-provider")
CONTEXT = "aks"
USER = "entra"


class KubeconfigError(ValueError):
    """AKS's credential listing had no usable cluster entry."""


def listed_cluster(listed: str) -> tuple[str, dict[str, Any]]:
    """The name and cluster entry of the listing's current context, as AKS wrote them.

    The entry is kept whole (server, certificate-authority-data, and anything
    else AKS put there): pulumi-kubernetes replaces its provider, and with it
    every object, when the active cluster entry of the kubeconfig changes
    (provider/pkg/provider/provider.go, DiffConfig), so the entry must be the
    one earlier releases of this program passed on.
    """
    config = yaml.safe_load(listed)
    if not isinstance(config, Mapping):
        raise KubeconfigError("AKS returned a user kubeconfig that is not a YAML mapping")
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster") for c in config.get("clusters") or []}
    current = config.get("current-context")
    name = (contexts.get(current) or {}).get("cluster") if current in contexts else None
    if name is None and len(clusters) == 1:
        name = next(iter(clusters))
    entry = clusters.get(name)
    if not isinstance(entry, Mapping) or not entry.get("server"):
        raise KubeconfigError("AKS returned a user kubeconfig without the cluster's server address")
    return str(name), dict(entry)


def entra_kubeconfig(listed: str) -> str:
    """A kubeconfig for the listed cluster whose only user runs kubelogin: no key, certificate or token."""
    name, cluster = listed_cluster(listed)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": USER, "user": {"exec": {
            "apiVersion": EXEC_API_VERSION,
            "command": "kubelogin",
            "args": list(KUBELOGIN_ARGS),
            "installHint": INSTALL_HINT,
            # Never prompts: a device-code or browser sign-in would hang `pulumi up` in CI.
            "interactiveMode": "Never",
        }}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": name, "user": USER}}],
        "current-context": CONTEXT,
    }
    return yaml.safe_dump(config, sort_keys=False)


def credentials_in(kubeconfig: str) -> list[str]:
    """The fields of any user entry that sign in by themselves (empty: none)."""
    config = yaml.safe_load(kubeconfig) or {}
    found = []
    for user in config.get("users") or []:
        entry = user.get("user") or {}
        found += [f"{user.get('name')}.{k}" for k in CREDENTIAL_FIELDS if entry.get(k)]
    return found
