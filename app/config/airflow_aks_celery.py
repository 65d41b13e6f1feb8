"""Celery settings of every Airflow component, named by `[celery] celery_config_options`.

Airflow puts $AIRFLOW_HOME/config on sys.path, and the image copies this file
there. The Celery provider takes this dict whole (not merged with its own), so
it starts from the provider's defaults.
"""

import gc
import os
import sys

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules, worker_before_create_process, worker_process_init

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
    - import the task runner, the supervisor and the @task decorator;
    - resolve the remote task-log handler (the SDK caches it per process) and
      import what its first upload imports lazily;
    - and what every task process imported for itself, fresh child or not.
    """
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    import airflow.providers.standard.decorators.python
    import airflow.sdk.definitions.decorators
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    _import_what_every_task_process_imports()
    _warm_pdeathsig()
    _warm_api_client_ssl_context()
    _warm_remote_task_log()
    print(f"{PRELOAD_MARK} pid={os.getpid()}", file=sys.stderr, flush=True)


def _import_what_every_task_process_imports() -> None:
    # Each task process imported these three itself, on a warm pool child as
    # on a fresh one (bench/attribute's probe, "new modules" of the task
    # process; 3.3-3.6 ms of CPU per task process here, timed in a fork of
    # a preloaded process): the local DAG bundle's
    # class (dag-processing/bundles/manager.py names it by path for the
    # dags folder), the asset Metadata that the callable runner imports on
    # each run (airflow/sdk/execution_time/callback_runner.py), and
    # airflow.version.
    import airflow.dag_processing.bundles.local
    import airflow.sdk.definitions.asset.metadata
    import airflow.version  # noqa: F401


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


def _warm_remote_task_log() -> None:
    # The supervisor's first _configure_logging resolves the remote log
    # handler through airflow.sdk.log.load_remote_log_handler, which caches it
    # per process (from config only, no connection). Its first upload then
    # imports the SDK's connection cache and, for Azure blob logs, two
    # azure-core modules (bench/attribute.py found these three, about 2 ms).
    import airflow.sdk.execution_time.cache  # noqa: F401
    from airflow.sdk.log import load_remote_log_handler

    handler = load_remote_log_handler()
    if handler is not None and type(handler).__module__.startswith("airflow.providers.microsoft.azure."):
        import azure.core.rest._http_response_impl
        import azure.core.rest._requests_basic  # noqa: F401


@worker_before_create_process.connect
def freeze_before_each_fork(**_: object) -> None:
    """Keep the main process from un-sharing the pool children's pages.

    Celery sends this signal in the main process just before it forks each
    pool child, and then runs a full collection (asynpool, "Issue #2927").
    That collection writes the GC header of every tracked object, in memory
    the children forked so far still share with the main process: the main
    process gets its own copy of each such page and every earlier child is
    left holding the old one alone, as its private memory. The Celery
    provider's freeze at import_modules covers only what existed then, not the
    consumer, pool and connections built afterwards. Collecting here and
    freezing what survives leaves Celery's collection nothing to walk
    (bench/worker, 128 slots: idle pool child 11.2 -> 10.6 MiB private dirty).
    The provider unfreezes the main process once the worker is ready. A child
    forked later to replace one freezes the main process again, and what it
    holds then (the worker's long-lived state) stays out of its collections.
    """
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def freeze_in_each_task_process(**_: object) -> None:
    """Keep each task process's collections off what its pool child holds.

    Celery sends worker_process_init in each new pool child. The child is the
    task's supervisor: for every task it forks the task process
    (airflow/sdk/execution_time/supervisor.py, WatchedSubprocess.start), which
    inherits all of the child's objects. What the main process froze before
    the pool forked stays frozen, but everything the child built since (its
    Celery state and what its tasks left: the remote log handler's hook, the
    blob client and its connection pool after the first upload, the log
    connection's cache) is walked by the task process's full collections, and
    walking it writes each object's GC header, so the task process copies
    those pages (copy on write). Freezing them as the task process's first act
    leaves its collections only what it builds itself; on this machine that
    took a full collection from 3.4 ms and 590 page faults to 0.3 ms and 76.
    bench/attribute, 32 tasks (bench/results/worker-attribution.json): a
    task process on a warm child used 61.5 ms of CPU as shipped ("before:
    all on"), 46.3 ms with remote task logs off, whose upload the child had
    run at its previous task's end, and 49.2 ms with this and the imports
    above ("after: all on"; 47.2 and 45.2 with all three of remote logs,
    StatsD and PgBouncer off, before and after).
    gc.freeze moves the generations' lists whole and frees nothing
    (https://docs.python.org/3/library/gc.html#gc.freeze); what it keeps from
    collection is the child's and lives on in the child anyway, so the task
    process holds no more memory for it. Only the task process is frozen:
    the pool child lives for many tasks and keeps collecting its own garbage.
    """
    os.register_at_fork(after_in_child=gc.freeze)
