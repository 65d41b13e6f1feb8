"""Which generated secrets each Airflow component receives, and why.

Each component gets a Secret of its own (names.env_secret) holding only the
keys below: a worker, which runs DAG authors' code, can neither mint API
tokens (the JWT secret), decrypt stored connections and variables (the
Fernet key) nor log in to the metadata database as Airflow. The reasons name
the Airflow 3.3.2 code (airflow-core 3.3.2, providers-celery 3.26.0) that
reads each value in that component; tests/test_component_secrets.py checks
the rendered containers against this table, and the real-Airflow tests run
every component with exactly what its container declares.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.model import names

DB_CONN_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


@dataclass(frozen=True)
class SecretKey:
    """A key of the components' Secrets: the environment variable it sets and what it holds."""

    env: str
    what: str


SQL_ALCHEMY_CONN = "sql-alchemy-conn"
# The migration Job's connection: straight to PostgreSQL, not through PgBouncer.
DIRECT_CONN = "sql-alchemy-conn-direct"
SQL_ALCHEMY_CONN_ASYNC = "sql-alchemy-conn-async"
BROKER_URL = "broker-url"
RESULT_BACKEND = "result-backend"
FERNET_KEY = "fernet-key"
API_SECRET_KEY = "api-secret-key"
JWT_SECRET = "jwt-secret"
FLOWER_BASIC_AUTH = "flower-basic-auth"

KEYS: dict[str, SecretKey] = {
    SQL_ALCHEMY_CONN: SecretKey(DB_CONN_ENV, "metadata database URL (through PgBouncer when it is on)"),
    DIRECT_CONN: SecretKey(DB_CONN_ENV, "metadata database URL, straight to PostgreSQL"),
    SQL_ALCHEMY_CONN_ASYNC: SecretKey("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
                                      "metadata database URL for async sessions"),
    BROKER_URL: SecretKey("AIRFLOW__CELERY__BROKER_URL", "RabbitMQ URL"),
    RESULT_BACKEND: SecretKey("AIRFLOW__CELERY__RESULT_BACKEND", "Celery result backend URL"),
    FERNET_KEY: SecretKey("AIRFLOW__CORE__FERNET_KEY", "encrypts connections, variables and trigger arguments"),
    API_SECRET_KEY: SecretKey("AIRFLOW__API__SECRET_KEY", "signs the api-server's requests to the log servers"),
    JWT_SECRET: SecretKey("AIRFLOW__API_AUTH__JWT_SECRET", "signs API and Execution API tokens"),
    FLOWER_BASIC_AUTH: SecretKey("AIRFLOW__CELERY__FLOWER_BASIC_AUTH", "Flower's user:password"),
}

_METADATA_DB = ("the {who} reads and writes the metadata database through Airflow's ORM "
                "(airflow/settings.py configure_orm: a sync and an async engine)")

# Component -> key -> why it needs it. A key not listed for a component is
# not in its Secret; Airflow code citations are paths in airflow-core 3.3.2.
COMPONENT_SECRETS: dict[str, dict[str, str]] = {
    "migrate": {
        DIRECT_CONN: "`airflow db migrate` (airflow/utils/db.py upgradedb) and `airflow pools set`; straight to "
                     "PostgreSQL, as the migration holds a session-level advisory lock. Nothing it runs "
                     "encrypts (utils/db.py creates no connections), so no Fernet key",
    },
    "api-server": {
        SQL_ALCHEMY_CONN: _METADATA_DB.format(who="UI, REST and Execution API"),
        SQL_ALCHEMY_CONN_ASYNC: "the REST API's async sessions (airflow/api_fastapi/common/db/common.py)",
        FERNET_KEY: "decrypts the connections and variables it serves to tasks and the UI "
                    "(airflow/models/crypto.py get_fernet), encrypts the triggers of tasks that defer "
                    "(airflow/api_fastapi/execution_api/routes/task_instances.py, Trigger)",
        JWT_SECRET: "validates and re-issues Execution API tokens (airflow/api_fastapi/execution_api/app.py "
                    "_jwt_validator, JWTReissueMiddleware) and signs UI/REST tokens "
                    "(airflow/api_fastapi/auth/managers/base_auth_manager.py)",
        API_SECRET_KEY: "signs the token it sends to a worker's or the triggerer's log server "
                        "(airflow/utils/log/file_task_handler.py _fetch_logs_from_service) and its own app state "
                        "(airflow/api_fastapi/core_api/app.py)",
    },
    "scheduler": {
        SQL_ALCHEMY_CONN: _METADATA_DB.format(who="scheduler"),
        SQL_ALCHEMY_CONN_ASYNC: "the ORM's async engine, as configured for every metadata database user "
                                "(airflow/settings.py)",
        FERNET_KEY: "encrypts the kwargs of the triggers it creates: tasks that start from a trigger "
                    "(airflow/models/dagrun.py schedule_tis, models/taskinstance.py defer_task) and deadline "
                    "callbacks (airflow/models/callback.py TriggererCallback.queue)",
        JWT_SECRET: "signs each task's Execution API token (airflow/executors/base_executor.py jwt_generator; "
                    "without the key it refuses, make_secret_key_if_needed=False)",
        BROKER_URL: "the CeleryExecutor sends tasks to RabbitMQ (providers/celery/executors/celery_executor.py)",
        RESULT_BACKEND: "the CeleryExecutor reads task states from the result backend "
                        "(providers/celery/executors/celery_executor_utils.py BulkStateFetcher)",
    },
    "dag-processor": {
        SQL_ALCHEMY_CONN: _METADATA_DB.format(who="dag-processor (serialized DAGs, callbacks)"),
        SQL_ALCHEMY_CONN_ASYNC: "the ORM's async engine, as configured for every metadata database user "
                                "(airflow/settings.py)",
        FERNET_KEY: "connections and variables that DAG files and callbacks read through its in-process "
                    "Execution API (airflow/dag_processing/manager.py _make_execution_api), and asset "
                    "watchers' triggers (airflow/dag_processing/collection.py Trigger.encrypt_kwargs). No JWT "
                    "secret: the in-process API skips token checks (execution_api/app.py InProcessExecutionAPI)",
    },
    "triggerer": {
        SQL_ALCHEMY_CONN: _METADATA_DB.format(who="triggerer"),
        SQL_ALCHEMY_CONN_ASYNC: "the ORM's async engine, as configured for every metadata database user "
                                "(airflow/settings.py)",
        FERNET_KEY: "decrypts trigger kwargs (airflow/models/trigger.py) and the connections triggers read "
                    "through its in-process Execution API (airflow/jobs/triggerer_job_runner.py "
                    "in_process_api_server; no JWT secret, as for the dag-processor)",
        API_SECRET_KEY: "its log server checks the api-server's token for deferred tasks' logs "
                        "(airflow/utils/serve_logs/log_server.py)",
    },
    "worker": {
        BROKER_URL: "takes tasks from RabbitMQ (providers/celery/cli/celery_command.py worker)",
        RESULT_BACKEND: "stores each task's Celery result (providers/celery/executors/default_celery.py "
                        "result_backend). No metadata database URL: on Airflow 3 tasks reach the database "
                        "only through the api-server's Execution API, and `celery worker` skips the "
                        "database check (celery_command.py, check_db=not AIRFLOW_V_3_0_PLUS)",
        API_SECRET_KEY: "its log server, started with the worker (celery_command.py _serve_logs), checks the "
                        "api-server's token (airflow/utils/serve_logs/log_server.py)",
    },
    "flower": {
        BROKER_URL: "`airflow celery flower` hands the broker URL to Flower (celery_command.py flower)",
        FLOWER_BASIC_AUTH: "[celery] flower_basic_auth, passed as --basic-auth "
                           "(providers/celery/cli/definition.py ARG_FLOWER_BASIC_AUTH)",
    },
}


def components(flower: bool) -> list[str]:
    """The Airflow components the deployment runs: Flower only when it is on."""
    return [c for c in COMPONENT_SECRETS if flower or c != "flower"]


def component_keys(component: str) -> dict[str, SecretKey]:
    """The keys of the component's Secret, each with the environment variable it sets."""
    return {key: KEYS[key] for key in COMPONENT_SECRETS[component]}


def component_env(component: str) -> dict[str, str]:
    """Environment variable -> key of the component's Secret."""
    return {k.env: key for key, k in component_keys(component).items()}


def all_keys() -> set[str]:
    """Every key some component receives."""
    return {key for keys in COMPONENT_SECRETS.values() for key in keys}


def secret_table(reasons: bool = True) -> str:
    """COMPONENT_SECRETS as a markdown table, one row per component (Flower's
    only with `flower` on); without `reasons`, the keys alone (README's)."""
    head = ["| Component | Secret | Keys (environment variable) |" + (" Why |" if reasons else ""),
            "| --- | --- | --- |" + (" --- |" if reasons else "")]
    rows = []
    for component, keys in COMPONENT_SECRETS.items():
        listed = "<br>".join(f"`{key}` ({KEYS[key].env})" for key in keys)
        why = "<br>".join(f"`{key}`: {reason}" for key, reason in keys.items())
        rows.append(f"| {component} | `{names.env_secret(component)}` | {listed} |" + (f" {why} |" if reasons else ""))
    return "\n".join(head + rows) + "\n"


if __name__ == "__main__":
    # README's table (--reasons: docs/security.md's).
    import sys

    print(secret_table("--reasons" in sys.argv), end="")
