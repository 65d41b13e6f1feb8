"""A DAG bundle read from an Azure Blob Storage container (dagBundles, kind `blob`).

NOT VERSIONED. A DAG run does not keep the code it started with: every task
(and every parse) runs whatever the container holds when its worker syncs,
so a file changed mid-run changes the rest of that run. For DAG runs that keep
their version, use a git bundle.

Why this module: the Azure provider's own WasbDagBundle is on apache/airflow
main (providers/microsoft/azure/.../bundles/wasb.py) but in no release this
image can install (apache-airflow-providers-microsoft-azure 15.2.1 is the
newest, and its WasbHook has no sync_to_local_dir). This class takes the same
keyword arguments (wasb_conn_id, container_name, prefix; name and
refresh_interval from BaseDagBundle), so a stack can move to the upstream
class by changing the classpath once a release has it. It reads with
WasbHook of 15.2.1: with the program's `wasb_default` connection, that is the
pods' workload identity on AKS (no key: DefaultAzureCredential with the
identity's client ID, WasbHook.get_conn) and the emulator's development
account on a local cluster.

A refresh lists the blobs under the prefix and downloads only those whose
ETag changed since the last sync, each to a temporary file renamed into place
(a parse never reads half a file); files whose blobs are gone are deleted.
Airflow holds the bundle's lock around it (BaseDagBundle.lock, a file lock),
so the task processes of one worker never sync over each other.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from airflow.dag_processing.bundles.base import BaseDagBundle
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

# Beside the files, not among them: blob name -> ETag of the copy on disk.
ETAGS_FILE = "etags.json"
FILES_DIR = "files"


def relative_name(blob_name: str, prefix: str) -> str | None:
    """The local path of a blob under the prefix; None for what cannot be a
    file there (a folder marker, a name climbing out with '..' or absolute)."""
    if not blob_name.startswith(prefix) or blob_name.endswith("/"):
        return None
    rel = blob_name[len(prefix):]
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("..", ".") for p in parts):
        return None
    return rel


class WasbDagBundle(BaseDagBundle):
    """DAG files from a blob container, synced to local disk. Not versioned:
    runs always use the container's current files (see the module's docstring).

    :param wasb_conn_id: the Airflow connection to read with (WasbHook's).
    :param container_name: the container holding the DAG files.
    :param prefix: only blobs whose names start with it; "" for the whole container.
    """

    supports_versioning = False

    def __init__(self, *, wasb_conn_id: str = WasbHook.default_conn_name, container_name: str,
                 prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wasb_conn_id = wasb_conn_id
        self.container_name = container_name
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.files_dir = self.base_dir / FILES_DIR
        self._hook: WasbHook | None = None

    @property
    def hook(self) -> WasbHook:
        if self._hook is None:
            self._hook = WasbHook(wasb_conn_id=self.wasb_conn_id)
        return self._hook

    @property
    def path(self) -> Path:
        return self.files_dir

    def get_current_version(self) -> None:
        return None

    def initialize(self) -> None:
        self.refresh()
        super().initialize()

    def refresh(self) -> None:
        if self.version:
            raise ValueError(f"bundle {self.name}: a blob bundle has no versions to fetch")
        with self.lock():
            self._sync()

    def _sync(self) -> None:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        etags_path = self.base_dir / ETAGS_FILE
        try:
            known: dict[str, str] = json.loads(etags_path.read_text())
        except (OSError, ValueError):
            known = {}
        container = self.hook.get_conn().get_container_client(self.container_name)
        wanted: dict[str, str] = {}
        for blob in container.list_blobs(name_starts_with=self.prefix or None):
            rel = relative_name(blob.name, self.prefix)
            if rel is None:
                continue
            target = self.files_dir / rel
            if known.get(rel) == blob.etag and target.is_file():
                wanted[rel] = blob.etag
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
            try:
                with os.fdopen(fd, "wb") as out:
                    download = container.download_blob(blob.name)
                    download.readinto(out)
                os.replace(tmp, target)
                # The ETag of what was downloaded: a blob replaced since the
                # listing is fetched again by the next refresh.
                wanted[rel] = download.properties.etag
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        for path in sorted(self.files_dir.rglob("*"), reverse=True):
            rel = path.relative_to(self.files_dir).as_posix()
            if path.is_file() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                shutil.rmtree(path)
        tmp_etags = etags_path.with_suffix(".tmp")
        tmp_etags.write_text(json.dumps(wanted, sort_keys=True))
        os.replace(tmp_etags, etags_path)

    def view_url_template(self) -> str | None:
        return self._view_url_template

    def __repr__(self) -> str:
        return (f"<WasbDagBundle(name={self.name!r}, container_name={self.container_name!r}, "
                f"prefix={self.prefix!r})>")

