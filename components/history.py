"""What this stack's last `pulumi up` left: its outputs, read back from the state backend."""

from __future__ import annotations

from typing import Any

import pulumi


def last_outputs() -> pulumi.Output[dict[str, Any]]:
    """The stack's own outputs as its last update recorded them (empty before the first).

    A StackReference to the stack itself: the backend's copy of the outputs
    (pulumi/pulumi pkg/resource/deploy/builtins.go, readStackReference, asks
    the backend for them by name), read in previews as in updates. What a
    deployment did (the Airflow version its database was migrated to) is
    known there and nowhere else a preview can read.
    """
    name = f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{pulumi.get_stack()}"
    return pulumi.StackReference("last-deployment", stack_name=name).outputs
