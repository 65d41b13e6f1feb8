"""RabbitMQ survives a pod roll: its persistent volume, as the kubelet leaves it, on a real node.

A roll (a `longestTaskSeconds` change, a node drain or upgrade) mounts the
data volume in a new pod, and with fsGroup the kubelet adds group rw to every
file on it. Erlang refuses a cookie file that anyone but its owner can read,
so the cookie must not be on the volume. These tests start Debian's RabbitMQ
with the data layout the program declares, apply the kubelet's ownership
change to the volume, and start the node again on it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.kubernetes import rabbitmq
from components.model import names
from tests.local_airflow import LocalRabbitMQ, RabbitMQLayout, declared, kubelet_set_volume_ownership


@pytest.fixture(scope="module")
def layout() -> RabbitMQLayout:
    return RabbitMQLayout.declared(declared("dev").manifest("StatefulSet", names.RABBITMQ), rabbitmq.HOME_DIR)


@contextlib.contextmanager
def node(layout: RabbitMQLayout) -> Iterator[LocalRabbitMQ]:
    workdir = Path(tempfile.mkdtemp(prefix="airflow-aks-rabbitmq-"))
    mq = LocalRabbitMQ(workdir, {}, layout)
    try:
        yield mq
    finally:
        mq.stop()
        shutil.rmtree(workdir, ignore_errors=True)


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
    old = RabbitMQLayout(home=rabbitmq.HOME_DIR, mnesia_base=f"{rabbitmq.HOME_DIR}/mnesia",
                         volume_mount=rabbitmq.HOME_DIR, fs_group=rabbitmq.RABBITMQ_UID)
    with node(old) as mq:
        mq.start()
        assert (mq.volume / ".erlang.cookie").exists(), "the cookie is on the volume"
        mq.stop()
        kubelet_set_volume_ownership(mq.volume, old.fs_group)
        with pytest.raises(RuntimeError, match=r"Cookie file .*/volume/\.erlang\.cookie must be accessible by owner"):
            mq.start()
