"""Settings + plan -> airflow.cfg text for Airflow 3.x.

The text holds no secret: connection strings with passwords, the fernet key,
the JWT secret and the API secret key reach pods as the environment variables
in ``SECRET_ENV`` from Kubernetes Secrets. Airflow reads an
``AIRFLOW__SECTION__KEY`` variable in preference to the file.

The output is deterministic (fixed order, no timestamps), so an unchanged
config shows no diff in ``pulumi preview``.
"""

from __future__ import annotations

import json

from components.model import component_secrets, names, ui_auth
from components.model.capacity import (
    SQLALCHEMY_MAX_OVERFLOW,
    SQLALCHEMY_POOL_SIZE,
    CapacityPlan,
)
from components.model.dag_bundles import bundle_options
from components.model.names import (
    ADMIN_USER,
    AIRFLOW_HOME,
    API_SERVER,
    API_SERVER_PORT,
    CELERY_CONFIG_OPTIONS,
    DAGS_FOLDER,
    SCHEDULER_HEALTH_PORT,
    TRIGGERER_LOG_PORT,
    WORKER_LOG_PORT,
    service_host,
)
from components.model.settings import Settings

# Where the api-server pod finds the SimpleAuthManager passwords: a writable
# copy of the Secret, since the auth manager opens the file for writing.
AUTH_PASSWORDS_FILE = f"{AIRFLOW_HOME}/auth/simple_auth_manager_passwords.json"

# Environment variables that carry secrets, each filled from a Kubernetes
# Secret (the component's own, component_secrets.py), never from the ConfigMap.
SECRET_ENV = tuple(dict.fromkeys(key.env for key in component_secrets.KEYS.values()))

# app/config/airflow_aks_database.py: psycopg's prepared statements off for
# the async engine behind PgBouncer.
CONNECT_ARGS_ASYNC = "airflow_aks_database.CONNECT_ARGS_ASYNC"

# The reference DAG (app/dags/fanout.py) reads its width, sleep and schedule
# from these, in the dag-processor and in the worker alike.
FANOUT_TASKS_ENV = "AIRFLOW_AKS_FANOUT_TASKS"
FANOUT_SLEEP_ENV = "AIRFLOW_AKS_FANOUT_SLEEP_SECONDS"
# Empty: no schedule (runs are triggered by hand).
FANOUT_SCHEDULE_ENV = "AIRFLOW_AKS_FANOUT_SCHEDULE"

Options = dict[str, dict[str, str]]


def workload_env(settings: Settings) -> dict[str, str]:
    """Plain (non-secret) environment every Airflow pod carries."""
    return {
        FANOUT_TASKS_ENV: str(settings.fanout_tasks),
        FANOUT_SLEEP_ENV: str(settings.fanout_sleep_seconds),
        FANOUT_SCHEDULE_ENV: settings.fanout_schedule or "",
    }


def api_server_url(namespace: str) -> str:
    return f"http://{service_host(API_SERVER, namespace)}:{API_SERVER_PORT}"


def airflow_options(settings: Settings, plan: CapacityPlan) -> Options:
    """Every option the program sets, with the stack's overrides merged last."""
    api = plan.control_plane.api_server
    options: Options = {
        "core": {
            "executor": "CeleryExecutor",
            "parallelism": str(plan.parallelism),
            "max_active_tasks_per_dag": str(plan.max_active_tasks_per_dag),
            "max_active_runs_per_dag": str(plan.max_active_runs_per_dag),
            # Only takes effect when the pool is first created; the migration
            # job also resizes an existing default_pool to the plan.
            "default_pool_task_slot_count": str(plan.default_pool_slots),
            "dags_folder": DAGS_FOLDER,
            "load_examples": "False",
            "execution_api_server_url": f"{api_server_url(settings.namespace)}/execution/",
            # Here, not with the other sections' additions: a stack without Entra
            # sign-in keeps its airflow.cfg text, so its pods do not roll.
            **auth_manager_options(settings).pop("core"),
            # Airflow stops a task that runs past longestTaskSeconds, so the
            # grace periods, consumer timeout and drain timeouts sized from it
            # hold: the task fails as timed out instead of being SIGKILLed
            # with its pod.
            "default_task_execution_timeout": str(settings.longest_task_seconds),
            # A task lost with its worker (SIGKILL, OOM kill, node loss) is
            # failed by the scheduler's heartbeat timeout through
            # TaskInstance.handle_failure, which retries it only if the task
            # has retries (airflow/models/taskinstance.py,
            # is_eligible_to_retry); Airflow's default is none. The SDK reads
            # these when the DAG is parsed (airflow/sdk/definitions/_internal/
            # abstractoperator.py, DEFAULT_RETRIES), so they apply to every
            # task that sets no `retries` itself (README "Faults").
            "default_task_retries": str(settings.task_retries),
            "default_task_retry_delay": str(settings.task_retry_delay_seconds),
        },
        "database": {
            "sql_alchemy_pool_size": str(SQLALCHEMY_POOL_SIZE),
            "sql_alchemy_max_overflow": str(SQLALCHEMY_MAX_OVERFLOW),
            # Only behind PgBouncer: straight to PostgreSQL a session keeps its
            # server connection, so psycopg's prepared statements are safe and
            # save re-planning the queries the async routes repeat (the dag-run
            # wait endpoint runs one query over and over).
            **({"sql_alchemy_connect_args_async": CONNECT_ARGS_ASYNC} if settings.pgbouncer else {}),
        },
        "logging": {
            # The api-server fetches a running task's log from its worker, and
            # a deferred task's from its triggerer, on these ports (each has a
            # headless Service).
            "worker_log_server_port": str(WORKER_LOG_PORT),
            "trigger_log_server_port": str(TRIGGERER_LOG_PORT),
        },
        "api": {
            "port": str(API_SERVER_PORT),
            "workers": str(plan.control_plane.api_server.workers_per_pod),
        },
        "scheduler": {
            # 0 means "up to parallelism": one scheduler loop queues a whole
            # wide fan-out instead of 16 task instances at a time (a
            # 1,000-wide run queued in 1.5 s instead of 11-13 s on 3.3.2).
            "max_tis_per_query": "0",
            "task_queued_timeout": f"{settings.task_queued_timeout_seconds}.0",
            # Matched to the heartbeat interval and the Execution API timeout
            # (capacity.py _api_server_plan): a live task is never failed for a
            # late heartbeat, a lost one within ~2 minutes instead of 5.
            "task_instance_heartbeat_timeout": str(api.heartbeat_timeout_seconds),
            # Serves /health for the scheduler's liveness probe.
            "enable_health_check": "True",
            "scheduler_health_check_server_port": str(SCHEDULER_HEALTH_PORT),
        },
        "workers": {
            # Every running task's supervisor heartbeats this often; the
            # api-server is sized for it (bench/controlplane: the CPU of a
            # running task falls with the interval).
            "min_heartbeat_interval": str(api.heartbeat_interval_seconds),
            # Longer than the api-server takes to answer a whole run's starts
            # at once, so a burst queues instead of timing out into retries.
            "execution_api_timeout": f"{api.client_timeout_seconds}.0",
        },
        "celery": {
            # app/config/airflow_aks_celery.py: the provider's defaults with
            # exclusive remote-control queues (RabbitMQ 4.3 denies transient
            # non-exclusive ones).
            "celery_config_options": CELERY_CONFIG_OPTIONS,
            "worker_concurrency": str(plan.worker.concurrency),
            # A worker takes only what it can start now, so queued tasks go to
            # whichever worker has a free slot.
            "worker_prefetch_multiplier": "1",
            # Acknowledge after the task ends: a task on a worker that is shut
            # down is redelivered, not lost.
            "task_acks_late": "True",
        },
    }
    # DAG bundles (components/model/dag_bundles.py): the list and the
    # writable volume they are kept on.
    options["dag_processor"] = bundle_options(settings)
    sign_in = auth_manager_options(settings)
    sign_in.pop("core")
    for extra in (sign_in, remote_logging_options(settings), metrics_options(settings), secrets_options(settings)):
        for section, values in extra.items():
            options.setdefault(section, {}).update(values)
    for section in sorted(settings.airflow_config):
        options.setdefault(section, {}).update(settings.airflow_config[section])
    return options


def auth_manager_options(settings: Settings) -> Options:
    """Who signs in to the UI (the `ui` key): Airflow's SimpleAuthManager (its
    default) with the one admin the program generates a password for, or Entra
    ID through the FAB auth manager (components/model/ui_auth.py)."""
    if settings.ui.auth == "entra":
        return ui_auth.auth_options(settings.ui)
    return {"core": {
        "simple_auth_manager_users": f"{ADMIN_USER}:admin",
        "simple_auth_manager_passwords_file": AUTH_PASSWORDS_FILE,
    }}


DAGBAG_IMPORT_TIMEOUT_ENV = "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"


def worker_cfg_env(settings: Settings, plan: CapacityPlan) -> dict[str, str]:
    """Options only the workers need, as Airflow's environment variables.

    Every task process parses its DAG file within [core] dagbag_import_timeout
    or is rescheduled, and a full worker node starting all its tasks at once
    needs longer than Airflow's 30 s (the plan's "task start"). The value
    follows the worker's packing, so it lives on the worker pods: a change of
    slot size rolls the workers only, not airflow.cfg and every pod with it.
    A value the stack sets in airflowConfig applies everywhere instead.
    """
    if "dagbag_import_timeout" in settings.airflow_config.get("core", {}):
        return {}
    return {DAGBAG_IMPORT_TIMEOUT_ENV: f"{plan.dagbag_import_timeout_seconds}.0"}


def render_airflow_cfg(settings: Settings, plan: CapacityPlan) -> str:
    """The airflow.cfg text the ConfigMap holds."""
    lines = [
        f"# Generated by airflow-aks from the stack config of '{settings.stack}'.",
        f"# Change Pulumi.{settings.stack}.yaml instead of this file. Airflow {settings.airflow_version}.",
    ]
    for section, values in airflow_options(settings, plan).items():
        lines.append("")
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
    return "\n".join(lines) + "\n"


# StatsD metric names start with this (components/kubernetes/metrics.py maps them).
STATSD_PREFIX = "airflow"
# Blob names start with this, inside names.TASK_LOG_CONTAINER (Airflow's
# airflow_local_settings.py takes [logging] remote_base_log_folder as the
# prefix and [azure_remote_logging] remote_wasb_log_container as the container).
REMOTE_BASE_LOG_FOLDER = "wasb://task-logs"


def metrics_options(settings: Settings) -> dict[str, dict[str, str]]:
    """airflow.cfg's [metrics] section."""
    if not settings.metrics:
        return {}
    return {"metrics": {
        "statsd_on": "True",
        # Absolute (trailing dot): every task process builds its own StatsD
        # client (the SDK resets it after each fork, airflow/sdk/_shared/
        # observability/metrics/stats.py), which resolves this name
        # (pystatsd's StatsClient calls getaddrinfo). A pod's resolv.conf has
        # ndots:5, so a relative name with 4 dots is tried under each search
        # domain first, NXDOMAIN each, one of them forwarded out of the
        # cluster (https://kubernetes.io/docs/concepts/services-networking/
        # dns-pod-service/#namespaces-of-services); the absolute name is one query.
        "statsd_host": names.service_host(names.STATSD, settings.namespace) + ".",
        "statsd_port": str(names.STATSD_PORT),
        "statsd_prefix": STATSD_PREFIX,
    }}


def remote_logging_options(settings: Settings) -> dict[str, dict[str, str]]:
    """airflow.cfg options for remote task logs (none when they are off)."""
    if not settings.remote_task_logs:
        return {}
    return {
        "logging": {
            "remote_logging": "True",
            "remote_base_log_folder": REMOTE_BASE_LOG_FOLDER,
            "remote_log_conn_id": "wasb_default",
        },
        "azure_remote_logging": {"remote_wasb_log_container": names.TASK_LOG_CONTAINER},
    }


# Airflow's secrets backend for Azure Key Vault (apache-airflow-providers-microsoft-azure).
KEY_VAULT_BACKEND = "airflow.providers.microsoft.azure.secrets.key_vault.AzureKeyVaultBackend"
# Secret names: "<prefix><sep><id>", every "_" of the id turned into sep, as
# Key Vault names take only letters, digits and "-" (the provider's
# AzureKeyVaultBackend.build_path): connection `my_db` is the secret
# airflow-connections-my-db. The provider's defaults, written out so README's
# commands and the backend cannot drift apart.
CONNECTIONS_PREFIX = "airflow-connections"
VARIABLES_PREFIX = "airflow-variables"
SECRET_NAME_SEP = "-"
# The one argument known only after a deploy (the vault's URI, from Azure): the
# pods that read the vault get it as this variable, which Airflow merges into
# [secrets] backend_kwargs (airflow/_shared/configuration/parser.py,
# _collect_kwarg_env_vars; settings.KEY_VAULT_OLDEST_AIRFLOW). Workers take
# the same: with [workers] secrets_backend unset, the task SDK falls back to
# [secrets] with its kwargs and its per-key variables (_get_custom_secret_backend).
VAULT_URL_ENV = "AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL"


def key_vault_secret_name(prefix: str, secret_id: str) -> str:
    """The Key Vault secret the backend reads for a connection id or variable key."""
    return f"{prefix}{SECRET_NAME_SEP}{secret_id}".replace("_", SECRET_NAME_SEP)


def secrets_options(settings: Settings) -> dict[str, dict[str, str]]:
    """airflow.cfg's [secrets] section with keyVault: the backend and its
    arguments but the vault URL (VAULT_URL_ENV). No credential: the backend's
    DefaultAzureCredential takes the pod's workload identity from the
    variables the AKS webhook injects (AZURE_CLIENT_ID, AZURE_TENANT_ID,
    AZURE_FEDERATED_TOKEN_FILE; azure-identity's WorkloadIdentityCredential)."""
    if not settings.key_vault:
        return {}
    kwargs = {"connections_prefix": CONNECTIONS_PREFIX, "variables_prefix": VARIABLES_PREFIX,
              "sep": SECRET_NAME_SEP}
    return {"secrets": {"backend": KEY_VAULT_BACKEND, "backend_kwargs": json.dumps(kwargs)}}
