"""The benchmark compares the configs it says it compares, and measures what it says it measures."""

from __future__ import annotations

import configparser
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
    inherited and allocates a buffer of its own; the parent's other half stays
    shared."""
    size = 64 * pagemap.PAGE * 16  # 4 MiB with 4 KiB pages
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # private, as the heap: copied on write
    buffer.write(b"p" * size)  # resident in the parent before the fork
    ready, done = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            buffer.seek(0)
            buffer.write(b"c" * (size // 2))
            own = mmap.mmap(-1, size // 4, flags=mmap.MAP_PRIVATE)
            own.write(b"n" * (size // 4))
            os.write(ready[1], b"x")
            os.read(done[0], 1)
        finally:
            os._exit(0)
    try:
        os.read(ready[0], 1)
        counts = pagemap.classify(os.getpid(), pid)
    finally:
        os.write(done[1], b"x")
        os.waitpid(pid, 0)
    anonymous = {kind: n * pagemap.PAGE for (mapping, kind), n in counts.items() if mapping == "anonymous"}
    half, quarter = size // 2, size // 4
    assert half <= anonymous.get("copied, private", 0) < half + 2 * pagemap.MIB
    assert half <= anonymous.get("shared with parent", 0)
    assert quarter <= anonymous.get("new, private", 0) < quarter + 2 * pagemap.MIB
