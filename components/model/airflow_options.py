"""airflowConfig: the airflow.cfg options a stack may add, and those it may not.

Each option must exist in the airflowVersion's catalogue
(components/model/catalogues), must not be one the program derives (it says
which key to use instead), nor one Airflow 3 dropped, nor a secret (airflow.cfg
lands in a ConfigMap).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from components.model import catalogues
from components.model.parsing import Problems, object_value

_CFG_NAME_RE = re.compile(r"^[a-z][a-z0-9_.]*$")

# airflow.cfg options the program owns. Each maps to the stack config key (or
# the reason) that the user should use instead of overriding it.
MANAGED_AIRFLOW_OPTIONS: dict[tuple[str, str], str] = {
    ("core", "parallelism"): "use the `parallelism` key",
    ("core", "max_active_tasks_per_dag"): "use the `maxActiveTasksPerDag` key",
    ("core", "max_active_runs_per_dag"): "use the `maxActiveRunsPerDag` key",
    ("core", "default_pool_task_slot_count"): "the default pool is sized from the `parallelism` key",
    ("core", "executor"): "this program deploys the CeleryExecutor",
    ("core", "execution_api_server_url"): "it points at the api-server Service the program declares",
    ("core", "dags_folder"): "the DAGs are baked into the image at a fixed path",
    ("celery", "worker_concurrency"): "use the `workerConcurrency` key",
    ("celery", "celery_config_options"): "it names app/config/airflow_aks_celery.py, which keeps the broker "
                                         "queues RabbitMQ 4.3 allows; edit that file instead",
    ("celery", "worker_prefetch_multiplier"): "it must stay 1 so that no worker hoards queued tasks",
    ("scheduler", "task_queued_timeout"): "use the `taskQueuedTimeoutSeconds` key",
    ("scheduler", "enable_health_check"): "the scheduler's liveness probe depends on it",
    ("scheduler", "scheduler_health_check_server_port"): "the scheduler's liveness probe depends on it",
    ("core", "simple_auth_manager_passwords_file"): "it points at the admin password the program generates",
    ("logging", "worker_log_server_port"): "the workers' headless Service exposes it for task logs",
    ("logging", "trigger_log_server_port"): "the triggerer's headless Service exposes it for deferred tasks' logs",
    ("api", "workers"): "the capacity plan derives it from parallelism and the connection budget counts on it",
    ("workers", "min_heartbeat_interval"): "use the `heartbeatIntervalSeconds` key (the api-server is sized for it)",
    ("workers", "execution_api_timeout"): "the capacity plan derives it from the api-server's start burst",
    ("scheduler", "task_instance_heartbeat_timeout"): "the capacity plan derives it from `heartbeatIntervalSeconds` "
                                                      "and the Execution API timeout",
    ("core", "default_task_execution_timeout"): "use the `longestTaskSeconds` key (grace periods and drain "
                                                "timeouts are sized from it)",
    ("core", "default_task_retries"): "use the `taskRetries` key",
    ("core", "default_task_retry_delay"): "use the `taskRetryDelaySeconds` key",
    ("database", "sql_alchemy_pool_size"): "the database connection budget counts on it",
    ("database", "sql_alchemy_max_overflow"): "the database connection budget counts on it",
    ("dag_processor", "dag_bundle_config_list"): "use the `dagBundles` key",
    ("dag_processor", "dag_bundle_storage_path"): "it is the writable volume the pods that fetch DAG bundles mount "
                                                  "(`dagBundles`)",
    # The secrets backend: the Key Vault the program declares, or none. The
    # workers' own options would make them skip it (Airflow falls back to
    # [secrets] only when [workers] secrets_backend is unset).
    ("secrets", "backend"): "use the `keyVault` key (Azure Key Vault, read with the pods' workload identity)",
    ("secrets", "backend_kwargs"): "use the `keyVault` key; the vault URL and secret name prefixes are the program's",
    ("workers", "secrets_backend"): "use the `keyVault` key; workers read the [secrets] backend it sets",
    ("workers", "secrets_backend_kwargs"): "use the `keyVault` key; workers read the [secrets] backend it sets",
    ("core", "simple_auth_manager_users"): "the admin password the program generates is for the user it names",
    ("database", "sql_alchemy_connect_args_async"): "use the `pgbouncer` key (behind PgBouncer's transaction "
                                                    "pooling psycopg's prepared statements must be off)",
    ("api", "port"): "the api-server's Service, its probes and the Execution API URL use this port",
    ("scheduler", "max_tis_per_query"): "the start-up plan's queueing time was measured with 0 (a whole run "
                                        "queued in one scheduler loop)",
    ("celery", "task_acks_late"): "a task on a worker that stops must be redelivered, not lost; the workers' "
                                  "warm shutdown and RabbitMQ's consumer timeout count on it",
    ("logging", "remote_logging"): "use the `remoteTaskLogs` key",
    ("logging", "remote_base_log_folder"): "it names the storage container the program creates (`remoteTaskLogs`)",
    ("logging", "remote_log_conn_id"): "it names the connection to the storage account the program creates "
                                       "(`remoteTaskLogs`)",
    ("azure_remote_logging", "remote_wasb_log_container"): "it is the storage container the program creates "
                                                           "(`remoteTaskLogs`)",
    ("metrics", "statsd_on"): "use the `metrics` key",
    ("metrics", "statsd_host"): "it is the statsd-exporter Service the program declares (`metrics`)",
    ("metrics", "statsd_port"): "it is the statsd-exporter Service the program declares (`metrics`)",
    ("metrics", "statsd_prefix"): "the statsd-exporter's mapping matches metric names by it (`metrics`)",
    # Sign-in (components/model/ui_auth.py).
    ("core", "auth_manager"): "use the `ui` key (`auth: simple` or `auth: entra`, Entra ID through the FAB "
                              "auth manager)",
    ("api", "base_url"): "use the `ui` key: with `exposure: gateway` it is https://<ui.host>",
    ("fab", "config_file"): "use the `ui` key: it names the webserver_config.py the program generates for "
                            "Entra ID sign-in",
    ("fab", "enable_proxy_fix"): "use the `ui` key: behind the gateway FAB must trust X-Forwarded-Proto, or "
                                 "Entra ID gets an http:// redirect URI",
    # Not set by the program: FAB's role for visitors who have not signed in.
    # Any role there opens the UI on the gateway's public address to anyone.
    ("fab", "auth_role_public"): "it stays unset, so visitors who have not signed in get no role on the "
                                 "gateway's public address; give people roles through `ui.entra.roleGroups`",
}

# airflow.cfg options the program sets (or reads) that a stack may override,
# each with why nothing else breaks. Every option the program writes is in
# this table or in MANAGED_AIRFLOW_OPTIONS (a test renders each stack and
# checks), so a new option is a decision, not an accident.
USER_AIRFLOW_OPTIONS: dict[tuple[str, str], str] = {
    ("core", "load_examples"): "the example DAGs only add DAGs; nothing the program sizes or declares reads it",
    ("core", "dagbag_import_timeout"): "the plan sets it on the workers only (their start burst); a value set "
                                       "here applies to every pod instead, and the workers start no faster",
    ("core", "default_timezone"): "the pre-warm windows (prewarmSchedules) read the same value",
    ("operators", "default_queue"): "the workers consume it and the KEDA query counts it, both from this value",
}

# Options Airflow 3 dropped or renamed, which a config carried over from 2.x
# would otherwise set to no effect.
REMOVED_AIRFLOW_OPTIONS: dict[tuple[str, str], str] = {
    ("core", "dag_concurrency"): "removed in Airflow 3; use the `maxActiveTasksPerDag` key",
    ("core", "max_queued_runs_per_dag"): "does not exist in Airflow 3",
    ("core", "execute_tasks_new_python_interpreter"): "has no effect in Airflow 3",
    ("core", "sql_alchemy_conn"): "moved to [database] in Airflow 2.3 and is a secret the program generates",
    ("webserver", "secret_key"): "moved to [api] secret_key in Airflow 3 and is generated by the program",
}


def _is_secret_option(section: str, key: str) -> bool:
    """Options whose values are secrets must not land in a ConfigMap."""
    if (section, key) in {("celery", "broker_url"), ("celery", "result_backend"),
                          ("core", "fernet_key"), ("api", "secret_key"),
                          ("api_auth", "jwt_secret")}:
        return True
    return (
        "password" in key
        or key.endswith("_secret")
        or key.endswith("secret_key")
        or key.endswith("_conn")
        or key.endswith("_token")
    )


def parse_airflow_config(raw: Any, airflow_version: str | None, problems: Problems) -> dict[str, dict[str, str]] | None:
    """airflowConfig: sections of airflow.cfg options. Each must exist for airflowVersion (its
    catalogue, components/model/catalogues), not be one the program sets, nor a secret.
    Without a catalogue (airflowVersion itself refused) only the program's own rules apply."""
    key = "airflowConfig"
    obj = object_value(raw, key, problems)
    if obj is None:
        return None
    catalogue = catalogues.airflow_config(airflow_version) if airflow_version else None
    before = len(problems)
    out: dict[str, dict[str, str]] = {}
    for section in sorted(obj):
        options = obj[section]
        where = f"{key}.{section}"
        if not _CFG_NAME_RE.match(section):
            problems.append((where, "section names are lowercase, e.g. 'core' or 'celery'"))
            continue
        if not isinstance(options, Mapping):
            problems.append((where, f"must map option names to values, got {options!r}"))
            continue
        if catalogue is not None:
            why = _unknown_cfg_section(catalogue, section)
            if why:
                problems.append((where, why))
                continue
        for name in sorted(options):
            value = options[name]
            here = f"{where}.{name}"
            if not isinstance(name, str) or not _CFG_NAME_RE.match(name):
                problems.append((here, "option names are lowercase, e.g. 'dagbag_import_timeout'"))
                continue
            if (section, name) in MANAGED_AIRFLOW_OPTIONS:
                problems.append((here, "is set by the program: " + MANAGED_AIRFLOW_OPTIONS[(section, name)]))
                continue
            if (section, name) in REMOVED_AIRFLOW_OPTIONS:
                problems.append((here, REMOVED_AIRFLOW_OPTIONS[(section, name)]))
                continue
            if catalogue is not None:
                why = _unknown_cfg_option(catalogue, section, name)
                if why:
                    problems.append((here, why))
                    continue
            if _is_secret_option(section, name):
                problems.append((here, "looks like a secret; airflow.cfg lands in a ConfigMap, so secrets "
                                 "are generated by the program and mounted from Kubernetes Secrets"))
                continue
            if isinstance(value, bool):
                text = "True" if value else "False"
            elif isinstance(value, (int, float, str)):
                text = str(value)
            else:
                problems.append((here, f"must be a string, number or boolean, got {value!r}"))
                continue
            if "\n" in text:
                problems.append((here, "must be a single line"))
                continue
            out.setdefault(section, {})[name] = text
    return None if len(problems) > before else out


def _unknown_cfg_section(catalogue: catalogues.AirflowConfigCatalogue, section: str) -> str | None:
    """Why a section of airflowConfig is not one of airflow.cfg's (None: it is, or it held
    options Airflow moved elsewhere, which are reported one by one)."""
    if section in catalogue.sections or any(old == section for old, _ in catalogue.deprecated_options):
        return None
    source = f"components/model/catalogues/{catalogues.config_file(catalogue.airflow_version).name}"
    if section in catalogue.deprecated_sections:
        new, since = catalogue.deprecated_sections[section]
        return f"Airflow {since} renamed the section [{section}] to [{new}]; move its options there"
    close = catalogues.closest(section, catalogue.sections)
    hint = f"did you mean '{close}'? " if close else ""
    return (f"unknown section of airflow.cfg in Airflow {catalogue.airflow_version}; {hint}"
            f"the sections are those of {source} (a provider's own section: install the provider and "
            "rerun scripts/catalogues airflow-config)")


def _unknown_cfg_option(catalogue: catalogues.AirflowConfigCatalogue, section: str, name: str) -> str | None:
    """Why an option is not one of the section's in the catalogue: moved (with what replaced
    it), or unknown (with the closest option, saying so if the program sets that one)."""
    if catalogue.has(section, name):
        return None
    if (section, name) in catalogue.deprecated_options:
        new_section, new_name, since = catalogue.deprecated_options[(section, name)]
        why = f"Airflow {since} replaced it with [{new_section}] {new_name}"
        managed = MANAGED_AIRFLOW_OPTIONS.get((new_section, new_name))
        if managed:
            return f"{why}, which is set by the program: {managed}"
        return f"{why}; set `{_cfg_key(new_section, new_name)}` instead"
    known = catalogue.sections.get(section, frozenset())
    close = catalogues.closest(name, known)
    if close is None:
        return (f"[{section}] has no option {name!r} in Airflow {catalogue.airflow_version} "
                f"(components/model/catalogues/{catalogues.config_file(catalogue.airflow_version).name})")
    managed = MANAGED_AIRFLOW_OPTIONS.get((section, close))
    then = f" That one is set by the program: {managed}" if managed else ""
    return f"unknown option of [{section}] in Airflow {catalogue.airflow_version}; did you mean '{close}'?{then}"


def _cfg_key(section: str, option: str) -> str:
    """The airflowConfig key of an option: airflowConfig.<section>.<option>."""
    return f"airflowConfig.{section}.{option}"
