"""What an update may not do to a deployment an earlier `pulumi up` made."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from components.model.settings import ConfigError

# The image output of every release so far: "<registry>/airflow:3.3.2@sha256:..."
# on AKS, "airflow-aks/airflow:3.3.2-<content hash>" for `target: local`.
_IMAGE_VERSION = re.compile(r"/airflow:(\d+(?:\.\d+)+)(?:[@-]|$)")


def deployed_airflow_version(outputs: Mapping[str, Any] | None) -> str | None:
    """The Airflow version whose schema the deployment's database has, from the stack's last outputs.

    `airflowVersion` is exported once the migration Job has run; stacks
    deployed before it was exported name the version in their `image`.
    """
    if not outputs:
        return None
    if outputs.get("airflowVersion"):
        return str(outputs["airflowVersion"])
    found = _IMAGE_VERSION.search(str(outputs.get("image") or ""))
    return found.group(1) if found else None


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def airflow_downgrade_refused(deployed: str | None, wanted: str) -> ConfigError | None:
    """The error for an airflowVersion older than the one the database was migrated to.

    `airflow db migrate` only moves the schema forward: an older release
    does not know the newer revision and cannot run on it. Going back is
    `airflow db downgrade`, which only the newer release can do (it holds the
    downgrade steps), before the older image is deployed.
    """
    if deployed is None or _key(wanted) >= _key(deployed):
        return None
    return ConfigError([("airflowVersion", (
        f"the deployment's database has Airflow {deployed}'s schema, and Airflow {wanted} cannot run on it "
        f"(`airflow db migrate` only goes forward). Keep {deployed}, or downgrade the database first with "
        f"{deployed}'s own image: back it up (pg_dump), stop the scheduler, dag-processor, triggerer and "
        f"workers, run `airflow db downgrade --to-version {wanted} --yes` in the api-server pod, then set "
        f"airflowVersion {wanted} and `pulumi up`"))])


def checked_airflow_version(outputs: Mapping[str, Any] | None, wanted: str) -> str:
    refused = airflow_downgrade_refused(deployed_airflow_version(outputs), wanted)
    if refused:
        raise refused
    return wanted
