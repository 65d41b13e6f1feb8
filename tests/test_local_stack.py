"""The `local` stack: no Azure resource, every Kubernetes workload, a locally built image."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.azure.image import LOCAL_IMAGE, context_revision
from components.config import stack_file_config
from components.model import names
from components.model.settings import ConfigError, parse_settings
from tests.conftest import config_for
from tests.harness import ProgramRun, shared_run


@pytest.fixture(scope="module")
def local() -> ProgramRun:
    run = shared_run("local")
    assert run.error is None, run.error
    return run


def test_no_azure_resource_and_no_azure_call(local: ProgramRun) -> None:
    azure = [r.name for r in local.resources if r.type.startswith("azure-native:")]
    assert azure == []
    assert not [token for token, _ in local.invokes if token.startswith("azure-native:")]
    assert local.exchange.calls == [], "no registry token"


def test_every_kubernetes_workload_is_still_declared(local: ProgramRun, runs: dict[str, ProgramRun]) -> None:
    def objects(run: ProgramRun) -> set[tuple[str, str | None]]:
        return {(m["kind"], m["metadata"].get("name")) for m in run.manifests()}

    # The same objects, but the KEDA ones (a local cluster has no KEDA unless
    # the user says so) and the task-log ones (no Azure storage unless the
    # user names an emulator).
    keda = {("ScaledObject", names.WORKER), ("TriggerAuthentication", "airflow-keda")}
    # With it, the api-server's own account and connection, for the log reader's identity.
    logs = {("ServiceAccount", names.TASK_LOG_SERVICE_ACCOUNT), ("Secret", names.TASK_LOG_SECRET),
            ("ServiceAccount", names.API_SERVER_SERVICE_ACCOUNT), ("Secret", names.TASK_LOG_READER_SECRET)}
    # Nor the database dumps, which go to that storage (tests/test_backups.py).
    dumps = {("CronJob", names.DATABASE_BACKUP), ("NetworkPolicy", names.DATABASE_BACKUP),
             ("ServiceAccount", names.BACKUP_SERVICE_ACCOUNT), ("ConfigMap", names.BACKUP_CONFIG_MAP)}
    assert objects(local) == objects(runs["dev"]) - keda - logs - dumps
    assert keda | logs | dumps <= objects(runs["dev"])
    for kind, name in [("Deployment", names.API_SERVER), ("Deployment", names.SCHEDULER),
                       ("Deployment", names.DAG_PROCESSOR), ("StatefulSet", names.TRIGGERER),
                       ("StatefulSet", names.WORKER), ("StatefulSet", names.POSTGRES),
                       ("StatefulSet", names.RABBITMQ)]:
        local.manifest(kind, name)


def test_kubernetes_objects_use_the_current_context(local: ProgramRun) -> None:
    provider = local.one("pulumi:providers:kubernetes")
    assert provider.name == "local-k8s"
    assert "kubeconfig" not in provider.inputs and "context" not in provider.inputs, "the current context"
    for r in local.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider and "::local-k8s::" in r.provider, f"{r.name}: provider {r.provider}"


def test_kube_context_reaches_the_provider() -> None:
    config = stack_file_config("local")
    config["airflow-aks:kubeContext"] = "kind-airflow"
    run = shared_run("local", config)
    assert run.error is None, run.error
    assert run.one("pulumi:providers:kubernetes").inputs["context"] == "kind-airflow"


def test_image_is_loaded_locally_with_a_content_tag(local: ProgramRun) -> None:
    image = local.one("docker-build:index:Image")
    assert image.inputs["push"] is False and image.inputs["load"] is True
    assert "registries" not in image.inputs
    tag = f"{LOCAL_IMAGE}:{config_for('local').settings.airflow_version}-{context_revision()}"
    assert image.inputs["tags"] == [tag]
    worker = local.manifest("StatefulSet", names.WORKER)["spec"]["template"]["spec"]
    assert worker["containers"][0]["image"] == tag
    assert "nodeSelector" not in worker and "tolerations" not in worker, "no AKS worker pool locally"


def test_a_changed_dag_changes_the_local_tag(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "a.py").write_text("x = 1\n")
    before = context_revision(tmp_path)
    (tmp_path / "dags" / "a.py").write_text("x = 2\n")
    assert context_revision(tmp_path) != before


def test_local_outputs(local: ProgramRun) -> None:
    assert "portForwardCommand" in local.outputs and "adminPassword" in local.secret_outputs
    assert "clusterName" not in local.outputs


def test_target_is_checked_and_location_only_needed_for_aks() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"target": "gke"}, stack="x", location=None)
    assert dict(err.value.problems) == {
        "target": "must be one of aks, local, got 'gke'",
        "azure-native:location": dict(err.value.problems)["azure-native:location"],
    }
    assert parse_settings({"target": "local"}, stack="x", location=None).target == "local"


def test_kube_context_only_for_local() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"kubeContext": "kind"}, stack="x", location="westeurope")
    assert "target: local" in dict(err.value.problems)["kubeContext"]


def test_local_objects_validate_strictly(local: ProgramRun) -> None:
    import kubernetes_validate

    for m in local.manifests():
        kubernetes_validate.validate(m, "1.35.0", strict=True)
