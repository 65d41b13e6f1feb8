"""The benchmark compares the configs it says it compares."""

from __future__ import annotations

import configparser

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
