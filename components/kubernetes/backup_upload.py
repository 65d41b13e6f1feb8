"""Upload one pg_dump file to the backup container: the backup pod's second step.

Not imported by the program: components/kubernetes/backups.py ships this
file's text in a ConfigMap, and the pod runs it with the Airflow image's
Python, which has azure-identity and azure-storage-blob (the Azure provider's
dependencies, app/requirements.txt). Standard library and those two only.

    python backup_upload.py DUMP_FILE

Environment:
  BACKUP_STORAGE    the account's blob endpoint (https://<account>.blob.core.windows.net):
                    authenticated through AKS workload identity; or, for the
                    storage emulator on a local cluster, its connection string.
  BACKUP_CONTAINER  the container.

The blob is named airflow-<UTC time>.dump, so names sort by time and the
newest is the last (README, "Back up and restore the database"). It is
never overwritten; the storage account's lifecycle rule deletes old ones.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

# pg_dump's custom format starts with these bytes (PostgreSQL
# src/bin/pg_dump/pg_backup_archiver.c, WriteHead).
CUSTOM_FORMAT_MAGIC = b"PGDMP"
BLOB_PREFIX = "airflow-"
BLOB_SUFFIX = ".dump"


def blob_name(now: float) -> str:
    return f"{BLOB_PREFIX}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}{BLOB_SUFFIX}"


def check_dump(path: Path) -> int:
    """The dump's size; SystemExit when it is no custom-format archive."""
    with path.open("rb") as f:
        head = f.read(len(CUSTOM_FORMAT_MAGIC))
    if head != CUSTOM_FORMAT_MAGIC:
        raise SystemExit(f"{path}: not a pg_dump custom-format archive (starts {head!r})")
    return path.stat().st_size


def container_client(storage: str, container: str) -> Any:
    """A ContainerClient (azure.storage.blob), imported here so the helpers
    above need no Azure library."""
    from azure.storage.blob import BlobServiceClient

    if storage.startswith("https://"):
        # The webhook puts AZURE_CLIENT_ID, AZURE_TENANT_ID and
        # AZURE_FEDERATED_TOKEN_FILE in the pod's environment for the
        # ServiceAccount's identity (azure-workload-identity docs, "Quick
        # start"); WorkloadIdentityCredential reads exactly those.
        from azure.identity import WorkloadIdentityCredential

        service = BlobServiceClient(storage, credential=WorkloadIdentityCredential())
    else:
        service = BlobServiceClient.from_connection_string(storage)
    return service.get_container_client(container)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} DUMP_FILE")
    path = Path(argv[1])
    size = check_dump(path)
    name = blob_name(time.time())
    client = container_client(os.environ["BACKUP_STORAGE"], os.environ["BACKUP_CONTAINER"])
    with path.open("rb") as f:
        # overwrite=False: the upload fails rather than replace a dump.
        client.upload_blob(name, f, length=size, overwrite=False)
    print(f"uploaded {path} ({size} bytes) as {os.environ['BACKUP_CONTAINER']}/{name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
