"""RabbitMQ enables its own feature flags after every start: the declared postStart hook on a real node.

A node upgraded to a new release leaves that release's new feature flags
disabled, and the release after it refuses to start while one it requires is
still disabled. These tests start Debian's RabbitMQ on the declared layout with
only some flags enabled on its first boot, as a node upgraded from a release
without the others would be, and run the StatefulSet's postStart command, as
declared, against it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from components.kubernetes import rabbitmq
from components.model import names
from tests.local_airflow import RABBITMQ_BIN, LocalRabbitMQ, RabbitMQLayout, declared, wait_for

# Real components (scripts/test --fast leaves these out for a quick run).
pytestmark = pytest.mark.real

# The flag a node's first boot enables here; Debian's 3.10 has six more, all stable.
FIRST_BOOT_FLAGS = "quorum_queue"


@pytest.fixture(scope="module")
def statefulset() -> dict[str, Any]:
    return declared("dev").manifest("StatefulSet", names.RABBITMQ)


def post_start(statefulset: dict[str, Any]) -> list[str]:
    """The container's postStart command, as declared."""
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    post_start = container.get("lifecycle", {}).get("postStart")
    assert post_start is not None, f"StatefulSet/{names.RABBITMQ}: no postStart hook"
    return post_start["exec"]["command"]


class FirstBootFlags(LocalRabbitMQ):
    """A node whose first boot enables only FIRST_BOOT_FLAGS
    (RABBITMQ_FEATURE_FLAGS, which later boots ignore)."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "RABBITMQ_FEATURE_FLAGS": FIRST_BOOT_FLAGS}

    def flags(self) -> dict[str, dict[str, str]]:
        out = self.ctl("-q", "list_feature_flags", "name", "state", "stability", "--formatter", "json")
        return {f["name"]: f for f in json.loads(out)}

    def disabled_stable_flags(self) -> set[str]:
        return {name for name, f in self.flags().items() if f["stability"] == "stable" and f["state"] != "enabled"}


def retrying(mq: LocalRabbitMQ) -> bool:
    """Whether a hook against this node sleeps before its next try: an
    await_startup has failed."""
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if (proc / "cmdline").read_bytes().split(b"\0")[0] == b"sleep" and \
                    f"RABBITMQ_NODENAME={mq.node}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return True
    return False


@contextlib.contextmanager
def node(statefulset: dict[str, Any]) -> Iterator[FirstBootFlags]:
    workdir = Path(tempfile.mkdtemp(prefix="airflow-aks-rabbitmq-"))
    mq = FirstBootFlags(workdir, {}, RabbitMQLayout.declared(statefulset, rabbitmq.HOME_DIR))
    try:
        mq.start()
        yield mq
    finally:
        mq.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_post_start_hook_enables_every_stable_flag_a_restarted_node_left_disabled(
        statefulset: dict[str, Any]) -> None:
    hook = post_start(statefulset)
    with node(statefulset) as mq:
        disabled = mq.disabled_stable_flags()
        assert len(disabled) >= 3 and FIRST_BOOT_FLAGS not in disabled, f"the first boot left {disabled} disabled"

        # The pod's restart: the hook starts with the container, before the
        # node can be reached. The node's own epmd stays up, as in the pod.
        mq.ctl("stop")
        assert mq.process is not None
        mq.process.wait(timeout=60)
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(mq.container_exec, hook)
            wait_for("the hook's first retry", lambda: retrying(mq), timeout=60, interval=0.2)
            mq.start()
            done = running.result(timeout=rabbitmq.FEATURE_FLAGS_WAIT_SECONDS + 120)
        assert "unable to perform an operation on node" in done.stderr, "the hook tried before the node was up"
        assert done.returncode == 0 and done.stdout == "", f"postStart: {done.stdout}"
        assert mq.disabled_stable_flags() == set(), "every stable flag is enabled"
        enabled = mq.flags()

        again = mq.container_exec(hook)
        assert again.returncode == 0 and again.stdout == "", f"a second run: {again.stdout}"
        assert mq.flags() == enabled


def test_a_hook_that_cannot_enable_the_flags_leaves_the_broker_running_and_says_so_in_its_log(
        statefulset: dict[str, Any]) -> None:
    """A failed postStart would kill the container: the hook exits 0 and writes
    why to PID 1's stdout, the container's log."""
    hook = post_start(statefulset)
    with node(statefulset) as mq:
        # A rabbitmqctl that cannot enable flags, first on the node's PATH.
        failing = mq.image_bin / "rabbitmqctl"
        failing.write_text('#!/bin/sh\ncase " $* " in *" enable_feature_flag "*)\n'
                           '  echo "Error: enabling refused here" >&2; exit 70;;\nesac\n'
                           f'exec {RABBITMQ_BIN / "rabbitmqctl"} "$@"\n')
        failing.chmod(0o755)
        done = mq.container_exec(hook)
        assert done.returncode == 0, "postStart fails, the container is killed"
        assert "Error: enabling refused here" in done.stdout, done.stdout
        assert "airflow-aks: the stable feature flags are not all enabled" in done.stdout, done.stdout
        assert mq.disabled_stable_flags(), "the flags stay as they were"
        mq.ctl("await_startup")
