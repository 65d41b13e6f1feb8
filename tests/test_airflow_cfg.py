"""airflow.cfg text: Airflow 3 options from the plan, overrides, determinism, no secrets."""

from __future__ import annotations

import configparser
import re

from components.config import StackConfig
from components.model.airflow_cfg import SECRET_ENV
from tests.conftest import config_for


def parsed(cfg: StackConfig) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(cfg.airflow_cfg)
    return parser


def test_prod_cfg_carries_the_plan(prod: StackConfig) -> None:
    c = parsed(prod)
    assert c["core"]["executor"] == "CeleryExecutor"
    assert c["core"]["parallelism"] == "1000"
    assert c["core"]["max_active_tasks_per_dag"] == "1000"
    assert c["core"]["default_pool_task_slot_count"] == "1000"
    assert c["celery"]["worker_concurrency"] == "36"
    assert c["celery"]["worker_prefetch_multiplier"] == "1"
    assert c["scheduler"]["max_tis_per_query"] == "0"
    assert float(c["scheduler"]["task_queued_timeout"]) == 1800


def test_execution_api_points_at_the_api_server_service() -> None:
    c = parsed(config_for("prod", namespace="airflow-prod"))
    assert c["core"]["execution_api_server_url"] == \
        "http://airflow-api-server.airflow-prod.svc.cluster.local:8080/execution/"


def test_statsd_host_is_an_absolute_name_of_the_exporter_service() -> None:
    # Each task process resolves it once (a new StatsD client after every
    # fork): with the trailing dot that is one DNS query, not one per search
    # domain of the pod's resolv.conf first.
    c = parsed(config_for("prod", namespace="airflow-prod"))
    assert c["metrics"]["statsd_host"] == "airflow-statsd.airflow-prod.svc.cluster.local."


def test_no_airflow_2_only_options(prod: StackConfig) -> None:
    c = parsed(prod)
    assert not c.has_option("core", "max_queued_runs_per_dag")
    assert not c.has_option("core", "dag_concurrency")
    assert not c.has_section("webserver")


def test_no_secret_in_the_cfg(prod: StackConfig) -> None:
    c = parsed(prod)
    for env in SECRET_ENV:
        _, section, key = env.lower().split("__")
        assert not c.has_option(section, key), f"{section}.{key} must come from a Secret"
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", prod.airflow_cfg), "no URL with credentials"
    assert "postgresql" not in prod.airflow_cfg and "amqp://" not in prod.airflow_cfg


def test_changing_parallelism_changes_the_cfg(prod: StackConfig) -> None:
    changed = config_for("prod", parallelism=2000)
    assert changed.airflow_cfg != prod.airflow_cfg
    assert parsed(changed)["core"]["parallelism"] == "2000"
    assert parsed(changed)["core"]["default_pool_task_slot_count"] == "2000"


def test_changing_worker_concurrency_changes_the_cfg(prod: StackConfig) -> None:
    changed = config_for("prod", workerConcurrency=20)
    assert parsed(changed)["celery"]["worker_concurrency"] == "20"
    assert changed.airflow_cfg.replace("worker_concurrency = 20", "worker_concurrency = 36") == prod.airflow_cfg


def test_overrides_merge_into_existing_and_new_sections() -> None:
    cfg = config_for("prod", airflowConfig={
        "core": {"dagbag_import_timeout": 120, "load_examples": True},
        "logging": {"logging_level": "WARNING"},
    })
    c = parsed(cfg)
    assert c["core"]["dagbag_import_timeout"] == "120"
    assert c["core"]["load_examples"] == "True", "an override replaces the program's value"
    assert c["logging"]["logging_level"] == "WARNING"
    assert c["core"]["parallelism"] == "1000", "program values stay"
    assert cfg.airflow_cfg.count("load_examples") == 1


def test_override_from_the_cli_json_form() -> None:
    cfg = config_for("dev", airflowConfig='{"scheduler": {"parsing_cleanup_interval": 120}}')
    assert parsed(cfg)["scheduler"]["parsing_cleanup_interval"] == "120"


def test_same_config_gives_byte_identical_text() -> None:
    overrides = {"logging": {"logging_level": "INFO", "colored_console_log": "False"},
                 "core": {"killed_task_cleanup_time": 1, "dagbag_import_timeout": 2}}
    first = config_for("prod", airflowConfig=overrides).airflow_cfg
    reordered = {"core": {"dagbag_import_timeout": 2, "killed_task_cleanup_time": 1},
                 "logging": {"colored_console_log": "False", "logging_level": "INFO"}}
    assert config_for("prod", airflowConfig=reordered).airflow_cfg == first
    assert config_for("prod", airflowConfig=overrides).airflow_cfg == first


def test_cfg_names_its_stack_and_version(dev: StackConfig) -> None:
    assert "Pulumi.dev.yaml" in dev.airflow_cfg
    assert "Airflow 3.3.2" in dev.airflow_cfg


def test_the_timeouts_follow_the_plan_and_longest_task(prod: StackConfig) -> None:
    c, api = parsed(prod), prod.plan.control_plane.api_server
    # The supervisor's client waits out a whole run's starts (issue 23: with
    # Airflow's 5 s, "1000 burst" lost 996 of 1,000 tasks to retries).
    assert c["workers"]["min_heartbeat_interval"] == "15"
    assert float(c["workers"]["execution_api_timeout"]) == api.client_timeout_seconds == 40
    assert int(c["scheduler"]["task_instance_heartbeat_timeout"]) == api.heartbeat_timeout_seconds == 110
    # Airflow ends a task that overruns longestTaskSeconds, within the grace
    # period and drain timeouts sized from it.
    assert int(c["core"]["default_task_execution_timeout"]) == prod.settings.longest_task_seconds == 3600
    longer = parsed(config_for("prod", longestTaskSeconds=7200, heartbeatIntervalSeconds=30))
    assert longer["core"]["default_task_execution_timeout"] == "7200"
    assert longer["workers"]["min_heartbeat_interval"] == "30"
    assert longer["scheduler"]["task_instance_heartbeat_timeout"] == "140"


def test_task_retries_and_their_delay_come_from_the_keys() -> None:
    c = parsed(config_for("dev"))
    assert (c["core"]["default_task_retries"], c["core"]["default_task_retry_delay"]) == ("2", "60")
    c = parsed(config_for("dev", taskRetries=0, taskRetryDelaySeconds=300))
    assert (c["core"]["default_task_retries"], c["core"]["default_task_retry_delay"]) == ("0", "300")
