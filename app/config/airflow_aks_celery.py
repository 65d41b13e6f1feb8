"""Celery settings of every Airflow component, named by `[celery] celery_config_options`.

Airflow puts $AIRFLOW_HOME/config on sys.path, and the image copies this file
there. The Celery provider takes this dict whole (not merged with its own), so
it starts from the provider's defaults.
"""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

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
