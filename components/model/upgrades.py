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


# What a stack deployed before the `database` key ran: the in-cluster StatefulSet.
DATABASE_BEFORE_THE_KEY = "in-cluster"


def deployed_database(outputs: Mapping[str, Any] | None) -> str | None:
    """Where the deployment's metadata database is, from the stack's last outputs
    (None: never deployed). Stacks deployed before `database` was exported had
    only the in-cluster one."""
    if not outputs:
        return None
    return str(outputs.get("database") or DATABASE_BEFORE_THE_KEY)


def database_move_refused(deployed: str | None, wanted: str) -> ConfigError | None:
    """The error for a `database` that differs from where the deployment's data is.

    Neither direction can be done by an update. To `azure`: the cluster's
    pools would have to join the VNet the server shares, and AKS takes a
    pool's subnet only when the pool is created (a cluster cannot move to
    another VNet); the new server would start empty, and the in-cluster
    StatefulSet and its disk, the data, would be deleted. Back to
    `in-cluster`: the reverse, a new empty PostgreSQL and the server deleted.
    The way is a new stack, and the data moved by hand.
    """
    if deployed is None or deployed == wanted:
        return None
    return ConfigError([("database", (
        f"this stack's metadata database is {deployed} and an update cannot move it to {wanted}: "
        + ("the cluster's node pools would have to join a VNet, which AKS allows only when a pool is created, "
           "and the new server would start empty while the in-cluster PostgreSQL and its disk were deleted"
           if wanted == "azure" else
           "a new, empty in-cluster PostgreSQL would replace the server, which would be deleted with its data")
        + f". Keep `database: {deployed}` here. To move: create a new stack with `database: {wanted}` and "
        "`pulumi up`; stop the old stack's scheduler, dag-processor, triggerer and workers (scale them to 0); "
        "pg_dump --format=custom the `airflow` database from the old stack (kubectl exec into its PostgreSQL or "
        "PgBouncer pod); pg_restore --no-owner it into the new stack's database before its Airflow pods start "
        "using it (scale them to 0 first, then back); check the DAG runs in the new UI; switch users and DNS to "
        "the new stack; `pulumi destroy` the old one once its data is no longer needed"))])


def checked_database(outputs: Mapping[str, Any] | None, wanted: str) -> str:
    refused = database_move_refused(deployed_database(outputs), wanted)
    if refused:
        raise refused
    return wanted
