"""Names and ports of the Kubernetes objects other objects refer to.

Services are reached by DNS name from airflow.cfg and from connection strings,
so their names are fixed rather than generated.
"""

from __future__ import annotations

AIRFLOW_HOME = "/opt/airflow"
DAGS_FOLDER = f"{AIRFLOW_HOME}/dags"
# On Airflow's sys.path; the image copies app/config/ there.
CONFIG_FOLDER = f"{AIRFLOW_HOME}/config"
CELERY_CONFIG_OPTIONS = "airflow_aks_celery.CELERY_CONFIG"
# uid of the airflow user in the official image; its group is root (0).
AIRFLOW_UID = 50000

API_SERVER = "airflow-api-server"
API_SERVER_PORT = 8080
# With Entra ID sign-in the api-server runs as its own ServiceAccount: the app
# registration trusts that account's tokens (components/model/ui_auth.py).
API_SERVER_SERVICE_ACCOUNT = "airflow-api-server"
SCHEDULER = "airflow-scheduler"
SCHEDULER_HEALTH_PORT = 8974
DAG_PROCESSOR = "airflow-dag-processor"
TRIGGERER = "airflow-triggerer"
TRIGGERER_LOG_PORT = 8794
WORKER = "airflow-worker"
WORKER_LOG_PORT = 8793
FLOWER = "airflow-flower"
FLOWER_PORT = 5555
# The user of Flower's basic auth; its password is generated (airflow-env-flower).
FLOWER_USER = "admin"
MIGRATE = "airflow-migrate"

POSTGRES = "airflow-postgres"
POSTGRES_PORT = 5432
POSTGRES_DB = "airflow"
POSTGRES_USER = "airflow"
# Least-privilege roles beside that superuser (or the flexible server's
# admin), made by the database-roles Job (components/model/database_roles.py):
# the owner of Airflow's tables, which only the migration Job logs in as;
# the role every Airflow component logs in as (DML only); KEDA's, which reads
# two columns of task_instance.
DATABASE_OWNER_ROLE = "airflow_owner"
DATABASE_APP_ROLE = "airflow_app"
DATABASE_KEDA_ROLE = "airflow_keda"
# The Celery result backend's login (workers, scheduler): its two tables only.
DATABASE_RESULTS_ROLE = "airflow_results"
DATABASE_ROLES = "airflow-database-roles"

# PgBouncer: one database alias per pool, both onto POSTGRES_DB.
PGBOUNCER = "airflow-pgbouncer"
PGBOUNCER_PORT = 6432
PGBOUNCER_METADATA_DB = "airflow-metadata"
PGBOUNCER_RESULT_BACKEND_DB = "airflow-result-backend"

RABBITMQ = "airflow-rabbitmq"
RABBITMQ_PORT = 5672
RABBITMQ_USER = "airflow"
RABBITMQ_VHOST = "airflow"

CONFIG_MAP = "airflow-config"
ENV_CONFIG_MAP = "airflow-env"
# Each Airflow component's Secret is airflow-env-<component> (env_secret):
# components/model/component_secrets.py says what each one holds.
ENV_SECRET = "airflow-env"
POSTGRES_SECRET = "airflow-postgres"
RABBITMQ_SECRET = "airflow-rabbitmq"
AUTH_SECRET = "airflow-auth"
PGBOUNCER_SECRET = "airflow-pgbouncer"
ADMIN_USER = "admin"


def service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"

# Task logs in Blob Storage: one container; the pods that write or read task
# logs run as this ServiceAccount, which workload identity maps to an Azure
# identity allowed on that container only.
TASK_LOG_CONTAINER = "airflow-logs"
TASK_LOG_SERVICE_ACCOUNT = "airflow-task-logs"
TASK_LOG_SECRET = "airflow-task-logs"
# On AKS the api-server only reads task logs, as an identity of its own: its
# connection names that identity (components/kubernetes/task_logs.py).
TASK_LOG_READER_SECRET = "airflow-task-logs-reader"
# Airflow's StatsD metrics, turned into Prometheus metrics.
STATSD = "airflow-statsd"
STATSD_PORT = 9125
STATSD_METRICS_PORT = 9102

# The worker pool carries this label and a NoSchedule taint with the same key,
# so Celery workers (which tolerate it and select it) are the only pods there.
WORKER_POOL_LABEL_KEY = "airflow-aks/pool"
WORKER_POOL_LABEL_VALUE = "celery-workers"
WORKER_POOL_TAINT = f"{WORKER_POOL_LABEL_KEY}={WORKER_POOL_LABEL_VALUE}:NoSchedule"

# Dumps of the in-cluster database (components/kubernetes/backups.py): the
# CronJob, the ServiceAccount workload identity maps to the backup identity
# (allowed on the backup container only), and that container beside the logs.
DATABASE_BACKUP = "airflow-database-backup"
BACKUP_SERVICE_ACCOUNT = "airflow-database-backup"
BACKUP_CONTAINER = "airflow-backups"
# The uploader script (a ConfigMap) and, on a local cluster, the emulator's
# connection string (a Secret).
BACKUP_CONFIG_MAP = "airflow-database-backup"
BACKUP_SECRET = "airflow-database-backup"

# The UI's gateway (`ui.exposure: gateway`) lives in a namespace of its own,
# <namespace><UI_GATEWAY_NAMESPACE_SUFFIX>; with a UI certificate in Key Vault,
# the app routing operator reads it as this ServiceAccount there, which
# workload identity maps to an identity allowed on that certificate alone
# (components/azure/ui_gateway.py).
UI_GATEWAY_NAMESPACE_SUFFIX = "-ui"
UI_TLS_SERVICE_ACCOUNT = "airflow-ui-tls"
# The Gateway and its listener, and the HTTPRoute beside the api-server
# (components/kubernetes/ui_gateway.py).
UI_GATEWAY = "airflow-ui"
UI_GATEWAY_CLASS = "approuting-istio"
UI_GATEWAY_LISTENER = "https"
UI_ROUTE = "airflow-ui"


def ui_gateway_namespace(namespace: str) -> str:
    return f"{namespace}{UI_GATEWAY_NAMESPACE_SUFFIX}"


def env_secret(component: str) -> str:
    """The Secret of an Airflow component's generated values (component_secrets.COMPONENT_SECRETS)."""
    return f"{ENV_SECRET}-{component}"
