"""Every kind of bad stack config is refused with a message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import project_values, stack_file_config
from components.model.settings import KEY_NAMES, ConfigError, Settings, parse_settings
from tests.harness import cli_form


def parse(**values: Any) -> Settings:
    return parse_settings(values, stack="test", location="westeurope")


def problems_of(**values: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse(**values)
    return dict(err.value.problems)


def test_defaults_are_valid_and_derive_workers() -> None:
    s = parse()
    assert (s.parallelism, s.worker_concurrency, s.workers) == (32, 16, 2)
    assert s.max_active_tasks_per_dag == s.parallelism
    assert not s.workers_set


def test_cli_string_form_equals_yaml_form() -> None:
    """The CLI passes numbers as strings and objects as JSON; both forms parse alike."""
    yaml_values = project_values(stack_file_config("prod"))
    cli_values = project_values(cli_form(stack_file_config("prod")))
    assert parse_settings(yaml_values, stack="prod", location="westeurope") == \
        parse_settings(cli_values, stack="prod", location="westeurope")


def test_zero_is_refused() -> None:
    assert problems_of(parallelism=0) == {"parallelism": "must be a whole number from 1 to 3000, got 0"}


def test_negative_is_refused() -> None:
    assert problems_of(workerConcurrency="-4") == {
        "workerConcurrency": "must be a whole number from 1 to 512, got -4"}


def test_string_where_a_number_belongs_is_refused() -> None:
    assert problems_of(parallelism="lots") == {
        "parallelism": "must be a whole number from 1 to 3000, got 'lots'"}


def test_fraction_is_refused() -> None:
    assert "workers" in problems_of(workers="2.5")


def test_unknown_key_suggests_the_closest_known_key() -> None:
    problems = problems_of(paralelism=100)
    assert list(problems) == ["paralelism"]
    assert "did you mean 'parallelism'?" in problems["paralelism"]
    assert "workerConcurrency" in problems["paralelism"], "the message lists the known keys"


def test_too_few_workers_names_workers() -> None:
    problems = problems_of(parallelism=1000, workerConcurrency=36, workers=20)
    assert list(problems) == ["workers"]
    assert "720 task slots, fewer than parallelism 1000" in problems["workers"]
    assert "at least 28" in problems["workers"]


def test_explicit_workers_above_the_minimum_are_kept() -> None:
    s = parse(parallelism=100, workerConcurrency=10, workers=12)
    assert (s.workers, s.workers_set) == (12, True)


def test_enum_lists_allowed_values() -> None:
    assert problems_of(acrSku="Gold") == {"acrSku": "must be one of Basic, Standard, Premium, got 'Gold'"}


def test_boolean_is_checked() -> None:
    assert problems_of(protect="yes") == {"protect": "must be true or false, got 'yes'"}


def test_airflow_2_is_refused() -> None:
    assert "Airflow 3.x" in problems_of(airflowVersion="2.1.4")["airflowVersion"]


def test_malformed_kubernetes_version_is_refused() -> None:
    assert "such as '1.35'" in problems_of(kubernetesVersion="latest")["kubernetesVersion"]


def test_old_kubernetes_version_is_refused() -> None:
    assert "1.30 or newer" in problems_of(kubernetesVersion="1.20.9")["kubernetesVersion"]
    with pytest.raises(ConfigError, match=r"1\.30 or newer"):
        parse_settings({"target": "local", "kubernetesVersion": "1.29"}, stack="x", location=None)


def test_namespace_must_be_a_kubernetes_name() -> None:
    assert "namespace" in problems_of(namespace="Airflow_Prod")


def test_missing_location_names_the_azure_native_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({}, stack="test", location=None)
    assert list(dict(err.value.problems)) == ["azure-native:location"]
    assert "azure-native:location: required" in str(err.value)


def test_object_key_given_a_scalar_is_refused() -> None:
    assert "must be an object" in problems_of(workerPool="Standard_E4s_v3")["workerPool"]


def test_unknown_pool_field_suggests_the_known_one() -> None:
    problems = problems_of(workerPool={"vmsize": "Standard_E4s_v3"})
    assert "did you mean 'vmSize'?" in problems["workerPool.vmsize"]


def test_pool_count_and_autoscaler_bounds_conflict() -> None:
    problems = problems_of(workerPool={"count": 3, "minCount": 1, "maxCount": 5})
    assert "not both" in problems["workerPool.count"]


def test_pool_min_above_max_is_refused() -> None:
    assert "must not exceed maxCount" in problems_of(
        workerPool={"minCount": 6, "maxCount": 2})["workerPool.minCount"]


def test_pool_max_without_min_is_refused() -> None:
    assert "set minCount with maxCount" in problems_of(workerPool={"maxCount": 4})["workerPool.minCount"]


def test_worker_scaling_is_keda_or_fixed() -> None:
    assert "'keda'" in problems_of(workerScaling="auto")["workerScaling"]
    assert parse(workerScaling="fixed").worker_scaling == "fixed"
    assert "must not exceed workers" in problems_of(workers=2, workerMinReplicas=3)["workerMinReplicas"]


def test_system_pool_has_no_autoscaler_fields() -> None:
    assert "unknown key" in problems_of(systemPool={"maxCount": 3})["systemPool.maxCount"]


def test_managed_airflow_option_points_to_the_dedicated_key() -> None:
    problems = problems_of(airflowConfig={"core": {"parallelism": 64}})
    assert problems == {"airflowConfig.core.parallelism": "is set by the program: use the `parallelism` key"}


def test_worker_concurrency_override_points_to_its_key() -> None:
    problems = problems_of(airflowConfig={"celery": {"worker_concurrency": 8}})
    assert "`workerConcurrency`" in problems["airflowConfig.celery.worker_concurrency"]


def test_secret_in_airflow_config_is_refused() -> None:
    problems = problems_of(airflowConfig={"api": {"secret_key": "hunter2"}})
    assert "looks like a secret" in problems["airflowConfig.api.secret_key"]


def test_option_removed_in_airflow_3_is_refused() -> None:
    problems = problems_of(airflowConfig={"core": {"dag_concurrency": 100}})
    assert "maxActiveTasksPerDag" in problems["airflowConfig.core.dag_concurrency"]


def test_airflow_config_must_be_sections_of_options() -> None:
    problems = problems_of(airflowConfig={"core": "parallelism=3", "Core": {"x": 1}})
    assert "must map option names to values" in problems["airflowConfig.core"]
    assert "lowercase" in problems["airflowConfig.Core"]


def test_airflow_config_values_are_scalars() -> None:
    problems = problems_of(airflowConfig={"core": {"dagbag_import_timeout": [1, 2]}})
    assert "string, number or boolean" in problems["airflowConfig.core.dagbag_import_timeout"]


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"paralelism": 1, "workerConcurrency": 0, "acrSku": "x",
                        "airflowConfig": {"core": {"executor": "LocalExecutor"}}},
                       stack="test", location=None)
    keys = [k for k, _ in err.value.problems]
    assert keys == sorted(["paralelism", "workerConcurrency", "acrSku",
                           "airflowConfig.core.executor", "azure-native:location"])
    text = str(err.value)
    assert text.startswith("stack config has 5 problems:")
    assert "  - airflow-aks:workerConcurrency: must be a whole number" in text


def test_key_catalogue_has_no_duplicates() -> None:
    assert len(set(KEY_NAMES)) == len(KEY_NAMES)


def test_cluster_tier_lists_the_tiers() -> None:
    assert problems_of(clusterTier="Gold") == {
        "clusterTier": "must be one of Free, Standard, Premium, got 'Gold'"}
    assert parse(clusterTier="Standard").cluster_tier == "Standard"


def test_kubernetes_minor_only_in_aks_long_term_support_is_refused() -> None:
    why = problems_of(kubernetesVersion="1.33")["kubernetesVersion"]
    assert "only under long-term support" in why and "Premium" in why
    assert "1.34 (until 2026-11), 1.35 (until 2027-03)" in why, "the message lists what AKS offers"


def test_kubernetes_minor_aks_no_longer_offers_is_refused() -> None:
    assert "AKS standard support covers 1.34" in problems_of(kubernetesVersion="1.30.4")["kubernetesVersion"]


@pytest.mark.parametrize("version", ["1.34", "1.35.2", "1.36", "1.37"])
def test_kubernetes_minors_in_aks_standard_support_pass(version: str) -> None:
    assert parse(kubernetesVersion=version).kubernetes_version == version


def test_a_local_cluster_may_run_an_older_kubernetes() -> None:
    settings = parse_settings({"target": "local", "kubernetesVersion": "1.31"}, stack="x", location=None)
    assert settings.kubernetes_version == "1.31"


@pytest.mark.parametrize("image", ["rabbitmq:latest", "rabbitmq:4", "rabbitmq:management", "rabbitmq"])
def test_a_floating_rabbitmq_tag_is_refused(image: str) -> None:
    why = problems_of(rabbitmqImage=image)["rabbitmqImage"]
    assert "pinned to a minor release" in why and "cannot upgrade to directly" in why


def test_rabbitmq_older_than_3_13_is_refused() -> None:
    assert "3.13 or newer" in problems_of(rabbitmqImage="rabbitmq:3.12")["rabbitmqImage"]


@pytest.mark.parametrize("image", ["rabbitmq:3.13", "rabbitmq:4.1", "rabbitmq:4.3.0-management",
                                   "myregistry.azurecr.io/mirror/rabbitmq:4.2.1"])
def test_pinned_rabbitmq_releases_pass(image: str) -> None:
    pinned = f"{image}@sha256:{'a' * 64}"
    assert parse(rabbitmqImage=pinned).rabbitmq_image == pinned


@pytest.mark.parametrize(("key", "image"), [("postgresImage", "postgres:17.11"), ("rabbitmqImage", "rabbitmq:4.1.8"),
                                            ("pgbouncerImage", "example/pgbouncer:1.23"),
                                            ("postgresImage", "postgres@sha256:" + "a" * 64),
                                            ("postgresImage", "postgres:17.11@sha256:abc")])
def test_a_stack_image_without_tag_and_digest_is_refused(key: str, image: str) -> None:
    why = problems_of(**{key: image})[key]
    assert "`<repository>:<tag>@sha256:<64 hex>`" in why and repr(image) in why, f"{key}={image}: {why}"
    assert "scripts/image-digests --resolve" in why and "imageID" in why, f"{key}: the fix is named"


def test_the_pinned_defaults_pass_when_a_stack_names_them() -> None:
    defaults = parse()
    assert "@sha256:" in defaults.postgres_image and "@sha256:" in defaults.rabbitmq_image, "pinned by default"
    again = parse(postgresImage=defaults.postgres_image, rabbitmqImage=defaults.rabbitmq_image)
    assert (again.postgres_image, again.rabbitmq_image) == (defaults.postgres_image, defaults.rabbitmq_image)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("pgbouncer", "yes", "true or false"),
    ("pgbouncerMetadataPoolSize", 0, "from 1 to 10000"),
    ("pgbouncerResultBackendPoolSize", "many", "whole number"),
    ("pgbouncerImage", "pg bouncer", "container image reference"),
])
def test_pgbouncer_keys_are_checked(key: str, value: Any, says: str) -> None:
    assert says in problems_of(**{key: value})[key]


def test_pgbouncer_is_on_by_default_with_derived_pools() -> None:
    s = parse()
    assert s.pgbouncer and s.pgbouncer_metadata_pool_size is None and s.pgbouncer_result_backend_pool_size is None


@pytest.mark.parametrize(("section", "option", "key"), [
    ("workers", "min_heartbeat_interval", "heartbeatIntervalSeconds"),
    ("workers", "execution_api_timeout", "start burst"),
    ("scheduler", "task_instance_heartbeat_timeout", "heartbeatIntervalSeconds"),
    ("core", "default_task_execution_timeout", "longestTaskSeconds"),
    ("core", "default_task_retries", "taskRetries"),
    ("core", "default_task_retry_delay", "taskRetryDelaySeconds"),
])
def test_the_derived_timeouts_are_refused_as_overrides(section: str, option: str, key: str) -> None:
    problems = problems_of(airflowConfig={section: {option: "60"}})
    assert key in problems[f"airflowConfig.{section}.{option}"]


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("taskRetries", -1, "0 to 10"), ("taskRetries", 11, "0 to 10"), ("taskRetries", "two", "0 to 10"),
    ("taskRetryDelaySeconds", -1, "0 to 86400"), ("taskRetryDelaySeconds", 86_401, "0 to 86400"),
    ("taskRetryDelaySeconds", "1m", "0 to 86400"),
])
def test_task_retries_and_their_delay_outside_their_range_are_refused(key: str, value: object, allowed: str) -> None:
    assert allowed in problems_of(**{key: value})[key]


def test_task_retries_and_delay_default_to_two_after_a_minute() -> None:
    s = parse()
    assert (s.task_retries, s.task_retry_delay_seconds) == (2, 60)
    s = parse(taskRetries=0, taskRetryDelaySeconds=0)
    assert (s.task_retries, s.task_retry_delay_seconds) == (0, 0)


@pytest.mark.parametrize("value", [4, 61, "15s"])
def test_heartbeat_interval_outside_5_to_60_is_refused(value: object) -> None:
    assert "heartbeatIntervalSeconds" in problems_of(heartbeatIntervalSeconds=value)


def test_database_is_one_of_the_two_and_azure_needs_aks() -> None:
    assert parse().database == "in-cluster"
    assert parse(database="azure").database == "azure"
    assert "in-cluster, azure" in problems_of(database="managed")["database"]
    assert "target: aks" in problems_of(database="azure", target="local")["database"]


@pytest.mark.parametrize("value", [6, 36, "two weeks"])
def test_backup_retention_outside_7_to_35_days_is_refused(value: object) -> None:
    assert "databaseBackupRetentionDays" in problems_of(databaseBackupRetentionDays=value)
