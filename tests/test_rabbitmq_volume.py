"""RabbitMQ survives a pod roll: its persistent volume, as the kubelet leaves it, on a real node.

A roll (a `longestTaskSeconds` change, a node drain or upgrade) mounts the
data volume in a new pod, and with fsGroup the kubelet adds group rw to every
file on it. Erlang refuses a cookie file that anyone but its owner can read,
so the cookie must not be on the volume. These tests start Debian's RabbitMQ
with the data layout the program declares, apply the kubelet's ownership
change to the volume, and start the node again on it.

A claim of a stack deployed before that layout (the claim at HOME, commit
0187cea) is mounted where the current layout mounts it, its node's data one
directory down: the declared container command starts the node on it, and
leaves a claim of the current layout as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.kubernetes import rabbitmq
from components.model import names
from tests.local_airflow import LocalRabbitMQ, RabbitMQLayout, declared, kubelet_set_volume_ownership
from tests.real_airflow import run_airflow_python

# Real components (scripts/test --fast leaves these out for a quick run).
pytestmark = pytest.mark.real

# The layout of commit 0187cea: the claim at HOME, the image's default mnesia
# base under it, the image's own command.
OLD = RabbitMQLayout(home=rabbitmq.HOME_DIR, mnesia_base=f"{rabbitmq.HOME_DIR}/mnesia",
                     volume_mount=rabbitmq.HOME_DIR, fs_group=rabbitmq.RABBITMQ_UID)
QUEUE = "kept-across-the-layouts"


@pytest.fixture(scope="module")
def statefulset() -> dict[str, Any]:
    return declared("dev").manifest("StatefulSet", names.RABBITMQ)


@pytest.fixture(scope="module")
def layout(statefulset: dict[str, Any]) -> RabbitMQLayout:
    return RabbitMQLayout.declared(statefulset, rabbitmq.HOME_DIR)


@contextlib.contextmanager
def node(layout: RabbitMQLayout) -> Iterator[LocalRabbitMQ]:
    workdir = Path(tempfile.mkdtemp(prefix="airflow-aks-rabbitmq-"))
    mq = LocalRabbitMQ(workdir, {}, layout)
    try:
        yield mq
    finally:
        mq.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def amqp(mq: LocalRabbitMQ, body: str) -> str:
    """Run `body` with `c`, a kombu connection to the node, and `q`, the
    durable QUEUE bound to it (Celery's kombu, from ./venv-airflow); its stdout."""
    code = ("from kombu import Connection, Queue\n"
            f"with Connection('amqp://guest:guest@127.0.0.1:{mq.port}//') as c:\n"
            f"    q = Queue({QUEUE!r}, durable=True)(c.default_channel)\n"
            + "".join(f"    {line}\n" for line in body.splitlines()))
    done = run_airflow_python(code, home=mq.dir)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def publish_persistent(mq: LocalRabbitMQ, text: str) -> None:
    amqp(mq, f"q.declare()\nc.Producer().publish({text!r}, routing_key={QUEUE!r}, delivery_mode=2, "
             "content_type='text/plain', content_encoding='utf-8')")


def queues(mq: LocalRabbitMQ) -> dict[str, int]:
    """Every queue of the default vhost, durable ones only, with its message count."""
    listed = json.loads(mq.ctl("-q", "list_queues", "name", "durable", "messages", "--formatter", "json"))
    assert all(q["durable"] for q in listed)
    return {q["name"]: q["messages"] for q in listed}


def take(mq: LocalRabbitMQ) -> str:
    """The next message on QUEUE, acknowledged."""
    return amqp(mq, "m = q.get(no_ack=True)\nprint(m.decode())").strip()


def test_the_declared_layout_keeps_home_off_the_volume(layout: RabbitMQLayout) -> None:
    assert layout.volume_mount == layout.mnesia_base == rabbitmq.DATA_DIR
    assert not Path(layout.home).is_relative_to(layout.volume_mount), "HOME (the cookie) is not on the volume"


def test_rabbitmq_starts_again_on_its_volume_after_the_kubelet_changes_ownership(layout: RabbitMQLayout) -> None:
    with node(layout) as mq:
        mq.start()
        mq.ctl("add_vhost", "survives-a-roll")
        cookie = mq.home / ".erlang.cookie"
        assert cookie.exists(), "the node wrote its cookie under HOME"
        assert not cookie.is_relative_to(mq.volume), "and HOME is not on the volume"
        assert any(mq.volume.iterdir()), "the node's data is on the volume"
        mq.stop()

        # The new pod: HOME is a fresh emptyDir, the volume is the same disk
        # after the kubelet's pass over it.
        shutil.rmtree(mq.home)
        assert kubelet_set_volume_ownership(mq.volume, layout.fs_group) > 10
        mq.start()
        assert "survives-a-roll" in mq.ctl("list_vhosts"), "the data on the volume was kept"


def test_with_home_on_the_volume_the_same_roll_stops_the_broker() -> None:
    """The layout before this fix (the volume at HOME): the check above fails for it."""
    with node(OLD) as mq:
        mq.start()
        assert (mq.volume / ".erlang.cookie").exists(), "the cookie is on the volume"
        mq.stop()
        kubelet_set_volume_ownership(mq.volume, OLD.fs_group)
        with pytest.raises(RuntimeError, match=r"Cookie file .*/volume/\.erlang\.cookie must be accessible by owner"):
            mq.start()


def test_a_claim_of_the_old_layout_keeps_its_queue_and_message_in_the_declared_pod(
        statefulset: dict[str, Any], layout: RabbitMQLayout) -> None:
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    with node(OLD) as mq:
        mq.start()
        publish_persistent(mq, "published before the split")
        assert queues(mq) == {QUEUE: 1}
        mq.stop()
        assert (mq.volume / "mnesia" / mq.node).is_dir(), "the old layout: the node's data at <claim>/mnesia/<node>"
        old_claim = mq.dir / "old-claim"
        shutil.copytree(mq.volume, old_claim, symlinks=True)

        # The same claim (and node name: the pod's) in the declared pod: the
        # claim at the data directory, a fresh HOME.
        kubelet_set_volume_ownership(mq.volume, layout.fs_group)
        mq.layout = layout
        mq.start()
        assert queues(mq) == {QUEUE: 1}, "the queue and its message, on the claim"
        assert take(mq) == "published before the split"
        # The probes and the postStart hook reach the node by its name: that
        # their environment still names DATA_DIR as the mnesia base is no matter.
        for probe in ("readinessProbe", "livenessProbe"):
            done = mq.container_exec(container[probe]["exec"]["command"], timeout=120)
            assert done.returncode == 0, f"{probe}: {done.stdout}{done.stderr[-1000:]}"
        hook = mq.container_exec(container["lifecycle"]["postStart"]["exec"]["command"])
        assert hook.returncode == 0 and hook.stdout == "", f"postStart: {hook.stdout}"
        mq.stop()
        assert not (mq.volume / mq.node).exists(), "nothing was moved or started beside the old data"

        # Control: the same claim again, the image's own command without the
        # declared one; the node starts empty beside the old data.
        shutil.rmtree(mq.volume)
        shutil.copytree(old_claim, mq.volume, symlinks=True)
        mq.layout = dataclasses.replace(layout, command=OLD.command)
        mq.start()
        assert QUEUE not in queues(mq), "without the declared command the old data is not found"


def test_the_declared_command_leaves_a_claim_of_the_current_layout_as_it_is(layout: RabbitMQLayout) -> None:
    assert layout.command[:2] == ("sh", "-c") and rabbitmq.ADOPT_OLD_DATA_LAYOUT in layout.command, \
        f"StatefulSet/{names.RABBITMQ}: the container starts through the layout check"
    with node(layout) as mq:
        mq.start()
        publish_persistent(mq, "published on the current layout")
        mq.stop()
        # What RabbitMQ keeps in a mnesia base is named after its node
        # (rabbit_env.erl), so never mnesia: the check cannot mistake it.
        written = {p.name for p in mq.volume.iterdir()}
        assert written and all(name.startswith(mq.node) for name in written), written

        shutil.rmtree(mq.home)
        mq.start()
        assert queues(mq) == {QUEUE: 1}
        assert take(mq) == "published on the current layout"
