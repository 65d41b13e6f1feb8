"""DAG bundles on the pods: the Secret with the git bundles' connections, and
what the pods that fetch bundles mount and read.

A git token is a Pulumi secret from the stack's `dagBundleTokens` (read
with Pulumi's secret config API, never a plain value), and reaches Airflow
only as the password of a `git` connection (AIRFLOW_CONN_<ID>, JSON) in this
Secret, which only the dag-processor and the workers read
(components/model/dag_bundles.py says why those two). airflow.cfg names the
connection ID, never the token. The offline render passes placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi

from components.kubernetes.k8s import KubeObject
from components.model import dag_bundles
from components.model.dag_bundles import BUNDLE_STORAGE_PATH, connection_env, credentialed, fetches_bundles
from components.model.settings import PROJECT, Settings

DAG_BUNDLE_SECRET = "airflow-dag-bundles"
TOKENS_KEY = "dagBundleTokens"
STORAGE_VOLUME = "dag-bundles"
# What an emptyDir of bundle clones may grow to before the kubelet evicts the
# pod: a git bundle keeps a bare clone plus a checkout per version a task
# ran with (Airflow prunes unused ones, [dag_processor] stale_bundle_cleanup_*).
STORAGE_SIZE_LIMIT = "2Gi"


def git_connection(token: str) -> str:
    """The connection the git provider's GitHook reads (providers/git
    hooks/git.py, GitHook.__init__): the password is the token, handed to git
    through a credential helper for https URLs (_token_credential_env); the
    login defaults to "user", which token-based hosts ignore. The URL is the
    bundle's repo_url kwarg, so the connection needs no host."""
    return json.dumps({"conn_type": "git", "password": token})


def read_tokens(settings: Settings) -> dict[str, pulumi.Output[str]]:
    """Each credentialed git bundle's token, as a Pulumi secret (parse_settings
    already checked that every one is there)."""
    names = [b.name for b in credentialed(settings)]
    if not names:
        return {}
    tokens = pulumi.Config(PROJECT).require_secret_object(TOKENS_KEY)
    return {name: pulumi.Output.secret(tokens.apply(lambda t, n=name: str(t[n]))) for name in names}


def dag_bundle_objects(settings: Settings, tokens: Mapping[str, pulumi.Input[str]] | None) -> list[KubeObject]:
    """The Secret of the git bundles' connections; none without credentials.
    tokens None: placeholders (the offline render needs no token)."""
    bundles = credentialed(settings)
    if not bundles:
        return []
    data: dict[str, Any] = {}
    for b in bundles:
        if tokens is None:  # the offline render: no token, no Pulumi engine
            data[b.name] = git_connection(f"<dagBundleTokens.{b.name}>")
        else:
            data[b.name] = pulumi.Output.secret(pulumi.Output.from_input(tokens[b.name]).apply(git_connection))
    return [KubeObject("Secret", "dag-bundles-secret", {
        "metadata": {"name": DAG_BUNDLE_SECRET, "namespace": settings.namespace,
                     "labels": {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "dag-bundles"}},
        "type": "Opaque",
        "string_data": data,
    })]


def bundle_env(settings: Settings, component: str) -> list[dict[str, Any]]:
    """The git connections, on the pods that fetch bundles only."""
    if not fetches_bundles(component):
        return []
    return [{"name": connection_env(b.name),
             "value_from": {"secret_key_ref": {"name": DAG_BUNDLE_SECRET, "key": b.name}}}
            for b in credentialed(settings)]


def bundle_mounts(component: str) -> list[dict[str, Any]]:
    return [{"name": STORAGE_VOLUME, "mount_path": BUNDLE_STORAGE_PATH}] if fetches_bundles(component) else []


def bundle_volumes(component: str) -> list[dict[str, Any]]:
    return ([{"name": STORAGE_VOLUME, "empty_dir": {"size_limit": STORAGE_SIZE_LIMIT}}]
            if fetches_bundles(component) else [])


def identity_components(settings: Settings) -> tuple[str, ...]:
    """Components that need the Airflow pods' Azure identity for the
    bundles: the fetchers, when a blob bundle reads the storage account."""
    return dag_bundles.BUNDLE_FETCHERS if dag_bundles.blob_bundles(settings) else ()
