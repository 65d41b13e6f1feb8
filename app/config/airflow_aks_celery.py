"""Celery settings of every Airflow component, named by `[celery] celery_config_options`.

Airflow puts $AIRFLOW_HOME/config on sys.path, and the image copies this file
there. The Celery provider takes this dict whole (not merged with its own), so
it starts from the provider's defaults.
"""

import os
import sys

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

# What the worker's log says once the preload below has run.
PRELOAD_MARK = "airflow-aks: preloaded the ORM models and the task runner before the pool forks"

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    # Remote-control (pidbox) queues, such as each worker's queue and the
    # reply queue of `celery inspect ping` (the workers' liveness probe), are
    # transient and by default non-exclusive. RabbitMQ 4.3 denies transient
    # non-exclusive queues by default; exclusive ones belong to the connection
    # that declared them and are allowed on every version.
    "control_queue_exclusive": True,
    # The same for the queue an event receiver (Flower) declares.
    "event_queue_exclusive": True,
}


@import_modules.connect
def preload_before_the_pool_forks(**_: object) -> None:
    """Build, once in the worker's main process, what each pool child would
    otherwise build for its first task.

    Celery sends import_modules in the worker's main process before it forks
    the pool, so the children inherit this memory copy-on-write. The Celery
    provider's own handler runs after this one and freezes the GC, which keeps
    these objects' pages shared. What a fresh child would otherwise do itself
    (bench/worker.py measures it):
    - store the task's state in the database result backend, where SQLAlchemy
      configures its mappers and Airflow imports every ORM model;
    - set its parent-death signal: billiard does it through cffi when cffi is
      loaded, and a fresh child then imports pycparser and parses a C
      declaration (about 4 MiB of private memory per child);
    - build the Execution API client's SSL context, loading the CA bundle;
    - import the task runner, the supervisor and the @task decorator.
    """
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    import airflow.providers.standard.decorators.python
    import airflow.sdk.definitions.decorators
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    _warm_pdeathsig()
    _warm_api_client_ssl_context()
    print(f"{PRELOAD_MARK} pid={os.getpid()}", file=sys.stderr, flush=True)


def _warm_pdeathsig() -> None:
    # Reading the signal goes through the same cffi parser setup as the
    # child's set_pdeathsig, and cffi caches that parser for the process.
    from billiard.util import get_pdeathsig

    try:
        get_pdeathsig()
    except OSError:
        pass


def _warm_api_client_ssl_context() -> None:
    # The client builds its context through this per-process cache, with
    # these arguments (airflow/sdk/api/client.py); filled here, every child
    # finds it filled. If a later SDK renames it, the child builds its own.
    from airflow.sdk.api import client

    cached = getattr(client.Client, "_get_ssl_context_cached", None)
    if cached is not None:
        cached(getattr(client, "API_SSL_CA_FILE_PATH", None), getattr(client, "API_SSL_CERT_PATH", None))
