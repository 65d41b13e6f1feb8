"""The benchmark compares the configs it says it compares, and measures what it says it measures."""

from __future__ import annotations

import configparser
import ctypes
import mmap
import os

from bench import pagemap
from bench.fanout import variant_cfgs
from tests.local_airflow import stack_config


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_comparison_configs() -> None:
    cfgs = variant_cfgs(stack_config("dev", parallelism=64, workerConcurrency=64, fanoutTasks=64,
                                     workerPool={"vmSize": "Standard_E32s_v5"}),
                        ["threads:celery.pool=threads"])
    assert list(cfgs) == ["generated", "seed", "defaults", "threads"]
    generated, seed, defaults, threads = (parse(cfgs[k][0]) for k in cfgs)
    assert generated["core"]["parallelism"] == "64" and generated["scheduler"]["max_tis_per_query"] == "0"
    assert (seed["core"]["parallelism"], seed["core"]["max_active_tasks_per_dag"],
            seed["celery"]["worker_concurrency"]) == ("1000", "1000", "36")
    assert not seed.has_option("scheduler", "max_tis_per_query"), "everything else stays default"
    assert not defaults.has_option("core", "parallelism") and not defaults.has_option("celery", "worker_concurrency")
    for cfg in (seed, defaults):
        assert cfg["core"]["executor"] == "CeleryExecutor"
    assert cfgs["seed"][1] == ["bash", "-c", "airflow db migrate"], "default_pool keeps its 128 slots"
    assert threads["celery"]["pool"] == "threads" and threads["core"]["parallelism"] == "64"


def test_the_page_classifier_tells_copied_from_shared_and_new() -> None:
    """bench/pagemap on a real fork: the child writes to half of a buffer it
    inherited and fills a buffer of its own; the other half stays shared."""
    size = 4 * pagemap.MIB
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # private, as the heap: copied on write
    buffer.write(b"p" * size)  # resident in the parent before the fork
    inherited = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    # The child's own buffer goes where the parent holds an inaccessible
    # reservation, so the parent cannot map pages there after the fork.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    prot_none = 0
    new = libc.mmap(None, size // 4, prot_none, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert new not in (None, ctypes.c_void_p(-1).value), "mmap"
    ready, done = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            buffer[: size // 2] = b"c" * (size // 2)
            map_fixed = 0x10
            libc.mmap(new, size // 4, mmap.PROT_READ | mmap.PROT_WRITE,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | map_fixed, -1, 0)
            ctypes.memset(new, ord("n"), size // 4)
            os.write(ready[1], b"x")
            os.read(done[0], 1)
        finally:
            os._exit(0)
    try:
        os.read(ready[0], 1)
        old_pages = pagemap.classify(os.getpid(), pid, within=(inherited, inherited + size))
        new_pages = pagemap.classify(os.getpid(), pid, within=(new, new + size // 4))
    finally:
        os.write(done[1], b"x")
        os.waitpid(pid, 0)
    mib = pagemap.PAGE / pagemap.MIB
    assert {k: n * mib for (_, k), n in old_pages.items()} == {"copied, private": 2.0, "shared with parent": 2.0}
    assert {k: n * mib for (_, k), n in new_pages.items()} == {"new, private": 1.0}


def test_stack_changes_from_the_command_line_are_json_or_text() -> None:
    from bench.worker import parse_sets

    assert parse_sets(["remoteTaskLogs=false", "parallelism=3", "workerPool={\"vmSize\": \"X\"}", "name=a=b"]) == {
        "remoteTaskLogs": False, "parallelism": 3, "workerPool": {"vmSize": "X"}, "name": "a=b"}


def test_cpu_per_task_start_by_role_leaves_the_rest_to_the_machine() -> None:
    from bench.worker import _per_task

    before = {"api-server": 1.0, "benchmark": 5.0, "other: kworker": 0.0, "other: sshd": 0.0}
    after = {"api-server": 3.0, "benchmark": 7.5, "other: kworker": 1.0, "other: sshd": 0.01}
    # 10 tasks; the machine used 6 CPU-s, the trigger CLI (the benchmark's child) 0.5 of them.
    got = _per_task(after, before, 10, machine=6.0, cli=0.5)
    # sshd (1 ms per task) is under the 5 ms listing threshold and stays in the rest.
    assert got == {"api-server": 0.2, "benchmark": 0.2, "other: kworker": 0.1, "rest of machine": 0.1}
