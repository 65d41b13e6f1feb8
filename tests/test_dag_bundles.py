"""dagBundles under Pulumi mocks and in the offline render: the bundle list in
airflow.cfg (no secret in it), the git token only in its Secret and only on the
pods that fetch bundles, the DAG container with a reader role scoped to it, and
every bad entry refused naming `dagBundles[i].field`."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.azure.task_log_storage import BLOB_DATA_READER_ROLE
from components.config import file_secret_keys, project_values, stack_file_config
from components.kubernetes.dag_bundles import DAG_BUNDLE_SECRET, STORAGE_VOLUME
from components.model import dag_bundles, names
from components.model.settings import ConfigError, parse_settings
from components.render import SECRET_PLACEHOLDER
from tests.harness import ROOT, TASK_LOG_PRINCIPAL_ID, ProgramRun, is_secret, plain, shared_run
from tests.readme_tables import section
from tests.test_settings import parse, problems_of

TOKEN = "ghp_TESTTOKENdoNotLeak0123456789"
GIT = {"name": "team-repo", "kind": "git", "url": "https://github.com/data-team/dags.git", "ref": "release/v2",
       "subdir": "dags", "credentials": True, "refreshSeconds": 30}
BLOB = {"name": "drop", "kind": "blob", "container": "airflow-dags", "prefix": "team-a"}
BUNDLES = [{"name": "dags-folder", "kind": "image"}, GIT, BLOB]
ROLE = "azure-native:authorization:RoleAssignment"
CONTAINER = "azure-native:storage:BlobContainer"
AIRFLOW_PODS = ("api-server", "scheduler", "dag-processor", "triggerer", "worker", "migrate")




def prod_run(**changes: Any) -> ProgramRun:
    config = stack_file_config("prod")
    config.update({"airflow-aks:dagBundles": BUNDLES, "airflow-aks:dagBundleTokens": {"team-repo": TOKEN}})
    config.update({f"airflow-aks:{k}": v for k, v in changes.items()})
    run = shared_run("prod", config, secret_keys=["airflow-aks:dagBundleTokens"])
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return prod_run()


def cfg_of(run: ProgramRun) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(run.manifest("ConfigMap", names.CONFIG_MAP)["data"]["airflow.cfg"])
    return cfg


def pods(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Airflow component -> its pod template."""
    found = {}
    for m in run.manifests():
        if m["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = m["spec"]["template"]["metadata"]["labels"]
            if labels.get("app.kubernetes.io/name") == "airflow":
                found[labels["app.kubernetes.io/component"]] = m["spec"]["template"]
    return found


# -- settings ---------------------------------------------------------------


def test_the_default_is_the_image_folder_alone_as_airflow_s_own_default() -> None:
    s = parse()
    assert [(b.name, b.kind) for b in s.dag_bundles] == [("dags-folder", "image")]
    # Airflow's default list names the same bundle with the same class and no kwargs
    # (airflow/config_templates/config.yml, [dag_processor] dag_bundle_config_list).
    assert json.loads(dag_bundles.bundle_options(s)["dag_bundle_config_list"]) == [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}]


def test_git_and_blob_bundles_parse_with_their_defaults() -> None:
    s = parse(dagBundles=[{"name": "r", "kind": "git", "url": "https://dev.azure.com/org/p/_git/dags"},
                          {"name": "b", "kind": "blob", "container": "dags"}])
    git, blob = s.dag_bundles
    assert (git.ref, git.subdir, git.credentials, git.refresh_seconds) == ("main", None, False, 60)
    assert (blob.container, blob.prefix, blob.refresh_seconds) == ("dags", None, 60)


@pytest.mark.parametrize("entry, key, fragment", [
    ({"name": "r", "kind": "git", "url": "http://github.com/a/b.git"}, "url", "https URL"),
    ({"name": "r", "kind": "git", "url": "https://user:tok@github.com/a/b.git"}, "url", "without credentials"),
    ({"name": "r", "kind": "git", "url": "git@github.com:a/b.git"}, "url", "https URL"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "ref": "a..b"}, "ref", "branch or tag"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "ref": "-x"}, "ref", "branch or tag"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "subdir": "../etc"}, "subdir", "'..'"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "refreshSeconds": 4}, "refreshSeconds",
     "from 5 to 86400"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "refreshSeconds": 86_401},
     "refreshSeconds", "from 5 to 86400"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "credentials": "yes"}, "credentials",
     "true or false"),
    ({"name": "r", "kind": "git", "url": "https://github.com/a/b.git", "container": "x"}, "container",
     "takes no such key"),
    ({"name": "b", "kind": "blob", "container": "Bad_Name"}, "container", "blob container name"),
    ({"name": "b", "kind": "blob", "container": "a--b"}, "container", "blob container name"),
    ({"name": "b", "kind": "blob", "container": names.TASK_LOG_CONTAINER}, "container", "program's own"),
    ({"name": "b", "kind": "blob", "container": "dags", "prefix": "/abs"}, "prefix", "relative path"),
    ({"name": "Upper", "kind": "image"}, "name", "lowercase"),
    ({"name": "i", "kind": "image", "refreshSeconds": 5}, "refreshSeconds", "takes no such key"),
    ({"name": "x", "kind": "svn"}, "kind", "image, git, blob"),
])
def test_a_bad_entry_is_refused_naming_its_field(entry: dict[str, Any], key: str, fragment: str) -> None:
    problems = problems_of(dagBundles=[{"name": "dags-folder", "kind": "image"}, entry])
    assert fragment in problems[f"dagBundles[1].{key}"]


def test_names_are_unique_and_the_image_folder_is_one_bundle_at_most() -> None:
    problems = problems_of(dagBundles=[{"name": "a", "kind": "image"}, {"name": "a", "kind": "blob",
                                                                          "container": "dags"},
                                       {"name": "c", "kind": "image"}])
    assert "already the name of dagBundles[0]" in problems["dagBundles[1].name"]
    assert "at most one `image` bundle" in problems["dagBundles[2].kind"]
    assert "non-empty list" in problems_of(dagBundles=[])["dagBundles"]


def test_a_list_without_the_image_folder_is_allowed() -> None:
    s = parse(dagBundles=[{"name": "r", "kind": "git", "url": "https://github.com/a/b.git"}])
    assert [b.kind for b in s.dag_bundles] == ["git"]


def test_a_blob_bundle_needs_the_identity_or_the_emulator() -> None:
    blob = {"name": "b", "kind": "blob", "container": "dags"}
    aks = problems_of(dagBundles=[blob], remoteTaskLogs=False, databaseBackupSchedule=None)
    assert "remoteTaskLogs" in aks["dagBundles[0]"] and "workload identity" in aks["dagBundles[0]"]
    local = problems_of(target="local", dagBundles=[blob])
    assert "taskLogEmulatorEndpoint" in local["dagBundles[0]"]
    assert parse(target="local", dagBundles=[blob],
                 taskLogEmulatorEndpoint="http://azurite.azurite:10000/devstoreaccount1").dag_bundles


def test_tokens_match_the_credentialed_bundles_and_are_secret() -> None:
    missing = problems_of(dagBundles=[GIT])
    assert "pulumi config set --secret --path 'dagBundleTokens.team-repo'" in missing["dagBundles[0].credentials"]
    stray = problems_of(dagBundles=[GIT], dagBundleTokens={"team-repo": TOKEN, "other": "x"})
    assert "names no `git` bundle" in stray["dagBundleTokens.other"]
    with pytest.raises(ConfigError) as err:
        parse_settings({"dagBundles": [GIT], "dagBundleTokens": {"team-repo": TOKEN}}, stack="t",
                       location="westeurope", secret_keys=frozenset())
    assert "must be a secret" in dict(err.value.problems)["dagBundleTokens"]
    s = parse_settings({"dagBundles": [GIT], "dagBundleTokens": {"team-repo": TOKEN}}, stack="t",
                       location="westeurope", secret_keys=frozenset({"dagBundleTokens"}))
    assert s.dag_bundle_tokens == {"team-repo"}
    assert TOKEN not in repr(s), "settings keep the names, never a token"


def test_the_bundle_options_cannot_be_overridden() -> None:
    for option in ("dag_bundle_config_list", "dag_bundle_storage_path"):
        problems = problems_of(airflowConfig={"dag_processor": {option: "x"}})
        assert "dagBundles" in problems[f"airflowConfig.dag_processor.{option}"]


# -- the program under mocks ------------------------------------------------


def test_airflow_cfg_lists_the_bundles_without_a_secret(prod: ProgramRun) -> None:
    cfg = cfg_of(prod)
    listed = json.loads(cfg["dag_processor"]["dag_bundle_config_list"])
    assert listed == [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {"name": "team-repo", "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
         "kwargs": {"repo_url": GIT["url"], "tracking_ref": "release/v2", "subdir": "dags",
                    "git_conn_id": "dag_bundle_team_repo", "refresh_interval": 30}},
        {"name": "drop", "classpath": "airflow_aks_bundles.WasbDagBundle",
         "kwargs": {"wasb_conn_id": "wasb_default", "container_name": "airflow-dags", "prefix": "team-a",
                    "refresh_interval": 60}},
    ]
    assert cfg["dag_processor"]["dag_bundle_storage_path"] == dag_bundles.BUNDLE_STORAGE_PATH


def test_the_token_is_only_in_its_secret_as_a_pulumi_secret(prod: ProgramRun) -> None:
    holders = [r for r in prod.resources if TOKEN in json.dumps(plain(r.inputs))]
    assert [(r.type, plain(r.inputs)["metadata"]["name"]) for r in holders] == [
        ("kubernetes:core/v1:Secret", DAG_BUNDLE_SECRET)]
    [secret] = holders
    data = secret.inputs["stringData"]
    assert is_secret(data) or is_secret(data["team-repo"]), "the token stays a Pulumi secret"
    # What the git provider's GitHook reads: the token as the connection's password.
    assert json.loads(plain(data)["team-repo"]) == {"conn_type": "git", "password": TOKEN}
    assert TOKEN not in json.dumps(prod.outputs)
    for m in prod.manifests():
        if m["kind"] == "ConfigMap":
            assert TOKEN not in json.dumps(m)


def test_only_the_fetchers_read_the_secret_and_mount_the_bundle_volume(prod: ProgramRun) -> None:
    env_name = "AIRFLOW_CONN_DAG_BUNDLE_TEAM_REPO"
    for component, template in pods(prod).items():
        spec = template["spec"]
        [container] = spec["containers"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        fetches = component in ("dag-processor", "worker")
        assert (env_name in refs) == fetches, component
        assert all(r["name"] != DAG_BUNDLE_SECRET for n, r in refs.items() if n != env_name), component
        assert (mounts.get(STORAGE_VOLUME) == dag_bundles.BUNDLE_STORAGE_PATH) == fetches, component
        assert ("emptyDir" in volumes.get(STORAGE_VOLUME, {})) == fetches, component
        if fetches:
            assert refs[env_name] == {"name": DAG_BUNDLE_SECRET, "key": "team-repo"}
        # The blob bundle reads with the pods' workload identity: the log
        # components had it already, the dag-processor gets it for the bundle.
        identity = template["metadata"]["labels"].get("azure.workload.identity/use") == "true"
        assert identity == (component in ("dag-processor", "worker", "triggerer", "api-server")), component


def test_the_dag_container_and_a_reader_role_scoped_to_it(prod: ProgramRun) -> None:
    [container] = [r for r in prod.of_type(CONTAINER) if r.inputs["containerName"] == "airflow-dags"]
    assert container.inputs["publicAccess"] == "None"
    readers = bundle_readers(prod)
    assert len(readers) == 1
    [reader] = readers
    account = container.inputs["accountName"]
    assert reader.inputs["scope"].endswith(
        f"/providers/Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers/airflow-dags")
    assert reader.inputs["principalId"] == TASK_LOG_PRINCIPAL_ID
    # The Airflow pods wait for the role: a parse before it would fail.
    assert "airflow-task-logs-dags-airflow-dags-reader" in prod.options_of("workloads-airflow-dag-processor"
                                                                           ).waits_for()


def bundle_readers(run: ProgramRun) -> list[Any]:
    """Blob Data Reader role assignments but the api-server's on the task logs
    (tests/test_task_log_storage.py)."""
    return [r for r in run.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(BLOB_DATA_READER_ROLE)
            and not r.inputs["scope"].endswith("/containers/airflow-logs")]


def test_without_blob_bundles_the_dag_processor_has_no_azure_identity() -> None:
    # keyVault (on in prod) would give it the identity for the vault.
    run = prod_run(dagBundles=[{"name": "dags-folder", "kind": "image"}, GIT], keyVault=False)
    template = pods(run)["dag-processor"]
    assert "azure.workload.identity/use" not in template["metadata"]["labels"]
    assert not bundle_readers(run)


def test_the_fetchers_reach_the_git_host_and_the_storage_account(prod: ProgramRun) -> None:
    policies = {m["metadata"]["name"]: m for m in prod.manifests() if m["kind"] == "NetworkPolicy"}
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "worker"):
        egress = policies[f"airflow-{component}"]["spec"].get("egress", [])
        https = [r for r in egress if {"port": 443, "protocol": "TCP"} in r["ports"]]
        fetches = component in ("dag-processor", "worker")
        has_logs = component in ("api-server", "triggerer", "worker")
        assert bool(https) == (fetches or has_logs), component
        for rule in https:
            assert all("ipBlock" in peer for peer in rule["to"]), "public addresses only"


# -- the offline render -----------------------------------------------------


def render_in_process_of_its_own(stack: str, project_dir: Path) -> list[Path]:
    """components.render.render for a stack file in project_dir, as the
    render command runs it: in a process of its own (no Pulumi engine, and no
    event loop left behind by this session's mock runs)."""
    out = project_dir / f"out-{stack}"
    call = f"render({stack!r}, Path({str(out)!r}), project_dir=Path({str(project_dir)!r}))"
    code = f"from pathlib import Path; from components.render import render; print('\\n'.join(map(str, {call})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    return [Path(line) for line in done.stdout.splitlines()]


def test_the_offline_render_needs_no_token(tmp_path: Path) -> None:
    """A stack file as `pulumi config set --secret --path` leaves it: the
    token encrypted; the render reads neither it nor the passphrase."""
    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "Pulumi.prod.yaml").read_text())
    data["config"]["airflow-aks:dagBundles"] = BUNDLES
    data["config"]["airflow-aks:dagBundleTokens"] = {"team-repo": {"secure": "v1:c2VjcmV0:ZW5jcnlwdGVk"}}
    (tmp_path / "Pulumi.bundles.yaml").write_text(yaml.safe_dump(data))
    assert file_secret_keys(project_values(data["config"])) == {"dagBundleTokens"}
    written = render_in_process_of_its_own("bundles", tmp_path)
    manifests = [yaml.safe_load(p.read_text()) for p in written if p.suffix == ".yaml"]
    [secret] = [m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == DAG_BUNDLE_SECRET]
    assert secret["stringData"] == {"team-repo": SECRET_PLACEHOLDER}
    assert "v1:c2VjcmV0" not in "".join(p.read_text() for p in written)
    # A plain token in the stack file is refused: it would sit in the repository.
    data["config"]["airflow-aks:dagBundleTokens"] = {"team-repo": TOKEN}
    (tmp_path / "Pulumi.plain.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(subprocess.CalledProcessError) as err:
        render_in_process_of_its_own("plain", tmp_path)
    assert "dagBundleTokens: must be a secret" in err.value.stderr


def test_the_user_guide_quotes_the_measured_times() -> None:
    """The figures the user guide's "Ship DAGs" quotes are the recorded ones
    (written by the real test with AIRFLOW_AKS_RECORD=1)."""
    measured = json.loads((ROOT / "bench" / "results" / "dag_bundles.json").read_text())
    guide = " ".join(section("docs/user-guide.md", "## Ship DAGs").split())
    assert (f"a push took {measured['commit_to_running_seconds']} s from the push to the new DAG's first task "
            f"running, an upload {measured['upload_to_running_seconds']} s") in guide, "docs/user-guide.md, Ship DAGs"
    assert f"`refreshSeconds: {measured['refresh_seconds']}`" in guide, "docs/user-guide.md, Ship DAGs"
