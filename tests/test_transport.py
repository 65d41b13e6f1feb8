"""Every link the deployment makes has its protection on the wire written down
(components/kubernetes/transport.py), and docs/security.md shows prod's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.kubernetes import network_policies as np
from components.kubernetes.external_database import ExternalDatabase
from components.kubernetes.task_logs import TaskLogStore
from components.kubernetes.transport import protection, transport_table
from components.model import names
from tests.conftest import config_for
from tests.test_network_policies import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
STORE = TaskLogStore("https://<account>.blob.core.windows.net", "<client>", "<tenant>", "<backup client>")
AZURE_DB = ExternalDatabase("<server>.postgres.database.azure.com", "airflowadmin", "<password>", "10.30.0.0/24")


def flow_args(changes: dict[str, Any]) -> dict[str, Any]:
    external = AZURE_DB if changes.get("airflow-aks:database") == "azure" else None
    return {"task_log_store": STORE, "external_database": external}


def settings_of(stack: str, changes: dict[str, Any]) -> Any:
    return config_for(stack, **{k.removeprefix("airflow-aks:"): v for k, v in changes.items()}).settings


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_link_of_every_variant_has_a_protection(variant: str) -> None:
    stack, changes = VARIANTS[variant]
    settings = settings_of(stack, changes)
    for flow in np.flows(settings, **flow_args(changes)):
        found = protection(flow, settings)
        assert found.kind in ("tls", "tunnel", "plaintext", "yours") and found.how, \
            f"{variant}: {flow.src.name} -> {flow.dst.name}:{flow.port}"


def test_a_link_nobody_described_is_refused() -> None:
    settings = config_for("prod").settings
    stray = np.Flow(np.airflow("scheduler"), np.Peer("a new service"), 9000, why="something new")
    with pytest.raises(ValueError, match="a new service:9000"):
        protection(stray, settings)


def test_the_secrets_links_say_what_they_carry() -> None:
    """The broker and in-cluster database links are plaintext, and the table says so;
    the flexible server and Azure's endpoints are TLS."""
    settings = config_for("prod").settings
    broker = np.Flow(np.airflow("worker"), np.RABBITMQ, names.RABBITMQ_PORT)
    assert protection(broker, settings).kind == "plaintext", "airflow-worker -> rabbitmq"
    database = np.Flow(np.PGBOUNCER, np.POSTGRES, names.POSTGRES_PORT)
    assert "SCRAM" in protection(database, settings).how, "pgbouncer -> postgres"
    server = np.Flow(np.PGBOUNCER, np.database_server("10.30.0.0/24"), names.POSTGRES_PORT)
    assert protection(server, settings).how.startswith("TLS, sslmode=verify-full"), "pgbouncer -> flexible server"
    direct = np.Flow(np.airflow("migrate"), np.database_server("10.30.0.0/24"), names.POSTGRES_PORT)
    assert "sslmode=require" in protection(direct, settings).how, "airflow-migrate -> flexible server"
    logs = np.Flow(np.airflow("worker"), np.AZURE_PUBLIC, np.HTTPS_PORT)
    assert protection(logs, settings).kind == "tls", "airflow-worker -> Azure Storage"


def test_docs_security_shows_the_links_of_prod() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    table = transport_table(config_for("prod").settings, task_log_store=STORE)
    assert table in text, "docs/security.md: the links of prod (python -m components.kubernetes.transport)"
