"""The reference workload: one DAG run that starts many independent tasks at once.

Each task sleeps, so the run measures how many tasks the deployment keeps
running together and how fast it starts them, not how fast it computes. Width,
sleep and schedule come from the deployment (stack config keys ``fanoutTasks``,
``fanoutSleepSeconds`` and ``fanoutSchedule``) through environment variables
that every Airflow pod carries: the DAG must parse to the same tasks in the
dag-processor and in the worker that runs them. Without them it is the seed
article's DAG: 1,000 tasks of 100 s, every hour.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from airflow.sdk import dag, task

WIDTH = int(os.environ.get("AIRFLOW_AKS_FANOUT_TASKS", "1000"))
SLEEP_SECONDS = float(os.environ.get("AIRFLOW_AKS_FANOUT_SLEEP_SECONDS", "100"))
# A cron expression or Airflow preset, in Airflow's default timezone; empty: none.
SCHEDULE = os.environ.get("AIRFLOW_AKS_FANOUT_SCHEDULE", "0 * * * *").strip() or None


@task
def hold_slot(seconds: float) -> None:
    time.sleep(seconds)


@dag(
    dag_id="fanout",
    schedule=SCHEDULE,
    start_date=datetime(2021, 1, 1),
    catchup=False,
    tags=["airflow-aks", "reference"],
    doc_md=__doc__,
)
def fanout() -> None:
    digits = len(str(max(WIDTH - 1, 0)))
    for i in range(WIDTH):
        hold_slot.override(task_id=f"sleep_{i:0{digits}d}")(SLEEP_SECONDS)


fanout()
