"""dagBundles -> Airflow's bundle list, and which pods fetch bundles.

Pure: the list that airflow.cfg's [dag_processor] dag_bundle_config_list
holds (no secret in it: a git token reaches the pods as an Airflow
connection from a Kubernetes Secret, components/kubernetes/dag_bundles.py),
where the bundles are stored on a pod, and the connection IDs.

Which components fetch bundles, from Airflow 3.3.2's code:
- the dag-processor: DagFileProcessorManager refreshes every bundle and
  parses its files (airflow/dag_processing/manager.py, DagBundlesManager);
- the Celery workers: each task's process initializes the bundle at the
  version its run recorded before it imports the DAG file
  (airflow/sdk/execution_time/task_runner.py, parse: get_bundle(...).initialize()),
  and executor callbacks do the same (sdk/execution_time/callback_supervisor.py).
The triggerer does not: it imports trigger classes by their classpath from the
installed packages (airflow/jobs/triggerer_job_runner.py, import_string) and
reads DAGs from the database (DBDagBag). The scheduler and the api-server
only read the list (bundle names, view URLs); a GitDagBundle they construct
for a view URL looks its connection up and carries on without it when the
URL is given (providers/git bundles/git.py, GitDagBundle.__init__).
"""

from __future__ import annotations

import json
from typing import Any

from components.model.names import AIRFLOW_HOME
from components.model.settings import DagBundle, Settings

# Where bundles keep their clones and downloads: an emptyDir on each pod
# that fetches them (the root filesystem is read-only). Airflow's default is
# under /tmp, which would share the pods' scratch volume with it.
BUNDLE_STORAGE_PATH = f"{AIRFLOW_HOME}/dag-bundles"
BUNDLE_FETCHERS = ("dag-processor", "worker")

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
GIT_BUNDLE = "airflow.providers.git.bundles.git.GitDagBundle"
# app/config/airflow_aks_bundles.py (on sys.path from $AIRFLOW_HOME/config):
# no released Azure provider this image installs has WasbDagBundle yet.
BLOB_BUNDLE = "airflow_aks_bundles.WasbDagBundle"
# The wasb connection the blob bundles read with: the task-log connection
# (the pods' workload identity on AKS, the emulator on a local cluster).
BLOB_CONNECTION_ID = "wasb_default"


def connection_id(bundle_name: str) -> str:
    """The Airflow connection of a git bundle's credentials (names use '-',
    which connection IDs in environment variables avoid)."""
    return "dag_bundle_" + bundle_name.replace("-", "_")


def connection_env(bundle_name: str) -> str:
    """The environment variable Airflow reads that connection from
    (EnvironmentVariablesBackend: AIRFLOW_CONN_ + the ID upper-cased)."""
    return "AIRFLOW_CONN_" + connection_id(bundle_name).upper()


def credentialed(settings: Settings) -> list[DagBundle]:
    return [b for b in settings.dag_bundles if b.kind == "git" and b.credentials]


def blob_bundles(settings: Settings) -> list[DagBundle]:
    return [b for b in settings.dag_bundles if b.kind == "blob"]


def git_bundles(settings: Settings) -> list[DagBundle]:
    return [b for b in settings.dag_bundles if b.kind == "git"]


def blob_containers(settings: Settings) -> list[str]:
    """The containers the blob bundles read, each once, in order."""
    return list(dict.fromkeys(b.container for b in blob_bundles(settings) if b.container))


def bundle_entry(bundle: DagBundle) -> dict[str, Any]:
    """One entry of dag_bundle_config_list: name, classpath, kwargs."""
    kwargs: dict[str, Any] = {}
    if bundle.kind == "image":
        # LocalDagBundle's path defaults to [core] dags_folder, the image's.
        return {"name": bundle.name, "classpath": LOCAL_BUNDLE, "kwargs": kwargs}
    if bundle.kind == "git":
        kwargs = {"repo_url": bundle.url, "tracking_ref": bundle.ref}
        if bundle.subdir:
            kwargs["subdir"] = bundle.subdir
        if bundle.credentials:
            kwargs["git_conn_id"] = connection_id(bundle.name)
        classpath = GIT_BUNDLE
    else:
        kwargs = {"wasb_conn_id": BLOB_CONNECTION_ID, "container_name": bundle.container}
        if bundle.prefix:
            kwargs["prefix"] = bundle.prefix
        classpath = BLOB_BUNDLE
    kwargs["refresh_interval"] = bundle.refresh_seconds
    return {"name": bundle.name, "classpath": classpath, "kwargs": kwargs}


def bundle_options(settings: Settings) -> dict[str, str]:
    """airflow.cfg's [dag_processor] options for the bundles."""
    return {
        "dag_bundle_config_list": json.dumps([bundle_entry(b) for b in settings.dag_bundles],
                                             separators=(", ", ": ")),
        "dag_bundle_storage_path": BUNDLE_STORAGE_PATH,
    }


def fetches_bundles(component: str) -> bool:
    return component in BUNDLE_FETCHERS
