"""The api-server: UI, REST API and the Execution API every running task
talks to. Its Deployment, Service and disruption budget, and how users sign
in (Entra ID through FAB's webserver_config.py, or SimpleAuthManager's passwords)."""

from __future__ import annotations

from typing import Any

from components.kubernetes import k8s, ui_auth
from components.kubernetes.airflow_pod import PodParts, http_checks
from components.kubernetes.k8s import KubeObject, checksum
from components.kubernetes.secrets import AUTH_PASSWORDS_KEY
from components.model import names
from components.model.airflow_cfg import AUTH_PASSWORDS_FILE
from components.model.settings import Settings
from components.model.ui_auth import WEBSERVER_CONFIG_KEY, WEBSERVER_CONFIG_PATH, webserver_config

COMPONENT = ui_auth.API_SERVER_COMPONENT
AUTH_SECRET_DIR = "/secrets/auth"
# The api-server's pod template: changes with its webserver_config.py only.
WEBSERVER_CONFIG_CHECKSUM = "airflow-aks/webserver-config-checksum"


def web_config(settings: Settings) -> dict[str, str]:
    """Entra ID sign-in: FAB's webserver_config.py, read by the api-server only
    (a key of the airflow-config ConfigMap); nothing without Entra ID."""
    return {WEBSERVER_CONFIG_KEY: webserver_config(settings.ui)} if ui_auth.entra_on(settings) else {}


def _entra_sign_in(config: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The container's mounts and the pod's fields for Entra ID sign-in."""
    mounts = [{"name": "config", "mount_path": WEBSERVER_CONFIG_PATH, "sub_path": WEBSERVER_CONFIG_KEY,
               "read_only": True}]
    # A subPath mount never sees a changed ConfigMap: the api-server
    # alone rolls when only its sign-in settings change.
    return mounts, {"annotations": {WEBSERVER_CONFIG_CHECKSUM: checksum(config)}}


def _password_sign_in(parts: PodParts) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The container's mounts and the pod's fields for SimpleAuthManager's passwords.

    SimpleAuthManager opens its passwords file for writing, so it gets a
    copy of the Secret in a writable emptyDir."""
    auth = {"name": "auth", "mount_path": f"{names.AIRFLOW_HOME}/auth"}
    copy = {
        "name": "auth-passwords",
        "image": parts.image,
        "command": ["cp", f"{AUTH_SECRET_DIR}/{AUTH_PASSWORDS_KEY}", AUTH_PASSWORDS_FILE],
        "volume_mounts": [{**auth}, {"name": "auth-secret", "mount_path": AUTH_SECRET_DIR, "read_only": True}],
        "resources": parts.control(COMPONENT),
        "security_context": k8s.container_security(),
    }
    return [auth], {"init_containers": [copy], "volumes": [
        {"name": "auth", "empty_dir": {}}, {"name": "auth-secret", "secret": {"secret_name": names.AUTH_SECRET}}]}


def api_server_objects(parts: PodParts) -> list[KubeObject]:
    """The Deployment (`apiServerReplicas`), its Service and its disruption budget."""
    config = web_config(parts.settings)
    mounts, pod_fields = (_entra_sign_in(config[WEBSERVER_CONFIG_KEY]) if config
                          else _password_sign_in(parts))
    container = parts.container(
        COMPONENT, [COMPONENT], parts.control(COMPONENT),
        ports=[{"name": "http", "container_port": names.API_SERVER_PORT}],
        **http_checks("/api/v2/monitor/health", names.API_SERVER_PORT, ready_every=10, ready_timeout=5,
                      live_every=15),
        volume_mounts=mounts,
    )
    replicas = parts.plan.control_plane.api_server.replicas
    return [
        parts.deployment(COMPONENT, replicas, parts.pod(COMPONENT, [container], **pod_fields)),
        parts.service(COMPONENT, "http", names.API_SERVER_PORT),
        # Drains and upgrades take one api-server at a time: with two replicas
        # the UI and the Execution API stay up.
        parts.disruption_budget(COMPONENT),
    ]
