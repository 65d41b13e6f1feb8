"""docs/user-guide.md kept true: its headings, its worked example, what `protect` blocks, the roles the
program assigns, the Key Vault secret names, each checked against the program."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.model.airflow_cfg import CONNECTIONS_PREFIX, VARIABLES_PREFIX, key_vault_secret_name
from tests.conftest import config_for
from tests.harness import ProgramRun, run_program, stack_file_config
from tests.readme_tables import README, doc, section, table_after
from tests.test_docs_links import anchors as page_anchors

GUIDE = "docs/user-guide.md"
ROOT = Path(__file__).resolve().parent.parent

# The headings other pages link to (README, docs/operations.md, ...): renaming one breaks their links.
HEADINGS = ["## Deploy", "## Reach the UI", "## Run the reference DAG", "## Change how many tasks run at once",
            "## Ship DAGs", "## Add Python packages", "## Upgrade Airflow and this program",
            "## Connections and secrets", "## Task logs", "## Reaching your own systems", "## Render without Azure",
            "## Try a change locally", "## Tear down", "## What the deploying identity needs"]


def test_the_guide_has_the_headings_other_pages_link_to() -> None:
    found = [line for line in doc(GUIDE).splitlines() if line.startswith("## ")]
    assert found == HEADINGS, f"{GUIDE}: its sections, in order"


@pytest.mark.parametrize(("page", "target"), [("README.md", GUIDE), (GUIDE, GUIDE), ("README.md", "README.md"),
                                              (GUIDE, "README.md")])
def test_links_between_readme_and_the_guide_land_on_a_heading(page: str, target: str) -> None:
    base = Path(page).parent
    anchors = page_anchors(doc(target))
    links = re.findall(r"\]\(([^)#\s]*)#([\w-]+)\)", doc(page))
    assert links, f"{page} links somewhere"
    for path, fragment in links:
        if path and (base / path).as_posix().replace("docs/../", "") != target:
            continue
        if not path and page != target:
            continue
        assert fragment in anchors, f"{page}: link to {target}#{fragment} has no heading"


# The worked example: row -> the plan's figure, before (parallelism 1000) and after (2000).
CONCURRENCY_CHANGES = {
    "ConfigMap `airflow-config`: `parallelism`, `max_active_tasks_per_dag`, `default_pool_task_slot_count`":
        lambda p: {p.parallelism, p.max_active_tasks_per_dag, p.default_pool_slots},
    "ScaledObject `airflow-worker`: `maxReplicaCount` (KEDA's ceiling of workers)": lambda p: {p.worker.replicas},
    "worker AgentPool: the autoscaler's `maxCount`": lambda p: {p.worker_nodes.max_count},
    "Deployment `airflow-api-server`: `replicas`": lambda p: {p.control_plane.api_server.replicas},
    "ConfigMap `airflow-pgbouncer`: the result-backend pool": lambda p: {p.database.pgbouncer.result_backend_pool},
    "ConfigMap `airflow-pgbouncer`: `max_client_conn`": lambda p: {p.database.pgbouncer.max_client_conn},
    "StatefulSet `airflow-postgres`: `max_connections`": lambda p: {p.database.max_connections},
    "StatefulSet `airflow-postgres`: memory request, MiB": lambda p: {p.control_plane.postgres.memory_request_mib},
}


def test_the_concurrency_example_is_what_the_plan_derives() -> None:
    rows = table_after("<!-- concurrency-changes -->", page=GUIDE)
    assert set(rows) == set(CONCURRENCY_CHANGES), f"{GUIDE}: the concurrency example's rows"
    plans = [config_for("prod", parallelism=n).plan for n in (1000, 2000)]
    for label, value in CONCURRENCY_CHANGES.items():
        figures = [value(p) for p in plans]
        assert all(len(f) == 1 for f in figures), f"{GUIDE}, {label}: one figure each, got {figures}"
        assert rows[label] == [str(f.pop()) for f in figures], f"{GUIDE}, concurrency example: {label}"


def test_the_concurrency_example_says_what_the_preview_shows() -> None:
    from tests.preview import preview, summary
    from tests.test_config_changes import BUSY, deployed

    config = stack_file_config("prod")
    before = deployed(config)
    after = deployed({**config, "airflow-aks:parallelism": 2000})
    assert before.error is None and after.error is None, (before.error, after.error)
    said = doc(GUIDE).split("<!-- concurrency-preview -->", 1)[1].split("`", 2)[1]
    assert said == summary(preview(before, after, BUSY)), f"{GUIDE}: the preview of parallelism 1000 -> 2000"


# A protected resource type -> how README and the guide name it; a new one must be named there.
PROTECTED = {
    "azure-native:containerservice:ManagedCluster": "the cluster",
    "azure-native:containerregistry:Registry": "the registry",
    "azure-native:storage:StorageAccount": "the storage account and its containers",
    "azure-native:storage:BlobContainer": "the storage account and its containers",
    "azure-native:keyvault:Vault": "the Key Vault",
    "kubernetes:core/v1:PersistentVolumeClaim": "the PostgreSQL and RabbitMQ disks",
    "azure-native:dbforpostgresql:Server": "the flexible server and its database",
    "azure-native:dbforpostgresql:Database": "the flexible server and its database",
}


@pytest.fixture(scope="module")
def protected_runs() -> list[ProgramRun]:
    """prod as shipped, and with the Azure database: between them every resource `protect` guards."""
    from tests.test_database_azure import azure_config

    runs = [run_program("prod"), run_program("prod", azure_config())]
    assert all(r.error is None for r in runs), [r.error for r in runs]
    return runs


def test_tear_down_names_everything_protect_blocks(protected_runs: list[ProgramRun]) -> None:
    types = {o.type for run in protected_runs for o in run.options if o.protect}
    assert types - set(PROTECTED) == set(), f"protected, but not named in Tear down: {types - set(PROTECTED)}"
    assert set(PROTECTED) - types == set(), f"named in Tear down, but not protected: {set(PROTECTED) - types}"
    rows = table_after("<!-- protected -->", page=GUIDE)
    assert set(rows) == set(PROTECTED.values()), f"{GUIDE}, Tear down: the protected table"
    readme = " ".join(README.split("### Tear down\n", 1)[1].split("\n## ", 1)[0].split())
    missing = [name for name in set(PROTECTED.values()) if name not in readme]
    assert missing == [], f"README, Tear down does not name {missing}"


def test_dev_protects_nothing(runs: dict[str, ProgramRun]) -> None:
    """README and the guide: dev goes entirely with `pulumi destroy`."""
    assert [o.name for o in runs["dev"].options if o.protect] == []


# Built-in role ID -> its name (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLE_NAMES = {
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b": "Azure Kubernetes Service RBAC Cluster Admin",
    "ba92f5b4-2d11-453d-a403-e96b0b4c6fe3": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "4d97b98b-1d4f-4787-a291-c67834d212e7": "Network Contributor",
}


def assigned_roles() -> set[str]:
    """The role IDs the program's code names (`..._ROLE = "<guid>"`): every role it assigns."""
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    return {m for path in (ROOT / "components").rglob("*.py")
            for m in re.findall(rf'^[A-Z_]+_ROLE = "({guid})"', path.read_text(), re.MULTILINE)}


def test_the_deploying_identity_section_lists_every_role_the_program_assigns() -> None:
    roles = assigned_roles()
    assert roles - set(ROLE_NAMES) == set(), f"a role with no name here: {roles - set(ROLE_NAMES)}"
    rows = table_after("<!-- roles -->", page=GUIDE)
    assert set(rows) == {ROLE_NAMES[r] for r in roles}, f"{GUIDE}, What the deploying identity needs: the roles"


def test_the_guide_quotes_the_stacks() -> None:
    prod = config_for("prod").settings
    text = " ".join(section(GUIDE, "## Deploy").split())
    assert f"`prod` ({prod.parallelism:,} tasks at once, `protect` on, a Key Vault)" in text, GUIDE
    assert prod.protect and prod.key_vault and not config_for("dev").settings.protect, "the stack files"


def test_the_key_vault_commands_use_the_names_airflow_looks_up() -> None:
    text = section(GUIDE, "## Connections and secrets")
    names = re.findall(r"az keyvault secret set --vault-name \$VAULT --name ([\w-]+)", text)
    assert names == [key_vault_secret_name(CONNECTIONS_PREFIX, "my_postgres"),
                     key_vault_secret_name(VARIABLES_PREFIX, "report_recipients")], f"{GUIDE}: {names}"
    assert 'postgres_conn_id="my_postgres"' in text and 'Variable.get("report_recipients")' in text


def test_every_guide_command_names_what_exists() -> None:
    from tests.test_readme import command_problems, shell_commands

    prerequisites = README.split("## Prerequisites\n", 1)[1].split("\n## ", 1)[0]
    # `pip install` is the image's own command (app/Dockerfile), shown, not run by the reader.
    commands = [c for c in shell_commands(doc(GUIDE)) if not c.startswith("pip ")]
    problems = [p for c in commands for p in command_problems(c, prerequisites)]
    assert problems == [], f"{GUIDE}:\n" + "\n".join(problems)
