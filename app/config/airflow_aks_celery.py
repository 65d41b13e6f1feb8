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
    these objects' pages shared. The first thing a child does for a task is
    store its state in the database result backend, where SQLAlchemy
    configures its mappers and Airflow imports every ORM model; here that
    happens once. The task runner and supervisor modules follow.
    """
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    print(f"{PRELOAD_MARK} pid={os.getpid()}", file=sys.stderr, flush=True)
